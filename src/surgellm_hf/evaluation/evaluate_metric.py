"""SURGELLM's multi-task metric as an offline Hugging Face `evaluate` module (optional extra: `surgellm_hf[evaluate]`).

`evaluate.load("f1")` fetches a script from the Hub at run time; this module is local. Use it directly
(`SurgellmMultitask()`, or `load_metric()`), or by path: `evaluate.load(surgellm_hf.evaluation.evaluate_metric.METRIC_PATH)`.
Its numbers are scikit-learn's, like `evaluation.metrics` (which stays the package's own route, without `evaluate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METRIC_PATH = str(Path(__file__).resolve().parent / "surgellm_multitask")
"""Folder of the metric script, for `evaluate.load(METRIC_PATH)`."""


def load_metric(**kwargs: Any) -> Any:
    """The metric as an `evaluate.Metric` instance (needs the `evaluate` extra; no network)."""
    try:
        from .surgellm_multitask.surgellm_multitask import SurgellmMultitask
    except ImportError as err:
        raise ImportError(
            "the SURGELLM evaluate metric needs the optional extra: pip install 'surgellm_hf[evaluate]'"
        ) from err
    return SurgellmMultitask(**kwargs)
