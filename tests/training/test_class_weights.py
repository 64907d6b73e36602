"""Weighted loss: 'balanced' class weights as scikit-learn computes them and pos_weights by hand, the loss against
torch's weighted cross-entropy / BCE-with-logits per task, runs mixing problem types, checks before training, and the
record in run_config.json, metrics.json and the model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.utils.class_weight import compute_class_weight
from transformers import BertConfig

from surgellm_hf import SurgeConfig, SurgeForSequenceClassification
from surgellm_hf.training import (
    RunConfig,
    balanced_class_weights,
    class_weight_table,
    comparable_settings,
    load_run_config,
    resolve_class_weights,
    train_run,
)
from surgellm_hf.training.class_weights import balanced_pos_weights, class_weights_applied
from surgellm_hf.training.trainer import weighted_task_loss
from tests._helpers import write_run_config

# Not alphabetical: task ids follow this order. tags multi-label, rating regression, mood single-label.
TASKS = {"tags": 3, "rating": 1, "mood": 2}
TYPES = {"tags": "multi_label", "rating": "regression", "mood": "single_label"}
TAGS = ["red", "green", "blue"]


def test_balanced_weights_match_scikit_learn():
    labels = [0] * 70 + [1] * 20 + [2] * 10
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels))
    np.testing.assert_allclose(balanced_class_weights(labels, 3), expected)


def test_resolve_balanced_explicit_and_errors():
    tasks = {"a": 2, "b": 3}
    labels = {"a": [0, 0, 0, 1], "b": [0, 1, 2, 2]}
    got = resolve_class_weights("balanced", tasks, labels)
    assert got == {"a": pytest.approx([4 / 6, 2.0]), "b": pytest.approx([4 / 3, 4 / 3, 2 / 3])}
    assert resolve_class_weights({"b": [1, 2, 3]}, tasks, labels) == {"b": [1.0, 2.0, 3.0]}
    assert resolve_class_weights(None, tasks, labels) is None
    with pytest.raises(
        ValueError, match=r"task 'b' has 2 value\(s\) but the task has 3 labels \['x', 'y', 'z'\]"
    ):
        resolve_class_weights({"b": [1, 2]}, tasks, labels, {"b": ["x", "y", "z"]})
    with pytest.raises(ValueError, match=r"task\(s\) \['c'\]"):
        resolve_class_weights({"c": "balanced"}, tasks, labels)
    table = class_weight_table({"b": [1, 2, 3]}, tasks)
    assert table.tolist() == [[1, 1, 1], [1, 2, 3]]


def _mixed_model(tasks=None, types=None) -> SurgeForSequenceClassification:
    encoder = BertConfig(
        vocab_size=99,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        max_position_embeddings=32,
    )
    config = SurgeConfig(
        encoder_config=encoder,
        tasks=dict(tasks or TASKS),
        task_problem_types=dict(types or TYPES),
        norm="none",
        num_features=4,
    )
    return SurgeForSequenceClassification(config).eval()


def test_weighted_loss_equals_torch_per_task_and_mixes_by_row_weights():
    torch.manual_seed(0)
    model = _mixed_model()
    weights = {"tags": [0.5, 3.0, 1.5], "mood": [0.25, 2.0]}
    table = class_weight_table(weights, TASKS)
    task_ids = torch.tensor([0, 1, 2, 2, 0, 1, 2, 0, 1])
    logits = torch.randn(9, 3)
    width = torch.tensor(list(TASKS.values()))[task_ids].view(-1, 1)
    logits[torch.arange(3).view(1, -1) >= width] = torch.finfo(torch.float32).min  # as the model pads them
    logits.requires_grad_(True)
    # padded layout of a mixed batch: multi-hot row (tags), [target] (rating), [class id] (mood)
    labels = torch.tensor(
        [
            [1, 0, 1],
            [2.5, 0, 0],
            [1, 0, 0],
            [0, 0, 0],
            [0, 1, 1],
            [-1.0, 0, 0],
            [1, 0, 0],
            [0, 0, 0],
            [0.5, 0, 0],
        ]
    )
    f = torch.nn.functional
    tags, rating, mood = (task_ids == i for i in range(3))
    pw = torch.tensor(weights["tags"])
    cw = torch.tensor(weights["mood"])
    # task-homogeneous batches are torch's own weighted losses
    ref_tags = f.binary_cross_entropy_with_logits(logits[tags], labels[tags], pos_weight=pw)
    ref_mood = f.cross_entropy(logits[mood, :2], labels[mood, 0].long(), weight=cw)
    ref_rating = f.mse_loss(logits[rating, 0], labels[rating, 0])
    for rows, ref in ((tags, ref_tags), (mood, ref_mood), (rating, ref_rating)):
        got = weighted_task_loss(model, logits[rows], labels[rows], task_ids[rows], table)
        torch.testing.assert_close(got, ref)
    # a mixed batch: sum of row weight * row loss / sum of row weights (w_y for mood rows, 1 for the others)
    per_tags = f.binary_cross_entropy_with_logits(logits[tags], labels[tags], pos_weight=pw, reduction="none")
    per_mood = f.cross_entropy(logits[mood, :2], labels[mood, 0].long(), reduction="none")
    w_mood = cw[labels[mood, 0].long()]
    per_rating = (logits[rating, 0] - labels[rating, 0]) ** 2
    expected = (per_tags.mean(dim=1).sum() + (w_mood * per_mood).sum() + per_rating.sum()) / (
        int(tags.sum()) + w_mood.sum() + int(rating.sum())
    )
    got = weighted_task_loss(model, logits, labels, task_ids, table)
    torch.testing.assert_close(got, expected)
    got.backward()
    assert torch.isfinite(logits.grad).all()
    # no weights: the model's own mean loss
    ones = torch.ones_like(table)
    torch.testing.assert_close(
        weighted_task_loss(model, logits, labels, task_ids, ones),
        model.loss_per_row(logits, labels, task_ids).mean(),
    )
    # bf16 logits: the loss is fp32, equal to the loss of the same (upcast) values
    half = logits.detach().bfloat16()
    out = weighted_task_loss(model, half, labels, task_ids, table)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, weighted_task_loss(model, half.float(), labels, task_ids, table))


def test_trainer_compute_loss_applies_the_table(tmp_path):
    from transformers import TrainingArguments

    from surgellm_hf.training.trainer import SurgeTrainer

    torch.manual_seed(2)
    model = _mixed_model()
    table = class_weight_table({"tags": [0.5, 3.0, 1.5], "mood": [0.25, 2.0]}, TASKS)
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    inputs = {
        "input_ids": torch.randint(1, 99, (4, 6)),
        "attention_mask": torch.ones(4, 6, dtype=torch.long),
        "lexical_features": torch.rand(4, 4),
        "task_ids": torch.tensor([2, 0, 1, 2]),
        "labels": torch.tensor([[1, 0, 0], [0, 1, 1], [0.5, 0, 0], [0, 0, 0]]),
    }
    with torch.no_grad():
        logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        plain = model(**inputs).loss
        weighted = SurgeTrainer(model=model, args=args, class_weights=table).compute_loss(model, dict(inputs))
        unweighted = SurgeTrainer(model=model, args=args).compute_loss(model, dict(inputs))
    expected = weighted_task_loss(model, logits, inputs["labels"], inputs["task_ids"], table)
    torch.testing.assert_close(weighted, expected)
    torch.testing.assert_close(unweighted, plain)
    assert not torch.isclose(weighted, plain)


def test_weighted_loss_single_label_only_batch_with_class_id_labels():
    torch.manual_seed(1)
    tasks = {"b": 3, "a": 2}
    model = _mixed_model(tasks, {"b": "single_label", "a": "single_label"})
    table = class_weight_table({"b": [1.0, 3.0, 0.2], "a": [0.5, 2.0]}, tasks)
    logits = torch.randn(6, 3)
    logits[3:, 2] = torch.finfo(torch.float32).min  # task a's padding column, as the model pads it
    labels = torch.tensor([0, 1, 2, 0, 1, 1])  # 1-D class ids, as a single-label run's collator gives them
    task_ids = torch.tensor([0, 0, 0, 1, 1, 1])
    for rows, t, k in ((slice(0, 3), 0, 3), (slice(3, 6), 1, 2)):
        ref = torch.nn.functional.cross_entropy(logits[rows, :k], labels[rows], weight=table[t, :k])
        torch.testing.assert_close(
            weighted_task_loss(model, logits[rows], labels[rows], task_ids[rows], table), ref
        )
    with pytest.raises(ValueError, match="out of range for task 'a'"):
        weighted_task_loss(model, logits, torch.tensor([0, 1, 2, 0, 1, 2]), task_ids, table)


def test_balanced_pos_weights_by_hand():
    rows = [[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 0, 0]]
    # red 3 of 5 positive -> 2/3, green 1 of 5 -> 4, blue 2 of 5 -> 3/2
    assert balanced_pos_weights(rows, 3) == pytest.approx([2 / 3, 4.0, 1.5])
    with pytest.raises(ValueError, match=r"task 'tags': label 'green' has no positive training row"):
        balanced_pos_weights([[1, 0, 1], [0, 0, 1]], 3, "tags", TAGS)
    with pytest.raises(ValueError, match=r"task 'tags': label 'red' has no negative training row"):
        balanced_pos_weights([[1, 1, 1], [1, 0, 1]], 3, "tags", TAGS)


def test_resolve_mixed_types():
    labels = {
        "tags": [[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 0, 0]],
        "rating": [[0.5], [1.5], [2.0], [3.0]],
        "mood": [[0.0], [0.0], [0.0], [1.0]],  # single-label ids as a mixed run stores them
    }
    names = {"tags": TAGS, "mood": ["neg", "pos"]}
    got = resolve_class_weights("balanced", TASKS, labels, names, TYPES)
    assert list(got) == ["tags", "mood"]  # regression tasks get none; task order
    assert got["tags"] == pytest.approx([1.0, 3.0, 1.0])
    assert got["mood"] == pytest.approx([4 / 6, 2.0])
    assert class_weights_applied(got, TYPES, list(TASKS)) == {
        "tags": "pos_weight",
        "rating": "none (regression)",
        "mood": "class weight",
    }
    # the mapping's order does not matter; explicit multi-label values are pos_weights
    explicit = resolve_class_weights({"mood": "balanced", "tags": [1, 2, 3]}, TASKS, labels, names, TYPES)
    assert list(explicit) == ["tags", "mood"] and explicit["tags"] == [1.0, 2.0, 3.0]
    assert class_weights_applied({"tags": [1, 2, 3]}, TYPES, list(TASKS))["mood"] == "none (not listed)"
    with pytest.raises(ValueError, match=r"names regression task\(s\) \['rating'\]"):
        resolve_class_weights({"rating": "balanced"}, TASKS, labels, names, TYPES)
    with pytest.raises(ValueError, match=r"names regression task\(s\) \['rating'\]"):
        resolve_class_weights({"rating": [1.0]}, TASKS, labels, names, TYPES)
    with pytest.raises(
        ValueError,
        match=r"task 'tags' has 2 value\(s\) but the task has 3 labels \['red', 'green', 'blue'\] "
        r"\(one pos_weight per label",
    ):
        resolve_class_weights({"tags": [1, 2]}, TASKS, labels, names, TYPES)
    no_blue = dict(labels, tags=[[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]])
    with pytest.raises(ValueError, match=r"multi-label task 'tags': label 'blue' has no positive"):
        resolve_class_weights("balanced", TASKS, no_blue, names, TYPES)


@pytest.mark.parametrize(
    "bad", [[1.0, 0.0], [-1.0, 2.0], [float("nan"), 1.0], [float("inf"), 1.0], [True, 1.0]]
)
def test_bad_values_are_refused_naming_the_task(bad):
    with pytest.raises(ValueError, match=r"class_weights of task 'mood' must be finite numbers > 0"):
        resolve_class_weights({"mood": bad}, TASKS, {}, None, TYPES)
    with pytest.raises(ValueError, match=r"class_weights of task 'mood' must be finite numbers > 0"):
        RunConfig(data={"folder": "x"}, class_weights={"mood": bad})


def test_class_weights_and_sampling_change_the_comparable_settings():
    base = comparable_settings(RunConfig(data={"folder": "x"}))
    assert base["task_sampling"] == "proportional" and base["temperature"] is None
    assert base["class_weights"] is None and base["lora"] is None
    other = comparable_settings(RunConfig(data={"folder": "x"}, class_weights="balanced"))
    assert other["class_weights"] == "balanced"
    hot = comparable_settings(RunConfig(data={"folder": "x"}, task_sampling="temperature", temperature=3))
    assert hot["temperature"] == 3.0


def _config(tmp_path: Path, encoder: Path, **overrides) -> Path:
    data = {"max_rows": {"train": 40, "validation": 16, "test": 16}}
    return write_run_config(tmp_path, encoder, data=data, **{"batch_size": 8, **overrides})


def test_wrong_length_is_refused_before_anything_is_written(tmp_path, tiny_bert_with_tokenizer):
    cfg = load_run_config(_config(tmp_path, tiny_bert_with_tokenizer, class_weights={"register": [1, 2, 3]}))
    with pytest.raises(ValueError, match="class_weights of task 'register' has 3 value"):
        train_run(cfg)
    assert not (tmp_path / "runs").exists()


def test_run_records_sampling_and_class_weights(tmp_path, tiny_bert_with_tokenizer):
    from surgellm_hf import SurgeForSequenceClassification
    from surgellm_hf.hub import SurgeModelCardData

    cfg = load_run_config(
        _config(
            tmp_path,
            tiny_bert_with_tokenizer,
            task_sampling="temperature",
            temperature=3,
            class_weights={"reviews": "balanced", "register": [1.0, 2.5]},
        )
    )
    run = train_run(cfg)
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["task_sampling"] == "temperature" and saved["temperature"] == 3.0
    assert saved["class_weights"]["register"] == [1.0, 2.5]
    w = saved["class_weights"]["reviews"]  # n / (K * n_c): the inverse weights sum to K
    assert len(w) == 2 and sum(1 / x for x in w) == pytest.approx(2.0)
    training = json.loads((run / "metrics.json").read_text())["training"]
    assert training["task_sampling"] == "temperature" and training["class_weights"] == saved["class_weights"]
    card = SurgeModelCardData.from_run(run, SurgeForSequenceClassification.from_pretrained(run))
    text = str(card.to_model_card())
    assert "| task_sampling | temperature |" in text and "register=[1.0, 2.5]" in text
    # another rule on the same folder is another configuration
    other = load_run_config(_config(tmp_path, tiny_bert_with_tokenizer, task_sampling="equal"))
    with pytest.raises(ValueError, match="task_sampling: saved"):
        train_run(other)


def _write_mixed_data(root: Path) -> dict[str, dict]:
    """16/8/8 rows per task: tags red on even rows, green on every 4th, blue on rows i % 8 < 3; mood 1 on every
    4th row; rating i % 5 + 0.5."""
    for split, n in (("train", 16), ("validation", 8), ("test", 8)):
        rows = {"tags": [], "rating": [], "mood": []}
        for i in range(n):
            hot = [i % 2 == 0, i % 4 == 0, i % 8 < 3]
            words = " ".join(t for t, h in zip(TAGS, hot) if h)
            rows["tags"].append(
                {"id": f"t{i}", "text": f"{words} item {i}", "label": [t for t, h in zip(TAGS, hot) if h]}
            )
            rows["rating"].append({"id": f"r{i}", "text": "great " * (i % 5) + "plain", "label": i % 5 + 0.5})
            rows["mood"].append(
                {"id": f"m{i}", "text": "happy" if i % 4 == 0 else "sad", "label": int(i % 4 == 0)}
            )
        for task, task_rows in rows.items():
            (root / task).mkdir(parents=True, exist_ok=True)
            (root / task / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in task_rows))
    return {
        "tags": {"source": str(root / "tags"), "problem_type": "multi_label", "label_names": TAGS},
        "rating": {"source": str(root / "rating"), "problem_type": "regression"},
        "mood": {"source": str(root / "mood"), "label_names": ["neg", "pos"]},
    }


def test_mixed_run_with_balanced_weights_trains_and_records_them(tmp_path, tiny_bert_with_tokenizer, capsys):
    from surgellm_hf.cli import main
    from surgellm_hf.hub import SurgeModelCardData

    cfg = {
        "encoder": str(tiny_bert_with_tokenizer),
        "data": {"tasks": _write_mixed_data(tmp_path / "data")},
        "variant": "IWN",
        "epochs": 1,
        "learning_rate": 1e-3,
        "batch_size": 8,
        "max_length": 24,
        "prefix_style": "tokens",  # pinned: the text prefix needs max_length >= 86
        "disable_tqdm": True,
        "class_weights": "balanced",
        "output_dir": str(tmp_path / "runs" / "{variant}-seed{seed}"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--config", str(path)]) == 0
    run = tmp_path / "runs" / "IWN-seed0"
    # by hand: tags red 8/16 positive -> 8/8, green 4/16 -> 12/4, blue 6/16 -> 10/6; mood 12 neg / 4 pos -> 16/(2*12),
    # 16/(2*4); rating (regression) none
    expected = {"tags": [1.0, 3.0, 10 / 6], "mood": [16 / 24, 2.0]}
    applied = {"tags": "pos_weight", "rating": "none (regression)", "mood": "class weight"}
    saved = json.loads((run / "run_config.json").read_text())
    assert list(saved["class_weights"]) == ["tags", "mood"]
    for task, weights in expected.items():
        assert saved["class_weights"][task] == pytest.approx(weights)
    assert list(saved["class_weights_applied"].items()) == list(applied.items())
    metrics = json.loads((run / "metrics.json").read_text())
    training = metrics["training"]
    assert training["class_weights"] == saved["class_weights"]
    assert training["class_weights_applied"] == saved["class_weights_applied"]
    assert metrics["task_order"] == list(TASKS) and len(metrics["validation_history"]) == 1
    model = SurgeForSequenceClassification.from_pretrained(run)
    assert model.config.task_problem_types == TYPES
    text = str(SurgeModelCardData.from_run(run, model).to_model_card())
    assert "tags=pos_weight, rating=none (regression), mood=class weight" in text
    # naming the regression task explicitly is refused before anything is written
    cfg["class_weights"] = {"mood": "balanced", "rating": "balanced"}
    cfg["output_dir"] = str(tmp_path / "other" / "{variant}-seed{seed}")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--config", str(path)]) == 2
    assert "names regression task(s) ['rating']" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
