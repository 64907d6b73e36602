"""Per-task class weights of a run (`class_weights` in the run config): 'balanced' from the training labels, or
explicit values; checked against each task's labels and problem type before anything trains.

Single-label tasks get one weight per class (the weighted cross-entropy's `weight`); multi-label tasks one
`pos_weight` per label (as in `binary_cross_entropy_with_logits(pos_weight=...)`); regression tasks get none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..problem_types import DEFAULT_PROBLEM_TYPE, PROBLEM_TYPE_INFO, info

# What a task's weights mean in the loss, by problem type (recorded in the run folder as `class_weights_applied`;
# `ProblemTypeInfo.weight_meaning`, a snapshot of the built-in types).
WEIGHT_MEANING = {k: t.weight_meaning for k, t in PROBLEM_TYPE_INFO.items() if t.weight_meaning}


def balanced_class_weights(labels: Sequence[int], num_labels: int) -> list[float]:
    """scikit-learn's 'balanced' weights n / (K * n_c); a class absent from `labels` gets 0 (it never appears)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels).astype(np.float64)
    n, k = counts.sum(), num_labels
    return [float(n / (k * c)) if c else 0.0 for c in counts]


def balanced_pos_weights(
    multi_hot: Sequence[Sequence[float]],
    num_labels: int,
    task: str = "",
    label_names: Sequence[str] | None = None,
) -> list[float]:
    """Per-label pos_weight = n_negative / n_positive over the training rows (torch's BCEWithLogits meaning); a
    label with no positive row (or no negative row, pos_weight 0) is an error naming the task and the label."""
    matrix = np.asarray(multi_hot, dtype=np.float64).reshape(-1, num_labels)
    pos = matrix.sum(axis=0)
    neg = matrix.shape[0] - pos
    names = list(label_names or range(num_labels))
    for j in range(num_labels):
        if pos[j] == 0 or neg[j] == 0:
            which = "no positive" if pos[j] == 0 else "no negative"
            raise ValueError(
                f"class_weights 'balanced' of multi-label task {task!r}: label {names[j]!r} has {which} training "
                f"row ({int(pos[j])} of {matrix.shape[0]} positive), so pos_weight = n_negative / n_positive is "
                "undefined or 0; give this task explicit pos_weights or leave it out of class_weights."
            )
    return [float(v) for v in neg / pos]


def resolve_class_weights(
    spec: str | Mapping[str, Any] | None,
    tasks: Mapping[str, int],
    train_labels: Mapping[str, Sequence[Any]],
    label_names: Mapping[str, Sequence[str]] | None = None,
    problem_types: Mapping[str, str] | None = None,
) -> dict[str, list[float]] | None:
    """{task: one weight per label} for the tasks `spec` weights, in task order (None: no weighted loss).

    'balanced' weights every classification task from its training labels (single-label: n / (K * n_c);
    multi-label: pos_weight = n_negative / n_positive per label) and leaves regression tasks unweighted; a mapping
    weights only the tasks it names, each with 'balanced' or explicit values (single-label: one class weight per
    class; multi-label: one pos_weight per label). An unknown task, a regression task named explicitly, a list of
    the wrong length or a value that is not a finite number > 0 is an error naming the task.
    """
    if spec is None:
        return None
    types = {t: (problem_types or {}).get(t, DEFAULT_PROBLEM_TYPE) for t in tasks}
    if spec == "balanced":
        wanted: Mapping[str, Any] = {t: "balanced" for t in tasks if info(types[t]).weight_meaning}
    elif isinstance(spec, Mapping):
        wanted = spec
    else:
        raise ValueError(
            f"class_weights must be null, 'balanced' or {{task: 'balanced' | [weights]}}, got {spec!r}."
        )
    unknown = [t for t in wanted if t not in tasks]
    if unknown:
        raise ValueError(
            f"class_weights names task(s) {unknown} that the run does not have; tasks: {list(tasks)}."
        )
    unweighted = [t for t in wanted if not info(types[t]).weight_meaning]
    if unweighted:
        kinds = " or ".join(dict.fromkeys(types[t] for t in unweighted))
        raise ValueError(
            f"class_weights names {kinds} task(s) {unweighted}; class weights are defined for single-label "
            "(class weights) and multi-label (pos_weight) tasks only. Leave them out (run-wide 'balanced' skips "
            f"{kinds} tasks)."
        )
    out: dict[str, list[float]] = {}
    for task in (t for t in tasks if t in wanted):  # task order, whatever order the mapping has
        value, k, kind = wanted[task], tasks[task], types[task]
        names = list((label_names or {}).get(task) or range(k))
        if value == "balanced":
            labels = train_labels[task]
            if info(kind).multi_hot:
                out[task] = balanced_pos_weights(labels, k, task, names)
            else:
                ids = (
                    np.asarray(labels, dtype=np.float64).reshape(len(labels), -1)[:, 0] if len(labels) else []
                )
                out[task] = balanced_class_weights(np.asarray(ids, dtype=np.int64), k)
            continue
        out[task] = _explicit_weights(task, value, k, kind, names)
    return out


CLASS_WEIGHTS_SPEC = "null, 'balanced' or {task: 'balanced' | [weights]}"
"""What `class_weights` accepts (run config key and `SurgeTrainingArguments.class_weights`)."""


def check_class_weights_spec(value: Any) -> None:
    """Refuse a `class_weights` setting that is not null, 'balanced' or {task: 'balanced' | list of finite numbers
    > 0} (which tasks and how many labels are checked against the data by `resolve_class_weights`)."""
    if value is None or value == "balanced":
        return
    if not isinstance(value, Mapping):
        raise ValueError(f"`class_weights` must be {CLASS_WEIGHTS_SPEC}, got {value!r}.")
    for task, weights in value.items():
        if weights != "balanced":
            check_weight_values(task, weights)


def needs_training_labels(spec: Any) -> bool:
    """Whether a `class_weights` setting weights some task 'balanced' (computed from its training labels)."""
    return spec == "balanced" or (isinstance(spec, Mapping) and "balanced" in spec.values())


def training_labels_by_task(
    task_ids: Sequence[int], labels: Sequence[Any], tasks: Sequence[str]
) -> dict[str, list]:
    """{task: its rows' labels, in row order} of an encoded training split (`task_ids` index `tasks`), as
    `resolve_class_weights` takes them."""
    ids = np.asarray(task_ids)
    return {name: [labels[i] for i in np.flatnonzero(ids == t)] for t, name in enumerate(tasks)}


def check_weight_values(task: str, value: Any) -> None:
    """Raise a ValueError naming the task unless `value` is a non-empty list of finite numbers > 0."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(
            f"class_weights of task {task!r} must be 'balanced' or a list of weights, got {value!r}."
        )
    bad = [w for w in value if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w < math.inf]
    if bad:
        raise ValueError(
            f"class_weights of task {task!r} must be finite numbers > 0 (class weights of a single-label task, "
            f"pos_weights of a multi-label task), got {list(value)!r}; offending: {bad!r}."
        )


def _explicit_weights(task: str, value: Any, k: int, kind: str, names: list[Any]) -> list[float]:
    """Explicit weights of one task, checked: one finite number > 0 per label, in label order."""
    check_weight_values(task, value)
    if len(value) != k:
        raise ValueError(
            f"class_weights of task {task!r} has {len(value)} value(s) but the task has {k} labels {names} "
            f"(one {info(kind).weight_meaning} per label, in label order)."
        )
    return [float(w) for w in value]


def class_weights_applied(
    weights: Mapping[str, Sequence[float]], problem_types: Mapping[str, str], tasks: Sequence[str]
) -> dict[str, str]:
    """{task: what its weights mean in the loss, or why it has none}, in task order, for the run folder."""
    out = {}
    for task in tasks:
        kind = problem_types.get(task, DEFAULT_PROBLEM_TYPE)
        if task in weights:
            out[task] = str(info(kind).weight_meaning)
        else:
            out[task] = "none (not listed)" if info(kind).weight_meaning else f"none ({kind})"
    return out


def class_weight_table(weights: Mapping[str, Sequence[float]], tasks: Mapping[str, int]) -> torch.Tensor:
    """[num_tasks, max_num_labels] float tensor in task order (class weights, or a multi-label task's
    pos_weights); tasks without weights get 1 for every label."""
    table = torch.ones(len(tasks), max(tasks.values()), dtype=torch.float32)
    for i, task in enumerate(tasks):
        if task in weights:
            table[i, : tasks[task]] = torch.tensor(list(weights[task]), dtype=torch.float32)
    return table
