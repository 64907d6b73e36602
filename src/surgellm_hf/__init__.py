"""surgellm_hf: SURGELLM (arXiv 2606.24259) as a Hugging Face transformers extension.

The configuration and model classes are imported eagerly so that importing the package registers
them with the Auto classes; everything else loads lazily on first attribute access.
"""

from __future__ import annotations

from ._lazy import lazy_exports as _lazy_exports
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
    "train_run": "workflow",
    "VARIANTS": "training",
    "SurgeTrainer": "training",
    "SurgeTrainingArguments": "training",
    "TaskBalancedBatchSampler": "training",
    "compare_runs": "evaluation",
    "task_metrics": "evaluation",
    "SurgeEarlyStoppingCallback": "training",
    "predict_texts": "inference",
    "SurgeProcessor": "processing_surge",
    "fit_normalizer": "normalization",
    "MultiTaskData": "data",
    "load_tasks": "data",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)


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
