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
    tasks = list(next(iter(grouped.values()))[0].tasks)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for variant, records in grouped.items():
        cells[variant] = _variant_cells(records, tasks, split, metric)
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


@dataclass
class PairComparison:
    """Named pairs of variants (a vs b) over seeds, per task and average: the difference of the means with its
    Welch confidence interval, Welch p and Benjamini-Hochberg q over every pair and column together."""

    split: str = field(metadata={"help": "Split compared."})
    metric: str = field(metadata={"help": "Metric compared."})
    tasks: list[str] = field(metadata={"help": "Task names in order ('average' comes after them)."})
    pairs: list[tuple[str, str]] = field(metadata={"help": "The (a, b) pairs, in the order asked."})
    cells: dict[str, dict[str, dict[str, Any]]] = field(
        metadata={
            "help": "'a vs b' -> task|'average' -> {mean_a, mean_b, diff (a - b), ci_low, ci_high, t, df, p, "
            "p_adj, reject, covers_zero}."
        }
    )
    alpha: float = field(default=0.05, metadata={"help": "BH false discovery rate."})
    level: float = field(default=0.95, metadata={"help": "Level of the CI of the difference."})

    @property
    def columns(self) -> list[str]:
        """Tasks followed by 'average'."""
        return [*self.tasks, AVERAGE]


def pair_name(a: str, b: str) -> str:
    """The key of pair (a, b) in `PairComparison.cells`."""
    return f"{a} vs {b}"


def compare_pairs(
    runs: Mapping[str, Sequence[RunRecord | str | os.PathLike]],
    pairs: Sequence[tuple[str, str]],
    split: str = "test",
    metric: str = "macro_f1",
    alpha: float = 0.05,
    level: float = 0.95,
) -> PairComparison:
    """Compare named pairs of variants (e.g. prefix styles with each other, or a setting against the default):
    for every task and the average, a - b with the Welch CI of the difference (``diff ± t(df) * SE``; when the CI
    covers 0 the two are within noise), Welch p and BH q over all pairs and columns.

    `runs` maps variant -> runs, as for `compare_runs`, whose per-run values (macro-F1, or a regression task's
    primary score) are the ones compared.
    """
    from scipy import stats

    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    pairs = [(str(a), str(b)) for a, b in pairs]
    missing = sorted({v for pair in pairs for v in pair} - set(runs))
    if missing:
        raise ValueError(f"pairs name variant(s) {missing} without runs; variants: {list(runs)}")
    if any(a == b for a, b in pairs):
        raise ValueError(f"a pair compares a variant with itself: {pairs}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    grouped = _as_records({v: runs[v] for v in dict.fromkeys(v for pair in pairs for v in pair)})
    tasks = list(next(iter(grouped.values()))[0].tasks)
    values = {v: _variant_cells(records, tasks, split, metric) for v, records in grouped.items()}
    columns = [*tasks, AVERAGE]
    keys = [(a, b, c) for a, b in pairs for c in columns]
    tests = welch_bh(
        {f"{a}\x00{b}\x00{c}": values[a][c]["values"] for a, b, c in keys},
        {f"{a}\x00{b}\x00{c}": values[b][c]["values"] for a, b, c in keys},
        alpha=alpha,
    )
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for a, b, c in keys:
        t = tests[f"{a}\x00{b}\x00{c}"]
        va, vb = (np.asarray(values[v][c]["values"], dtype=np.float64) for v in (a, b))
        se = (
            float(np.sqrt(va.var(ddof=1) / va.size + vb.var(ddof=1) / vb.size))
            if min(va.size, vb.size) > 1
            else np.nan
        )
        if np.isfinite(t["df"]):
            half = float(stats.t.ppf((1 + level) / 2, t["df"])) * se
        else:  # one run a side (no SE), or no spread at all (the difference is exact)
            half = 0.0 if se == 0 else float("nan")
        low, high = t["diff"] - half, t["diff"] + half
        cells.setdefault(pair_name(a, b), {})[c] = {
            **t,
            "ci_low": low,
            "ci_high": high,
            "covers_zero": bool(low <= 0 <= high) if np.isfinite(half) else None,
        }
    return PairComparison(split, metric, tasks, pairs, cells, alpha, level)


def _variant_cells(
    records: Sequence[RunRecord], tasks: Sequence[str], split: str, metric: str
) -> dict[str, dict[str, Any]]:
    """Per task and the average: mean, SD, n and the per-run values of one variant's runs (no CI yet)."""
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
    cells = {}
    for col in [*tasks, AVERAGE]:
        values = (
            [float(np.mean([float(r[t][metric]) for t in tasks])) for r in per_run]
            if col == AVERAGE
            else [float(r[col][metric]) for r in per_run]
        )
        cells[col] = {**agg[col][metric], "values": values, "ci_low": None, "ci_high": None}
    return cells


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
