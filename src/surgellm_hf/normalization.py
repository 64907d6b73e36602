"""Per-task feature statistics: standard and Instance-Weighted Normalization (IWN, docs/method.md#normalization).

Fitted once on training features, then frozen. Copied to the Hub as remote code: numpy/torch and its flat sibling
`problem_types` only.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .losses_surge import labels_as_matrix
from .problem_types import DEFAULT_PROBLEM_TYPE, info, label_matrix


def _as_numpy(x, name: str, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be numeric array-like: {err}") from None


def regression_bins(y: np.ndarray, num_bins: int, task: str = "") -> np.ndarray:
    """Quantile-bin ids of regression targets (IWN's classes for a regression task).

    Edges are the ``k / num_bins`` quantiles (k = 1..num_bins-1); a row goes to the bin of the edges it reaches
    (``np.searchsorted(edges, y, side="right")``). Tied edges (many equal targets) merge their bins, so a task may get
    fewer bins than asked; fewer than two distinct bins is an error.
    """
    edges = np.unique(np.quantile(y, np.arange(1, num_bins) / num_bins))
    bins = np.searchsorted(edges, y, side="right")
    if len(np.unique(bins)) < 2:
        raise ValueError(
            f"IWN on regression task {task!r}: its training targets fall into one quantile bin (values "
            f"{np.unique(y)[:5].tolist()}); IWN needs at least two bins. Use norm='standard'."
        )
    return bins


def _class_stats(rows: np.ndarray, classes: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """IWN statistics: unweighted averages over classes of the per-class means and per-class stds."""
    kinds = np.unique(classes)
    mean = np.mean([rows[classes == k].mean(axis=0) for k in kinds], axis=0)
    std = np.mean([rows[classes == k].std(axis=0, ddof=ddof) for k in kinds], axis=0)
    return mean, std


def _iwn_task(
    rows: np.ndarray, y: np.ndarray, kind: str, width: int, bins: int, task: str, ddof: int
) -> tuple[np.ndarray, np.ndarray]:
    """IWN statistics of one task from its rows and its label matrix rows, by its type's label form: quantile bins
    of a value, each label's two classes of a multi-hot row, or the class ids."""
    entry = info(kind)
    if not entry.has_classes:
        target = y[:, 0]
        if not np.isfinite(target).all():
            raise ValueError(f"{entry.title} task {task!r} has non-finite training targets.")
        return _class_stats(rows, regression_bins(target, bins, task), ddof)
    if entry.multi_hot:
        if y.shape[1] < width or not np.isin(y[:, :width], (0.0, 1.0)).all():
            raise ValueError(f"{entry.title} task {task!r}: labels must be multi-hot rows of length {width}.")
        per_label = []
        for j in range(width):
            positive = y[:, j] == 1
            if positive.all() or not positive.any():
                raise ValueError(
                    f"IWN on {entry.title.lower()} task {task!r}: label {j} has no "
                    f"{'negative' if positive.all() else 'positive'} training row; each label needs both."
                )
            per_label.append(_class_stats(rows, positive.astype(np.int64), ddof))
        return np.mean([m for m, _ in per_label], axis=0), np.mean([s for _, s in per_label], axis=0)
    labels = y[:, 0]
    if np.any(labels != np.round(labels)):
        raise ValueError("`labels` must be integers.")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(
            f"IWN needs at least two classes per task; task {task!r} has only label(s) "
            f"{classes.astype(np.int64).tolist()}."
        )
    return _class_stats(rows, labels.astype(np.int64), ddof)


def fit_normalizer(
    features,
    labels,
    task_ids,
    num_tasks: int,
    method: str = "iwn",
    ddof: int = 0,
    task_names: list[str] | None = None,
    problem_types: list[str] | None = None,
    num_labels: list[int] | None = None,
    num_bins: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Return per-task mean and std arrays of shape ``[num_tasks, n_features]``.

    ``method="standard"``: mean and std over all rows of the task (every problem type). ``method="iwn"``: the
    unweighted average over classes of the per-class means and of the per-class standard deviations (not a pooled
    std), which removes the class prior. Classes by problem type (``problem_types``, default all single-label):
    single-label, the labels; multi-label, each label j's positive and negative rows (the two-class statistics of
    each label, then averaged over labels; a label without a positive or a negative row is an error); regression,
    ``num_bins`` quantile bins of the target (see `regression_bins`). ``labels`` are class ids or the padded
    label matrix (`label_matrix`; ``num_labels`` gives each multi-label task's width). Population std (``ddof=0``)
    by default, as docs/method.md#normalization fixes. A dimension whose std is 0 gets std 1 (centred only, scikit-learn's
    convention), since (s - mean) / eps would explode on unseen values.
    """
    if method not in ("standard", "iwn"):
        raise ValueError(f"`method` must be 'standard' or 'iwn', got {method!r}.")
    feats = _as_numpy(features, "features", np.float64)
    tids = _as_numpy(task_ids, "task_ids", np.float64)
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
    kinds = list(problem_types or [DEFAULT_PROBLEM_TYPE] * num_tasks)
    widths = list(num_labels or [1] * num_tasks)
    y = None
    if method == "iwn":
        if labels is None:
            raise ValueError("IWN needs `labels` to fit the per-class statistics.")
        try:
            y = label_matrix(labels)
        except (TypeError, ValueError) as err:
            raise TypeError(f"`labels` must be numeric array-like: {err}") from None
        if y.shape[0] != n:
            raise ValueError(f"`labels` must have shape ({n},) to match features, got {y.shape}.")
    names = task_names or [str(t) for t in range(num_tasks)]
    missing = [names[t] for t in range(num_tasks) if not np.any(tids == t)]
    if missing:
        raise ValueError(
            f"No rows for task(s) {missing}: every task needs training features to fit statistics."
        )
    mean = np.zeros((num_tasks, feats.shape[1]), dtype=np.float64)
    std = np.zeros_like(mean)
    for t in range(num_tasks):
        rows = feats[tids == t]
        if method == "standard":
            mean[t], std[t] = rows.mean(axis=0), rows.std(axis=0, ddof=ddof)
        else:
            mean[t], std[t] = _iwn_task(rows, y[tids == t], kinds[t], widths[t], num_bins, names[t], ddof)
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


def fit_config_normalizer(
    config, features, labels, task_ids, method: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of `fit_normalizer` for a `SurgeConfig`'s tasks, after the model's own checks: the method
    (default ``config.norm``), the feature width, the labels by task type. Task ids may be ids or task names."""
    method = method or config.norm
    if method == "none":
        raise ValueError("config.norm is 'none': there are no statistics to fit.")
    if isinstance(task_ids, (list, tuple)) and task_ids and isinstance(task_ids[0], str):
        task_ids = [config.task_id(t) for t in task_ids]
    if hasattr(features, "shape") and len(features.shape) == 2 and features.shape[1] != config.num_features:
        raise ValueError(
            f"features have {features.shape[1]} columns but the model expects num_features="
            f"{config.num_features}; does the lexicon match the model?"
        )
    tids = torch.as_tensor(task_ids).detach().cpu().numpy()
    labs = None if labels is None else label_matrix(labels)
    if labs is not None and labs.shape[0] == tids.shape[0] and len(tids):
        # the model's own label checks, by task type (class ids in range, multi-hot 0/1, finite targets)
        labels_as_matrix(config, torch.from_numpy(labs), torch.as_tensor(tids).long())
    return fit_normalizer(
        features,
        labs,
        tids,
        config.num_tasks,
        method=method,
        task_names=config.task_names,
        problem_types=list(config.task_problem_types.values()),
        num_labels=list(config.tasks.values()),
        num_bins=config.iwn_regression_bins,
    )


def apply_normalizer(
    features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, task_ids: torch.Tensor, eps: float
):
    """Normalize raw features row-wise with the statistics of each row's task: (s - mu_t) / (sigma_t + eps)."""
    return (features - mean[task_ids]) / (std[task_ids] + eps)


__all__ = ["fit_normalizer", "fit_config_normalizer", "apply_normalizer", "label_matrix", "regression_bins"]
