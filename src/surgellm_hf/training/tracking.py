"""Experiment trackers of a run (`report_to`): the Trainer's own integrations (TensorBoard, MLflow, W&B, trackio...)
log the loss and the per-epoch validation scores; `RunTracking` adds the run's settings (run_config.json: the
resolved run config, the lexicon hash, the task order) when training begins and the final per-task metrics after
the run's evaluation, holding the trackers open (their `on_train_end`) until then.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)

_INSTALL = {"mlflow": "mlflow-skinny", "comet_ml": "comet-ml", "azure_ml": "azureml-core"}
"""pip names of the trackers whose package is not named like the integration."""

TENSORBOARD_DIR = "tensorboard"
"""Folder of the run folder that TensorBoard event files go to (unless TENSORBOARD_LOGGING_DIR is set): outside
checkpoints/, which a finished run deletes."""

SETTINGS_NAME = "surgellm/run_settings"
"""Name of the run settings in a tracker (TensorBoard text tag, MLflow artifact and param prefix, W&B config key)."""


def report_to_names(report_to: str | list[str] | None) -> list[str]:
    """The tracker names `report_to` stands for ('all': the installed ones; 'none' or null: none)."""
    if report_to is None or report_to == "none":
        return []
    if report_to == "all":
        from transformers.integrations.integration_utils import get_available_reporting_integrations

        return list(get_available_reporting_integrations())
    return [report_to] if isinstance(report_to, str) else list(report_to)


def check_report_to(report_to: str | list[str] | None) -> None:
    """Refuse, before anything trains, a `report_to` tracker that is not installed here (RunConfig refuses unknown
    names), naming the package to install."""
    names = report_to_names(report_to)
    if not names:
        return
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    available = set(get_available_reporting_integrations())
    missing = [n for n in names if n not in available]
    if missing:
        packages = " ".join(_INSTALL.get(n, n) for n in missing)
        raise ValueError(
            f"report_to: tracker(s) {missing} are not installed here (or disabled by their environment variable); "
            f"pip install {packages}, or install surgellm_hf[trackers] for tensorboard and mlflow."
        )


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys; lists and None as JSON text."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def final_metric_logs(
    metrics: Mapping[str, Mapping[str, Mapping[str, Any]]], averages: Mapping[str, float]
) -> dict[str, float]:
    """The run's final metrics as tracker logs: test scores as `test_<task>_<metric>` and the restored best
    weights' validation scores as `eval_best_<task>_<metric>` (trackers show them as test/... and eval/best_...),
    plus each split's average; undefined (NaN or missing) values left out."""
    prefixes = {"validation": "eval_best_", "test": "test_"}
    logs: dict[str, float] = {}
    for task, by_split in metrics.items():
        for split, values in by_split.items():
            for key, value in values.items():
                if split in prefixes and _number(value) and key != "n":
                    logs[f"{prefixes[split]}{task}_{key}"] = float(value)
    for split, value in averages.items():
        if split in prefixes and _number(value):
            logs[f"{prefixes[split]}avg_macro_f1"] = float(value)
    return logs


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class RunTracking(TrainerCallback):
    """The run's settings and final metrics for the Trainer's tracker callbacks (`report_to`).

    Add it to a Trainer with `attach(trainer)`: it goes after the trackers, so at train begin their runs are open
    and it logs the settings (`settings`: run_config.json's record); the trackers' `on_train_end` (which closes a
    TensorBoard writer, ends an MLflow run, finishes trackio) waits for `finish(trainer, logs)`, called with the
    final per-task metrics once the run has evaluated them.
    """

    def __init__(self, settings: Mapping[str, Any], tensorboard_dir: str | os.PathLike | None = None):
        self.settings = dict(settings)
        self.tensorboard_dir = str(tensorboard_dir) if tensorboard_dir is not None else None
        self.trackers: list[TrainerCallback] = []
        self._deferred: list[Any] = []

    def attach(self, trainer: Any) -> RunTracking:
        """Find the trainer's tracker callbacks, hold back their `on_train_end`, and add this callback after them."""
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, TensorBoardCallback

        kinds = tuple(INTEGRATION_TO_CALLBACK.values())
        self.trackers = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, kinds)]
        for tracker in self.trackers:
            if (
                isinstance(tracker, TensorBoardCallback)
                and tracker.logging_dir is None
                and self.tensorboard_dir
            ):
                tracker.logging_dir = self.tensorboard_dir
            self._deferred.append((tracker, tracker.on_train_end))
            tracker.on_train_end = _held_back  # an instance attribute: the callback handler calls this one
        trainer.add_callback(self)
        return self

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.is_world_process_zero:
            for tracker in self.trackers:
                _log_settings(tracker, self.settings)

    def finish(self, trainer: Any, logs: Mapping[str, float]) -> None:
        """Log `logs` (the final metrics) to every tracker at the last step, then let the trackers end their runs."""
        args, state, control = trainer.args, trainer.state, trainer.control
        try:
            if state.is_world_process_zero and logs:
                for tracker in self.trackers:
                    tracker.on_log(args, state, control, logs=dict(logs), model=trainer.model)
        finally:
            for tracker, on_train_end in self._deferred:
                del tracker.on_train_end
                on_train_end(args, state, control, model=trainer.model)
            self._deferred = []


def _held_back(*args: Any, **kwargs: Any) -> None:
    """A tracker's `on_train_end` while `RunTracking.finish` has not run."""


def _log_settings(tracker: TrainerCallback, settings: Mapping[str, Any]) -> None:
    """Send the run settings to one tracker in the form it keeps them: TensorBoard text, MLflow params and a JSON
    artifact, W&B config; other trackers get none (a debug message says so)."""
    from transformers.integrations.integration_utils import (
        MLflowCallback,
        TensorBoardCallback,
        WandbCallback,
    )

    text = json.dumps(settings, indent=2, default=str)
    if isinstance(tracker, TensorBoardCallback) and tracker.tb_writer is not None:
        tracker.tb_writer.add_text(
            SETTINGS_NAME, "    " + text.replace("\n", "\n    "), 0
        )  # Markdown code block
        tracker.tb_writer.flush()
    elif isinstance(tracker, MLflowCallback):
        import mlflow
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        if mlflow.active_run() is None:
            return
        # every value whole in the JSON artifact; as params those MLflow can hold
        items = [
            (f"surgellm.{k}", v) for k, v in _flat(settings).items() if len(str(v)) <= MAX_PARAM_VAL_LENGTH
        ]
        for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            mlflow.log_params(dict(items[i : i + MAX_PARAMS_TAGS_PER_BATCH]))
        mlflow.log_dict(json.loads(text), f"{SETTINGS_NAME}.json")
    elif isinstance(tracker, WandbCallback):
        import wandb

        if wandb.run is not None:
            wandb.config.update({SETTINGS_NAME: json.loads(text)}, allow_val_change=True)
    else:
        logger.debug(
            "report_to: %s gets the loss and metrics but not the run settings", type(tracker).__name__
        )


def read_settings(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run settings a tracker receives: the run folder's run_config.json record."""
    from .run_folder import RUN_CONFIG_NAME

    return json.loads((Path(run_dir) / RUN_CONFIG_NAME).read_text(encoding="utf-8"))
