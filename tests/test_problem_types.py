"""Per-task problem types: single-label, multi-label (BCE with logits, threshold) and regression (MSE).

One mixed-type run trains end to end through `surgellm train` on a tiny encoder; the losses are checked against
torch functions computed independently per row, the metrics against scikit-learn/scipy, the IWN statistics against a
hand computation; save/load, the Auto classes, the pipeline and remote code keep the types; bad input is refused.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig

from surgellm_hf import SurgeConfig, SurgeForSequenceClassification
from surgellm_hf.cli import main
from surgellm_hf.data.data_collator import SurgeDataCollator
from surgellm_hf.data.loading import load_run_data, load_tasks
from surgellm_hf.data.task_spec import TaskSpec
from surgellm_hf.evaluation.metrics import (
    multi_label_metrics,
    primary_score,
    regression_metrics,
    summarize_tasks,
)
from surgellm_hf.normalization import fit_normalizer, label_matrix, regression_bins
from surgellm_hf.training.class_weights import resolve_class_weights
from surgellm_hf.training.trainer import build_compute_metrics

# Not alphabetical: task ids follow the given order.
TASKS = {"topics": 3, "score": 1, "sentiment": 2}
TYPES = {"topics": "multi_label", "score": "regression", "sentiment": "single_label"}
TOPICS = ["sports", "politics", "tech"]
WORDS = {"sports": "goal match team", "politics": "vote law senate", "tech": "code chip robot"}


def _config(**kwargs) -> SurgeConfig:
    encoder = BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    kwargs.setdefault("tasks", dict(TASKS))
    kwargs.setdefault("task_problem_types", dict(TYPES))
    kwargs.setdefault("norm", "none")
    kwargs.setdefault("num_features", 4)
    return SurgeConfig(encoder_config=encoder, **kwargs)


def _model(seed: int = 0, **kwargs) -> SurgeForSequenceClassification:
    torch.manual_seed(seed)
    return SurgeForSequenceClassification(_config(**kwargs)).eval()


def _inputs(n: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, 99, (n, 7), generator=g),
        "attention_mask": torch.ones(n, 7, dtype=torch.long),
        "lexical_features": torch.rand(n, 4, generator=g),
    }


# rows: topics (multi-hot), score (target), sentiment (class), in the padded layout of a mixed batch
MIXED_TASK_IDS = torch.tensor([0, 1, 2, 0, 1, 2])
MIXED_LABELS = torch.tensor(
    [[1, 0, 1], [2.5, 0, 0], [1, 0, 0], [0, 0, 0], [-1.25, 0, 0], [0, 0, 0]], dtype=torch.float32
)


# --------------------------------------------------------------------------------------------------- config


def test_config_round_trip_keeps_types_thresholds_and_order(tmp_path):
    config = _config(task_thresholds={"topics": 0.3})
    assert config.problem_type == "multi_label_classification"  # the default task (first) is multi-label
    assert config.task_thresholds == {"topics": 0.3}
    assert config.label_names("score") == ["LABEL_0"]
    saved = config.to_dict()
    assert saved["task_problem_types"] == [[n, TYPES[n]] for n in TASKS]
    assert saved["task_thresholds"] == [["topics", 0.3]]
    config.save_pretrained(tmp_path)
    loaded = SurgeConfig.from_pretrained(tmp_path)
    assert list(loaded.tasks.items()) == list(TASKS.items())
    assert loaded.task_problem_types == TYPES and list(loaded.task_problem_types) == list(TASKS)
    assert loaded.task_thresholds == {"topics": 0.3}
    assert SurgeConfig(**{**saved, "encoder_config": config.encoder_config}).task_problem_types == TYPES
    regression_first = _config(default_task="score")
    assert regression_first.problem_type == "regression" and regression_first.num_labels == 1


def test_configs_without_types_load_as_single_label(tmp_path):
    config = _config(tasks={"b": 2, "a": 3}, task_problem_types=None)
    saved = config.to_dict()
    for key in ("task_problem_types", "task_thresholds", "problem_type"):
        saved.pop(key)  # a config written before per-task types
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = SurgeConfig.from_pretrained(tmp_path)
    assert loaded.task_problem_types == {"b": "single_label", "a": "single_label"}
    assert loaded.problem_type == "single_label_classification"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task_problem_types": {"score": "ordinal"}}, "each type must be one of"),
        ({"task_problem_types": {"nope": "regression"}}, "unknown task"),
        ({"tasks": {"score": 2}, "task_problem_types": {"score": "regression"}}, "one output"),
        ({"tasks": {"s": 1}, "task_problem_types": None}, "needs >= 2 labels"),
        ({"task_thresholds": {"sentiment": 0.5}}, "not multi-label"),
        ({"task_thresholds": {"topics": 1.5}}, r"in \(0, 1\)"),
        ({"problem_type": "regression"}, "contradicts the per-task types"),
        ({"problem_type": "ordinal"}, "is not one of transformers'"),
    ],
)
def test_config_refuses_bad_types(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _config(**kwargs)


def test_problem_type_on_from_pretrained(tmp_path):
    _model().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="contradicts the per-task types"):
        SurgeForSequenceClassification.from_pretrained(tmp_path, problem_type="single_label_classification")
    same = SurgeForSequenceClassification.from_pretrained(tmp_path, problem_type="multi_label_classification")
    assert same.config.task_problem_types == TYPES


def test_from_pretrained_with_tasks_keeps_the_saved_types_and_thresholds(tmp_path):
    """from_pretrained(path, tasks=[...]), what the message for an old unordered config recommends, keeps the saved
    problem types and thresholds of the tasks it names (a multi-label task used to come back single-label)."""
    model = _model(task_thresholds={"topics": 0.3})
    model.save_pretrained(tmp_path / "run")
    order = [[name, count] for name, count in TASKS.items()]  # topics, score, sentiment: not alphabetical
    assert [n for n, _ in order] != sorted(TASKS)
    inputs, task_ids = _inputs(6), MIXED_TASK_IDS
    with torch.no_grad():
        want = model(**inputs, task_ids=task_ids).logits
    again = SurgeForSequenceClassification.from_pretrained(tmp_path / "run", tasks=order).eval()
    assert again.config.task_problem_types == TYPES and again.config.task_thresholds == {"topics": 0.3}
    assert again.config.problem_type == "multi_label_classification"
    # a config as surgellm_hf 0.1 wrote it: mappings, keys sorted by the JSON writer
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.safetensors").write_bytes((tmp_path / "run" / "model.safetensors").read_bytes())
    raw = json.loads((tmp_path / "run" / "config.json").read_text())
    raw.update(
        tasks=dict(sorted(TASKS.items())),
        task_problem_types=dict(sorted(TYPES.items())),
        task_thresholds={"topics": 0.3},
    )
    raw.pop("problem_type")
    (old / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="Pass the training order explicitly"):
        SurgeForSequenceClassification.from_pretrained(old)
    loaded = SurgeForSequenceClassification.from_pretrained(old, tasks=order).eval()
    assert list(loaded.config.task_problem_types.items()) == list(TYPES.items())
    assert loaded.config.task_thresholds == {"topics": 0.3}
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs, task_ids=task_ids).logits, want)
    # a label count that contradicts a saved type is refused, naming the task and its type
    wrong = [["topics", 3], ["score", 2], ["sentiment", 2]]
    with pytest.raises(ValueError, match="gives task 'score' 2 label.*makes it a regression task"):
        SurgeConfig.from_pretrained(old, tasks=wrong)
    # an explicit task_problem_types still decides
    retyped = SurgeConfig.from_pretrained(old, tasks=wrong, task_problem_types={"topics": "multi_label"})
    assert retyped.task_problem_types == {
        "topics": "multi_label",
        "score": "single_label",
        "sentiment": "single_label",
    }


# ----------------------------------------------------------------------------------------------------- losses


def _reference_losses(logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
    """Each row's loss with torch's own functions, one row at a time."""
    out = []
    for row, y, t in zip(logits.float(), labels, task_ids.tolist()):
        name = list(TASKS)[t]
        k = TASKS[name]
        if TYPES[name] == "single_label":
            out.append(torch.nn.functional.cross_entropy(row[:k].unsqueeze(0), y[:1].long()))
        elif TYPES[name] == "multi_label":
            out.append(torch.nn.functional.binary_cross_entropy_with_logits(row[:k], y[:k]))
        else:
            out.append(torch.nn.functional.mse_loss(row[:1], y[:1]))
    return torch.stack(out)


def test_mixed_batch_loss_is_the_mean_of_per_row_losses():
    model = _model()
    out = model(**_inputs(6), task_ids=MIXED_TASK_IDS, labels=MIXED_LABELS)
    expected = _reference_losses(out.logits.detach(), MIXED_LABELS, MIXED_TASK_IDS)
    torch.testing.assert_close(out.loss.detach(), expected.mean())
    per_row = model.loss_per_row(out.logits.detach(), MIXED_LABELS, MIXED_TASK_IDS)
    torch.testing.assert_close(per_row, expected)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_homogeneous_batches_take_transformers_label_formats():
    model = _model()
    inputs = _inputs(3)
    single = torch.tensor([1, 0, 1])
    out = model(**inputs, task_ids=torch.full((3,), 2), labels=single)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits[:, :2].float(), single))
    target = torch.tensor([0.5, -2.0, 3.0])
    for labels in (target, target.view(-1, 1)):
        out = model(**inputs, task_ids=torch.full((3,), 1), labels=labels)
        torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits[:, 0].float(), target))
    multi_hot = torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1]])
    out = model(**inputs, task_ids=torch.zeros(3, dtype=torch.long), labels=multi_hot)
    torch.testing.assert_close(
        out.loss,
        torch.nn.functional.binary_cross_entropy_with_logits(out.logits[:, :3].float(), multi_hot),
    )


def test_bf16_autocast_loss_is_fp32_and_matches():
    model = _model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**_inputs(6), task_ids=MIXED_TASK_IDS, labels=MIXED_LABELS)
    assert out.logits.dtype == torch.bfloat16 and out.loss.dtype == torch.float32
    expected = _reference_losses(out.logits.detach(), MIXED_LABELS, MIXED_TASK_IDS).mean()
    torch.testing.assert_close(out.loss.detach(), expected)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            [[1, 0, 2], [2.5, 0, 0], [1, 0, 0]],
            r"Multi-hot labels of task 'topics' must be 0 or 1; batch row 0",
        ),
        ([[1, 0, 1], [float("nan"), 0, 0], [1, 0, 0]], "Regression target nan of task 'score'"),
        ([[1, 0, 1], [1.0, 0, 0], [2, 0, 0]], "Label 2 out of range for task 'sentiment'"),
        ([[1, 0, 1], [1.0, 0, 0], [0.5, 0, 0]], "Label 0.5 out of range for task 'sentiment'"),
        ([1.0, 2.0, 1.0], "Multi-label task 'topics' has 3 labels but `labels` has 1 column"),
    ],
)
def test_bad_labels_are_refused_before_the_encoder(labels, message):
    with pytest.raises(ValueError, match=message):
        _model()(**_inputs(3), task_ids=torch.tensor([0, 1, 2]), labels=torch.tensor(labels))


def test_export_sees_no_data_dependent_control_flow_with_mixed_labels():
    model = _model()
    args = dict(_inputs(6), task_ids=MIXED_TASK_IDS, labels=MIXED_LABELS)

    class Loss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, lexical_features, task_ids, labels):
            out = self.model(input_ids, attention_mask, None, lexical_features, task_ids, labels)
            return out.loss, out.logits

    exported = torch.export.export(Loss(), (), kwargs=args)
    loss, _ = exported.module()(**args)
    torch.testing.assert_close(loss, model(**args).loss)


# ---------------------------------------------------------------------------------------------- collator, IWN


def test_collator_pads_mixed_label_rows():
    collator = SurgeDataCollator(tokenizer=None)
    batch = collator(
        [
            {"task_ids": 0, "labels": [1.0, 0.0, 1.0]},
            {"task_ids": 1, "labels": [2.5]},
            {"task_ids": 2, "labels": [1.0]},
        ]
    )
    assert batch["labels"].dtype == torch.float32
    torch.testing.assert_close(batch["labels"], torch.tensor([[1.0, 0, 1], [2.5, 0, 0], [1, 0, 0]]))
    assert collator([{"task_ids": 0, "labels": 1}])["labels"].dtype == torch.long


def _by_hand_iwn(rows: np.ndarray, groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    means = [rows[g].mean(axis=0) for g in groups]
    stds = [rows[g].std(axis=0) for g in groups]
    return sum(means) / len(means), sum(stds) / len(stds)


def test_iwn_per_problem_type_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(24, 3))
    task_ids = np.repeat([0, 1, 2], 8)
    multi_hot = rng.integers(0, 2, size=(8, 3)).astype(float)
    multi_hot[0], multi_hot[1] = [1, 1, 1], [0, 0, 0]  # every label has a positive and a negative row
    targets = np.array([0.1, 0.5, 0.2, 3.0, 2.0, 0.9, 1.5, 2.5])
    classes = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    labels = [list(r) for r in multi_hot] + [[v] for v in targets] + [[float(c)] for c in classes]
    mean, std = fit_normalizer(
        feats,
        labels,
        task_ids,
        3,
        problem_types=["multi_label", "regression", "single_label"],
        num_labels=[3, 1, 2],
        num_bins=4,
    )
    rows = feats[:8]
    per_label = [_by_hand_iwn(rows, [multi_hot[:, j] == 1, multi_hot[:, j] == 0]) for j in range(3)]
    np.testing.assert_allclose(mean[0], np.mean([m for m, _ in per_label], axis=0), rtol=1e-5)
    np.testing.assert_allclose(std[0], np.mean([s for _, s in per_label], axis=0), rtol=1e-5)
    # quartile edges of the targets: 0.45, 1.2, 2.125 -> bins by hand
    hand_bins = np.array([0, 1, 0, 3, 2, 1, 2, 3])
    np.testing.assert_array_equal(regression_bins(targets, 4), hand_bins)
    m, s = _by_hand_iwn(feats[8:16], [hand_bins == b for b in range(4)])
    np.testing.assert_allclose(mean[1], m, rtol=1e-5)
    np.testing.assert_allclose(std[1], s, rtol=1e-5)
    m, s = _by_hand_iwn(feats[16:], [classes == 0, classes == 1])
    np.testing.assert_allclose(mean[2], m, rtol=1e-5)
    np.testing.assert_allclose(std[2], s, rtol=1e-5)
    standard, _ = fit_normalizer(feats, None, task_ids, 3, method="standard")
    np.testing.assert_allclose(standard[1], feats[8:16].mean(axis=0), rtol=1e-5)


def test_iwn_refuses_a_label_without_negatives_and_tied_targets():
    feats = np.random.default_rng(0).normal(size=(4, 2))
    with pytest.raises(ValueError, match="task 'topics': label 1 has no negative training row"):
        fit_normalizer(
            feats, [[1, 1], [0, 1], [1, 1], [0, 1]], np.zeros(4), 1,
            task_names=["topics"], problem_types=["multi_label"], num_labels=[2],
        )  # fmt: skip
    with pytest.raises(ValueError, match="task 'score'.*one quantile bin"):
        fit_normalizer(
            feats, [1.0, 1.0, 1.0, 1.0], np.zeros(4), 1, task_names=["score"], problem_types=["regression"]
        )
    # ties merge bins: three equal targets and one larger give two bins
    bins = regression_bins(np.array([1.0, 1.0, 1.0, 5.0]), 4)
    np.testing.assert_array_equal(np.unique(bins, return_inverse=True)[1], [0, 0, 0, 1])


# ------------------------------------------------------------------------------------------------------- metrics


def test_metrics_match_scikit_learn_and_scipy():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    prob = np.array([[0.9, 0.2, 0.4], [0.1, 0.7, 0.1], [0.6, 0.3, 0.2], [0.2, 0.1, 0.8]])
    m = multi_label_metrics(y, prob, threshold=0.35)
    pred = (prob >= 0.35).astype(int)
    assert m["micro_f1"] == pytest.approx(f1_score(y, pred, average="micro"))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(y, pred))
    target, value = np.array([1.0, 2.0, 3.0, 4.5]), np.array([1.2, 1.9, 3.5, 4.0])
    r = regression_metrics(target, value)
    assert r["pearson"] == pytest.approx(pearsonr(target, value)[0])
    assert r["spearman"] == pytest.approx(spearmanr(target, value)[0])
    assert r["rmse"] == pytest.approx(math.sqrt(np.mean((target - value) ** 2)))
    assert primary_score(r) == pytest.approx((r["pearson"] + r["spearman"]) / 2)
    summary = summarize_tasks({"topics": m, "score": r})
    assert summary["avg_macro_f1"] == pytest.approx((m["macro_f1"] + primary_score(r)) / 2)


def test_compute_metrics_on_a_mixed_evaluation_set():
    from transformers import EvalPrediction

    logits = np.array(
        [[2.0, -1.0, 0.5], [1.5, -3e38, -3e38], [0.2, 0.9, -3e38], [-2.0, 3.0, -0.1], [0.7, -3e38, -3e38],
         [1.0, -1.0, -3e38], [0.0, 0.0, 2.0], [-0.5, -3e38, -3e38], [0.3, 0.1, -3e38]]
    )  # fmt: skip
    task_ids = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    labels = np.array(
        [[1, 0, 1], [2.0, -100, -100], [1, -100, -100], [0, 1, 0], [0.5, -100, -100], [0, -100, -100],
         [0, 0, 1], [-1.0, -100, -100], [0, -100, -100]]
    )  # fmt: skip  # padding as the Trainer concatenates batches of different widths
    result = build_compute_metrics(TASKS, TYPES, {"topics": 0.5})(
        EvalPrediction(predictions=logits, label_ids=(labels, task_ids))
    )
    sig = 1 / (1 + np.exp(-logits[task_ids == 0]))
    y_multi = labels[task_ids == 0].astype(int)
    assert result["topics_micro_f1"] == pytest.approx(f1_score(y_multi, sig >= 0.5, average="micro"))
    reg_y, reg_p = labels[task_ids == 1, 0], logits[task_ids == 1, 0]
    assert result["score_pearson"] == pytest.approx(pearsonr(reg_y, reg_p)[0])
    single_pred = logits[task_ids == 2, :2].argmax(axis=1)
    f1_single = f1_score(labels[task_ids == 2, 0].astype(int), single_pred, average="macro")
    assert result["sentiment_macro_f1"] == pytest.approx(f1_single)
    reg_primary = (pearsonr(reg_y, reg_p)[0] + spearmanr(reg_y, reg_p)[0]) / 2
    multi_f1 = f1_score(y_multi, sig >= 0.5, average="macro", zero_division=0)
    assert result["avg_macro_f1"] == pytest.approx(np.mean([multi_f1, reg_primary, f1_single]))


@pytest.mark.parametrize(
    ("target", "value", "reason"),
    [
        ([1.5, 1.5, 1.5], [0.2, 0.9, 0.4], "the targets are constant (1.5)"),
        ([1.0, 2.0, 3.0], [0.7, 0.7, 0.7], "the predictions are constant (0.7)"),
        ([2.0], [1.0], "1 row(s): a correlation needs at least 2"),
    ],
)
def test_an_undefined_correlation_counts_zero_and_says_why(target, value, reason, caplog):
    """The rule: undefined Pearson/Spearman stay NaN (null in metrics.json) and count 0 in the primary score."""
    from surgellm_hf.evaluation.metrics import correlation_undefined_reason, undefined_scores

    r = regression_metrics(target, value)
    assert math.isnan(r["pearson"]) and math.isnan(r["spearman"])
    assert r["rmse"] == pytest.approx(math.sqrt(np.mean((np.array(target) - np.array(value)) ** 2)))
    assert primary_score(r) == 0.0
    f1 = {"macro_f1": 0.8, "accuracy": 0.9}
    assert summarize_tasks({"score": r, "sentiment": f1})["avg_macro_f1"] == pytest.approx(0.4)
    assert correlation_undefined_reason(target, value) == reason
    preds = {"score": {"validation": {"y_true": np.array(target), "y_pred": np.array(value)}}}
    notes = undefined_scores({"score": {"validation": r}, "sentiment": {"validation": f1}}, preds)
    assert notes == {
        "score": {"validation": f"Pearson and Spearman undefined ({reason}); counted 0 in avg_macro_f1"}
    }
    # compute_metrics (early stopping's score) is defined, and warns naming the task and the reason
    logits = np.array([[v, -3e38] for v in value] + [[2.0, -1.0], [-1.0, 2.0]])
    labels = np.array([[t, -100.0] for t in target] + [[0, -100.0], [1, -100.0]])
    task_ids = np.array([0] * len(target) + [1, 1])
    from transformers import EvalPrediction

    with caplog.at_level("WARNING"):
        result = build_compute_metrics({"score": 1, "sentiment": 2}, {"score": "regression"})(
            EvalPrediction(predictions=logits, label_ids=(labels, task_ids))
        )
    assert result["avg_macro_f1"] == pytest.approx((0.0 + 1.0) / 2)
    assert f"task 'score': Pearson and Spearman undefined ({reason})" in caplog.text


def test_outputs_that_are_not_finite_name_the_task():
    from transformers import EvalPrediction

    logits = np.array([[float("nan"), 0.0], [0.3, 0.1], [1.0, 0.0]])
    labels, task_ids = np.array([[0, -100.0], [1, -100.0], [0.5, -100.0]]), np.array([0, 0, 1])
    with pytest.raises(ValueError, match="task 'sentiment': the model's outputs are NaN or infinite"):
        build_compute_metrics({"sentiment": 2, "score": 1}, {"score": "regression"})(
            EvalPrediction(predictions=logits, label_ids=(labels, task_ids))
        )


def test_constant_validation_targets_train_to_a_defined_average(tmp_path, tiny_bert_with_tokenizer):
    """A regression task whose validation targets are all equal: the run finishes with a defined average (it used
    to end in 'Out of range float values are not JSON compliant' after training, without metrics.json)."""
    specs = _mixed_data(tmp_path / "data")
    rows = _score_rows(12, 1)
    _write_jsonl(tmp_path / "data" / "score" / "validation.jsonl", [{**r, "label": 1.5} for r in rows])
    cfg = {
        "encoder": str(tiny_bert_with_tokenizer),
        "data": {"tasks": specs},
        "epochs": 2,
        "learning_rate": 1e-3,
        "batch_size": 8,
        "max_length": 32,
        "prefix_style": "tokens",
        "disable_tqdm": True,
        "output_dir": str(tmp_path / "runs" / "{variant}"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--config", str(path)]) == 0
    text = (tmp_path / "runs" / "IWN" / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    record = json.loads(text)
    validation = {t: record["tasks"][t]["validation"] for t in TASKS}
    assert validation["score"]["pearson"] is None and validation["score"]["spearman"] is None
    expected = np.mean([validation["topics"]["macro_f1"], 0.0, validation["sentiment"]["macro_f1"]])
    assert record["avg_macro_f1"]["validation"] == pytest.approx(expected)
    assert record["undefined_scores"] == {
        "score": {"validation": "Pearson and Spearman undefined (the targets are constant (1.5)); counted 0 in "
                  "avg_macro_f1"}
    }  # fmt: skip
    history = [h["avg_macro_f1"] for h in record["validation_history"]]
    assert len(history) == 2 and all(math.isfinite(h) for h in history)
    assert record["training"]["best_validation_avg_macro_f1"] == max(history)


def test_class_weights_naming_a_regression_task_are_refused():
    with pytest.raises(ValueError, match=r"names regression task"):
        resolve_class_weights({"score": "balanced"}, TASKS, {}, problem_types=TYPES)


# ---------------------------------------------------------------------------------------------------- data


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _topic_rows(n: int, seed: int, as_names: bool) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hot = rng.integers(0, 2, size=3)
        hot[i % 3] = 1
        if i % 4 == 3:
            hot[(i + 1) % 3] = 0
        text = " ".join(WORDS[t] for t, h in zip(TOPICS, hot) if h) + f" item {i}"
        label = [t for t, h in zip(TOPICS, hot) if h] if as_names else hot.tolist()
        rows.append({"id": f"t{seed}-{i}", "text": text, "label": label})
    return rows


def _score_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = int(rng.integers(0, 4))
        rows.append(
            {"id": f"s{seed}-{i}", "text": ("great " * k + "plain words here").strip(), "label": k + 0.5}
        )
    return rows


def _sentiment_rows(n: int, seed: int) -> list[dict]:
    return [
        {"id": f"p{seed}-{i}", "text": "good happy fine" if i % 2 else "bad sad awful", "label": i % 2}
        for i in range(n)
    ]


def _mixed_data(root: Path) -> dict[str, dict]:
    for split, n, seed in (("train", 24, 0), ("validation", 12, 1), ("test", 12, 2)):
        _write_jsonl(root / "topics" / f"{split}.jsonl", _topic_rows(n, seed, as_names=split != "test"))
        _write_jsonl(root / "score" / f"{split}.jsonl", _score_rows(n, seed))
        _write_jsonl(root / "sentiment" / f"{split}.jsonl", _sentiment_rows(n, seed))
    return {
        "topics": {"source": str(root / "topics"), "problem_type": "multi_label", "label_names": TOPICS,
                   "threshold": 0.4},
        "score": {"source": str(root / "score"), "problem_type": "regression"},
        "sentiment": {"source": str(root / "sentiment"), "label_names": ["negative", "positive"]},
    }  # fmt: skip


def test_loading_parses_names_and_multi_hot_vectors_into_one_column_type(tmp_path):
    data = load_tasks(_mixed_data(tmp_path / "data"))
    assert data.task_names == list(TASKS)
    assert data.tasks_config() == TASKS
    assert data.problem_types == TYPES and data.thresholds == {"topics": 0.4}
    topics = data["topics"]
    raw = [json.loads(line) for line in (tmp_path / "data/topics/train.jsonl").read_text().splitlines()]
    expected = [[float(t in r["label"]) for t in TOPICS] for r in raw]
    assert topics["train"]["label"] == expected
    raw_test = [json.loads(line) for line in (tmp_path / "data/topics/test.jsonl").read_text().splitlines()]
    assert topics["test"]["label"] == [[float(v) for v in r["label"]] for r in raw_test]
    assert data["score"]["train"]["label"][0] == [_score_rows(24, 0)[0]["label"]]
    assert data["sentiment"]["train"]["label"][:2] == [[0.0], [1.0]]
    assert data.label_counts()["topics"]["train"] == np.asarray(expected).sum(axis=0).astype(int).tolist()
    small = data.subsample({"train": 10})
    assert len(small["topics"]["train"]) == 10 and small.problem_types == TYPES
    folder = load_run_data(
        {
            "folder": str(tmp_path / "data"),
            "tasks": list(TASKS),
            "problem_types": {"topics": "multi_label", "score": "regression"},
            "label_names": {"topics": TOPICS},
        }
    )
    assert folder.problem_types == TYPES and folder["topics"]["train"]["label"] == expected


@pytest.mark.parametrize(
    ("task", "label", "message"),
    [
        ("topics", ["sports", "cooking"], r"names not in the task's label set \(rows 0; ids 'bad-0'"),
        ("topics", [1, 0], r"length is not the task's 3 labels \(rows 0; ids 'bad-0'"),
        ("topics", [1, 0, 2], r"values other than 0 and 1 \(rows 0; ids 'bad-0'"),
        ("score", "high", r"not numbers \(rows 0; ids 'bad-0'"),
        ("score", None, r"not numbers \(rows 0; ids 'bad-0'"),
    ],
)
def test_bad_labels_name_task_split_rows_and_ids(tmp_path, task, label, message):
    specs = _mixed_data(tmp_path / "data")
    path = Path(specs[task]["source"]) / "validation.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0].update(id="bad-0", label=label)
    _write_jsonl(path, rows)
    with pytest.raises(ValueError, match=rf"task '{task}', split 'validation'.*{message}"):
        load_tasks(specs)


def test_nan_regression_target_is_refused(tmp_path):
    specs = _mixed_data(tmp_path / "data")
    path = Path(specs["score"]["source"]) / "train.jsonl"
    path.write_text(path.read_text().replace('"label": 0.5', '"label": NaN', 1))
    with pytest.raises(ValueError, match=r"task 'score', split 'train'.*NaN or infinite"):
        load_tasks(specs)


def test_task_spec_problem_type_fields():
    assert (
        TaskSpec.from_dict({"name": "s", "source": "x.jsonl", "problem_type": "regression"}).num_labels
        is None
    )
    with pytest.raises(ValueError, match="problem_type must be one of"):
        TaskSpec(name="s", source="x.jsonl", problem_type="ordinal")
    with pytest.raises(ValueError, match="threshold is for multi_label tasks"):
        TaskSpec(name="s", source="x.jsonl", threshold=0.3)
    with pytest.raises(ValueError, match="num_labels of a regression task must be 1"):
        TaskSpec(name="s", source="x.jsonl", problem_type="regression", num_labels=3)


# --------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, tiny_bert_with_tokenizer) -> Path:
    tmp = tmp_path_factory.mktemp("mixed")
    cfg = {
        "encoder": str(tiny_bert_with_tokenizer),
        "data": {"tasks": _mixed_data(tmp / "data")},
        "variant": "IWN",
        "epochs": 2,
        "learning_rate": 1e-3,
        "batch_size": 8,
        "max_length": 32,
        "prefix_style": "tokens",  # pinned: the text prefix needs max_length >= 86
        "seed": 0,
        "disable_tqdm": True,
        "output_dir": str(tmp / "runs" / "{variant}-seed{seed}"),
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--config", str(path)]) == 0
    return tmp / "runs" / "IWN-seed0"


def test_mixed_type_run_trains_and_reports(mixed_run):
    record = json.loads((mixed_run / "metrics.json").read_text())
    assert record["task_order"] == list(TASKS)
    test = {t: record["tasks"][t]["test"] for t in TASKS}
    assert set(test["topics"]) >= {"micro_f1", "macro_f1", "subset_accuracy"}
    assert set(test["score"]) >= {"pearson", "spearman", "rmse"}
    assert set(test["sentiment"]) >= {"macro_f1", "accuracy", "roc_auc"}
    primaries = [
        primary_score({k: float("nan") if v is None else v for k, v in test[t].items()}) for t in TASKS
    ]
    assert record["avg_macro_f1"]["test"] == pytest.approx(float(np.mean(primaries)), nan_ok=True)
    rows = [
        json.loads(line)
        for line in (mixed_run / "predictions" / "topics_test.jsonl").read_text().splitlines()
    ]
    assert all(set(r["y_true"]) <= set(TOPICS) and len(r["score"]) == 3 for r in rows)
    assert all(set(r["y_pred"]) == {t for t, p in zip(TOPICS, r["score"]) if p >= 0.4} for r in rows)
    reg = [
        json.loads(line) for line in (mixed_run / "predictions" / "score_test.jsonl").read_text().splitlines()
    ]
    assert all(isinstance(r["y_pred"], float) and r["y_pred"] == r["score"] for r in reg)
    config = AutoConfig.from_pretrained(mixed_run)
    assert config.task_problem_types == TYPES and config.task_thresholds == {"topics": 0.4}
    model = AutoModelForSequenceClassification.from_pretrained(mixed_run)
    assert model.feature_normalizer_fitted and model.config.problem_type == "multi_label_classification"
    assert "average" in (mixed_run / "report.md").read_text().lower()


def test_pipeline_scores_each_type_as_transformers_does(mixed_run):
    from transformers import pipeline

    clf = pipeline("text-classification", model=str(mixed_run), trust_remote_code=True)
    model, processor = clf.model, clf.processor
    text = "goal match team vote law"

    def logits(task: str) -> np.ndarray:
        with torch.no_grad():
            return model(**processor([text], task=task, return_tensors="pt")).logits[0].float().numpy()

    topics = clf(text, task="topics", top_k=None)
    expected = 1 / (1 + np.exp(-logits("topics")[:3]))
    assert {d["label"]: d["score"] for d in topics} == pytest.approx(dict(zip(TOPICS, expected)), rel=1e-5)
    (score,) = clf(text, task="score")
    assert score["label"] == "LABEL_0" and score["score"] == pytest.approx(
        float(logits("score")[0]), rel=1e-5
    )
    (sentiment,) = clf(text, task="sentiment")
    probs = np.exp(logits("sentiment")[:2]) / np.exp(logits("sentiment")[:2]).sum()
    assert sentiment["score"] == pytest.approx(float(probs.max()), rel=1e-5)


def test_label_matrix_layout():
    np.testing.assert_array_equal(label_matrix([[1, 0, 1], [2.5], [1]]), [[1, 0, 1], [2.5, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(label_matrix(np.array([0, 2])), [[0], [2]])


def test_remote_code_keeps_the_types(mixed_run, tmp_path):
    """A process without surgellm_hf loads the run as remote code: config types, the pipeline's scores and the
    per-type loss of a mixed batch are those of the package."""
    from surgellm_hf.inference import load_run_model
    from tests._helpers import run_isolated

    model, processor = load_run_model(mixed_run)
    texts = ["goal vote", "great great plain", "good happy"]
    inputs = processor(texts, task=list(TASKS), return_tensors="pt", padding=True)
    labels = MIXED_LABELS[:3]
    with torch.no_grad():
        expected = model(**dict(inputs), labels=labels)
    result = run_isolated(
        f"""
        import json, torch
        from transformers import AutoModelForSequenceClassification, AutoProcessor, pipeline
        path = {str(mixed_run)!r}
        model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        inputs = processor({texts!r}, task={list(TASKS)!r}, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model(**dict(inputs), labels=torch.tensor({labels.tolist()!r}))
        clf = pipeline("text-classification", model=path, trust_remote_code=True)
        print(json.dumps({{"loss": float(out.loss), "types": model.config.task_problem_types,
                           "module": type(model).__module__,
                           "score": clf("great great plain", task="score")[0]["score"]}}))
        """,
        tmp_path,
    )
    assert result["module"].startswith("transformers_modules")
    assert result["types"] == TYPES
    assert result["loss"] == pytest.approx(float(expected.loss), rel=1e-5)
    assert result["score"] == pytest.approx(float(expected.logits[1, 0]), rel=1e-4)


def test_predict_texts_and_evaluate_command_per_type(mixed_run, capsys):
    from surgellm_hf.inference import load_run_model, predict_texts

    model, processor = load_run_model(mixed_run)
    texts = ["goal vote", "great great plain", "good happy"]
    records = predict_texts(model, processor, texts, tasks=list(TASKS))
    with torch.no_grad():
        logits = model(**dict(processor(texts, task=list(TASKS), return_tensors="pt", padding=True))).logits
    sig = torch.sigmoid(logits[0, :3]).tolist()
    assert records[0]["scores"] == pytest.approx(dict(zip(TOPICS, sig)), rel=1e-5)
    assert records[0]["label_name"] == [t for t, p in zip(TOPICS, sig) if p >= 0.4]
    assert records[1]["value"] == pytest.approx(float(logits[1, 0]), rel=1e-5) and records[1]["label"] is None
    assert records[2]["label_name"] in ("negative", "positive")
    data = mixed_run.parents[1] / "data"
    assert main(["evaluate", str(mixed_run), "--data", str(data), "--split", "test"]) == 0
    result = json.loads(capsys.readouterr().out)
    saved = json.loads((mixed_run / "metrics.json").read_text())["tasks"]
    for task in TASKS:
        for key, value in result["tasks"][task].items():
            assert value == pytest.approx(saved[task]["test"][key], rel=1e-5, nan_ok=True), (task, key)


def test_model_card_shows_types_and_the_primary_average(mixed_run):
    from surgellm_hf.hub import SurgeModelCardData
    from surgellm_hf.inference import load_run_model

    model, processor = load_run_model(mixed_run)
    card = SurgeModelCardData.from_run(mixed_run, model=model, processor=processor, model_name="me/mixed")
    text = str(card.to_model_card())
    assert "| `topics` | multi-label (threshold 0.4) | 3 | sports, politics, tech |" in text
    assert "| `score` | regression | 1 |" in text
    assert "Pearson r" in text and "micro-F1" in text
    record = json.loads((mixed_run / "metrics.json").read_text())
    primaries = [primary_score(record["tasks"][t]["test"]) for t in TASKS]
    assert f"Average test primary score over tasks: **{np.mean(primaries):.3f}**" in text


def test_evaluate_module_scores_each_type():
    pytest.importorskip("evaluate")
    from surgellm_hf.evaluation.evaluate_metric import load_metric

    multi_true, multi_prob = (
        [[1, 0, 1], [0, 1, 0], [1, 1, 0]],
        [[0.9, 0.2, 0.4], [0.1, 0.7, 0.1], [0.6, 0.3, 0.2]],
    )
    reg_true, reg_pred = [1.0, 2.0, 3.0, 4.5], [1.2, 1.9, 3.5, 4.0]
    single_true, single_pred = [0, 1, 1], [0, 1, 0]
    result = load_metric().compute(
        predictions=multi_prob + [[v] for v in reg_pred] + [[v] for v in single_pred],
        references=multi_true + [[v] for v in reg_true] + [[v] for v in single_true],
        tasks=["topics"] * 3 + ["score"] * 4 + ["sentiment"] * 3,
        problem_types={"topics": "multi_label", "score": "regression"},
        thresholds={"topics": 0.35},
    )
    pred = (np.asarray(multi_prob) >= 0.35).astype(int)
    assert result["topics/micro_f1"] == pytest.approx(f1_score(multi_true, pred, average="micro"))
    assert result["topics/subset_accuracy"] == pytest.approx(accuracy_score(multi_true, pred))
    assert result["score/spearman"] == pytest.approx(spearmanr(reg_true, reg_pred)[0])
    reg_primary = (pearsonr(reg_true, reg_pred)[0] + spearmanr(reg_true, reg_pred)[0]) / 2
    single_f1 = f1_score(single_true, single_pred, average="macro")
    multi_f1 = f1_score(multi_true, pred, average="macro", zero_division=0)
    assert result["avg_macro_f1"] == pytest.approx(np.mean([multi_f1, reg_primary, single_f1]))
    constant = load_metric().compute(  # the package's rule: an undefined correlation counts 0
        predictions=[[0.3], [0.3], [0.3], [1], [0]],
        references=[[1.0], [2.0], [3.0], [1], [0]],
        tasks=["score"] * 3 + ["sentiment"] * 2,
        problem_types={"score": "regression"},
    )
    assert math.isnan(constant["score/pearson"]) and constant["avg_macro_f1"] == pytest.approx(0.5)


def test_frozen_encoder_cached_states_train_a_mixed_run(tmp_path, tiny_bert_with_tokenizer):
    """The frozen-encoder fast path (cached first-token states) carries the padded label rows through."""
    cfg = {
        "encoder": str(tiny_bert_with_tokenizer),
        "data": {"tasks": _mixed_data(tmp_path / "data")},
        "variant": "baseline",
        "epochs": 1,
        "batch_size": 8,
        "max_length": 32,
        "prefix_style": "tokens",  # pinned: the text prefix needs max_length >= 86
        "freeze_encoder": True,
        "cache_encoder_outputs": True,
        "disable_tqdm": True,
        "output_dir": str(tmp_path / "runs" / "{variant}"),
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--config", str(path)]) == 0
    record = json.loads((tmp_path / "runs" / "baseline" / "metrics.json").read_text())
    assert record["training"]["cached_encoder_outputs"] is True
    assert set(record["tasks"]["score"]["test"]) >= {"pearson", "spearman", "rmse"}
