"""Per-task metrics (METHOD §6) with scikit-learn: macro-F1 (primary), accuracy, macro precision and recall, ROC-AUC."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "precision", "recall", "roc_auc")
"""Per-task metrics reported (METHOD §6); macro-F1 is primary."""

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
