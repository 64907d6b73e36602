"""Tests for surgellm_hf.evaluation: metrics against hand computations, statistics against hand formulas,
early stopping through the real transformers Trainer, the run format and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from surgellm_hf import evaluation as ev

# ----------------------------------------------------------------------------------------------- metrics


def test_task_metrics_match_hand_computation():
    # class 0: tp 1 fp 1 fn 1 -> P=R=F1=1/2; class 1: tp 2 fp 1 fn 1 -> 2/3; class 2: tp 1 -> 1
    m = ev.task_metrics([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], num_labels=3)
    assert m["macro_f1"] == pytest.approx(13 / 18)
    assert m["precision"] == pytest.approx(13 / 18)
    assert m["recall"] == pytest.approx(13 / 18)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["n"] == 6
    assert math.isnan(m["roc_auc"])  # no scores given


def test_task_metrics_zero_division_when_a_class_is_never_predicted():
    # class 1 never predicted: its precision counts 0; P0 = 2/4, R0 = 1, F1_0 = 2/3, F1_1 = 0
    m = ev.task_metrics([0, 0, 1, 1], [0, 0, 0, 0])
    assert m["precision"] == pytest.approx(0.25)
    assert m["recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(1 / 3)


def test_binary_roc_auc_by_pair_counting():
    # positive/negative pairs: 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4
    assert ev.task_metrics([0, 0, 1, 1], [0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8])["roc_auc"] == pytest.approx(
        0.75
    )
    # a tie counts one half -> 3.5/4; 2-D probabilities use the class-1 column
    probs = [[0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.2, 0.8]]
    assert ev.task_metrics([0, 0, 1, 1], [0, 1, 0, 1], probs)["roc_auc"] == pytest.approx(0.875)


def test_multiclass_roc_auc_is_ovr_macro_and_nan_for_one_class():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 10)
    logits = rng.normal(size=(30, 3)) + np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert ev.task_metrics(y, probs.argmax(1), probs, num_labels=3)["roc_auc"] == pytest.approx(expected)
    assert math.isnan(ev.task_metrics([1, 1, 1], [1, 0, 1], [0.2, 0.3, 0.9])["roc_auc"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y_true": [0, 1], "y_pred": [0]}, ValueError, "2 entries but y_pred has 1"),
        ({"y_true": [], "y_pred": []}, ValueError, "non-empty"),
        ({"y_true": [0, 1, 2], "y_pred": [0, 1, 1], "num_labels": 2}, ValueError, r"outside 0\.\.1"),
        ({"y_true": ["a", "b"], "y_pred": [0, 1]}, TypeError, "integer class indices"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "y_score": [[2.0, 1.0], [0.5, 3.0]]}, ValueError, "softmax"),
        (
            {"y_true": [0, 1], "y_pred": [0, 1], "y_score": [[0.5, 0.2, 0.3]] * 2, "num_labels": 2},
            ValueError,
            "shape",
        ),
        ({"y_true": [0, 1], "y_pred": [0, 1], "y_score": [0.1, float("nan")]}, ValueError, "NaN"),
    ],
)
def test_task_metrics_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        ev.task_metrics(**kwargs)


def test_summarize_and_flatten():
    per_task = {"a": {"macro_f1": 0.8, "accuracy": 0.9}, "b": {"macro_f1": 0.6, "accuracy": 0.7}}
    assert ev.summarize_tasks(per_task) == {
        "avg_macro_f1": pytest.approx(0.7),
        "avg_accuracy": pytest.approx(0.8),
    }
    flat = ev.flatten_metrics(per_task)
    assert (
        flat["a_macro_f1"] == 0.8 and flat["b_accuracy"] == 0.7 and flat["avg_macro_f1"] == pytest.approx(0.7)
    )
    with pytest.raises(ValueError, match="no 'macro_f1'"):
        ev.summarize_tasks({"a": {"accuracy": 1.0}})


# ----------------------------------------------------------------------------------------------- statistics


def test_aggregate_runs_mean_and_sample_sd():
    runs = [
        {"a": {"macro_f1": 0.90, "n": 10}, "b": {"macro_f1": 0.70, "n": 10}},
        {"a": {"macro_f1": 0.92, "n": 10}, "b": {"macro_f1": 0.72, "n": 10}},
        {"a": {"macro_f1": 0.94, "n": 10}, "b": {"macro_f1": 0.80, "n": 10}},
    ]
    agg = ev.aggregate_runs(runs)
    assert agg["a"]["macro_f1"]["mean"] == pytest.approx(0.92)
    assert agg["a"]["macro_f1"]["sd"] == pytest.approx(0.02)  # sqrt((0.0004 + 0 + 0.0004) / 2)
    assert agg["a"]["macro_f1"]["n"] == 3
    # average per run: 0.80, 0.82, 0.87 -> mean 0.83, sd sqrt((0.03^2 + 0.01^2 + 0.04^2) / 2)
    assert agg["average"]["macro_f1"]["mean"] == pytest.approx(0.83)
    assert agg["average"]["macro_f1"]["sd"] == pytest.approx(math.sqrt((0.0009 + 0.0001 + 0.0016) / 2))
    assert "n" not in agg["a"]
    assert math.isnan(ev.aggregate_runs(runs[:1])["a"]["macro_f1"]["sd"])
    with pytest.raises(ValueError, match="run 1 has tasks"):
        ev.aggregate_runs([runs[0], {"a": runs[0]["a"]}])


def test_benjamini_hochberg_hand_example():
    # sorted p: 0.01, 0.03, 0.04, 0.20 -> p*m/rank: 0.04, 0.06, 0.0533, 0.20 -> running min from the top
    adjusted, reject = ev.benjamini_hochberg([0.01, 0.04, 0.03, 0.20, float("nan")], alpha=0.05)
    assert adjusted[:4] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert math.isnan(adjusted[4])
    assert reject == [True, False, False, False, False]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.benjamini_hochberg([1.5])


def test_welch_matches_hand_formula():
    a, b = [0.90, 0.92, 0.94], [0.85, 0.86, 0.90]
    va, vb = 0.0004, 0.0007  # sample variances by hand
    se2 = va / 3 + vb / 3
    t = (0.92 - 0.87) / math.sqrt(se2)
    df = se2**2 / ((va / 3) ** 2 / 2 + (vb / 3) ** 2 / 2)
    p = 2 * stats.t.sf(abs(t), df)
    res = ev.welch_bh({"x": a, "y": [0.5, 0.6, 0.7]}, {"x": b, "y": [0.5, 0.61, 0.69]})
    assert res["x"]["t"] == pytest.approx(t)
    assert res["x"]["df"] == pytest.approx(df)
    assert res["x"]["p"] == pytest.approx(p)
    assert res["x"]["diff"] == pytest.approx(0.05)
    expected_adj, _ = ev.benjamini_hochberg([res["x"]["p"], res["y"]["p"]])
    assert [res["x"]["p_adj"], res["y"]["p_adj"]] == pytest.approx(expected_adj)
    assert res["y"]["reject"] is False


def test_welch_degenerate_keys_get_nan_and_skip_correction():
    res = ev.welch_bh(
        {"one": [0.9], "flat": [0.5, 0.5], "ok": [0.1, 0.2, 0.3]},
        {"one": [0.8, 0.7], "flat": [0.5, 0.5], "ok": [0.5, 0.6, 0.7]},
    )
    assert math.isnan(res["one"]["p"]) and math.isnan(res["flat"]["p"]) and res["one"]["reject"] is False
    assert res["ok"]["p_adj"] == pytest.approx(res["ok"]["p"])  # the only valid test: m = 1
    with pytest.raises(ValueError, match="key mismatch"):
        ev.welch_bh({"a": [1, 2]}, {"b": [1, 2]})


def _noisy_predictions(n: int, accuracy: float, seed: int, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    wrong = (y + rng.integers(1, k, n)) % k
    return y, np.where(rng.random(n) < accuracy, y, wrong)


def test_confusion_metrics_equal_sklearn_on_resamples():
    y, p = _noisy_predictions(25, 0.6, seed=1, k=3)
    idx = np.random.default_rng(2).integers(0, 25, (300, 25))
    cm = ev._confusion_stacks(y, p, idx, 3)
    expected = {
        "macro_f1": [f1_score(y[i], p[i], average="macro", zero_division=0) for i in idx],
        "precision": [precision_score(y[i], p[i], average="macro", zero_division=0) for i in idx],
        "recall": [recall_score(y[i], p[i], average="macro", zero_division=0) for i in idx],
        "accuracy": [np.mean(y[i] == p[i]) for i in idx],
    }
    for metric, values in expected.items():
        np.testing.assert_allclose(ev._metric_from_confusion(cm, metric), values, rtol=0, atol=1e-12)


def test_rank_auc_equals_sklearn_on_resamples_with_ties():
    y, _ = _noisy_predictions(40, 0.5, seed=3)
    score = np.round(np.random.default_rng(4).random(40) + 0.3 * y, 1)  # rounding creates ties
    idx = np.random.default_rng(5).integers(0, 40, (100, 40))
    expected = [roc_auc_score(y[i], score[i]) for i in idx]
    np.testing.assert_allclose(ev._auc_resampled(y, score, idx), expected, atol=1e-12)


def test_bootstrap_ci_percentile_matches_slow_sklearn_loop_and_is_deterministic():
    y, p = _noisy_predictions(60, 0.8, seed=6)
    ci = ev.bootstrap_ci(y, p, n_resamples=500, seed=7)
    # independent slow implementation: the same resample indices, scikit-learn per resample
    idx = np.random.default_rng(7).integers(0, 60, (500, 60))
    values = [f1_score(y[i], p[i], average="macro", zero_division=0) for i in idx]
    assert ci["low"] == pytest.approx(np.percentile(values, 2.5))
    assert ci["high"] == pytest.approx(np.percentile(values, 97.5))
    assert ci["estimate"] == pytest.approx(f1_score(y, p, average="macro"))
    assert ci["low"] < ci["estimate"] < ci["high"]
    assert ev.bootstrap_ci(y, p, n_resamples=500, seed=7) == ci
    assert ev.bootstrap_ci(y, p, n_resamples=500, seed=8) != ci
    narrow = ev.bootstrap_ci(y, p, n_resamples=500, seed=7, level=0.5)
    assert ci["low"] < narrow["low"] < narrow["high"] < ci["high"]


def test_bootstrap_over_several_runs_and_roc_auc():
    y, p1 = _noisy_predictions(80, 0.7, seed=9)
    _, p2 = _noisy_predictions(80, 0.9, seed=9)
    both = ev.bootstrap_ci(y, np.stack([p1, p2]), n_resamples=300)
    assert both["estimate"] == pytest.approx(
        (f1_score(y, p1, average="macro") + f1_score(y, p2, average="macro")) / 2
    )
    assert both["low"] < both["estimate"] < both["high"]
    score = np.clip(0.5 * y + np.random.default_rng(0).random(80) * 0.7, 0, 1)
    auc = ev.bootstrap_ci(y, p1, metric="roc_auc", y_score=score, n_resamples=300)
    assert auc["estimate"] == pytest.approx(roc_auc_score(y, score))
    assert auc["low"] <= auc["estimate"] <= auc["high"]
    probs = np.stack([1 - score, score], axis=1)  # class probabilities give the same interval
    assert ev.bootstrap_ci(y, p1, metric="roc_auc", y_score=probs, n_resamples=300) == auc
    two = ev.bootstrap_ci(
        y, np.stack([p1, p1]), metric="roc_auc", y_score=np.stack([probs, probs]), n_resamples=300
    )
    assert two["low"] == pytest.approx(auc["low"]) and two["high"] == pytest.approx(auc["high"])
    with pytest.raises(ValueError, match="binary tasks only"):
        ev.bootstrap_ci([0, 1, 2] * 40, [0] * 120, metric="roc_auc", y_score=[0.5] * 120, n_resamples=100)
    with pytest.raises(ValueError, match="needs y_score"):
        ev.bootstrap_ci(y, p1, metric="roc_auc")
    with pytest.raises(ValueError, match="unknown metric"):
        ev.bootstrap_ci(y, p1, metric="f2")
    with pytest.raises(ValueError, match="shape"):
        ev.bootstrap_ci(y, p1[:-1])


def _macro_f1_by_hand(y: np.ndarray, p: np.ndarray) -> float:
    """Macro-F1 written out: mean over the classes present in y or p of 2TP / (2TP + FP + FN)."""
    scores = []
    for c in np.union1d(y, p):
        tp = np.sum((y == c) & (p == c))
        fp = np.sum((y != c) & (p == c))
        fn = np.sum((y == c) & (p != c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _percentile_ci_by_hand(y: np.ndarray, p: np.ndarray, rng: np.random.Generator, n_resamples: int):
    idx = rng.integers(0, len(y), (n_resamples, len(y)))
    values = [_macro_f1_by_hand(y[i], p[i]) for i in idx]
    return np.percentile(values, 2.5), np.percentile(values, 97.5)


def test_bootstrap_ci_default_is_2000_resamples():
    """METHOD §6: 2,000 resamples; every other test passes its own count."""
    y, p = _noisy_predictions(40, 0.75, seed=11)
    ci = ev.bootstrap_ci(y, p)  # all defaults: macro-F1, 2,000 resamples, seed 0, 95 %
    assert ci["n_resamples"] == 2000 and ci["level"] == 0.95
    low, high = _percentile_ci_by_hand(y, p, np.random.default_rng(0), 2000)
    assert ci["low"] == pytest.approx(low) and ci["high"] == pytest.approx(high)


def test_compare_runs_default_is_2000_resamples():
    y, p = _noisy_predictions(40, 0.75, seed=12)
    record = ev.RunRecord(
        "baseline",
        0,
        {"t": {"test": {"macro_f1": f1_score(y, p, average="macro")}}},
        predictions={"t": {"test": {"y_true": y, "y_pred": p, "score": None, "gate": None, "id": None}}},
    )
    cell = ev.compare_runs([record], baseline=None).cells["baseline"]["t"]
    # the first task's resamples are drawn from default_rng([seed, task index]) = default_rng([0, 0])
    low, high = _percentile_ci_by_hand(y, p, np.random.default_rng([0, 0]), 2000)
    assert cell["ci_low"] == pytest.approx(low) and cell["ci_high"] == pytest.approx(high)


def test_cli_compare_default_is_2000_resamples():
    from surgellm_hf.cli import build_parser

    assert build_parser().parse_args(["compare", "some_run"]).n_resamples == 2000


# ----------------------------------------------------------------------------------------------- early stopping


@pytest.mark.parametrize(
    ("scores", "stop_at", "best", "best_step"),
    [
        ([0.5, 0.6, 0.6, 0.59, 0.7], 3, 0.6, 1),  # equal is no improvement: stops after two non-improvements
        ([0.5, 0.5, 0.5], 2, 0.5, 0),
        ([0.5, 0.4, 0.6, 0.55, 0.7, 0.69, 0.71], None, 0.71, 6),  # count resets on each strict improvement
        ([0.5, float("nan"), float("nan")], 2, 0.5, 0),  # NaN never improves
    ],
)
def test_early_stopper_scripted_sequences(scores, stop_at, best, best_step):
    stopper = ev.EarlyStopper(patience=2)
    decisions = [stopper.update(s) for s in scores[: (stop_at + 1 if stop_at is not None else None)]]
    expected = [False] * len(decisions)
    if stop_at is not None:
        expected[stop_at] = True
    assert decisions == expected
    assert stopper.best_score == best and stopper.best_step == best_step


def test_early_stopper_rejects_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        ev.EarlyStopper(patience=0)
    with pytest.raises(TypeError, match="real number"):
        ev.EarlyStopper().update("0.5")


class _TinyClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x, labels=None):
        logits = self.linear(x)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def _train_with_scripted_metric(tmp_path, scores, callback):
    """Real Trainer: evaluates every epoch, compute_metrics returns the next scripted score."""
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    rng = np.random.default_rng(0)
    data = Dataset.from_dict({"x": rng.normal(size=(8, 2)).astype("float32").tolist(), "labels": [0, 1] * 4})
    scripted = iter(scores)
    snapshots = []

    class Snapshot(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, **kwargs):
            snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=len(scores),
        per_device_train_batch_size=4,
        learning_rate=0.5,
        report_to="none",
        use_cpu=True,
        logging_strategy="no",
        disable_tqdm=True,
        save_only_model=True,
        seed=0,
        **ev.early_stopping_arguments(),
    )
    torch.manual_seed(0)
    trainer = Trainer(
        model=_TinyClassifier(),
        args=args,
        train_dataset=data,
        eval_dataset=data,
        compute_metrics=lambda _: {"avg_macro_f1": next(scripted)},
        callbacks=[callback, Snapshot()],
    )
    trainer.train()
    return trainer, snapshots


@pytest.mark.parametrize(
    ("scores", "n_evals", "best_eval"),
    [([0.5, 0.6, 0.6, 0.59, 0.7, 0.8], 4, 1), ([0.5, 0.4, 0.6, 0.55, 0.7, 0.65], 6, 4)],
)
def test_callback_in_real_trainer_stops_and_restores_best(tmp_path, scores, n_evals, best_eval):
    trainer, snapshots = _train_with_scripted_metric(tmp_path, scores, ev.SurgeEarlyStoppingCallback())
    assert len(snapshots) == n_evals
    # the pure rule agrees with the callback on the same sequence
    stopper = ev.EarlyStopper(patience=2)
    stops = [stopper.update(s) for s in scores[:n_evals]]
    assert stops[-1] == (n_evals < len(scores)) and not any(stops[:-1])
    assert stopper.best_step == best_eval
    assert trainer.state.best_metric == scores[best_eval]
    assert trainer.state.best_global_step == 2 * (best_eval + 1)  # 2 steps per epoch
    restored = trainer.model.state_dict()
    for k, v in snapshots[best_eval].items():
        torch.testing.assert_close(restored[k], v)
    assert not torch.equal(restored["linear.weight"], snapshots[-1]["linear.weight"])


@pytest.mark.parametrize(
    "scores", [[0.5, 0.6, 0.6, 0.59, 0.7, 0.7], [float("nan"), 0.3, float("nan"), 0.3, 0.2]]
)
def test_patience_count_replayed_from_the_log_equals_the_live_count(tmp_path, scores):
    """What a resumed run restores (the count replayed from trainer_state.json's log) is what the live run had."""
    live, replayed = [], []

    class Recording(ev.SurgeEarlyStoppingCallback):
        def on_evaluate(self, args, state, control, metrics, **kwargs):
            super().on_evaluate(args, state, control, metrics, **kwargs)
            live.append(self.early_stopping_patience_counter)
            replayed.append(ev.patience_counter_from_history(state.log_history))

    trainer, _ = _train_with_scripted_metric(tmp_path, scores, Recording(patience=len(scores) + 1))
    assert len(live) == len(scores) and replayed == live and live[-1] > 0
    assert ev.patience_counter_from_history(trainer.state.log_history) == live[-1]


def test_callback_checks_trainer_arguments(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    cb = ev.SurgeEarlyStoppingCallback()
    wrong_metric = TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, **ev.early_stopping_arguments("eval_loss")
    )
    with pytest.raises(ValueError, match="metric_for_best_model"):
        cb.on_train_begin(wrong_metric, TrainerState(), TrainerControl())
    lower = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        **{**ev.early_stopping_arguments(), "greater_is_better": False},
    )
    with pytest.raises(ValueError, match="greater_is_better"):
        cb.on_train_begin(lower, TrainerState(), TrainerControl())
    ok = TrainingArguments(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, **ev.early_stopping_arguments()
    )
    with pytest.raises(KeyError, match="eval_avg_macro_f1"):
        cb.on_evaluate(ok, TrainerState(), TrainerControl(), {"eval_loss": 0.3})
    # the callback's own rule, driven by hand with a real TrainerState/TrainerControl the way the Trainer does it
    state, control = TrainerState(), TrainerControl()
    for score in [0.5, 0.6, 0.6]:
        cb.on_evaluate(ok, state, control, {"eval_avg_macro_f1": score})
        if state.best_metric is None or score > state.best_metric:
            state.best_metric = score
    assert not control.should_training_stop
    cb.on_evaluate(ok, state, control, {"eval_avg_macro_f1": 0.59})
    assert control.should_training_stop


# ----------------------------------------------------------------------------------------------- runs and report


def _write_runs(tmp_path, accuracy_by_variant, tasks=("t1", "t2"), n=120, seeds=(0, 1, 2)):
    dirs, truth = [], {}
    for v_i, (variant, acc) in enumerate(accuracy_by_variant.items()):
        for seed in seeds:
            metrics, preds = {}, {}
            for t_i, task in enumerate(tasks):
                rng = np.random.default_rng(100 * t_i + 10 * v_i + seed)
                y = np.random.default_rng(t_i).integers(0, 2, n)  # same examples in every run
                p = np.where(rng.random(n) < acc, y, 1 - y)
                score = np.clip(0.6 * y + 0.5 * rng.random(n), 0, 1)
                if t_i == 1:  # class probabilities, as training writes them
                    score = np.stack([1 - score, score], axis=1)
                metrics[task] = {"test": ev.task_metrics(y, p, score), "validation": ev.task_metrics(y, p)}
                preds[task] = {
                    "test": {
                        "y_true": y,
                        "y_pred": p,
                        "score": score,
                        "gate": rng.random(n),
                        "id": [f"{task}-{i}" for i in range(n)],
                    }
                }
                truth[(variant, seed, task)] = metrics[task]["test"]["macro_f1"]
            dirs.append(
                ev.save_run(
                    tmp_path / f"{variant}-{seed}", variant, seed, metrics, preds, extra={"epochs": 3}
                ).parent
            )
    return dirs, truth


def test_save_and_load_run_round_trip(tmp_path):
    y, p = _noisy_predictions(30, 0.8, seed=0)
    metrics = {"a_b": {"validation": ev.task_metrics(y, p), "test": ev.task_metrics(y, p)}}
    path = ev.save_run(
        tmp_path,
        "IWN",
        1,
        metrics,
        {"a_b": {"test": {"y_true": y, "y_pred": p, "score": y * 0.5}}},
        {"epochs": 5},
    )
    on_disk = json.loads(path.read_text())
    assert on_disk["format"] == "surgellm-run/1" and on_disk["variant"] == "IWN" and on_disk["seed"] == 1
    assert on_disk["avg_macro_f1"]["test"] == pytest.approx(metrics["a_b"]["test"]["macro_f1"])
    assert (tmp_path / "predictions" / "a_b_test.jsonl").is_file()
    rec = ev.load_run(tmp_path)
    assert rec.variant == "IWN" and rec.seed == 1 and rec.extra == {"epochs": 5}
    assert rec.tasks["a_b"]["test"] == pytest.approx(metrics["a_b"]["test"], nan_ok=True)
    assert '"roc_auc": null' in path.read_text()  # NaN is written as strict-JSON null
    np.testing.assert_array_equal(rec.predictions["a_b"]["test"]["y_pred"], p)
    np.testing.assert_allclose(rec.predictions["a_b"]["test"]["score"], y * 0.5)
    assert rec.predictions["a_b"]["test"]["gate"] is None


def test_run_task_order_survives_a_key_sorting_json_round_trip(tmp_path):
    """Task order is a list in metrics.json: a tool that rewrites the file with sorted keys cannot reorder tasks."""
    y, p = _noisy_predictions(20, 0.8, seed=1)
    order = ["sst2", "llm7", "hotpot"]  # not alphabetical
    metrics = {t: {"test": ev.task_metrics(y, p)} for t in order}
    path = ev.save_run(tmp_path, "IWN", 0, metrics, {t: {"test": {"y_true": y, "y_pred": p}} for t in order})
    assert json.loads(path.read_text())["task_order"] == order
    path.write_text(json.dumps(json.loads(path.read_text()), sort_keys=True))  # e.g. `jq -S`
    rec = ev.load_run(tmp_path)
    assert list(rec.tasks) == order and "task_order" not in rec.extra
    assert list(json.loads(path.read_text())["tasks"]) == sorted(order)  # the object itself did get reordered
    record = json.loads(path.read_text())
    record["task_order"] = ["sst2", "llm7"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="does not list the tasks"):
        ev.load_run(tmp_path)


def test_run_format_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        ev.load_run(tmp_path)
    with pytest.raises(ValueError, match="lack 'macro_f1'"):
        ev.save_run(tmp_path, "v", 0, {"t": {"test": {"accuracy": 1.0}}})
    with pytest.raises(ValueError, match="splits among"):
        ev.save_run(tmp_path, "v", 0, {"t": {"dev": {"macro_f1": 1.0}}})
    with pytest.raises(ValueError, match="y_pred has 1 entries"):
        ev.save_run(
            tmp_path,
            "v",
            0,
            {"t": {"test": {"macro_f1": 1.0}}},
            {"t": {"test": {"y_true": [0, 1], "y_pred": [0]}}},
        )
    ev.save_run(tmp_path, "v", 0, {"t": {"test": {"macro_f1": 1.0}}})
    (tmp_path / "predictions").mkdir(exist_ok=True)
    (tmp_path / "predictions" / "other_test.jsonl").write_text('{"y_true": 0, "y_pred": 0}\n')
    with pytest.raises(ValueError, match="<task>_<split>.jsonl"):
        ev.load_run(tmp_path)


def test_compare_runs_from_dirs(tmp_path):
    dirs, truth = _write_runs(tmp_path, {"baseline": 0.7, "IWN": 0.9})
    comp = ev.compare_runs(dirs, baseline="baseline", n_resamples=300)
    assert (
        comp.variants == ["baseline", "IWN"] and comp.tasks == ["t1", "t2"] and comp.seeds["IWN"] == [0, 1, 2]
    )
    for variant in comp.variants:
        for task in comp.tasks:
            values = [truth[(variant, s, task)] for s in (0, 1, 2)]
            cell = comp.cells[variant][task]
            assert cell["mean"] == pytest.approx(np.mean(values)) and cell["sd"] == pytest.approx(
                np.std(values, ddof=1)
            )
            assert cell["ci_low"] < cell["mean"] < cell["ci_high"]
        avg = [np.mean([truth[(variant, s, t)] for t in comp.tasks]) for s in (0, 1, 2)]
        assert comp.cells[variant]["average"]["mean"] == pytest.approx(np.mean(avg))
        assert (
            comp.cells[variant]["average"]["ci_low"]
            < np.mean(avg)
            < comp.cells[variant]["average"]["ci_high"]
        )
    iwn = comp.cells["IWN"]["t1"]
    p = stats.ttest_ind(iwn["values"], comp.cells["baseline"]["t1"]["values"], equal_var=False).pvalue
    assert iwn["p"] == pytest.approx(p) and iwn["reject"] and iwn["diff"] > 0.1
    family = [comp.cells["IWN"][c]["p"] for c in comp.columns]
    assert [comp.cells["IWN"][c]["p_adj"] for c in comp.columns] == pytest.approx(
        ev.benjamini_hochberg(family)[0]
    )
    assert "p" not in comp.cells["baseline"]["t1"]
    with pytest.raises(ValueError, match="baseline 'nope' not among"):
        ev.compare_runs(dirs, baseline="nope")
    with pytest.raises(ValueError, match="no train macro_f1"):
        ev.compare_runs(dirs, split="train")
    test_auc = ev.compare_runs(dirs, metric="roc_auc", n_resamples=200)
    for task in ("t1", "t2"):
        cell = test_auc.cells["IWN"][task]
        assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
    assert test_auc.cells["IWN"]["average"]["ci_low"] is None  # no pooled CI across tasks for AUC
    auc = ev.compare_runs(dirs, split="validation", metric="roc_auc")  # no scores on validation: NaN, no CI
    assert math.isnan(auc.cells["IWN"]["t1"]["mean"]) and auc.cells["IWN"]["t1"]["ci_low"] is None


def test_compare_runs_without_predictions_and_mismatched_tasks():
    recs = [ev.RunRecord("baseline", s, {"a": {"test": {"macro_f1": 0.7 + s / 100}}}) for s in range(2)]
    recs += [ev.RunRecord("S", s, {"a": {"test": {"macro_f1": 0.8 + s / 50}}}) for s in range(2)]
    comp = ev.compare_runs(recs)
    assert comp.cells["S"]["a"]["ci_low"] is None and comp.cells["S"]["a"]["mean"] == pytest.approx(0.81)
    with pytest.raises(ValueError, match="has tasks"):
        ev.compare_runs([*recs, ev.RunRecord("S", 9, {"b": {"test": {"macro_f1": 0.5}}})])


def test_markdown_plots_and_report(tmp_path):
    dirs, _ = _write_runs(tmp_path / "runs", {"baseline": 0.7, "IWN": 0.9})
    comp = ev.compare_runs(dirs, n_resamples=200)
    md = ev.render_markdown_table(comp)
    lines = md.splitlines()
    iwn_row = next(line for line in lines if line.startswith("| IWN | 3 |"))
    cell = comp.cells["IWN"]["t1"]
    assert f"{cell['mean']:.3f} ± {cell['sd']:.3f}*" in iwn_row
    assert f"[{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]" in md

    fig = ev.task_f1_figure(comp)
    bars = fig.axes[0].patches
    assert len(bars) == len(comp.variants) * len(comp.columns)
    heights = [b.get_height() for b in bars]
    expected = [comp.cells[v][c]["mean"] for v in comp.variants for c in comp.columns]
    assert heights == pytest.approx(expected)

    gates = ev.gate_values_from_runs(dirs)
    assert set(gates) == {"t1", "t2"} and gates["t1"].shape == (6 * 120,)
    gfig = ev.gate_figure(gates)
    horizontal = {
        round(float(ln.get_ydata()[0]), 12) for ln in gfig.axes[0].lines if len(set(ln.get_ydata())) == 1
    }
    for task in ("t1", "t2"):  # each box draws its median as a horizontal line
        assert round(float(np.median(gates[task])), 12) in horizontal
    assert [t.get_text() for t in gfig.axes[0].get_xticklabels()] == ["t1", "t2"]

    report = ev.write_report(comp, tmp_path / "report", gate_values_by_task=gates)
    text = report.read_text()
    assert "task_f1_by_variant.png" in text and "gate_distribution.png" in text and iwn_row in text
    import matplotlib.image

    for name in ("task_f1_by_variant.png", "gate_distribution.png"):
        raw = (tmp_path / "report" / name).read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"
        img = matplotlib.image.imread(tmp_path / "report" / name)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 0.01
    with pytest.raises(ValueError, match="empty or not finite"):
        ev.gate_figure({"t1": []})
