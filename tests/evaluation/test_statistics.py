"""Statistics against hand formulas and scikit-learn: aggregation over seeds, Welch + BH, bootstrap CIs (2,000 resamples by default everywhere)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from surgellm_hf import evaluation as ev
from tests.evaluation._evaluation_fixtures import noisy_predictions as _noisy_predictions

# ----------------------------------------------------------------------------------------------- statistics


def test_aggregate_runs_mean_and_sample_sd():
    runs = [
        {"a": {"macro_f1": 0.90, "n": 10}, "b": {"macro_f1": 0.70, "n": 10}},
        {"a": {"macro_f1": 0.92, "n": 10}, "b": {"macro_f1": 0.72, "n": 10}},
        {"a": {"macro_f1": 0.94, "n": 10}, "b": {"macro_f1": 0.80, "n": 10}},
    ]
    agg = ev.aggregate_runs(runs)
    assert agg["a"]["macro_f1"]["mean"] == pytest.approx(0.92)
    assert agg["a"]["macro_f1"]["sd"] == pytest.approx(0.02)  # sqrt((0.0004 + 0 + 0.0004) / 2)
    assert agg["a"]["macro_f1"]["n"] == 3
    # average per run: 0.80, 0.82, 0.87 -> mean 0.83, sd sqrt((0.03^2 + 0.01^2 + 0.04^2) / 2)
    assert agg["average"]["macro_f1"]["mean"] == pytest.approx(0.83)
    assert agg["average"]["macro_f1"]["sd"] == pytest.approx(math.sqrt((0.0009 + 0.0001 + 0.0016) / 2))
    assert "n" not in agg["a"]
    assert math.isnan(ev.aggregate_runs(runs[:1])["a"]["macro_f1"]["sd"])
    with pytest.raises(ValueError, match="run 1 has tasks"):
        ev.aggregate_runs([runs[0], {"a": runs[0]["a"]}])


def test_benjamini_hochberg_hand_example():
    # sorted p: 0.01, 0.03, 0.04, 0.20 -> p*m/rank: 0.04, 0.06, 0.0533, 0.20 -> running min from the top
    adjusted, reject = ev.benjamini_hochberg([0.01, 0.04, 0.03, 0.20, float("nan")], alpha=0.05)
    assert adjusted[:4] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert math.isnan(adjusted[4])
    assert reject == [True, False, False, False, False]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ev.benjamini_hochberg([1.5])


def test_welch_matches_hand_formula():
    a, b = [0.90, 0.92, 0.94], [0.85, 0.86, 0.90]
    va, vb = 0.0004, 0.0007  # sample variances by hand
    se2 = va / 3 + vb / 3
    t = (0.92 - 0.87) / math.sqrt(se2)
    df = se2**2 / ((va / 3) ** 2 / 2 + (vb / 3) ** 2 / 2)
    p = 2 * stats.t.sf(abs(t), df)
    res = ev.welch_bh({"x": a, "y": [0.5, 0.6, 0.7]}, {"x": b, "y": [0.5, 0.61, 0.69]})
    assert res["x"]["t"] == pytest.approx(t)
    assert res["x"]["df"] == pytest.approx(df)
    assert res["x"]["p"] == pytest.approx(p)
    assert res["x"]["diff"] == pytest.approx(0.05)
    expected_adj, _ = ev.benjamini_hochberg([res["x"]["p"], res["y"]["p"]])
    assert [res["x"]["p_adj"], res["y"]["p_adj"]] == pytest.approx(expected_adj)
    assert res["y"]["reject"] is False


def test_welch_degenerate_keys_get_nan_and_skip_correction():
    res = ev.welch_bh(
        {"one": [0.9], "flat": [0.5, 0.5], "ok": [0.1, 0.2, 0.3]},
        {"one": [0.8, 0.7], "flat": [0.5, 0.5], "ok": [0.5, 0.6, 0.7]},
    )
    assert math.isnan(res["one"]["p"]) and math.isnan(res["flat"]["p"]) and res["one"]["reject"] is False
    assert res["ok"]["p_adj"] == pytest.approx(res["ok"]["p"])  # the only valid test: m = 1
    with pytest.raises(ValueError, match="key mismatch"):
        ev.welch_bh({"a": [1, 2]}, {"b": [1, 2]})


def test_confusion_metrics_equal_sklearn_on_resamples():
    y, p = _noisy_predictions(25, 0.6, seed=1, k=3)
    idx = np.random.default_rng(2).integers(0, 25, (300, 25))
    cm = ev.statistics._confusion_stacks(y, p, idx, 3)
    expected = {
        "macro_f1": [f1_score(y[i], p[i], average="macro", zero_division=0) for i in idx],
        "precision": [precision_score(y[i], p[i], average="macro", zero_division=0) for i in idx],
        "recall": [recall_score(y[i], p[i], average="macro", zero_division=0) for i in idx],
        "accuracy": [np.mean(y[i] == p[i]) for i in idx],
    }
    for metric, values in expected.items():
        np.testing.assert_allclose(
            ev.statistics._metric_from_confusion(cm, metric), values, rtol=0, atol=1e-12
        )


def test_rank_auc_equals_sklearn_on_resamples_with_ties():
    y, _ = _noisy_predictions(40, 0.5, seed=3)
    score = np.round(np.random.default_rng(4).random(40) + 0.3 * y, 1)  # rounding creates ties
    idx = np.random.default_rng(5).integers(0, 40, (100, 40))
    expected = [roc_auc_score(y[i], score[i]) for i in idx]
    np.testing.assert_allclose(ev.statistics._auc_resampled(y, score, idx), expected, atol=1e-12)


def test_bootstrap_ci_percentile_matches_slow_sklearn_loop_and_is_deterministic():
    y, p = _noisy_predictions(60, 0.8, seed=6)
    ci = ev.bootstrap_ci(y, p, n_resamples=500, seed=7)
    # independent slow implementation: the same resample indices, scikit-learn per resample
    idx = np.random.default_rng(7).integers(0, 60, (500, 60))
    values = [f1_score(y[i], p[i], average="macro", zero_division=0) for i in idx]
    assert ci["low"] == pytest.approx(np.percentile(values, 2.5))
    assert ci["high"] == pytest.approx(np.percentile(values, 97.5))
    assert ci["estimate"] == pytest.approx(f1_score(y, p, average="macro"))
    assert ci["low"] < ci["estimate"] < ci["high"]
    assert ev.bootstrap_ci(y, p, n_resamples=500, seed=7) == ci
    assert ev.bootstrap_ci(y, p, n_resamples=500, seed=8) != ci
    narrow = ev.bootstrap_ci(y, p, n_resamples=500, seed=7, level=0.5)
    assert ci["low"] < narrow["low"] < narrow["high"] < ci["high"]


def test_bootstrap_over_several_runs_and_roc_auc():
    y, p1 = _noisy_predictions(80, 0.7, seed=9)
    _, p2 = _noisy_predictions(80, 0.9, seed=9)
    both = ev.bootstrap_ci(y, np.stack([p1, p2]), n_resamples=300)
    assert both["estimate"] == pytest.approx(
        (f1_score(y, p1, average="macro") + f1_score(y, p2, average="macro")) / 2
    )
    assert both["low"] < both["estimate"] < both["high"]
    score = np.clip(0.5 * y + np.random.default_rng(0).random(80) * 0.7, 0, 1)
    auc = ev.bootstrap_ci(y, p1, metric="roc_auc", y_score=score, n_resamples=300)
    assert auc["estimate"] == pytest.approx(roc_auc_score(y, score))
    assert auc["low"] <= auc["estimate"] <= auc["high"]
    probs = np.stack([1 - score, score], axis=1)  # class probabilities give the same interval
    assert ev.bootstrap_ci(y, p1, metric="roc_auc", y_score=probs, n_resamples=300) == auc
    two = ev.bootstrap_ci(
        y, np.stack([p1, p1]), metric="roc_auc", y_score=np.stack([probs, probs]), n_resamples=300
    )
    assert two["low"] == pytest.approx(auc["low"]) and two["high"] == pytest.approx(auc["high"])
    with pytest.raises(ValueError, match="binary tasks only"):
        ev.bootstrap_ci([0, 1, 2] * 40, [0] * 120, metric="roc_auc", y_score=[0.5] * 120, n_resamples=100)
    with pytest.raises(ValueError, match="needs y_score"):
        ev.bootstrap_ci(y, p1, metric="roc_auc")
    with pytest.raises(ValueError, match="unknown metric"):
        ev.bootstrap_ci(y, p1, metric="f2")
    with pytest.raises(ValueError, match="shape"):
        ev.bootstrap_ci(y, p1[:-1])


def _macro_f1_by_hand(y: np.ndarray, p: np.ndarray) -> float:
    """Macro-F1 written out: mean over the classes present in y or p of 2TP / (2TP + FP + FN)."""
    scores = []
    for c in np.union1d(y, p):
        tp = np.sum((y == c) & (p == c))
        fp = np.sum((y != c) & (p == c))
        fn = np.sum((y == c) & (p != c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def _percentile_ci_by_hand(y: np.ndarray, p: np.ndarray, rng: np.random.Generator, n_resamples: int):
    idx = rng.integers(0, len(y), (n_resamples, len(y)))
    values = [_macro_f1_by_hand(y[i], p[i]) for i in idx]
    return np.percentile(values, 2.5), np.percentile(values, 97.5)


def test_bootstrap_ci_default_is_2000_resamples():
    """docs/method.md#training-protocol: 2,000 resamples; every other test passes its own count."""
    y, p = _noisy_predictions(40, 0.75, seed=11)
    ci = ev.bootstrap_ci(y, p)  # all defaults: macro-F1, 2,000 resamples, seed 0, 95 %
    assert ci["n_resamples"] == 2000 and ci["level"] == 0.95
    low, high = _percentile_ci_by_hand(y, p, np.random.default_rng(0), 2000)
    assert ci["low"] == pytest.approx(low) and ci["high"] == pytest.approx(high)


def test_compare_runs_default_is_2000_resamples():
    y, p = _noisy_predictions(40, 0.75, seed=12)
    record = ev.RunRecord(
        "baseline",
        0,
        {"t": {"test": {"macro_f1": f1_score(y, p, average="macro")}}},
        predictions={"t": {"test": {"y_true": y, "y_pred": p, "score": None, "gate": None, "id": None}}},
    )
    cell = ev.compare_runs([record], baseline=None).cells["baseline"]["t"]
    # the first task's resamples are drawn from default_rng([seed, task index]) = default_rng([0, 0])
    low, high = _percentile_ci_by_hand(y, p, np.random.default_rng([0, 0]), 2000)
    assert cell["ci_low"] == pytest.approx(low) and cell["ci_high"] == pytest.approx(high)


def test_cli_compare_default_is_2000_resamples():
    from surgellm_hf.cli import build_parser

    assert build_parser().parse_args(["compare", "some_run"]).n_resamples == 2000
