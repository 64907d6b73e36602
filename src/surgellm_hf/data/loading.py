"""Loading tasks into a `MultiTaskData`: local jsonl/csv/parquet files, folders, Hub dataset ids, a run's data section.

Input is validated in full before anything is returned: a missing file, a missing column, labels that are not
integers in range and empty texts raise an error naming the task, split, file and the first offending rows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..validation import is_integer
from .multitask import MultiTaskData, _stratified_indices, strata
from .preprocessing import PREPROCESSORS
from .presets import DATA_PRESETS
from .targets import as_label_vectors, convert_targets, label_feature, multi_label_width
from .task_spec import FILE_FORMATS, REQUIRED_SPLITS, SPLITS, TaskSpec, _check_split_names

_MAX_ROWS_SHOWN = 5


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
    types = {s.name: s.problem_type for s in spec_list}
    if set(types.values()) != {"single_label"}:  # one label column type for every task (data/targets.py)
        for name, kind in types.items():
            if kind == "single_label":
                dd = datasets_[name]
                features = next(iter(dd.values())).features
                datasets_[name] = dd.map(
                    lambda b: {"label": as_label_vectors(b["label"])},
                    batched=True,
                    features=type(features)({**features, "label": label_feature("multi_label")}),
                )
    thresholds = {s.name: float(s.threshold or 0.5) for s in spec_list if s.problem_type == "multi_label"}
    return MultiTaskData(datasets_, num_labels, label_names, sources, types, thresholds)


def load_folder(
    path: str | os.PathLike,
    tasks: Sequence[str] | None = None,
    splits: Sequence[str] = SPLITS,
    required: Sequence[str] = REQUIRED_SPLITS,
    *,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | Mapping[str, str] | None = None,
    label_names: Mapping[str, Sequence[str]] | None = None,
    max_rows: int | Mapping[str, int] | None = None,
    seed: int = 0,
    problem_types: Mapping[str, str] | None = None,
) -> MultiTaskData:
    """Load the layout ``<path>/<task>/<split>.{jsonl,json,csv,tsv,parquet}`` (docs/task-mixes.md#paper-tasks).

    `tasks` picks and orders task folders (default: every sub-folder holding a train file, sorted by name).
    Splits in `required` must exist (a missing one raises an error naming the expected file); others such as
    test are loaded when present. `problem_types`: {task: 'multi_label' | 'regression'} for the tasks that are not
    single-label (see `TaskSpec.problem_type`). `text_pair_column`: the second-text column of sentence-pair tasks, one name
    for every task or a mapping {task: column} for the pair tasks only.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    _check_split_names("*", dict.fromkeys(splits), "splits")
    _check_split_names("*", dict.fromkeys(required), "required")
    tasks = _folder_task_names(root, tasks)
    pair_columns = (
        dict(text_pair_column)
        if isinstance(text_pair_column, Mapping)
        else dict.fromkeys(tasks, text_pair_column)
    )
    label_names, problem_types = dict(label_names or {}), dict(problem_types or {})
    for option, per_task in (
        ("label_names", label_names),
        ("problem_types", problem_types),
        ("text_pair_column", pair_columns),
    ):
        unknown = set(per_task) - set(tasks)
        if unknown:
            raise ValueError(f"{option} given for unknown task(s) {sorted(unknown)}; tasks: {list(tasks)}")
    specs = [
        TaskSpec(
            name=task,
            source=str(root / task),
            kind="local",
            splits=_folder_split_files(root / task, task, splits, required),
            text_column=text_column,
            label_column=label_column,
            text_pair_column=pair_columns.get(task),
            label_names=list(label_names[task]) if task in label_names else None,
            problem_type=problem_types.get(task, "single_label"),
            max_rows=max_rows,
            required_splits=tuple(required),
            seed=seed,
        )
        for task in tasks
    ]
    return load_tasks(specs)


def _folder_task_names(root: Path, tasks: Sequence[str] | None) -> Sequence[str]:
    """The tasks of a data folder: the ones given, or every sub-folder holding a train file, sorted by name."""
    if isinstance(tasks, str):
        raise TypeError(f"tasks must be a list of task folder names, got the string {tasks!r}")
    if tasks is not None:
        return tasks
    found = sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and any((p / f"train{s}").is_file() for s in FILE_FORMATS)
    )
    if not found:
        raise FileNotFoundError(
            f"no task folders with a train file ({', '.join('train' + s for s in FILE_FORMATS)}) under {root}"
        )
    return found


def _folder_split_files(
    folder: Path, task: str, splits: Sequence[str], required: Sequence[str]
) -> dict[str, str]:
    """{split: file name} of one task folder (relative to it, as TaskSpec reads them); a missing required split
    names the files it looked for."""
    if not folder.is_dir():
        raise FileNotFoundError(f"task folder not found: {folder}")
    found = {s: f for s in splits if (f := _find_split_file(folder, s)) is not None}
    for s in required:
        if s not in found:
            expected = ", ".join(str(folder / f"{s}{suf}") for suf in FILE_FORMATS)
            raise FileNotFoundError(f"task {task!r}: missing {s} file; expected one of: {expected}")
    return {s: f.name for s, f in found.items()}


def load_run_data(data: Mapping[str, Any], seed: int = 0) -> MultiTaskData:
    """Load the `data` section of a run config: `folder`, `tasks` or `preset`, then an optional `max_rows` sample.

    `seed` draws the `max_rows` samples (and a folder's holdouts); the section's own `seed` key wins. It is a
    data seed, not the training seed: runs of several training seeds should see the same rows.
    """
    data = dict(data)
    max_rows = data.pop("max_rows", None)
    seed = data.pop("seed", seed)
    if not is_integer(seed) or seed < 0:
        raise ValueError(f"`data.seed` must be a non-negative integer, got {seed!r}.")
    if max_rows is not None:  # checked before any file is read
        limits = max_rows if isinstance(max_rows, Mapping) else {"train": max_rows}
        if any(k not in SPLITS for k in limits) or any(not is_integer(v) or v < 1 for v in limits.values()):
            raise ValueError(
                f"`data.max_rows` must be a positive integer or {{split: positive integer}} with splits among "
                f"{list(SPLITS)}, got {max_rows!r}."
            )
    if "preset" in data:
        preset = data.pop("preset")
        if preset not in DATA_PRESETS:
            raise ValueError(f"Unknown data preset {preset!r}; available: {list(DATA_PRESETS)}.")
        loaded = load_tasks(DATA_PRESETS[preset])
    elif "folder" in data:
        loaded = load_folder(data.pop("folder"), tasks=data.pop("tasks", None), seed=seed, **data)
    elif "tasks" in data:
        loaded = load_tasks(data.pop("tasks"))
    else:
        raise ValueError("`data` needs one of `folder`, `tasks` or `preset`.")
    if max_rows is not None:
        loaded = loaded.subsample(max_rows, seed=seed)
    return loaded


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
    where = f"task {task!r}, split {split!r}: {path}"
    if builder != "parquet":
        _check_utf8(path, where)
    kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its parser logs what the error below says
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    except Exception as e:  # parse errors surface deep inside arrow; name the file and, for JSON, the line
        bad_line = _first_bad_json_line(path) if builder == "json" else None
        if bad_line:
            raise ValueError(f"{where}, {bad_line}") from None
        cause = e.__cause__ or e  # datasets wraps the parser's error in DatasetGenerationError
        raise ValueError(f"{where}: could not read it: {type(cause).__name__}: {cause}") from e
    finally:
        datasets.logging.set_verbosity(level)


def _check_utf8(path: Path, where: str) -> None:
    """Refuse a text data file that is not UTF-8, naming the line and byte offset (pyarrow reads such bytes
    without complaint, and they fail later far from the file)."""
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{where}, line {number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at byte offset "
                    f"{offset + err.start} of the file: {err.reason}); save the file as UTF-8"
                ) from None
            offset += len(raw)


def _first_bad_json_line(path: Path) -> str | None:
    """Where a JSON-lines file stops being one JSON object per line ('line N: ...'), or None when every line is
    one (then the file may be a single JSON document, and its own error applies)."""
    import json

    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    if lines and lines[0].lstrip().startswith("["):  # one JSON array, not JSON lines
        try:
            json.loads("".join(lines))
        except json.JSONDecodeError as err:
            return f"line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})"
        return None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as err:
            return f"line {number}, column {err.colno}: not valid JSON ({err.msg}): {line.strip()[:80]!r}"
        if not isinstance(value, dict):
            return f"line {number}: a JSON line must be one object {{...}}, got {type(value).__name__}"
    return None


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


def _text_pair_problems(pairs: list[Any], ids: list[str], column: str, loc: str) -> list[str]:
    """Rows whose second text (a pair task's `text_pair_column`) is missing, empty or not a string, with their ids."""
    bad = [i for i, t in enumerate(pairs) if not isinstance(t, str) or not t.strip()]
    if not bad:
        return []
    shown = ", ".join(repr(ids[i]) for i in bad[:_MAX_ROWS_SHOWN])
    return [
        f"{loc}: {len(bad)} missing, empty or non-string second text(s) of the pair in column {column!r} "
        f"({_rows_text(bad)}; ids {shown}{', ...' if len(bad) > _MAX_ROWS_SHOWN else ''}; "
        f"e.g. {pairs[bad[0]]!r:.60})"
    ]


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

    raw, where = _read_task(spec)
    names = spec.label_names
    width = (
        None
        if spec.problem_type == "single_label"
        else 1
        if spec.problem_type == "regression"
        else multi_label_width(spec, names, raw)
    )
    problems: list[str] = []
    columns: dict[str, dict[str, list[Any]]] = {}
    for split, ds in raw.items():
        if names is None and spec.problem_type == "single_label" and _readable(spec, ds):
            names = _label_names_from_features(ds, spec.label_column)
        loc = f"task {spec.name!r}, split {split!r} ({where[split]})"
        split_columns, split_problems = _split_columns(spec, split, ds, loc, names, width)
        problems.extend(split_problems)
        if split_columns is not None:
            columns[split] = split_columns
    _raise_problems(problems)
    num_labels = (
        width or spec.num_labels or (len(names) if names else None) or _inferred_num_labels(spec, columns)
    )
    if names is not None and len(names) != num_labels:
        raise ValueError(f"task {spec.name!r}: num_labels={num_labels} but the label names are {names}")
    _raise_problems(_out_of_range_labels(spec, columns, where, num_labels))
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            **({"text_pair": datasets.Value("string")} if spec.text_pair_column else {}),
            "label": label_feature(spec.problem_type),
        }
    )
    splits = {s: datasets.Dataset.from_dict(c, features=features) for s, c in columns.items()}
    splits, where = _required_and_sampled(spec, splits, where)
    ordered = datasets.DatasetDict({s: splits[s] for s in SPLITS if s in splits})
    return ordered, num_labels, list(names) if names else [f"LABEL_{i}" for i in range(num_labels)], where


def _read_task(spec: TaskSpec) -> tuple[dict[str, Any], dict[str, str]]:
    """The task's raw splits and where each came from, after `preprocess` when the task has one."""
    raw, where = _raw_splits(spec)
    if spec.preprocess is None:
        return raw, where
    fn = PREPROCESSORS[spec.preprocess] if isinstance(spec.preprocess, str) else spec.preprocess
    raw = {s: _apply_preprocess(spec, fn, ds, s, where[s]) for s, ds in raw.items()}
    return raw, {s: f"{w} (after preprocess)" for s, w in where.items()}


def _wanted_columns(spec: TaskSpec) -> tuple[str, ...]:
    return (spec.text_column, spec.label_column, *([spec.text_pair_column] if spec.text_pair_column else []))


def _readable(spec: TaskSpec, ds: Any) -> bool:
    """Whether a raw split has the task's columns and rows (else `_split_columns` reports it)."""
    return len(ds) > 0 and all(c in ds.column_names for c in _wanted_columns(spec))


def _split_columns(
    spec: TaskSpec, split: str, ds: Any, loc: str, names: list[str] | None, width: int | None
) -> tuple[dict[str, list[Any]] | None, list[str]]:
    """One split's id / text (/ text_pair) / label columns and every problem found in them (None: unreadable)."""
    missing = [c for c in _wanted_columns(spec) if c not in ds.column_names]
    if missing:
        pair = " / text_pair_column=" if spec.text_pair_column else ""
        return None, [
            f"{loc}: missing column(s) {missing}; available columns: {ds.column_names}. "
            f"Map yours with text_column= / label_column={pair}"
        ]
    if len(ds) == 0:
        return None, [f"{loc}: no rows"]
    texts = ds[spec.text_column]
    problems = _text_problems(texts, spec.text_column, loc)
    ids, id_problems = _row_ids(spec, split, ds, loc)
    if spec.problem_type == "single_label":
        labels, label_problems = _convert_labels(ds[spec.label_column], names, loc)
        problems += label_problems + id_problems
    else:
        problems += id_problems
        labels, label_problems = convert_targets(
            spec.problem_type, ds[spec.label_column], names, width, ids, loc
        )
        problems += label_problems
    columns = {"id": ids, "text": texts, "label": labels}
    if spec.text_pair_column:
        columns["text_pair"] = ds[spec.text_pair_column]
        problems += _text_pair_problems(columns["text_pair"], ids, spec.text_pair_column, loc)
    return columns, problems


def _text_problems(texts: list[Any], column: str, loc: str) -> list[str]:
    """Texts that are not strings, and empty, whitespace-only or missing texts, with their rows."""
    problems = []
    not_str = [i for i, t in enumerate(texts) if t is not None and not isinstance(t, str)]
    if not_str:
        problems.append(
            f"{loc}: {len(not_str)} text(s) in column {column!r} are not strings "
            f"({_rows_text(not_str)}; e.g. {texts[not_str[0]]!r})"
        )
    empty = [i for i, t in enumerate(texts) if t is None or (isinstance(t, str) and not t.strip())]
    if empty:
        problems.append(
            f"{loc}: {len(empty)} empty, whitespace-only or missing text(s) in column {column!r} "
            f"({_rows_text(empty)})"
        )
    return problems


def _row_ids(spec: TaskSpec, split: str, ds: Any, loc: str) -> tuple[list[str], list[str]]:
    """The rows' ids from `id_column` (a missing id is a problem), or generated ones when the column is absent."""
    if not spec.id_column or spec.id_column not in ds.column_names:
        return [f"{spec.name}-{split}-{i}" for i in range(len(ds))], []
    ids = ds[spec.id_column]
    no_id = [i for i, v in enumerate(ids) if v is None or str(v) == ""]
    problems = (
        [f"{loc}: {len(no_id)} missing id(s) in column {spec.id_column!r} ({_rows_text(no_id)})"]
        if no_id
        else []
    )
    return [str(v) for v in ids], problems


def _raise_problems(problems: list[str]) -> None:
    if problems:
        raise ValueError("invalid data:\n  - " + "\n  - ".join(problems))


def _inferred_num_labels(spec: TaskSpec, columns: Mapping[str, Mapping[str, list[Any]]]) -> int:
    """A single-label task's class count from its training labels (every class 0..K-1 must occur)."""
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
    return num_labels


def _out_of_range_labels(
    spec: TaskSpec, columns: Mapping[str, Mapping[str, list[Any]]], where: Mapping[str, str], num_labels: int
) -> list[str]:
    """Single-label class ids outside 0..num_labels-1, per split, with their rows."""
    problems = []
    for split, cols in columns.items() if spec.problem_type == "single_label" else ():
        labels = np.asarray(cols["label"])
        out_of_range = np.flatnonzero((labels < 0) | (labels >= num_labels)).tolist()
        if out_of_range:
            problems.append(
                f"task {spec.name!r}, split {split!r} ({where[split]}): {len(out_of_range)} label(s) outside "
                f"the allowed range 0..{num_labels - 1} ({_rows_text(out_of_range)}; "
                f"values {sorted(set(labels[out_of_range].tolist()))[:5]})"
            )
    return problems


def _required_and_sampled(
    spec: TaskSpec, splits: dict[str, Any], where: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The splits after the holdout is carved out of train, checked for the required ones, then sampled to
    `max_rows` (stratified, seeded)."""
    if spec.holdout:
        splits, where = _carve_holdout(spec, splits, where)
    missing = [s for s in spec.required_splits if s not in splits]
    if missing:
        raise ValueError(
            f"task {spec.name!r}: missing required split(s) {missing} (have {list(splits)}); give them in splits=, "
            "carve them with holdout=, or relax required_splits="
        )
    if spec.max_rows is None:
        return splits, where
    limits = spec.max_rows if isinstance(spec.max_rows, Mapping) else dict.fromkeys(SPLITS, spec.max_rows)
    sampled = {
        s: ds.select(_stratified_indices(strata(ds["label"], spec.problem_type), limits[s], spec.seed))
        if s in limits
        else ds
        for s, ds in splits.items()
    }
    return sampled, where


def _carve_holdout(spec: TaskSpec, splits: dict[str, Any], where: dict[str, str]) -> tuple[dict, dict]:
    """Split stratified, seeded fractions of train into the holdout splits; train keeps the rest."""
    train = splits["train"]
    labels = strata(train["label"], spec.problem_type)
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
