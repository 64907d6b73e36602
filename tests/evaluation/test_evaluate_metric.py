"""The `evaluate` extra: SURGELLM's multi-task metric as a local `evaluate` module, offline, numbers checked against
scikit-learn computed independently."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

evaluate = pytest.importorskip("evaluate")

from surgellm_hf.evaluation.evaluate_metric import METRIC_PATH, load_metric  # noqa: E402


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails, and evaluate and the Hub client are told to stay offline."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    tasks = np.array(["sst2"] * 60 + ["llm7"] * 25 + ["hotpot"] * 40)
    k = {"sst2": 2, "llm7": 3, "hotpot": 2}
    refs = np.array([rng.integers(k[t]) for t in tasks])
    preds = np.where(rng.random(len(tasks)) < 0.7, refs, [rng.integers(k[t]) for t in tasks])
    return preds, refs, tasks


def _expected(preds, refs, tasks) -> dict[str, float]:
    out: dict[str, float] = {}
    f1s = []
    for name in ("sst2", "llm7", "hotpot"):
        m = tasks == name
        out[f"{name}/macro_f1"] = f1_score(refs[m], preds[m], average="macro")
        out[f"{name}/accuracy"] = accuracy_score(refs[m], preds[m])
        out[f"{name}/precision"] = precision_score(refs[m], preds[m], average="macro", zero_division=0)
        out[f"{name}/recall"] = recall_score(refs[m], preds[m], average="macro", zero_division=0)
        out[f"{name}/support"] = int(m.sum())
        f1s.append(out[f"{name}/macro_f1"])
    out["avg_macro_f1"] = float(np.mean(f1s))
    return out


@pytest.mark.parametrize("how", ["direct", "load_path"])
def test_metric_matches_scikit_learn_offline(no_network, how):
    metric = load_metric() if how == "direct" else evaluate.load(METRIC_PATH)
    preds, refs, tasks = _data()
    got = metric.compute(predictions=preds.tolist(), references=refs.tolist(), tasks=tasks.tolist())
    expected = _expected(preds, refs, tasks)
    assert list(got) == list(expected)  # tasks in order of first appearance, then the average
    assert got == pytest.approx(expected)


def test_batches_accumulate_like_one_call(no_network):
    metric = load_metric()
    preds, refs, tasks = _data(1)
    for i in range(0, len(tasks), 16):
        metric.add_batch(
            predictions=preds[i : i + 16], references=refs[i : i + 16], tasks=tasks[i : i + 16].tolist()
        )
    assert metric.compute() == pytest.approx(_expected(preds, refs, tasks))


def test_agrees_with_the_package_metrics(no_network):
    from surgellm_hf.evaluation import task_metrics

    preds, refs, tasks = _data(2)
    got = load_metric().compute(predictions=preds, references=refs, tasks=tasks.tolist())
    for name, k in (("sst2", 2), ("llm7", 3), ("hotpot", 2)):
        m = tasks == name
        own = task_metrics(refs[m], preds[m], None, num_labels=k)
        assert got[f"{name}/macro_f1"] == pytest.approx(own["macro_f1"])
        assert got[f"{name}/accuracy"] == pytest.approx(own["accuracy"])
