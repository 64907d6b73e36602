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

from .lexicons import fixed_lexicon
from .run_config import RunConfig, comparable_settings, settings_differences
from .training_args import batch_layout, resolve_precision

logger = logging.getLogger(__name__)

RUN_CONFIG_NAME = "run_config.json"
RUN_CONFIG_FORMAT = "surgellm-run-config/1"


def _run_markers(run_dir: Path) -> list[str]:
    """What in `run_dir` shows that a run was made there (empty list: nothing, the folder may be reused)."""
    if not run_dir.is_dir():
        return []
    markers = [n for n in (RUN_CONFIG_NAME, "metrics.json") if (run_dir / n).is_file()]
    if get_last_checkpoint_or_none(run_dir / "checkpoints"):
        markers.append("checkpoints/")
    if (run_dir / "model.safetensors").is_file():
        markers.append("model.safetensors")
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


def _saved_config(run_dir: Path, saved: Mapping[str, Any]) -> RunConfig:
    config = saved.get("config")
    try:
        return RunConfig(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"the configuration saved in {run_dir} cannot be read ({err}); pass overwrite=true to start fresh there"
        ) from None


_PRECISION_SETTING = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def machine_record(cfg: RunConfig) -> dict[str, Any]:
    """What `cfg` resolves to on this machine and launch: the precision and the batch layout (per-device batch x
    gradient accumulation x processes = effective batch), as run_config.json records it."""
    per_device, accumulation, world = batch_layout(cfg)
    return {
        "precision": resolve_precision(cfg.mixed_precision),
        "world_size": world,
        "per_device_batch_size": per_device,
        "gradient_accumulation_steps": accumulation,
        "effective_batch_size": per_device * accumulation * world,
    }


def _recorded_machine(run_dir: Path, saved: Mapping[str, Any]) -> dict[str, Any]:
    """The machine record of a run folder: run_config.json's, completed by metrics.json's `training` record
    (finished runs, also those written before run_config.json); keys absent from both are unknown."""
    keys = ("precision", "world_size", "per_device_batch_size", "effective_batch_size")
    record = {k: saved[k] for k in keys if saved.get(k) is not None}
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        try:
            training = json.loads(metrics.read_text()).get("training") or {}
        except (json.JSONDecodeError, AttributeError):
            training = {}
        record.update({k: training[k] for k in keys if k not in record and training.get(k) is not None})
    return record


def _processes(n: int) -> str:
    return f"{n} process{'es' if n != 1 else ''}"


def _machine_differences(
    cfg: RunConfig, before: RunConfig, record: Mapping[str, Any], run_dir: Path
) -> list[str]:
    """Differences in what the machine-dependent settings resolve to (`MACHINE_RESOLVED_KEYS`): the precision
    (mixed_precision: auto is fp32 on CPU, bf16 on most GPUs), the per-device and the effective batch (they
    follow the number of processes), and, below fp32, whether the frozen encoder's outputs are cached. A record
    the folder lacks (written by an older version) falls back to comparing the settings as written."""
    now = machine_record(cfg)
    diffs = []
    if "precision" in record:
        if record["precision"] != now["precision"]:
            diffs.append(
                f"precision: saved {record['precision']}, now {now['precision']} (mixed_precision "
                f"{cfg.mixed_precision!r} on this machine; mixed_precision: {_PRECISION_SETTING.get(record['precision'], '?')} "
                f"trains in {record['precision']})"
            )
    else:
        diffs += settings_differences(
            {"mixed_precision": before.mixed_precision}, {"mixed_precision": cfg.mixed_precision}
        )
    if "world_size" in record:
        per_device, accumulation, world = batch_layout(before, record["world_size"])
        saved = {
            "per_device_batch_size": record.get("per_device_batch_size", per_device),
            "effective_batch_size": record.get("effective_batch_size", per_device * accumulation * world),
        }
        for key, label in (
            ("per_device_batch_size", "per-device batch"),
            ("effective_batch_size", "effective batch"),
        ):
            if saved[key] != now[key]:
                diffs.append(
                    f"{label}: saved {saved[key]} ({_processes(record['world_size'])}), now {now[key]} "
                    f"({_processes(now['world_size'])}); per_device_batch_size sets the per-device batch"
                )
    else:
        logger.warning(
            "Run folder %s does not record how many processes it trained with (written by an older version); "
            "its per-device and effective batch are not checked against this launch's.",
            run_dir,
        )
        diffs += settings_differences(
            {"per_device_batch_size": before.per_device_batch_size},
            {"per_device_batch_size": cfg.per_device_batch_size},
        )
    cached_before = before.freeze_encoder and before.cache_encoder_outputs
    cached_now = cfg.freeze_encoder and cfg.cache_encoder_outputs
    if now["precision"] != "fp32" and cached_before != cached_now:
        diffs.append(
            f"cache_encoder_outputs: saved {str(cached_before).lower()}, requested {str(cached_now).lower()} (in "
            f"{now['precision']} cached and uncached encoder states differ; in fp32 either may resume the other)"
        )
    return diffs


def check_run_dir(cfg: RunConfig) -> str:
    """What training `cfg` does with its run folder, checked before anything is loaded, trained or written.

    Returns 'new' (nothing of a run there), 'resume' (checkpoints of a run with the same settings), 'finished'
    (a finished run with the same settings: nothing to train) or 'overwrite' (`overwrite: true` and a run is
    there: it is deleted first). Raises ValueError, naming the differing keys, when the folder holds a run of
    another configuration, a run without a saved configuration, or checkpoints that `resume: false` or
    `save_checkpoints: false` would silently train over. "Same settings" covers what they resolve to here (the
    precision, the per-device and effective batch: `_machine_differences`) and a curated or JSON-file lexicon's
    content (an edited file is refused before resuming or reusing a finished run).
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
    before = _saved_config(run_dir, saved)
    diffs = settings_differences(comparable_settings(before), comparable_settings(cfg))
    diffs += _machine_differences(cfg, before, _recorded_machine(run_dir, saved), run_dir)
    if diffs:
        raise ValueError(
            f"run folder {run_dir} holds a run of a different configuration ({'; '.join(diffs)}); "
            + fresh_hint
        )
    lexicon = fixed_lexicon(
        cfg.lexicon
    )  # a lexicon file edited since: checked before reuse, not after training
    if lexicon is not None:
        check_lexicon_matches(cfg, lexicon.content_hash())
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
        **machine_record(cfg),
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
