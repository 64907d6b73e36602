"""Calibrated scores: one temperature per classification task and one threshold per label of a multi-label task,
fitted on a held-out split of a run's data (`surgellm calibrate RUN [--split validation]`).

- Temperature scaling: each classification task's scores become softmax (single-label) or sigmoid (multi-label) of
  logits / T, with the T > 0 that minimises the negative log-likelihood of the split's labels (one scalar per task,
  found by `scipy.optimize.minimize_scalar` over log T). Predicted labels of a single-label task do not change.
- Thresholds: each label of a multi-label task gets the threshold on its calibrated probability that maximises
  that label's F1 on the split (`sklearn.metrics.precision_recall_curve`; a label without positive rows keeps the
  task's threshold).

Both are stored in the model's config (``task_temperatures``, per-label ``task_thresholds``: ordered lists) and used
by every way of predicting (pipeline, `predict_texts`, `surgellm predict`, the ONNX export, `surgellm serve`). The
run's metrics.json gains a ``calibration`` section: what was fitted, on which split, and each task's ECE, Brier
score and NLL before and after on every evaluation split (after = the fitted temperatures and thresholds).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .atomic_io import atomic_write_text
from .problem_types import DEFAULT_PROBLEM_TYPE, info, label_matrix, task_probabilities

TEMPERATURE_BOUNDS = (0.01, 100.0)
"""The range a fitted temperature is searched in."""


def _own(logits: np.ndarray, num_labels: int) -> np.ndarray:
    return np.asarray(logits, dtype=np.float64)[:, :num_labels]


def negative_log_likelihood(
    logits: np.ndarray, labels: np.ndarray, problem_type: str, temperature: float = 1.0
) -> float:
    """Mean NLL of the labels under softmax(logits / T) (single-label, class ids) or the mean binary cross-entropy
    of sigmoid(logits / T) over rows and labels (multi-label, multi-hot rows)."""
    from scipy.special import log_softmax

    z = np.asarray(logits, dtype=np.float64) / temperature
    if info(problem_type).multi_hot:
        y = np.asarray(labels, dtype=np.float64)
        return float(np.mean(np.logaddexp(0.0, -z * (2.0 * y - 1.0))))
    y = np.asarray(labels, dtype=np.int64)
    return float(-np.mean(log_softmax(z, axis=1)[np.arange(len(y)), y]))


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, problem_type: str = DEFAULT_PROBLEM_TYPE
) -> float:
    """The temperature T minimising `negative_log_likelihood` of one task's own logits ``[n, L]`` and labels."""
    from scipy.optimize import minimize_scalar

    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, problem_type, math.exp(log_t)),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(math.exp(result.x))


def fit_label_thresholds(probabilities: np.ndarray, y: np.ndarray) -> list[float | None]:
    """Per label, the threshold t (predict the label when its probability >= t) with the largest F1 on these rows:
    one of the observed probabilities (the smallest among equal F1), moved into (0, 1); None for a label without
    positive rows (no threshold has F1 above 0)."""
    from sklearn.metrics import precision_recall_curve

    prob = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(y, dtype=np.int64)
    out: list[float | None] = []
    for j in range(prob.shape[1]):
        if not truth[:, j].any():
            out.append(None)
            continue
        precision, recall, thresholds = precision_recall_curve(truth[:, j], prob[:, j])
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        best = thresholds[int(np.flatnonzero(f1 == f1.max())[0])]
        out.append(float(min(max(best, 1e-6), 1.0 - 1e-6)))
    return out


def _classification_tasks(
    pred: Mapping[str, np.ndarray], config: Any
) -> Iterator[tuple[str, str, int, np.ndarray, np.ndarray]]:
    """``(task, problem type, label count, own logits [n, L], labels)`` of every classification task with rows in
    `predict_split` output (class ids, or multi-hot rows of a multi-label task)."""
    for t, name in enumerate(config.task_names):
        kind, num_labels = config.task_problem_types[name], config.tasks[name]
        rows = np.flatnonzero(np.asarray(pred["task_ids"]) == t)
        if not info(kind).has_classes or not len(rows):
            continue
        labels = info(kind).targets(label_matrix(np.asarray(pred["labels"])[rows]), num_labels)
        yield (
            name,
            kind,
            num_labels,
            _own(np.asarray(pred["logits"])[rows], num_labels),
            labels.astype(np.int64),
        )


def fit_calibration(
    pred: Mapping[str, np.ndarray], config: Any, base_thresholds: Mapping[str, Any] | None = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """(temperature per classification task, thresholds per multi-label task) fitted on `predict_split` output of
    a model with `config`; a multi-label label without positive rows keeps its base threshold (`base_thresholds`,
    default the config's)."""
    base = dict(config.task_thresholds if base_thresholds is None else base_thresholds)
    temperatures: dict[str, float] = {}
    thresholds: dict[str, Any] = {}
    for name, kind, num_labels, logits, labels in _classification_tasks(pred, config):
        temperatures[name] = fit_temperature(logits, labels, kind)
        if info(kind).has_thresholds:
            fitted = fit_label_thresholds(
                task_probabilities(logits / temperatures[name], num_labels, kind), labels
            )
            default = np.broadcast_to(np.asarray(base.get(name, 0.5), dtype=np.float64), (num_labels,))
            thresholds[name] = [float(d) if f is None else f for f, d in zip(fitted, default)]
    return temperatures, thresholds


def calibration_scores(
    pred: Mapping[str, np.ndarray],
    config: Any,
    temperatures: Mapping[str, float],
    thresholds: Mapping[str, Any],
) -> dict[str, dict[str, float]]:
    """Per classification task: ECE, Brier score and NLL of `predict_split` output under `temperatures` (plus
    macro-F1 at `thresholds` for multi-label tasks)."""
    from .evaluation.metrics import calibration_metrics, multi_label_metrics

    out: dict[str, dict[str, float]] = {}
    for name, kind, num_labels, logits, labels in _classification_tasks(pred, config):
        temperature = temperatures.get(name, 1.0)
        prob = task_probabilities(logits / temperature, num_labels, kind)
        scores = {
            **calibration_metrics(labels, prob, kind),
            "nll": negative_log_likelihood(logits, labels, kind, temperature),
        }
        if info(kind).has_thresholds:
            scores["macro_f1"] = multi_label_metrics(labels, prob, thresholds.get(name, 0.5))["macro_f1"]
        out[name] = scores
    return out


def updated_config_dict(
    config_dict: Mapping[str, Any], temperatures: Mapping[str, float], thresholds: Mapping[str, Any]
) -> dict[str, Any]:
    """A saved config's dict (its ``tasks`` a list of [name, count] pairs) with the fitted temperatures and
    thresholds as ordered lists in task order; the other fields as they were."""
    from .configuration_surge import _pairs_to_dict

    out = dict(config_dict)
    order = [name for name, _ in out["tasks"]]
    saved = _pairs_to_dict(out.get("task_thresholds") or [], "task_thresholds")
    saved.update(thresholds)
    out["task_temperatures"] = [[n, float(temperatures[n])] for n in order if n in temperatures]
    out["task_thresholds"] = [[n, saved[n]] for n in order if n in saved]
    return out


def write_calibrated_config(
    run_dir: str | os.PathLike, temperatures: Mapping[str, float], thresholds: Mapping[str, Any]
) -> Path:
    """Store the fitted values in the run's saved config (config.json, or an adapter's surge_adapter_config.json),
    atomically, keeping every other field as it was; returns the file written."""
    from .inference import model_folder_kind
    from .modeling_surge import ADAPTER_CONFIG_NAME

    folder = Path(run_dir)
    kind = model_folder_kind(folder)
    if kind == "onnx":
        raise ValueError(f"{folder} is an ONNX export; calibrate the run folder, then export it again")
    if kind == "adapter":
        path = folder / ADAPTER_CONFIG_NAME
        payload = json.loads(path.read_text(encoding="utf-8"))
        payload["surge_config"] = updated_config_dict(payload["surge_config"], temperatures, thresholds)
    else:
        path = folder / "config.json"
        payload = updated_config_dict(json.loads(path.read_text(encoding="utf-8")), temperatures, thresholds)
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def calibrate_run(
    run_dir: str | os.PathLike,
    data: Mapping[str, Any],
    split: str = "validation",
    batch_size: int = 64,
    loaded: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Fit temperatures and thresholds on `split` of `data` (a run data section), store them in the run's config,
    add the ``calibration`` section to metrics.json (when the run has one) and rewrite report.md; returns the
    section. Everything is fitted and checked before the first file is written. `loaded`: the run's (model,
    processor) when already loaded (`inference.load_run_model`)."""
    from .configuration_surge import SurgeConfig
    from .data import SurgeDataCollator, encode_split, load_run_data
    from .data.task_spec import EVALUATION_SPLITS
    from .evaluation import predict_split
    from .inference import load_run_model

    run_dir = Path(run_dir)
    model, processor = loaded or load_run_model(run_dir)
    config = model.config
    if not any(info(k).has_classes for k in config.task_problem_types.values()):
        raise ValueError(
            f"{run_dir} has no classification task to calibrate (tasks: {config.task_summary()})"
        )
    task_data = load_run_data(dict(data))
    if not any(split in task_data[t] for t in task_data.task_names):
        raise ValueError(f"no task of the run's data has a {split!r} split to calibrate on")
    metrics_path = run_dir / "metrics.json"
    record = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else None
    previous = (record or {}).get("calibration") or {}
    base = previous.get("base_thresholds") or {
        n: v for n, v in config.task_thresholds.items() if not isinstance(v, list)
    }
    collator = SurgeDataCollator(processor.tokenizer)
    by_split = {}
    for name in [split, *(s for s in EVALUATION_SPLITS if s != split)]:
        if any(name in task_data[t] for t in task_data.task_names):
            by_split[name] = predict_split(
                model, encode_split(task_data, processor, name), collator, batch_size
            )
    temperatures, thresholds = fit_calibration(by_split[split], config, base)
    SurgeConfig.from_dict(
        updated_config_dict(config.to_dict(), temperatures, thresholds)
    )  # checked before writing
    section = {
        "split": split,
        "temperatures": temperatures,
        "thresholds": thresholds,
        "base_thresholds": base,
        "tasks": {},
    }
    for name, pred in by_split.items():
        before = calibration_scores(pred, config, {}, base)
        after = calibration_scores(pred, config, temperatures, {**base, **thresholds})
        for task in before:
            section["tasks"].setdefault(task, {})[name] = {"before": before[task], "after": after[task]}
    write_calibrated_config(run_dir, temperatures, thresholds)
    if record is not None:
        record["calibration"] = section
        atomic_write_text(metrics_path, json.dumps(record, indent=2, allow_nan=False) + "\n")
        from .evaluation.report import write_run_report

        write_run_report(run_dir)
    return section


__all__ = [
    "calibrate_run",
    "calibration_scores",
    "fit_calibration",
    "fit_label_thresholds",
    "fit_temperature",
    "negative_log_likelihood",
    "updated_config_dict",
    "write_calibrated_config",
]
