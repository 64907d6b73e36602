"""`MultiTaskData`: ordered tasks, each a `datasets.DatasetDict` with columns id, text and label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .task_spec import SPLITS, _check_split_names


@dataclass
class MultiTaskData:
    """Ordered tasks, each a `datasets.DatasetDict` with columns id (str), text (str), label (int64)."""

    datasets: dict[str, Any] = field(metadata={"help": "Task name -> DatasetDict, in task order."})
    num_labels: dict[str, int] = field(metadata={"help": "Task name -> number of classes."})
    label_names: dict[str, list[str]] = field(metadata={"help": "Task name -> class names in label order."})
    sources: dict[str, dict[str, str]] = field(
        default_factory=dict, metadata={"help": "Task name -> split -> where it was read from (for reports)."}
    )
    problem_types: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "Task name -> 'single_label' (the default for a task not named), 'multi_label' or "
            "'regression'. When any task is not single-label, every task's label column is a list of floats: "
            "[class id], the multi-hot vector or [target] (one column type, so the tasks' splits concatenate)."
        },
    )
    thresholds: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "Multi-label task name -> decision threshold (0.5 if absent)."},
    )

    def problem_type(self, task: str) -> str:
        """The problem type of a task ('single_label' unless declared)."""
        return self.problem_types.get(task, "single_label")

    @property
    def task_names(self) -> list[str]:
        """Task names in order."""
        return list(self.datasets)

    def __getitem__(self, task: str) -> Any:
        if task not in self.datasets:
            raise KeyError(f"unknown task {task!r}; tasks: {self.task_names}")
        return self.datasets[task]

    def __iter__(self):
        return iter(self.datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    def __contains__(self, task: object) -> bool:
        return task in self.datasets

    def tasks_config(self) -> dict[str, int]:
        """Ordered {task: num_labels}, the `tasks` argument of SurgeConfig."""
        return {t: self.num_labels[t] for t in self.datasets}

    def split_sizes(self) -> dict[str, dict[str, int]]:
        """{task: {split: number of rows}}."""
        return {t: {s: len(ds) for s, ds in dd.items()} for t, dd in self.datasets.items()}

    def label_counts(self) -> dict[str, dict[str, list[int]]]:
        """{task: {split: rows per class (multi-label: rows per label), in label order}}; regression tasks:
        {split: [rows]}."""
        out = {}
        for t, dd in self.datasets.items():
            kind = self.problem_type(t)
            out[t] = {}
            for s, ds in dd.items():
                labels = ds["label"]
                if kind == "multi_label":
                    out[t][s] = np.asarray(labels, dtype=np.int64).sum(axis=0).tolist()
                elif kind == "regression":
                    out[t][s] = [len(labels)]
                else:
                    out[t][s] = np.bincount(strata(labels, kind), minlength=self.num_labels[t]).tolist()
        return out

    def subsample(self, max_rows_per_split: int | Mapping[str, int], seed: int = 0) -> MultiTaskData:
        """A new MultiTaskData with at most this many rows per split (stratified by label, seeded, order kept)."""
        import datasets

        limits = (
            max_rows_per_split
            if isinstance(max_rows_per_split, Mapping)
            else dict.fromkeys(SPLITS, max_rows_per_split)
        )
        _check_split_names("subsample", limits, "max_rows_per_split")
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in limits.values()):
            raise ValueError(f"max_rows_per_split must be positive integers, got {max_rows_per_split!r}")
        out = {}
        for task, dd in self.datasets.items():
            out[task] = datasets.DatasetDict(
                {
                    split: ds.select(
                        _stratified_indices(strata(ds["label"], self.problem_type(task)), limits[split], seed)
                    )
                    if split in limits
                    else ds
                    for split, ds in dd.items()
                }
            )
        return MultiTaskData(
            out,
            dict(self.num_labels),
            {k: list(v) for k, v in self.label_names.items()},
            dict(self.sources),
            dict(self.problem_types),
            dict(self.thresholds),
        )

    def with_selection_split(self, fraction: float, seed: int = 0, name: str = "selection") -> MultiTaskData:
        """A new MultiTaskData in which a stratified, seeded `fraction` of each task's training rows (at least one
        row, and one per class where the split allows) forms the split `name` and train keeps the rest, order kept:
        a split to select on (early stopping) that is neither trained on nor the one reported."""
        import datasets

        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
            raise ValueError(f"the selection fraction must be a number in (0, 1), got {fraction!r}")
        out = {}
        for task, dd in self.datasets.items():
            if name in dd:
                raise ValueError(
                    f"task {task!r} already has a {name!r} split; cannot carve another from train"
                )
            train = dd["train"]
            n = max(1, round(fraction * len(train)))
            if n >= len(train):
                raise ValueError(
                    f"task {task!r}: a selection fraction of {fraction:g} takes {n} of its {len(train)} training rows "
                    "and leaves none to train on; use a smaller fraction"
                )
            picked = set(_stratified_indices(strata(train["label"], self.problem_type(task)), n, seed))
            keep = [i for i in range(len(train)) if i not in picked]
            out[task] = datasets.DatasetDict(
                {**dict(dd), "train": train.select(keep), name: train.select(sorted(picked))}
            )
        sources = {
            t: {
                **where,
                name: f"{where.get('train', 'train')} (stratified selection {fraction:g}, seed {seed})",
            }
            for t, where in self.sources.items()
        }
        return MultiTaskData(
            out,
            dict(self.num_labels),
            {k: list(v) for k, v in self.label_names.items()},
            sources,
            dict(self.problem_types),
            dict(self.thresholds),
        )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}({self.num_labels[t]}): {sz}" for t, sz in self.split_sizes().items())
        return f"MultiTaskData({sizes})"


def strata(labels: Sequence[Any], problem_type: str = "single_label") -> np.ndarray:
    """The groups a row is sampled within (holdouts, `max_rows`): single-label rows by class id (an int or a
    one-element list), multi-label and regression rows in one group (a seeded uniform sample)."""
    if problem_type != "single_label":
        return np.zeros(len(labels), dtype=np.int64)
    return np.asarray(
        [v[0] if isinstance(v, list | tuple | np.ndarray) else v for v in labels], dtype=np.int64
    )


def _stratified_indices(labels: Sequence[int], n: int, seed: int) -> list[int]:
    """Indices of a seeded, label-stratified sample of size min(n, len(labels)), in original order.

    Per-class quotas are proportional with largest-remainder rounding; every class present keeps at least
    one row when n allows it.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return list(range(len(labels)))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    quota = np.floor(exact).astype(int)
    if n >= len(classes):
        quota = np.maximum(quota, 1)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while quota.sum() < n:
        c = order[i % len(order)]
        if quota[c] < counts[c]:
            quota[c] += 1
        i += 1
    while quota.sum() > n:  # only when the at-least-one rule overshot: trim the largest classes
        quota[np.argmax(quota)] -= 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return sorted(int(i) for i in np.concatenate(chosen))
