"""Serving scores each task by its problem type: `surgellm predict` (run folder and ONNX export), the ONNX runner
(fp32, int8, every task from one pass, without torch) and the export metadata, on a tiny mixed-type model.

Expected values come from the eager model's logits scored by hand here (torch softmax / sigmoid and the threshold,
the raw regression output) and from `predict_texts`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor
from surgellm_hf.cli import main
from surgellm_hf.inference import predict_texts
from surgellm_hf.serving.export import export_onnx
from surgellm_hf.serving.runtime import SERVING_CONFIG_NAME, OnnxSurgeClassifier
from surgellm_hf.serving.streaming import TorchPredictor
from tests._serving_utils import predict_without_torch

# Not alphabetical: task ids follow the given order (as in tests/test_problem_types.py).
TASKS = {"topics": 3, "score": 1, "sentiment": 2}
TYPES = {"topics": "multi_label", "score": "regression", "sentiment": "single_label"}
LABELS = {
    "topics": ["sports", "politics", "tech"],
    "score": ["LABEL_0"],
    "sentiment": ["negative", "positive"],
}
THRESHOLD = 0.4
TEXTS = [
    "goal match team vote law",
    "great great plain words here",
    "good happy fine",
    "code chip robot senate",
    "bad sad awful",
    "Firstly, the team scored a goal; secondly, the senate passed the law.",
    "ok",
    "I love it. Best day ever!!!",
    "terrible acting, awful plot",
]
ROW_TASKS = [list(TASKS)[i % 3] for i in range(len(TEXTS))]


def _fit_labels(tasks: list[str]) -> list[list[float]]:
    """Padded label rows (multi-hot / target / class id) with both values of every label in every task."""
    rows, seen = [], {t: 0 for t in TASKS}
    for t in tasks:
        k = seen[t]
        seen[t] += 1
        if t == "topics":
            rows.append([float((k + j) % 2) for j in range(3)])
        elif t == "score":
            rows.append([0.5 + 1.5 * k])
        else:
            rows.append([float(k % 2)])
    return rows


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, tiny_bert_with_tokenizer) -> Path:
    """A saved mixed-type SURGELLM model (IWN statistics fitted, heads spread to O(1) logits) + its processor (no
    prefix: every task from one encoder pass)."""
    torch.manual_seed(3)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        tiny_bert_with_tokenizer,
        tasks=dict(TASKS),
        task_problem_types=dict(TYPES),
        task_thresholds={"topics": THRESHOLD},
        task_label_names={t: LABELS[t] for t in TASKS if t != "score"},
        norm="iwn",
    )
    processor = SurgeProcessor.from_encoder_pretrained(
        tiny_bert_with_tokenizer, tasks=list(TASKS), prefix=None
    )
    processor.prepare_model(model)
    fit_tasks = [list(TASKS)[i % 3] for i in range(12)]
    fit_texts = [TEXTS[i % len(TEXTS)] + f" row {i}" for i in range(12)]
    model.fit_feature_normalizer(processor.lexicon.featurize(fit_texts), _fit_labels(fit_tasks), fit_tasks)
    model.eval()
    with (
        torch.no_grad()
    ):  # a random tiny encoder barely tells texts apart: spread the classifier heads' outputs
        for t, name in enumerate(TASKS):
            if TYPES[name] == "regression":
                continue
            own = model(**processor(TEXTS, task=name, return_tensors="pt", padding=True)).logits[
                :, : TASKS[name]
            ]
            mean, std = own.mean(0), own.std(0)
            target = float(np.log(THRESHOLD / (1 - THRESHOLD))) if TYPES[name] == "multi_label" else 0.0
            sign = torch.tensor([(-1.0) ** j for j in range(TASKS[name])])  # alternate: rows get some labels
            last = model.heads[t][-1]
            last.weight.mul_((sign / std)[:, None])
            last.bias.copy_((last.bias - mean) * sign / std + target)
    folder = tmp_path_factory.mktemp("mixed_serving") / "run"
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def loaded(mixed_run):
    """(model, processor) loaded back from the run folder."""
    model = SurgeForSequenceClassification.from_pretrained(mixed_run).eval()
    return model, SurgeProcessor.from_pretrained(mixed_run)


@pytest.fixture(scope="module")
def exported(loaded, tmp_path_factory) -> Path:
    model, processor = loaded
    return export_onnx(model, processor, tmp_path_factory.mktemp("mixed_onnx") / "onnx", quantize=True)


def _hand_records(logits: np.ndarray, tasks: list[str]) -> list[dict]:
    """Records scored by hand from padded logits: torch softmax + argmax, sigmoid >= threshold, the raw value."""
    out = []
    for row, t in zip(torch.as_tensor(np.asarray(logits), dtype=torch.float64), tasks):
        names = LABELS[t]
        if TYPES[t] == "regression":
            v = float(row[0])
            out.append({"task": t, "label": None, "label_name": None, "value": v, "scores": {names[0]: v}})
        elif TYPES[t] == "multi_label":
            p = torch.sigmoid(row[:3]).tolist()
            hit = [j for j, q in enumerate(p) if q >= THRESHOLD]
            out.append(
                {
                    "task": t,
                    "label": hit,
                    "label_name": [names[j] for j in hit],
                    "scores": dict(zip(names, p)),
                }
            )
        else:
            p = torch.softmax(row[:2], dim=0).tolist()
            k = int(np.argmax(p))
            out.append({"task": t, "label": k, "label_name": names[k], "scores": dict(zip(names, p))})
    return out


def _eager_logits(loaded, texts, tasks) -> np.ndarray:
    model, processor = loaded
    with torch.no_grad():
        return model(**processor(list(texts), task=tasks, return_tensors="pt", padding=True)).logits.numpy()


def _assert_records(got: list[dict], want: list[dict], atol: float = 1e-5) -> None:
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert set(a) == set(b), (i, a, b)
        assert (a["task"], a["label"], a["label_name"]) == (b["task"], b["label"], b["label_name"]), (i, a, b)
        assert list(a["scores"]) == list(b["scores"])
        assert np.allclose(list(a["scores"].values()), list(b["scores"].values()), atol=atol, rtol=0), (
            i,
            a,
            b,
        )
        if "value" in b:
            assert a["value"] == pytest.approx(b["value"], abs=atol)


def _assert_varied(records: list[dict]) -> None:
    """The model is informative enough for the test to fail: multi-label rows differ, labels above and below."""
    topics = [tuple(r["label"]) for r in records if r["task"] == "topics"]
    assert len(set(topics)) > 1 and any(0 < len(t) < 3 for t in topics), topics


def test_predict_texts_is_scored_by_hand(loaded):
    ref = predict_texts(*loaded, TEXTS, ROW_TASKS)
    _assert_records(ref, _hand_records(_eager_logits(loaded, TEXTS, ROW_TASKS), ROW_TASKS))
    _assert_varied(ref)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli_predict(model_dir: Path, tmp_path: Path, *extra: str) -> list[dict]:
    rows = [{"id": i, "text": x, "task": t} for i, (x, t) in enumerate(zip(TEXTS, ROW_TASKS))]
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = ["predict", str(model_dir), "--input", str(src), "--output", str(out), "--batch-size", "4"]
    assert main([*args, "--no-progress", *extra]) == 0  # a later --batch-size wins
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r.pop("id") for r in lines] == list(range(len(TEXTS)))
    assert [r.pop("text") for r in lines] == TEXTS
    return lines


@pytest.mark.parametrize("source", ["run", "onnx", "int8"])
def test_predict_command_scores_each_task_by_its_type(source, mixed_run, exported, loaded, tmp_path):
    if source == "run":
        got = _cli_predict(mixed_run, tmp_path)
        logits = _eager_logits(loaded, TEXTS, ROW_TASKS)
    else:
        # int8 quantizes activations per batch: one text per batch makes the graph's own logits reproducible
        extra = ("--int8", "--batch-size", "1") if source == "int8" else ()
        got = _cli_predict(exported, tmp_path, *extra)
        runner = OnnxSurgeClassifier.from_pretrained(exported, quantized=source == "int8")
        logits = np.concatenate([runner.logits([x], [t]) for x, t in zip(TEXTS, ROW_TASKS)])
    _assert_records(got, _hand_records(logits, ROW_TASKS), atol=1e-5)
    if source != "int8":
        _assert_records(got, predict_texts(*loaded, TEXTS, ROW_TASKS), atol=1e-4)
    _assert_varied(got)


@pytest.mark.parametrize("source", ["run", "onnx"])
def test_predict_task_all_scores_every_task_by_its_type(source, mixed_run, exported, loaded, tmp_path):
    got = _cli_predict(mixed_run if source == "run" else exported, tmp_path, "--task", "all")
    for t in TASKS:
        want = predict_texts(*loaded, TEXTS, t)
        _assert_records([{"task": t, **r["tasks"][t]} for r in got], want, atol=1e-4)
        _assert_records(
            [{"task": t, **r["tasks"][t]} for r in got],
            _hand_records(_eager_logits(loaded, TEXTS, t), [t] * len(TEXTS)),
            atol=1e-4,
        )
    assert [list(r["tasks"]) for r in got] == [list(TASKS)] * len(TEXTS)


def test_export_metadata_carries_types_and_thresholds_in_task_order(exported):
    config = json.loads((exported / SERVING_CONFIG_NAME).read_text())
    assert [(t["name"], t["problem_type"], t["threshold"]) for t in config["tasks"]] == [
        ("topics", "multi_label", THRESHOLD),
        ("score", "regression", None),
        ("sentiment", "single_label", None),
    ]
    for quantized in (False, True):
        runner = OnnxSurgeClassifier.from_pretrained(exported, quantized=quantized)
        assert runner.problem_types == TYPES and list(runner.problem_types) == list(TASKS)
        assert runner.thresholds == {"topics": THRESHOLD}
        assert runner.all_tasks_in_one_pass


def test_runner_and_torch_predictor_give_predict_texts_records(exported, loaded):
    ref = predict_texts(*loaded, TEXTS, ROW_TASKS)
    runner = OnnxSurgeClassifier.from_pretrained(exported)
    _assert_records(runner.predict(TEXTS, task=ROW_TASKS, batch_size=4), ref, atol=1e-4)
    _assert_records(TorchPredictor(*loaded).predict(TEXTS, task=ROW_TASKS, batch_size=4), ref)
    every = runner.predict(TEXTS, task="all", batch_size=4)
    for t in TASKS:
        _assert_records([{"task": t, **r["tasks"][t]} for r in every], predict_texts(*loaded, TEXTS, t), 1e-4)


def _rewrite_config(src: Path, dst: Path, edit) -> Path:
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / SERVING_CONFIG_NAME).read_text())
    edit(config)
    (dst / SERVING_CONFIG_NAME).write_text(json.dumps(config))
    return dst


def test_an_export_without_types_loads_as_single_label(exported, tmp_path):
    def strip(config):
        for t in config["tasks"]:
            del t["problem_type"], t["threshold"]

    old = OnnxSurgeClassifier.from_pretrained(_rewrite_config(exported, tmp_path / "old", strip))
    assert old.problem_types == dict.fromkeys(TASKS, "single_label") and old.thresholds == {}
    logits = old.logits(TEXTS[:3], list(TASKS))
    records = old.predict(TEXTS[:3], task=list(TASKS))
    for row, rec, t in zip(logits, records, TASKS):
        p = torch.softmax(torch.as_tensor(row[: TASKS[t]], dtype=torch.float64), 0).tolist()
        assert rec["label"] == int(np.argmax(p)) and list(rec["scores"].values()) == pytest.approx(
            p, abs=1e-6
        )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["tasks"][0].update(threshold=None),
            r"multi-label task 'topics' needs a threshold in \(0, 1\)",
        ),
        (lambda c: c["tasks"][1].update(problem_type="ordinal"), r"task 'score' has problem_type 'ordinal'"),
        (
            lambda c: c["tasks"][2].update(threshold=0.5),
            r"task 'sentiment' is single_label but has a threshold",
        ),
        (lambda c: c["tasks"][1].update(num_labels=2), r"regression task 'score' has 2 outputs"),
    ],
)
def test_bad_type_metadata_is_a_one_line_error(exported, tmp_path, edit, message):
    folder = _rewrite_config(exported, tmp_path / "bad", edit)
    with pytest.raises(ValueError, match=message):
        OnnxSurgeClassifier.from_pretrained(folder)


def test_the_runner_without_torch_scores_each_type(exported, loaded, tmp_path):
    """The runner in a process where torch cannot be imported: its torch-free scoring gives the same records."""
    out = predict_without_torch(exported, TEXTS, ROW_TASKS, tmp_path)
    assert out["torch"] == []
    _assert_records(out["records"], predict_texts(*loaded, TEXTS, ROW_TASKS), atol=1e-4)
    for t in TASKS:
        got = [{"task": t, **r["tasks"][t]} for r in out["all"]]
        _assert_records(got, predict_texts(*loaded, TEXTS, t), atol=1e-4)


def test_quantization_report_refuses_tasks_it_cannot_score(exported):
    from surgellm_hf.serving.quantize import quantization_report

    with pytest.raises(
        ValueError, match=r"single-label tasks by macro-F1; these tasks are not: \{'score': 'regression'\}"
    ):
        quantization_report(exported, {"score": (TEXTS[:2], [0.5, 1.0]), "sentiment": (TEXTS[:2], [0, 1])})
