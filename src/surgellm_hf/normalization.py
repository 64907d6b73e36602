"""Per-task feature statistics: standard and Instance-Weighted Normalization (IWN, METHOD.md §3).

Fitted once on training features, then frozen. Copied to the Hub as remote code: numpy/torch only.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def _as_numpy(x, name: str, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be numeric array-like: {err}") from None


def fit_normalizer(
    features,
    labels,
    task_ids,
    num_tasks: int,
    method: str = "iwn",
    ddof: int = 0,
    task_names: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return per-task mean and std arrays of shape ``[num_tasks, n_features]``.

    ``method="standard"``: mean and std over all rows of the task. ``method="iwn"``: the unweighted average over
    classes of the per-class means and of the per-class standard deviations (not a pooled std), which removes the
    class prior. Population std (``ddof=0``) by default, as METHOD.md fixes. A dimension whose std is 0 gets
    std 1 (centred only, scikit-learn's convention), since (s - mean) / eps would explode on unseen values.
    """
    if method not in ("standard", "iwn"):
        raise ValueError(f"`method` must be 'standard' or 'iwn', got {method!r}.")
    feats = _as_numpy(features, "features", np.float64)
    tids = _as_numpy(task_ids, "task_ids", np.float64)
    labs = _as_numpy(labels, "labels", np.float64) if labels is not None else None
    if feats.ndim != 2:
        raise ValueError(f"`features` must be 2-D [n_rows, n_features], got shape {feats.shape}.")
    n = feats.shape[0]
    if tids.shape != (n,):
        raise ValueError(f"`task_ids` must have shape ({n},) to match features, got {tids.shape}.")
    if not np.isfinite(feats).all():
        raise ValueError("`features` contains NaN or infinite values.")
    if np.any(tids != np.round(tids)) or np.any((tids < 0) | (tids >= num_tasks)):
        raise ValueError(f"`task_ids` must be integers in 0..{num_tasks - 1}.")
    tids = tids.astype(np.int64)
    if method == "iwn":
        if labs is None:
            raise ValueError("IWN needs `labels` to fit the per-class statistics.")
        if labs.shape != (n,):
            raise ValueError(f"`labels` must have shape ({n},) to match features, got {labs.shape}.")
        if np.any(labs != np.round(labs)):
            raise ValueError("`labels` must be integers.")
        labs = labs.astype(np.int64)
    names = task_names or [str(t) for t in range(num_tasks)]
    missing = [names[t] for t in range(num_tasks) if not np.any(tids == t)]
    if missing:
        raise ValueError(
            f"No rows for task(s) {missing}: every task needs training features to fit statistics."
        )
    if method == "iwn":
        for t in range(num_tasks):
            classes = np.unique(labs[tids == t])
            if len(classes) < 2:
                raise ValueError(
                    f"IWN needs at least two classes per task; task {names[t]!r} has only label(s) {classes.tolist()}."
                )

    mean = np.zeros((num_tasks, feats.shape[1]), dtype=np.float64)
    std = np.zeros_like(mean)
    for t in range(num_tasks):
        rows = feats[tids == t]
        if method == "standard":
            mean[t] = rows.mean(axis=0)
            std[t] = rows.std(axis=0, ddof=ddof)
        else:
            row_labels = labs[tids == t]
            classes = np.unique(row_labels)
            mean[t] = np.mean([rows[row_labels == k].mean(axis=0) for k in classes], axis=0)
            std[t] = np.mean([rows[row_labels == k].std(axis=0, ddof=ddof) for k in classes], axis=0)
    if not np.isfinite(std).all():
        raise ValueError(f"Standard deviation undefined (a class with <= ddof={ddof} rows).")
    zero = [(names[t], int(j)) for t, j in zip(*np.nonzero(std == 0))]
    if zero:
        # scikit-learn's StandardScaler convention: a constant dimension is centred, not scaled. The literal
        # formula would give (s - mean) / eps = 1e6 for any value unseen in training.
        std[std == 0] = 1.0
        warnings.warn(
            f"{len(zero)} feature dimension(s) are constant within their task's training rows (task/feature "
            f"{zero[:5]}{' ...' if len(zero) > 5 else ''}); their std is set to 1, so they are only centred.",
            stacklevel=2,
        )
    return mean.astype(np.float32), std.astype(np.float32)


def apply_normalizer(
    features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, task_ids: torch.Tensor, eps: float
):
    """Normalize raw features row-wise with the statistics of each row's task: (s - mu_t) / (sigma_t + eps)."""
    return (features - mean[task_ids]) / (std[task_ids] + eps)


__all__ = ["fit_normalizer", "apply_normalizer"]
