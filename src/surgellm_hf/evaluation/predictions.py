"""Scoring a model on processed splits: logits split by task (per-task softmax), per-task metrics and records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..pipeline_surge import task_probabilities
from .metrics import task_metrics


def per_task_predictions(
    logits: np.ndarray, task_ids: np.ndarray, tasks: Mapping[str, int]
) -> dict[str, dict[str, np.ndarray]]:
    """Split padded logits by task: {task: {'index', 'y_pred', 'score' (softmax over the task's own labels)}}."""
    out = {}
    for t, (name, n_labels) in enumerate(tasks.items()):
        idx = np.flatnonzero(task_ids == t)
        if not len(idx):
            continue
        prob = task_probabilities(logits[idx].astype(np.float64), n_labels)
        out[name] = {"index": idx, "y_pred": prob.argmax(axis=1), "score": prob}
    return out


@torch.no_grad()
def predict_split(
    model: Any,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_size: int = 64,
    with_gate: bool = False,
) -> dict[str, np.ndarray]:
    """Logits, labels, task ids (and per-example mean gate values) over a processed split (`encode_split`)."""
    model.eval()
    device = next(model.parameters()).device
    logits, labels, task_ids, gates = [], [], [], []
    cols = [c for c in dataset.column_names]
    for start in range(0, len(dataset), batch_size):
        rows = dataset.select(range(start, min(start + batch_size, len(dataset))))
        batch = collator([{c: r[c] for c in cols} for r in rows])
        y = batch.pop("labels")
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch, output_gate=with_gate and model.config.use_gate)
        logits.append(out.logits.float().cpu().numpy())
        labels.append(y.numpy())
        task_ids.append(batch["task_ids"].cpu().numpy())
        if out.gate is not None:
            gates.append(out.gate.float().mean(dim=-1).cpu().numpy())
    result = {
        "logits": np.concatenate(logits),
        "labels": np.concatenate(labels),
        "task_ids": np.concatenate(task_ids),
    }
    if gates:
        result["gate"] = np.concatenate(gates)
    return result


def evaluate_predictions(
    pred: Mapping[str, np.ndarray], tasks: Mapping[str, int], ids: Sequence[str] | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Per-task metrics and prediction records ({y_true, y_pred, score, gate, id}) from `predict_split` output."""
    metrics, records = {}, {}
    for name, p in per_task_predictions(pred["logits"], pred["task_ids"], tasks).items():
        y_true = pred["labels"][p["index"]]
        metrics[name] = task_metrics(y_true, p["y_pred"], p["score"], num_labels=tasks[name])
        records[name] = {
            "y_true": y_true,
            "y_pred": p["y_pred"],
            "score": p["score"],
            "gate": pred["gate"][p["index"]] if "gate" in pred else None,
            "id": [ids[i] for i in p["index"]] if ids is not None else None,
        }
    return metrics, records
