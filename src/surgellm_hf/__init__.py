"""surgellm_hf: SURGELLM (arXiv 2606.24259) as a Hugging Face transformers extension.

The configuration and model classes are imported eagerly so that importing the package registers
them with the Auto classes; everything else loads lazily on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from .configuration_surge import SurgeConfig
from .modeling_surge import (
    SurgeForSequenceClassification,
    SurgeModel,
    SurgePreTrainedModel,
    SurgeSequenceClassifierOutput,
)

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "Lexicon": "lexicon",
    "featurize": "lexicon",
    "SURFACE_FEATURE_NAMES": "features",
    "feature_bucket": "processing_surge",
    "TaskSpec": "data",
    "load_folder": "data",
    "RunConfig": "training",
    "train_run": "training",
    "VARIANTS": "training",
    "SurgeTrainer": "training",
    "TaskBalancedBatchSampler": "training",
    "compare_runs": "evaluation",
    "task_metrics": "evaluation",
    "SurgeEarlyStoppingCallback": "evaluation",
    "predict_texts": "inference",
    "SurgeProcessor": "processing_surge",
    "fit_normalizer": "normalization",
    "MultiTaskData": "data",
    "load_tasks": "data",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_auto_classes() -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    AutoConfig.register(SurgeConfig.model_type, SurgeConfig, exist_ok=True)
    AutoModel.register(SurgeConfig, SurgeModel, exist_ok=True)
    AutoModelForSequenceClassification.register(SurgeConfig, SurgeForSequenceClassification, exist_ok=True)


_register_auto_classes()

__all__ = [
    "SurgeConfig",
    "SurgeModel",
    "SurgePreTrainedModel",
    "SurgeForSequenceClassification",
    "SurgeSequenceClassifierOutput",
    *_LAZY,
]
