"""Evaluation for SURGELLM (METHOD.md §6): per-task metrics, seeds aggregation, Welch + Benjamini-Hochberg,
bootstrap confidence intervals, early stopping, the on-disk run format, and the comparison report.

Metrics come from scikit-learn, tests from scipy. The run format written by training and read here:

``<run_dir>/metrics.json``::

    {"format": "surgellm-run/1", "variant": "IWN", "seed": 0,
     "task_order": ["<task>", ...],                              # the tasks' order (a list survives any JSON tool)
     "tasks": {"<task>": {"validation": {"macro_f1": .., "accuracy": .., "precision": .., "recall": ..,
                                         "roc_auc": .., "n": ..},
                          "test": {...}}},                      # any subset of train/validation/test
     "avg_macro_f1": {"validation": .., "test": ..},           # unweighted mean over tasks, per split
     ...}                                                      # any further keys are kept as `extra`

NaN (e.g. ROC-AUC with one class) is written as JSON null and read back as NaN. Task order is carried by
``task_order``, never by the key order of ``tasks`` (JSON objects are unordered; tools that sort keys reorder them).

``<run_dir>/predictions/<task>_<split>.jsonl`` (optional; enables bootstrap CIs and gate plots), one row
per example, in the split's order: ``{"id": str?, "y_true": int, "y_pred": int, "score": float | [float, ...]?,
"gate": float?}``; score is P(class 1) for binary tasks or the class probabilities, gate the example's mean
gate value.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from transformers import EarlyStoppingCallback, TrainerControl, TrainerState, TrainingArguments

METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "precision", "recall", "roc_auc")
"""Per-task metrics reported (METHOD §6); macro-F1 is primary."""

RUN_FORMAT = "surgellm-run/1"
AVERAGE = "average"
"""Key of the unweighted mean over tasks in aggregated results (a task may not use this name)."""

_SPLITS = ("train", "validation", "test")
_RECORD_KEYS = ("format", "variant", "seed", "task_order", "tasks", "avg_macro_f1")


# --------------------------------------------------------------------------------------------------------------
# Per-task metrics
# --------------------------------------------------------------------------------------------------------------


def _as_labels(y: Any, name: str, num_labels: int | None) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of class indices, got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    if num_labels is not None:
        bad = np.flatnonzero((arr < 0) | (arr >= num_labels))
        if bad.size:
            raise ValueError(
                f"{name} has {bad.size} value(s) outside 0..{num_labels - 1} (first at positions {bad[:5].tolist()})"
            )
    elif arr.min() < 0:
        raise ValueError(f"{name} has negative class indices")
    return arr.astype(np.int64)


def _as_scores(y_score: Any, n: int, num_labels: int) -> np.ndarray:
    """Validate scores: 1-D (binary: score of class 1) or [n, num_labels] probabilities."""
    s = np.asarray(y_score, dtype=np.float64)
    if s.shape[0] != n:
        raise ValueError(f"y_score has {s.shape[0]} rows but y_true has {n}")
    if not np.all(np.isfinite(s)):
        raise ValueError("y_score contains NaN or infinite values")
    if s.ndim == 1:
        if num_labels > 2:
            raise ValueError(
                f"a 1-D y_score is only valid for binary tasks; this task has {num_labels} classes"
            )
        return s
    if s.ndim != 2 or s.shape[1] != num_labels:
        raise ValueError(
            f"y_score must be 1-D (binary) or of shape [n, {num_labels}] (class probabilities), got {s.shape}; "
            "slice away padded logit columns of other tasks first"
        )
    if not np.allclose(s.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(
            "2-D y_score rows must be class probabilities summing to 1 (apply softmax to logits)"
        )
    return s


def roc_auc(y_true: Any, y_score: Any, num_labels: int | None = None) -> float:
    """ROC-AUC: binary uses the score of class 1; multi-class is the one-vs-rest macro average over the
    classes present in y_true. NaN (no error) when y_true holds a single class, where AUC is undefined."""
    from sklearn.metrics import roc_auc_score

    shape = np.shape(y_score)
    k = num_labels if num_labels is not None else (shape[1] if len(shape) == 2 else 2)
    y = _as_labels(y_true, "y_true", k)
    s = _as_scores(y_score, len(y), k)
    present = np.unique(y)
    if present.size < 2:
        return float("nan")
    if k == 2:
        return float(roc_auc_score(y == 1, s if s.ndim == 1 else s[:, 1]))
    return float(np.mean([roc_auc_score(y == c, s[:, c]) for c in present]))


def task_metrics(
    y_true: Any, y_pred: Any, y_score: Any | None = None, num_labels: int | None = None
) -> dict[str, float]:
    """macro_f1, accuracy, precision and recall (macro), roc_auc and n for one task, with scikit-learn.

    Macro averages run over the classes present in y_true or y_pred (scikit-learn's default); a class never
    predicted scores precision 0 (zero_division=0). roc_auc is NaN without y_score or with one class in y_true.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    y = _as_labels(y_true, "y_true", num_labels)
    p = _as_labels(y_pred, "y_pred", num_labels)
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} entries but y_pred has {len(p)}")
    return {
        "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(y, p)),
        "precision": float(precision_score(y, p, average="macro", zero_division=0)),
        "recall": float(recall_score(y, p, average="macro", zero_division=0)),
        "roc_auc": float("nan") if y_score is None else roc_auc(y, y_score, num_labels),
        "n": int(len(y)),
    }


def summarize_tasks(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Unweighted means over tasks: {"avg_macro_f1": .., "avg_accuracy": .., ...} (NaN propagates)."""
    if not per_task:
        raise ValueError("no tasks to summarize")
    missing = [t for t, m in per_task.items() if "macro_f1" not in m]
    if missing:
        raise ValueError(f"task(s) {missing} have no 'macro_f1'")
    out = {}
    for metric in METRICS:
        if all(metric in m for m in per_task.values()):
            out[f"avg_{metric}"] = float(np.mean([float(m[metric]) for m in per_task.values()]))
    return out


def flatten_metrics(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """{"<task>_<metric>": value, ..., "avg_macro_f1": ...}: the flat form a Trainer's compute_metrics returns."""
    flat = {f"{task}_{k}": float(v) for task, m in per_task.items() for k, v in m.items()}
    flat.update(summarize_tasks(per_task))
    return flat


# --------------------------------------------------------------------------------------------------------------
# Seeds aggregation, Welch + BH, bootstrap
# --------------------------------------------------------------------------------------------------------------


def aggregate_runs(
    results: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and sample SD (ddof=1; NaN for a single run) over runs, per task and metric.

    Each result maps task -> metric -> value (one split of one seed). Adds the key "average" holding, for
    each metric every task has, the across-run statistics of the per-run unweighted task mean.
    """
    if not results:
        raise ValueError("no runs to aggregate")
    tasks = list(results[0])
    for i, r in enumerate(results):
        if set(r) != set(tasks):
            raise ValueError(f"run {i} has tasks {sorted(r)} but run 0 has {sorted(tasks)}")
    if AVERAGE in tasks:
        raise ValueError(f"a task may not be named {AVERAGE!r}")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        metrics = [m for m in results[0][task] if all(m in r[task] for r in results)]
        out[task] = {m: _mean_sd([r[task][m] for r in results]) for m in metrics if m != "n"}
    common = [m for m in METRICS if all(m in out[t] for t in tasks)]
    out[AVERAGE] = {m: _mean_sd([np.mean([float(r[t][m]) for t in tasks]) for r in results]) for m in common}
    return out


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(np.mean(v)),
        "sd": float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
        "n": int(len(v)),
    }


def benjamini_hochberg(p_values: Sequence[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """BH-adjusted p-values (scipy.stats.false_discovery_control) and rejections at `alpha`; NaN p-values stay
    NaN, are never rejected and do not count towards the number of tests."""
    from scipy import stats

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    p = np.asarray(p_values, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    adjusted = np.full(p.shape, np.nan)
    valid = ~np.isnan(p)
    if valid.any():
        adjusted[valid] = stats.false_discovery_control(p[valid], method="bh")
    return adjusted.tolist(), [bool(a <= alpha) for a in adjusted]


def welch_bh(
    a_scores_by_key: Mapping[str, Sequence[float]],
    b_scores_by_key: Mapping[str, Sequence[float]],
    alpha: float = 0.05,
) -> dict[str, dict[str, float | bool]]:
    """Welch t-test of a vs b for every key, Benjamini-Hochberg adjusted over all keys together.

    Returns per key: mean_a, mean_b, diff (a - b), t, df (Welch-Satterthwaite), p, p_adj, reject
    (p_adj <= alpha). Keys with fewer than two values on a side, or zero variance on both, get NaN p and take
    no part in the correction.
    """
    from scipy import stats

    if set(a_scores_by_key) != set(b_scores_by_key):
        raise ValueError(f"key mismatch: {sorted(a_scores_by_key)} vs {sorted(b_scores_by_key)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    out: dict[str, dict[str, float | bool]] = {}
    for key in a_scores_by_key:
        a = np.asarray(a_scores_by_key[key], dtype=np.float64)
        b = np.asarray(b_scores_by_key[key], dtype=np.float64)
        row: dict[str, float | bool] = {
            "mean_a": float(a.mean()) if a.size else float("nan"),
            "mean_b": float(b.mean()) if b.size else float("nan"),
        }
        row["diff"] = row["mean_a"] - row["mean_b"]
        if a.size >= 2 and b.size >= 2 and (a.var(ddof=1) + b.var(ddof=1)) > 0:
            res = stats.ttest_ind(a, b, equal_var=False)
            row.update(t=float(res.statistic), df=float(res.df), p=float(res.pvalue))
        else:
            row.update(t=float("nan"), df=float("nan"), p=float("nan"))
        out[key] = row
    adjusted, reject = benjamini_hochberg([float(out[k]["p"]) for k in out], alpha)
    for key, p_adj, rej in zip(out, adjusted, reject):
        out[key]["p_adj"], out[key]["reject"] = p_adj, rej
    return out


def _confusion_stacks(y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices [B, k, k] of the resamples idx [B, n] (rows: true class, columns: predicted)."""
    codes = (y_true * k + y_pred)[idx]
    offsets = (np.arange(idx.shape[0]) * k * k)[:, None]
    return np.bincount((codes + offsets).ravel(), minlength=idx.shape[0] * k * k).reshape(-1, k, k)


def _metric_from_confusion(cm: np.ndarray, metric: str) -> np.ndarray:
    """Vectorised metric over confusion stacks, equal to scikit-learn's (labels present, zero_division=0)."""
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    true_n, pred_n = cm.sum(axis=2), cm.sum(axis=1)
    if metric == "accuracy":
        return tp.sum(axis=1) / cm.sum(axis=(1, 2))
    present = (true_n + pred_n) > 0
    denom = {"macro_f1": true_n + pred_n, "precision": pred_n, "recall": true_n}[metric]
    numer = 2 * tp if metric == "macro_f1" else tp
    per_class = np.divide(numer, denom, out=np.zeros_like(tp), where=denom > 0)
    return (per_class * present).sum(axis=1) / present.sum(axis=1)


def _auc_resampled(y_true: np.ndarray, score: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Binary ROC-AUC of each resample idx [B, n] via the Mann-Whitney rank sum (ties count one half, as in
    scikit-learn); NaN where a resample holds one class."""
    from scipy.stats import rankdata

    pos = y_true[idx] == 1
    ranks = rankdata(score[idx], axis=1)
    n1 = pos.sum(axis=1).astype(np.float64)
    n0 = idx.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(pos, ranks, 0.0).sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _bootstrap_values(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: str,
    n_resamples: int,
    rng: np.random.Generator,
    y_score: Any = None,
) -> np.ndarray:
    """Resampled statistics (mean over the runs in y_pred [runs, n]) for `n_resamples` index resamples."""
    n = len(y_true)
    k = int(max(y_true.max(), y_pred.max())) + 1
    chunk = max(1, 4_000_000 // n)  # bounds the [chunk, n] index matrix
    parts = []
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, (min(chunk, n_resamples - start), n))
        if metric == "roc_auc":
            auc = np.mean([_auc_resampled(y_true, s, idx) for s in y_score], axis=0)
            parts.append(auc[np.isfinite(auc)])  # single-class resamples have no AUC
        else:
            stacks = [_metric_from_confusion(_confusion_stacks(y_true, p, idx, k), metric) for p in y_pred]
            parts.append(np.mean(stacks, axis=0))
    return np.concatenate(parts)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if values.size == 0:
        raise ValueError("no usable bootstrap resamples (y_true holds a single class)")
    low, high = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def _check_bootstrap_args(metric: str, n_resamples: int, level: float) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 100:
        raise ValueError(f"n_resamples must be an integer >= 100, got {n_resamples!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def _prepare_bootstrap(
    y_true: Any, y_pred: Any, metric: str, y_score: Any
) -> tuple[np.ndarray, np.ndarray, Any]:
    y = _as_labels(y_true, "y_true", None)
    preds = np.asarray(y_pred)
    preds = preds[None, :] if preds.ndim == 1 else preds
    if preds.ndim != 2 or preds.shape[1] != len(y):
        raise ValueError(
            f"y_pred must have shape [{len(y)}] or [runs, {len(y)}], got {np.asarray(y_pred).shape}"
        )
    preds = np.stack([_as_labels(p, "y_pred", None) for p in preds])
    scores = None
    if metric == "roc_auc":
        if y_score is None:
            raise ValueError("metric 'roc_auc' needs y_score")
        if np.any(y > 1):
            raise ValueError("bootstrap of roc_auc supports binary tasks only")
        scores = np.asarray(y_score, dtype=np.float64)
        if scores.ndim == np.ndim(y_pred) + 1 and scores.shape[-1] == 2:  # class probabilities -> P(class 1)
            scores = scores[..., 1]
        scores = scores[None, :] if scores.ndim == 1 else scores
        if scores.shape != preds.shape:
            raise ValueError(
                f"y_score must hold binary scores ([n] or [n, 2] per run) matching y_pred {preds.shape}, "
                f"got {np.shape(y_score)}"
            )
    return y, preds, scores


def _point_estimate(y: np.ndarray, preds: np.ndarray, metric: str, scores: Any) -> float:
    if metric == "roc_auc":
        return float(np.mean([roc_auc(y, s, 2) for s in scores]))
    return float(np.mean([task_metrics(y, p)[metric] for p in preds]))


def bootstrap_ci(
    y_true: Any,
    y_pred: Any,
    metric: str = "macro_f1",
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    y_score: Any | None = None,
) -> dict[str, float]:
    """Percentile bootstrap CI over examples for one task's metric; deterministic for a seed.

    y_pred may be [n] or [runs, n] (several seeds predicting the same examples): the statistic is then the
    mean over runs, resampled with shared example indices. Counting metrics are computed from resampled
    confusion matrices and roc_auc (binary tasks; y_score P(class 1) as [n] / [runs, n], or class
    probabilities [n, 2] / [runs, n, 2]) from rank sums, both equal to
    scikit-learn's and vectorised for speed; single-class resamples (no AUC) are dropped. Returns estimate (scikit-learn,
    full data), low, high, level and n_resamples (used).
    """
    _check_bootstrap_args(metric, n_resamples, level)
    y, preds, scores = _prepare_bootstrap(y_true, y_pred, metric, y_score)
    values = _bootstrap_values(y, preds, metric, n_resamples, np.random.default_rng(seed), scores)
    low, high = _percentiles(values, level)
    return {
        "estimate": _point_estimate(y, preds, metric, scores),
        "low": low,
        "high": high,
        "level": level,
        "n_resamples": int(values.size),
    }


# --------------------------------------------------------------------------------------------------------------
# Early stopping (METHOD §6: mean per-task validation macro-F1, strictly higher counts, patience 2)
# --------------------------------------------------------------------------------------------------------------


class EarlyStopper:
    """Patience rule on a score to maximise: only a strictly higher score resets the count; NaN never does.

    ``update(score)`` returns True once `patience` consecutive updates brought no strict improvement. The
    same rule as transformers' EarlyStoppingCallback with threshold 0, for loops outside the Trainer.
    """

    def __init__(self, patience: int = 2) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        self.patience = patience
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.num_bad_updates = 0
        self.num_updates = 0

    @property
    def should_stop(self) -> bool:
        """Whether the patience is used up."""
        return self.num_bad_updates >= self.patience

    def update(self, score: float, step: int | None = None) -> bool:
        """Record one evaluation (step defaults to the update count) and return whether to stop."""
        if isinstance(score, bool) or not isinstance(score, int | float | np.floating | np.integer):
            raise TypeError(f"score must be a real number, got {score!r}")
        step = self.num_updates if step is None else step
        self.num_updates += 1
        improved = not math.isnan(score) and (self.best_score is None or score > self.best_score)
        if improved:
            self.best_score, self.best_step, self.num_bad_updates = float(score), step, 0
        else:
            self.num_bad_updates += 1
        return self.should_stop


def early_stopping_arguments(metric: str = "avg_macro_f1") -> dict[str, Any]:
    """TrainingArguments keywords for the METHOD §6 protocol: evaluate and save every epoch, select on `metric`
    (higher is better), restore the best weights at the end."""
    return {
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": metric,
        "greater_is_better": True,
    }


def patience_counter_from_history(
    log_history: Sequence[Mapping[str, Any]], metric: str = "eval_avg_macro_f1"
) -> int:
    """Consecutive evaluations without a strict improvement at the end of `log_history` (a TrainerState's).

    The rule of `SurgeEarlyStoppingCallback` (and transformers' EarlyStoppingCallback with threshold 0) replayed
    over the logged evaluations, so a run resumed from a checkpoint carries on with the count it had.
    """
    best: float | None = None
    counter = 0
    for entry in log_history:
        if metric not in entry:
            continue
        value = float(entry[metric])
        counter = 0 if best is None or value > best else counter + 1  # NaN never improves on a number
        if best is None:
            best = float("-inf")  # what Trainer._determine_best_metric starts from
        if value > best:
            best = value
    return counter


class SurgeEarlyStoppingCallback(EarlyStoppingCallback):
    """transformers' EarlyStoppingCallback fixed to METHOD §6: patience 2, strictly higher is better (threshold 0).

    The stock callback compares each evaluation with ``state.best_metric`` before the Trainer updates it
    (``np.greater``, strict), which is exactly the rule; this subclass pins the defaults and turns the stock
    asserts and the silent "metric missing -> early stopping disabled" into clear errors. The Trainer's
    ``load_best_model_at_end`` restores the best weights (see `early_stopping_arguments`); without checkpoints
    (``save_strategy="no"``), ``keep_best_in_memory=True`` keeps a CPU copy of the best weights and restores it
    when training ends. At train begin the patience count is replayed from ``state.log_history``, so a run
    resumed from a checkpoint stops exactly where an uninterrupted one would.
    """

    def __init__(
        self, patience: int = 2, metric: str = "eval_avg_macro_f1", keep_best_in_memory: bool = False
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        super().__init__(early_stopping_patience=patience, early_stopping_threshold=0.0)
        self.metric = metric if metric.startswith("eval_") else f"eval_{metric}"
        self.keep_best_in_memory = bool(keep_best_in_memory)
        self.best_state: dict[str, Any] | None = None
        self.best_global_step: int | None = None

    def state(self) -> dict:
        """Constructor arguments and counter, for transformers' `restore_callback_states_from_checkpoint`."""
        return {
            "args": {
                "patience": self.early_stopping_patience,
                "metric": self.metric,
                "keep_best_in_memory": self.keep_best_in_memory,
            },
            "attributes": {"early_stopping_patience_counter": self.early_stopping_patience_counter},
        }

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        chosen = args.metric_for_best_model
        if chosen is None or (chosen if chosen.startswith("eval_") else f"eval_{chosen}") != self.metric:
            raise ValueError(
                f"SurgeEarlyStoppingCallback watches {self.metric!r} but TrainingArguments.metric_for_best_model is "
                f"{chosen!r}; set metric_for_best_model={self.metric.removeprefix('eval_')!r} "
                "(see surgellm_hf.evaluation.early_stopping_arguments)"
            )
        if not args.greater_is_better:
            raise ValueError(
                "SurgeEarlyStoppingCallback needs greater_is_better=True (macro-F1 is maximised)"
            )
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
            raise ValueError(
                "SurgeEarlyStoppingCallback needs evaluations: set eval_strategy='epoch' (or 'steps')"
            )
        if self.keep_best_in_memory and args.load_best_model_at_end:
            raise ValueError(
                "keep_best_in_memory=True restores the best weights itself; it is for save_strategy='no' runs, "
                "not with load_best_model_at_end=True"
            )
        if not (self.keep_best_in_memory or args.load_best_model_at_end):
            raise ValueError(
                "SurgeEarlyStoppingCallback would leave the last epoch's weights: set load_best_model_at_end=True "
                "(with checkpoints) or keep_best_in_memory=True (without)"
            )
        # a resumed run continues the count it had; a fresh one (empty history) starts at 0
        self.early_stopping_patience_counter = patience_counter_from_history(state.log_history, self.metric)
        self.best_state, self.best_global_step = None, None

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict,
        **kwargs: Any,
    ) -> None:
        if self.metric not in metrics:
            raise KeyError(
                f"early stopping metric {self.metric!r} not in the evaluation metrics {sorted(metrics)}; "
                "compute_metrics must return it (without the 'eval_' prefix)"
            )
        super().on_evaluate(args, state, control, metrics, **kwargs)
        model = kwargs.get("model")
        if self.keep_best_in_memory and self.early_stopping_patience_counter == 0 and model is not None:
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best_global_step = state.global_step

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model = kwargs.get("model")
        if self.keep_best_in_memory and self.best_state is not None and model is not None:
            model.load_state_dict(self.best_state)
            self.best_state = None


# --------------------------------------------------------------------------------------------------------------
# Run records on disk
# --------------------------------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One training run: its variant, seed, metrics per task and split, and optional predictions."""

    variant: str = field(metadata={"help": "Variant name, e.g. 'baseline' or 'IWN'."})
    seed: int = field(metadata={"help": "Training seed."})
    tasks: dict[str, dict[str, dict[str, float]]] = field(
        metadata={"help": "task -> split -> metric -> value."}
    )
    avg_macro_f1: dict[str, float] = field(
        default_factory=dict, metadata={"help": "split -> mean task macro-F1."}
    )
    predictions: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=dict,
        metadata={
            "help": "task -> split -> {'y_true', 'y_pred', 'score', 'gate', 'id'} (arrays; score/gate/id may be None)."
        },
    )
    extra: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Other keys found in metrics.json."}
    )
    path: str | None = field(default=None, metadata={"help": "Run folder it was read from."})


def _avg_by_split(tasks: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, float]:
    splits = [s for s in _SPLITS if all(s in by_split for by_split in tasks.values())]
    return {s: summarize_tasks({t: tasks[t][s] for t in tasks})["avg_macro_f1"] for s in splits}


def save_run(
    run_dir: str | os.PathLike,
    variant: str,
    seed: int,
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
    predictions: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write metrics.json (+ predictions/<task>_<split>.jsonl) in the format documented above; returns metrics.json."""
    if not isinstance(variant, str) or not variant:
        raise ValueError(f"variant must be a non-empty string, got {variant!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if not metrics:
        raise ValueError("metrics must hold at least one task")
    for task, by_split in metrics.items():
        if task == AVERAGE:
            raise ValueError(f"a task may not be named {AVERAGE!r}")
        bad = [s for s in by_split if s not in _SPLITS]
        if bad or not by_split:
            raise ValueError(
                f"task {task!r}: metrics need splits among {list(_SPLITS)}, got {list(by_split)}"
            )
        for split, m in by_split.items():
            if "macro_f1" not in m:
                raise ValueError(f"task {task!r}, split {split!r}: metrics lack 'macro_f1'")
    reserved = set(_RECORD_KEYS) & set(extra or {})
    if reserved:
        raise ValueError(f"extra may not use reserved key(s) {sorted(reserved)}")
    for task, by_split in (predictions or {}).items():
        unknown = [sp for sp in by_split if sp not in metrics.get(task, {})]
        if task not in metrics or unknown:
            raise ValueError(
                f"predictions for task {task!r} split(s) {unknown or list(by_split)} have no metrics"
            )
    rows = {
        f"{task}_{split}.jsonl": _prediction_rows(pred, f"{task}/{split}")
        for task, by_split in (predictions or {}).items()
        for split, pred in by_split.items()
    }
    record = {
        "format": RUN_FORMAT,
        "variant": variant,
        "seed": seed,
        "task_order": list(metrics),
        "tasks": {
            t: {sp: {k: _json_number(v) for k, v in m.items()} for sp, m in by_split.items()}
            for t, by_split in metrics.items()
        },
        "avg_macro_f1": {sp: _json_number(v) for sp, v in _avg_by_split(metrics).items()},
        **(extra or {}),
    }
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"  # fails here, before writing, on bad extra
    run_dir = Path(run_dir)
    for name, lines in rows.items():
        (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
        (run_dir / "predictions" / name).write_text("".join(json.dumps(r) + "\n" for r in lines))
    path = run_dir / "metrics.json"
    path.write_text(text)
    return path


def _json_number(v: Any) -> Any:
    """numpy scalars -> Python; NaN -> null (strict JSON); load_run turns null back into NaN."""
    if isinstance(v, np.generic):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def _prediction_rows(pred: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """Validate one task/split's predictions and turn them into JSON rows."""
    missing = [k for k in ("y_true", "y_pred") if k not in pred]
    if missing:
        raise ValueError(f"predictions {where}: missing {missing}")
    y_true, y_pred = np.asarray(pred["y_true"]).tolist(), np.asarray(pred["y_pred"]).tolist()
    n = len(y_true)
    optional = {k: pred.get(k) for k in ("id", "score", "gate") if pred.get(k) is not None}
    for k, v in {"y_pred": y_pred, **optional}.items():
        if len(v) != n:
            raise ValueError(f"predictions {where}: {k} has {len(v)} entries but y_true has {n}")
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"y_true": int(y_true[i]), "y_pred": int(y_pred[i])}
        if "id" in optional:
            row["id"] = str(optional["id"][i])
        if "score" in optional:
            row["score"] = np.asarray(optional["score"][i], dtype=np.float64).tolist()
        if "gate" in optional:
            row["gate"] = float(optional["gate"][i])
        rows.append(row)
    return rows


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read a run folder written by `save_run` (or by hand in the same format)."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.json in run folder {run_dir}")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    missing = [k for k in ("variant", "seed", "tasks") if k not in record]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    if record.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise ValueError(f"{path}: unsupported format {record['format']!r} (expected {RUN_FORMAT!r})")
    order = record.get("task_order", list(record["tasks"]))
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(record["tasks"]):
        raise ValueError(
            f"{path}: task_order {order!r} does not list the tasks {sorted(record['tasks'])} once each"
        )
    tasks = {
        t: {
            s: {k: float("nan") if v is None else v for k, v in m.items()}
            for s, m in record["tasks"][t].items()
        }
        for t in order
    }
    predictions: dict[str, dict[str, dict[str, Any]]] = {}
    pred_dir = run_dir / "predictions"
    if pred_dir.is_dir():
        for f in sorted(pred_dir.glob("*.jsonl")):
            task, _, split = f.stem.rpartition("_")
            if task not in tasks or split not in _SPLITS:
                raise ValueError(
                    f"{f}: name must be <task>_<split>.jsonl with a task of metrics.json {sorted(tasks)}"
                )
            predictions.setdefault(task, {})[split] = _read_predictions(f)
    extra = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
    avg = {
        s: float("nan") if v is None else v
        for s, v in (record.get("avg_macro_f1") or _avg_by_split(tasks)).items()
    }
    return RunRecord(record["variant"], int(record["seed"]), tasks, avg, predictions, extra, str(run_dir))


def _read_predictions(path: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no rows")
    for key in ("y_true", "y_pred"):
        if any(key not in r for r in rows):
            raise ValueError(f"{path}: every row needs {key!r}")

    def column(key: str) -> Any:
        present = [key in r for r in rows]
        if not any(present):
            return None
        if not all(present):
            raise ValueError(f"{path}: {key!r} is present in some rows only")
        return [r[key] for r in rows]

    score, gate, ids = column("score"), column("gate"), column("id")
    return {
        "y_true": np.asarray(column("y_true"), dtype=np.int64),
        "y_pred": np.asarray(column("y_pred"), dtype=np.int64),
        "score": None if score is None else np.asarray(score, dtype=np.float64),
        "gate": None if gate is None else np.asarray(gate, dtype=np.float64),
        "id": ids,
    }


# --------------------------------------------------------------------------------------------------------------
# Comparison of variants and report
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """Variants x tasks (+ "average"): mean ± SD over runs, bootstrap CI, Welch + BH against a baseline."""

    split: str = field(metadata={"help": "Split compared (e.g. 'test')."})
    metric: str = field(metadata={"help": "Metric compared (e.g. 'macro_f1')."})
    tasks: list[str] = field(
        metadata={"help": "Task names in order (the 'average' column comes after them)."}
    )
    variants: list[str] = field(metadata={"help": "Variant names in order."})
    baseline: str | None = field(metadata={"help": "Variant the others are tested against."})
    cells: dict[str, dict[str, dict[str, Any]]] = field(
        metadata={
            "help": "variant -> task|'average' -> {mean, sd, n, values, ci_low, ci_high, diff, p, p_adj, reject}."
        }
    )
    seeds: dict[str, list[int]] = field(
        default_factory=dict, metadata={"help": "variant -> seeds of its runs."}
    )
    alpha: float = field(default=0.05, metadata={"help": "BH false discovery rate."})
    level: float = field(default=0.95, metadata={"help": "Bootstrap CI level."})

    @property
    def columns(self) -> list[str]:
        """Tasks followed by 'average'."""
        return [*self.tasks, AVERAGE]


def _as_records(runs: Any) -> dict[str, list[RunRecord]]:
    if isinstance(runs, Mapping):
        grouped = {v: [r if isinstance(r, RunRecord) else load_run(r) for r in rs] for v, rs in runs.items()}
    elif isinstance(runs, Sequence) and not isinstance(runs, str):
        grouped = {}
        for r in runs:
            rec = r if isinstance(r, RunRecord) else load_run(r)
            grouped.setdefault(rec.variant, []).append(rec)
    else:
        raise TypeError(
            f"runs must be a list of run folders/RunRecords or a mapping variant -> list, got {type(runs).__name__}"
        )
    empty = [v for v, rs in grouped.items() if not rs]
    if not grouped or empty:
        raise ValueError(f"no runs given{f' for variant(s) {empty}' if empty else ''}")
    return grouped


def compare_runs(
    runs: Mapping[str, Sequence[RunRecord | str | os.PathLike]] | Sequence[RunRecord | str | os.PathLike],
    baseline: str | None = "baseline",
    split: str = "test",
    metric: str = "macro_f1",
    alpha: float = 0.05,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare variants over seeds: per task and average, mean ± SD, a bootstrap CI (when every run of the
    variant saved predictions for the split), and Welch tests against `baseline` with BH over all tests.

    `runs` is a list of run folders / RunRecords (grouped by their variant) or a mapping variant -> runs.
    """
    grouped = _as_records(runs)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if baseline is not None and baseline not in grouped:
        raise ValueError(f"baseline {baseline!r} not among the variants {list(grouped)}")
    first = next(iter(grouped.values()))[0]
    tasks = list(first.tasks)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for variant, records in grouped.items():
        per_run = []
        for rec in records:
            if set(rec.tasks) != set(tasks):
                raise ValueError(
                    f"run {rec.path or rec.variant} has tasks {sorted(rec.tasks)}, expected {sorted(tasks)}"
                )
            missing = [t for t in tasks if split not in rec.tasks[t] or metric not in rec.tasks[t][split]]
            if missing:
                raise ValueError(f"run {rec.path or rec.variant}: no {split} {metric} for task(s) {missing}")
            per_run.append({t: rec.tasks[t][split] for t in tasks})
        agg = aggregate_runs(per_run)
        cells[variant] = {}
        for col in [*tasks, AVERAGE]:
            values = (
                [float(np.mean([float(r[t][metric]) for t in tasks])) for r in per_run]
                if col == AVERAGE
                else [float(r[col][metric]) for r in per_run]
            )
            cells[variant][col] = {**agg[col][metric], "values": values, "ci_low": None, "ci_high": None}
        _add_bootstrap(cells[variant], records, tasks, split, metric, n_resamples, level, seed)
    if baseline is not None:
        keys = [(v, c) for v in grouped if v != baseline for c in [*tasks, AVERAGE]]
        if keys:
            tests = welch_bh(
                {f"{v}\x00{c}": cells[v][c]["values"] for v, c in keys},
                {f"{v}\x00{c}": cells[baseline][c]["values"] for v, c in keys},
                alpha=alpha,
            )
            for v, c in keys:
                t = tests[f"{v}\x00{c}"]
                cells[v][c].update(
                    diff=t["diff"], t=t["t"], df=t["df"], p=t["p"], p_adj=t["p_adj"], reject=t["reject"]
                )
    return Comparison(
        split,
        metric,
        tasks,
        list(grouped),
        baseline,
        cells,
        {v: [r.seed for r in rs] for v, rs in grouped.items()},
        alpha,
        level,
    )


def _add_bootstrap(
    cells: dict[str, dict[str, Any]],
    records: Sequence[RunRecord],
    tasks: Sequence[str],
    split: str,
    metric: str,
    n_resamples: int,
    level: float,
    seed: int,
) -> None:
    """Per task, the CI of the mean over runs (resample seed [seed, task index]); when every task has
    predictions, the average's CI from the per-task resamples averaged (tasks are independent samples)."""
    per_task_values = []
    for i, task in enumerate(tasks):
        preds = [r.predictions.get(task, {}).get(split) for r in records]
        if any(p is None for p in preds):
            continue
        if metric == "roc_auc" and any(
            p["score"] is None or (p["score"].ndim == 2 and p["score"].shape[1] != 2) for p in preds
        ):
            continue  # no scores, or a multi-class task: no bootstrap CI for ROC-AUC
        y_true = preds[0]["y_true"]
        if any(len(p["y_true"]) != len(y_true) or np.any(p["y_true"] != y_true) for p in preds):
            raise ValueError(
                f"task {task!r}, split {split!r}: runs predicted different examples; cannot pool them"
            )
        scores = [p["score"] for p in preds] if metric == "roc_auc" else None
        y, y_pred, y_score = _prepare_bootstrap(
            y_true, np.stack([p["y_pred"] for p in preds]), metric, scores
        )
        values = _bootstrap_values(y, y_pred, metric, n_resamples, np.random.default_rng([seed, i]), y_score)
        cells[task]["ci_low"], cells[task]["ci_high"] = _percentiles(values, level)
        per_task_values.append(values)
    if metric != "roc_auc" and len(per_task_values) == len(tasks):
        cells[AVERAGE]["ci_low"], cells[AVERAGE]["ci_high"] = _percentiles(
            np.mean(per_task_values, axis=0), level
        )


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _fmt_p(p: Any) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def render_markdown_table(comparison: Comparison) -> str:
    """Markdown: a variants x tasks table of mean ± SD (* = BH-significant vs the baseline), then per cell the
    bootstrap CI, difference to the baseline, Welch p and BH-adjusted p."""
    c = comparison
    header = ["variant", "runs", *c.tasks, "avg"]
    lines = [
        f"{c.metric} on {c.split}: mean ± SD over runs (sample SD, ddof=1)"
        + (
            f"; * = differs from {c.baseline!r} (Welch t-test, Benjamini–Hochberg q ≤ {c.alpha:g})"
            if c.baseline
            else ""
        ),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    for v in c.variants:
        row = [v, str(len(c.seeds.get(v, [])) or c.cells[v][AVERAGE]["n"])]
        for col in c.columns:
            cell = c.cells[v][col]
            mark = "*" if cell.get("reject") else ""
            row.append(f"{_fmt(cell['mean'])} ± {_fmt(cell['sd'])}{mark}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"| variant | column | mean | SD | {round(c.level * 100):d} % bootstrap CI | diff vs baseline | p (Welch) | p (BH) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in c.variants:
        for col in c.columns:
            cell = c.cells[v][col]
            ci = (
                f"[{_fmt(cell['ci_low'])}, {_fmt(cell['ci_high'])}]"
                if cell.get("ci_low") is not None
                else "–"
            )
            diff = cell.get("diff")
            diff_s = "–" if diff is None else f"{diff:+.3f}"
            lines.append(
                f"| {v} | {col} | {_fmt(cell['mean'])} | {_fmt(cell['sd'])} | {ci} | {diff_s} | "
                f"{_fmt_p(cell.get('p'))} | {_fmt_p(cell.get('p_adj'))} |"
            )
    return "\n".join(lines) + "\n"


def _new_figure(width: float, height: float) -> Any:
    """A Figure on the Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def task_f1_figure(comparison: Comparison) -> Any:
    """Grouped bars: the compared metric per task (and average) by variant, SD error bars."""
    c = comparison
    fig = _new_figure(max(6.0, 1.2 * len(c.columns) * max(1, len(c.variants)) / 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(c.variants)
    x = np.arange(len(c.columns))
    for j, v in enumerate(c.variants):
        means = [c.cells[v][col]["mean"] for col in c.columns]
        sds = [0.0 if math.isnan(c.cells[v][col]["sd"]) else c.cells[v][col]["sd"] for col in c.columns]
        ax.bar(x + (j - (len(c.variants) - 1) / 2) * width, means, width, yerr=sds, capsize=3, label=v)
    ax.set_xticks(x, c.columns)
    ax.set_ylabel(f"{c.split} {c.metric}")
    lows = [c.cells[v][col]["mean"] for v in c.variants for col in c.columns]
    ax.set_ylim(max(0.0, min(lows) - 0.1), 1.0)
    ax.legend(
        fontsize="small", ncols=min(len(c.variants), 5), loc="upper center", bbox_to_anchor=(0.5, -0.08)
    )
    ax.set_title(f"{c.metric} by task and variant (mean ± SD over runs)")
    fig.tight_layout()
    return fig


def plot_task_f1_by_variant(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Save `task_f1_figure` as PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    task_f1_figure(comparison).savefig(path, format="png")
    return path


def gate_figure(gate_values_by_task: Mapping[str, Sequence[float]]) -> Any:
    """Box plots of per-example gate values (e.g. each example's mean gate), one box per task."""
    if not gate_values_by_task:
        raise ValueError("no gate values given")
    data = {t: np.asarray(v, dtype=np.float64).ravel() for t, v in gate_values_by_task.items()}
    empty = [t for t, v in data.items() if v.size == 0 or not np.all(np.isfinite(v))]
    if empty:
        raise ValueError(f"gate values of task(s) {empty} are empty or not finite")
    fig = _new_figure(max(5.0, 1.3 * len(data)), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.boxplot(list(data.values()), tick_labels=list(data), showmeans=True)
    ax.set_ylabel("gate value")
    ax.set_title("Distribution of gate values per task")
    fig.tight_layout()
    return fig


def plot_gate_distribution(
    gate_values_by_task: Mapping[str, Sequence[float]], path: str | os.PathLike
) -> Path:
    """Save `gate_figure` as PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gate_figure(gate_values_by_task).savefig(path, format="png")
    return path


def gate_values_from_runs(
    runs: Sequence[RunRecord | str | os.PathLike], split: str = "test"
) -> dict[str, np.ndarray]:
    """Pool the per-example gate values saved in the runs' predictions, per task (tasks without gates are left out)."""
    out: dict[str, list[np.ndarray]] = {}
    for r in runs:
        rec = r if isinstance(r, RunRecord) else load_run(r)
        for task, by_split in rec.predictions.items():
            pred = by_split.get(split)
            if pred is not None and pred.get("gate") is not None:
                out.setdefault(task, []).append(pred["gate"])
    return {t: np.concatenate(v) for t, v in out.items()}


def write_report(
    comparison: Comparison,
    out_dir: str | os.PathLike,
    gate_values_by_task: Mapping[str, Sequence[float]] | None = None,
    title: str = "SURGELLM evaluation report",
) -> Path:
    """Write report.md with the tables and PNG plots (task_f1_by_variant.png, gate_distribution.png)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_task_f1_by_variant(comparison, out_dir / "task_f1_by_variant.png")
    parts = [
        f"# {title}",
        "",
        f"Split: `{comparison.split}`. Runs per variant: "
        + ", ".join(f"{v}: seeds {comparison.seeds.get(v, [])}" for v in comparison.variants)
        + ". Average = unweighted mean over tasks.",
        "",
        render_markdown_table(comparison),
        f"![{comparison.metric} by variant](task_f1_by_variant.png)",
        "",
    ]
    if gate_values_by_task:
        plot_gate_distribution(gate_values_by_task, out_dir / "gate_distribution.png")
        parts += ["![gate values per task](gate_distribution.png)", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(parts))
    return path
