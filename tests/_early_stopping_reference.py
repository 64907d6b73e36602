"""A reference implementation of the paper's patience rule (docs/method.md#training-protocol), for tests: the oracle that
`SurgeEarlyStoppingCallback` and `patience_counter_from_history` are checked against (no Trainer involved)."""

from __future__ import annotations

import math

import numpy as np


class EarlyStopper:
    """Patience rule on a score to maximise: only a strictly higher score resets the count; NaN never does.

    ``update(score)`` returns True once `patience` consecutive updates brought no strict improvement. The
    same rule as transformers' EarlyStoppingCallback with threshold 0, for loops outside the Trainer.
    """

    def __init__(self, patience: int = 2) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
        self.patience = patience
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.num_bad_updates = 0
        self.num_updates = 0

    @property
    def should_stop(self) -> bool:
        """Whether the patience is used up."""
        return self.num_bad_updates >= self.patience

    def update(self, score: float, step: int | None = None) -> bool:
        """Record one evaluation (step defaults to the update count) and return whether to stop."""
        if isinstance(score, bool) or not isinstance(score, int | float | np.floating | np.integer):
            raise TypeError(f"score must be a real number, got {score!r}")
        step = self.num_updates if step is None else step
        self.num_updates += 1
        improved = not math.isnan(score) and (self.best_score is None or score > self.best_score)
        if improved:
            self.best_score, self.best_step, self.num_bad_updates = float(score), step, 0
        else:
            self.num_bad_updates += 1
        return self.should_stop
