"""What a search leaves in its study folder: the best configuration as a run-config YAML (`surgellm train --config
best_config.yaml` trains it), the trials as a Markdown and a CSV table, and Optuna's optimisation-history and
parameter-importance plots."""

from __future__ import annotations

import csv
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..training.run_config import RunConfig
from .space import apply_values

logger = logging.getLogger(__name__)


@dataclass
class StudyResult:
    """What a search wrote: the study folder, the best configuration (None without a complete trial), the trials
    table (Markdown and CSV) and the plots that could be drawn."""

    study: Any
    folder: Path
    best_config: Path | None
    table: Path
    csv: Path
    plots: list[Path]


BEST_CONFIG = "best_config.yaml"
TABLE_MD, TABLE_CSV = "trials.md", "trials.csv"
HISTORY_PNG, IMPORTANCE_PNG = "history.png", "importance.png"


def trial_rows(study: Any) -> tuple[list[str], list[list[Any]]]:
    """The trials table: number, state, validation objective, epochs run, training time, every parameter, run
    folder (and why a failed trial failed)."""
    params = list(dict.fromkeys(k for t in study.trials for k in t.params))
    header = [
        "trial",
        "state",
        "validation avg_macro_f1",
        "epochs run",
        "train time (s)",
        *params,
        "run folder",
    ]
    rows = []
    for t in study.trials:
        value = t.value
        if value is None and t.intermediate_values:  # a pruned trial: its last reported score
            value = t.intermediate_values[max(t.intermediate_values)]
        rows.append(
            [
                t.number,
                t.state.name + (f" ({t.user_attrs['error']})" if "error" in t.user_attrs else ""),
                None if value is None else round(value, 4),
                t.user_attrs.get("epochs_run"),
                None
                if t.user_attrs.get("train_runtime_s") is None
                else round(t.user_attrs["train_runtime_s"], 1),
                *(t.params.get(p) for p in params),
                t.user_attrs.get("run_dir"),
            ]
        )
    return header, rows


def _markdown(header: list[str], rows: list[list[Any]], note: str) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n" + note + "\n"


def _save_plot(draw: Any, study: Any, path: Path) -> str | None:
    """Draw one Optuna matplotlib plot into `path`; the reason it cannot be drawn, or None."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            ax = draw(study)
    except (ValueError, RuntimeError) as err:
        return str(err)
    figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return None


def write_outputs(study: Any, base: RunConfig, folder: Path) -> Any:
    """Write best_config.yaml (when a trial completed), trials.md and trials.csv, history.png and importance.png
    (importance needs two complete trials whose parameters differ); returns the `StudyResult`."""
    import yaml
    from optuna.trial import TrialState
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    best_path = None
    notes = []
    if complete:
        best = study.best_trial
        values = best.user_attrs.get("values", best.params)  # fixed entries of the space included
        best_cfg = apply_values(base, values, output_dir=base.output_dir)
        header = (
            f"# surgellm tune: best of study {study.study_name!r}: trial {best.number}, validation avg_macro_f1 "
            f"{best.value:.4f}\n# train it with: surgellm train --config {BEST_CONFIG}\n"
        )
        best_path = folder / BEST_CONFIG
        best_path.write_text(header + yaml.safe_dump(best_cfg.to_dict(), sort_keys=False), encoding="utf-8")
        notes.append(f"Best: trial {best.number} (validation avg_macro_f1 {best.value:.4f}), {BEST_CONFIG}.")
    else:
        notes.append("No trial completed, so there is no best configuration yet.")
    header_row, rows = trial_rows(study)
    plots = []
    for name, draw in ((HISTORY_PNG, plot_optimization_history), (IMPORTANCE_PNG, plot_param_importances)):
        why = _save_plot(draw, study, folder / name) if complete else "no complete trial"
        if why is None:
            plots.append(folder / name)
        else:
            notes.append(f"No {name}: {why}.")
            logger.warning("surgellm tune: no %s: %s", name, why)
    table = folder / TABLE_MD
    table.write_text(_markdown(header_row, rows, " ".join(notes)), encoding="utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header_row)
    writer.writerows(rows)
    csv_path = folder / TABLE_CSV
    csv_path.write_text(buffer.getvalue(), encoding="utf-8")
    return StudyResult(study, folder, best_path, table, csv_path, plots)
