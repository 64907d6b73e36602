"""The ONNX runner's predictions API: the records of `predict_texts`, every task at once, and no torch needed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from surgellm_hf.inference import predict_texts
from surgellm_hf.serving.export import export_onnx
from surgellm_hf.serving.runtime import OnnxSurgeClassifier
from surgellm_hf.serving.streaming import TorchPredictor
from tests._serving_utils import TASKS, TEXTS, fitted_model, predict_without_torch

MIXED = [list(TASKS)[i % 2] for i in range(len(TEXTS))]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_bert_with_tokenizer):
    """(model, processor, folder) without a prefix: every task from one encoder pass."""
    model, processor = fitted_model(tiny_bert_with_tokenizer, seed=5)
    return model, processor, export_onnx(model, processor, tmp_path_factory.mktemp("plain") / "onnx")


@pytest.fixture(scope="module")
def exported_prefix(tmp_path_factory, tiny_bert_with_tokenizer):
    """(model, processor, folder) with the compact prefix, whose task token makes the input task-dependent."""
    model, processor = fitted_model(tiny_bert_with_tokenizer, prefix="tokens", seed=6)
    return model, processor, export_onnx(model, processor, tmp_path_factory.mktemp("prefix") / "onnx")


def _assert_same_records(got, ref, atol=1e-5):
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert set(a) == set(b) == {"task", "label", "label_name", "scores"}
        assert (a["task"], a["label"], a["label_name"]) == (b["task"], b["label"], b["label_name"])
        assert list(a["scores"]) == list(b["scores"])
        assert np.allclose(list(a["scores"].values()), list(b["scores"].values()), atol=atol, rtol=0)


def _per_task(records_by_task, i):
    return {t: {k: records_by_task[t][i][k] for k in ("label", "label_name", "scores")} for t in TASKS}


@pytest.mark.parametrize("which", ["exported", "exported_prefix"])
def test_predict_gives_the_records_of_predict_texts(which, request):
    model, processor, folder = request.getfixturevalue(which)
    runner = OnnxSurgeClassifier.from_pretrained(folder)
    ref = predict_texts(model, processor, TEXTS, MIXED, batch_size=3)
    _assert_same_records(runner.predict(TEXTS, task=MIXED, batch_size=3), ref)
    _assert_same_records(TorchPredictor(model, processor).predict(TEXTS, task=MIXED, batch_size=3), ref)
    # one task for all texts, the default task, and a single string
    _assert_same_records(runner.predict(TEXTS, task="llm7"), predict_texts(model, processor, TEXTS, "llm7"))
    _assert_same_records(runner.predict(TEXTS), predict_texts(model, processor, TEXTS, None))
    _assert_same_records(runner(TEXTS[0], task="sst2"), predict_texts(model, processor, TEXTS[:1], "sst2"))
    assert runner.label_names("llm7") == ["gpt", "llama", "human"]


class _CountingSession:
    """An onnxruntime session proxy that counts graph runs."""

    def __init__(self, session):
        self.session, self.calls = session, 0

    def run(self, *args, **kwargs):
        self.calls += 1
        return self.session.run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.session, name)


def _encoder_calls(model):
    calls = []
    handle = model.surge.encoder.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_all_tasks_from_one_encoder_pass_equal_per_task_predictions(exported):
    model, processor, folder = exported
    runner = OnnxSurgeClassifier.from_pretrained(folder)
    assert runner.all_tasks_in_one_pass and not runner.input_depends_on_task
    per_task = {t: runner.predict(TEXTS, task=t) for t in TASKS}
    runner.session = _CountingSession(runner.session)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "one pass per task" warning here
        every = runner.predict(TEXTS, task="all", batch_size=4)
    assert runner.session.calls == 2  # one run per batch of 4, not one per task
    assert [set(r) for r in every] == [{"tasks"}] * len(TEXTS)
    for i, rec in enumerate(every):
        assert list(rec["tasks"]) == list(TASKS)
        for t in TASKS:
            ref = per_task[t][i]
            assert (
                rec["tasks"][t]["label"] == ref["label"]
                and rec["tasks"][t]["label_name"] == ref["label_name"]
            )
            assert np.allclose(
                list(rec["tasks"][t]["scores"].values()), list(ref["scores"].values()), atol=1e-5
            )

    # the PyTorch side: forward_all_tasks, one encoder pass, and the same predictions as predict_texts per task
    torch_pred = TorchPredictor(model, processor)
    calls, handle = _encoder_calls(model)
    try:
        torch_every = torch_pred.predict(TEXTS, task="all", batch_size=8)
    finally:
        handle.remove()
    assert len(calls) == 1
    ref = {t: predict_texts(model, processor, TEXTS, t) for t in TASKS}
    for i, rec in enumerate(torch_every):
        for t in TASKS:
            assert rec["tasks"][t]["label"] == ref[t][i]["label"]
            assert np.allclose(list(rec["tasks"][t]["scores"].values()), list(ref[t][i]["scores"].values()))
            assert rec["tasks"][t]["label"] == every[i]["tasks"][t]["label"]


def test_a_task_prefix_runs_one_pass_per_task_and_says_so(exported_prefix):
    model, processor, folder = exported_prefix
    runner = OnnxSurgeClassifier.from_pretrained(folder)
    assert runner.input_depends_on_task and not runner.all_tasks_in_one_pass
    runner.session = _CountingSession(runner.session)
    with pytest.warns(UserWarning, match="one encoder pass per task \\(2 passes\\)"):
        every = runner.predict(TEXTS, task="all", batch_size=8)
    assert runner.session.calls == len(TASKS)
    ref = {t: predict_texts(model, processor, TEXTS, t) for t in TASKS}
    for i, rec in enumerate(every):
        for t in TASKS:
            got, want = rec["tasks"][t], _per_task(ref, i)[t]
            assert (got["label"], got["label_name"]) == (want["label"], want["label_name"])
            assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)
    torch_pred = TorchPredictor(model, processor)
    calls, handle = _encoder_calls(model)
    try:
        with pytest.warns(UserWarning, match="one encoder pass per task"):
            torch_every = torch_pred.predict(TEXTS, task="all", batch_size=8)
    finally:
        handle.remove()
    assert len(calls) == len(TASKS)
    assert [{t: r["tasks"][t]["label"] for t in TASKS} for r in torch_every] == [
        {t: r["tasks"][t]["label"] for t in TASKS} for r in every
    ]


def test_the_runner_needs_no_torch(exported, tmp_path):
    """surgellm_hf.serving.runtime in a process where torch cannot be imported: the same records, no torch loaded."""
    model, processor, folder = exported
    out = predict_without_torch(folder, TEXTS, MIXED, tmp_path)
    assert out["torch"] == []
    _assert_same_records(out["records"], predict_texts(model, processor, TEXTS, MIXED))
    ref = {t: predict_texts(model, processor, TEXTS, t) for t in TASKS}
    assert [{t: r["tasks"][t]["label"] for t in TASKS} for r in out["all"]] == [
        {t: ref[t][i]["label"] for t in TASKS} for i in range(len(TEXTS))
    ]


def test_bad_calls_are_one_line_errors(exported):
    _, _, folder = exported
    runner = OnnxSurgeClassifier.from_pretrained(folder)
    with pytest.raises(ValueError, match="got 8 texts but 2 task names"):
        runner.predict(TEXTS, task=["sst2", "llm7"])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        runner.predict(TEXTS, batch_size=0)
    with pytest.raises(TypeError, match="texts must be strings"):
        runner.predict(["ok", 3])
    with pytest.raises(ValueError, match="unknown task id 7"):
        runner.predict(TEXTS[:1], task=7)
