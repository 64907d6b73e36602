"""Per-task metrics (docs/method.md#training-protocol) with scikit-learn/scipy, by problem type.

Single-label: macro-F1 (primary), accuracy, macro precision and recall, ROC-AUC. Multi-label (at the task's threshold):
micro-F1, macro-F1 (primary), subset accuracy. Regression: Pearson, Spearman, RMSE; primary = (Pearson + Spearman) / 2
(GLUE's convention). The run's average (early stopping, reports, key ``avg_macro_f1``) is the unweighted mean of
the tasks' primary scores: the mean macro-F1 when every task is a classification task.

Undefined correlations: Pearson and Spearman are undefined (NaN; null in metrics.json) when the targets or the
predictions are constant or there are fewer than two rows. The primary score counts such a correlation as 0 (no
correlation: a model predicting one value has none), so ``avg_macro_f1`` and early stopping stay defined; the
evaluation logs a warning naming the task and why, and metrics.json lists it under ``undefined_scores``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..problem_types import DEFAULT_PROBLEM_TYPE, METRICS, TYPE_METRICS, info, primary_score  # noqa: F401 (the metric names' old home)

CALIBRATION_METRICS: tuple[str, ...] = ("ece", "brier")
"""Per-task calibration metrics of classification tasks (`calibration_metrics`): expected calibration error over
`ECE_BINS` equal-width bins and the Brier score."""

ECE_BINS = 15

AVERAGE = "average"
"""Key of the unweighted mean over tasks in aggregated results (a task may not use this name)."""


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


def multi_label_metrics(y_true: Any, y_prob: Any, threshold: float = 0.5) -> dict[str, float]:
    """micro_f1, macro_f1 (over labels), subset_accuracy and n of one multi-label task, with scikit-learn; a label
    is predicted when its sigmoid probability is >= `threshold`."""
    from sklearn.metrics import accuracy_score, f1_score

    y = np.asarray(y_true, dtype=np.float64)
    prob = np.asarray(y_prob, dtype=np.float64)
    if y.ndim != 2 or y.shape != prob.shape or y.size == 0:
        raise ValueError(
            f"y_true and y_prob must be [n, num_labels] of one shape, got {y.shape} and {prob.shape}"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("multi-label y_true must be multi-hot (0/1)")
    y, pred = y.astype(np.int64), (prob >= threshold).astype(np.int64)
    return {
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(y, pred)),
        "n": int(len(y)),
    }


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """pearson, spearman (scipy; NaN when either side is constant), rmse and n of one regression task."""
    from scipy.stats import pearsonr, spearmanr

    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(
            f"y_true and y_pred must be non-empty and of one length, got {y.shape} and {p.shape}"
        )
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise ValueError("regression targets and predictions must be finite")
    constant = correlation_undefined_reason(y, p) is not None
    return {
        "pearson": float("nan") if constant else float(pearsonr(y, p)[0]),
        "spearman": float("nan") if constant else float(spearmanr(y, p)[0]),
        "rmse": float(np.sqrt(np.mean((y - p) ** 2))),
        "n": int(y.size),
    }


def correlation_undefined_reason(y_true: Any, y_pred: Any) -> str | None:
    """Why Pearson and Spearman are undefined for these targets and predictions, or None where they are defined."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y.size < 2:
        return f"{y.size} row(s): a correlation needs at least 2"
    if np.ptp(y) == 0:
        return f"the targets are constant ({y[0]:g})"
    if np.ptp(p) == 0:
        return f"the predictions are constant ({p[0]:g})"
    return None


UNDEFINED_CORRELATION = "Pearson and Spearman undefined ({reason}); counted 0 in avg_macro_f1"
"""How an undefined correlation is reported (warning, metrics.json `undefined_scores`)."""


def undefined_scores(
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
    predictions: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[str, dict[str, str]]:
    """{task: {split: note}} for every regression score whose correlation is undefined (NaN), from
    task -> split -> metrics; the note names the reason where `predictions` (y_true, y_pred) hold the values."""
    out: dict[str, dict[str, str]] = {}
    for task, by_split in metrics.items():
        for split, m in by_split.items():
            if "pearson" not in m or not any(np.isnan(float(m[k])) for k in ("pearson", "spearman")):
                continue
            pred = ((predictions or {}).get(task) or {}).get(split)
            reason = correlation_undefined_reason(pred["y_true"], pred["y_pred"]) if pred else None
            note = reason or "constant targets or predictions, or fewer than 2 rows"
            out.setdefault(task, {})[split] = UNDEFINED_CORRELATION.format(reason=note)
    return out


def summarize_tasks(per_task: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Unweighted means over tasks: {"avg_macro_f1": .., "avg_accuracy": .., ...}.

    ``avg_macro_f1`` is the mean of the tasks' primary scores (`primary_score`: a regression task contributes the
    mean of its Pearson and Spearman correlations, an undefined one counting 0); the other averages cover metrics
    every task has, and an undefined one (e.g. ROC-AUC of a one-class split) makes its average NaN.
    """
    if not per_task:
        raise ValueError("no tasks to summarize")
    missing = [t for t, m in per_task.items() if "macro_f1" not in m and "pearson" not in m]
    if missing:
        raise ValueError(f"task(s) {missing} have no 'macro_f1' (nor 'pearson'/'spearman')")
    out = {"avg_macro_f1": float(np.mean([primary_score(m) for m in per_task.values()]))}
    for metric in METRICS[1:]:
        if all(metric in m for m in per_task.values()):
            out[f"avg_{metric}"] = float(np.mean([float(m[metric]) for m in per_task.values()]))
    return out


def expected_calibration_error(confidence: Any, outcome: Any, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error: the mean over `n_bins` equal-width bins of (0, 1] (a bin holds the
    probabilities p with lower < p <= upper; p = 0 goes to the first) of |mean outcome - mean probability|,
    weighted by the bin's share of the rows."""
    p = np.asarray(confidence, dtype=np.float64).reshape(-1)
    y = np.asarray(outcome, dtype=np.float64).reshape(-1)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(
            f"confidence and outcome must be non-empty and of one length, got {p.shape}, {y.shape}"
        )
    bins = np.clip(np.ceil(p * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        rows = bins == b
        total += rows.sum() / p.size * abs(y[rows].mean() - p[rows].mean())
    return float(total)


def calibration_metrics(
    y_true: Any, y_score: Any, problem_type: str = DEFAULT_PROBLEM_TYPE
) -> dict[str, float]:
    """``ece`` (15 bins) and ``brier`` of one classification task's scores.

    Single-label (class ids, softmax rows ``[n, K]``): ECE of the top label (confidence = the largest probability,
    outcome = whether that label is right); Brier = the mean over rows of the squared distance between the
    probability row and the one-hot label, summed over the K classes (Brier 1950; 0 is perfect, 2 the worst).
    Multi-label (multi-hot ``[n, L]``, sigmoid ``[n, L]``): every (row, label) is one binary event, ECE compares
    each bin's mean probability with its share of positives, Brier is the mean squared error over rows and labels.
    """
    prob = np.asarray(y_score, dtype=np.float64)
    if info(problem_type).multi_hot:
        y = np.asarray(y_true, dtype=np.float64)
        if y.shape != prob.shape:
            raise ValueError(f"y_true {y.shape} and y_score {prob.shape} differ in shape")
        return {
            "ece": expected_calibration_error(prob, y),
            "brier": float(np.mean((prob - y) ** 2)),
        }
    y = _as_labels(y_true, "y_true", prob.shape[1])
    one_hot = np.eye(prob.shape[1])[y]
    return {
        "ece": expected_calibration_error(prob.max(axis=1), prob.argmax(axis=1) == y),
        "brier": float(np.mean(np.sum((prob - one_hot) ** 2, axis=1))),
    }
