"""Streaming prediction over large JSONL / CSV / text inputs, with the PyTorch model or the ONNX runner.

`predict_file(predictor, "in.jsonl", "out.jsonl")` reads the input lazily, classifies it in windows of at most
``window`` rows (each window sorted by text length into batches, so a batch pads little), writes one JSON line per
input row in input order, and shows a tqdm progress bar on stderr. Memory is bounded by the window, not the input.

A predictor is anything with ``task_names``, ``default_task`` and ``predict(texts, task, batch_size)`` returning
`predict_texts`-style records (and, for sentence pairs, ``predict(..., text_pairs=[...])``): `TorchPredictor` (a model + processor, e.g. a run folder) and
`surgellm_hf.serving.runtime.OnnxSurgeClassifier` (an exported folder). `load_predictor(path)` picks by folder.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from .runtime import (
    OnnxSurgeClassifier,
    TaskScoring,
    input_depends_on_task,
    is_exported_folder,
    length_order,
    predict_batched,
)

ALL_TASKS = "all"
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


class TorchPredictor:
    """A PyTorch SURGELLM model + processor behind the `Predictor` interface (``task="all"`` included)."""

    def __init__(self, model: Any, processor: Any):
        processor.check_model(model)
        self.model = model.eval()
        self.processor = processor
        self.task_names: list[str] = list(model.config.task_names)
        self.default_task: str = model.config.default_task
        config = model.config
        self.scoring = TaskScoring(
            config.tasks,
            {t: config.label_names(t) for t in self.task_names},
            config.task_problem_types,
            config.task_thresholds,
        )
        self.all_tasks_in_one_pass = not input_depends_on_task(processor)

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike) -> TorchPredictor:
        """Load the model and processor saved together in a run folder (or any folder holding both)."""
        from .export import load_model_and_processor

        return cls(*load_model_and_processor(model_dir))

    def _inputs(
        self, texts: Sequence[str], task: Any, text_pairs: Sequence[str | None] | None = None
    ) -> dict:
        pairs = None if text_pairs is None else list(text_pairs)
        enc = self.processor(list(texts), text_pair=pairs, task=task, return_tensors="pt", padding=True)
        device = self.model.device
        return {k: v.to(device) for k, v in enc.items()}

    def logits(
        self, texts: Sequence[str], task: Any = None, text_pairs: Sequence[str | None] | None = None
    ) -> Any:
        """Padded ``[N, max_num_labels]`` float32 numpy logits of one batch (`text_pairs`: None per single text)."""
        import torch

        with torch.inference_mode():
            return self.model(**self._inputs(texts, task, text_pairs)).logits.float().cpu().numpy()

    def all_logits(self, texts: Sequence[str]) -> Any:
        """``[N, num_tasks, max_num_labels]`` logits of one batch: `forward_all_tasks` (one encoder pass) where
        the input does not depend on the task, else one pass per task."""
        import numpy as np
        import torch

        if not self.all_tasks_in_one_pass:
            return np.stack([self.logits(texts, t) for t in self.task_names], axis=1)
        inputs = self._inputs(texts, self.default_task)
        inputs.pop("task_ids")
        with torch.inference_mode():
            return self.model.forward_all_tasks(**inputs).float().cpu().numpy()

    def predict(
        self,
        texts: Sequence[str],
        task: Any = None,
        batch_size: int = 32,
        text_pairs: Sequence[str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """`predict_texts` records in input order (batched longest first); ``task="all"``: every task per text.
        `text_pairs`: the second text of each sentence pair, None for rows of single-text tasks."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        every = task == ALL_TASKS and ALL_TASKS not in self.task_names
        if every and not self.all_tasks_in_one_pass and len(self.task_names) > 1:
            import warnings

            warnings.warn(
                f"the encoder input of this model depends on the task (prefix {self.processor.prefix!r}), so "
                f"task='all' runs one encoder pass per task ({len(self.task_names)} passes)",
                stacklevel=2,
            )
        tasks = None if every else _task_list(task, len(texts), self.task_names, self.default_task)
        return predict_batched(self, texts, tasks, batch_size, text_pairs)


def _task_list(task: Any, n: int, task_names: list[str], default: str) -> list[str]:
    def name(t: Any) -> str:
        if t is None:
            return default
        if isinstance(t, int) and not isinstance(t, bool) and 0 <= t < len(task_names):
            return task_names[t]
        if t not in task_names:
            raise ValueError(f"unknown task {t!r}; valid tasks are {task_names} (or 'all')")
        return t

    if task is None or isinstance(task, (str, int)):
        return [name(task)] * n
    tasks = list(task)
    if len(tasks) != n:
        raise ValueError(f"got {n} texts but {len(tasks)} task names")
    return [name(t) for t in tasks]


def load_predictor(
    path: str | os.PathLike, *, quantized: bool = False, num_threads: int | None = None
) -> Predictor:
    """An `OnnxSurgeClassifier` for an exported folder, a `TorchPredictor` for a run folder (model + processor)."""
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
    return TorchPredictor.from_pretrained(path)


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
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield ``(row, record)`` for every row, in input order, holding at most `window` rows at a time.

    Each row is classified under its own `task_field`, else `task`, else the default task; ``task="all"`` gives
    every task for every row. Within a window the rows are sorted by text length into batches of `batch_size`.
    `progress` is a tqdm-like object whose ``update(n)`` is called per batch (or None). A row with a string
    `pair_field` is a sentence pair (for the model's pair tasks); a missing, null or empty field: a single text.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if window is None:
        window = batch_size * DEFAULT_WINDOW_BATCHES
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    every = task == ALL_TASKS
    if task is not None and not every and task not in predictor.task_names:
        raise ValueError(f"unknown task {task!r}; valid tasks are {predictor.task_names} (or 'all')")
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
            for i, rec in zip(idx, predictor.predict(chunk, task=chunk_task, batch_size=len(chunk), **extra)):
                records[i] = rec
            if progress is not None:
                progress.update(len(chunk))
        yield from zip(block, records)  # type: ignore[misc]


def output_row(row: dict[str, Any], record: dict[str, Any], task_field: str = "task") -> dict[str, Any]:
    """The JSON line of one prediction: the input row's fields (less its task field) then the record's."""
    return {**{k: v for k, v in row.items() if k != task_field}, **record}


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
) -> int:
    """Classify every row of `input_path` (``-``: stdin) into JSON lines at `output_path` (``-``: stdout), in
    input order, with a progress bar on stderr; returns the number of rows. Raises ValueError on empty input
    (before the output is opened)."""
    from tqdm.auto import tqdm

    if task is not None and task != ALL_TASKS and task not in predictor.task_names:
        raise ValueError(f"unknown task {task!r}; valid tasks are {predictor.task_names} (or 'all')")
    rows = read_rows(input_path, fmt=fmt, text_field=text_field)
    first = next(rows, None)
    if first is None:
        raise ValueError("no input texts")
    rows = chain([first], rows)
    total = count_rows(input_path) if str(input_path) != "-" else None
    bar = tqdm(total=total, unit="text", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    to_stdout = str(output_path) == "-"
    out = sys.stdout if to_stdout else open(output_path, "w", encoding="utf-8")  # noqa: SIM115
    n = 0
    try:
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
        ):
            out.write(json.dumps(output_row(row, record, task_field), ensure_ascii=False) + "\n")
            n += 1
        out.flush()
    finally:
        bar.close()
        if not to_stdout:
            out.close()
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
    "ALL_TASKS",
]
