"""Streaming prediction over large JSONL / CSV / text inputs, with the PyTorch model or the ONNX runner.

`predict_file(predictor, "in.jsonl", "out.jsonl")` reads the input lazily, classifies it in windows of at most
``window`` rows (each window sorted by text length into batches, so a batch pads little), writes one JSON line per
input row in input order, and shows a tqdm progress bar on stderr. Memory is bounded by the window, not the input.

A predictor is anything with ``task_names``, ``default_task`` and ``predict(texts, task, batch_size)`` returning
`predict_texts`-style records (and, for sentence pairs, ``predict(..., text_pairs=[...])``):
`surgellm_hf.inference.TorchPredictor` (a model + processor, e.g. a run folder) and
`surgellm_hf.serving.runtime.OnnxSurgeClassifier` (an exported folder). `load_predictor(path)` picks by folder.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._lazy import lazy_exports
from ..atomic_io import replace_on_success
from .runtime import ALL_TASKS, OnnxSurgeClassifier, is_exported_folder, length_order

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
DEFAULT_WINDOW_BATCHES = 64


@runtime_checkable
class Predictor(Protocol):
    """What streaming needs of a model: task names, a default task and batched `predict`."""

    task_names: list[str]
    default_task: str

    def predict(self, texts: Sequence[str], task: Any = None, batch_size: int = 32) -> list[dict[str, Any]]:
        """`predict_texts` records for `texts` (task: a name, one per text, None or "all")."""
        ...


def load_predictor(
    path: str | os.PathLike, *, quantized: bool = False, num_threads: int | None = None
) -> Predictor:
    """An `OnnxSurgeClassifier` for an exported folder, else a `TorchPredictor` of whatever
    `surgellm_hf.inference.load_run_model` reads (run folder, LoRA run, adapter folder)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model folder not found: {path}")
    if is_exported_folder(path):
        return OnnxSurgeClassifier.from_pretrained(path, quantized=quantized, num_threads=num_threads)
    if quantized:
        raise ValueError(f"{path} is not an ONNX export; int8 needs `surgellm export --quantize` first")
    if num_threads is not None:
        import torch

        torch.set_num_threads(int(num_threads))
    from ..inference import TorchPredictor

    return TorchPredictor.from_pretrained(path)


# `TorchPredictor` lives in `surgellm_hf.inference` (it needs torch); imported from here on first use.
__getattr__, __dir__ = lazy_exports(__name__, {"TorchPredictor": "..inference"})

if TYPE_CHECKING:
    from ..inference import TorchPredictor


# ---------------------------------------------------------------------------------------------------- reading


def input_format(path: str | os.PathLike) -> str:
    """``jsonl``, ``csv``, ``tsv`` or ``text`` from a file name (stdin ``-`` is sniffed when read)."""
    suffix = Path(path).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    return "text"


def read_rows(
    source: str | os.PathLike | IO[str],
    *,
    fmt: str | None = None,
    text_field: str = "text",
) -> Iterator[dict[str, Any]]:
    """Rows (dicts with a string `text_field`) read lazily from a JSONL, CSV/TSV or plain-text file, or ``-``.

    JSONL rows keep all their fields; CSV rows are their columns; a plain-text line becomes ``{"text": line}``.
    Blank lines are skipped. A malformed row is a one-line ValueError naming its line.
    """
    if isinstance(source, (str, os.PathLike)) and str(source) == "-":
        stream: IO[str] = sys.stdin
        yield from _read_stream(stream, fmt, text_field, close=False)
        return
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        stream = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed by _read_stream
        yield from _read_stream(stream, fmt or input_format(path), text_field, close=True)
        return
    yield from _read_stream(source, fmt, text_field, close=False)


def _read_stream(stream: IO[str], fmt: str | None, text_field: str, close: bool) -> Iterator[dict[str, Any]]:
    try:
        if fmt is None:  # sniff: a first non-blank line starting with '{' is JSONL, else plain text
            head: list[str] = []
            for line in stream:
                head.append(line)
                if line.strip():
                    break
            fmt = "jsonl" if head and head[-1].lstrip().startswith("{") else "text"
            stream = _Chain(head, stream)
        if fmt in ("csv", "tsv"):
            yield from _read_csv(stream, "\t" if fmt == "tsv" else ",", text_field)
        elif fmt == "jsonl":
            yield from _read_jsonl(stream, text_field)
        elif fmt == "text":
            for line in stream:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield {text_field: line}
        else:
            raise ValueError(f"unknown input format {fmt!r}; use jsonl, csv, tsv or text")
    finally:
        if close:
            stream.close()


class _Chain:
    """Lines already read, then the rest of a stream (for sniffing stdin without buffering it)."""

    def __init__(self, head: list[str], rest: IO[str]):
        self._head, self._rest = list(head), rest

    def __iter__(self) -> Iterator[str]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        self._rest.close()


def _read_jsonl(stream: Iterable[str], text_field: str) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"input line {n} is not valid JSON: {err.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise ValueError(f"input line {n} needs a string field {text_field!r}")
        yield row


def _read_csv(stream: Iterable[str], delimiter: str, text_field: str) -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(stream, delimiter=delimiter)
    if reader.fieldnames is None:
        return
    if text_field not in reader.fieldnames:
        raise ValueError(f"the input has no {text_field!r} column (columns: {reader.fieldnames})")
    for row in reader:
        if row.get(text_field) is None:
            raise ValueError(f"input row {reader.line_num} has no {text_field!r} value")
        if row[text_field].strip() or any((v or "").strip() for v in row.values()):
            yield dict(row)


def count_rows(path: str | os.PathLike) -> int | None:
    """Non-blank lines of a file (the progress bar's total; a CSV header is not counted); None for stdin."""
    if str(path) == "-":
        return None
    n = 0
    with open(path, "rb") as f:
        for line in f:
            n += bool(line.strip())
    if input_format(path) in ("csv", "tsv"):
        n = max(n - 1, 0)  # multi-line quoted fields make this an upper bound
    return n


# ---------------------------------------------------------------------------------------------------- predicting


def stream_predict(
    predictor: Predictor,
    rows: Iterable[dict[str, Any]],
    *,
    task: str | None = None,
    batch_size: int = 32,
    window: int | None = None,
    text_field: str = "text",
    task_field: str = "task",
    progress: Any = None,
    pair_field: str = "text_pair",
    threshold: Any = None,
    explain: bool = False,
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield ``(row, record)`` for every row, in input order, holding at most `window` rows at a time.

    Each row is classified under its own `task_field`, else `task`, else the default task; ``task="all"`` gives
    every task for every row. Within a window the rows are sorted by text length into batches of `batch_size`.
    `progress` is a tqdm-like object whose ``update(n)`` is called per batch (or None). A row with a string
    `pair_field` is a sentence pair (for the model's pair tasks); a missing, null or empty field: a single text.
    `threshold` (multi-label thresholds) and `explain` go to the predictor's ``predict`` when set.
    """
    check_positive("batch_size", batch_size)
    window = check_positive("window", batch_size * DEFAULT_WINDOW_BATCHES if window is None else window)
    every = task == ALL_TASKS
    if task is not None and not every and task not in predictor.task_names:
        raise ValueError(f"unknown task {task!r}; valid tasks are {predictor.task_names} (or 'all')")
    options = {k: v for k, v in (("threshold", threshold), ("explain", explain)) if v not in (None, False)}
    iterator = iter(rows)
    while True:
        block = list(islice(iterator, window))
        if not block:
            return
        texts = [r[text_field] for r in block]
        pairs = [r.get(pair_field) or None for r in block]  # "" (an empty CSV cell): no pair
        bad = [i for i, p in enumerate(pairs) if p is not None and not isinstance(p, str)]
        if bad:
            raise ValueError(f"field {pair_field!r} must be a string or null, got {pairs[bad[0]]!r:.60}")
        has_pairs = any(p is not None for p in pairs)
        tasks = None if every else [r.get(task_field) or task or predictor.default_task for r in block]
        records: list[dict[str, Any] | None] = [None] * len(block)
        order = length_order([t + (p or "") for t, p in zip(texts, pairs)])
        for start in range(0, len(block), batch_size):
            idx = order[start : start + batch_size]
            chunk = [texts[i] for i in idx]
            chunk_task: Any = ALL_TASKS if every else [tasks[i] for i in idx]
            extra = {"text_pairs": [pairs[i] for i in idx]} if has_pairs else {}
            extra.update(options)
            for i, rec in zip(idx, predictor.predict(chunk, task=chunk_task, batch_size=len(chunk), **extra)):
                records[i] = rec
            if progress is not None:
                progress.update(len(chunk))
        yield from zip(block, records)  # type: ignore[misc]


def output_row(row: dict[str, Any], record: dict[str, Any], task_field: str = "task") -> dict[str, Any]:
    """The JSON line of one prediction: the input row's fields (less its task field) then the record's."""
    return {**{k: v for k, v in row.items() if k != task_field}, **record}


def check_positive(name: str, value: Any) -> int:
    """`value` if it is a positive integer, else a one-line ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_output_path(output_path: str | os.PathLike, input_path: str | os.PathLike = "-") -> Path:
    """The file `output_path` names, checked before anything is read or written: not a folder, in a folder that
    exists, and not the input file (predictions written over the texts being read would destroy them)."""
    path = Path(output_path)
    if path.is_dir():
        raise ValueError(f"output {path} is a folder; name a file to write the predictions to")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist")
    if str(input_path) != "-" and (
        os.path.realpath(path) == os.path.realpath(input_path)
        or (path.exists() and Path(input_path).exists() and os.path.samefile(path, input_path))
    ):
        raise ValueError(
            f"output {path} is the input file; write the predictions to another file (the input would be lost)"
        )
    return path


def predict_file(
    predictor: Predictor,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike = "-",
    *,
    task: str | None = None,
    batch_size: int = 32,
    window: int | None = None,
    fmt: str | None = None,
    text_field: str = "text",
    task_field: str = "task",
    progress: bool = True,
    pair_field: str = "text_pair",
    threshold: Any = None,
    explain: bool = False,
) -> int:
    """Classify every row of `input_path` (``-``: stdin) into JSON lines at `output_path` (``-``: stdout), in
    input order, with a progress bar on stderr; returns the number of rows.

    Arguments, the output path and the first input row are checked before anything is written. A file output is
    written beside its target and renamed over it at the end (`replace_on_success`): an error on the way (a
    malformed input row, a full disk, an interrupt) leaves an existing file as it was and no partial file.
    `threshold` and `explain` as in `stream_predict`.
    """
    from tqdm.auto import tqdm

    check_positive("batch_size", batch_size)
    if window is not None:
        check_positive("window", window)
    if task is not None and task != ALL_TASKS and task not in predictor.task_names:
        raise ValueError(f"unknown task {task!r}; valid tasks are {predictor.task_names} (or 'all')")
    to_stdout = str(output_path) == "-"
    if not to_stdout:
        check_output_path(output_path, input_path)
    rows = read_rows(input_path, fmt=fmt, text_field=text_field)
    first = next(rows, None)
    if first is None:
        raise ValueError("no input texts")
    rows = chain([first], rows)
    total = count_rows(input_path) if str(input_path) != "-" else None
    bar = tqdm(total=total, unit="text", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    n = 0
    try:
        with contextlib.nullcontext(sys.stdout) if to_stdout else replace_on_success(output_path) as out:
            for row, record in stream_predict(
                predictor,
                rows,
                task=task,
                batch_size=batch_size,
                window=window,
                text_field=text_field,
                task_field=task_field,
                progress=bar,
                pair_field=pair_field,
                threshold=threshold,
                explain=explain,
            ):
                out.write(json.dumps(output_row(row, record, task_field), ensure_ascii=False) + "\n")
                n += 1
            out.flush()
    finally:
        bar.close()
    return n


__all__ = [
    "Predictor",
    "TorchPredictor",
    "load_predictor",
    "read_rows",
    "count_rows",
    "input_format",
    "stream_predict",
    "predict_file",
    "output_row",
    "check_output_path",
    "check_positive",
    "replace_on_success",
    "ALL_TASKS",
]
