"""One training run (`surgellm train`): `train_run(RunConfig)` -> a run folder, in a few named steps.

Load the tasks; build lexicon, processor and model; fit the feature statistics on the training split; train with
`SurgeTrainer` and early stopping on the mean per-task validation macro-F1; restore the best weights; evaluate; write
the run folder (model + processor loadable with `from_pretrained`, run_config.json, metrics.json, predictions,
report.md, plots).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, TrainerCallback, TrainingArguments
from transformers.trainer_utils import TrainOutput, set_seed

from ..data.data_collator import SurgeDataCollator
from ..data.encoding import encode_split, pair_task_names, split_ids
from ..data.loading import load_run_data
from ..data.multitask import MultiTaskData
from ..data.task_spec import EVALUATION_SPLITS
from ..encoders import encoder_display_name, resolve_encoder
from ..evaluation.explanations import feature_contribution_summary
from ..evaluation.metrics import METRICS, TYPE_METRICS, summarize_tasks
from ..evaluation.predictions import evaluate_predictions, predict_split
from ..evaluation.report import write_run_report
from ..evaluation.run_io import save_run
from ..lexicon import Lexicon
from ..lora import apply_lora, lora_artifact_bytes, lora_summary, save_lora
from ..modeling_surge import SurgeForSequenceClassification
from ..processing_surge import SurgeProcessor
from .callbacks import SurgeEarlyStoppingCallback, patience_counter_from_history
from .class_weights import class_weights_applied, resolve_class_weights
from .encoder_cache import EncoderStateCache, cache_first_token_states, encoder_fingerprint
from .environment import base_model_license, framework_versions, hardware
from .hub_sync import RunPublisher, check_publisher
from .lexicons import build_lexicon
from .run_config import RunConfig, long_text_settings
from .run_folder import (
    check_lexicon_matches,
    check_run_dir,
    get_last_complete_checkpoint,
    remove_incomplete_checkpoints,
    remove_stale_temporaries,
    start_fresh,
    write_run_config,
)
from .run_lock import LOCK_NAME, RunFolderLock, is_main_process
from .tracking import (
    TENSORBOARD_DIR,
    RunTracking,
    check_report_to,
    final_metric_logs,
    read_settings,
    report_to_names,
)
from .trainer import SurgeTrainer, build_compute_metrics
from .training_args import check_sharding, precision_used, resolve_precision, training_arguments
from .window_cache import cache_window_states

logger = logging.getLogger(__name__)

SELECTION_SPLIT = "selection"
"""The split `selection_split` carves from train for early stopping to select on."""


def train_run(
    cfg: RunConfig, *, callbacks: Sequence[TrainerCallback] = (), publisher: RunPublisher | None = None
) -> Path:
    """Run one training job end to end and return the run folder.

    The run folder is checked first (`check_run_dir`): a folder holding a run of another configuration is refused
    before anything is loaded or written; a finished run of the same configuration is returned as it is;
    checkpoints of the same configuration are resumed (from the newest complete one), early-stopping state
    included. The run holds the folder's lock (`RunFolderLock`) from before its first write to the end: another
    process training there is refused (RunFolderBusyError naming it).

    `callbacks` are added to the Trainer's (e.g. a hyperparameter search's pruning callback). `publisher`
    (`surgellm_hf.hub.HubRunSync`, passed by `surgellm_hf.train_run`) serves `push_to_hub` and `resume_from:
    hub`. Once metrics.json is written, checkpoints/ is deleted unless `keep_checkpoints`.
    """
    check_publisher(cfg, publisher)
    try:
        with RunFolderLock(cfg.run_dir) as lock:
            return _train_run(cfg, lock, list(callbacks), publisher)
    finally:
        if publisher is not None:
            publisher.close()


def _train_run(
    cfg: RunConfig, lock: RunFolderLock, callbacks: list[TrainerCallback], publisher: RunPublisher | None
) -> Path:
    precision = resolve_precision(cfg.mixed_precision)
    check_sharding(cfg)
    check_report_to(cfg.report_to)
    if (cfg.run_dir / LOCK_NAME).is_file():  # a folder in use is refused before anything is read or loaded
        lock.acquire()
    status = check_run_dir(cfg)  # a user's folder is refused before a lock file is made in it
    if cfg.run_dir.is_dir() or (publisher is not None and cfg.resume_from == "hub"):
        status = _hold_run_folder(cfg, lock, status)
    if publisher is not None and status in ("new", "resume") and publisher.restore(cfg):
        status = check_run_dir(cfg)  # the checkpoint from the Hub, checked like the folder's own
    if status == "finished":
        return _already_finished(cfg)
    set_seed(cfg.seed)
    encoder = resolve_encoder(cfg.encoder)
    task_data = _load_task_data(cfg)  # the data sample does not follow the training seed
    facts = _run_facts(cfg, task_data, encoder)
    class_weights = _class_weights(cfg, task_data)
    lexicon = build_lexicon(cfg.lexicon, task_data, encoder, cfg.lexicon_seed)
    lexicon_hash = lexicon.content_hash()
    check_lexicon_matches(cfg, lexicon_hash)
    set_seed(cfg.seed)  # model init does not depend on what building the lexicon drew
    processor, model = _build_processor_and_model(cfg, encoder, task_data, lexicon)
    train_ds = encode_split(task_data, processor, "train")
    eval_split = selection_split_name(cfg)
    eval_ds = encode_split(task_data, processor, eval_split)
    if model.config.norm != "none":
        model.fit_feature_normalizer(
            np.asarray(train_ds["lexical_features"], dtype=np.float32),
            train_ds["labels"],
            train_ds["task_ids"],
        )
    if cfg.lora:
        model = _with_lora(cfg, encoder, model)
    prepare = _split_preparer(cfg, model, processor)
    train_ds, eval_ds = prepare(train_ds), prepare(eval_ds)
    status = _hold_run_folder(cfg, lock, status)  # before the first write (makes a new run folder)
    if status == "finished":  # another process finished this run while this one was loading
        return _already_finished(cfg)
    last = get_last_complete_checkpoint(cfg.run_dir / "checkpoints") if status == "resume" else None
    args = training_arguments(cfg, len(task_data.task_names), max_steps=_steps_if_stopped(last, cfg.patience))
    with args.main_process_first(local=False, desc="run folder"):
        if args.process_index == 0:
            if status == "overwrite":
                start_fresh(cfg.run_dir)
            remove_incomplete_checkpoints(cfg.run_dir / "checkpoints")
            remove_stale_temporaries(cfg.run_dir)
            record = {
                "precision": precision,
                "task_order": task_data.task_names,
                "lexicon_sha256": lexicon_hash,
                **_sampling_record(cfg, class_weights, task_data),
            }
            write_run_config(cfg, record)
    trainer = SurgeTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=SurgeDataCollator(processor.tokenizer),
        compute_metrics=build_compute_metrics(
            model.config.tasks, model.config.task_problem_types, model.config.task_thresholds
        ),
        callbacks=[
            SurgeEarlyStoppingCallback(patience=cfg.patience, keep_best_in_memory=not cfg.save_checkpoints),
            *callbacks,
            *(
                [publisher.callback(cfg, processor, facts)]
                if publisher is not None and cfg.push_to_hub
                else []
            ),
        ],
    )  # task sampling, module learning rate and class weights come with `args` (`training_arguments`)
    tracking = (
        RunTracking(read_settings(cfg.run_dir), cfg.run_dir / TENSORBOARD_DIR).attach(trainer)
        if report_to_names(cfg.report_to)
        else None
    )
    if last:
        logger.warning("Resuming from checkpoint %s", last)
    with _few_threads_for_cached_training(uses_encoder_cache(cfg) and args.device.type == "cpu"):
        train_output = trainer.train(resume_from_checkpoint=last)
    if not trainer.is_world_process_zero():
        return cfg.run_dir
    model = trainer.model
    metrics, predictions = _evaluate(
        model, processor, task_data, eval_ds, trainer.data_collator, cfg.eval_batch_size, prepare, eval_split
    )
    _save_model_and_processor(cfg, model, processor)
    extra = _run_record(cfg, facts, lexicon, lexicon_hash, processor, trainer, args, train_output, last)
    if cfg.selection_split:
        extra["selection"] = _selection_record(cfg, metrics, predictions)
    extra["feature_contributions"] = feature_contribution_summary(
        model, eval_ds, trainer.data_collator, processor.lexicon.feature_names, cfg.eval_batch_size
    )
    extra["training"].update(_sampling_record(cfg, class_weights, task_data))
    if cfg.lora:
        extra["training"]["lora"] = {
            **lora_summary(model),
            "artifact_bytes": lora_artifact_bytes(cfg.run_dir),
        }
    metrics_path = save_run(cfg.run_dir, cfg.variant, cfg.seed, metrics, predictions, extra=extra)
    write_run_report(cfg.run_dir)
    if tracking is not None:
        averages = json.loads(metrics_path.read_text(encoding="utf-8"))["avg_macro_f1"]
        tracking.finish(trainer, final_metric_logs(metrics, averages))
    if not cfg.keep_checkpoints:
        remove_checkpoints(cfg.run_dir)
    if publisher is not None and cfg.push_to_hub:
        publisher.publish(cfg.run_dir)
    return cfg.run_dir


def remove_checkpoints(run_dir: Path) -> None:
    """Delete the checkpoints of a finished run (its metrics.json written): the best weights are in the run folder
    and a finished run is never resumed; `keep_checkpoints: true` keeps them."""
    if not (run_dir / "metrics.json").is_file():
        raise RuntimeError(f"{run_dir} has no metrics.json: its checkpoints are still needed to resume it")
    if (run_dir / "checkpoints").is_dir():
        shutil.rmtree(run_dir / "checkpoints")


def _run_facts(cfg: RunConfig, task_data: MultiTaskData, encoder: str) -> dict[str, Any]:
    """What the model card shows about the data and the machine: split sizes and label counts per task, the
    hardware and framework versions, and the license (`license`, else the base encoder's)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return {
        "data": task_data.split_sizes(),
        "label_counts": task_data.label_counts(),
        "environment": {"hardware": hardware(world), "versions": framework_versions()},
        "license": cfg.license or base_model_license(encoder),
    }


def _hold_run_folder(cfg: RunConfig, lock: RunFolderLock, status: str) -> str:
    """Take the run folder's lock (once, in the main process) and check the folder again under it: another
    process may have written it since `status` was read."""
    if lock.held or not is_main_process():
        return status
    lock.acquire()
    return check_run_dir(cfg)


def _already_finished(cfg: RunConfig) -> Path:
    logger.warning(
        "Run folder %s already holds a finished run of this configuration; nothing to train "
        "(overwrite=true trains it again).",
        cfg.run_dir,
    )
    return cfg.run_dir


def _with_lora(cfg: RunConfig, encoder: str, model: SurgeForSequenceClassification) -> Any:
    """The model wrapped for LoRA training (`lora:` in the run config); added prefix-token rows train as tokens."""
    base_vocab = AutoConfig.from_pretrained(encoder).vocab_size
    lora = dict(cfg.lora or {})
    return apply_lora(model, base_vocab_size=base_vocab, **lora)


def _class_weights(cfg: RunConfig, task_data: MultiTaskData) -> dict[str, list[float]] | None:
    """The run's per-task class weights ('balanced' from the training labels), checked before anything trains."""
    if cfg.class_weights is None:
        return None
    train_labels = {t: task_data[t]["train"]["label"] for t in task_data.task_names}
    weights = resolve_class_weights(
        cfg.class_weights,
        task_data.tasks_config(),
        train_labels,
        task_data.label_names,
        task_data.problem_types,
    )
    skipped = [t for t in task_data.task_names if t not in weights]
    if skipped:
        logger.warning("class_weights: task(s) %s train unweighted (see class_weights_applied).", skipped)
    return weights


def _sampling_record(
    cfg: RunConfig, class_weights: dict[str, list[float]] | None, task_data: MultiTaskData
) -> dict[str, Any]:
    """Task sampling rule, its temperature and the resolved class weights (with what they mean for each task, or
    why a task has none), as run_config.json and metrics.json (hence the model card) record them."""
    record = {
        "task_sampling": cfg.task_sampling,
        "temperature": cfg.temperature if cfg.task_sampling == "temperature" else None,
        "class_weights": class_weights,
    }
    if class_weights is not None:
        record["class_weights_applied"] = class_weights_applied(
            class_weights, task_data.problem_types, task_data.task_names
        )
    return record


def _load_task_data(cfg: RunConfig) -> MultiTaskData:
    """The run's tasks; every task needs a validation split (early stopping selects on it, or, with
    `selection_split`, it is reported). The selection split is carved from train before anything else uses it."""
    task_data = load_run_data(cfg.data)
    for name in task_data.task_names:
        if "validation" not in task_data[name]:
            raise ValueError(f"Task {name!r} has no validation split; early stopping needs one.")
    if cfg.selection_split:
        task_data = task_data.with_selection_split(
            cfg.selection_split["fraction"], cfg.selection_split["seed"], SELECTION_SPLIT
        )
    return task_data


def selection_split_name(cfg: RunConfig) -> str:
    """The split early stopping selects on: `selection` (carved from train) with `selection_split`, else validation."""
    return SELECTION_SPLIT if cfg.selection_split else "validation"


def _selection_record(
    cfg: RunConfig, metrics: dict[str, dict[str, Any]], predictions: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The selection split's settings and metrics, moved out of the per-task metrics (which report validation and
    test) into metrics.json's `selection` entry."""
    per_task = {
        t: by_split.pop(SELECTION_SPLIT) for t, by_split in metrics.items() if SELECTION_SPLIT in by_split
    }
    for by_split in predictions.values():
        by_split.pop(SELECTION_SPLIT, None)
    return {
        **cfg.selection_split,
        "tasks": per_task,
        "avg_macro_f1": summarize_tasks(per_task)["avg_macro_f1"] if per_task else None,
    }


def _build_processor_and_model(
    cfg: RunConfig, encoder: str, task_data: MultiTaskData, lexicon: Lexicon
) -> tuple[SurgeProcessor, SurgeForSequenceClassification]:
    """Processor and model of the run's variant around the encoder (embeddings resized for a compact prefix)."""
    variant = cfg.variant_spec
    long_text = long_text_settings(cfg.long_text, task_data.task_names)
    soft = cfg.prefix == "soft"
    processor = SurgeProcessor.from_encoder_pretrained(
        encoder,
        lexicon=lexicon,
        tasks=task_data.task_names,
        prefix=cfg.prefix,
        max_length=cfg.max_length,
        pair_tasks=pair_task_names(task_data),
        soft_prefix_length=cfg.soft_prefix_length,
        long_text={t: {k: s[k] for k in ("max_chunks", "stride")} for t, s in long_text.items()},
    )
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        encoder,
        tasks=task_data.tasks_config(),
        task_label_names=task_data.label_names,
        task_problem_types=task_data.problem_types or None,
        task_thresholds=task_data.thresholds or None,
        use_gate=variant.use_gate,
        use_task_embedding=variant.use_gate,
        norm=variant.norm,
        num_features=lexicon.num_features,
        feature_names=lexicon.feature_names,
        variant=variant.name,
        soft_prefix_length=cfg.soft_prefix_length if soft else 0,
        long_text_pool={t: s["pool"] for t, s in long_text.items() if s["pool"] != "mean"} or None,
    )
    processor.prepare_model(model)
    if cfg.freeze_encoder:
        model.freeze_encoder()
    return processor, model


def uses_encoder_cache(cfg: RunConfig) -> bool:
    """True when the run trains on cached first-token states (frozen encoder and `cache_encoder_outputs`)."""
    return cfg.freeze_encoder and cfg.cache_encoder_outputs


def _split_preparer(
    cfg: RunConfig, model: SurgeForSequenceClassification, processor: SurgeProcessor
) -> Callable[[Any], Any]:
    """What turns a processed split into the Trainer's input: itself, or (frozen-encoder fast path) the split with
    cached first-token states in place of its token columns, from `encoder_cache_dir` where given."""
    if not uses_encoder_cache(cfg):
        return lambda ds: ds
    collator = SurgeDataCollator(processor.tokenizer)
    cache = (
        EncoderStateCache(cfg.encoder_cache_dir, encoder_fingerprint(model))
        if cfg.encoder_cache_dir
        else None
    )

    cache_split = cache_window_states if processor.windowed else cache_first_token_states

    def prepare(ds: Any) -> Any:
        return cache_split(model, ds, collator, cfg.eval_batch_size, cache=cache)

    return prepare


@contextlib.contextmanager
def _few_threads_for_cached_training(active: bool) -> Iterator[None]:
    """One torch thread while the modules and heads train on cached states on CPU: their batch-32 matmuls are too
    small for intra-op parallelism, whose synchronisation then dominates (4x slower per step on 2 busy cores)."""
    if not active:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _steps_if_stopped(last_checkpoint: str | None, patience: int) -> int:
    """The step a resumed run had stopped early at (restore the best weights, train no more), else -1."""
    if not last_checkpoint:
        return -1
    with open(os.path.join(last_checkpoint, "trainer_state.json"), encoding="utf-8") as f:
        saved_state = json.load(f)
    if patience_counter_from_history(saved_state.get("log_history", [])) >= patience:
        return int(saved_state["global_step"]) or -1
    return -1


def _evaluate(
    model: SurgeForSequenceClassification,
    processor: SurgeProcessor,
    task_data: MultiTaskData,
    eval_ds: Any,
    collator: SurgeDataCollator,
    batch_size: int,
    prepare: Callable[[Any], Any] = lambda ds: ds,
    eval_split: str = "validation",
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Metrics and prediction records of the trained model, task -> split -> ..., for every evaluation split (and
    the selection split, when early stopping selected on one); `eval_ds` is `eval_split` already prepared."""
    metrics: dict[str, dict[str, Any]] = {}
    predictions: dict[str, dict[str, Any]] = {}
    splits = EVALUATION_SPLITS if eval_split in EVALUATION_SPLITS else (*EVALUATION_SPLITS, eval_split)
    for split in splits:
        ds = eval_ds if split == eval_split else prepare(encode_split(task_data, processor, split))
        if ds is None:
            continue
        pred = predict_split(model, ds, collator, batch_size, with_gate=True)
        config = model.config
        split_metrics, split_records = evaluate_predictions(
            pred,
            config.tasks,
            split_ids(task_data, split),
            config.task_problem_types,
            config.task_thresholds,
            task_data.label_names,
        )
        for name in split_metrics:
            metrics.setdefault(name, {})[split] = split_metrics[name]
            predictions.setdefault(name, {})[split] = split_records[name]
    return metrics, predictions


def _save_model_and_processor(
    cfg: RunConfig, model: SurgeForSequenceClassification, processor: SurgeProcessor
) -> None:
    """Model and processor into the run folder (loadable with `from_pretrained`; with `lora`, the adapter and
    the config instead of the weights, loadable with `lora.load_lora_model`); an empty checkpoints/ removed."""
    if cfg.lora:
        save_lora(model, cfg.run_dir)
    else:
        model.save_pretrained(cfg.run_dir)
    processor.save_pretrained(cfg.run_dir)
    if not cfg.save_checkpoints and (cfg.run_dir / "checkpoints").is_dir():
        with contextlib.suppress(OSError):  # the Trainer makes its output_dir; remove it when it stayed empty
            (cfg.run_dir / "checkpoints").rmdir()


def _run_record(
    cfg: RunConfig,
    facts: Mapping[str, Any],
    lexicon: Lexicon,
    lexicon_hash: str,
    processor: SurgeProcessor,
    trainer: SurgeTrainer,
    args: TrainingArguments,
    train_output: TrainOutput,
    resumed_from: str | None,
) -> dict[str, Any]:
    """What metrics.json records beside the metrics: encoder, variant, lexicon, prefix, training facts, data sizes."""
    history = [h for h in trainer.state.log_history if "eval_avg_macro_f1" in h]
    best = max(history, key=lambda h: h["eval_avg_macro_f1"], default=None)  # max keeps the first of equals
    return {
        "encoder": encoder_display_name(cfg.encoder),
        "variant_switches": dataclasses.asdict(cfg.variant_spec),
        "lexicon": {
            "choice": cfg.lexicon,
            "name": lexicon.name,
            "seed": cfg.lexicon_seed if cfg.lexicon in ("extracted", "random") else None,
            "sha256": lexicon_hash,
            "groups": lexicon.n_groups,
            "entries": sum(len(v) for v in lexicon.groups.values()),
        },
        "prefix": processor.prefix,
        "training": {
            "epochs_budget": cfg.num_epochs,
            "epochs_run": float(trainer.state.epoch or 0),
            "stopped_early": bool(history) and len(history) < cfg.num_epochs,
            "best_epoch": best.get("epoch") if best else None,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "selected_on": selection_split_name(cfg),
            "best_validation_avg_macro_f1": trainer.state.best_metric if not cfg.selection_split else None,
            **({"best_selection_avg_macro_f1": trainer.state.best_metric} if cfg.selection_split else {}),
            "learning_rate": cfg.lr,
            "module_lr_scale": cfg.module_lr_multiplier,
            "cached_encoder_outputs": uses_encoder_cache(cfg),
            "precision": precision_used(trainer),
            "effective_batch_size": args.per_device_train_batch_size
            * args.gradient_accumulation_steps
            * args.world_size,
            "world_size": args.world_size,
            "max_length": cfg.max_length,
            "train_runtime_s": train_output.metrics.get("train_runtime"),
            "global_steps": trainer.state.global_step,
            "resumed_from": resumed_from,
        },
        f"{selection_split_name(cfg)}_history": [
            validation_history_entry(h, list(facts["data"])) for h in history
        ],
        "long_text": processor.long_text or None,
        **facts,
        "run_config": cfg.to_dict(),
    }


def validation_history_entry(logged: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """One epoch of the validation history: the mean primary score and each task's logged scores (the Trainer's
    `eval_<task>_<metric>` keys)."""
    per_task = {
        task: {
            m: value if math.isfinite(value := float(logged[f"eval_{task}_{m}"])) else None  # NaN: undefined
            for m in (*METRICS, *TYPE_METRICS)
            if f"eval_{task}_{m}" in logged
        }
        for task in tasks
    }
    return {"epoch": logged.get("epoch"), "avg_macro_f1": logged["eval_avg_macro_f1"], "tasks": per_task}
