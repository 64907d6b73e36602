"""Comparing variants over seeds from run folders."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from surgellm_hf import evaluation as ev
from tests.evaluation._evaluation_fixtures import write_runs as _write_runs


def test_compare_runs_from_dirs(tmp_path):
    dirs, truth = _write_runs(tmp_path, {"baseline": 0.7, "IWN": 0.9})
    comp = ev.compare_runs(dirs, baseline="baseline", n_resamples=300)
    assert (
        comp.variants == ["baseline", "IWN"] and comp.tasks == ["t1", "t2"] and comp.seeds["IWN"] == [0, 1, 2]
    )
    for variant in comp.variants:
        for task in comp.tasks:
            values = [truth[(variant, s, task)] for s in (0, 1, 2)]
            cell = comp.cells[variant][task]
            assert cell["mean"] == pytest.approx(np.mean(values)) and cell["sd"] == pytest.approx(
                np.std(values, ddof=1)
            )
            assert cell["ci_low"] < cell["mean"] < cell["ci_high"]
        avg = [np.mean([truth[(variant, s, t)] for t in comp.tasks]) for s in (0, 1, 2)]
        assert comp.cells[variant]["average"]["mean"] == pytest.approx(np.mean(avg))
        assert (
            comp.cells[variant]["average"]["ci_low"]
            < np.mean(avg)
            < comp.cells[variant]["average"]["ci_high"]
        )
    iwn = comp.cells["IWN"]["t1"]
    p = stats.ttest_ind(iwn["values"], comp.cells["baseline"]["t1"]["values"], equal_var=False).pvalue
    assert iwn["p"] == pytest.approx(p) and iwn["reject"] and iwn["diff"] > 0.1
    family = [comp.cells["IWN"][c]["p"] for c in comp.columns]
    assert [comp.cells["IWN"][c]["p_adj"] for c in comp.columns] == pytest.approx(
        ev.benjamini_hochberg(family)[0]
    )
    assert "p" not in comp.cells["baseline"]["t1"]
    with pytest.raises(ValueError, match="baseline 'nope' not among"):
        ev.compare_runs(dirs, baseline="nope")
    with pytest.raises(ValueError, match="no train macro_f1"):
        ev.compare_runs(dirs, split="train")
    test_auc = ev.compare_runs(dirs, metric="roc_auc", n_resamples=200)
    for task in ("t1", "t2"):
        cell = test_auc.cells["IWN"][task]
        assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
    assert test_auc.cells["IWN"]["average"]["ci_low"] is None  # no pooled CI across tasks for AUC
    auc = ev.compare_runs(dirs, split="validation", metric="roc_auc")  # no scores on validation: NaN, no CI
    assert math.isnan(auc.cells["IWN"]["t1"]["mean"]) and auc.cells["IWN"]["t1"]["ci_low"] is None


def test_compare_runs_without_predictions_and_mismatched_tasks():
    recs = [ev.RunRecord("baseline", s, {"a": {"test": {"macro_f1": 0.7 + s / 100}}}) for s in range(2)]
    recs += [ev.RunRecord("S", s, {"a": {"test": {"macro_f1": 0.8 + s / 50}}}) for s in range(2)]
    comp = ev.compare_runs(recs)
    assert comp.cells["S"]["a"]["ci_low"] is None and comp.cells["S"]["a"]["mean"] == pytest.approx(0.81)
    with pytest.raises(ValueError, match="has tasks"):
        ev.compare_runs([*recs, ev.RunRecord("S", 9, {"b": {"test": {"macro_f1": 0.5}}})])


def test_compare_pairs_gives_welch_differences_with_their_confidence_intervals(tmp_path):
    """Each pair and column: a - b, the Welch CI of the difference (scipy's), p and BH q over every pair test;
    a CI that covers 0 says the two are within noise."""
    dirs, truth = _write_runs(tmp_path, {"text": 0.7, "tokens": 0.9, "soft": 0.72})
    grouped = {}
    for d in dirs:
        rec = ev.load_run(d)
        grouped.setdefault(rec.variant, []).append(rec)
    pairs = [("tokens", "text"), ("soft", "text"), ("soft", "tokens")]
    comp = ev.compare_pairs(grouped, pairs, split="test", level=0.9)
    assert comp.pairs == pairs and comp.columns == ["t1", "t2", "average"]
    p_values = []
    for a, b in pairs:
        for col in comp.columns:
            if col == "average":
                va, vb = (
                    [np.mean([truth[(v, s, t)] for t in ("t1", "t2")]) for s in (0, 1, 2)] for v in (a, b)
                )
            else:
                va, vb = ([truth[(v, s, col)] for s in (0, 1, 2)] for v in (a, b))
            res = stats.ttest_ind(va, vb, equal_var=False)
            low, high = res.confidence_interval(0.9)
            cell = comp.cells[f"{a} vs {b}"][col]
            assert cell["diff"] == pytest.approx(np.mean(va) - np.mean(vb))
            assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((low, high))
            assert cell["p"] == pytest.approx(res.pvalue) and cell["covers_zero"] == (low <= 0 <= high)
            p_values.append(res.pvalue)
    q = stats.false_discovery_control(p_values, method="bh")
    got = [comp.cells[f"{a} vs {b}"][c]["p_adj"] for a, b in pairs for c in comp.columns]
    assert got == pytest.approx(list(q))
    assert comp.cells["tokens vs text"]["average"]["covers_zero"] is False  # 0.9 vs 0.7 accuracy: a real gap
    with pytest.raises(ValueError, match=r"without runs; variants"):
        ev.compare_pairs(grouped, [("text", "nope")], split="test")
    with pytest.raises(ValueError, match="compares a variant with itself"):
        ev.compare_pairs(grouped, [("text", "text")], split="test")
