"""What a run folder holds on the training side: run_config.json, checkpoints, and whether a run may start,
resume or reuse the folder (metrics.json and predictions are the evaluation side's `run_io`)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers.trainer_utils import get_last_checkpoint

from .run_config import RunConfig, comparable_settings, settings_differences

logger = logging.getLogger(__name__)

RUN_CONFIG_NAME = "run_config.json"
RUN_CONFIG_FORMAT = "surgellm-run-config/1"
_SAVED_MODEL_FILES = (
    "model.safetensors",
    "config.json",
    "adapter_config.json",
    "surge_adapter_config.json",
    "serving_config.json",
)


def _run_markers(run_dir: Path) -> list[str]:
    """What in `run_dir` shows that a run was made there (empty list: nothing, the folder may be reused)."""
    if not run_dir.is_dir():
        return []
    markers = [n for n in (RUN_CONFIG_NAME, "metrics.json") if (run_dir / n).is_file()]
    if get_last_checkpoint_or_none(run_dir / "checkpoints"):
        markers.append("checkpoints/")
    # a saved model of any kind (full, LoRA, `save_adapter`, ONNX export) is not an empty folder to train into
    markers += [n for n in _SAVED_MODEL_FILES if (run_dir / n).is_file()]
    return markers


def get_last_checkpoint_or_none(folder: Path) -> str | None:
    """The Trainer's last `checkpoint-N` folder under `folder`, or None."""
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The saved run_config.json of a run folder, or, for folders written before it existed, the `run_config`
    that metrics.json records; None when neither is there."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_CONFIG_NAME
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path} is not valid JSON ({err}); pass overwrite=true to start fresh"
            ) from None
        if not isinstance(saved, dict) or saved.get("format") != RUN_CONFIG_FORMAT:
            raise ValueError(
                f"{path} is not a {RUN_CONFIG_FORMAT!r} file; pass overwrite=true to start fresh"
            )
        return saved
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        try:
            legacy = json.loads(metrics.read_text()).get("run_config")
        except (json.JSONDecodeError, AttributeError):
            legacy = None
        if isinstance(legacy, dict):
            legacy = dict(legacy)
            if "lexicon_seed" not in legacy:  # before lexicon_seed, the lexicon followed the training seed
                legacy["lexicon_seed"] = legacy.get("seed", 0)
            return {"format": RUN_CONFIG_FORMAT, "config": legacy, "legacy": True}
    return None


def _saved_settings(run_dir: Path, saved: Mapping[str, Any]) -> dict[str, Any]:
    config = saved.get("config")
    try:
        return comparable_settings(RunConfig(**config))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"the configuration saved in {run_dir} cannot be read ({err}); pass overwrite=true to start fresh there"
        ) from None


def check_run_dir(cfg: RunConfig) -> str:
    """What training `cfg` does with its run folder, checked before anything is loaded, trained or written.

    Returns 'new' (nothing of a run there), 'resume' (checkpoints of a run with the same settings), 'finished'
    (a finished run with the same settings: nothing to train) or 'overwrite' (`overwrite: true` and a run is
    there: it is deleted first). Raises ValueError, naming the differing keys, when the folder holds a run of
    another configuration, a run without a saved configuration, or checkpoints that `resume: false` or
    `save_checkpoints: false` would silently train over.
    """
    run_dir = cfg.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"output_dir {run_dir} exists and is not a folder")
    markers = _run_markers(run_dir)
    if not markers:
        return "new"
    if cfg.overwrite:
        return "overwrite"
    fresh_hint = "pass overwrite=true (surgellm train --overwrite) to delete it and start fresh, or choose another output_dir"
    saved = read_run_config(run_dir)
    if saved is None:
        raise ValueError(
            f"run folder {run_dir} holds {', '.join(markers)} but no {RUN_CONFIG_NAME} saying how it was made; "
            + fresh_hint
        )
    diffs = settings_differences(_saved_settings(run_dir, saved), comparable_settings(cfg))
    if diffs:
        raise ValueError(
            f"run folder {run_dir} holds a run of a different configuration ({'; '.join(diffs)}); "
            + fresh_hint
        )
    if (run_dir / "metrics.json").is_file():
        return "finished"
    if "checkpoints/" not in markers:
        return "new"
    if not cfg.save_checkpoints:
        raise ValueError(
            f"run folder {run_dir} holds checkpoints of an interrupted run, which save_checkpoints: false cannot "
            "continue; set save_checkpoints: true to resume it, or " + fresh_hint.removeprefix("pass ")
        )
    if not cfg.resume:
        raise ValueError(
            f"run folder {run_dir} holds checkpoints of an interrupted run and resume is false; set resume: true to "
            "continue it, or " + fresh_hint.removeprefix("pass ")
        )
    return "resume"


def check_lexicon_matches(cfg: RunConfig, lexicon_hash: str) -> None:
    """Refuse to continue a run folder whose saved lexicon content differs (e.g. an edited lexicon JSON file)."""
    if cfg.overwrite:
        return
    saved = read_run_config(cfg.run_dir)
    before = (saved or {}).get("lexicon_sha256")
    if before and before != lexicon_hash:
        raise ValueError(
            f"run folder {cfg.run_dir} was trained with another lexicon (sha256 {before[:12]}..., now "
            f"{lexicon_hash[:12]}...); pass overwrite=true to start fresh, or choose another output_dir"
        )


def write_run_config(cfg: RunConfig, extra: Mapping[str, Any]) -> Path:
    """Save run_config.json: the configuration as given, the resolved settings compared on reuse, and `extra`."""
    record = {
        "format": RUN_CONFIG_FORMAT,
        "config": cfg.to_dict(),
        "settings": comparable_settings(cfg),
        **extra,
    }
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.run_dir / RUN_CONFIG_NAME
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def start_fresh(run_dir: Path) -> None:
    """Delete a run folder for `overwrite: true` (only one that holds a run: see `_run_markers`)."""
    if _run_markers(run_dir):
        logger.warning("overwrite=true: deleting the run folder %s", run_dir)
        shutil.rmtree(run_dir)
