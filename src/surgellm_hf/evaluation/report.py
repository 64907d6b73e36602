"""Reports: the Markdown comparison table, the macro-F1 and gate plots, report.md of a comparison or of one run."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic_io import atomic_write_text
from ..data.task_spec import EVALUATION_SPLITS
from .comparison import Comparison, compare_runs
from .explanations import top_features_table
from .metrics import AVERAGE, CALIBRATION_METRICS, METRICS, TYPE_METRICS
from .run_io import RunRecord, load_run


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _fmt_p(p: Any) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def render_markdown_table(comparison: Comparison) -> str:
    """Markdown: a variants x tasks table of mean ± SD (* = BH-significant vs the baseline), then per cell the
    bootstrap CI, difference to the baseline, Welch p and BH-adjusted p."""
    c = comparison
    header = ["variant", "runs", *c.tasks, "avg"]
    lines = [
        f"{c.metric} on {c.split}: mean ± SD over runs (sample SD, ddof=1)"
        + (
            f"; * = differs from {c.baseline!r} (Welch t-test, Benjamini–Hochberg q ≤ {c.alpha:g})"
            if c.baseline
            else ""
        ),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
    ]
    for v in c.variants:
        row = [v, str(len(c.seeds.get(v, [])) or c.cells[v][AVERAGE]["n"])]
        for col in c.columns:
            cell = c.cells[v][col]
            mark = "*" if cell.get("reject") else ""
            row.append(f"{_fmt(cell['mean'])} ± {_fmt(cell['sd'])}{mark}")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        f"| variant | column | mean | SD | {round(c.level * 100):d} % bootstrap CI | diff vs baseline | p (Welch) | p (BH) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for v in c.variants:
        for col in c.columns:
            cell = c.cells[v][col]
            ci = (
                f"[{_fmt(cell['ci_low'])}, {_fmt(cell['ci_high'])}]"
                if cell.get("ci_low") is not None
                else "–"
            )
            diff = cell.get("diff")
            diff_s = "–" if diff is None else f"{diff:+.3f}"
            lines.append(
                f"| {v} | {col} | {_fmt(cell['mean'])} | {_fmt(cell['sd'])} | {ci} | {diff_s} | "
                f"{_fmt_p(cell.get('p'))} | {_fmt_p(cell.get('p_adj'))} |"
            )
    return "\n".join(lines) + "\n"


def _new_figure(width: float, height: float) -> Any:
    """A Figure on the Agg canvas (no pyplot, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def task_f1_figure(comparison: Comparison) -> Any:
    """Grouped bars: the compared metric per task (and average) by variant, SD error bars."""
    c = comparison
    fig = _new_figure(max(6.0, 1.2 * len(c.columns) * max(1, len(c.variants)) / 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(c.variants)
    x = np.arange(len(c.columns))
    for j, v in enumerate(c.variants):
        means = [c.cells[v][col]["mean"] for col in c.columns]
        sds = [0.0 if math.isnan(c.cells[v][col]["sd"]) else c.cells[v][col]["sd"] for col in c.columns]
        ax.bar(x + (j - (len(c.variants) - 1) / 2) * width, means, width, yerr=sds, capsize=3, label=v)
    ax.set_xticks(x, c.columns)
    ax.set_ylabel(f"{c.split} {c.metric}")
    lows = [c.cells[v][col]["mean"] for v in c.variants for col in c.columns]
    ax.set_ylim(max(0.0, min(lows) - 0.1), 1.0)
    ax.legend(
        fontsize="small", ncols=min(len(c.variants), 5), loc="upper center", bbox_to_anchor=(0.5, -0.08)
    )
    ax.set_title(f"{c.metric} by task and variant (mean ± SD over runs)")
    fig.tight_layout()
    return fig


def plot_task_f1_by_variant(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Save `task_f1_figure` as PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    task_f1_figure(comparison).savefig(path, format="png")
    return path


def gate_figure(gate_values_by_task: Mapping[str, Sequence[float]]) -> Any:
    """Box plots of per-example gate values (e.g. each example's mean gate), one box per task."""
    if not gate_values_by_task:
        raise ValueError("no gate values given")
    data = {t: np.asarray(v, dtype=np.float64).ravel() for t, v in gate_values_by_task.items()}
    empty = [t for t, v in data.items() if v.size == 0 or not np.all(np.isfinite(v))]
    if empty:
        raise ValueError(f"gate values of task(s) {empty} are empty or not finite")
    fig = _new_figure(max(5.0, 1.3 * len(data)), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.boxplot(list(data.values()), tick_labels=list(data), showmeans=True)
    ax.set_ylabel("gate value")
    ax.set_title("Distribution of gate values per task")
    fig.tight_layout()
    return fig


def plot_gate_distribution(
    gate_values_by_task: Mapping[str, Sequence[float]], path: str | os.PathLike
) -> Path:
    """Save `gate_figure` as PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gate_figure(gate_values_by_task).savefig(path, format="png")
    return path


def gate_values_from_runs(
    runs: Sequence[RunRecord | str | os.PathLike], split: str = "test"
) -> dict[str, np.ndarray]:
    """Pool the per-example gate values saved in the runs' predictions, per task (tasks without gates are left out)."""
    out: dict[str, list[np.ndarray]] = {}
    for r in runs:
        rec = r if isinstance(r, RunRecord) else load_run(r)
        for task, by_split in rec.predictions.items():
            pred = by_split.get(split)
            if pred is not None and pred.get("gate") is not None:
                out.setdefault(task, []).append(pred["gate"])
    return {t: np.concatenate(v) for t, v in out.items()}


def write_report(
    comparison: Comparison,
    out_dir: str | os.PathLike,
    gate_values_by_task: Mapping[str, Sequence[float]] | None = None,
    title: str = "SURGELLM evaluation report",
) -> Path:
    """Write report.md with the tables and PNG plots (task_f1_by_variant.png, gate_distribution.png)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_task_f1_by_variant(comparison, out_dir / "task_f1_by_variant.png")
    parts = [
        f"# {title}",
        "",
        f"Split: `{comparison.split}`. Runs per variant: "
        + ", ".join(f"{v}: seeds {comparison.seeds.get(v, [])}" for v in comparison.variants)
        + ". Average = unweighted mean over tasks.",
        "",
        render_markdown_table(comparison),
        f"![{comparison.metric} by variant](task_f1_by_variant.png)",
        "",
    ]
    if gate_values_by_task:
        plot_gate_distribution(gate_values_by_task, out_dir / "gate_distribution.png")
        parts += ["![gate values per task](gate_distribution.png)", ""]
    return atomic_write_text(out_dir / "report.md", "\n".join(parts))


def write_run_report(run_dir: str | os.PathLike) -> Path:
    """report.md of one run: per-task table for every split, macro-F1 plot, gate distribution, training facts."""
    record = load_run(run_dir)
    splits = [s for s in EVALUATION_SPLITS if all(s in by_split for by_split in record.tasks.values())]
    split = "test" if "test" in splits else "validation"
    comparison = compare_runs([record], baseline=None, split=split, n_resamples=2000)
    gates = gate_values_from_runs([record], split)
    path = write_report(
        comparison, run_dir, gates or None, title=f"SURGELLM run: {record.variant}, seed {record.seed}"
    )
    lines = ["", "## Per-task metrics", ""]
    present = {k for by_split in record.tasks.values() for m in by_split.values() for k in m}
    columns = [*METRICS, *(k for k in (*TYPE_METRICS, *CALIBRATION_METRICS) if k in present)]
    average = (
        "**average macro-F1**"
        if "pearson" not in present
        else "**average primary score** (macro-F1; regression: (Pearson + Spearman) / 2)"
    )
    for s in splits:
        lines += [
            f"### {s}",
            "",
            "| task | " + " | ".join(columns) + " | n |",
            "|---" * (len(columns) + 2) + "|",
        ]
        for task, by_split in record.tasks.items():
            m = by_split[s]
            lines.append(
                f"| {task} | " + " | ".join(_fmt(m.get(k), 4) for k in columns) + f" | {m.get('n', '')} |"
            )
        lines.append(f"| {average} | {_fmt(record.avg_macro_f1.get(s), 4)} |" + " |" * (len(columns)))
        lines.append("")
    if len(splits) and any(
        k not in m for by_split in record.tasks.values() for m in by_split.values() for k in columns
    ):
        lines += [
            "– : the metric does not apply to the task's type (or is undefined, e.g. a constant prediction).",
            "",
        ]
    training = record.extra.get("training", {})
    if training:
        lines += ["## Training", ""] + [f"- {k}: {v}" for k, v in training.items()] + [""]
    for split in ("validation", "selection"):  # the split early stopping selected on
        history = record.extra.get(f"{split}_history", [])
        if history:
            lines += [
                f"{split.capitalize()} mean macro-F1 by epoch: "
                + ", ".join(f"{h['epoch']:.0f}: {h['avg_macro_f1']:.4f}" for h in history),
                "",
            ]
    lines += _contribution_lines(record.extra.get("feature_contributions"))
    lines += calibration_lines(record.extra.get("calibration"))
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def _contribution_lines(summary: Mapping[str, Any] | None) -> list[str]:
    """The report's section on the features with the largest mean |contribution| per task."""
    if not summary:
        return []
    head = [
        f"## Features that drive the decisions ({summary.get('split', 'validation')})",
        "",
        "Mean |change| of each task's decision (the predicted label's logit; a multi-label task's label logits; a "
        "regression task's value) when a feature is set to its task's mean, largest first.",
        "",
    ]
    table = top_features_table(dict(summary))
    return head + (table or [f"None: {summary.get('note', 'no contributions')}."]) + [""]


def calibration_lines(section: Mapping[str, Any] | None) -> list[str]:
    """Markdown lines of a run's calibration (metrics.json ``calibration``): fitted values, ECE / Brier / NLL
    before and after on each split (empty when the run was not calibrated)."""
    if not section:
        return []
    lines = [
        f"## Calibration (fitted on {section['split']})",
        "",
        "| task | split | temperature | thresholds | ECE before | ECE after | Brier before | Brier after | "
        "NLL before | NLL after |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for task, by_split in section["tasks"].items():
        temperature = section["temperatures"].get(task)
        limits = section["thresholds"].get(task)
        shown = "–" if limits is None else ", ".join(f"{v:.3f}" for v in limits)
        for split, scores in by_split.items():
            before, after = scores["before"], scores["after"]
            lines.append(
                f"| {task} | {split} | {_fmt(temperature)} | {shown} | {_fmt(before['ece'], 4)} | "
                f"{_fmt(after['ece'], 4)} | {_fmt(before['brier'], 4)} | {_fmt(after['brier'], 4)} | "
                f"{_fmt(before['nll'], 4)} | {_fmt(after['nll'], 4)} |"
            )
    return lines + [""]
