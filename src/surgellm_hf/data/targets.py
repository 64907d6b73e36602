"""Label parsing of multi-label and regression tasks (single-label labels are parsed in `loading`).

A multi-label row's label is a list of label names (of the task's `label_names`) or a multi-hot vector of 0/1 of the
task's width; it is stored as the multi-hot vector (floats). A regression row's label is one finite number, stored
as the one-element list ``[target]``. When a run mixes problem types, single-label labels are stored as
``[class id]`` too (`as_label_vectors`): one label column type for every task, so the tasks' splits concatenate.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

_SHOWN = 5


def label_feature(problem_type: str) -> Any:
    """The `datasets` feature of the label column: int64 class ids, or a list of float32 (multi-hot / [target])."""
    import datasets

    if problem_type == "single_label":
        return datasets.Value("int64")
    return datasets.List(datasets.Value("float32"))


def multi_label_width(spec: Any, names: Sequence[str] | None, raw: Mapping[str, Any]) -> int:
    """A multi-label task's number of labels: `num_labels`, else its label names, else the length of the first
    multi-hot vector in its data (train first)."""
    if spec.num_labels is not None:
        return int(spec.num_labels)
    if names:
        return len(names)
    for ds in raw.values():
        if spec.label_column not in ds.column_names:
            continue
        for value in ds[spec.label_column]:
            if isinstance(value, list | tuple) and value and all(_is_number(v) for v in value):
                return len(value)
            if isinstance(value, list | tuple) and any(isinstance(v, str) for v in value):
                raise ValueError(
                    f"task {spec.name!r}: multi-label labels given as label names need label_names=[...] "
                    f"(e.g. row label {value!r:.60})"
                )
    raise ValueError(
        f"task {spec.name!r}: cannot infer the number of labels of a multi-label task; pass label_names= or "
        "num_labels="
    )


def convert_targets(
    problem_type: str,
    values: Sequence[Any],
    names: Sequence[str] | None,
    width: int,
    ids: Sequence[str],
    loc: str,
) -> tuple[list[list[float]], list[str]]:
    """Multi-label or regression labels -> lists of floats (multi-hot vectors / [target]), and the problems found
    (each naming the offending rows and their ids)."""
    out: list[list[float]] = []
    bad: dict[str, list[int]] = {}
    index = {n: i for i, n in enumerate(names or [])}
    for i, value in enumerate(values):
        vector, problem = (
            _regression_target(value) if problem_type == "regression" else _multi_hot(value, index, width)
        )
        if problem:
            bad.setdefault(problem, []).append(i)
        out.append(vector)
    problems = []
    for problem, rows in bad.items():
        shown = ", ".join(str(i) for i in rows[:_SHOWN]) + (", ..." if len(rows) > _SHOWN else "")
        row_ids = ", ".join(repr(ids[i]) for i in rows[:_SHOWN])
        problems.append(
            f"{loc}: {len(rows)} {problem} (rows {shown}; ids {row_ids}; e.g. {values[rows[0]]!r:.60})"
            + (f"; label_names are {list(names)}" if problem.startswith("label(s) with names not") else "")
        )
    return out, problems


def as_label_vectors(labels: Sequence[Any]) -> list[list[float]]:
    """Single-label class ids as one-element float lists (the label column of a run that mixes problem types)."""
    return [[float(v)] for v in labels]


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _regression_target(value: Any) -> tuple[list[float], str | None]:
    if isinstance(value, list | tuple) and len(value) == 1:
        value = value[0]
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return [0.0], "regression target(s) that are not numbers"
    if not _is_number(value):
        return [0.0], "regression target(s) that are not numbers"
    if not math.isfinite(float(value)):
        return [0.0], "regression target(s) that are NaN or infinite"
    return [float(value)], None


def _multi_hot(value: Any, index: Mapping[str, int], width: int) -> tuple[list[float], str | None]:
    vector = [0.0] * width
    if not isinstance(value, list | tuple):
        return vector, "multi-label label(s) that are not a list of label names or a multi-hot vector"
    if all(isinstance(v, str) for v in value):
        if not index and value:
            return vector, "label(s) given as names without label_names"
        unknown = [v for v in value if v not in index]
        if unknown:
            return vector, "label(s) with names not in the task's label set"
        for v in value:
            vector[index[v]] = 1.0
        return vector, None
    if not all(_is_number(v) for v in value):
        return vector, "multi-label label(s) mixing names and numbers or holding other values"
    if len(value) != width:
        return vector, f"multi-hot vector(s) whose length is not the task's {width} labels"
    if any(v not in (0, 1) for v in value):
        return vector, "multi-hot vector(s) with values other than 0 and 1"
    return [float(v) for v in value], None
