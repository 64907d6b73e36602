"""Task order survives every save/load route (integrity issue, item 1).

Task ids, heads, task-embedding rows and statistics rows are indexed by the order of `config.tasks`. JSON writers
sort mapping keys, so a config that stored `tasks` as a mapping came back alphabetical and answered one task with
another task's head. Every test here uses task names that are NOT in alphabetical order and equal label counts
(the silent case), and compares answers by task name, never by id. The Hub push/pull and `pipeline(task=...)`
routes are covered by tests/hub/test_publishing.py and tests/test_pipeline_surge.py, whose tasks ("sst2", "aspect")
are not alphabetical either.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from surgellm_hf import Lexicon, SurgeConfig, SurgeForSequenceClassification, SurgeProcessor
from surgellm_hf.cli import main
from tests._helpers import run_isolated

LABELS = {"sst2": ["negative", "positive"], "llm7": ["human", "llm"], "hotpot": ["easy", "hard"]}
TASKS = {name: len(labels) for name, labels in LABELS.items()}
assert list(TASKS) != sorted(TASKS)
TEXTS = [
    "a gorgeous, witty film. I love it!",
    "Moreover, the results show a clear trend; therefore we conclude (1) and (2).",
    "i guess it was kind of boring, maybe?",
]
FIT = [
    ("great fun", "sst2", 1),
    ("dull, the worst", "sst2", 0),
    ("moreover, results show", "llm7", 1),
    ("i think it is fine", "llm7", 0),
    ("according to the passage", "hotpot", 1),
    ("who won?", "hotpot", 0),
]


def _build(encoder_dir, prefix=None, freeze=False):
    """A model whose SURGELLM modules and heads are moved off their init, so every task answers differently."""
    lexicon = Lexicon.curated()
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        encoder_dir, tasks=TASKS, task_label_names=LABELS, norm="iwn", num_features=lexicon.num_features
    )
    processor = SurgeProcessor.from_encoder_pretrained(
        encoder_dir, lexicon=lexicon, tasks=list(TASKS), prefix=prefix
    )
    processor.prepare_model(model)
    if freeze:
        model.freeze_encoder()
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("surge.encoder."):
                p.add_(torch.randn_like(p) * 0.5)
    texts, tasks, labels = zip(*FIT)
    model.fit_feature_normalizer(lexicon.featurize(list(texts)), list(labels), list(tasks))
    return model.eval(), processor


@torch.no_grad()
def _logits_by_task(model, processor) -> dict[str, np.ndarray]:
    return {
        task: model(**processor(TEXTS, task=task, return_tensors="pt", padding=True)).logits.numpy()
        for task in LABELS
    }


def _assert_same_answers(got: dict, want: dict) -> None:
    for task in LABELS:
        np.testing.assert_allclose(np.asarray(got[task]), want[task], rtol=0, atol=1e-5, err_msg=task)
    # the check has teeth: the tasks really answer differently
    assert not np.allclose(want["sst2"], want["llm7"], atol=1e-3)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_bert_with_tokenizer):
    model, processor = _build(tiny_bert_with_tokenizer)
    path = tmp_path_factory.mktemp("ordered_model")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path, _logits_by_task(model, processor)


def test_config_saves_tasks_as_an_ordered_list(saved):
    path, _ = saved
    raw = json.loads((path / "config.json").read_text())
    assert raw["tasks"] == [["sst2", 2], ["llm7", 2], ["hotpot", 2]]
    assert raw["task_label_names"] == [[t, LABELS[t]] for t in TASKS]
    config = SurgeConfig.from_pretrained(path)
    assert list(config.tasks) == ["sst2", "llm7", "hotpot"]
    assert config.task_id("llm7") == 1 and config.default_task == "sst2"
    assert config.label_names("llm7") == ["human", "llm"]
    assert json.loads((path / "processor_config.json").read_text())["tasks"] == ["sst2", "llm7", "hotpot"]
    assert SurgeProcessor.from_pretrained(path).tasks == ["sst2", "llm7", "hotpot"]


def test_save_and_auto_classes_keep_each_tasks_head(saved):
    path, want = saved
    processor = SurgeProcessor.from_pretrained(path)
    _assert_same_answers(
        _logits_by_task(SurgeForSequenceClassification.from_pretrained(path).eval(), processor), want
    )
    auto = AutoModelForSequenceClassification.from_pretrained(path).eval()
    assert isinstance(auto, SurgeForSequenceClassification)
    assert list(AutoConfig.from_pretrained(path).tasks) == list(TASKS)
    _assert_same_answers(_logits_by_task(auto, processor), want)


def test_remote_code_without_the_package_keeps_task_order(saved, tmp_path):
    path, want = saved
    got = run_isolated(
        f"""
        import json, logging, torch
        from transformers import AutoModelForSequenceClassification, AutoProcessor, pipeline

        records = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())
        logging.getLogger("transformers").addHandler(handler)
        clf = pipeline("text-classification", model={str(path)!r}, trust_remote_code=True)
        answers = {{t: clf({TEXTS!r}, task=t, top_k=None) for t in {list(LABELS)!r}}}
        model = AutoModelForSequenceClassification.from_pretrained({str(path)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(path)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
        with torch.no_grad():
            out = {{t: model(**processor({TEXTS!r}, task=t, return_tensors="pt", padding=True)).logits.tolist()
                   for t in {list(LABELS)!r}}}
        print(json.dumps({{"tasks": list(model.config.tasks), "logits": out, "answers": answers, "logs": records}}))
        """,
        tmp_path,
    )
    assert got["tasks"] == list(TASKS)
    _assert_same_answers(got["logits"], want)
    for (
        task,
        labels,
    ) in LABELS.items():  # the pipeline answers each task with that task's head and label names
        logits = want[task][:, : len(labels)]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        for answer, p in zip(got["answers"][task], probs):
            np.testing.assert_allclose(
                [{d["label"]: d["score"] for d in answer}[n] for n in labels], p, atol=1e-5
            )
    # AutoTokenizer used to fall back to a bare PreTrainedConfig and log a model-type mismatch
    assert not [m for m in got["logs"] if "instantiate a model of type" in m], got["logs"]


def test_adapter_round_trip_keeps_task_order(tmp_path, tiny_bert_with_tokenizer):
    model, processor = _build(tiny_bert_with_tokenizer, freeze=True)
    want = _logits_by_task(model, processor)
    model.save_adapter(tmp_path / "adapter")
    raw = json.loads((tmp_path / "adapter" / "surge_adapter_config.json").read_text())
    assert raw["surge_config"]["tasks"] == [["sst2", 2], ["llm7", 2], ["hotpot", 2]]
    loaded = SurgeForSequenceClassification.from_adapter(tmp_path / "adapter").eval()
    assert list(loaded.config.tasks) == list(TASKS)
    _assert_same_answers(_logits_by_task(loaded, processor), want)

    # an adapter written by 0.1 (tasks as a sorted mapping) is refused, not guessed
    raw["surge_config"]["tasks"] = dict(sorted(TASKS.items()))
    (tmp_path / "adapter" / "surge_adapter_config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="task order .* cannot be known for sure"):
        SurgeForSequenceClassification.from_adapter(tmp_path / "adapter")


def test_cli_predict_answers_each_task_with_its_own_head(saved, tmp_path, capsys):
    path, want = saved
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    for task in ("llm7", "hotpot"):
        capsys.readouterr()
        assert main(["predict", str(path), "--input", str(inp), "--task", task]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        logits = want[task][:, :2]
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        for row, p in zip(rows, probs):
            assert row["task"] == task
            assert row["label_name"] == LABELS[task][int(p.argmax())]
            np.testing.assert_allclose([row["scores"][n] for n in LABELS[task]], p, atol=1e-5)


def test_a_sorted_mapping_in_a_saved_config_is_refused_not_guessed(saved, tmp_path):
    path, want = saved
    import shutil

    old = tmp_path / "old"
    shutil.copytree(path, old)
    raw = json.loads((old / "config.json").read_text())
    raw["tasks"] = dict(sorted(TASKS.items()))  # what 0.1 wrote: keys sorted by the JSON writer
    raw["task_label_names"] = dict(sorted(LABELS.items()))
    (old / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="task order .* cannot be known for sure"):
        SurgeForSequenceClassification.from_pretrained(old)
    with pytest.raises(ValueError, match="task order .* cannot be known for sure"):
        AutoConfig.from_pretrained(old)
    # stating the training order explicitly loads it, and answers match by name
    model = SurgeForSequenceClassification.from_pretrained(old, tasks=[[t, 2] for t in TASKS]).eval()
    assert model.config.task_label_names == LABELS
    _assert_same_answers(_logits_by_task(model, SurgeProcessor.from_pretrained(old)), want)
    # a single task has only one order: still loads
    one = SurgeConfig(encoder_config=model.config.encoder_config, tasks={"sst2": 2})
    one_raw = json.loads(one.to_json_string())
    one_raw["tasks"] = {"sst2": 2}
    assert list(SurgeConfig.from_dict(one_raw).tasks) == ["sst2"]


def test_tasks_given_as_pairs_or_mapping_build_the_same_config(tiny_bert_dir):
    encoder = AutoConfig.from_pretrained(tiny_bert_dir)
    from_pairs = SurgeConfig(encoder_config=encoder, tasks=[["sst2", 2], ["llm7", 3]])
    from_map = SurgeConfig(encoder_config=encoder, tasks={"sst2": 2, "llm7": 3})
    assert from_pairs.tasks == from_map.tasks and list(from_pairs.tasks) == ["sst2", "llm7"]
    for bad, msg in [
        ([["sst2", 2], ["sst2", 3]], "names 'sst2' twice"),
        ([["sst2", 2, 1]], r"\[name, value\] pairs"),
        ("sst2", "mapping or a list"),
    ]:
        with pytest.raises(ValueError, match=msg):
            SurgeConfig(encoder_config=encoder, tasks=bad)
