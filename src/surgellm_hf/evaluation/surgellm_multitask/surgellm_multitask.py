"""SURGELLM's multi-task classification metric as a Hugging Face `evaluate` module that works offline.

Per task (rows grouped by their `tasks` value): macro-F1 (primary), accuracy, macro precision and macro recall,
computed with scikit-learn; plus `avg_macro_f1`, the unweighted mean of the per-task macro-F1 (every task counts
once, whatever its size), the number SURGELLM selects and reports on. Tasks declared in `problem_types` as
"multi_label" get micro-F1, macro-F1 and subset accuracy (a label predicted when its score is >= the task's
threshold, 0.5 by default), "regression" tasks Pearson, Spearman (scipy) and RMSE, with (Pearson + Spearman) / 2 as
their primary score in the average; an undefined correlation (constant targets or predictions: NaN) counts 0 there,
as in surgellm_hf's metrics, so the average stays defined. Self-contained (evaluate, datasets, scikit-learn, scipy), so
`evaluate.load("<this folder>")` can copy and import it without this package.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

PROBLEM_TYPES = ("single_label", "multi_label", "regression")
"""The problem types this module scores: surgellm_hf's (`problem_types.PROBLEM_TYPE_INFO`), named here since the
module must load without the package; tests/test_problem_types_module.py checks that they agree."""

_DESCRIPTION = """SURGELLM multi-task metric: per-task macro-F1, accuracy, macro precision and recall (scikit-learn),
and avg_macro_f1, the unweighted mean of the per-task macro-F1."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`, or of `list` of `float`): predicted class index of each row (within its own
        task's labels); with multi-label or regression tasks, every row is a list: [class index], the per-label
        scores (probabilities or 0/1), or [value].
    references (`list` of `int`, or of `list` of `float`): true class index of each row; as lists: [class index],
        the multi-hot vector, or [target].
    tasks (`list` of `str`): the task of each row.
    problem_types (`dict`, optional): task -> "single_label" (default), "multi_label" or "regression".
    thresholds (`dict`, optional): multi-label task -> decision threshold on its scores (0.5).
Returns:
    `{"<task>/macro_f1": ..., "<task>/accuracy": ..., "<task>/precision": ..., "<task>/recall": ...,
    "<task>/support": ..., "avg_macro_f1": ...}`, tasks in order of first appearance; multi-label tasks
    "<task>/micro_f1", "<task>/macro_f1", "<task>/subset_accuracy"; regression tasks "<task>/pearson",
    "<task>/spearman", "<task>/rmse". avg_macro_f1 is the mean of the tasks' primary scores.
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
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("int64"),
                        "references": datasets.Value("int64"),
                        "tasks": datasets.Value("string"),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float64")),
                        "references": datasets.Sequence(datasets.Value("float64")),
                        "tasks": datasets.Value("string"),
                    }
                ),
            ],
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(
        self, predictions, references, tasks, problem_types=None, thresholds=None
    ) -> dict[str, float]:
        task = np.asarray(tasks, dtype=object)
        if not len(task):
            raise ValueError("surgellm_multitask needs at least one row")
        types, limits = dict(problem_types or {}), dict(thresholds or {})
        unknown = {t: k for t, k in types.items() if k not in PROBLEM_TYPES}
        if unknown:
            raise ValueError(f"problem_types {unknown}: use single_label, multi_label or regression")
        result: dict[str, float] = {}
        primaries = []
        for name in dict.fromkeys(task.tolist()):  # first-appearance order
            rows = np.flatnonzero(task == name)
            kind = types.get(name, "single_label")
            if kind == "single_label":
                t = np.asarray([np.ravel(references[i])[0] for i in rows]).astype(np.int64)
                p = np.asarray([np.ravel(predictions[i])[0] for i in rows]).astype(np.int64)
                primary = float(f1_score(t, p, average="macro", zero_division=0))
                result[f"{name}/macro_f1"] = primary
                result[f"{name}/accuracy"] = float(accuracy_score(t, p))
                result[f"{name}/precision"] = float(precision_score(t, p, average="macro", zero_division=0))
                result[f"{name}/recall"] = float(recall_score(t, p, average="macro", zero_division=0))
            elif kind == "multi_label":
                t = np.asarray([references[i] for i in rows], dtype=np.float64).astype(np.int64)
                p = (
                    np.asarray([predictions[i] for i in rows], dtype=np.float64) >= limits.get(name, 0.5)
                ).astype(np.int64)
                primary = float(f1_score(t, p, average="macro", zero_division=0))
                result[f"{name}/micro_f1"] = float(f1_score(t, p, average="micro", zero_division=0))
                result[f"{name}/macro_f1"] = primary
                result[f"{name}/subset_accuracy"] = float(accuracy_score(t, p))
            else:
                from scipy.stats import pearsonr, spearmanr

                t = np.asarray([np.ravel(references[i])[0] for i in rows], dtype=np.float64)
                p = np.asarray([np.ravel(predictions[i])[0] for i in rows], dtype=np.float64)
                constant = len(t) < 2 or np.ptp(t) == 0 or np.ptp(p) == 0
                r = float("nan") if constant else float(pearsonr(t, p)[0])
                rho = float("nan") if constant else float(spearmanr(t, p)[0])
                result[f"{name}/pearson"], result[f"{name}/spearman"] = r, rho
                result[f"{name}/rmse"] = float(np.sqrt(np.mean((t - p) ** 2)))
                primary = 0.0 if constant else (r + rho) / 2  # undefined correlations count 0
            result[f"{name}/support"] = int(len(rows))
            primaries.append(primary)
        result["avg_macro_f1"] = float(np.mean(primaries))
        return result
