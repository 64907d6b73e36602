"""SURGELLM's multi-task classification metric as a Hugging Face `evaluate` module that works offline.

Per task (rows grouped by their `tasks` value): macro-F1 (primary), accuracy, macro precision and macro recall,
computed with scikit-learn; plus `avg_macro_f1`, the unweighted mean of the per-task macro-F1 (every task counts
once, whatever its size), the number SURGELLM selects and reports on. Self-contained (evaluate, datasets,
scikit-learn), so `evaluate.load("<this folder>")` can copy and import it without this package.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

_DESCRIPTION = """SURGELLM multi-task metric: per-task macro-F1, accuracy, macro precision and recall (scikit-learn),
and avg_macro_f1, the unweighted mean of the per-task macro-F1."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class index of each row (within its own task's labels).
    references (`list` of `int`): true class index of each row.
    tasks (`list` of `str`): the task of each row.
Returns:
    `{"<task>/macro_f1": ..., "<task>/accuracy": ..., "<task>/precision": ..., "<task>/recall": ...,
    "<task>/support": ..., "avg_macro_f1": ...}`, tasks in order of first appearance.
Examples:
    >>> metric = SurgellmMultitask()
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0], tasks=["a", "a", "b", "b"])["avg_macro_f1"]
    0.6666666666666666
"""

_CITATION = """@inproceedings{mohammad2026surgellm,
  title={Rethinking Multi-Task Evaluation through Task-Aware Feature Gating with Class-Balanced Normalization},
  year={2026}, note={arXiv 2606.24259}
}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SurgellmMultitask(evaluate.Metric):
    """Per-task macro-F1, accuracy, precision, recall and their unweighted mean over tasks (scikit-learn)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int64"),
                    "references": datasets.Value("int64"),
                    "tasks": datasets.Value("string"),
                }
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, tasks) -> dict[str, float]:
        y_pred, y_true, task = (
            np.asarray(predictions),
            np.asarray(references),
            np.asarray(tasks, dtype=object),
        )
        if not len(task):
            raise ValueError("surgellm_multitask needs at least one row")
        result: dict[str, float] = {}
        f1s = []
        for name in dict.fromkeys(task.tolist()):  # first-appearance order
            rows = task == name
            t, p = y_true[rows], y_pred[rows]
            f1 = float(f1_score(t, p, average="macro", zero_division=0))
            result[f"{name}/macro_f1"] = f1
            result[f"{name}/accuracy"] = float(accuracy_score(t, p))
            result[f"{name}/precision"] = float(precision_score(t, p, average="macro", zero_division=0))
            result[f"{name}/recall"] = float(recall_score(t, p, average="macro", zero_division=0))
            result[f"{name}/support"] = int(rows.sum())
            f1s.append(f1)
        result["avg_macro_f1"] = float(np.mean(f1s))
        return result
