"""The seam between a run and the Hub: what `train_run` asks of the object that pushes a run while it trains
(`push_to_hub`) and restores its checkpoint from the Hub (`resume_from: hub`).

Training never imports the Hub side (the model card and publishing live in `surgellm_hf.hub`, later in the data
flow); `surgellm_hf.hub.HubRunSync` implements this protocol and `surgellm_hf.train_run` (what `surgellm train`
calls) passes one to `training.train_run` when the run config asks for the Hub.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from transformers import TrainerCallback

from .run_config import RunConfig


class RunPublisher(Protocol):
    """Pushes a run to the Hub and restores its checkpoint from there."""

    def restore(self, cfg: RunConfig) -> bool:
        """Place the Hub's checkpoint in the run folder when it is newer than the folder's own (`resume_from: hub`),
        with the run's configuration, after checking that it is a run of `cfg`; True when it placed one."""
        ...

    def callback(self, cfg: RunConfig, processor: Any, facts: Mapping[str, Any]) -> TrainerCallback:
        """The Trainer callback that pushes after each save (as `hub_strategy` says); `facts` are the run's data
        sizes, label counts, environment and license, as metrics.json will record them."""
        ...

    def publish(self, run_dir: Path) -> None:
        """Push the finished run folder (model, processor, lexicon, card, metrics), after any push in flight."""
        ...

    def close(self) -> None:
        """Wait for the pushes in flight (also after an error or an interruption)."""
        ...


def needs_publisher(cfg: RunConfig) -> bool:
    """True when the run talks to the Hub (`push_to_hub`, `resume_from: hub`)."""
    return bool(cfg.push_to_hub or cfg.resume_from == "hub")


def check_publisher(cfg: RunConfig, publisher: RunPublisher | None) -> None:
    """Refuse a run that asks for the Hub without a publisher (`training.train_run` called directly)."""
    if publisher is None and needs_publisher(cfg):
        raise ValueError(
            "push_to_hub and resume_from: hub go through the Hub publisher: train with surgellm_hf.train_run(cfg) "
            "(what `surgellm train` does), or pass publisher=surgellm_hf.hub.HubRunSync(cfg) to "
            "surgellm_hf.training.train_run."
        )
