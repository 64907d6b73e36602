"""`TaskSpec`: where one task's data lives and how its columns map onto ``text`` (/ ``text_pair``) / ``label``;
the split names.

Each field is checked (`validation.checked`): its type from the annotation, its range from a small named validator,
and a refused value is one line naming the task, the field, the value and what it must be.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..configuration_surge import PROBLEM_TYPES
from ..problem_types import info
from ..validation import Requirement, check_fields, checked, one_of, setting
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

KINDS = ("auto", "local", "hub")

# ------------------------------------------------------------------ what the fields accept (used by the fields below)

_NON_EMPTY_SOURCE = Requirement("a non-empty path or Hub id", lambda v: bool(str(v)))
_NON_EMPTY_STRING = Requirement("a non-empty string", bool)
_NON_EMPTY_MAPPING = Requirement("a non-empty mapping split -> source", bool)
_FRACTION = Requirement("a number in (0, 1)", lambda v: 0 < v < 1)
_POSITIVE_ROWS = Requirement(
    "positive integers", lambda v: all(n >= 1 for n in (v.values() if isinstance(v, dict) else [v]))
)


def split_names(what: str) -> Callable[[Any], None]:
    """A validator: the keys (or items) of the value are split names (`SPLITS`)."""

    def check(value: Any) -> None:
        if value is not None:
            _check_split_names(None, value, what)

    return check


def _max_rows_splits(value: Any) -> None:
    if isinstance(value, dict):
        _check_split_names(None, value, "max_rows")


def _known_preprocess(value: Any) -> None:
    if isinstance(value, str) and value not in PREPROCESSORS:
        raise ValueError(f"unknown preprocess {value!r}; known: {sorted(PREPROCESSORS)}")


def _holdout_fractions(value: dict[str, float] | None) -> None:
    """Holdout splits are carved out of train: not train itself, fractions in (0, 1) summing below 1."""
    if value is None:
        return
    if "train" in value:
        raise ValueError("holdout carves splits out of train; it cannot name 'train'")
    if any(not 0 < v < 1 for v in value.values()) or sum(value.values()) >= 1:
        raise ValueError(f"holdout fractions must lie in (0, 1) and sum below 1, got {value!r}")


def _some_split(value: Sequence[str]) -> None:
    if not value:
        raise ValueError("required_splits must name at least one split")


@checked(context=lambda spec: f"task {spec.name!r}: ")
@dataclass(frozen=True)
class TaskSpec:
    """Where one task's data lives and how its columns map onto ``text`` / ``label``."""

    name: str = setting(help="Task name, used as the model's task key (e.g. 'sst2').")
    source: str | os.PathLike = setting(
        _NON_EMPTY_SOURCE,
        error=TypeError,
        help="A local file, a local folder holding <split>.{jsonl,json,csv,tsv,parquet}, or a Hub dataset id.",
    )
    kind: str = setting(
        one_of(KINDS, "'auto', 'local' or 'hub'"),
        default="auto",
        help="'local', 'hub' or 'auto' (an existing path or a path-like string is local, anything else a Hub id).",
    )
    config_name: str | None = setting(default=None, help="Hub dataset configuration (e.g. 'distractor').")
    revision: str | None = setting(default=None, help="Hub dataset revision (commit, tag) to pin.")
    splits: dict[str, str | os.PathLike] | None = setting(
        _NON_EMPTY_MAPPING,
        split_names("splits"),
        error=TypeError,
        default=None,
        help="Our split name -> Hub split expression (e.g. 'train[:90%]') or local file path (relative "
        "paths resolve against `source` when it is a folder). None: discover the splits.",
    )
    text_column: str = setting(
        _NON_EMPTY_STRING, error=TypeError, default="text", help="Column holding the input text."
    )
    text_pair_column: str | None = setting(
        _NON_EMPTY_STRING,
        must_be="a non-empty string or None",
        error=TypeError,
        default=None,
        help="Column holding the second text of a sentence pair (NLI, paraphrase, QA relevance); it is "
        "kept as `text_pair` and makes this a pair task. None: a single-text task.",
    )
    label_column: str = setting(
        _NON_EMPTY_STRING, error=TypeError, default="label", help="Column holding the class label."
    )
    id_column: str | None = setting(
        default="id", help="Column holding row ids, if any; ids are generated when it is absent."
    )
    label_names: Sequence[str] | None = setting(
        must_be="distinct non-empty strings",
        default=None,
        help="Class names in label order; string labels in the data are mapped to their index here.",
    )
    num_labels: int | None = setting(
        default=None, help="Number of classes; inferred from label_names or the training labels."
    )
    problem_type: str = setting(
        one_of(PROBLEM_TYPES),
        default="single_label",
        help="'single_label' (one class per row, cross-entropy), 'multi_label' (a list of label names or a "
        "multi-hot vector per row, BCE with logits) or 'regression' (one float per row, MSE).",
    )
    threshold: float | None = setting(
        _FRACTION,
        default=None,
        help="Multi-label only: decision threshold on each label's sigmoid probability (0.5).",
    )
    preprocess: str | Callable[[dict[str, list[Any]]], dict[str, list[Any]]] | None = setting(
        _known_preprocess,
        must_be="a callable or a name",
        error=TypeError,
        default=None,
        help="Batched map applied to raw rows before column mapping: a callable or a PREPROCESSORS name.",
    )
    holdout: dict[str, float] | None = setting(
        split_names("holdout"),
        _holdout_fractions,
        must_be="{split: fraction}",
        default=None,
        help="Split name -> fraction carved out of train (stratified, deterministic) for sources that "
        "lack that split, e.g. {'validation': 0.1}.",
    )
    max_rows: int | dict[str, int] | None = setting(
        _max_rows_splits,
        _POSITIVE_ROWS,
        default=None,
        help="Keep at most this many rows per split (one int, or per split): stratified, seeded.",
    )
    required_splits: Sequence[str] = setting(
        split_names("required_splits"),
        _some_split,
        default=REQUIRED_SPLITS,
        help="Splits that must exist after loading (train is always required).",
    )
    seed: int = setting(default=0, help="Seed for holdout and max_rows sampling.")

    def __post_init__(self) -> None:
        _check_name(self.name)  # first: every other message names the task
        check_fields(self)  # a frozen dataclass assigns past strict's __setattr__
        _check_pair_column(self)
        _check_problem_type_fields(self)
        _check_label_count(self)
        _check_holdout_and_splits(self)
        _store_normalized(self)

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


def _check_pair_column(spec: TaskSpec) -> None:
    if spec.text_pair_column is not None and spec.text_pair_column in (spec.text_column, spec.label_column):
        raise ValueError(
            f"task {spec.name!r}: text_pair_column {spec.text_pair_column!r} is also the text or label column"
        )


def _check_problem_type_fields(spec: TaskSpec) -> None:
    """Refuse a threshold given to a task that is not multi-label, or more than one label name for a regression
    task."""
    if spec.threshold is not None and spec.problem_type != "multi_label":
        raise ValueError(f"task {spec.name!r}: threshold is for multi_label tasks, not {spec.problem_type}")
    if spec.problem_type == "regression" and spec.label_names is not None and len(spec.label_names) != 1:
        raise ValueError(
            f"task {spec.name!r}: a regression task has one output; label_names may name it (one name), got "
            f"{spec.label_names!r}"
        )


def _check_label_count(spec: TaskSpec) -> None:
    """label_names and num_labels fit the problem type (a single-label task has at least two classes, a
    regression task one output) and each other."""
    least, exact = info(spec.problem_type).min_labels, info(spec.problem_type).exact_labels
    if spec.label_names is not None:
        names = list(spec.label_names)
        if len(names) < least or not all(names) or len(set(names)) != len(names):
            raise ValueError(
                f"task {spec.name!r}: label_names of a {spec.problem_type} task must be at least "
                f"{'two' if least == 2 else 'one'} distinct non-empty strings, got {names!r}"
            )
    if spec.num_labels is None:
        return
    if spec.num_labels < least or (exact is not None and spec.num_labels != exact):
        wanted = str(exact) if exact is not None else f"an integer >= {least}"
        raise ValueError(
            f"task {spec.name!r}: num_labels of a {spec.problem_type} task must be {wanted}, got {spec.num_labels!r}"
        )
    if spec.label_names is not None and len(spec.label_names) != spec.num_labels:
        raise ValueError(
            f"task {spec.name!r}: num_labels={spec.num_labels} but label_names has {len(spec.label_names)} names"
        )


def _check_holdout_and_splits(spec: TaskSpec) -> None:
    both = sorted(set(spec.holdout or ()) & set(spec.splits or ()))
    if both:
        raise ValueError(f"task {spec.name!r}: split(s) {both} given both in splits and holdout")


def _store_normalized(spec: TaskSpec) -> None:
    """The stored forms: source and split paths as strings, label_names a list, holdout fractions floats, a copy
    of a max_rows mapping, required_splits a tuple without repeats (usually REQUIRED_SPLITS; scoring a held-back
    folder requires only the scored split)."""
    values: dict[str, Any] = {
        "source": str(spec.source),
        "required_splits": tuple(dict.fromkeys(spec.required_splits)),
    }
    if spec.splits is not None:
        values["splits"] = {k: str(v) for k, v in spec.splits.items()}
    if spec.label_names is not None:
        values["label_names"] = list(spec.label_names)
    if spec.holdout is not None:
        values["holdout"] = {k: float(v) for k, v in spec.holdout.items()}
    if isinstance(spec.max_rows, Mapping):
        values["max_rows"] = dict(spec.max_rows)
    for name, value in values.items():
        object.__setattr__(spec, name, value)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise ValueError(
            f"task name must be a non-empty string of letters, digits, '_', '.', '-', got {name!r}"
        )


def _check_split_names(task: str | None, mapping: Iterable[Any], what: str) -> None:
    """Refuse keys (or items) that are not split names; `task` (None: the caller names it) prefixes the message."""
    bad = [k for k in mapping if k not in SPLITS]
    if bad:
        where = f"task {task!r}: " if task is not None else ""
        raise ValueError(f"{where}{what} names unknown split(s) {bad}; allowed: {list(SPLITS)}")
