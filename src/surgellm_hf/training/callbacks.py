"""Early stopping of the paper's protocol (docs/method.md#training-protocol) for the Trainer: mean per-task validation macro-F1, strictly higher counts, patience 2.

With multi-label or regression tasks the selected `avg_macro_f1` is the mean of the tasks' primary scores (macro-F1;
a regression task's (Pearson + Spearman) / 2, an undefined correlation counting 0), see
`evaluation.metrics.primary_score`: it is never NaN. A NaN metric reaching early stopping is an error, never a
silent "no improvement".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import EarlyStoppingCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)


def early_stopping_arguments(metric: str = "avg_macro_f1") -> dict[str, Any]:
    """TrainingArguments keywords for the paper's protocol: evaluate and save every epoch, select on `metric`
    (higher is better), restore the best weights at the end."""
    return {
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "load_best_model_at_end": True,
        "metric_for_best_model": metric,
        "greater_is_better": True,
    }


def patience_counter_from_history(
    log_history: Sequence[Mapping[str, Any]], metric: str = "eval_avg_macro_f1"
) -> int:
    """Consecutive evaluations without a strict improvement at the end of `log_history` (a TrainerState's).

    The rule of `SurgeEarlyStoppingCallback` (and transformers' EarlyStoppingCallback with threshold 0) replayed
    over the logged evaluations, so a run resumed from a checkpoint carries on with the count it had.
    """
    best: float | None = None
    counter = 0
    for entry in log_history:
        if metric not in entry:
            continue
        value = float(entry[metric])
        if math.isnan(
            value
        ):  # logged before undefined correlations counted 0; the Trainer kept no best there
            logger.warning(
                "%s is NaN at epoch %s of the saved history; replayed as no improvement",
                metric,
                entry.get("epoch"),
            )
        counter = 0 if best is None or value > best else counter + 1  # NaN never improves on a number
        if best is None:
            best = float("-inf")  # what Trainer._determine_best_metric starts from
        if value > best:
            best = value
    return counter


class SurgeEarlyStoppingCallback(EarlyStoppingCallback):
    """transformers' EarlyStoppingCallback fixed to the paper's protocol: patience 2, strictly higher is better (threshold 0).

    The stock callback compares each evaluation with ``state.best_metric`` before the Trainer updates it
    (``np.greater``, strict), which is exactly the rule; this subclass pins the defaults and turns the stock
    asserts and the silent "metric missing -> early stopping disabled" into clear errors. The Trainer's
    ``load_best_model_at_end`` restores the best weights (see `early_stopping_arguments`); without checkpoints
    (``save_strategy="no"``), ``keep_best_in_memory=True`` keeps a CPU copy of the best weights and restores it
    when training ends. At train begin the patience count is replayed from ``state.log_history``, so a run
    resumed from a checkpoint stops exactly where an uninterrupted one would.
    """

    def __init__(
        self, patience: int = 2, metric: str = "eval_avg_macro_f1", keep_best_in_memory: bool = False
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        super().__init__(early_stopping_patience=patience, early_stopping_threshold=0.0)
        self.metric = metric if metric.startswith("eval_") else f"eval_{metric}"
        self.keep_best_in_memory = bool(keep_best_in_memory)
        self.best_state: dict[str, Any] | None = None
        self.best_global_step: int | None = None

    def state(self) -> dict:
        """Constructor arguments and counter, for transformers' `restore_callback_states_from_checkpoint`."""
        return {
            "args": {
                "patience": self.early_stopping_patience,
                "metric": self.metric,
                "keep_best_in_memory": self.keep_best_in_memory,
            },
            "attributes": {"early_stopping_patience_counter": self.early_stopping_patience_counter},
        }

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        chosen = args.metric_for_best_model
        if chosen is None or (chosen if chosen.startswith("eval_") else f"eval_{chosen}") != self.metric:
            raise ValueError(
                f"SurgeEarlyStoppingCallback watches {self.metric!r} but TrainingArguments.metric_for_best_model is "
                f"{chosen!r}; set metric_for_best_model={self.metric.removeprefix('eval_')!r} "
                "(see surgellm_hf.training.early_stopping_arguments)"
            )
        if not args.greater_is_better:
            raise ValueError(
                "SurgeEarlyStoppingCallback needs greater_is_better=True (macro-F1 is maximised)"
            )
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no":
            raise ValueError(
                "SurgeEarlyStoppingCallback needs evaluations: set eval_strategy='epoch' (or 'steps')"
            )
        if self.keep_best_in_memory and args.load_best_model_at_end:
            raise ValueError(
                "keep_best_in_memory=True restores the best weights itself; it is for save_strategy='no' runs, "
                "not with load_best_model_at_end=True"
            )
        if not (self.keep_best_in_memory or args.load_best_model_at_end):
            raise ValueError(
                "SurgeEarlyStoppingCallback would leave the last epoch's weights: set load_best_model_at_end=True "
                "(with checkpoints) or keep_best_in_memory=True (without)"
            )
        # a resumed run continues the count it had; a fresh one (empty history) starts at 0
        self.early_stopping_patience_counter = patience_counter_from_history(state.log_history, self.metric)
        self.best_state, self.best_global_step = None, None

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict,
        **kwargs: Any,
    ) -> None:
        if self.metric not in metrics:
            raise KeyError(
                f"early stopping metric {self.metric!r} not in the evaluation metrics {sorted(metrics)}; "
                "compute_metrics must return it (without the 'eval_' prefix)"
            )
        if not math.isfinite(float(metrics[self.metric])):
            raise ValueError(
                f"early stopping metric {self.metric!r} is {metrics[self.metric]} at epoch {state.epoch}: it cannot "
                "be compared with the best so far; compute_metrics must return a finite score"
            )
        super().on_evaluate(args, state, control, metrics, **kwargs)
        model = kwargs.get("model")
        if self.keep_best_in_memory and self.early_stopping_patience_counter == 0 and model is not None:
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best_global_step = state.global_step

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model = kwargs.get("model")
        if self.keep_best_in_memory and self.best_state is not None and model is not None:
            model.load_state_dict(self.best_state)
            self.best_state = None
