"""Comparing variants over seeds: per task and average, mean ± SD, bootstrap CIs and Welch + BH tests."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import AVERAGE, METRICS, primary_score
from .run_io import RunRecord, load_run
from .statistics import _bootstrap_values, _percentiles, _prepare_bootstrap, aggregate_runs, welch_bh


@dataclass
class Comparison:
    """Variants x tasks (+ "average"): mean ± SD over runs, bootstrap CI, Welch + BH against a baseline."""

    split: str = field(metadata={"help": "Split compared (e.g. 'test')."})
    metric: str = field(metadata={"help": "Metric compared (e.g. 'macro_f1')."})
    tasks: list[str] = field(
        metadata={"help": "Task names in order (the 'average' column comes after them)."}
    )
    variants: list[str] = field(metadata={"help": "Variant names in order."})
    baseline: str | None = field(metadata={"help": "Variant the others are tested against."})
    cells: dict[str, dict[str, dict[str, Any]]] = field(
        metadata={
            "help": "variant -> task|'average' -> {mean, sd, n, values, ci_low, ci_high, diff, p, p_adj, reject}."
        }
    )
    seeds: dict[str, list[int]] = field(
        default_factory=dict, metadata={"help": "variant -> seeds of its runs."}
    )
    alpha: float = field(default=0.05, metadata={"help": "BH false discovery rate."})
    level: float = field(default=0.95, metadata={"help": "Bootstrap CI level."})

    @property
    def columns(self) -> list[str]:
        """Tasks followed by 'average'."""
        return [*self.tasks, AVERAGE]


def _as_records(runs: Any) -> dict[str, list[RunRecord]]:
    if isinstance(runs, Mapping):
        grouped = {v: [r if isinstance(r, RunRecord) else load_run(r) for r in rs] for v, rs in runs.items()}
    elif isinstance(runs, Sequence) and not isinstance(runs, str):
        grouped = {}
        for r in runs:
            rec = r if isinstance(r, RunRecord) else load_run(r)
            grouped.setdefault(rec.variant, []).append(rec)
    else:
        raise TypeError(
            f"runs must be a list of run folders/RunRecords or a mapping variant -> list, got {type(runs).__name__}"
        )
    empty = [v for v, rs in grouped.items() if not rs]
    if not grouped or empty:
        raise ValueError(f"no runs given{f' for variant(s) {empty}' if empty else ''}")
    return grouped


def compare_runs(
    runs: Mapping[str, Sequence[RunRecord | str | os.PathLike]] | Sequence[RunRecord | str | os.PathLike],
    baseline: str | None = "baseline",
    split: str = "test",
    metric: str = "macro_f1",
    alpha: float = 0.05,
    n_resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare variants over seeds: per task and average, mean ± SD, a bootstrap CI (when every run of the
    variant saved predictions for the split), and Welch tests against `baseline` with BH over all tests.

    `runs` is a list of run folders / RunRecords (grouped by their variant) or a mapping variant -> runs.
    """
    grouped = _as_records(runs)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if baseline is not None and baseline not in grouped:
        raise ValueError(f"baseline {baseline!r} not among the variants {list(grouped)}")
    first = next(iter(grouped.values()))[0]
    tasks = list(first.tasks)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for variant, records in grouped.items():
        per_run = []
        for rec in records:
            if set(rec.tasks) != set(tasks):
                raise ValueError(
                    f"run {rec.path or rec.variant} has tasks {sorted(rec.tasks)}, expected {sorted(tasks)}"
                )
            scored = {t: _with_primary(rec.tasks[t][split], metric) for t in tasks if split in rec.tasks[t]}
            missing = [t for t in tasks if t not in scored or metric not in scored[t]]
            if missing:
                raise ValueError(f"run {rec.path or rec.variant}: no {split} {metric} for task(s) {missing}")
            per_run.append(scored)
        agg = aggregate_runs(per_run)
        cells[variant] = {}
        for col in [*tasks, AVERAGE]:
            values = (
                [float(np.mean([float(r[t][metric]) for t in tasks])) for r in per_run]
                if col == AVERAGE
                else [float(r[col][metric]) for r in per_run]
            )
            cells[variant][col] = {**agg[col][metric], "values": values, "ci_low": None, "ci_high": None}
        _add_bootstrap(cells[variant], records, tasks, split, metric, n_resamples, level, seed)
    if baseline is not None:
        keys = [(v, c) for v in grouped if v != baseline for c in [*tasks, AVERAGE]]
        if keys:
            tests = welch_bh(
                {f"{v}\x00{c}": cells[v][c]["values"] for v, c in keys},
                {f"{v}\x00{c}": cells[baseline][c]["values"] for v, c in keys},
                alpha=alpha,
            )
            for v, c in keys:
                t = tests[f"{v}\x00{c}"]
                cells[v][c].update(
                    diff=t["diff"], t=t["t"], df=t["df"], p=t["p"], p_adj=t["p_adj"], reject=t["reject"]
                )
    return Comparison(
        split,
        metric,
        tasks,
        list(grouped),
        baseline,
        cells,
        {v: [r.seed for r in rs] for v, rs in grouped.items()},
        alpha,
        level,
    )


def _with_primary(metrics: Mapping[str, float], metric: str) -> dict[str, float]:
    """A task's metrics; a regression task (no macro-F1) gets its primary score in the macro-F1 column, so the
    average compared is the mean of the tasks' primary scores (`metrics.primary_score`)."""
    out = dict(metrics)
    if metric == "macro_f1" and "macro_f1" not in out and "pearson" in out:
        out["macro_f1"] = primary_score(out)
    return out


def _class_id_predictions(pred: Mapping[str, Any] | None) -> bool:
    """Whether a task/split's saved predictions are single-label class ids (what the bootstrap resamples)."""
    return (
        pred is not None
        and not isinstance(pred["y_true"], list)
        and np.asarray(pred["y_true"]).dtype.kind in "iu"
    )


def _add_bootstrap(
    cells: dict[str, dict[str, Any]],
    records: Sequence[RunRecord],
    tasks: Sequence[str],
    split: str,
    metric: str,
    n_resamples: int,
    level: float,
    seed: int,
) -> None:
    """Per task, the CI of the mean over runs (resample seed [seed, task index]); when every task has
    predictions, the average's CI from the per-task resamples averaged (tasks are independent samples)."""
    per_task_values = []
    for i, task in enumerate(tasks):
        preds = [r.predictions.get(task, {}).get(split) for r in records]
        if not all(_class_id_predictions(p) for p in preds):
            continue  # no predictions, or a multi-label / regression task: no bootstrap CI
        if metric == "roc_auc" and any(
            p["score"] is None or (p["score"].ndim == 2 and p["score"].shape[1] != 2) for p in preds
        ):
            continue  # no scores, or a multi-class task: no bootstrap CI for ROC-AUC
        y_true = preds[0]["y_true"]
        if any(len(p["y_true"]) != len(y_true) or np.any(p["y_true"] != y_true) for p in preds):
            raise ValueError(
                f"task {task!r}, split {split!r}: runs predicted different examples; cannot pool them"
            )
        scores = [p["score"] for p in preds] if metric == "roc_auc" else None
        y, y_pred, y_score = _prepare_bootstrap(
            y_true, np.stack([p["y_pred"] for p in preds]), metric, scores
        )
        values = _bootstrap_values(y, y_pred, metric, n_resamples, np.random.default_rng([seed, i]), y_score)
        cells[task]["ci_low"], cells[task]["ci_high"] = _percentiles(values, level)
        per_task_values.append(values)
    if metric != "roc_auc" and len(per_task_values) == len(tasks):
        cells[AVERAGE]["ci_low"], cells[AVERAGE]["ci_high"] = _percentiles(
            np.mean(per_task_values, axis=0), level
        )
