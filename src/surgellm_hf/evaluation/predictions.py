"""Scoring a model on processed splits: logits split by task (per-task scores by problem type), per-task metrics and
records."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..problem_types import (
    DEFAULT_PROBLEM_TYPE,
    DEFAULT_THRESHOLD,
    info,
    label_matrix,
    split_by_task,
)
from .metrics import (
    UNDEFINED_CORRELATION,
    calibration_metrics,
    correlation_undefined_reason,
    multi_label_metrics,
    regression_metrics,
    task_metrics,
)

logger = logging.getLogger(__name__)


def per_task_predictions(
    logits: np.ndarray,
    task_ids: np.ndarray,
    tasks: Mapping[str, int],
    problem_types: Mapping[str, str] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Split padded logits by task: {task: {'index', 'y_pred', 'score'}}. Single-label: score = softmax over the
    task's own labels, y_pred its argmax; multi-label: score = per-label sigmoid [n, L], y_pred the multi-hot
    ``score >= threshold`` (default 0.5; one number or one per label); regression: score = y_pred = the output
    value [n]. A task with a temperature is scored from logits / T."""
    return split_by_task(logits, task_ids, tasks, problem_types, thresholds, temperatures=temperatures)


def task_scores(
    labels: np.ndarray,
    pred: Mapping[str, np.ndarray],
    num_labels: int,
    problem_type: str = DEFAULT_PROBLEM_TYPE,
    threshold: float = DEFAULT_THRESHOLD,
    task: str = "?",
) -> dict[str, float]:
    """One task's metrics by problem type from `per_task_predictions` output and the rows' labels (class ids, or
    the padded label matrix: column 0 / the first L columns, see `normalization.label_matrix`).

    Outputs that are NaN or infinite (a diverged training) are an error naming `task`; an undefined regression
    correlation is logged as a warning (`metrics.primary_score` counts it 0)."""
    if not np.isfinite(np.asarray(pred["score"], dtype=np.float64)).all():
        raise ValueError(
            f"task {task!r}: the model's outputs are NaN or infinite, so it cannot be scored; the training "
            "diverged (try a lower learning_rate)"
        )
    matrix = label_matrix(np.asarray(labels)[pred["index"]])
    return scores_function(problem_type)(matrix, pred, num_labels, problem_type, threshold, task)


TaskScoresFn = Callable[[np.ndarray, Mapping[str, np.ndarray], int, str, Any, str], dict[str, float]]
"""(label matrix rows, `per_task_predictions` output, num_labels, problem type, threshold, task) -> one task's
metrics, as `task_scores` takes them."""


def scores_function(problem_type: str) -> TaskScoresFn:
    """The metric function a problem type names (`ProblemTypeInfo.task_scores`, ``"module:function"``)."""
    module, _, name = info(problem_type).task_scores.partition(":")
    return getattr(importlib.import_module(module), name)


def single_label_scores(
    matrix: np.ndarray,
    pred: Mapping[str, np.ndarray],
    num_labels: int,
    problem_type: str,
    threshold: Any,
    task: str,
) -> dict[str, float]:
    """A task with class ids: macro-F1, accuracy, precision, recall, ROC-AUC, ECE and Brier."""
    return {
        **task_metrics(matrix[:, 0], pred["y_pred"], pred["score"], num_labels=num_labels),
        **calibration_metrics(matrix[:, 0], pred["score"], problem_type),
    }


def multi_label_scores(
    matrix: np.ndarray,
    pred: Mapping[str, np.ndarray],
    num_labels: int,
    problem_type: str,
    threshold: Any,
    task: str,
) -> dict[str, float]:
    """A task with multi-hot labels: micro-/macro-F1 and subset accuracy at `threshold`, ECE and Brier."""
    y = matrix[:, :num_labels]
    return {
        **multi_label_metrics(y, pred["score"], threshold),
        **calibration_metrics(y, pred["score"], problem_type),
    }


def regression_scores(
    matrix: np.ndarray,
    pred: Mapping[str, np.ndarray],
    num_labels: int,
    problem_type: str,
    threshold: Any,
    task: str,
) -> dict[str, float]:
    """A task with one value per row: Pearson, Spearman and RMSE; an undefined correlation is logged."""
    reason = correlation_undefined_reason(matrix[:, 0], pred["y_pred"])
    if reason:
        logger.warning("task %r: %s", task, UNDEFINED_CORRELATION.format(reason=reason))
    return regression_metrics(matrix[:, 0], pred["y_pred"])


@torch.no_grad()
def predict_split(
    model: Any,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_size: int = 64,
    with_gate: bool = False,
) -> dict[str, np.ndarray]:
    """Logits, labels, task ids (and per-example mean gate values) over a processed split (`encode_split`)."""
    model.eval()
    device = next(model.parameters()).device
    logits, labels, task_ids, gates = [], [], [], []
    cols = [c for c in dataset.column_names]
    for start in range(0, len(dataset), batch_size):
        rows = dataset.select(range(start, min(start + batch_size, len(dataset))))
        batch = collator([{c: r[c] for c in cols} for r in rows])
        y = batch.pop("labels")
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch, output_gate=with_gate and model.config.use_gate)
        logits.append(out.logits.float().cpu().numpy())
        labels.append(y.numpy())
        task_ids.append(batch["task_ids"].cpu().numpy())
        if out.gate is not None:
            gates.append(out.gate.float().mean(dim=-1).cpu().numpy())
    result = {
        "logits": np.concatenate(logits),
        "labels": _stack_labels(labels),
        "task_ids": np.concatenate(task_ids),
    }
    if gates:
        result["gate"] = np.concatenate(gates)
    return result


def _stack_labels(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate per-batch labels: 1-D class ids as they are; padded label matrices of differing widths padded
    with 0 to the widest (the collator pads each batch to its own widest row)."""
    if all(p.ndim == 1 for p in parts):
        return np.concatenate(parts)
    width = max(label_matrix(p).shape[1] for p in parts)
    return np.concatenate([np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in map(label_matrix, parts)])


def evaluate_predictions(
    pred: Mapping[str, np.ndarray],
    tasks: Mapping[str, int],
    ids: Sequence[str] | None = None,
    problem_types: Mapping[str, str] | None = None,
    thresholds: Mapping[str, Any] | None = None,
    label_names: Mapping[str, Sequence[str]] | None = None,
    temperatures: Mapping[str, float] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Per-task metrics and prediction records ({y_true, y_pred, score, gate, id}) from `predict_split` output.

    Records by problem type: single-label class ids; multi-label lists of label names (``label_names``, default
    ``LABEL_<i>``) with the per-label probabilities as score; regression the target and the predicted value.
    Classification tasks also get ``ece`` and ``brier`` (`metrics.calibration_metrics`), of the scores under the
    tasks' `temperatures` (none: the raw softmax / sigmoid).
    """
    metrics, records = {}, {}
    types, limits = problem_types or {}, thresholds or {}
    per_task = per_task_predictions(pred["logits"], pred["task_ids"], tasks, types, limits, temperatures)
    for name, p in per_task.items():
        kind = types.get(name, DEFAULT_PROBLEM_TYPE)
        entry = info(kind)
        metrics[name] = task_scores(
            pred["labels"], p, tasks[name], kind, limits.get(name, DEFAULT_THRESHOLD), task=name
        )
        matrix = label_matrix(np.asarray(pred["labels"])[p["index"]])
        if entry.multi_hot:
            names = list((label_names or {}).get(name) or [f"LABEL_{i}" for i in range(tasks[name])])
            y_true = [[names[j] for j in np.flatnonzero(row[: tasks[name]])] for row in matrix]
            y_pred = [[names[j] for j in np.flatnonzero(row)] for row in p["y_pred"]]
        elif not entry.has_classes:
            y_true, y_pred = matrix[:, 0], p["y_pred"]
        else:
            y_true, y_pred = matrix[:, 0].astype(np.int64), p["y_pred"]
        records[name] = {
            "y_true": y_true,
            "y_pred": y_pred,
            "score": p["score"],
            "gate": pred["gate"][p["index"]] if "gate" in pred else None,
            "id": [ids[i] for i in p["index"]] if ids is not None else None,
        }
    return metrics, records
