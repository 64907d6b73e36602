"""`SurgeTrainer`: `transformers.Trainer` with task-balanced batches, and its `compute_metrics`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import Trainer

from ..evaluation.metrics import primary_score
from ..evaluation.predictions import per_task_predictions, task_scores
from .sampler import TaskBalancedBatchSampler, check_task_sampling


def is_encoder_parameter(name: str) -> bool:
    """True for a parameter of the encoder (`surge.encoder.*`, also inside PEFT/DDP wrappers)."""
    return name.startswith("surge.encoder.") or ".surge.encoder." in name


class SurgeTrainer(Trainer):
    """`Trainer` whose training batches are task-homogeneous and task-balanced (TaskBalancedBatchSampler), and
    whose SURGELLM modules and heads may train at `module_lr_scale` x the encoder's learning rate."""

    def __init__(
        self,
        *args: Any,
        module_lr_scale: float = 1.0,
        task_sampling: str = "proportional",
        temperature: float = 1.0,
        class_weights: torch.Tensor | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.module_lr_scale = float(module_lr_scale)
        check_task_sampling(task_sampling, temperature)
        self.task_sampling = task_sampling
        self.temperature = float(temperature)
        # [num_tasks, max_num_labels] weights (class_weight_table), or None for the model's own mean cross-entropy
        self.class_weights = (
            None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        )

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
        """The model's loss, or with `class_weights` the class-weighted cross-entropy under each row's task
        (sum of w_y * nll / sum of w_y over the batch, i.e. `cross_entropy(weight=...)` on a task-homogeneous batch)."""
        if self.class_weights is None or "labels" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        loss = weighted_task_cross_entropy(logits, labels, inputs["task_ids"], self.class_weights)
        return (loss, outputs) if return_outputs else loss


def weighted_task_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, task_ids: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """Class-weighted cross-entropy over rows of mixed tasks: weight of row i = table[task_i, label_i]."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    nll = -log_probs.gather(1, labels.view(-1, 1)).squeeze(1)
    weights = table.to(logits.device)[task_ids, labels]
    return (weights * nll).sum() / weights.sum().clamp_min(torch.finfo(torch.float32).tiny)


_LOGGED = {
    "single_label": ("macro_f1", "accuracy", "roc_auc"),
    "multi_label": ("micro_f1", "macro_f1", "subset_accuracy"),
    "regression": ("pearson", "spearman", "rmse"),
}


def build_compute_metrics(
    tasks: Mapping[str, int],
    problem_types: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> Callable[..., dict[str, float]]:
    """compute_metrics for the Trainer: per-task metrics by problem type (scikit-learn/scipy) and `avg_macro_f1`,
    the unweighted mean of the tasks' primary scores (macro-F1; a regression task's (Pearson + Spearman) / 2)."""
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
            kind = types.get(name, "single_label")
            m = task_scores(np.asarray(labels), pred, tasks[name], kind, limits.get(name, 0.5))
            for key in _LOGGED[kind]:
                result[f"{name}_{key}"] = m[key]
            primaries.append(primary_score(m))
        result["avg_macro_f1"] = float(np.mean(primaries))
        return result

    return compute_metrics
