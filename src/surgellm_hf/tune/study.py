"""`surgellm tune`: a hyperparameter search over run configs with Optuna.

Optuna is driven directly rather than through `Trainer.hyperparameter_search`: a trial here is a whole run
(`training.train_run`: data, lexicon, processor, prefix, caches, early stopping, a run folder with its run config and
metrics.json), while the Trainer's search re-initialises one model on one Trainer whose datasets are fixed (so the
lexicon, prefix, data sample or task sampling could not be searched), keeps no run folder per trial, and aborts a
pruned trial mid-training. Here a pruned trial stops training at the epoch the pruner decides and still ends as a
normal, finished run folder; the study lives in an RDB storage (SQLite by default), so an interrupted search resumes
with its trial numbers and results.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..training.run import train_run
from ..training.run_config import RunConfig, comparable_settings, load_run_config, settings_differences
from .outputs import StudyResult, write_outputs
from .space import SearchSpace, apply_values, load_space

logger = logging.getLogger(__name__)

OBJECTIVE = "avg_macro_f1"
"""The objective: the run's validation average of the tasks' primary scores (macro-F1; regression: (Pearson +
Spearman) / 2), of the weights early stopping kept; maximised."""
TRIAL_RECORD = "trial.json"
"""In each trial's run folder: the study, trial number, state (COMPLETE, PRUNED, FAIL), value and parameters."""
DB_NAME = "tune.db"


class PruningCallback(TrainerCallback):
    """Reports each epoch's validation average to the Optuna trial; when the pruner says so, training stops there
    (the run then ends as usual: best weights, metrics.json) and the trial is marked pruned."""

    def __init__(self, trial: Any, metric: str = f"eval_{OBJECTIVE}"):
        self.trial, self.metric = trial, metric
        self.pruned_at: float | None = None

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics: dict, **kw: Any
    ) -> None:
        self.trial.report(float(metrics[self.metric]), step=round(state.epoch or 0))
        if self.trial.should_prune():
            self.pruned_at = state.epoch
            control.should_training_stop = True


def _literal_folder(path: Path) -> str:
    """`path` as an `output_dir` pattern (braces doubled: only {variant} and {seed} are fields)."""
    return str(path).replace("{", "{{").replace("}", "}}")


def study_folder(base: RunConfig, study_name: str, output: str | os.PathLike | None = None) -> Path:
    """Where a study's trials and results go: `output` (default: the base run folder's path + `-tune`) / name."""
    root = Path(output) if output is not None else base.run_dir.with_name(base.run_dir.name + "-tune")
    return root / study_name


def default_storage(base: RunConfig, output: str | os.PathLike | None = None) -> str:
    """A SQLite file beside the studies (`output`/tune.db), so every search can resume."""
    root = Path(output) if output is not None else base.run_dir.with_name(base.run_dir.name + "-tune")
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / DB_NAME).resolve()}"


def _check_base(base: RunConfig) -> None:
    if base.push_to_hub or base.resume_from:
        raise ValueError(
            "surgellm tune trains its trials locally: set push_to_hub: false and resume_from: null in the base "
            "config (train and push the best configuration afterwards)"
        )


def _check_same_study(study: Any, base: RunConfig, space_record: dict, where: str) -> None:
    """A resumed study must search the same space from the same base configuration (what it computes)."""
    saved_space, saved_base = study.user_attrs.get("space"), study.user_attrs.get("base_settings")
    if saved_space is None:  # a new study
        study.set_user_attr("space", space_record)
        study.set_user_attr("base_settings", json.loads(json.dumps(comparable_settings(base), default=str)))
        return
    if saved_space != space_record:
        raise ValueError(f"{where} was made with another search space; use another --study-name for this one")
    diffs = settings_differences(saved_base, json.loads(json.dumps(comparable_settings(base), default=str)))
    if diffs:
        raise ValueError(f"{where} was made from another base configuration ({'; '.join(diffs)})")


def _space_record(space: SearchSpace) -> dict[str, Any]:
    return {
        p.key: {"kind": p.kind, "low": p.low, "high": p.high, "log": p.log, "step": p.step,
                "choices": list(p.choices), "value": p.value}
        for p in space.params
    }  # fmt: skip


def _finished_count(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def run_study(
    config: str | os.PathLike,
    space: str | os.PathLike | SearchSpace,
    n_trials: int,
    *,
    overrides: Sequence[str] = (),
    study_name: str | None = None,
    storage: str | None = None,
    output: str | os.PathLike | None = None,
    pruner: Any = None,
    sampler: Any = None,
) -> StudyResult:
    """Search `space` around the run config `config` until the study holds `n_trials` finished (complete or
    pruned) trials: a resumed study (same `study_name` and `storage`) runs only the rest, its trial numbers
    continuing. Each trial is a run folder `<study folder>/trial-NNN` with its run config; the default pruner is
    Optuna's median rule after five trials. Writes best_config.yaml, trials.md, trials.csv and the plots."""
    import optuna

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"--trials must be a positive integer, got {n_trials!r}")
    base = load_run_config(config, overrides)
    _check_base(base)
    space = space if isinstance(space, SearchSpace) else load_space(space)
    space.check(base)
    name = study_name or Path(config).stem
    folder = study_folder(base, name, output)
    storage = storage or default_storage(base, output)
    where = f"study {name!r} in {storage}"
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        load_if_exists=True,
        pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(n_startup_trials=5),
        sampler=sampler if sampler is not None else optuna.samplers.TPESampler(seed=base.seed),
    )
    _check_same_study(study, base, _space_record(space), where)
    folder.mkdir(parents=True, exist_ok=True)
    remaining = n_trials - _finished_count(study)
    if remaining > 0:
        if len(study.trials):
            logger.warning(
                "Resuming %s: %d trial(s) finished, %d to go.", where, n_trials - remaining, remaining
            )
        study.optimize(_objective(base, space, folder, name), n_trials=remaining, catch=(ValueError,))
    else:
        logger.warning("%s already holds %d finished trials; nothing to run.", where, n_trials - remaining)
    return write_outputs(study, base, folder)


def _objective(base: RunConfig, space: SearchSpace, folder: Path, study_name: str) -> Any:
    import optuna

    def objective(trial: Any) -> float:
        values = space.sample(trial)
        run_dir = folder / f"trial-{trial.number:03d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("values", values)
        pruning = PruningCallback(trial)
        record = {"study": study_name, "trial": trial.number, "params": values}
        try:
            cfg = apply_values(
                base, values, output_dir=_literal_folder(run_dir), overwrite=False, resume=True
            )
            train_run(cfg, callbacks=[pruning])
            metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        except Exception as err:
            trial.set_user_attr("error", f"{type(err).__name__}: {err}")
            _write_record(run_dir, {**record, "state": "FAIL", "error": str(err)})
            raise
        value = float(metrics[OBJECTIVE]["validation"])
        epochs = metrics["training"]["epochs_run"]
        trial.set_user_attr("epochs_run", epochs)
        trial.set_user_attr("train_runtime_s", metrics["training"].get("train_runtime_s"))
        if pruning.pruned_at is not None:
            _write_record(run_dir, {**record, "state": "PRUNED", "value": value, "epochs_run": epochs})
            raise optuna.TrialPruned(
                f"pruned after epoch {pruning.pruned_at:g} (validation {OBJECTIVE} {value:.4f})"
            )
        _write_record(run_dir, {**record, "state": "COMPLETE", "value": value, "epochs_run": epochs})
        return value

    return objective


def _write_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Mark a trial's run folder with its state (a trial refused before training has no folder)."""
    if run_dir.is_dir():
        (run_dir / TRIAL_RECORD).write_text(
            json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8"
        )
