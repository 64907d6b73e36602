"""Multi-task datasets for SURGELLM: local jsonl/csv/parquet files, folders and Hub dataset ids.

Every task becomes a `datasets.DatasetDict` whose splits ("train", "validation", optionally "test") have
exactly the columns ``id`` (str), ``text`` (str) and ``label`` (int64). Input is validated in full before
anything is returned: a missing file, a missing column, labels that are not integers in range and empty
texts raise an error naming the task, split, file and the first offending rows.

Typical use::

    data = load_folder("../shared/data")                       # <task>/{train,validation,test}.jsonl
    data = load_tasks([TaskSpec("sst2", "stanfordnlp/sst2", text_column="sentence", ...)])
    SurgeConfig(encoder_config=..., tasks=data.tasks_config(), task_label_names=data.label_names)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

SPLITS: tuple[str, ...] = ("train", "validation", "test")
"""Split names a task may have, in canonical order."""

FILE_FORMATS: dict[str, str] = {
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
}
"""File suffix -> `datasets` packaged builder used to read it."""

_MAX_ROWS_SHOWN = 5


# --------------------------------------------------------------------------------------------------------------
# Preprocessing functions (named so that YAML configs can refer to them)
# --------------------------------------------------------------------------------------------------------------


def _hotpot_gold_context(supporting_facts: Any, context: Any) -> str:
    """All sentences of the gold paragraphs (titles named in supporting_facts), in context order."""
    if isinstance(supporting_facts, Mapping):  # HF datasets layout: {"title": [...], "sent_id": [...]}
        gold = set(supporting_facts["title"])
    else:  # original HotpotQA JSON layout: [[title, sent_id], ...]
        gold = {title for title, _ in supporting_facts}
    if isinstance(context, Mapping):  # {"title": [...], "sentences": [[...], ...]}
        paragraphs = zip(context["title"], context["sentences"])
    else:  # [[title, [sentence, ...]], ...]
        paragraphs = ((title, sentences) for title, sentences in context)
    sentences = [s for title, sents in paragraphs if title in gold for s in sents]
    return " ".join(" ".join(sentences).split())


def hotpotqa_difficulty(batch: dict[str, list[Any]], max_context_words: int = 300) -> dict[str, list[Any]]:
    """Batched map: HotpotQA rows -> text "[Q] question [CTX] gold context" and label easy=0, medium/hard=1.

    Mirrors the construction of ../shared/data/D2 (see its manifest.json): context = all sentences of the
    gold supporting paragraphs in context order, titles omitted, whitespace-normalised, first 300 words.
    """
    texts, labels, ids = [], [], []
    for i, (question, level) in enumerate(zip(batch["question"], batch["level"])):
        if level not in ("easy", "medium", "hard"):
            raise ValueError(
                f"HotpotQA row {i} of this batch has level {level!r}; expected easy, medium or hard"
            )
        words = _hotpot_gold_context(batch["supporting_facts"][i], batch["context"][i]).split()
        texts.append(f"[Q] {' '.join(question.split())} [CTX] {' '.join(words[:max_context_words])}")
        labels.append(0 if level == "easy" else 1)
        raw_id = batch["id"][i] if "id" in batch else batch["_id"][i]
        ids.append(f"hotpotqa-{raw_id}")
    return {"id": ids, "text": texts, "label": labels}


PREPROCESSORS: dict[str, Callable[[dict[str, list[Any]]], dict[str, list[Any]]]] = {
    "hotpotqa_difficulty": hotpotqa_difficulty,
}
"""Named batched preprocessing functions usable as `TaskSpec(preprocess="name")`."""


# --------------------------------------------------------------------------------------------------------------
# Task specification
# --------------------------------------------------------------------------------------------------------------


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
        default=("train", "validation"),
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
        if self.label_names is not None:
            names = list(self.label_names)
            if (
                len(names) < 2
                or not all(isinstance(n, str) and n for n in names)
                or len(set(names)) != len(names)
            ):
                raise ValueError(
                    f"task {self.name!r}: label_names must be at least two distinct non-empty strings, got {names!r}"
                )
            object.__setattr__(self, "label_names", names)
        if self.num_labels is not None:
            if (
                isinstance(self.num_labels, bool)
                or not isinstance(self.num_labels, int)
                or self.num_labels < 2
            ):
                raise ValueError(
                    f"task {self.name!r}: num_labels must be an integer >= 2, got {self.num_labels!r}"
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
        # usually ("train", "validation"); scoring a held-back folder requires only the scored split
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


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        raise ValueError(
            f"task name must be a non-empty string of letters, digits, '_', '.', '-', got {name!r}"
        )


def _check_split_names(task: str, mapping: Mapping[str, Any], what: str) -> None:
    bad = [k for k in mapping if k not in SPLITS]
    if bad:
        raise ValueError(f"task {task!r}: {what} names unknown split(s) {bad}; allowed: {list(SPLITS)}")


# The paper's tasks that exist on the Hub in a documented, stable form. Verified on the dataset cards:
# stanfordnlp/sst2 (default config; idx/sentence/label with names negative/positive; train 67,349,
# validation 872, unlabelled test 1,821) and hotpotqa/hotpot_qa (config distractor; id/question/answer/type/
# level/supporting_facts/context; train 90,447, validation 7,405 hard-only). The paper's D3 ("LLM 7 prompt
# training dataset") and D4 ("Human vs. LLM Text Corpus") are Kaggle corpora with no stable Hub copy: give
# them as local folders, e.g. TaskSpec("llm7", "../shared/data/D3"), TaskSpec("humllm", "../shared/data/D4").
PAPER_TASKS_HUB: tuple[TaskSpec, ...] = (
    TaskSpec(
        name="sst2",
        source="stanfordnlp/sst2",
        kind="hub",
        # GLUE dev is the test set (GLUE test has no labels); validation is a stratified 10 % of GLUE train.
        splits={"train": "train", "test": "validation"},
        holdout={"validation": 0.1},
        text_column="sentence",
        label_column="label",
        id_column="idx",
        label_names=["negative", "positive"],
    ),
    TaskSpec(
        name="hotpot",
        source="hotpotqa/hotpot_qa",
        kind="hub",
        config_name="distractor",
        # HotpotQA's validation split holds only 'hard' questions, so all splits come from train (70/15/15 of a
        # stratified 2,000-row sample, the size of the paper's reproduction reference).
        splits={"train": "train"},
        holdout={"validation": 0.15, "test": 0.15},
        preprocess="hotpotqa_difficulty",
        label_names=["easy", "medium_or_hard"],
        max_rows={"train": 1400, "validation": 300, "test": 300},
    ),
)
"""Hub presets for the paper's D1 (SST-2) and D2 (HotpotQA difficulty); D3/D4 must be local folders."""


# --------------------------------------------------------------------------------------------------------------
# Container
# --------------------------------------------------------------------------------------------------------------


@dataclass
class MultiTaskData:
    """Ordered tasks, each a `datasets.DatasetDict` with columns id (str), text (str), label (int64)."""

    datasets: dict[str, Any] = field(metadata={"help": "Task name -> DatasetDict, in task order."})
    num_labels: dict[str, int] = field(metadata={"help": "Task name -> number of classes."})
    label_names: dict[str, list[str]] = field(metadata={"help": "Task name -> class names in label order."})
    sources: dict[str, dict[str, str]] = field(
        default_factory=dict, metadata={"help": "Task name -> split -> where it was read from (for reports)."}
    )

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
        """{task: {split: rows per class, in label order}}."""
        return {
            t: {s: np.bincount(ds["label"], minlength=self.num_labels[t]).tolist() for s, ds in dd.items()}
            for t, dd in self.datasets.items()
        }

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
                    split: ds.select(_stratified_indices(ds["label"], limits[split], seed))
                    if split in limits
                    else ds
                    for split, ds in dd.items()
                }
            )
        return MultiTaskData(
            out, dict(self.num_labels), {k: list(v) for k, v in self.label_names.items()}, dict(self.sources)
        )

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}({self.num_labels[t]}): {sz}" for t, sz in self.split_sizes().items())
        return f"MultiTaskData({sizes})"


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


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def load_tasks(specs: Sequence[TaskSpec] | Mapping[str, TaskSpec | Mapping[str, Any] | str]) -> MultiTaskData:
    """Load and validate several tasks, in the given order.

    `specs` is a list of TaskSpec, or a mapping task name -> TaskSpec | dict of TaskSpec fields | source string.
    Every task is read and checked before anything is returned; problems raise FileNotFoundError (missing
    file), ValueError (bad columns, labels or texts) or TypeError (bad argument types).
    """
    spec_list = _normalize_specs(specs)
    datasets_, num_labels, label_names, sources = {}, {}, {}, {}
    for spec in spec_list:
        dd, k, names, where = _load_task(spec)
        datasets_[spec.name], num_labels[spec.name], label_names[spec.name], sources[spec.name] = (
            dd,
            k,
            names,
            where,
        )
    return MultiTaskData(datasets_, num_labels, label_names, sources)


def load_folder(
    path: str | os.PathLike,
    tasks: Sequence[str] | None = None,
    splits: Sequence[str] = SPLITS,
    required: Sequence[str] = ("train", "validation"),
    *,
    text_column: str = "text",
    label_column: str = "label",
    label_names: Mapping[str, Sequence[str]] | None = None,
    max_rows: int | Mapping[str, int] | None = None,
    seed: int = 0,
) -> MultiTaskData:
    """Load the layout ``<path>/<task>/<split>.{jsonl,json,csv,tsv,parquet}`` (e.g. ../shared/data).

    `tasks` picks and orders task folders (default: every sub-folder holding a train file, sorted by name).
    Splits in `required` must exist (a missing one raises an error naming the expected file); others such as
    test are loaded when present.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    _check_split_names("*", dict.fromkeys(splits), "splits")
    _check_split_names("*", dict.fromkeys(required), "required")
    if tasks is None:
        tasks = sorted(
            p.name
            for p in root.iterdir()
            if p.is_dir() and any((p / f"train{s}").is_file() for s in FILE_FORMATS)
        )
        if not tasks:
            raise FileNotFoundError(
                f"no task folders with a train file ({', '.join('train' + s for s in FILE_FORMATS)}) under {root}"
            )
    elif isinstance(tasks, str):
        raise TypeError(f"tasks must be a list of task folder names, got the string {tasks!r}")
    label_names = dict(label_names or {})
    unknown = set(label_names) - set(tasks)
    if unknown:
        raise ValueError(f"label_names given for unknown task(s) {sorted(unknown)}; tasks: {list(tasks)}")
    specs = []
    for task in tasks:
        folder = root / task
        if not folder.is_dir():
            raise FileNotFoundError(f"task folder not found: {folder}")
        found = {s: f for s in splits if (f := _find_split_file(folder, s)) is not None}
        for s in required:
            if s not in found:
                expected = ", ".join(str(folder / f"{s}{suf}") for suf in FILE_FORMATS)
                raise FileNotFoundError(f"task {task!r}: missing {s} file; expected one of: {expected}")
        specs.append(
            TaskSpec(
                name=task,
                source=str(folder),
                kind="local",
                splits={s: str(f) for s, f in found.items()},
                text_column=text_column,
                label_column=label_column,
                label_names=list(label_names[task]) if task in label_names else None,
                max_rows=max_rows,
                required_splits=tuple(required),
                seed=seed,
            )
        )
    return load_tasks(specs)


def _normalize_specs(specs: Any) -> list[TaskSpec]:
    if isinstance(specs, TaskSpec):
        specs = [specs]
    if isinstance(specs, Mapping):
        out = []
        for name, value in specs.items():
            if isinstance(value, TaskSpec):
                if value.name != name:
                    raise ValueError(f"task key {name!r} holds a TaskSpec named {value.name!r}")
                out.append(value)
            elif isinstance(value, str | os.PathLike):
                out.append(TaskSpec(name=name, source=str(value)))
            elif isinstance(value, Mapping):
                out.append(TaskSpec.from_dict(value, name=name))
            else:
                raise TypeError(
                    f"task {name!r}: expected a TaskSpec, a mapping or a source string, got {type(value).__name__}"
                )
    elif isinstance(specs, Iterable) and not isinstance(specs, str | bytes):
        out = list(specs)
        bad = [type(s).__name__ for s in out if not isinstance(s, TaskSpec)]
        if bad:
            raise TypeError(f"load_tasks expects TaskSpec items, got {bad}")
    else:
        raise TypeError(
            f"load_tasks expects a list of TaskSpec or a mapping name -> spec, got {type(specs).__name__}"
        )
    if not out:
        raise ValueError("no tasks given")
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate task name(s): {dupes}")
    return out


def _find_split_file(folder: Path, split: str) -> Path | None:
    hits = [folder / f"{split}{suf}" for suf in FILE_FORMATS if (folder / f"{split}{suf}").is_file()]
    if len(hits) > 1:
        raise ValueError(
            f"ambiguous {split} data in {folder}: {[h.name for h in hits]}; keep one file per split"
        )
    return hits[0] if hits else None


def _read_local(path: Path, task: str, split: str) -> Any:
    """One local file -> datasets.Dataset through the packaged json/csv/parquet builders (offline)."""
    import datasets

    if not path.is_file():
        raise FileNotFoundError(f"task {task!r}, split {split!r}: file not found: {path}")
    builder = FILE_FORMATS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(
            f"task {task!r}, split {split!r}: unsupported file type {path.suffix!r} ({path}); "
            f"supported: {', '.join(FILE_FORMATS)}"
        )
    if path.stat().st_size == 0:
        raise ValueError(f"task {task!r}, split {split!r}: file is empty: {path}")
    kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    except Exception as e:  # parse errors surface deep inside arrow; name the file
        raise ValueError(
            f"task {task!r}, split {split!r}: could not read {path}: {type(e).__name__}: {e}"
        ) from e


def _read_hub(spec: TaskSpec, split: str | None, expr: str | None) -> Any:
    import datasets

    where = f"Hub dataset {spec.source!r}" + (f" (config {spec.config_name!r})" if spec.config_name else "")
    try:
        return datasets.load_dataset(spec.source, name=spec.config_name, split=expr, revision=spec.revision)
    except Exception as e:
        hint = (
            "" if spec.kind == "hub" else f" If {spec.source!r} is meant as a local path: it does not exist."
        )
        raise ValueError(
            f"task {spec.name!r}: could not load {where}"
            + (f", split {expr!r}" if expr else "")
            + f": {type(e).__name__}: {e}.{hint}"
        ) from e


def _raw_splits(spec: TaskSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """Read the raw splits of one task: ({split: Dataset}, {split: description of where it came from})."""
    if spec.is_local():
        src = Path(spec.source).expanduser()
        if spec.splits is None:
            if src.is_dir():
                files = {s: f for s in SPLITS if (f := _find_split_file(src, s)) is not None}
                if "train" not in files:
                    expected = ", ".join(str(src / f"train{suf}") for suf in FILE_FORMATS)
                    raise FileNotFoundError(
                        f"task {spec.name!r}: missing train file; expected one of: {expected}"
                    )
            elif src.is_file():
                files = {"train": src}
            else:
                raise FileNotFoundError(f"task {spec.name!r}: source not found: {src}")
        else:
            if not src.is_dir():
                raise (ValueError if src.exists() else FileNotFoundError)(
                    f"task {spec.name!r}: with `splits`, source must be the folder the split paths are relative "
                    f"to (e.g. '.'); got {'a file' if src.exists() else 'a missing path'}: {src}"
                )
            files = {
                s: src / Path(p).expanduser() for s, p in spec.splits.items()
            }  # absolute p stays absolute
        raw = {s: _read_local(f, spec.name, s) for s, f in files.items()}
        return raw, {s: str(f) for s, f in files.items()}
    ref = spec.source + (f"[{spec.config_name}]" if spec.config_name else "")
    if spec.splits is None:
        dd = _read_hub(spec, None, None)
        raw = {s: dd[s] for s in SPLITS if s in dd}
        if "train" not in raw:
            raise ValueError(
                f"task {spec.name!r}: Hub dataset {ref} has no 'train' split (has {list(dd)}); set splits="
            )
        return raw, {s: f"{ref}:{s}" for s in raw}
    return {s: _read_hub(spec, s, e) for s, e in spec.splits.items()}, {
        s: f"{ref}:{e}" for s, e in spec.splits.items()
    }


def _rows_text(indices: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:_MAX_ROWS_SHOWN])
    return f"rows {shown}" + (", ..." if len(indices) > _MAX_ROWS_SHOWN else "")


def _label_names_from_features(ds: Any, column: str) -> list[str] | None:
    feature = ds.features.get(column)
    return list(feature.names) if hasattr(feature, "names") and hasattr(feature, "str2int") else None


def _convert_labels(values: list[Any], names: list[str] | None, where: str) -> tuple[list[int], list[str]]:
    """Labels -> ints. Accepts ints, integral floats, and strings that are in `names`; returns (labels, problems)."""
    out, bad_type, bad_names = [], [], []
    index = {n: i for i, n in enumerate(names)} if names else {}
    for i, v in enumerate(values):
        if isinstance(v, bool) or v is None:
            bad_type.append(i)
            out.append(-1)
        elif isinstance(v, int | np.integer):
            out.append(int(v))
        elif isinstance(v, float | np.floating) and math.isfinite(v) and float(v).is_integer():
            out.append(int(v))
        elif isinstance(v, str) and v in index:
            out.append(index[v])
        elif isinstance(v, str) and names:
            bad_names.append(i)
            out.append(-1)
        else:
            bad_type.append(i)
            out.append(-1)
    problems = []
    if bad_type:
        examples = ", ".join(repr(values[i]) for i in bad_type[:3])
        hint = "" if names else " (string labels need label_names=[...] to map them to indices)"
        problems.append(
            f"{where}: {len(bad_type)} label(s) are not integers ({_rows_text(bad_type)}; e.g. {examples}){hint}"
        )
    if bad_names:
        unknown = sorted({values[i] for i in bad_names})[:5]
        problems.append(
            f"{where}: {len(bad_names)} label(s) are not among label_names {names} ({_rows_text(bad_names)}; "
            f"unknown values {unknown})"
        )
    return out, problems


def _apply_preprocess(spec: TaskSpec, fn: Callable, ds: Any, split: str, where: str) -> Any:
    try:
        return ds.map(fn, batched=True, remove_columns=ds.column_names)
    except Exception as e:
        raise ValueError(
            f"task {spec.name!r}, split {split!r} ({where}): preprocess {getattr(fn, '__name__', fn)!r} failed: "
            f"{type(e).__name__}: {e}; columns available: {ds.column_names}"
        ) from e


def _load_task(spec: TaskSpec) -> tuple[Any, int, list[str], dict[str, str]]:
    """Read, preprocess, validate and normalize one task; raises with every problem found."""
    import datasets

    raw, where = _raw_splits(spec)
    if spec.preprocess is not None:
        fn = PREPROCESSORS[spec.preprocess] if isinstance(spec.preprocess, str) else spec.preprocess
        raw = {s: _apply_preprocess(spec, fn, ds, s, where[s]) for s, ds in raw.items()}
        where = {s: f"{w} (after preprocess)" for s, w in where.items()}

    names = spec.label_names
    problems: list[str] = []
    columns: dict[str, dict[str, list[Any]]] = {}
    for split, ds in raw.items():
        loc = f"task {spec.name!r}, split {split!r} ({where[split]})"
        missing = [c for c in (spec.text_column, spec.label_column) if c not in ds.column_names]
        if missing:
            problems.append(
                f"{loc}: missing column(s) {missing}; available columns: {ds.column_names}. "
                "Map yours with text_column= / label_column="
            )
            continue
        if len(ds) == 0:
            problems.append(f"{loc}: no rows")
            continue
        if names is None:
            names = _label_names_from_features(ds, spec.label_column)
        texts = ds[spec.text_column]
        not_str = [i for i, t in enumerate(texts) if t is not None and not isinstance(t, str)]
        if not_str:
            problems.append(
                f"{loc}: {len(not_str)} text(s) in column {spec.text_column!r} are not strings "
                f"({_rows_text(not_str)}; e.g. {texts[not_str[0]]!r})"
            )
        empty = [i for i, t in enumerate(texts) if t is None or (isinstance(t, str) and not t.strip())]
        if empty:
            problems.append(
                f"{loc}: {len(empty)} empty, whitespace-only or missing text(s) in column {spec.text_column!r} "
                f"({_rows_text(empty)})"
            )
        labels, label_problems = _convert_labels(ds[spec.label_column], names, loc)
        problems.extend(label_problems)
        ids = ds[spec.id_column] if spec.id_column and spec.id_column in ds.column_names else None
        if ids is not None:
            no_id = [i for i, v in enumerate(ids) if v is None or str(v) == ""]
            if no_id:
                problems.append(
                    f"{loc}: {len(no_id)} missing id(s) in column {spec.id_column!r} ({_rows_text(no_id)})"
                )
            ids = [str(v) for v in ids]
        else:
            ids = [f"{spec.name}-{split}-{i}" for i in range(len(ds))]
        columns[split] = {"id": ids, "text": texts, "label": labels}
    if problems:
        raise ValueError("invalid data:\n  - " + "\n  - ".join(problems))

    num_labels = spec.num_labels or (len(names) if names else None)
    if num_labels is None:
        if "train" not in columns:
            raise ValueError(
                f"task {spec.name!r}: without a train split the number of classes cannot be inferred; "
                "pass num_labels= or label_names="
            )
        train = np.asarray(columns["train"]["label"])
        num_labels = int(train.max()) + 1
        absent = sorted(set(range(num_labels)) - set(train.tolist()))
        if num_labels < 2 or absent:
            raise ValueError(
                f"task {spec.name!r}: cannot infer the number of classes from the training labels "
                f"(values {sorted(set(train.tolist()))}"
                + (f"; classes {absent} never occur" if absent else "")
                + "); pass num_labels= or label_names="
            )
    if names is not None and len(names) != num_labels:
        raise ValueError(f"task {spec.name!r}: num_labels={num_labels} but the label names are {names}")
    for split, cols in columns.items():
        labels = np.asarray(cols["label"])
        out_of_range = np.flatnonzero((labels < 0) | (labels >= num_labels)).tolist()
        if out_of_range:
            problems.append(
                f"task {spec.name!r}, split {split!r} ({where[split]}): {len(out_of_range)} label(s) outside "
                f"the allowed range 0..{num_labels - 1} ({_rows_text(out_of_range)}; "
                f"values {sorted(set(labels[out_of_range].tolist()))[:5]})"
            )
    if problems:
        raise ValueError("invalid data:\n  - " + "\n  - ".join(problems))

    features = datasets.Features(
        {"id": datasets.Value("string"), "text": datasets.Value("string"), "label": datasets.Value("int64")}
    )
    splits = {s: datasets.Dataset.from_dict(c, features=features) for s, c in columns.items()}
    if spec.holdout:
        splits, where = _carve_holdout(spec, splits, where)
    missing = [s for s in spec.required_splits if s not in splits]
    if missing:
        raise ValueError(
            f"task {spec.name!r}: missing required split(s) {missing} (have {list(splits)}); give them in splits=, "
            "carve them with holdout=, or relax required_splits="
        )
    if spec.max_rows is not None:
        limits = spec.max_rows if isinstance(spec.max_rows, Mapping) else dict.fromkeys(SPLITS, spec.max_rows)
        splits = {
            s: ds.select(_stratified_indices(ds["label"], limits[s], spec.seed)) if s in limits else ds
            for s, ds in splits.items()
        }
    ordered = datasets.DatasetDict({s: splits[s] for s in SPLITS if s in splits})
    return ordered, num_labels, list(names) if names else [f"LABEL_{i}" for i in range(num_labels)], where


def _carve_holdout(spec: TaskSpec, splits: dict[str, Any], where: dict[str, str]) -> tuple[dict, dict]:
    """Split stratified, seeded fractions of train into the holdout splits; train keeps the rest."""
    train = splits["train"]
    labels = np.asarray(train["label"])
    remaining = np.arange(len(train))
    out, out_where = dict(splits), dict(where)
    for split, frac in spec.holdout.items():
        n = int(round(frac * len(train)))
        if n < 1 or n >= len(remaining):
            raise ValueError(
                f"task {spec.name!r}: holdout {split}={frac} of {len(train)} training rows gives {n} rows; "
                "use a larger fraction or more data"
            )
        picked = np.asarray(_stratified_indices(labels[remaining], n, spec.seed))
        out[split] = train.select(remaining[picked].tolist())
        out_where[split] = f"{where['train']} (stratified holdout {frac:g}, seed {spec.seed})"
        remaining = np.delete(remaining, picked)
    out["train"] = train.select(remaining.tolist())
    return out, out_where
