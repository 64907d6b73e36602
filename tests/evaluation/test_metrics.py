"""Per-task metrics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from surgellm_hf import evaluation as ev

# ----------------------------------------------------------------------------------------------- metrics


def test_task_metrics_match_hand_computation():
    # class 0: tp 1 fp 1 fn 1 -> P=R=F1=1/2; class 1: tp 2 fp 1 fn 1 -> 2/3; class 2: tp 1 -> 1
    m = ev.task_metrics([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], num_labels=3)
    assert m["macro_f1"] == pytest.approx(13 / 18)
    assert m["precision"] == pytest.approx(13 / 18)
    assert m["recall"] == pytest.approx(13 / 18)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["n"] == 6
    assert math.isnan(m["roc_auc"])  # no scores given


def test_task_metrics_zero_division_when_a_class_is_never_predicted():
    # class 1 never predicted: its precision counts 0; P0 = 2/4, R0 = 1, F1_0 = 2/3, F1_1 = 0
    m = ev.task_metrics([0, 0, 1, 1], [0, 0, 0, 0])
    assert m["precision"] == pytest.approx(0.25)
    assert m["recall"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx(1 / 3)


def test_binary_roc_auc_by_pair_counting():
    # positive/negative pairs: 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4
    assert ev.task_metrics([0, 0, 1, 1], [0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8])["roc_auc"] == pytest.approx(
        0.75
    )
    # a tie counts one half -> 3.5/4; 2-D probabilities use the class-1 column
    probs = [[0.9, 0.1], [0.6, 0.4], [0.6, 0.4], [0.2, 0.8]]
    assert ev.task_metrics([0, 0, 1, 1], [0, 1, 0, 1], probs)["roc_auc"] == pytest.approx(0.875)


def test_multiclass_roc_auc_is_ovr_macro_and_nan_for_one_class():
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2] * 10)
    logits = rng.normal(size=(30, 3)) + np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = roc_auc_score(y, probs, multi_class="ovr", average="macro")
    assert ev.task_metrics(y, probs.argmax(1), probs, num_labels=3)["roc_auc"] == pytest.approx(expected)
    assert math.isnan(ev.task_metrics([1, 1, 1], [1, 0, 1], [0.2, 0.3, 0.9])["roc_auc"])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y_true": [0, 1], "y_pred": [0]}, ValueError, "2 entries but y_pred has 1"),
        ({"y_true": [], "y_pred": []}, ValueError, "non-empty"),
        ({"y_true": [0, 1, 2], "y_pred": [0, 1, 1], "num_labels": 2}, ValueError, r"outside 0\.\.1"),
        ({"y_true": ["a", "b"], "y_pred": [0, 1]}, TypeError, "integer class indices"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "y_score": [[2.0, 1.0], [0.5, 3.0]]}, ValueError, "softmax"),
        (
            {"y_true": [0, 1], "y_pred": [0, 1], "y_score": [[0.5, 0.2, 0.3]] * 2, "num_labels": 2},
            ValueError,
            "shape",
        ),
        ({"y_true": [0, 1], "y_pred": [0, 1], "y_score": [0.1, float("nan")]}, ValueError, "NaN"),
    ],
)
def test_task_metrics_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        ev.task_metrics(**kwargs)


def test_summarize_tasks():
    per_task = {"a": {"macro_f1": 0.8, "accuracy": 0.9}, "b": {"macro_f1": 0.6, "accuracy": 0.7}}
    assert ev.summarize_tasks(per_task) == {
        "avg_macro_f1": pytest.approx(0.7),
        "avg_accuracy": pytest.approx(0.8),
    }
    with pytest.raises(ValueError, match="no 'macro_f1'"):
        ev.summarize_tasks({"a": {"accuracy": 1.0}})
