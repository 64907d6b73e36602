"""`SurgeTrainer`: `transformers.Trainer` with task-balanced batches, and its `compute_metrics`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from ..evaluation.predictions import per_task_predictions, task_scores
from ..problem_types import (
    DEFAULT_PROBLEM_TYPE,
    DEFAULT_THRESHOLD,
    info,
    primary_score,
)
from .class_weights import (
    class_weight_table,
    needs_training_labels,
    resolve_class_weights,
    training_labels_by_task,
)
from .sampler import TaskBalancedBatchSampler, check_task_sampling

PLAIN_ARGUMENTS_DEFAULTS: dict[str, Any] = {
    "task_sampling": "proportional",
    "temperature": 1.0,
    "module_lr_scale": 1.0,
    "class_weights": None,
}
"""What SurgeTrainer uses with a plain `TrainingArguments` (no `SurgeTrainingArguments` fields): every example
once per epoch, one learning rate, the model's own loss."""


def is_encoder_parameter(name: str) -> bool:
    """True for a parameter of the encoder (`surge.encoder.*`, also inside PEFT/DDP wrappers)."""
    return name.startswith("surge.encoder.") or ".surge.encoder." in name


class SurgeTrainer(Trainer):
    """`Trainer` whose training batches are task-homogeneous and task-balanced (TaskBalancedBatchSampler), and
    whose SURGELLM modules and heads may train at `module_lr_scale` x the encoder's learning rate.

    Its settings come from `args` (`SurgeTrainingArguments`: `task_sampling`, `temperature`, `module_lr_scale`,
    `class_weights`; a plain `TrainingArguments` means proportional sampling, one learning rate, no weights).
    `class_weights` 'balanced' is computed from `train_dataset`'s labels and task ids, in the model's task order;
    every weight is checked against the model's tasks here, before anything trains. The keyword arguments of the
    same names still override `args` for one release, with a FutureWarning (`class_weights` there is the resolved
    [num_tasks, max_num_labels] table).
    """

    def __init__(
        self,
        *args: Any,
        module_lr_scale: float | None = None,
        task_sampling: str | None = None,
        temperature: float | None = None,
        class_weights: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        legacy = {
            name: value
            for name, value in (
                ("module_lr_scale", module_lr_scale),
                ("task_sampling", task_sampling),
                ("temperature", temperature),
                ("class_weights", class_weights),
            )
            if value is not None
        }
        if legacy:
            warnings.warn(
                f"SurgeTrainer({'=..., '.join(legacy)}=...) is deprecated and will be removed in the next release; "
                "set them on SurgeTrainingArguments (args=SurgeTrainingArguments(..., task_sampling=..., "
                "temperature=..., module_lr_scale=..., class_weights=...)).",
                FutureWarning,
                stacklevel=2,
            )
        setting = {
            name: legacy.get(name, getattr(self.args, name, default))
            for name, default in PLAIN_ARGUMENTS_DEFAULTS.items()
        }
        check_task_sampling(setting["task_sampling"], setting["temperature"])
        self.task_sampling = setting["task_sampling"]
        self.temperature = float(setting["temperature"])
        self.module_lr_scale = float(setting["module_lr_scale"])
        # [num_tasks, max_num_labels] class weights / pos_weights (class_weight_table), or None: the model's own loss
        self.class_weights = (
            torch.as_tensor(class_weights, dtype=torch.float32)
            if class_weights is not None
            else self._class_weight_table(setting["class_weights"])
        )

    def _class_weight_table(self, spec: Any) -> torch.Tensor | None:
        """The loss's weight table of a `class_weights` setting (None: no task weighted), 'balanced' computed from
        `train_dataset`'s training labels; an unknown task, a wrong length or a bad value is an error naming it."""
        if spec is None:
            return None
        config = self.model.config
        tasks = dict(config.tasks)
        labels = {}
        if needs_training_labels(spec):
            if self.train_dataset is None:
                raise ValueError(
                    "class_weights 'balanced' is computed from the training labels: pass SurgeTrainer a "
                    "train_dataset (with `labels` and `task_ids`), or give explicit weights."
                )
            data = self.train_dataset
            labels = training_labels_by_task(data["task_ids"], data["labels"], list(tasks))
        weights = resolve_class_weights(
            spec, tasks, labels, config.task_label_names or {}, config.task_problem_types or {}
        )
        return class_weight_table(weights, tasks) if weights else None

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer; with `module_lr_scale != 1` its four parameter groups (encoder / modules and
        heads x weight decay / none, the decay split being the Trainer's own `get_decay_parameter_names`) are passed
        through the Trainer's `params` override of `get_optimizer_cls_and_kwargs`."""
        opt_model = self.model if model is None else model
        if self.optimizer is None and self.module_lr_scale != 1.0:
            decay = set(self.get_decay_parameter_names(opt_model))
            base_lr = self.args.learning_rate
            groups = []
            for encoder_side in (True, False):
                lr = base_lr if encoder_side else base_lr * self.module_lr_scale
                for with_decay in (True, False):
                    params = [
                        p
                        for n, p in opt_model.named_parameters()
                        if p.requires_grad
                        and is_encoder_parameter(n) == encoder_side
                        and (n in decay) == with_decay
                    ]
                    if params:
                        groups.append(
                            {
                                "params": params,
                                "weight_decay": self.args.weight_decay if with_decay else 0.0,
                                "lr": lr,
                            }
                        )
            if self.optimizer_cls_and_kwargs is not None:
                optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
            else:
                optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer_cls_and_kwargs = (optimizer_cls, {**optimizer_kwargs, "params": groups})
        return super().create_optimizer(model)

    def get_train_dataloader(self) -> DataLoader:
        """The training DataLoader with `TaskBalancedBatchSampler` batches, prepared by Accelerate."""
        dataset = self._remove_unused_columns(self.train_dataset, description="training")
        sampler = TaskBalancedBatchSampler(
            dataset["task_ids"],
            self._train_batch_size,
            seed=self.args.seed,
            sampling=self.task_sampling,
            temperature=self.temperature,
        )
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        """The model's loss, or with `class_weights` the weighted loss of `weighted_task_loss` (each row under its
        task's problem type, normalised by the batch's summed row weights)."""
        if self.class_weights is None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        core = self.accelerator.unwrap_model(model)  # a PEFT wrapper forwards loss_per_row and config
        loss = weighted_task_loss(core, logits, labels, inputs["task_ids"], self.class_weights)
        return (loss, outputs) if return_outputs else loss


def weighted_task_loss(
    model: Any, logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """Weighted loss over rows of mixed tasks and problem types, in fp32, loop-free.

    `table` is `class_weight_table` ([num_tasks, max_num_labels], 1 where a task has no weights). Row i's loss
    l_i is `model.loss_per_row` with `pos_weight = table[task_i]` (only multi-label rows use it) and its row weight
    w_i is table[task_i, y_i] for a single-label row, 1 for a multi-label or regression row; the batch loss is
    sum(w_i * l_i) / sum(w_i). On a task-homogeneous batch this is `cross_entropy(weight=...)` (single-label),
    `binary_cross_entropy_with_logits(pos_weight=...)` averaged over rows and the task's labels (multi-label), the
    mean squared error (regression); with no weights, the model's own mean loss.
    """
    labels = torch.as_tensor(labels, device=logits.device)
    task_ids = torch.as_tensor(task_ids, device=logits.device).long()
    rows = table.to(logits.device, torch.float32)[task_ids]
    per_row = model.loss_per_row(logits, labels, task_ids, pos_weight=rows)
    single_task = [info(kind).class_ids for kind in model.config.task_problem_types.values()]
    single = torch.tensor(single_task, device=logits.device)[task_ids]
    first = labels if labels.dim() == 1 else labels[:, 0]
    cls = torch.where(single, first, torch.zeros_like(first)).long().view(-1, 1)  # checked by loss_per_row
    weight = torch.where(single, rows.gather(1, cls).squeeze(1), torch.ones_like(per_row))
    return (weight * per_row).sum() / weight.sum().clamp_min(torch.finfo(torch.float32).tiny)


def build_compute_metrics(
    tasks: Mapping[str, int],
    problem_types: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Callable[..., dict[str, float]]:
    """compute_metrics for the Trainer: per-task metrics by problem type (scikit-learn/scipy) and `avg_macro_f1`,
    the unweighted mean of the tasks' primary scores (macro-F1; a regression task's (Pearson + Spearman) / 2, an
    undefined correlation counting 0: never NaN, see `evaluation.metrics`)."""
    types, limits = dict(problem_types or {}), dict(thresholds or {})

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits = (
            eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        )
        labels, task_ids = eval_pred.label_ids
        result: dict[str, float] = {}
        primaries = []
        per_task = per_task_predictions(np.asarray(logits), np.asarray(task_ids), tasks, types, limits)
        for name, pred in per_task.items():
            kind = types.get(name, DEFAULT_PROBLEM_TYPE)
            m = task_scores(
                np.asarray(labels), pred, tasks[name], kind, limits.get(name, DEFAULT_THRESHOLD), task=name
            )
            for key in info(kind).logged_metrics:
                result[f"{name}_{key}"] = m[key]
            primaries.append(primary_score(m))
        result["avg_macro_f1"] = float(np.mean(primaries))
        return result

    return compute_metrics
