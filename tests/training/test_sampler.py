"""TaskBalancedBatchSampler: task-homogeneous, balanced, deterministic batches."""

from __future__ import annotations

import numpy as np

from surgellm_hf.training import (
    TaskBalancedBatchSampler,
)


def test_batches_are_task_homogeneous_cover_every_example_once_and_interleave():
    task_ids = [0] * 100 + [1] * 20 + [2] * 45
    sampler = TaskBalancedBatchSampler(task_ids, per_batch=8, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 13 + 3 + 6
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(task_ids)))
    for b in batches:
        assert len({task_ids[i] for i in b}) == 1 and 1 <= len(b) <= 8
    order = [task_ids[b[0]] for b in batches]
    # balanced: each task's batches are spread over the epoch, e.g. the small task is not all at one end
    for t, n in ((0, 13), (1, 3), (2, 6)):
        positions = np.flatnonzero(np.array(order) == t) / len(order)
        assert len(positions) == n
        assert positions.min() < 0.5 < positions.max()
    # every third of the epoch holds batches of every task with at least 3 batches
    thirds = [set(order[i * len(order) // 3 : (i + 1) * len(order) // 3]) for i in range(3)]
    assert all({0, 1, 2} <= third for third in thirds)


def test_sampler_is_deterministic_per_seed_and_epoch():
    ids = [0] * 30 + [1] * 30
    a, b = TaskBalancedBatchSampler(ids, 4, seed=0), TaskBalancedBatchSampler(ids, 4, seed=0)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(TaskBalancedBatchSampler(ids, 4, seed=1)) != list(b)
