"""`train_run` with everything a run config may ask for: the Hub publisher (`push_to_hub`, `resume_from: hub`) is
wired in here, above both the training and the Hub side (training never imports `surgellm_hf.hub`). This is what
`surgellm train` calls and what `surgellm_hf.train_run` names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from transformers import TrainerCallback

from .training.hub_sync import needs_publisher
from .training.run import train_run as _train_run
from .training.run_config import RunConfig


def train_run(cfg: RunConfig, *, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Train one run (`surgellm_hf.training.train_run`), pushing it to the Hub while it trains and at the end
    (`push_to_hub`) or resuming it from the Hub (`resume_from: hub`) where its config says so."""
    publisher = None
    if needs_publisher(cfg):
        from .hub.training_sync import HubRunSync

        publisher = HubRunSync(cfg)
    return _train_run(cfg, callbacks=callbacks, publisher=publisher)


__all__ = ["train_run"]
