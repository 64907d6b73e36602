"""Per-task class weights of a run (`class_weights` in the run config): 'balanced' from the training labels, or
explicit values; checked against each task's labels before anything trains."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def balanced_class_weights(labels: Sequence[int], num_labels: int) -> list[float]:
    """scikit-learn's 'balanced' weights n / (K * n_c); a class absent from `labels` gets 0 (it never appears)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels).astype(np.float64)
    n, k = counts.sum(), num_labels
    return [float(n / (k * c)) if c else 0.0 for c in counts]


def resolve_class_weights(
    spec: str | Mapping[str, Any] | None,
    tasks: Mapping[str, int],
    train_labels: Mapping[str, Sequence[int]],
    label_names: Mapping[str, Sequence[str]] | None = None,
    problem_types: Mapping[str, str] | None = None,
) -> dict[str, list[float]] | None:
    """{task: one weight per label} for the tasks `spec` weights (None: no weighted loss).

    'balanced' weights every task from its training labels; a mapping weights only the tasks it names, each with
    'balanced' or explicit values. An unknown task or a list of the wrong length is an error naming the task.
    Class weights are defined for single-label tasks only: a run with a multi-label or regression task is refused
    (the weighted loss is a class-weighted cross-entropy).
    """
    if spec is None:
        return None
    other = {t: k for t, k in (problem_types or {}).items() if k != "single_label"}
    if other:
        raise ValueError(
            f"class_weights is defined for single-label tasks only (a class-weighted cross-entropy); this run has "
            f"{other}. Remove class_weights, or train those tasks without it."
        )
    wanted: Mapping[str, Any] = {t: "balanced" for t in tasks} if spec == "balanced" else spec
    unknown = [t for t in wanted if t not in tasks]
    if unknown:
        raise ValueError(
            f"class_weights names task(s) {unknown} that the run does not have; tasks: {list(tasks)}."
        )
    out: dict[str, list[float]] = {}
    for task, value in wanted.items():
        k = tasks[task]
        if value == "balanced":
            out[task] = balanced_class_weights(train_labels[task], k)
            continue
        weights = [float(w) for w in value]
        if len(weights) != k:
            names = list((label_names or {}).get(task, range(k)))
            raise ValueError(
                f"class_weights of task {task!r} has {len(weights)} value(s) but the task has {k} labels {names} "
                "(one weight per label, in label order)."
            )
        out[task] = weights
    return out


def class_weight_table(weights: Mapping[str, Sequence[float]], tasks: Mapping[str, int]) -> torch.Tensor:
    """[num_tasks, max_num_labels] float tensor in task order; tasks without weights get 1 for every label."""
    table = torch.ones(len(tasks), max(tasks.values()), dtype=torch.float32)
    for i, task in enumerate(tasks):
        if task in weights:
            table[i, : tasks[task]] = torch.tensor(list(weights[task]), dtype=torch.float32)
    return table
