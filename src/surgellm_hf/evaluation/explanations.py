"""Which lexical features drive a model's decisions on a split: the mean |contribution| of every feature per task
(`explaining_surge`: the change in the decision when the feature is set to its task's mean), for the run report
and the model card."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..explaining_surge import NO_GATE_NOTE, NO_STATISTICS_NOTE, feature_contributions, mean_abs_contributions

TOP_FEATURES = 5
"""Features shown per task in the report and the card (all of them are in metrics.json)."""


@torch.no_grad()
def feature_contribution_summary(
    model: Any,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    feature_names: Sequence[str],
    batch_size: int = 64,
    split: str = "validation",
) -> dict[str, Any]:
    """``{"split", "tasks": {task: [{"feature", "mean_abs_contribution"}, ...]}}`` over a processed split
    (`encode_split`, or its cached first-token states), features sorted by mean |contribution| (largest first);
    ``{"split", "note"}`` for a model that has none (no gate, or ``norm="none"``)."""
    config = model.config
    if not config.use_gate or config.norm == "none":
        return {"split": split, "note": NO_GATE_NOTE if not config.use_gate else NO_STATISTICS_NOTE}
    model.eval()
    device = next(model.parameters()).device
    per_task: dict[str, list[np.ndarray]] = {}
    columns = list(dataset.column_names)
    for start in range(0, len(dataset), batch_size):
        rows = dataset.select(range(start, min(start + batch_size, len(dataset))))
        batch = collator([{c: r[c] for c in columns} for r in rows])
        batch.pop("labels", None)
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model.explain_features(**batch)
        reference = out.reference_logits.float().cpu().numpy()
        moved = out.counterfactual_logits.float().cpu().numpy()
        for i, t in enumerate(batch["task_ids"].tolist()):
            name = config.task_names[t]
            kind, num_labels = config.task_problem_types[name], config.tasks[name]
            per_task.setdefault(name, []).append(
                feature_contributions(reference[i], moved[i], num_labels, kind)
            )
    tasks = {}
    for name in config.task_names:
        if name not in per_task:
            continue
        means = mean_abs_contributions(per_task[name])
        order = np.argsort(-means, kind="stable")
        tasks[name] = [{"feature": feature_names[j], "mean_abs_contribution": float(means[j])} for j in order]
    return {"split": split, "tasks": tasks}


def top_features_table(summary: dict[str, Any], top: int = TOP_FEATURES) -> list[str]:
    """Markdown lines: per task, the `top` features by mean |contribution| (empty without a summary)."""
    tasks = (summary or {}).get("tasks")
    if not tasks:
        return []
    lines = [
        "| task | " + " | ".join(f"#{k + 1}" for k in range(top)) + " |",
        "|---" * (top + 1) + "|",
    ]
    for task, ranked in tasks.items():
        cells = [f"`{r['feature']}` {r['mean_abs_contribution']:.3g}" for r in ranked[:top]]
        lines.append(f"| {task} | " + " | ".join(cells + [""] * (top - len(cells))) + " |")
    return lines


__all__ = ["feature_contribution_summary", "top_features_table", "TOP_FEATURES"]
