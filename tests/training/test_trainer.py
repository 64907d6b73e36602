"""The Trainer's compute_metrics: per-task metrics and the mean macro-F1."""

from __future__ import annotations

import numpy as np
import pytest

from surgellm_hf.training import (
    build_compute_metrics,
)


def test_compute_metrics_averages_per_task_macro_f1():
    from sklearn.metrics import f1_score
    from transformers import EvalPrediction

    logits = np.array([[1, 0], [0, 1], [0, 1], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    labels = np.array([0, 1, 0, 0, 1, 1])
    tids = np.array([0, 0, 0, 1, 1, 1])
    out = build_compute_metrics({"a": 2, "b": 2})(
        EvalPrediction(predictions=logits, label_ids=(labels, tids))
    )
    f1_a = f1_score([0, 1, 0], [0, 1, 1], average="macro")
    assert out["a_macro_f1"] == pytest.approx(f1_a)
    assert out["b_macro_f1"] == pytest.approx(1.0)
    assert out["avg_macro_f1"] == pytest.approx((f1_a + 1.0) / 2)
