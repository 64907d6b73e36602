"""`SurgeTrainingArguments` (`TrainingArguments` with SURGELLM's training settings), the arguments of a run
(docs/method.md#training-protocol) and the precision it trains in."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import torch
from transformers import Trainer, TrainingArguments

from ..validation import is_number
from .callbacks import early_stopping_arguments
from .class_weights import CLASS_WEIGHTS_SPEC, check_class_weights_spec
from .run_config import RunConfig
from .sampler import TaskSampling, check_task_sampling

logger = logging.getLogger(__name__)


@dataclass
class SurgeTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus what `SurgeTrainer` adds: the task sampling rule and its temperature, the learning
    rate scale of the SURGELLM modules and heads, and per-task class weights; the run config keys of the same names
    map onto them (`training_arguments`). `HfArgumentParser(SurgeTrainingArguments)` reads them from a command line
    (`--class_weights` as 'balanced' or a JSON mapping), and `to_dict` / `to_json_string` keep them.
    """

    _VALID_DICT_FIELDS = [*TrainingArguments._VALID_DICT_FIELDS, "class_weights"]  # JSON strings from the CLI

    task_sampling: TaskSampling = field(
        default="proportional",
        metadata={
            "help": "How often each task's (task-homogeneous) batches come in an epoch: proportional (to its size: "
            "every example once per epoch), equal (every task equally often) or temperature (p_t ∝ n_t^(1/T))."
        },
    )
    temperature: float = field(
        default=2.0,
        metadata={"help": "T of task_sampling temperature (1 = proportional, large = equal); T5 used 2."},
    )
    module_lr_scale: float = field(
        default=1.0,
        metadata={
            "help": "Learning rate of the SURGELLM modules and the task heads as a multiple of learning_rate (the "
            "encoder's rate); 1: one rate for everything (the paper's). `surgellm train` defaults to 100 with a "
            "frozen encoder."
        },
    )
    class_weights: dict | str | None = field(
        default=None,
        metadata={
            "help": f"Weighted loss: {CLASS_WEIGHTS_SPEC}. 'balanced' comes from the Trainer's train_dataset "
            "(single-label n / (K * n_c), multi-label pos_weight n_neg / n_pos per label; regression tasks get "
            "none); explicit values are one weight per label, in label order. Checked against the model's tasks "
            "when SurgeTrainer is built."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # also reads a JSON `class_weights` string (`_VALID_DICT_FIELDS`)
        check_task_sampling(self.task_sampling, self.temperature)
        self.temperature = float(self.temperature)
        if (
            not is_number(self.module_lr_scale)
            or not math.isfinite(self.module_lr_scale)
            or self.module_lr_scale <= 0
        ):
            raise ValueError(f"`module_lr_scale` must be a finite number > 0, got {self.module_lr_scale!r}.")
        self.module_lr_scale = float(self.module_lr_scale)
        check_class_weights_spec(self.class_weights)


def resolve_precision(choice: str, cuda: bool | None = None) -> str:
    """What `mixed_precision` means here: 'fp32', 'bf16' or 'fp16' (auto: bf16/fp16 on a GPU, fp32 on CPU).

    bf16 on CPU runs under CPU autocast (TrainingArguments(bf16=True, use_cpu=True)); fp16 on CPU is refused,
    because Accelerate would silently train in fp32.
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if choice == "no":
        return "fp32"
    if choice == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if choice == "fp16" and not cuda:
        raise ValueError(
            "mixed_precision: fp16 needs a CUDA GPU and none is available; on CPU use bf16 (CPU autocast) or no."
        )
    if choice not in ("bf16", "fp16"):
        raise ValueError(f"`mixed_precision` must be auto, no, bf16 or fp16, got {choice!r}.")
    return choice


def _mixed_precision_flags(choice: str) -> dict[str, bool]:
    precision = resolve_precision(choice)
    return {} if precision == "fp32" else {precision: True}


def precision_used(trainer: Trainer) -> str:
    """The precision the Trainer's Accelerator actually trained in: 'fp32', 'bf16' or 'fp16'."""
    acc = trainer.accelerator
    deepspeed = str(getattr(acc.distributed_type, "value", acc.distributed_type)).upper() == "DEEPSPEED"
    mixed = str(acc.mixed_precision)
    return mixed if mixed in ("bf16", "fp16") and (acc.native_amp or deepspeed) else "fp32"


def check_sharding(cfg: RunConfig) -> None:
    """save_checkpoints: false keeps the best weights in one process's memory: not possible for sharded models.

    Also warns that on a machine without a GPU an FSDP or DeepSpeed launch trains as DDP (gloo), with a whole copy
    of the model per process: the run's `use_cpu` makes Accelerate choose MULTI_CPU (docs/training-at-scale.md#cpu).
    """
    if not torch.cuda.is_available():
        for var in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
            if os.environ.get(var, "false").lower() in ("1", "true", "yes"):
                logger.warning(
                    "%s is set but there is no GPU: Accelerate shards nothing on CPU; this run trains as DDP (gloo) "
                    "with a full model copy per process.",
                    var,
                )
    if cfg.save_checkpoints:
        return
    for var in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        if os.environ.get(var, "false").lower() in ("1", "true", "yes"):
            raise ValueError(
                f"save_checkpoints: false keeps the best weights in memory, which sharded training ({var}) "
                "cannot do; use save_checkpoints: true"
            )


def batch_layout(cfg: RunConfig, world: int | None = None) -> tuple[int, int, int]:
    """(per-device batch, gradient accumulation steps, processes) of a run on `world` processes (default: this
    launch's WORLD_SIZE): `batch_size` split over the processes unless `per_device_batch_size` is set, and
    accumulation making up the rest; the effective batch is their product."""
    world = int(os.environ.get("WORLD_SIZE", "1")) if world is None else int(world)
    per_device = cfg.per_device_batch_size or max(1, cfg.batch_size // world)
    accumulation = max(1, round(cfg.batch_size / (per_device * world)))
    return per_device, accumulation, world


def training_arguments(cfg: RunConfig, num_tasks: int, max_steps: int = -1) -> SurgeTrainingArguments:
    """The run's arguments for the paper's protocol: AdamW, warm-up then linear decay, clipping, per-epoch early
    stopping; and the run config's task sampling, temperature, module learning rate scale (resolved: 100 with a
    frozen encoder by default) and class weights.

    Without checkpoints (`save_checkpoints: false`) the run still evaluates every epoch and stops early; the
    best weights are then kept in memory by `SurgeEarlyStoppingCallback(keep_best_in_memory=True)`.
    """
    per_device, accumulation, world = batch_layout(cfg)
    on_cpu = not torch.cuda.is_available()
    stop_args = early_stopping_arguments("avg_macro_f1")
    if not cfg.save_checkpoints:
        stop_args.update(save_strategy="no", load_best_model_at_end=False)
    return SurgeTrainingArguments(
        output_dir=str(cfg.run_dir / "checkpoints"),
        num_train_epochs=cfg.num_epochs,
        max_steps=max_steps,
        learning_rate=cfg.lr,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=accumulation,
        weight_decay=cfg.weight_decay,
        adam_epsilon=cfg.adam_epsilon,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,
        optim="adamw_torch",
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_total_limit=2,
        logging_steps=cfg.logging_steps,
        label_names=["labels", "task_ids"],
        report_to=cfg.report_to,  # checked installed before the run (`tracking.check_report_to`)
        run_name=cfg.run_name or cfg.run_dir.name,
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and world > 1 else None,
        ddp_find_unused_parameters=False,  # every head runs on every batch, so every trainable parameter is used
        disable_tqdm=cfg.disable_tqdm,
        dataloader_num_workers=0,
        task_sampling=cfg.task_sampling,
        temperature=cfg.temperature,
        module_lr_scale=cfg.module_lr_multiplier,
        class_weights=cfg.class_weights,
        **_mixed_precision_flags(cfg.mixed_precision),
        **stop_args,
    )
