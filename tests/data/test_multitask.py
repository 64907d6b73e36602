"""Stratified sampling of MultiTaskData."""

from __future__ import annotations

import numpy as np

from surgellm_hf.data.multitask import _stratified_indices

# ----------------------------------------------------------------------------------------------- sampling


def test_stratified_indices_quota_order_and_determinism():
    labels = [0] * 60 + [1] * 30 + [2] * 10
    idx = _stratified_indices(labels, 20, seed=3)
    assert idx == sorted(idx) and len(set(idx)) == 20
    assert np.bincount(np.asarray(labels)[idx]).tolist() == [12, 6, 2]
    assert _stratified_indices(labels, 20, seed=3) == idx and _stratified_indices(labels, 20, seed=4) != idx
    assert np.bincount(np.asarray(labels)[_stratified_indices(labels, 3, 0)]).tolist() == [
        1,
        1,
        1,
    ]  # every class kept
    assert _stratified_indices(labels, 500, 0) == list(range(100))
