"""Turning the tasks' text splits into model inputs with a `SurgeProcessor` (one `datasets.map` per task).

A pair task's rows (a `text_pair` column, see `TaskSpec.text_pair_column`) are encoded as sentence pairs.
"""

from __future__ import annotations

from typing import Any

from .multitask import MultiTaskData


def encode_split(task_data: MultiTaskData, processor: Any, split: str) -> Any:
    """Concatenate one split of every task, processed into model inputs with task ids and labels (None: no task has it)."""
    import datasets

    parts = []
    for name in task_data.task_names:
        if split not in task_data[name]:
            continue
        ds = task_data[name][split]

        def _encode(batch, _task=name):
            enc = dict(processor(batch["text"], text_pair=batch.get("text_pair"), task=_task))
            enc["labels"] = batch["label"]
            return enc

        parts.append(ds.map(_encode, batched=True, remove_columns=ds.column_names, desc=f"{name}/{split}"))
    return datasets.concatenate_datasets(parts) if parts else None


def pair_task_names(task_data: MultiTaskData) -> list[str]:
    """The sentence-pair tasks (those whose data has a `text_pair` column), in task order."""
    return [
        name
        for name in task_data.task_names
        if any("text_pair" in ds.column_names for ds in task_data[name].values())
    ]


def split_ids(task_data: MultiTaskData, split: str) -> list[str]:
    """The example ids of one split over every task that has it, in `encode_split`'s order."""
    ids = []
    for name in task_data.task_names:
        if split in task_data[name]:
            ds = task_data[name][split]
            ids += list(ds["id"]) if "id" in ds.column_names else [f"{name}-{i}" for i in range(len(ds))]
    return ids
