"""Statistics over runs and examples (docs/method.md#training-protocol): mean ± SD over seeds, Welch t-tests with Benjamini-Hochberg
correction, and percentile bootstrap confidence intervals (vectorised, equal to scikit-learn's metrics)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .metrics import AVERAGE, METRICS, _as_labels, roc_auc, task_metrics


def aggregate_runs(
    results: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and sample SD (ddof=1; NaN for a single run) over runs, per task and metric.

    Each result maps task -> metric -> value (one split of one seed). Adds the key "average" holding, for
    each metric every task has, the across-run statistics of the per-run unweighted task mean.
    """
    if not results:
        raise ValueError("no runs to aggregate")
    tasks = list(results[0])
    for i, r in enumerate(results):
        if set(r) != set(tasks):
            raise ValueError(f"run {i} has tasks {sorted(r)} but run 0 has {sorted(tasks)}")
    if AVERAGE in tasks:
        raise ValueError(f"a task may not be named {AVERAGE!r}")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        metrics = [m for m in results[0][task] if all(m in r[task] for r in results)]
        out[task] = {m: _mean_sd([r[task][m] for r in results]) for m in metrics if m != "n"}
    common = [m for m in METRICS if all(m in out[t] for t in tasks)]
    out[AVERAGE] = {m: _mean_sd([np.mean([float(r[t][m]) for t in tasks]) for r in results]) for m in common}
    return out


def _mean_sd(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(np.mean(v)),
        "sd": float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
        "n": int(len(v)),
    }


def benjamini_hochberg(p_values: Sequence[float], alpha: float = 0.05) -> tuple[list[float], list[bool]]:
    """BH-adjusted p-values (scipy.stats.false_discovery_control) and rejections at `alpha`; NaN p-values stay
    NaN, are never rejected and do not count towards the number of tests."""
    from scipy import stats

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    p = np.asarray(p_values, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    adjusted = np.full(p.shape, np.nan)
    valid = ~np.isnan(p)
    if valid.any():
        adjusted[valid] = stats.false_discovery_control(p[valid], method="bh")
    return adjusted.tolist(), [bool(a <= alpha) for a in adjusted]


def welch_bh(
    a_scores_by_key: Mapping[str, Sequence[float]],
    b_scores_by_key: Mapping[str, Sequence[float]],
    alpha: float = 0.05,
) -> dict[str, dict[str, float | bool]]:
    """Welch t-test of a vs b for every key, Benjamini-Hochberg adjusted over all keys together.

    Returns per key: mean_a, mean_b, diff (a - b), t, df (Welch-Satterthwaite), p, p_adj, reject
    (p_adj <= alpha). Keys with fewer than two values on a side, or zero variance on both, get NaN p and take
    no part in the correction.
    """
    from scipy import stats

    if set(a_scores_by_key) != set(b_scores_by_key):
        raise ValueError(f"key mismatch: {sorted(a_scores_by_key)} vs {sorted(b_scores_by_key)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    out: dict[str, dict[str, float | bool]] = {}
    for key in a_scores_by_key:
        a = np.asarray(a_scores_by_key[key], dtype=np.float64)
        b = np.asarray(b_scores_by_key[key], dtype=np.float64)
        row: dict[str, float | bool] = {
            "mean_a": float(a.mean()) if a.size else float("nan"),
            "mean_b": float(b.mean()) if b.size else float("nan"),
        }
        row["diff"] = row["mean_a"] - row["mean_b"]
        if a.size >= 2 and b.size >= 2 and (a.var(ddof=1) + b.var(ddof=1)) > 0:
            res = stats.ttest_ind(a, b, equal_var=False)
            row.update(t=float(res.statistic), df=float(res.df), p=float(res.pvalue))
        else:
            row.update(t=float("nan"), df=float("nan"), p=float("nan"))
        out[key] = row
    adjusted, reject = benjamini_hochberg([float(out[k]["p"]) for k in out], alpha)
    for key, p_adj, rej in zip(out, adjusted, reject):
        out[key]["p_adj"], out[key]["reject"] = p_adj, rej
    return out


def _confusion_stacks(y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices [B, k, k] of the resamples idx [B, n] (rows: true class, columns: predicted)."""
    codes = (y_true * k + y_pred)[idx]
    offsets = (np.arange(idx.shape[0]) * k * k)[:, None]
    return np.bincount((codes + offsets).ravel(), minlength=idx.shape[0] * k * k).reshape(-1, k, k)


def _metric_from_confusion(cm: np.ndarray, metric: str) -> np.ndarray:
    """Vectorised metric over confusion stacks, equal to scikit-learn's (labels present, zero_division=0)."""
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    true_n, pred_n = cm.sum(axis=2), cm.sum(axis=1)
    if metric == "accuracy":
        return tp.sum(axis=1) / cm.sum(axis=(1, 2))
    present = (true_n + pred_n) > 0
    denom = {"macro_f1": true_n + pred_n, "precision": pred_n, "recall": true_n}[metric]
    numer = 2 * tp if metric == "macro_f1" else tp
    per_class = np.divide(numer, denom, out=np.zeros_like(tp), where=denom > 0)
    return (per_class * present).sum(axis=1) / present.sum(axis=1)


def _auc_resampled(y_true: np.ndarray, score: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Binary ROC-AUC of each resample idx [B, n] via the Mann-Whitney rank sum (ties count one half, as in
    scikit-learn); NaN where a resample holds one class."""
    from scipy.stats import rankdata

    pos = y_true[idx] == 1
    ranks = rankdata(score[idx], axis=1)
    n1 = pos.sum(axis=1).astype(np.float64)
    n0 = idx.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(pos, ranks, 0.0).sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _bootstrap_values(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: str,
    n_resamples: int,
    rng: np.random.Generator,
    y_score: Any = None,
) -> np.ndarray:
    """Resampled statistics (mean over the runs in y_pred [runs, n]) for `n_resamples` index resamples."""
    n = len(y_true)
    k = int(max(y_true.max(), y_pred.max())) + 1
    chunk = max(1, 4_000_000 // n)  # bounds the [chunk, n] index matrix
    parts = []
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, (min(chunk, n_resamples - start), n))
        if metric == "roc_auc":
            auc = np.mean([_auc_resampled(y_true, s, idx) for s in y_score], axis=0)
            parts.append(auc[np.isfinite(auc)])  # single-class resamples have no AUC
        else:
            stacks = [_metric_from_confusion(_confusion_stacks(y_true, p, idx, k), metric) for p in y_pred]
            parts.append(np.mean(stacks, axis=0))
    return np.concatenate(parts)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if values.size == 0:
        raise ValueError("no usable bootstrap resamples (y_true holds a single class)")
    low, high = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def _check_bootstrap_args(metric: str, n_resamples: int, level: float) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 100:
        raise ValueError(f"n_resamples must be an integer >= 100, got {n_resamples!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def _prepare_bootstrap(
    y_true: Any, y_pred: Any, metric: str, y_score: Any
) -> tuple[np.ndarray, np.ndarray, Any]:
    y = _as_labels(y_true, "y_true", None)
    preds = np.asarray(y_pred)
    preds = preds[None, :] if preds.ndim == 1 else preds
    if preds.ndim != 2 or preds.shape[1] != len(y):
        raise ValueError(
            f"y_pred must have shape [{len(y)}] or [runs, {len(y)}], got {np.asarray(y_pred).shape}"
        )
    preds = np.stack([_as_labels(p, "y_pred", None) for p in preds])
    scores = None
    if metric == "roc_auc":
        if y_score is None:
            raise ValueError("metric 'roc_auc' needs y_score")
        if np.any(y > 1):
            raise ValueError("bootstrap of roc_auc supports binary tasks only")
        scores = np.asarray(y_score, dtype=np.float64)
        if scores.ndim == np.ndim(y_pred) + 1 and scores.shape[-1] == 2:  # class probabilities -> P(class 1)
            scores = scores[..., 1]
        scores = scores[None, :] if scores.ndim == 1 else scores
        if scores.shape != preds.shape:
            raise ValueError(
                f"y_score must hold binary scores ([n] or [n, 2] per run) matching y_pred {preds.shape}, "
                f"got {np.shape(y_score)}"
            )
    return y, preds, scores


def _point_estimate(y: np.ndarray, preds: np.ndarray, metric: str, scores: Any) -> float:
    if metric == "roc_auc":
        return float(np.mean([roc_auc(y, s, 2) for s in scores]))
    return float(np.mean([task_metrics(y, p)[metric] for p in preds]))


def bootstrap_ci(
    y_true: Any,
    y_pred: Any,
    metric: str = "macro_f1",
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    y_score: Any | None = None,
) -> dict[str, float]:
    """Percentile bootstrap CI over examples for one task's metric; deterministic for a seed.

    y_pred may be [n] or [runs, n] (several seeds predicting the same examples): the statistic is then the
    mean over runs, resampled with shared example indices. Counting metrics are computed from resampled
    confusion matrices and roc_auc (binary tasks; y_score P(class 1) as [n] / [runs, n], or class
    probabilities [n, 2] / [runs, n, 2]) from rank sums, both equal to
    scikit-learn's and vectorised for speed; single-class resamples (no AUC) are dropped. Returns estimate (scikit-learn,
    full data), low, high, level and n_resamples (used).
    """
    _check_bootstrap_args(metric, n_resamples, level)
    y, preds, scores = _prepare_bootstrap(y_true, y_pred, metric, y_score)
    values = _bootstrap_values(y, preds, metric, n_resamples, np.random.default_rng(seed), scores)
    low, high = _percentiles(values, level)
    return {
        "estimate": _point_estimate(y, preds, metric, scores),
        "low": low,
        "high": high,
        "level": level,
        "n_resamples": int(values.size),
    }
