"""A run and the Hub while it trains: `HubRunSync` pushes the run as `hub_strategy` says (`push_to_hub`) and
restores its checkpoint from the Hub into a run folder (`resume_from: hub`). It is the `training.hub_sync.RunPublisher`
that `surgellm_hf.train_run` (what `surgellm train` calls) passes to `training.train_run`.

transformers' Trainer conventions are kept (`hub_strategy` end / every_save / checkpoint / all_checkpoints, the
`last-checkpoint/` folder, "Training in progress, epoch N" commits, uploads in the background), but every push is
built here, never by the Trainer: the repo's root holds the best weights so far with the processor, the lexicon, the
remote code and the SURGELLM model card (its validation metrics, history, data, hardware), never transformers'
generic card. A pushed checkpoint leaves out what names the machine (`training_args.bin`, the absolute path of the
best checkpoint) and carries `surgellm_run_settings.json`, the run's settings without local paths, which a resume
checks against its own before downloading anything. When the best epoch is not the last, `hub_strategy: checkpoint`
also pushes it (`best-checkpoint/`), so a run resumed elsewhere still ends with the best weights.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..evaluation.metrics import METRICS, TYPE_METRICS
from ..evaluation.run_io import RunRecord
from ..lora import LORA_ADAPTER_CONFIG, LORA_ADAPTER_WEIGHTS
from ..training.lexicons import fixed_lexicon
from ..training.run import validation_history_entry
from ..training.run_config import RunConfig, comparable_settings, settings_differences
from ..training.run_folder import (
    RUN_CONFIG_NAME,
    TRAINER_STATE_NAME,
    get_last_complete_checkpoint,
    machine_record,
    read_run_config,
    write_run_config,
)
from .model_card import SurgeModelCardData
from .publishing import publish_run
from .remote_code import copy_remote_code
from .repo_id import check_repo_id

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last-checkpoint"
"""Where `hub_strategy: checkpoint` puts the newest checkpoint (transformers' name)."""
BEST_CHECKPOINT = "best-checkpoint"
"""Where `hub_strategy: checkpoint` puts the best checkpoint when it is not the newest."""
RUN_SETTINGS_NAME = "surgellm_run_settings.json"
"""In a pushed checkpoint: the run's settings (run_config.json without its local paths), checked before resuming."""
NOT_PUSHED = ("training_args.bin", "README.md")
"""Checkpoint files left out of a push: the pickled TrainingArguments (local paths; resuming does not read them)
and PEFT's placeholder card."""
_MODEL_FILES = ("config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json")
_MACHINE_KEYS = ("precision", "per_device_batch_size", "effective_batch_size")


class HubRunSync:
    """Push a run to `hub_model_id` while it trains and when it ends; restore its checkpoint from there."""

    def __init__(self, cfg: RunConfig, token: str | None = None):
        self.cfg = cfg
        self.token = token
        self.api = HfApi(token=token)
        self.repo_id: str | None = None
        self._jobs: list[Future] = []

    # ------------------------------------------------------------------ pushing
    def repo(self) -> str:
        """The repo's full id, created (private as `hub_private_repo` says) on first use."""
        if self.repo_id is None:
            name = check_repo_id(self.cfg.hub_model_id or self.cfg.run_dir.name)
            url = self.api.create_repo(name, private=self.cfg.hub_private_repo, exist_ok=True)
            self.repo_id = url.repo_id
        return self.repo_id

    def callback(self, cfg: RunConfig, processor: Any, facts: Mapping[str, Any]) -> TrainerCallback:
        """The callback pushing after each save; the repo is created now, before anything trains."""
        self.repo()
        return _PushCallback(self, processor, dict(facts))

    def push_checkpoint(
        self,
        args: TrainingArguments,
        state: TrainerState,
        model: Any,
        processor: Any,
        facts: Mapping[str, Any],
    ) -> None:
        """Stage and push (in the background) what `hub_strategy` asks for after the save of `state.global_step`."""
        strategy = self.cfg.hub_strategy
        if strategy == "end" or not state.is_world_process_zero:
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        best = Path(state.best_model_checkpoint) if state.best_model_checkpoint else checkpoint
        stage = Path(tempfile.mkdtemp(prefix="surgellm_push_"))
        try:
            core = model.get_base_model() if hasattr(model, "get_base_model") else model
            _stage_model(best, stage, core, lora=bool(self.cfg.lora))
            processor.save_pretrained(stage)
            copy_remote_code(stage)
            self._progress_card(args, state, core, processor, facts).to_model_card().save(stage / "README.md")
            delete = None
            if strategy in ("checkpoint", "all_checkpoints"):
                settings = portable_run_settings(read_run_config(self.cfg.run_dir) or {})
                if strategy == "checkpoint":
                    _stage_checkpoint(checkpoint, stage / LAST_CHECKPOINT, settings)
                    if best.resolve() != checkpoint.resolve():
                        _stage_checkpoint(best, stage / BEST_CHECKPOINT, settings)
                    delete = [
                        f"{LAST_CHECKPOINT}/*",
                        f"{BEST_CHECKPOINT}/*",
                    ]  # stale files; re-added ones stay
                else:
                    _stage_checkpoint(checkpoint, stage / checkpoint.name, settings)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        job = self.api.upload_folder(
            repo_id=self.repo(),
            folder_path=stage,
            commit_message=f"Training in progress, epoch {round(state.epoch or 0)}",
            delete_patterns=delete,
            run_as_future=True,
        )
        job.add_done_callback(_cleanup(stage, self.repo_id, state.global_step))
        self._jobs.append(job)

    def _progress_card(
        self,
        args: TrainingArguments,
        state: TrainerState,
        model: Any,
        processor: Any,
        facts: Mapping[str, Any],
    ) -> SurgeModelCardData:
        """The card of a push during training: the best epoch's validation metrics, the history so far."""
        cfg = self.cfg
        tasks = list(model.config.tasks)
        evaluations = [h for h in state.log_history if "eval_avg_macro_f1" in h]
        history = [validation_history_entry(h, tasks) for h in evaluations]
        best = next(
            (h for h in evaluations if h.get("step") == state.best_global_step),
            evaluations[-1] if evaluations else None,
        )
        logged = best or {}
        validation = {
            t: {m: logged[f"eval_{t}_{m}"] for m in (*METRICS, *TYPE_METRICS) if f"eval_{t}_{m}" in logged}
            for t in tasks
        }
        training = {
            "status": "in progress",
            "epochs_budget": cfg.num_epochs,
            "epochs_run": state.epoch,
            "best_epoch": logged.get("epoch"),
            "learning_rate": cfg.lr,
            "module_lr_scale": cfg.module_lr_multiplier,
            "effective_batch_size": args.per_device_train_batch_size
            * args.gradient_accumulation_steps
            * args.world_size,
            "max_length": cfg.max_length,
        }
        record = RunRecord(
            variant=cfg.variant,
            seed=cfg.seed,
            tasks={t: {"validation": values} for t, values in validation.items() if values},
            extra={**facts, "training": training, "validation_history": history},
        )
        card = SurgeModelCardData.from_record(
            record,
            model,
            processor,
            repo_id=self.repo(),
            progress=f"Training in progress: epoch {round(state.epoch or 0)} of {cfg.num_epochs}.",
        )
        card.adapter_only = card.lora_adapter = bool(cfg.lora)  # a LoRA run pushes its adapter, as at the end
        return card

    def publish(self, run_dir: Path) -> None:
        """Push the finished run (`publish_run`: model or LoRA adapter, processor, lexicon, card, metrics) once the
        pushes in flight are done."""
        self.close()
        publish_run(
            run_dir,
            self.repo(),
            private=self.cfg.hub_private_repo,
            adapter_only=bool(self.cfg.lora),
            token=self.token,
            commit_message="End of training",
        )

    def close(self) -> None:
        """Wait for the pushes in flight; a failed one is logged (the run goes on, the end push says more)."""
        if self._jobs:
            logger.info("Waiting for %d push(es) to %s to finish.", len(self._jobs), self.repo_id)
        for job in self._jobs:
            with contextlib.suppress(Exception):  # logged by the job's done callback
                job.result()
        self._jobs = []

    # ------------------------------------------------------------------ resuming
    def restore(self, cfg: RunConfig) -> bool:
        """`resume_from: hub`: download the newest checkpoint pushed to `hub_model_id` (and the best one, where it
        differs) into the run folder's checkpoints/, with the run's run_config.json, when it is newer than the
        folder's own; its settings are checked against `cfg` before anything is downloaded. True when it did."""
        if cfg.resume_from != "hub":
            return False
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError(
                "resume_from: hub downloads the checkpoint in one process; start the run once with a single "
                "process (it resumes and can be stopped), then launch it on several with resume_from unset."
            )
        repo = cfg.hub_model_id
        try:
            files = set(self.api.list_repo_files(repo))
        except RepositoryNotFoundError:
            raise ValueError(
                f"resume_from: hub: there is no repo {repo!r} on the Hub (or the token cannot see it)"
            ) from None
        last_dir = _newest_checkpoint_dir(files)
        if last_dir is None:
            raise ValueError(
                f"resume_from: hub: {repo} holds no checkpoint (last-checkpoint/ or checkpoint-N/); a run pushes "
                "them with push_to_hub and hub_strategy: checkpoint (or all_checkpoints)"
            )
        state = self._read_json(repo, f"{last_dir}/{TRAINER_STATE_NAME}")
        step, best_step = int(state["global_step"]), state.get("best_global_step")
        local = get_last_complete_checkpoint(cfg.run_dir / "checkpoints")
        if local is not None and int(Path(local).name.split("-")[-1]) >= step:
            logger.warning(
                "resume_from: hub: %s is as new as %s/%s (step %d); resuming from it",
                local,
                repo,
                last_dir,
                step,
            )
            return False
        if f"{last_dir}/{RUN_SETTINGS_NAME}" not in files:
            raise ValueError(
                f"resume_from: hub: {repo}/{last_dir} was not pushed by a SURGELLM run (no {RUN_SETTINGS_NAME})"
            )
        hub_settings = self._read_json(repo, f"{last_dir}/{RUN_SETTINGS_NAME}")
        diffs = run_settings_differences(hub_settings, cfg)
        if diffs:
            raise ValueError(
                f"resume_from: hub: the checkpoint in {repo} is of a different configuration ({'; '.join(diffs)}); "
                "resume it with its own settings, or push this run to another hub_model_id"
            )
        folders = {last_dir: step}
        if best_step and int(best_step) != step:
            best_dir = BEST_CHECKPOINT if last_dir == LAST_CHECKPOINT else f"checkpoint-{best_step}"
            if f"{best_dir}/{TRAINER_STATE_NAME}" not in files:
                raise ValueError(
                    f"resume_from: hub: {repo} holds the newest checkpoint (step {step}) but not the best one (step "
                    f"{best_step}), so the resumed run could not end with the best weights"
                )
            folders[best_dir] = int(best_step)
        self._download(repo, folders, cfg.run_dir / "checkpoints", int(best_step or step))
        if not (cfg.run_dir / RUN_CONFIG_NAME).is_file():
            write_run_config(cfg, {k: v for k, v in hub_settings.items() if k not in ("format", "settings")})
        logger.warning("resume_from: hub: resuming from %s/%s (step %d)", repo, last_dir, step)
        return True

    def _read_json(self, repo: str, path: str) -> dict[str, Any]:
        with open(hf_hub_download(repo, path, token=self.token), encoding="utf-8") as f:
            return json.load(f)

    def _download(self, repo: str, folders: Mapping[str, int], checkpoints: Path, best_step: int) -> None:
        """Download each remote folder into checkpoints/checkpoint-<step> (through a temporary folder, so a
        failed download leaves nothing); the trainer states name the local best checkpoint."""
        checkpoints.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".hub-download-", dir=checkpoints))
        try:
            snapshot_download(
                repo, allow_patterns=[f"{d}/*" for d in folders], local_dir=tmp, token=self.token
            )
            for remote, step in folders.items():
                target = checkpoints / f"checkpoint-{step}"
                if target.exists():  # an incomplete save of this step: the Hub's copy replaces it
                    shutil.rmtree(target)
                os.replace(tmp / remote, target)
                state_path = target / TRAINER_STATE_NAME
                saved = json.loads(state_path.read_text(encoding="utf-8"))
                saved["best_model_checkpoint"] = str(checkpoints / f"checkpoint-{best_step}")
                state_path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class _PushCallback(TrainerCallback):
    """Pushes after each checkpoint save (`HubRunSync.push_checkpoint`)."""

    def __init__(self, sync: HubRunSync, processor: Any, facts: dict[str, Any]):
        self.sync, self.processor, self.facts = sync, processor, facts

    def on_save(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kw: Any,
    ) -> None:
        self.sync.push_checkpoint(args, state, model, self.processor, self.facts)


def _cleanup(stage: Path, repo_id: str | None, step: int) -> Any:
    def done(job: Future) -> None:
        shutil.rmtree(stage, ignore_errors=True)
        if job.exception() is not None:
            logger.error("The push of step %d to %s failed: %s", step, repo_id, job.exception())

    return done


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (instant, and it outlives the Trainer's deletion of an old checkpoint), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _stage_model(best: Path, stage: Path, model: Any, lora: bool) -> None:
    """The best weights so far, as the run folder will hold them: the full model's config and safetensors, or a
    LoRA run's PEFT adapter and SurgeConfig."""
    if lora:
        for name in (LORA_ADAPTER_WEIGHTS, LORA_ADAPTER_CONFIG):
            _link_or_copy(best / name, stage / name)
        model.config.save_pretrained(stage)
        return
    for path in best.iterdir():
        if path.is_file() and any(fnmatch.fnmatchcase(path.name, p) for p in _MODEL_FILES):
            _link_or_copy(path, stage / path.name)


def _stage_checkpoint(checkpoint: Path, target: Path, settings: Mapping[str, Any]) -> None:
    """A checkpoint for the Hub: its files (hard links) but `NOT_PUSHED`, its trainer state naming the best
    checkpoint by folder name only, and the run's portable settings."""
    target.mkdir(parents=True)
    for path in checkpoint.iterdir():
        if path.name in NOT_PUSHED or path.name == TRAINER_STATE_NAME:
            continue
        if path.is_dir():
            shutil.copytree(path, target / path.name, copy_function=_link_or_copy)
        else:
            _link_or_copy(path, target / path.name)
    state = json.loads((checkpoint / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
    if state.get("best_model_checkpoint"):
        state["best_model_checkpoint"] = Path(state["best_model_checkpoint"]).name
    (target / TRAINER_STATE_NAME).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    (target / RUN_SETTINGS_NAME).write_text(
        json.dumps(settings, indent=2, default=str) + "\n", encoding="utf-8"
    )


def _newest_checkpoint_dir(files: set[str]) -> str | None:
    """`last-checkpoint` when the repo holds one, else its highest `checkpoint-N` (with a trainer state)."""
    if f"{LAST_CHECKPOINT}/{TRAINER_STATE_NAME}" in files:
        return LAST_CHECKPOINT
    steps = [
        int(name.split("/")[0].split("-")[1])
        for name in files
        if fnmatch.fnmatchcase(name, f"checkpoint-*/{TRAINER_STATE_NAME}")
        and name.split("/")[0].split("-")[1].isdigit()
    ]
    return f"checkpoint-{max(steps)}" if steps else None


def _portable(value: Any) -> Any:
    """`value` without machine-local paths: an absolute path becomes its last component."""
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name
    if isinstance(value, Mapping):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(v) for v in value]
    return value


def portable_run_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """A run_config.json record for the Hub: the resolved settings without local paths (folders by name), the
    machine record, the task order, the lexicon hash and the sampling record; not the configuration as written."""
    return {k: _portable(v) for k, v in record.items() if k != "config"}


def run_settings_differences(hub: Mapping[str, Any], cfg: RunConfig) -> list[str]:
    """What differs between a pushed checkpoint's settings and `cfg` on this machine: the resolved settings (paths
    by folder name), the precision and batch layout, and a curated or JSON-file lexicon's content."""
    diffs = settings_differences(hub.get("settings") or {}, _portable(comparable_settings(cfg)))
    now = machine_record(cfg)
    diffs += settings_differences({k: hub.get(k) for k in _MACHINE_KEYS}, {k: now[k] for k in _MACHINE_KEYS})
    lexicon = fixed_lexicon(cfg.lexicon)
    if lexicon is not None and hub.get("lexicon_sha256") not in (None, lexicon.content_hash()):
        diffs.append("lexicon: its content differs (sha256)")
    return diffs


__all__ = ["HubRunSync", "portable_run_settings", "run_settings_differences"]
