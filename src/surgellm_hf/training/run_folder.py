"""What a run folder holds on the training side: run_config.json, checkpoints, and whether a run may start,
resume or reuse the folder (metrics.json and predictions are the evaluation side's `run_io`)."""

from __future__ import annotations

import fnmatch
import functools
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..atomic_io import atomic_write_text
from .lexicons import fixed_lexicon
from .run_config import RunConfig, comparable_settings, settings_differences
from .run_lock import LOCK_FILES
from .training_args import batch_layout, resolve_precision

logger = logging.getLogger(__name__)

RUN_CONFIG_NAME = "run_config.json"
RUN_CONFIG_FORMAT = "surgellm-run-config/1"
TRAINER_STATE_NAME = "trainer_state.json"

SAFETENSORS_TEMPORARY = ".tmp" + "[A-Za-z0-9]" * 6
"""safetensors writes a weights file to a `.tmpXXXXXX` file beside it, then renames it: a process killed mid-write
leaves that file behind (as large as what it had written)."""

RUN_WRITTEN = (
    RUN_CONFIG_NAME,
    "metrics.json",
    "report.md",
    "task_f1_by_variant.png",
    "gate_distribution.png",
    "checkpoints",
    "predictions",
    "tensorboard",  # report_to: tensorboard (training.tracking.TENSORBOARD_DIR)
    # model and processor (save_pretrained, save_lora): config, weights, adapter, tokenizer, lexicon, remote code
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].safetensors",
    "adapter_config.json",
    "adapter_model.safetensors",
    "processor_config.json",
    "lexicon.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spm.model",
    "spiece.model",
    SAFETENSORS_TEMPORARY,
)
"""Names (fnmatch patterns) of what a training run writes in its run folder, with `remote_code_names()`: all that
`overwrite` removes."""

_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
# what a complete checkpoint holds besides trainer_state.json: weights (full, sharded, adapter, FSDP) and optimizer
# state (optimizer.pt; FSDP optimizer.bin or optimizer_0/), or DeepSpeed's global_stepN/ holding both
_WEIGHTS = (
    "model*.safetensors",
    "model.safetensors.index.json",
    "adapter_model.*",
    "pytorch_model*",
    "global_step*",
)
_OPTIMIZER = ("optimizer*", "global_step*")


@functools.cache
def remote_code_names() -> frozenset[str]:
    """The `.py` files `save_pretrained` copies into a run folder: the modules of the model and the processor and
    their relative imports (transformers' own rule, `get_relative_import_files`)."""
    from transformers.dynamic_module_utils import get_relative_import_files

    from .. import modeling_surge, processing_surge

    modules = [modeling_surge.__file__, processing_surge.__file__]
    return frozenset(
        Path(f).name for f in [*modules, *(r for m in modules for r in get_relative_import_files(m))]
    )


def is_run_written(name: str) -> bool:
    """True for an entry name a training run writes in its run folder (`RUN_WRITTEN`, `remote_code_names()`)."""
    return name in remote_code_names() or any(fnmatch.fnmatchcase(name, pattern) for pattern in RUN_WRITTEN)


def _entries(run_dir: Path, cfg: RunConfig) -> list[str]:
    """Names in `run_dir` apart from the run lock's files and `cfg`'s encoder cache folder (which may be inside)."""
    if not run_dir.is_dir():
        return []
    cache = Path(cfg.encoder_cache_dir).resolve() if cfg.encoder_cache_dir else None
    return sorted(p.name for p in run_dir.iterdir() if p.name not in LOCK_FILES and p.resolve() != cache)


def _checkpoint_dirs(folder: Path) -> list[Path]:
    """The `checkpoint-N` folders under `folder`, newest (highest N) first."""
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT_RE.match(p.name)) and p.is_dir()
    ]
    return [p for _, p in sorted(found, key=lambda item: item[0], reverse=True)]


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why the Trainer cannot resume from `checkpoint` (None: it is complete).

    The Trainer writes trainer_state.json last (after weights, optimizer, scheduler and RNG states), so a save cut
    short by a kill or a full disk leaves a folder without it, or with it cut short.
    """
    state = checkpoint / TRAINER_STATE_NAME
    if not state.is_file():
        return f"no {TRAINER_STATE_NAME}: its save was cut short"
    try:
        saved = json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{TRAINER_STATE_NAME} is cut short or unreadable"
    if not isinstance(saved, dict) or not isinstance(saved.get("global_step"), int):
        return f"{TRAINER_STATE_NAME} records no global_step"
    names = [p.name for p in checkpoint.iterdir()]
    for what, patterns in (("model weights", _WEIGHTS), ("optimizer state", _OPTIMIZER)):
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names for pattern in patterns):
            return f"no {what}"
    return None


def incomplete_checkpoints(folder: Path) -> list[tuple[Path, str]]:
    """(folder, why) of every `checkpoint-N` under `folder` that cannot be resumed from, newest first."""
    return [(p, why) for p in _checkpoint_dirs(folder) if (why := checkpoint_problem(p))]


def get_last_complete_checkpoint(folder: Path) -> str | None:
    """The newest `checkpoint-N` under `folder` that a run can resume from (newer, incomplete ones skipped), or
    None."""
    return next((str(p) for p in _checkpoint_dirs(folder) if checkpoint_problem(p) is None), None)


def remove_incomplete_checkpoints(folder: Path) -> list[Path]:
    """Delete the checkpoints under `folder` that a cut-short save left (call only while holding the run's lock):
    resuming skips them, and the Trainer's `save_total_limit` rotation must never keep one over a complete one."""
    removed = []
    for checkpoint, why in incomplete_checkpoints(folder):
        logger.warning(
            "Skipping and removing checkpoint %s, which cannot be resumed from: %s.", checkpoint, why
        )
        shutil.rmtree(checkpoint)
        removed.append(checkpoint)
    return removed


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the weights temporaries that a save killed mid-write left in `run_dir` (call only while holding the
    run's lock: then no save of this run is under way); those in a checkpoint go with `remove_incomplete_checkpoints`."""
    stale = sorted(p for p in run_dir.glob(".tmp*") if fnmatch.fnmatchcase(p.name, SAFETENSORS_TEMPORARY))
    for path in stale:
        logger.warning("Removing %s, left by a save of the model that was cut short.", path)
        path.unlink()
    return stale


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
    if _checkpoint_dirs(run_dir / "checkpoints"):
        markers.append("checkpoints/")
    # a saved model of any kind (full, LoRA, `save_adapter`, ONNX export) is not an empty folder to train into
    markers += [n for n in _SAVED_MODEL_FILES if (run_dir / n).is_file()]
    return markers


def _holds_run_records(markers: list[str]) -> bool:
    """Whether `_run_markers` found what only a run writes (its configuration, metrics or checkpoints), not just a
    saved model (a `save_adapter` folder, a model saved with `save_pretrained`, an export), which is a user's."""
    return bool({RUN_CONFIG_NAME, "metrics.json", "checkpoints/"} & set(markers))


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

    Returns 'new' (nothing of a run there, or only checkpoints whose save was cut short), 'resume' (a complete
    checkpoint of a run with the same settings), 'finished' (a finished run with the same settings: nothing to
    train) or 'overwrite' (`overwrite: true` and a run is there: what it wrote is deleted first, nothing else).
    Raises ValueError, naming the differing keys, when the folder holds a run of another configuration, a run
    without a saved configuration, or checkpoints that `resume: false` or `save_checkpoints: false` would silently
    train over; and, with or without `overwrite`, when it is not empty but holds no run (a user's folder). "Same
    settings" covers what they resolve to here (the precision, the per-device and effective batch:
    `_machine_differences`) and a curated or JSON-file lexicon's content (an edited file is refused before
    resuming or reusing a finished run).
    """
    run_dir = cfg.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"output_dir {run_dir} exists and is not a folder")
    markers = _run_markers(run_dir)
    if not _holds_run_records(markers):  # empty, a user's files, or a saved model that no run wrote
        foreign = _entries(run_dir, cfg)
        if foreign:
            foreign = [m for m in markers if m in foreign] + [n for n in foreign if n not in markers]
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise ValueError(
                f"output_dir {run_dir} is not empty ({shown}) and holds no run (no {RUN_CONFIG_NAME}, metrics.json "
                "or checkpoints); a run needs a folder of its own and never deletes files it did not write, so "
                "choose another output_dir (a new or empty folder)"
            )
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
    if get_last_complete_checkpoint(run_dir / "checkpoints") is None:
        return "new"  # only checkpoints whose save was cut short: `remove_incomplete_checkpoints` says so
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
    return atomic_write_text(cfg.run_dir / RUN_CONFIG_NAME, json.dumps(record, indent=2, default=str) + "\n")


def start_fresh(run_dir: Path) -> list[str]:
    """For `overwrite: true`: delete what a run wrote in `run_dir` (`RUN_WRITTEN`), nothing else, and only in a
    folder that holds a run (see `_run_markers`); call it only while holding the run's lock. Returns the names
    deleted; entries no run writes (a user's files) are kept, and named in a warning."""
    if not _holds_run_records(_run_markers(run_dir)):
        return []
    deleted, kept = [], []
    for entry in sorted(run_dir.iterdir()):
        if entry.name in LOCK_FILES:
            continue
        if not is_run_written(entry.name):
            kept.append(entry.name)
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        deleted.append(entry.name)
    logger.warning("overwrite=true: deleted the previous run's files in %s", run_dir)
    if kept:
        logger.warning("overwrite=true: kept %s in %s (no run writes them)", ", ".join(kept), run_dir)
    return deleted
