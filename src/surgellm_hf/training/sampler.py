"""`TaskBalancedBatchSampler`: task-homogeneous batches, each task's batches spread evenly over the epoch."""

from __future__ import annotations

import heapq
import math
import typing
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
from torch.utils.data import Sampler

TaskSampling = Literal["proportional", "equal", "temperature"]
"""How an epoch's batches are shared among tasks (`TaskBalancedBatchSampler`)."""
TASK_SAMPLING_CHOICES: tuple[str, ...] = typing.get_args(TaskSampling)


def task_sampling_probabilities(
    sizes: Sequence[int], rule: str = "proportional", temperature: float = 1.0
) -> np.ndarray:
    """Share of an epoch's batches per task: p_t ∝ n_t (proportional), 1 (equal) or n_t^(1/T) (temperature).

    T = 1 is proportional and T -> infinity equal (T5's and MT-DNN's temperature-scaled mixing).
    """
    weights = _task_weights(sizes, rule, temperature)
    return weights / weights.sum()


def _task_weights(sizes: Sequence[int], rule: str, temperature: float) -> np.ndarray:
    """Unnormalised weights of the rule, in example units: n_t (proportional: exact at T = 1), 1 or n_t^(1/T); 0
    for a task without rows."""
    check_task_sampling(rule, temperature)
    n = np.asarray(sizes, dtype=np.float64)
    if rule == "equal":
        weights = np.ones_like(n)
    elif rule == "temperature":
        weights = n ** (1.0 / float(temperature))  # x ** 1.0 == x exactly: T = 1 is proportional to the bit
    else:
        weights = n.copy()
    weights[n == 0] = 0.0
    return weights


def check_task_sampling(rule: str, temperature: float) -> None:
    """Refuse an unknown sampling rule or a temperature that is not a finite positive number."""
    if rule not in TASK_SAMPLING_CHOICES:
        raise ValueError(f"`task_sampling` must be one of {list(TASK_SAMPLING_CHOICES)}, got {rule!r}.")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
        or not temperature > 0
    ):
        raise ValueError(
            f"`temperature` must be a positive number, got {temperature!r} (task_sampling: equal is T -> infinity)."
        )


def ceil_apportionment(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer batch counts summing to `total`: c_t = ceil(w_t / d) for a divisor d that makes them sum to `total`
    (Adams' divisor method; ties go to the earlier task). Every task with w_t > 0 gets at least one.

    With w_t = n_t (examples) and `total` = sum_t ceil(n_t / B), d = B: the counts are exactly ceil(n_t / B), the
    proportional rule's. The rounding up that gives small tasks their batch is taken from the largest tasks.
    """
    weights = np.asarray(weights, dtype=np.float64)
    active = weights > 0
    k = int(active.sum())
    if total < k:
        raise ValueError(f"{total} batches cannot give each of {k} tasks one")
    counts = np.zeros(len(weights), dtype=np.int64)
    counts[active] = 1
    if total > k:  # a lower bound of the result (d <= W / (total - k)), so the loop below adds few seats
        lower = np.floor(weights * (total - k) / weights.sum()).astype(np.int64)
        counts = np.where(active, np.maximum(counts, lower), 0)
    heap = [(-weights[t] / counts[t], t) for t in np.flatnonzero(active)]
    heapq.heapify(heap)
    for _ in range(total - int(counts.sum())):  # the next batch goes to the largest w_t / c_t
        _, t = heapq.heappop(heap)
        counts[t] += 1
        heapq.heappush(heap, (-weights[t] / counts[t], t))
    return counts


class TaskBalancedBatchSampler(Sampler[list[int]]):
    """Task-homogeneous batches, each task's batches spread evenly over the epoch (docs/method.md#training-protocol).

    Every example is seen once per epoch. Task t with n_t batches places its j-th batch at (j + u_t) / n_t with a
    random phase u_t, and batches run in that order: tasks interleave in proportion, so no task is crowded at
    the start or end of an epoch. Deterministic for (seed, epoch). No `batch_size` attribute on purpose: Accelerate
    then shards batches of varying size across processes without splitting them.

    `sampling` sets how many of the epoch's batches each task gets; the epoch keeps its length (the number of
    batches that covering every example once takes), so step counts and schedules do not change with the rule.
    `proportional` (default) is the above: every example once. `equal` gives every task the same number of
    batches and `temperature` gives task t a share ∝ n_t^(1/T). The counts are ceil(w_t / d) for the one divisor d
    that fills the epoch (`ceil_apportionment`), proportional's own rule ceil(n_t / B) generalised: T = 1 gives
    exactly proportional's counts and batches, and every task with rows gets at least one batch per epoch under
    every rule (the batches that rounding up gives small tasks come from the largest ones). A task whose count
    is its proportional one sees every example once; one with more batches cycles through fresh permutations of
    its examples (no example twice in a batch), one with fewer sees a different random subset each epoch; those
    batches are all full (or the task's size, when smaller).
    """

    def __init__(
        self,
        task_ids: Sequence[int],
        per_batch: int,
        seed: int = 0,
        sampling: str = "proportional",
        temperature: float = 1.0,
    ):
        if per_batch < 1:
            raise ValueError(f"per_batch must be >= 1, got {per_batch}.")
        check_task_sampling(sampling, temperature)
        self.task_ids = np.asarray(task_ids, dtype=np.int64)
        self.per_batch = per_batch
        self.seed = seed
        self.sampling = sampling
        self.temperature = float(temperature)
        self.epoch = 0

    def batches_per_task(self) -> dict[int, int]:
        """Task id -> number of batches it gets in every epoch under the sampling rule."""
        tasks = np.unique(self.task_ids)
        sizes = np.array([int((self.task_ids == t).sum()) for t in tasks])
        if self.sampling == "proportional":
            counts = np.array([math.ceil(n / self.per_batch) for n in sizes])
        else:
            weights = _task_weights(sizes, self.sampling, self.temperature)
            counts = ceil_apportionment(weights, len(self))
        return {int(t): int(c) for t, c in zip(tasks, counts, strict=True)}

    def set_epoch(self, epoch: int) -> None:
        """Draw the next `batches` for this epoch (the Trainer calls it every epoch)."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches of example indices, in training order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        placed: list[tuple[float, int, list[int]]] = []
        quota = self.batches_per_task()
        for t in np.unique(self.task_ids):
            rows = np.flatnonzero(self.task_ids == t)
            if quota[int(t)] == math.ceil(
                len(rows) / self.per_batch
            ):  # its proportional count: each row once
                idx = rng.permutation(rows)
                chunks = [idx[i : i + self.per_batch].tolist() for i in range(0, len(idx), self.per_batch)]
            else:
                chunks = self._resampled_chunks(rows, quota[int(t)], rng)
            phase = rng.random()
            placed += [((j + phase) / len(chunks), int(t), c) for j, c in enumerate(chunks)]
        placed.sort(key=lambda item: (item[0], item[1]))
        return [c for _, _, c in placed]

    def _resampled_chunks(self, idx: np.ndarray, n_batches: int, rng: np.random.Generator) -> list[list[int]]:
        """`n_batches` batches of min(per_batch, len(idx)) distinct examples, drawn from successive permutations."""
        size = min(self.per_batch, len(idx))
        chunks: list[list[int]] = []
        pool: list[int] = []  # the current permutation, consumed from the end
        for _ in range(n_batches):
            batch: list[int] = []
            seen: set[int] = set()
            deferred: list[int] = []  # already in this batch (a new permutation began): kept for the next one
            while len(batch) < size:
                if not pool:
                    pool = rng.permutation(idx).tolist()[::-1]
                i = pool.pop()
                if i in seen:
                    deferred.append(i)
                else:
                    batch.append(i)
                    seen.add(i)
            pool.extend(reversed(deferred))
            chunks.append(batch)
        return chunks

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        counts = np.bincount(self.task_ids) if len(self.task_ids) else np.array([])
        return int(sum(math.ceil(c / self.per_batch) for c in counts if c))
