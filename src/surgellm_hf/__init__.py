"""surgellm_hf: SURGELLM (arXiv 2606.24259) as a Hugging Face transformers extension.

Names load lazily on first attribute access (`_lazy.lazy_exports`). Importing the package imports neither
transformers nor torch; it registers SURGELLM with AutoConfig (and, where torch can be imported, AutoModel and
AutoModelForSequenceClassification) as soon as transformers' Auto classes are imported (`_auto_registration`), so
the processor, the ONNX runner and `surgellm --help` stay fast and work in a torch-free process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._auto_registration import install as _install_auto_registration
from ._lazy import lazy_exports as _lazy_exports

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "SurgeConfig": "configuration_surge",
    "SurgeModel": "modeling_surge",
    "SurgePreTrainedModel": "modeling_surge",
    "SurgeForSequenceClassification": "modeling_surge",
    "SurgeSequenceClassifierOutput": "modeling_surge",
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

if TYPE_CHECKING:
    from .configuration_surge import SurgeConfig
    from .data import MultiTaskData, TaskSpec, load_folder, load_tasks
    from .evaluation import compare_runs, task_metrics
    from .features import SURFACE_FEATURE_NAMES
    from .inference import predict_texts
    from .lexicon import Lexicon, featurize
    from .modeling_surge import (
        SurgeForSequenceClassification,
        SurgeModel,
        SurgePreTrainedModel,
        SurgeSequenceClassifierOutput,
    )
    from .normalization import fit_normalizer
    from .processing_surge import SurgeProcessor, feature_bucket
    from .training import (
        VARIANTS,
        RunConfig,
        SurgeEarlyStoppingCallback,
        SurgeTrainer,
        SurgeTrainingArguments,
        TaskBalancedBatchSampler,
    )
    from .workflow import train_run


_install_auto_registration()

__all__ = list(_LAZY)
