"""TaskBalancedBatchSampler: task-homogeneous, balanced, deterministic batches."""

from __future__ import annotations

import numpy as np
import pytest

from surgellm_hf.training import (
    TaskBalancedBatchSampler,
    task_sampling_probabilities,
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


def _epoch_shares(sampler: TaskBalancedBatchSampler, task_ids: list[int]) -> np.ndarray:
    """Share of the epoch's examples per task, measured from the batches the sampler yields."""
    counts = np.bincount([task_ids[i] for b in sampler for i in b], minlength=max(task_ids) + 1)
    return counts / counts.sum()


SIZES = (800, 160, 40)  # a skewed mix, every task a multiple of the batch size


def _skewed_ids() -> list[int]:
    return [t for t, n in enumerate(SIZES) for _ in range(n)]


@pytest.mark.parametrize(
    ("rule", "temperature", "expected"),
    [
        ("proportional", 1.0, np.array(SIZES) / sum(SIZES)),
        ("equal", 1.0, np.full(3, 1 / 3)),
        ("temperature", 2.0, np.sqrt(SIZES) / np.sqrt(SIZES).sum()),
        ("temperature", 5.0, np.array(SIZES) ** 0.2 / (np.array(SIZES) ** 0.2).sum()),
    ],
)
def test_sampling_proportions_measured_over_an_epoch(rule, temperature, expected):
    ids = _skewed_ids()
    sampler = TaskBalancedBatchSampler(ids, per_batch=8, seed=0, sampling=rule, temperature=temperature)
    batches = list(sampler)
    assert len(batches) == len(sampler) == sum(SIZES) // 8  # the epoch keeps its length under every rule
    np.testing.assert_allclose(_epoch_shares(sampler, ids), expected, atol=1 / len(batches))
    np.testing.assert_allclose(task_sampling_probabilities(SIZES, rule, temperature), expected)
    for b in batches:  # still task-homogeneous, never an example twice in a batch
        assert len({ids[i] for i in b}) == 1 and len(set(b)) == len(b) == 8
    order = np.array([ids[b[0]] for b in batches])
    for t in range(3):  # spread over the epoch
        pos = np.flatnonzero(order == t) / len(order)
        assert pos.min() < 0.25 and pos.max() > 0.75


def test_oversampled_task_cycles_through_all_examples_and_undersampled_task_varies_by_epoch():
    ids = _skewed_ids()
    sampler = TaskBalancedBatchSampler(ids, per_batch=8, seed=0, sampling="equal")
    seen = [i for b in sampler for i in b]
    small = [i for i in seen if ids[i] == 2]  # 40 examples, 41 or 42 batches of 8: about 8 passes
    counts = np.bincount(small, minlength=len(ids))[[i for i, t in enumerate(ids) if t == 2]]
    assert counts.min() >= counts.max() - 1  # successive permutations: every example equally often (±1)
    big_epoch0 = {i for i in seen if ids[i] == 0}
    sampler.set_epoch(1)
    big_epoch1 = {i for b in sampler for i in b if ids[i] == 0}
    assert big_epoch0 != big_epoch1 and len(big_epoch0) < SIZES[0]


def test_temperature_one_equals_proportional_shares_and_default_is_unchanged():
    ids = _skewed_ids()
    assert list(TaskBalancedBatchSampler(ids, 8, seed=2)) == list(
        TaskBalancedBatchSampler(ids, 8, seed=2, sampling="proportional", temperature=7.0)
    )
    t1 = TaskBalancedBatchSampler(ids, 8, seed=2, sampling="temperature", temperature=1.0)
    assert t1.batches_per_task() == TaskBalancedBatchSampler(ids, 8, seed=2).batches_per_task()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sampling": "uniform"}, "`task_sampling` must be one of"),
        ({"sampling": "temperature", "temperature": 0}, "`temperature` must be a positive number"),
    ],
)
def test_bad_sampling_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskBalancedBatchSampler([0, 1], 2, **kwargs)
