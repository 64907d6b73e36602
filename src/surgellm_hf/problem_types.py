"""Per-task problem types in one place: their names and codes, the label-matrix layout, scoring and metric names.

A task is single-label (one class: cross-entropy, softmax scores), multi-label (any subset of its labels: BCE with
logits, per-label sigmoid scores compared with a threshold) or regression (one float: squared error, the raw output
value). The model, the pipeline, the ONNX runner, evaluation and training all read the types from here; the losses
(torch) are in `losses_surge`.

Imports only the standard library and numpy (no torch): the torch-free ONNX runner (`serving.runtime`) loads this
file, and the Hub copies it as remote code (a flat sibling of `modeling_surge`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

SINGLE_LABEL = "single_label"
MULTI_LABEL = "multi_label"
REGRESSION = "regression"


class ProblemType(enum.IntEnum):
    """Problem type codes, as the model's loss and label checks hold them in tensors (`PROBLEM_TYPES[code]`)."""

    SINGLE_LABEL = 0
    MULTI_LABEL = 1
    REGRESSION = 2

    @classmethod
    def of(cls, name: str) -> ProblemType:
        """The code of a type name (``"multi_label"`` -> ``ProblemType.MULTI_LABEL``)."""
        return cls(PROBLEM_TYPES.index(name))


PROBLEM_TYPES: tuple[str, ...] = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)
"""Per-task problem types: one class (cross-entropy), any subset of labels (BCE with logits), one float (MSE)."""

DEFAULT_PROBLEM_TYPE = SINGLE_LABEL
"""The type of a task whose config names none (configs and exports written before per-task types)."""

HF_PROBLEM_TYPES: dict[str, str] = {
    SINGLE_LABEL: "single_label_classification",
    MULTI_LABEL: "multi_label_classification",
    REGRESSION: "regression",
}
"""SURGELLM task type -> transformers' `config.problem_type` name."""

DEFAULT_THRESHOLD = 0.5
"""A multi-label task's decision threshold when none was set or calibrated."""

SCORING: dict[str, str] = {SINGLE_LABEL: "softmax", MULTI_LABEL: "sigmoid", REGRESSION: "none"}
"""How a task's scores come from its logits, by type (transformers' ``function_to_apply`` names)."""

# -- metric names ----------------------------------------------------------------------------------------------------
METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "precision", "recall", "roc_auc")
"""Per-task metrics reported (docs/method.md#training-protocol); macro-F1 is primary."""

TYPE_METRICS: tuple[str, ...] = ("micro_f1", "subset_accuracy", "pearson", "spearman", "rmse")
"""Further per-task metrics of multi-label (micro_f1, subset_accuracy; macro_f1 is shared) and regression tasks."""

LOGGED_METRICS: dict[str, tuple[str, ...]] = {
    SINGLE_LABEL: ("macro_f1", "accuracy", "roc_auc"),
    MULTI_LABEL: ("micro_f1", "macro_f1", "subset_accuracy"),
    REGRESSION: ("pearson", "spearman", "rmse"),
}
"""The metrics the Trainer logs per task during training (`training.trainer.build_compute_metrics`), by type."""


def primary_score(metrics: Mapping[str, float]) -> float:
    """A task's primary score: macro_f1 (single- and multi-label), else the mean of pearson and spearman, an
    undefined (NaN) correlation counting 0 (see `evaluation.metrics`), so a regression task never makes it NaN."""
    if "macro_f1" in metrics:
        return float(metrics["macro_f1"])
    if "pearson" in metrics and "spearman" in metrics:
        pearson, spearman = (float(metrics[k]) for k in ("pearson", "spearman"))
        return float(np.nan_to_num(pearson, nan=0.0) + np.nan_to_num(spearman, nan=0.0)) / 2
    raise ValueError(f"metrics {sorted(metrics)} have neither 'macro_f1' nor 'pearson'/'spearman'")


# -- the label matrix --------------------------------------------------------------------------------------------------
def label_matrix(labels: Any) -> np.ndarray:
    """Labels as the padded float ``[n_rows, k]`` matrix: numbers become column 0, (ragged) rows are padded with 0.

    The layout of mixed-type batches (`SurgeForSequenceClassification.forward`): column 0 holds a single-label
    class id or a regression target, the first L columns a multi-label row's multi-hot vector.
    """
    if hasattr(labels, "detach") and hasattr(labels, "numpy"):  # a torch tensor (no torch import here)
        labels = labels.detach().cpu().numpy()
    if isinstance(labels, np.ndarray) and labels.dtype != object:
        arr = labels.astype(np.float64)
        if arr.ndim == 1:
            return arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise ValueError(f"`labels` must be 1-D or 2-D, got shape {arr.shape}.")
        return arr
    rows = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in labels]
    if any(r.ndim != 1 or r.size == 0 for r in rows):
        raise ValueError("`labels` rows must be numbers or non-empty 1-D multi-hot vectors.")
    width = max((r.size for r in rows), default=1)
    out = np.zeros((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


# -- scoring ---------------------------------------------------------------------------------------------------------
def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in the dtype it is given (as transformers' text-classification pipeline)."""
    maxes = np.max(logits, axis=-1, keepdims=True)
    shifted_exp = np.exp(logits - maxes)
    return shifted_exp / shifted_exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, in the dtype it is given (as transformers' text-classification pipeline)."""
    return 1.0 / (1.0 + np.exp(-logits))


def task_probabilities(logits: np.ndarray, num_labels: int, problem_type: str = SINGLE_LABEL) -> np.ndarray:
    """One task's scores from the first `num_labels` columns (last axis) of padded SURGELLM logits: softmax
    (single-label), sigmoid per label (multi-label), the raw value (regression, `num_labels` 1), as transformers'
    text-classification pipeline scores each problem type.

    The one per-task scoring of the package (the pipeline, `surgellm predict`, the ONNX runner and evaluation use
    it); it computes in the dtype it is given.
    """
    own = np.asarray(logits)[..., :num_labels]
    return _SCORE_FUNCTIONS[SCORING.get(problem_type, "softmax")](own)


_SCORE_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "softmax": softmax,
    "sigmoid": sigmoid,
    "none": lambda own: own,
}
ProbabilityFn = Callable[[np.ndarray, int, str], np.ndarray]


def split_by_task(
    logits: np.ndarray,
    task_ids: np.ndarray,
    tasks: Mapping[str, int],
    problem_types: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float | Sequence[float]] | None = None,
    probabilities: ProbabilityFn = task_probabilities,
    temperatures: Mapping[str, float] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Padded logits split by task: {task: {'index', 'y_pred', 'score'}} (what
    `surgellm_hf.evaluation.predictions.per_task_predictions` and the ONNX runner return).

    Single-label: score = softmax over the task's own labels, y_pred its argmax; multi-label: score = per-label
    sigmoid [n, L], y_pred the multi-hot ``score >= threshold`` (default 0.5; a threshold is one number or one per
    label); regression: score = y_pred = the output value [n]. A task with a temperature T (`temperatures`,
    fitted by `surgellm calibrate`) is scored from logits / T. Scores are computed in float64.
    """
    out = {}
    for t, (name, n_labels) in enumerate(tasks.items()):
        idx = np.flatnonzero(np.asarray(task_ids) == t)
        if not len(idx):
            continue
        kind = (problem_types or {}).get(name, DEFAULT_PROBLEM_TYPE)
        own = np.asarray(logits)[idx].astype(np.float64)
        if kind != REGRESSION and (temperatures or {}).get(name) is not None:
            own = own[..., :n_labels] / float(temperatures[name])
        prob = probabilities(own, n_labels, kind)
        if kind == MULTI_LABEL:
            limit = np.asarray((thresholds or {}).get(name, DEFAULT_THRESHOLD), dtype=np.float64)
            y_pred = (prob >= limit).astype(np.int64)
        elif kind == REGRESSION:
            prob = prob[:, 0]
            y_pred = prob
        else:
            y_pred = prob.argmax(axis=1)
        out[name] = {"index": idx, "y_pred": y_pred, "score": prob}
    return out


def prediction_records(
    by_task: Mapping[str, Mapping[str, np.ndarray]],
    num_rows: int,
    label_names: Mapping[str, Sequence[str]],
    problem_types: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One `predict_texts` record per row from `split_by_task` / `per_task_predictions` output, in row order.

    Single-label: ``{task, label, label_name, scores}`` (label id, its name, every label's softmax probability);
    multi-label: label and label_name are the lists of ids and names at/above the threshold, scores every label's
    sigmoid probability; regression: ``{task, label: None, label_name: None, value, scores: {name: value}}``.
    """
    rows: dict[int, dict[str, Any]] = {}
    for name, pred in by_task.items():
        names, kind = list(label_names[name]), (problem_types or {}).get(name, DEFAULT_PROBLEM_TYPE)
        for j, i in enumerate(pred["index"]):
            if kind == REGRESSION:
                value = float(pred["y_pred"][j])
                rows[int(i)] = {"task": name, "label": None, "label_name": None, "value": value,
                                "scores": {names[0]: value}}  # fmt: skip
                continue
            if kind == MULTI_LABEL:
                label: Any = [int(k) for k in np.flatnonzero(pred["y_pred"][j])]
                label_name: Any = [names[k] for k in label]
            else:
                label = int(pred["y_pred"][j])
                label_name = names[label]
            rows[int(i)] = {
                "task": name,
                "label": label,
                "label_name": label_name,
                "scores": {n: float(p) for n, p in zip(names, pred["score"][j])},
            }
    missing = [i for i in range(num_rows) if i not in rows]
    if missing:
        raise ValueError(f"rows {missing[:5]} have no task among {list(by_task)} (task ids out of range?)")
    return [rows[i] for i in range(num_rows)]


__all__ = [
    "SINGLE_LABEL",
    "MULTI_LABEL",
    "REGRESSION",
    "ProblemType",
    "PROBLEM_TYPES",
    "DEFAULT_PROBLEM_TYPE",
    "HF_PROBLEM_TYPES",
    "DEFAULT_THRESHOLD",
    "SCORING",
    "METRICS",
    "TYPE_METRICS",
    "LOGGED_METRICS",
    "primary_score",
    "label_matrix",
    "softmax",
    "sigmoid",
    "task_probabilities",
    "ProbabilityFn",
    "split_by_task",
    "prediction_records",
]
