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
        ({"sampling": "temperature", "temperature": float("inf")}, r"task_sampling: equal is T -> infinity"),
    ],
)
def test_bad_sampling_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskBalancedBatchSampler([0, 1], 2, **kwargs)


def _ids(sizes) -> list[int]:
    return [t for t, n in enumerate(sizes) for _ in range(n)]


def _is_ceil_divisor_apportionment(weights, counts) -> bool:
    """Independent check of c_t = ceil(w_t / d) for one d: ceil(w / d) = c iff w / c <= d < w / (c - 1), so such
    a d exists iff max_t w_t / c_t <= min_{c_t > 1} w_t / (c_t - 1) (equal only where a tie was broken)."""
    low = max(w / c for w, c in zip(weights, counts, strict=True))
    high = min((w / (c - 1) for w, c in zip(weights, counts, strict=True) if c > 1), default=np.inf)
    return low <= high


# sizes that are not multiples of the batch size: extreme ratios, many tasks, one-row tasks
EDGE_SIZES = [(10_000, 5), (33, 33, 94), (1, 2, 3, 4, 5, 6, 7, 8, 9, 1000), (5,) * 12 + (7_777,), (31, 1, 65)]


@pytest.mark.parametrize("sizes", EDGE_SIZES)
def test_temperature_one_is_exactly_proportional(sizes):
    ids = _ids(sizes)
    proportional = TaskBalancedBatchSampler(ids, 32, seed=4)
    t1 = TaskBalancedBatchSampler(ids, 32, seed=4, sampling="temperature", temperature=1.0)
    expected = {t: -(-n // 32) for t, n in enumerate(sizes)}  # ceil(n_t / B): every example once
    assert proportional.batches_per_task() == expected == t1.batches_per_task()
    assert list(t1) == list(proportional)  # the same batches, not only the same counts
    assert sorted(i for b in t1 for i in b) == list(range(len(ids)))


@pytest.mark.parametrize("sizes", EDGE_SIZES)
@pytest.mark.parametrize(
    ("rule", "temperature"),
    [("proportional", 1.0), ("equal", 1.0), ("temperature", 0.5), ("temperature", 2.0), ("temperature", 1e6)],
)
def test_every_task_gets_a_batch_and_the_epoch_keeps_its_length(sizes, rule, temperature):
    ids = _ids(sizes)
    sampler = TaskBalancedBatchSampler(ids, 32, seed=1, sampling=rule, temperature=temperature)
    counts = sampler.batches_per_task()
    total = sum(-(-n // 32) for n in sizes)  # the proportional epoch's length
    assert sum(counts.values()) == len(sampler) == total
    assert min(counts.values()) >= 1  # no task starves under any rule
    batches = list(sampler)
    assert len(batches) == total
    assert np.bincount([ids[b[0]] for b in batches]).tolist() == [counts[t] for t in range(len(sizes))]
    weights = {"equal": [1.0] * len(sizes), "proportional": list(sizes)}.get(
        rule, [n ** (1 / temperature) for n in sizes]
    )
    assert _is_ceil_divisor_apportionment(weights, [counts[t] for t in range(len(sizes))])
    quota = np.array(weights) / sum(weights) * total  # never more than a task's quota rounded up
    assert all(counts[t] <= np.ceil(quota[t] - 1e-9) for t in range(len(sizes)))


def test_the_10000_to_5_example_of_the_issue():
    ids = _ids((10_000, 5))
    for rule, temperature, expected in [
        ("temperature", 1.0, {0: 313, 1: 1}),
        ("temperature", 2.0, {0: 307, 1: 7}),  # sqrt: 100 vs 2.236 of 314: quota 307.1 vs 6.9; d = 100 / 307
        ("equal", 1.0, {0: 157, 1: 157}),
    ]:
        counts = TaskBalancedBatchSampler(ids, 32, sampling=rule, temperature=temperature).batches_per_task()
        assert counts == expected, (rule, temperature, counts)
