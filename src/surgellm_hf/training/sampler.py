"""`TaskBalancedBatchSampler`: task-homogeneous batches, each task's batches spread evenly over the epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class TaskBalancedBatchSampler(Sampler[list[int]]):
    """Task-homogeneous batches, each task's batches spread evenly over the epoch (METHOD.md §6).

    Every example is seen once per epoch. Task t with n_t batches places its j-th batch at (j + u_t) / n_t with a
    random phase u_t, and batches run in that order: tasks interleave in proportion, so no task is crowded at
    the start or end of an epoch. Deterministic for (seed, epoch). No `batch_size` attribute on purpose: Accelerate
    then shards batches of varying size across processes without splitting them.
    """

    def __init__(self, task_ids: Sequence[int], per_batch: int, seed: int = 0):
        if per_batch < 1:
            raise ValueError(f"per_batch must be >= 1, got {per_batch}.")
        self.task_ids = np.asarray(task_ids, dtype=np.int64)
        self.per_batch = per_batch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the next `batches` for this epoch (the Trainer calls it every epoch)."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches of example indices, in training order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        placed: list[tuple[float, int, list[int]]] = []
        for t in np.unique(self.task_ids):
            idx = rng.permutation(np.flatnonzero(self.task_ids == t))
            chunks = [idx[i : i + self.per_batch].tolist() for i in range(0, len(idx), self.per_batch)]
            phase = rng.random()
            placed += [((j + phase) / len(chunks), int(t), c) for j, c in enumerate(chunks)]
        placed.sort(key=lambda item: (item[0], item[1]))
        return [c for _, _, c in placed]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        counts = np.bincount(self.task_ids) if len(self.task_ids) else np.array([])
        return int(sum(math.ceil(c / self.per_batch) for c in counts if c))
