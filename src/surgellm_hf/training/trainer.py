"""`SurgeTrainer`: `transformers.Trainer` with task-balanced batches, and its `compute_metrics`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from torch.utils.data import DataLoader
from transformers import Trainer

from ..evaluation.metrics import task_metrics
from ..evaluation.predictions import per_task_predictions
from .sampler import TaskBalancedBatchSampler


class SurgeTrainer(Trainer):
    """`Trainer` whose training batches are task-homogeneous and task-balanced (TaskBalancedBatchSampler)."""

    def get_train_dataloader(self) -> DataLoader:
        """The training DataLoader with `TaskBalancedBatchSampler` batches, prepared by Accelerate."""
        dataset = self._remove_unused_columns(self.train_dataset, description="training")
        sampler = TaskBalancedBatchSampler(dataset["task_ids"], self._train_batch_size, seed=self.args.seed)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)


def build_compute_metrics(tasks: Mapping[str, int]) -> Callable[..., dict[str, float]]:
    """compute_metrics for the Trainer: per-task metrics (scikit-learn) and the unweighted mean macro-F1."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits = (
            eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        )
        labels, task_ids = eval_pred.label_ids
        result: dict[str, float] = {}
        f1s = []
        for name, pred in per_task_predictions(np.asarray(logits), np.asarray(task_ids), tasks).items():
            m = task_metrics(
                np.asarray(labels)[pred["index"]], pred["y_pred"], pred["score"], num_labels=tasks[name]
            )
            for key in ("macro_f1", "accuracy", "roc_auc"):
                result[f"{name}_{key}"] = m[key]
            f1s.append(m["macro_f1"])
        result["avg_macro_f1"] = float(np.mean(f1s))
        return result

    return compute_metrics
