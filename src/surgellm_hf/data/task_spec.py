"""`TaskSpec`: where one task's data lives and how its columns map onto ``text`` (/ ``text_pair``) / ``label``;
the split names."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .preprocessing import PREPROCESSORS

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""Split names a task may have, in canonical order."""

EVALUATION_SPLITS: tuple[str, ...] = ("validation", "test")
"""The splits a run is scored on and reports, in that order."""

REQUIRED_SPLITS: tuple[str, ...] = ("train", "validation")
"""The splits a task needs by default (training and early stopping)."""

FILE_FORMATS: dict[str, str] = {
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
}
"""File suffix -> `datasets` packaged builder used to read it."""


@dataclass(frozen=True)
class TaskSpec:
    """Where one task's data lives and how its columns map onto ``text`` / ``label``."""

    name: str = field(metadata={"help": "Task name, used as the model's task key (e.g. 'sst2')."})
    source: str = field(
        metadata={
            "help": "A local file, a local folder holding <split>.{jsonl,json,csv,tsv,parquet}, or a Hub dataset id."
        }
    )
    kind: str = field(
        default="auto",
        metadata={
            "help": "'local', 'hub' or 'auto' (an existing path or a path-like string is local, anything else a Hub id)."
        },
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Hub dataset configuration (e.g. 'distractor')."}
    )
    revision: str | None = field(
        default=None, metadata={"help": "Hub dataset revision (commit, tag) to pin."}
    )
    splits: dict[str, str] | None = field(
        default=None,
        metadata={
            "help": "Our split name -> Hub split expression (e.g. 'train[:90%]') or local file path (relative "
            "paths resolve against `source` when it is a folder). None: discover the splits."
        },
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the input text."})
    text_pair_column: str | None = field(
        default=None,
        metadata={
            "help": "Column holding the second text of a sentence pair (NLI, paraphrase, QA relevance); it is "
            "kept as `text_pair` and makes this a pair task. None: a single-text task."
        },
    )
    label_column: str = field(default="label", metadata={"help": "Column holding the class label."})
    id_column: str | None = field(
        default="id",
        metadata={"help": "Column holding row ids, if any; ids are generated when it is absent."},
    )
    label_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Class names in label order; string labels in the data are mapped to their index here."
        },
    )
    num_labels: int | None = field(
        default=None,
        metadata={"help": "Number of classes; inferred from label_names or the training labels."},
    )
    problem_type: str = field(
        default="single_label",
        metadata={
            "help": "'single_label' (one class per row, cross-entropy), 'multi_label' (a list of label names or a "
            "multi-hot vector per row, BCE with logits) or 'regression' (one float per row, MSE)."
        },
    )
    threshold: float | None = field(
        default=None,
        metadata={"help": "Multi-label only: decision threshold on each label's sigmoid probability (0.5)."},
    )
    preprocess: str | Callable[[dict[str, list[Any]]], dict[str, list[Any]]] | None = field(
        default=None,
        metadata={
            "help": "Batched map applied to raw rows before column mapping: a callable or a PREPROCESSORS name."
        },
    )
    holdout: dict[str, float] | None = field(
        default=None,
        metadata={
            "help": "Split name -> fraction carved out of train (stratified, deterministic) for sources that "
            "lack that split, e.g. {'validation': 0.1}."
        },
    )
    max_rows: int | dict[str, int] | None = field(
        default=None,
        metadata={
            "help": "Keep at most this many rows per split (one int, or per split): stratified, seeded."
        },
    )
    required_splits: tuple[str, ...] = field(
        default=REQUIRED_SPLITS,
        metadata={"help": "Splits that must exist after loading (train is always required)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed for holdout and max_rows sampling."})

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.source, str | os.PathLike) or not str(self.source):
            raise TypeError(
                f"task {self.name!r}: source must be a non-empty path or Hub id, got {self.source!r}"
            )
        object.__setattr__(self, "source", str(self.source))
        if self.kind not in ("auto", "local", "hub"):
            raise ValueError(f"task {self.name!r}: kind must be 'auto', 'local' or 'hub', got {self.kind!r}")
        if self.splits is not None:
            if not isinstance(self.splits, Mapping) or not self.splits:
                raise TypeError(
                    f"task {self.name!r}: splits must be a non-empty mapping split -> source, got {self.splits!r}"
                )
            _check_split_names(self.name, self.splits, "splits")
            object.__setattr__(self, "splits", {k: str(v) for k, v in self.splits.items()})
        for attr in ("text_column", "label_column"):
            if not isinstance(getattr(self, attr), str) or not getattr(self, attr):
                raise TypeError(
                    f"task {self.name!r}: {attr} must be a non-empty string, got {getattr(self, attr)!r}"
                )
        if self.text_pair_column is not None:
            if not isinstance(self.text_pair_column, str) or not self.text_pair_column:
                raise TypeError(
                    f"task {self.name!r}: text_pair_column must be a non-empty string or None, "
                    f"got {self.text_pair_column!r}"
                )
            if self.text_pair_column in (self.text_column, self.label_column):
                raise ValueError(
                    f"task {self.name!r}: text_pair_column {self.text_pair_column!r} is also the text or label column"
                )
        _check_problem_type(self)
        if self.label_names is not None:
            names = list(self.label_names)
            if (
                len(names) < _MIN_LABELS[self.problem_type]
                or not all(isinstance(n, str) and n for n in names)
                or len(set(names)) != len(names)
            ):
                raise ValueError(
                    f"task {self.name!r}: label_names of a {self.problem_type} task must be at least "
                    f"{'two' if _MIN_LABELS[self.problem_type] == 2 else 'one'} distinct non-empty strings, got {names!r}"
                )
            object.__setattr__(self, "label_names", names)
        if self.num_labels is not None:
            if (
                isinstance(self.num_labels, bool)
                or not isinstance(self.num_labels, int)
                or self.num_labels < _MIN_LABELS[self.problem_type]
                or (self.problem_type == "regression" and self.num_labels != 1)
            ):
                raise ValueError(
                    f"task {self.name!r}: num_labels of a {self.problem_type} task must be "
                    + (
                        "1"
                        if self.problem_type == "regression"
                        else f"an integer >= {_MIN_LABELS[self.problem_type]}"
                    )
                    + f", got {self.num_labels!r}"
                )
            if self.label_names is not None and len(self.label_names) != self.num_labels:
                raise ValueError(
                    f"task {self.name!r}: num_labels={self.num_labels} but label_names has {len(self.label_names)} names"
                )
        if isinstance(self.preprocess, str) and self.preprocess not in PREPROCESSORS:
            raise ValueError(
                f"task {self.name!r}: unknown preprocess {self.preprocess!r}; known: {sorted(PREPROCESSORS)}"
            )
        if (
            self.preprocess is not None
            and not isinstance(self.preprocess, str)
            and not callable(self.preprocess)
        ):
            raise TypeError(
                f"task {self.name!r}: preprocess must be a callable or a name, got {self.preprocess!r}"
            )
        if self.holdout is not None:
            _check_split_names(self.name, self.holdout, "holdout")
            if "train" in self.holdout:
                raise ValueError(
                    f"task {self.name!r}: holdout carves splits out of train; it cannot name 'train'"
                )
            if self.splits is not None and set(self.holdout) & set(self.splits):
                raise ValueError(
                    f"task {self.name!r}: split(s) {sorted(set(self.holdout) & set(self.splits))} given both in splits and holdout"
                )
            bad = {k: v for k, v in self.holdout.items() if not isinstance(v, float | int) or not 0 < v < 1}
            if bad or sum(self.holdout.values()) >= 1:
                raise ValueError(
                    f"task {self.name!r}: holdout fractions must lie in (0, 1) and sum below 1, got {self.holdout!r}"
                )
            object.__setattr__(self, "holdout", {k: float(v) for k, v in self.holdout.items()})
        if self.max_rows is not None:
            rows = (
                self.max_rows if isinstance(self.max_rows, Mapping) else dict.fromkeys(SPLITS, self.max_rows)
            )
            _check_split_names(self.name, rows, "max_rows")
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in rows.values()):
                raise ValueError(
                    f"task {self.name!r}: max_rows must be positive integers, got {self.max_rows!r}"
                )
            if isinstance(self.max_rows, Mapping):
                object.__setattr__(self, "max_rows", dict(self.max_rows))
        required = tuple(self.required_splits)
        _check_split_names(self.name, dict.fromkeys(required), "required_splits")
        if not required:
            raise ValueError(f"task {self.name!r}: required_splits must name at least one split")
        # usually REQUIRED_SPLITS; scoring a held-back folder requires only the scored split
        object.__setattr__(self, "required_splits", tuple(dict.fromkeys(required)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], name: str | None = None) -> TaskSpec:
        """Build from a plain mapping (e.g. a YAML config entry); `name` fills in a missing 'name' key."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TaskSpec key(s) {sorted(unknown)}; known keys: {sorted(known)}")
        kwargs = dict(d)
        if name is not None:
            if kwargs.setdefault("name", name) != name:
                raise ValueError(f"task entry {name!r} has a different 'name' field {kwargs['name']!r}")
        if "required_splits" in kwargs:
            kwargs["required_splits"] = tuple(kwargs["required_splits"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (round-trips through `from_dict` unless `preprocess` is a callable)."""
        d = asdict(self)
        d["required_splits"] = list(self.required_splits)
        return d

    def is_local(self) -> bool:
        """Whether `source` names a local file or folder (see `kind`)."""
        if self.kind != "auto":
            return self.kind == "local"
        src = self.source
        return (
            Path(src).expanduser().exists()
            or src.startswith((".", "/", "~"))
            or Path(src).suffix.lower() in FILE_FORMATS
            or src.count("/") > 1
            or "\\" in src
        )


_MIN_LABELS = {"single_label": 2, "multi_label": 1, "regression": 1}


def _check_problem_type(spec: TaskSpec) -> None:
    """Refuse an unknown problem type, a threshold outside (0, 1) or one given to a task that is not multi-label."""
    from ..configuration_surge import PROBLEM_TYPES

    if spec.problem_type not in PROBLEM_TYPES:
        raise ValueError(
            f"task {spec.name!r}: problem_type must be one of {list(PROBLEM_TYPES)}, got {spec.problem_type!r}"
        )
    if spec.threshold is not None:
        if spec.problem_type != "multi_label":
            raise ValueError(
                f"task {spec.name!r}: threshold is for multi_label tasks, not {spec.problem_type}"
            )
        if (
            isinstance(spec.threshold, bool)
            or not isinstance(spec.threshold, float | int)
            or not 0 < spec.threshold < 1
        ):
            raise ValueError(
                f"task {spec.name!r}: threshold must be a number in (0, 1), got {spec.threshold!r}"
            )
    if spec.problem_type == "regression" and spec.label_names is not None and len(spec.label_names) != 1:
        raise ValueError(
            f"task {spec.name!r}: a regression task has one output; label_names may name it (one name), got "
            f"{spec.label_names!r}"
        )


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise ValueError(
            f"task name must be a non-empty string of letters, digits, '_', '.', '-', got {name!r}"
        )


def _check_split_names(task: str, mapping: Mapping[str, Any], what: str) -> None:
    bad = [k for k in mapping if k not in SPLITS]
    if bad:
        raise ValueError(f"task {task!r}: {what} names unknown split(s) {bad}; allowed: {list(SPLITS)}")
