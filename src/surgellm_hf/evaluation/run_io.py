"""The run-folder format: `save_run` writes it after training, `load_run` reads it back for reports and cards.

``<run_dir>/metrics.json``::

    {"format": "surgellm-run/1", "variant": "IWN", "seed": 0,
     "task_order": ["<task>", ...],                              # the tasks' order (a list survives any JSON tool)
     "tasks": {"<task>": {"validation": {"macro_f1": .., "accuracy": .., "precision": .., "recall": ..,
                                         "roc_auc": .., "n": ..},
                          "test": {...}}},                      # any subset of train/validation/test
     "avg_macro_f1": {"validation": .., "test": ..},           # unweighted mean over tasks, per split
     ...}                                                      # any further keys are kept as `extra`

NaN (e.g. ROC-AUC with one class) is written as JSON null and read back as NaN; a regression task whose correlations
are undefined (constant targets or predictions) is listed with the reason under ``undefined_scores``
({task: {split: note}}), and counts 0 in ``avg_macro_f1`` (`metrics.primary_score`). Task order is carried by
``task_order``, never by the key order of ``tasks`` (JSON objects are unordered; tools that sort keys reorder them).

``<run_dir>/predictions/<task>_<split>.jsonl`` (optional; enables bootstrap CIs and gate plots), one row
per example, in the split's order: ``{"id": str?, "y_true": int, "y_pred": int, "score": float | [float, ...]?,
"gate": float?}``; score is P(class 1) for binary tasks or the class probabilities, gate the example's mean
gate value. A multi-label task's rows hold lists of label names as y_true / y_pred and the per-label probabilities
as score; a regression task's rows the target and the predicted value (floats). Tasks' metrics hold macro_f1, or
(regression) pearson and spearman; ``avg_macro_f1`` is the mean of the tasks' primary scores
(`metrics.primary_score`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic_io import atomic_write_text
from ..data.task_spec import SPLITS
from .metrics import AVERAGE, summarize_tasks, undefined_scores

RUN_FORMAT = "surgellm-run/1"
_RECORD_KEYS = ("format", "variant", "seed", "task_order", "tasks", "avg_macro_f1")


@dataclass
class RunRecord:
    """One training run: its variant, seed, metrics per task and split, and optional predictions."""

    variant: str = field(metadata={"help": "Variant name, e.g. 'baseline' or 'IWN'."})
    seed: int = field(metadata={"help": "Training seed."})
    tasks: dict[str, dict[str, dict[str, float]]] = field(
        metadata={"help": "task -> split -> metric -> value."}
    )
    avg_macro_f1: dict[str, float] = field(
        default_factory=dict, metadata={"help": "split -> mean task macro-F1."}
    )
    predictions: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=dict,
        metadata={
            "help": "task -> split -> {'y_true', 'y_pred', 'score', 'gate', 'id'} (arrays; score/gate/id may be None)."
        },
    )
    extra: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Other keys found in metrics.json."}
    )
    path: str | None = field(default=None, metadata={"help": "Run folder it was read from."})


def _avg_by_split(tasks: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, float]:
    splits = [s for s in SPLITS if all(s in by_split for by_split in tasks.values())]
    return {s: summarize_tasks({t: tasks[t][s] for t in tasks})["avg_macro_f1"] for s in splits}


def save_run(
    run_dir: str | os.PathLike,
    variant: str,
    seed: int,
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
    predictions: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write metrics.json (+ predictions/<task>_<split>.jsonl) in the format documented above; returns metrics.json."""
    if not isinstance(variant, str) or not variant:
        raise ValueError(f"variant must be a non-empty string, got {variant!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if not metrics:
        raise ValueError("metrics must hold at least one task")
    for task, by_split in metrics.items():
        if task == AVERAGE:
            raise ValueError(f"a task may not be named {AVERAGE!r}")
        bad = [s for s in by_split if s not in SPLITS]
        if bad or not by_split:
            raise ValueError(f"task {task!r}: metrics need splits among {list(SPLITS)}, got {list(by_split)}")
        for split, m in by_split.items():
            if "macro_f1" not in m and "pearson" not in m:
                raise ValueError(f"task {task!r}, split {split!r}: metrics lack 'macro_f1' (or 'pearson')")
    reserved = set(_RECORD_KEYS) & set(extra or {})
    if reserved:
        raise ValueError(f"extra may not use reserved key(s) {sorted(reserved)}")
    for task, by_split in (predictions or {}).items():
        unknown = [sp for sp in by_split if sp not in metrics.get(task, {})]
        if task not in metrics or unknown:
            raise ValueError(
                f"predictions for task {task!r} split(s) {unknown or list(by_split)} have no metrics"
            )
    rows = {
        f"{task}_{split}.jsonl": _prediction_rows(pred, f"{task}/{split}")
        for task, by_split in (predictions or {}).items()
        for split, pred in by_split.items()
    }
    record = {
        "format": RUN_FORMAT,
        "variant": variant,
        "seed": seed,
        "task_order": list(metrics),
        "tasks": {
            t: {sp: {k: _json_number(v) for k, v in m.items()} for sp, m in by_split.items()}
            for t, by_split in metrics.items()
        },
        "avg_macro_f1": {sp: _json_number(v) for sp, v in _avg_by_split(metrics).items()},
        **({"undefined_scores": notes} if (notes := undefined_scores(metrics, predictions)) else {}),
        **(extra or {}),
    }
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"  # fails here, before writing, on bad extra
    run_dir = Path(run_dir)
    for name, lines in rows.items():
        (run_dir / "predictions").mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "predictions" / name, "".join(json.dumps(r) + "\n" for r in lines))
    return atomic_write_text(
        run_dir / "metrics.json", text
    )  # written last: a run with metrics.json is finished


def _json_number(v: Any) -> Any:
    """numpy scalars -> Python; NaN -> null (strict JSON); load_run turns null back into NaN."""
    if isinstance(v, np.generic):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def _prediction_rows(pred: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """Validate one task/split's predictions and turn them into JSON rows."""
    missing = [k for k in ("y_true", "y_pred") if k not in pred]
    if missing:
        raise ValueError(f"predictions {where}: missing {missing}")
    y_true, y_pred = (
        list(pred[k]) if isinstance(pred[k], list) else np.asarray(pred[k]).tolist()
        for k in ("y_true", "y_pred")
    )
    n = len(y_true)
    optional = {k: pred.get(k) for k in ("id", "score", "gate") if pred.get(k) is not None}
    for k, v in {"y_pred": y_pred, **optional}.items():
        if len(v) != n:
            raise ValueError(f"predictions {where}: {k} has {len(v)} entries but y_true has {n}")
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"y_true": _label_value(y_true[i]), "y_pred": _label_value(y_pred[i])}
        if "id" in optional:
            row["id"] = str(optional["id"][i])
        if "score" in optional:
            row["score"] = np.asarray(optional["score"][i], dtype=np.float64).tolist()
        if "gate" in optional:
            row["gate"] = float(optional["gate"][i])
        rows.append(row)
    return rows


def _label_value(v: Any) -> Any:
    """A prediction row's label: a class id (int), a list of label names (multi-label) or a float (regression)."""
    if isinstance(v, list):
        return [str(x) for x in v]
    return float(v) if isinstance(v, float | np.floating) else int(v)


def load_run(run_dir: str | os.PathLike) -> RunRecord:
    """Read a run folder written by `save_run` (or by hand in the same format)."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.json in run folder {run_dir}")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    missing = [k for k in ("variant", "seed", "tasks") if k not in record]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    if record.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise ValueError(f"{path}: unsupported format {record['format']!r} (expected {RUN_FORMAT!r})")
    order = record.get("task_order", list(record["tasks"]))
    if not isinstance(order, list) or sorted(map(str, order)) != sorted(record["tasks"]):
        raise ValueError(
            f"{path}: task_order {order!r} does not list the tasks {sorted(record['tasks'])} once each"
        )
    tasks = {
        t: {
            s: {k: float("nan") if v is None else v for k, v in m.items()}
            for s, m in record["tasks"][t].items()
        }
        for t in order
    }
    predictions: dict[str, dict[str, dict[str, Any]]] = {}
    pred_dir = run_dir / "predictions"
    if pred_dir.is_dir():
        for f in sorted(pred_dir.glob("*.jsonl")):
            task, _, split = f.stem.rpartition("_")
            if task not in tasks or split not in SPLITS:
                raise ValueError(
                    f"{f}: name must be <task>_<split>.jsonl with a task of metrics.json {sorted(tasks)}"
                )
            predictions.setdefault(task, {})[split] = _read_predictions(f)
    extra = {k: v for k, v in record.items() if k not in _RECORD_KEYS}
    avg = {
        s: float("nan") if v is None else v
        for s, v in (record.get("avg_macro_f1") or _avg_by_split(tasks)).items()
    }
    return RunRecord(record["variant"], int(record["seed"]), tasks, avg, predictions, extra, str(run_dir))


def _read_predictions(path: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no rows")
    for key in ("y_true", "y_pred"):
        if any(key not in r for r in rows):
            raise ValueError(f"{path}: every row needs {key!r}")

    def column(key: str) -> Any:
        present = [key in r for r in rows]
        if not any(present):
            return None
        if not all(present):
            raise ValueError(f"{path}: {key!r} is present in some rows only")
        return [r[key] for r in rows]

    score, gate, ids = column("score"), column("gate"), column("id")
    y_true, y_pred = column("y_true"), column("y_pred")
    if any(isinstance(v, list) for v in y_true):  # multi-label: lists of label names
        labels = {"y_true": y_true, "y_pred": y_pred}
    elif any(isinstance(v, float) for v in y_true + y_pred):  # regression
        labels = {
            "y_true": np.asarray(y_true, dtype=np.float64),
            "y_pred": np.asarray(y_pred, dtype=np.float64),
        }
    else:
        labels = {"y_true": np.asarray(y_true, dtype=np.int64), "y_pred": np.asarray(y_pred, dtype=np.int64)}
    return {
        **labels,
        "score": None if score is None else np.asarray(score, dtype=np.float64),
        "gate": None if gate is None else np.asarray(gate, dtype=np.float64),
        "id": ids,
    }
