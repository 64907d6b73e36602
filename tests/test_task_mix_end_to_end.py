"""A GLUE-style task mix end to end: sentence-pair tasks and per-task problem types in one `surgellm train` run.

Tasks, in this (non-alphabetical) order: `sts` (pair, regression), `topics` (single text, multi-label), `nli` (pair,
3 classes), `sentiment` (single text, single-label), variant IWN (statistics fitted per problem type). The saved model
gives the same outputs through from_pretrained, the Auto classes, the pipeline, predict_texts, remote code without
the package, and a Hub push + pull; `surgellm evaluate` reproduces the saved metrics, which equal scikit-learn/scipy
on the saved predictions. A LoRA run of the same mix interrupted after an epoch resumes to the uninterrupted result.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from surgellm_hf.cli import main
from tests._helpers import interrupt_at_step, run_isolated
from tests._task_mix_utils import (
    MIX_LABELS,
    MIX_PAIR_TASKS,
    MIX_TASKS,
    MIX_TYPES,
    TOPIC_THRESHOLD,
    build_small_vocab_bert,
    read_jsonl,
    sigmoid,
    softmax,
    write_task_mix,
)

# one row per task, pair tasks with their second text
ROWS = [
    ("sts", "cat dog mat sun", "cat dog xylo"),
    ("topics", "goal match team vote law item", None),
    ("nli", "tree car bird lake", "not tree car bird lake"),
    ("sentiment", "good happy fine", None),
    ("nli", "sun sun mat dog", "sun sun mat dog"),
    ("sts", "lake bird car tree", "xylo xylo xylo"),
]
TEXTS = [r[1] for r in ROWS]
PAIRS = [r[2] for r in ROWS]
ROW_TASKS = [r[0] for r in ROWS]


def _run_config(tmp: Path, encoder: Path, **overrides) -> Path:
    cfg = {
        "encoder": str(encoder),
        "data": {"tasks": write_task_mix(tmp / "data")},
        "variant": "IWN",
        "epochs": 2,
        "learning_rate": 5e-3,
        "batch_size": 8,
        "max_length": 40,
        "prefix_style": "tokens",  # pinned: the text prefix needs max_length >= 86
        "seed": 0,
        "disable_tqdm": True,
        "output_dir": str(tmp / "runs" / "{variant}-seed{seed}"),
        **overrides,
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def small_bert(tmp_path_factory) -> Path:
    """A tiny random BERT whose WordPiece vocabulary holds this data's words."""
    return build_small_vocab_bert(tmp_path_factory.mktemp("small_bert"))


@pytest.fixture(scope="module")
def mix_run(tmp_path_factory, small_bert) -> Path:
    """The four-task mix trained through `surgellm train`."""
    tmp = tmp_path_factory.mktemp("task_mix")
    assert main(["train", "--config", str(_run_config(tmp, small_bert))]) == 0
    return tmp / "runs" / "IWN-seed0"


@torch.no_grad()
def _logits(model, processor) -> np.ndarray:
    inputs = processor(TEXTS, text_pair=PAIRS, task=ROW_TASKS, return_tensors="pt", padding=True)
    return model(**dict(inputs)).logits.float().numpy()


def test_run_keeps_order_types_and_pairs(mix_run):
    config = json.loads((mix_run / "config.json").read_text())
    assert [name for name, _ in config["tasks"]] == MIX_TASKS
    assert config["task_problem_types"] == [[t, MIX_TYPES[t]] for t in MIX_TASKS]
    processor_config = json.loads((mix_run / "processor_config.json").read_text())
    assert processor_config["tasks"] == MIX_TASKS and processor_config["pair_tasks"] == MIX_PAIR_TASKS
    record = json.loads((mix_run / "metrics.json").read_text())
    assert record["task_order"] == MIX_TASKS

    assert record["training"]["epochs_run"] == 2


# Runs in this process and, as source, in processes without surgellm_hf: each task's inputs in the pipeline's
# formats ({"text", "text_pair"} dicts for pair tasks, plain strings otherwise) and its answers as {label: score}.
PIPELINE_CODE = f"""
def pipeline_scores(clf):
    out = {{}}
    for task in {MIX_TASKS!r}:
        rows = [(t, p) for k, t, p in {ROWS!r} if k == task]
        inputs = [t if p is None else {{"text": t, "text_pair": p}} for t, p in rows]
        out[task] = [{{d["label"]: d["score"] for d in answer}} for answer in clf(inputs, task=task, top_k=None)]
    return out
"""
_namespace: dict = {}
exec(PIPELINE_CODE, _namespace)
pipeline_scores = _namespace["pipeline_scores"]


def _expected_scores(logits: np.ndarray) -> dict[str, list[dict[str, float]]]:
    """Each row's answer by hand from the logits: the value (regression), per-label sigmoid, or softmax."""
    out: dict[str, list[dict[str, float]]] = {task: [] for task in MIX_TASKS}
    for row, task in zip(logits, ROW_TASKS):
        names = MIX_LABELS[task]
        if MIX_TYPES[task] == "regression":
            values = [float(row[0])]
        elif MIX_TYPES[task] == "multi_label":
            values = sigmoid(row[: len(names)]).tolist()
        else:
            values = softmax(row[: len(names)]).tolist()
        out[task].append(dict(zip(names, values)))
    return out


def _assert_same_scores(got: dict, want: dict) -> None:
    for task in MIX_TASKS:
        assert len(got[task]) == len(want[task]), task
        for g, w in zip(got[task], want[task]):
            assert list(sorted(g)) == sorted(w), task
            np.testing.assert_allclose(
                [g[k] for k in w], list(w.values()), rtol=1e-4, atol=1e-5, err_msg=task
            )


@pytest.fixture(scope="module")
def author(mix_run) -> dict:
    """The run's logits of the mixed batch ROWS (from_pretrained + the saved processor)."""
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor

    model = SurgeForSequenceClassification.from_pretrained(mix_run).eval()
    logits = _logits(model, SurgeProcessor.from_pretrained(mix_run))
    # the checks (atol 1e-5) have teeth: rows of one task answer differently by far more
    assert abs(logits[0, 0] - logits[5, 0]) > 1e-4 and np.abs(logits[2, :3] - logits[4, :3]).max() > 1e-4
    return {"logits": logits, "scores": _expected_scores(logits)}


def test_from_pretrained_and_auto_classes_give_the_same_logits(mix_run, author):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoProcessor

    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor
    from surgellm_hf.inference import load_run_model

    config = AutoConfig.from_pretrained(mix_run)
    assert list(config.tasks) == MIX_TASKS and config.task_problem_types == MIX_TYPES
    assert config.task_thresholds == {"topics": TOPIC_THRESHOLD}
    assert config.problem_type == "regression"  # the default task is the first, sts
    model = AutoModelForSequenceClassification.from_pretrained(mix_run).eval()
    assert isinstance(model, SurgeForSequenceClassification)
    # AutoProcessor is not registered in-process (the package registers only config and models): remote code
    processor = AutoProcessor.from_pretrained(mix_run, trust_remote_code=True)
    assert type(processor).__name__ == "SurgeProcessor" and processor.pair_tasks == MIX_PAIR_TASKS
    np.testing.assert_allclose(_logits(model, processor), author["logits"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        _logits(model, SurgeProcessor.from_pretrained(mix_run)), author["logits"], atol=1e-5
    )
    np.testing.assert_allclose(_logits(*load_run_model(mix_run)), author["logits"], rtol=0, atol=1e-5)


def test_iwn_statistics_are_fitted_per_problem_type(mix_run):
    """The saved statistics equal a hand computation on the training rows' features (pairs: both texts)."""
    from safetensors.torch import load_file

    from surgellm_hf import SurgeProcessor

    lexicon = SurgeProcessor.from_pretrained(mix_run).lexicon
    saved = load_file(mix_run / "model.safetensors")
    mean, std = (
        saved["surge.normalizer.mean"].double().numpy(),
        saved["surge.normalizer.std"].double().numpy(),
    )
    data = mix_run.parents[1] / "data"
    for t, task in enumerate(MIX_TASKS):
        rows = read_jsonl(data / task / "train.jsonl")
        texts = [r["text"] if task not in MIX_PAIR_TASKS else r["text"] + " " + r["text_pair"] for r in rows]
        feats = np.asarray(lexicon.featurize(texts), dtype=np.float64)
        if MIX_TYPES[task] == "multi_label":  # per label: its positive and negative rows, then over labels
            hot = np.array([[name in r["label"] for name in MIX_LABELS[task]] for r in rows])
            groups_per_label = [[hot[:, j], ~hot[:, j]] for j in range(hot.shape[1])]
        else:  # classes; sts: 4 quantile bins of targets 0.5/1.5/2.5/3.5 (3 rows each) = one bin per value
            classes = np.array([str(r["label"]) for r in rows])
            groups_per_label = [[classes == c for c in np.unique(classes)]]
        if MIX_TYPES[task] == "regression":
            assert len(groups_per_label[0]) == 4 and all(g.sum() == 3 for g in groups_per_label[0])
        m = np.mean([np.mean([feats[g].mean(0) for g in groups], 0) for groups in groups_per_label], 0)
        s = np.mean([np.mean([feats[g].std(0) for g in groups], 0) for groups in groups_per_label], 0)
        s[s == 0] = 1.0
        np.testing.assert_allclose(mean[t], m, rtol=1e-5, atol=1e-6, err_msg=task)
        np.testing.assert_allclose(std[t], s, rtol=1e-5, atol=1e-6, err_msg=task)


def test_pipeline_gives_each_types_output_and_agrees_with_predict_texts(mix_run, author):
    from transformers import pipeline

    from surgellm_hf.inference import load_run_model, predict_texts

    clf = pipeline("text-classification", model=str(mix_run), trust_remote_code=True)
    got = pipeline_scores(clf)
    _assert_same_scores(got, author["scores"])
    assert list(got["sts"][0]) == ["LABEL_0"]  # regression: the raw value under LABEL_0
    records = predict_texts(*load_run_model(mix_run), TEXTS, tasks=ROW_TASKS, text_pairs=PAIRS)
    by_task = {task: [r["scores"] for r in records if r["task"] == task] for task in MIX_TASKS}
    _assert_same_scores(by_task, author["scores"])
    for record, row in zip(records, author["logits"]):
        kind = MIX_TYPES[record["task"]]
        if kind == "regression":
            assert record["value"] == pytest.approx(float(row[0]), abs=1e-5) and record["label"] is None
        elif kind == "multi_label":
            probs = sigmoid(row[:3])
            assert record["label_name"] == [
                n for n, p in zip(MIX_LABELS["topics"], probs) if p >= TOPIC_THRESHOLD
            ]
        else:
            names = MIX_LABELS[record["task"]]
            assert record["label_name"] == names[int(np.argmax(row[: len(names)]))]


# Runs without surgellm_hf: `path` (a folder or a Hub repo) loaded as remote code.
USER_CODE = (
    PIPELINE_CODE
    + f"""
import torch
from transformers import AutoModelForSequenceClassification, AutoProcessor, pipeline

def user_outputs(path):
    model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
    inputs = processor({TEXTS!r}, text_pair={PAIRS!r}, task={ROW_TASKS!r}, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**dict(inputs)).logits.float().tolist()
    clf = pipeline("text-classification", model=path, trust_remote_code=True)
    return {{"logits": logits, "scores": pipeline_scores(clf), "module": type(model).__module__,
            "types": model.config.task_problem_types, "pair_tasks": processor.pair_tasks}}
"""
)


def _assert_user_matches_author(user: dict, author: dict) -> None:
    assert user["module"].startswith("transformers_modules")
    assert user["types"] == MIX_TYPES and user["pair_tasks"] == MIX_PAIR_TASKS
    np.testing.assert_allclose(np.asarray(user["logits"]), author["logits"], rtol=0, atol=1e-5)
    _assert_same_scores(user["scores"], author["scores"])


def test_remote_code_without_the_package_gives_the_same_outputs(mix_run, author, tmp_path):
    user = run_isolated(
        USER_CODE + f"\nimport json\nprint(json.dumps(user_outputs({str(mix_run)!r})))", tmp_path
    )
    _assert_user_matches_author(user, author)


def test_hub_push_and_pull_give_the_same_outputs(mix_run, author, hub_server):
    repo = "tester/task-mix"
    hub_server.run_python(
        f"from surgellm_hf.cli import main\nassert main(['push', {str(mix_run)!r}, {repo!r}]) == 0",
        surgellm=True,
    )
    files = set(hub_server.hub.files(repo))
    assert {"model.safetensors", "config.json", "processor_config.json", "modeling_surge.py"} <= files
    assert json.loads(hub_server.hub.read(repo, "processor_config.json"))["pair_tasks"] == MIX_PAIR_TASKS
    card = hub_server.hub.read(repo, "README.md").decode()
    for task in MIX_TASKS:  # the task table says which tasks take sentence pairs
        assert (f"| `{task}` | " in card) and ((f"| `{task}` | " + "sentence pair, ") in card) == (
            task in MIX_PAIR_TASKS
        ), task
    usage = card[card.index("## Usage") : card.index("## Intended use")]
    snippets = re.findall(r"```python\n(.*?)```", usage, flags=re.S)
    assert len(snippets) == 2 and "text_pair" in snippets[0] and "text_pair" in snippets[1]
    # the card's usage code runs as written for a user without the package (the default task, sts, takes pairs)
    user = hub_server.run_python("\n".join(snippets) + USER_CODE + f"\nresult(user_outputs({repo!r}))")
    _assert_user_matches_author(user, author)


@pytest.mark.parametrize("data", ["the run's own", "--data FOLDER"])
def test_evaluate_command_reproduces_the_saved_metrics(mix_run, tmp_path, data):
    folder = ["--data", str(mix_run.parents[1] / "data")] if data == "--data FOLDER" else []
    for split in ("validation", "test"):
        out = tmp_path / f"{split}.json"
        assert main(["evaluate", str(mix_run), *folder, "--split", split, "--output", str(out)]) == 0
        result = json.loads(out.read_text())
        saved = json.loads((mix_run / "metrics.json").read_text())
        assert list(result["tasks"]) == MIX_TASKS
        for task in MIX_TASKS:
            assert set(result["tasks"][task]) == set(saved["tasks"][task][split]), task
            for key, value in result["tasks"][task].items():
                assert value == pytest.approx(saved["tasks"][task][split][key], rel=1e-5, nan_ok=True), (
                    task,
                    key,
                )


def test_saved_metrics_equal_scikit_learn_and_scipy_on_the_saved_predictions(mix_run):
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    record = json.loads((mix_run / "metrics.json").read_text())
    data = mix_run.parents[1] / "data"
    primaries = []
    for task in MIX_TASKS:
        saved = record["tasks"][task]["test"]
        rows = read_jsonl(mix_run / "predictions" / f"{task}_test.jsonl")
        truth = read_jsonl(data / task / "test.jsonl")
        assert [r["id"] for r in rows] == [r["id"] for r in truth] and saved["n"] == len(truth)
        names = MIX_LABELS[task]
        if MIX_TYPES[task] == "regression":
            y, p = np.array([r["label"] for r in truth]), np.array([r["y_pred"] for r in rows])
            assert [r["y_true"] for r in rows] == y.tolist()
            assert saved["pearson"] == pytest.approx(pearsonr(y, p)[0], rel=1e-6)
            assert saved["spearman"] == pytest.approx(spearmanr(y, p)[0], rel=1e-6)
            assert saved["rmse"] == pytest.approx(float(np.sqrt(np.mean((y - p) ** 2))), rel=1e-6)
            primaries.append((saved["pearson"] + saved["spearman"]) / 2)
        elif MIX_TYPES[task] == "multi_label":
            y = np.array([[n in r["label"] for n in names] for r in truth], dtype=int)
            p = np.array([[n in r["y_pred"] for n in names] for r in rows], dtype=int)
            assert [r["y_true"] for r in rows] == [[n for n in names if n in r["label"]] for r in truth]
            np.testing.assert_array_equal(p, np.array([r["score"] for r in rows]) >= TOPIC_THRESHOLD)
            assert saved["micro_f1"] == pytest.approx(f1_score(y, p, average="micro", zero_division=0))
            assert saved["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
            assert saved["subset_accuracy"] == pytest.approx(accuracy_score(y, p))
            primaries.append(saved["macro_f1"])
        else:
            y = np.array(
                [names.index(r["label"]) if isinstance(r["label"], str) else r["label"] for r in truth]
            )
            p, score = np.array([r["y_pred"] for r in rows]), np.array([r["score"] for r in rows])
            assert [r["y_true"] for r in rows] == y.tolist()
            np.testing.assert_array_equal(p, score.argmax(axis=1))
            assert saved["macro_f1"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0))
            assert saved["accuracy"] == pytest.approx(accuracy_score(y, p))
            assert saved["precision"] == pytest.approx(
                precision_score(y, p, average="macro", zero_division=0)
            )
            assert saved["recall"] == pytest.approx(recall_score(y, p, average="macro", zero_division=0))
            if len(names) == 2:
                auc = roc_auc_score(y, score[:, 1])
            else:  # one-vs-rest, macro over the classes present
                auc = np.mean([roc_auc_score(y == c, score[:, c]) for c in np.unique(y)])
            assert saved["roc_auc"] == pytest.approx(auc)
            primaries.append(saved["macro_f1"])
    assert record["avg_macro_f1"]["test"] == pytest.approx(float(np.mean(primaries)))


# ---------------------------------------------------------------------------------------------- LoRA resume


def test_interrupted_lora_run_resumes_to_the_uninterrupted_result(tmp_path, small_bert, monkeypatch):
    """A LoRA run of the mix, interrupted in epoch 2 after the epoch-1 checkpoint, resumes and ends with the same
    LoRA weights, SURGELLM modules, heads, statistics and metrics as the uninterrupted run."""
    from safetensors.torch import load_file

    from surgellm_hf.training import load_run_config, train_run

    path = _run_config(tmp_path, small_bert, lora={"r": 4, "alpha": 8, "dropout": 0.0}, keep_checkpoints=True)
    reference = train_run(load_run_config(path, [f"output_dir={tmp_path / 'ref'}"]))
    ref = json.loads((reference / "metrics.json").read_text())
    steps_per_epoch = ref["training"]["global_steps"] // 2
    interrupt_at_step(monkeypatch, steps_per_epoch + 1)
    cfg = load_run_config(path, [f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == [f"checkpoint-{steps_per_epoch}"]
    assert not (tmp_path / "run" / "metrics.json").exists()
    monkeypatch.undo()
    resumed = train_run(cfg)
    got = json.loads((resumed / "metrics.json").read_text())
    assert got["training"]["resumed_from"] == str(checkpoints[0])
    for key in ("global_steps", "epochs_run", "best_epoch"):
        assert got["training"][key] == ref["training"][key], key
    assert not (resumed / "model.safetensors").exists()  # a LoRA run folder holds the adapter only
    last = f"checkpoints/checkpoint-{2 * steps_per_epoch}/adapter_model.safetensors"
    first = load_file(checkpoints[0] / "adapter_model.safetensors")
    kinds = {"lora_A", "lora_B", "heads", "gate", "task_embedding", "normalizer"}
    assert all(any(kind in key for key in first) for kind in kinds), sorted(first)
    # the epoch-2 weights (trained after the resume) and the final (best-epoch) weights
    for name in (last, "adapter_model.safetensors"):
        a, b = load_file(reference / name), load_file(resumed / name)
        assert set(a) == set(b) == set(first), name
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")
    epoch_two = load_file(reference / last)  # the check has teeth: epoch 2 moved LoRA, modules and heads
    for kind in ("lora_B", "heads", "gate"):
        assert any(not torch.allclose(first[k], epoch_two[k]) for k in first if kind in k), kind
    for task in MIX_TASKS:
        for split in ("validation", "test"):
            for key, value in ref["tasks"][task][split].items():
                assert got["tasks"][task][split][key] == pytest.approx(value, rel=1e-4, nan_ok=True), (
                    task,
                    key,
                )


def test_predict_command_writes_predict_texts_records(mix_run, tmp_path, capsys):
    from surgellm_hf.inference import load_run_model, predict_texts

    rows = [{"text": t, "task": k, **({} if p is None else {"text_pair": p})} for k, t, p in ROWS]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert main(["predict", str(mix_run), "--input", str(tmp_path / "in.jsonl")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    records = predict_texts(*load_run_model(mix_run), TEXTS, tasks=ROW_TASKS, text_pairs=PAIRS)
    assert [line["task"] for line in lines] == ROW_TASKS
    assert [line.get("text_pair") for line in lines] == PAIRS
    for line, record in zip(lines, records):
        assert line["label_name"] == record["label_name"] and line.get("value") == pytest.approx(
            record.get("value")
        )
        assert line["scores"] == pytest.approx(record["scores"], rel=1e-5)
