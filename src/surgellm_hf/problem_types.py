"""Per-task problem types in one place: their names and codes, the label-matrix layout, scoring and metric names.

A task is single-label (one class: cross-entropy, softmax scores), multi-label (any subset of its labels: BCE with
logits, per-label sigmoid scores compared with a threshold) or regression (one float: squared error, the raw output
value). Each type is one `ProblemTypeInfo` in `PROBLEM_TYPE_INFO` (its label form, label counts, scoring,
decision, records, metrics, class weights); the model, the pipeline, the ONNX runner, evaluation, calibration,
explanations, training and the model card read these fields, never a type's name, so a new type is a new entry here
plus its loss (torch, `losses_surge`) and its label parsing (`data`).

Imports only the standard library and numpy (no torch): the torch-free ONNX runner (`serving.runtime`) loads this
file, and the Hub copies it as remote code (a flat sibling of `modeling_surge`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SINGLE_LABEL = "single_label"
MULTI_LABEL = "multi_label"
REGRESSION = "regression"

# the forms a task's labels take (a row of the label matrix, `label_matrix`)
CLASS_ID = "class_id"
"""One class id per row (column 0): a task with classes, one of them predicted."""
MULTI_HOT = "multi_hot"
"""A multi-hot row over the task's labels (the first L columns): classes decided one by one at a threshold."""
VALUE = "value"
"""One float per row (column 0): no classes."""


class ProblemType(enum.IntEnum):
    """Problem type codes, as the model's loss and label checks hold them in tensors (`PROBLEM_TYPES[code]`)."""

    SINGLE_LABEL = 0
    MULTI_LABEL = 1
    REGRESSION = 2

    @classmethod
    def of(cls, name: str) -> ProblemType:
        """The code of a type name (``"multi_label"`` -> ``ProblemType.MULTI_LABEL``)."""
        return cls(info(name).code)


# -- how y_pred and a prediction record come from a task's scores, by label form -------------------------------------
def _argmax(score: np.ndarray, threshold: Any) -> tuple[np.ndarray, np.ndarray]:
    return score, score.argmax(axis=1)


def _at_threshold(score: np.ndarray, threshold: Any) -> tuple[np.ndarray, np.ndarray]:
    return score, (score >= np.asarray(threshold, dtype=np.float64)).astype(np.int64)


def _the_value(score: np.ndarray, threshold: Any) -> tuple[np.ndarray, np.ndarray]:
    value = score[:, 0]
    return value, value


def _class_record(names: Sequence[str], y_pred: Any, score: Any) -> dict[str, Any]:
    label = int(y_pred)
    return {"label": label, "label_name": names[label], "scores": {n: float(p) for n, p in zip(names, score)}}


def _multi_hot_record(names: Sequence[str], y_pred: Any, score: Any) -> dict[str, Any]:
    label = [int(k) for k in np.flatnonzero(y_pred)]
    return {
        "label": label,
        "label_name": [names[k] for k in label],
        "scores": {n: float(p) for n, p in zip(names, score)},
    }


def _value_record(names: Sequence[str], y_pred: Any, score: Any) -> dict[str, Any]:
    value = float(y_pred)
    return {"label": None, "label_name": None, "value": value, "scores": {names[0]: value}}


Decision = Callable[[np.ndarray, Any], tuple[np.ndarray, np.ndarray]]
"""(a task's scores [n, L], its threshold) -> (the score kept, y_pred)."""
Record = Callable[[Sequence[str], Any, Any], dict[str, Any]]
"""(label names, one row's y_pred, its score) -> the row's `prediction_records` fields after ``task``."""


@dataclass(frozen=True)
class ProblemTypeInfo:
    """Everything the package knows of one problem type; the modules outside this one (but the loss and the data
    parsing) read these fields, never the type's name."""

    name: str
    """The type's name in configs, data specs and records."""
    code: int
    """Its `ProblemType` code (the tensor code the loss selects by)."""
    title: str
    """Its name in messages ("Single-label task 'x' ...")."""
    hf_name: str
    """transformers' `config.problem_type` name (one of its three; a config that names only `problem_type` means the
    first registered type with that name)."""
    scoring: str
    """How scores come from logits: "softmax", "sigmoid" or "none" (transformers' ``function_to_apply`` names)."""
    label_form: str
    """`CLASS_ID`, `MULTI_HOT` or `VALUE`: where a row's label sits in the label matrix and what it means."""
    min_labels: int
    """The fewest labels (outputs) a task of the type has."""
    exact_labels: int | None
    """The one label count a task of the type has (None: any count >= `min_labels`)."""
    logged_metrics: tuple[str, ...]
    """The metrics the Trainer logs per task during training (`training.trainer.build_compute_metrics`)."""
    card_metrics: tuple[str, ...]
    """The metrics the model card's model-index carries (`hub.model_card`)."""
    primary_metrics: tuple[str, ...]
    """The metrics whose mean (an undefined one counting 0) is a task's primary score (`primary_score`)."""
    weight_meaning: str | None
    """What a task's `class_weights` are in the loss ("class weight", "pos_weight"); None: it takes none."""
    task_scores: str
    """``"module:function"`` of its per-task metrics, ``(label matrix rows, predictions, num_labels, threshold,
    task) -> {metric: value}`` (resolved by `evaluation.predictions.task_scores`; named, as the evaluation
    package imports this module)."""
    decide: Decision
    """y_pred from the scores (argmax, multi-hot at the threshold, or the value itself)."""
    record: Record
    """One prediction record's fields from y_pred and the scores (`prediction_records`)."""

    @property
    def has_classes(self) -> bool:
        """Classification: IWN's classes are its labels, class weights, temperatures and calibration apply."""
        return self.label_form != VALUE

    @property
    def class_ids(self) -> bool:
        """One class id per row (column 0 of the label matrix)."""
        return self.label_form == CLASS_ID

    @property
    def multi_hot(self) -> bool:
        """Multi-hot rows over the task's labels, each label decided at a threshold (`task_thresholds`)."""
        return self.label_form == MULTI_HOT

    has_thresholds = multi_hot

    def targets(self, matrix: np.ndarray, num_labels: int) -> np.ndarray:
        """The rows' labels from their label matrix rows: the multi-hot rows [n, L], else column 0 [n]."""
        return matrix[:, :num_labels] if self.multi_hot else matrix[:, 0]

    def accepts_label_count(self, count: int) -> bool:
        """Whether a task of the type can have `count` labels (outputs)."""
        return count == self.exact_labels if self.exact_labels is not None else count >= self.min_labels

    @property
    def label_need(self) -> str:
        """The label count it needs, in words ("one output", ">= 2 labels")."""
        if self.exact_labels is not None:
            return "one output" if self.exact_labels == 1 else f"{self.exact_labels} outputs"
        return f">= {self.min_labels} labels"

    def label_count_error(self, task: str, count: int) -> str | None:
        """The message refusing `count` labels for `task` (None: the count fits)."""
        if self.accepts_label_count(count):
            return None
        if self.exact_labels is not None:
            return f"{self.title} task {task!r} has {self.label_need} (label count {self.exact_labels}), got {count}"
        return f"{self.title} task {task!r} needs {self.label_need}, got {count}"


_SCORES = "surgellm_hf.evaluation.predictions:"
PROBLEM_TYPE_INFO: dict[str, ProblemTypeInfo] = {
    t.name: t
    for t in (
        ProblemTypeInfo(
            name=SINGLE_LABEL,
            code=0,
            title="Single-label",
            hf_name="single_label_classification",
            scoring="softmax",
            label_form=CLASS_ID,
            min_labels=2,
            exact_labels=None,
            logged_metrics=("macro_f1", "accuracy", "roc_auc"),
            card_metrics=("macro_f1", "accuracy"),
            primary_metrics=("macro_f1",),
            weight_meaning="class weight",
            task_scores=_SCORES + "single_label_scores",
            decide=_argmax,
            record=_class_record,
        ),
        ProblemTypeInfo(
            name=MULTI_LABEL,
            code=1,
            title="Multi-label",
            hf_name="multi_label_classification",
            scoring="sigmoid",
            label_form=MULTI_HOT,
            min_labels=1,
            exact_labels=None,
            logged_metrics=("micro_f1", "macro_f1", "subset_accuracy"),
            card_metrics=("micro_f1", "macro_f1"),
            primary_metrics=("macro_f1",),
            weight_meaning="pos_weight",
            task_scores=_SCORES + "multi_label_scores",
            decide=_at_threshold,
            record=_multi_hot_record,
        ),
        ProblemTypeInfo(
            name=REGRESSION,
            code=2,
            title="Regression",
            hf_name="regression",
            scoring="none",
            label_form=VALUE,
            min_labels=1,
            exact_labels=1,
            logged_metrics=("pearson", "spearman", "rmse"),
            card_metrics=("pearson", "spearman"),
            primary_metrics=("pearson", "spearman"),
            weight_meaning=None,
            task_scores=_SCORES + "regression_scores",
            decide=_the_value,
            record=_value_record,
        ),
    )
}
"""The problem types by name. Adding a type: an entry here (and its `ProblemType` code), its loss in
`losses_surge` and its label parsing in `data` (docs/architecture.md#adding-a-problem-type)."""


def info(name: str) -> ProblemTypeInfo:
    """The description of problem type `name`; an unknown name is a ValueError naming the known ones."""
    try:
        return PROBLEM_TYPE_INFO[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown problem type {name!r}; known types: {list(PROBLEM_TYPE_INFO)}") from None


def type_names() -> tuple[str, ...]:
    """The problem types' names, in registry order (the registry as it is now, unlike `PROBLEM_TYPES`)."""
    return tuple(PROBLEM_TYPE_INFO)


def types_where(test: Callable[[ProblemTypeInfo], bool]) -> tuple[str, ...]:
    """The names of the problem types whose description passes `test` (e.g. ``lambda t: t.has_thresholds``)."""
    return tuple(name for name, entry in PROBLEM_TYPE_INFO.items() if test(entry))


# the registry's built-in types under their older names (snapshots at import; the package's modules read `info`)
PROBLEM_TYPES: tuple[str, ...] = tuple(PROBLEM_TYPE_INFO)
"""Per-task problem types: one class (cross-entropy), any subset of labels (BCE with logits), one float (MSE)."""

DEFAULT_PROBLEM_TYPE = SINGLE_LABEL
"""The type of a task whose config names none (configs and exports written before per-task types)."""

HF_PROBLEM_TYPES: dict[str, str] = {k: t.hf_name for k, t in PROBLEM_TYPE_INFO.items()}
"""SURGELLM task type -> transformers' `config.problem_type` name."""

DEFAULT_THRESHOLD = 0.5
"""A multi-label task's decision threshold when none was set or calibrated."""

SCORING: dict[str, str] = {k: t.scoring for k, t in PROBLEM_TYPE_INFO.items()}
"""How a task's scores come from its logits, by type (transformers' ``function_to_apply`` names)."""

# -- metric names ----------------------------------------------------------------------------------------------------
METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "precision", "recall", "roc_auc")
"""Per-task metrics reported (docs/method.md#training-protocol); macro-F1 is primary."""

TYPE_METRICS: tuple[str, ...] = ("micro_f1", "subset_accuracy", "pearson", "spearman", "rmse")
"""Further per-task metrics of multi-label (micro_f1, subset_accuracy; macro_f1 is shared) and regression tasks."""

LOGGED_METRICS: dict[str, tuple[str, ...]] = {k: t.logged_metrics for k, t in PROBLEM_TYPE_INFO.items()}
"""The metrics the Trainer logs per task during training (`training.trainer.build_compute_metrics`), by type."""


def primary_score(metrics: Mapping[str, float]) -> float:
    """A task's primary score: its type's `primary_metrics` (the first registered set `metrics` has in full):
    macro_f1 (single- and multi-label), else the mean of pearson and spearman, an undefined (NaN) correlation
    counting 0 in such a mean (see `evaluation.metrics`), so a regression task never makes it NaN."""
    options = list(dict.fromkeys(t.primary_metrics for t in PROBLEM_TYPE_INFO.values()))
    for keys in options:
        if all(k in metrics for k in keys):
            values = [float(metrics[k]) for k in keys]
            return (
                values[0] if len(values) == 1 else float(np.nan_to_num(values, nan=0.0).sum()) / len(values)
            )
    wanted = " nor ".join("/".join(repr(k) for k in keys) for keys in options)
    raise ValueError(f"metrics {sorted(metrics)} have neither {wanted}")


# -- the label matrix --------------------------------------------------------------------------------------------------
def label_matrix(labels: Any) -> np.ndarray:
    """Labels as the padded float ``[n_rows, k]`` matrix: numbers become column 0, (ragged) rows are padded with 0.

    The layout of mixed-type batches (`SurgeForSequenceClassification.forward`): column 0 holds a single-label
    class id or a regression target, the first L columns a multi-label row's multi-hot vector.
    """
    if hasattr(labels, "detach") and hasattr(labels, "numpy"):  # a torch tensor (no torch import here)
        labels = labels.detach().cpu().numpy()
    if isinstance(labels, np.ndarray) and labels.dtype != object:
        arr = labels.astype(np.float64)
        if arr.ndim == 1:
            return arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise ValueError(f"`labels` must be 1-D or 2-D, got shape {arr.shape}.")
        return arr
    rows = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in labels]
    if any(r.ndim != 1 or r.size == 0 for r in rows):
        raise ValueError("`labels` rows must be numbers or non-empty 1-D multi-hot vectors.")
    width = max((r.size for r in rows), default=1)
    out = np.zeros((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


# -- scoring ---------------------------------------------------------------------------------------------------------
def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in the dtype it is given (as transformers' text-classification pipeline)."""
    maxes = np.max(logits, axis=-1, keepdims=True)
    shifted_exp = np.exp(logits - maxes)
    return shifted_exp / shifted_exp.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, in the dtype it is given (as transformers' text-classification pipeline)."""
    return 1.0 / (1.0 + np.exp(-logits))


def task_probabilities(
    logits: np.ndarray, num_labels: int, problem_type: str = DEFAULT_PROBLEM_TYPE
) -> np.ndarray:
    """One task's scores from the first `num_labels` columns (last axis) of padded SURGELLM logits: softmax
    (single-label), sigmoid per label (multi-label), the raw value (regression, `num_labels` 1), as transformers'
    text-classification pipeline scores each problem type.

    The one per-task scoring of the package (the pipeline, `surgellm predict`, the ONNX runner and evaluation use
    it); it computes in the dtype it is given.
    """
    own = np.asarray(logits)[..., :num_labels]
    return _SCORE_FUNCTIONS[info(problem_type).scoring](own)


_SCORE_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "softmax": softmax,
    "sigmoid": sigmoid,
    "none": lambda own: own,
}
ProbabilityFn = Callable[[np.ndarray, int, str], np.ndarray]


def split_by_task(
    logits: np.ndarray,
    task_ids: np.ndarray,
    tasks: Mapping[str, int],
    problem_types: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float | Sequence[float]] | None = None,
    probabilities: ProbabilityFn = task_probabilities,
    temperatures: Mapping[str, float] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Padded logits split by task: {task: {'index', 'y_pred', 'score'}} (what
    `surgellm_hf.evaluation.predictions.per_task_predictions` and the ONNX runner return).

    Single-label: score = softmax over the task's own labels, y_pred its argmax; multi-label: score = per-label
    sigmoid [n, L], y_pred the multi-hot ``score >= threshold`` (default 0.5; a threshold is one number or one per
    label); regression: score = y_pred = the output value [n]. A task with a temperature T (`temperatures`,
    fitted by `surgellm calibrate`) is scored from logits / T. Scores are computed in float64.
    """
    out = {}
    for t, (name, n_labels) in enumerate(tasks.items()):
        idx = np.flatnonzero(np.asarray(task_ids) == t)
        if not len(idx):
            continue
        kind = (problem_types or {}).get(name, DEFAULT_PROBLEM_TYPE)
        entry = info(kind)
        own = np.asarray(logits)[idx].astype(np.float64)
        if entry.has_classes and (temperatures or {}).get(name) is not None:
            own = own[..., :n_labels] / float(temperatures[name])
        score, y_pred = entry.decide(
            probabilities(own, n_labels, kind), (thresholds or {}).get(name, DEFAULT_THRESHOLD)
        )
        out[name] = {"index": idx, "y_pred": y_pred, "score": score}
    return out


def prediction_records(
    by_task: Mapping[str, Mapping[str, np.ndarray]],
    num_rows: int,
    label_names: Mapping[str, Sequence[str]],
    problem_types: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One `predict_texts` record per row from `split_by_task` / `per_task_predictions` output, in row order.

    Single-label: ``{task, label, label_name, scores}`` (label id, its name, every label's softmax probability);
    multi-label: label and label_name are the lists of ids and names at/above the threshold, scores every label's
    sigmoid probability; regression: ``{task, label: None, label_name: None, value, scores: {name: value}}``.
    """
    rows: dict[int, dict[str, Any]] = {}
    for name, pred in by_task.items():
        names = list(label_names[name])
        record = info((problem_types or {}).get(name, DEFAULT_PROBLEM_TYPE)).record
        for j, i in enumerate(pred["index"]):
            rows[int(i)] = {"task": name, **record(names, pred["y_pred"][j], pred["score"][j])}
    missing = [i for i in range(num_rows) if i not in rows]
    if missing:
        raise ValueError(f"rows {missing[:5]} have no task among {list(by_task)} (task ids out of range?)")
    return [rows[i] for i in range(num_rows)]


__all__ = [
    "SINGLE_LABEL",
    "MULTI_LABEL",
    "REGRESSION",
    "CLASS_ID",
    "MULTI_HOT",
    "VALUE",
    "ProblemType",
    "ProblemTypeInfo",
    "PROBLEM_TYPE_INFO",
    "info",
    "type_names",
    "types_where",
    "PROBLEM_TYPES",
    "DEFAULT_PROBLEM_TYPE",
    "HF_PROBLEM_TYPES",
    "DEFAULT_THRESHOLD",
    "SCORING",
    "METRICS",
    "TYPE_METRICS",
    "LOGGED_METRICS",
    "primary_score",
    "label_matrix",
    "softmax",
    "sigmoid",
    "task_probabilities",
    "ProbabilityFn",
    "split_by_task",
    "prediction_records",
]
