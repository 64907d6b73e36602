"""Logits split by task: each task's own columns and softmax."""

from __future__ import annotations

import numpy as np
import torch

from surgellm_hf.evaluation import per_task_predictions


def test_per_task_predictions_use_only_each_tasks_columns():
    low = torch.finfo(torch.float32).min
    logits = np.array([[2.0, 0.0, low], [0.0, 1.0, 3.0], [0.0, 5.0, low]], dtype=np.float32)
    pred = per_task_predictions(logits, np.array([0, 1, 0]), {"a": 2, "b": 3})
    assert pred["a"]["index"].tolist() == [0, 2] and pred["a"]["y_pred"].tolist() == [0, 1]
    np.testing.assert_allclose(pred["a"]["score"][0], [np.exp(2) / (np.exp(2) + 1), 1 / (np.exp(2) + 1)])
    assert pred["b"]["y_pred"].tolist() == [2]
    np.testing.assert_allclose(pred["b"]["score"][0].sum(), 1.0)
