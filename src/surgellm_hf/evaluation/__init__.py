"""Evaluation for SURGELLM (docs/method.md#training-protocol). Metrics come from scikit-learn, tests from scipy.

- `metrics`: per-task metrics (`task_metrics`, `roc_auc`) and their unweighted mean over tasks;
- `predictions`: a model's logits over processed splits, split by task (per-task softmax), scored;
- `statistics`: mean ± SD over seeds, Welch + Benjamini-Hochberg, bootstrap confidence intervals;
- `run_io`: the run-folder format (`save_run`, `load_run`, `RunRecord`);
- `comparison`: variants compared over seeds (`compare_runs`), and named pairs of them (`compare_pairs`);
- `report`: Markdown tables, plots, report.md of a comparison (`write_report`) or of one run (`write_run_report`).
"""

from .comparison import Comparison, PairComparison, compare_pairs, compare_runs
from .metrics import AVERAGE, METRICS, roc_auc, summarize_tasks, task_metrics
from .predictions import evaluate_predictions, per_task_predictions, predict_split
from .report import (
    gate_figure,
    gate_values_from_runs,
    plot_gate_distribution,
    plot_task_f1_by_variant,
    render_markdown_table,
    task_f1_figure,
    write_report,
    write_run_report,
)
from .run_io import RUN_FORMAT, RunRecord, load_run, save_run
from .statistics import aggregate_runs, benjamini_hochberg, bootstrap_ci, welch_bh

__all__ = [
    "AVERAGE",
    "METRICS",
    "RUN_FORMAT",
    "Comparison",
    "PairComparison",
    "RunRecord",
    "aggregate_runs",
    "benjamini_hochberg",
    "bootstrap_ci",
    "compare_pairs",
    "compare_runs",
    "evaluate_predictions",
    "gate_figure",
    "gate_values_from_runs",
    "load_run",
    "per_task_predictions",
    "plot_gate_distribution",
    "plot_task_f1_by_variant",
    "predict_split",
    "render_markdown_table",
    "roc_auc",
    "save_run",
    "summarize_tasks",
    "task_f1_figure",
    "task_metrics",
    "welch_bh",
    "write_report",
    "write_run_report",
]
