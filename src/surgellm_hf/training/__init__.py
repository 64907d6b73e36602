"""Training SURGELLM with `transformers.Trainer` (docs/method.md#training-protocol), one concern per module:

- `variants`: the variant table (`VARIANTS`, `get_variant`);
- `run_config`: `RunConfig` and `load_run_config` (YAML + `key=value` overrides);
- `run_folder`: run_config.json, what a run writes, complete checkpoints, and whether a run folder may be used,
  resumed or reused;
- `run_lock`: one training process per run folder (`RunFolderLock`);
- `sampler`: `TaskBalancedBatchSampler`;
- `trainer`: `SurgeTrainer` and its `compute_metrics`;
- `callbacks`: early stopping (`SurgeEarlyStoppingCallback`, `early_stopping_arguments`);
- `training_args`: `SurgeTrainingArguments`, the arguments of a run and its precision;
- `lexicons`: the run's lexicon (curated, extracted, random, file);
- `encoder_cache`: the frozen-encoder fast path (first-token states cached per example, on disk if asked);
- `run`: `train_run`, one run end to end (what `surgellm train` does).

Names load on first access, so `surgellm_hf.training.variants` does not pull in the Trainer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports as _lazy_exports

_LAZY: dict[str, str] = {
    "Variant": "variants",
    "VARIANTS": "variants",
    "get_variant": "variants",
    "RunConfig": "run_config",
    "LEXICON_CHOICES": "run_config",
    "MIXED_PRECISION_CHOICES": "run_config",
    "REUSE_IGNORED_KEYS": "run_config",
    "comparable_settings": "run_config",
    "settings_differences": "run_config",
    "load_run_config": "run_config",
    "RUN_CONFIG_NAME": "run_folder",
    "RUN_CONFIG_FORMAT": "run_folder",
    "check_run_dir": "run_folder",
    "check_lexicon_matches": "run_folder",
    "get_last_complete_checkpoint": "run_folder",
    "remove_incomplete_checkpoints": "run_folder",
    "is_run_written": "run_folder",
    "read_run_config": "run_folder",
    "start_fresh": "run_folder",
    "write_run_config": "run_folder",
    "RunFolderLock": "run_lock",
    "RunFolderBusyError": "run_lock",
    "TaskBalancedBatchSampler": "sampler",
    "TASK_SAMPLING_CHOICES": "sampler",
    "resolve_class_weights": "class_weights",
    "balanced_class_weights": "class_weights",
    "class_weight_table": "class_weights",
    "task_sampling_probabilities": "sampler",
    "SurgeTrainer": "trainer",
    "build_compute_metrics": "trainer",
    "SurgeEarlyStoppingCallback": "callbacks",
    "early_stopping_arguments": "callbacks",
    "patience_counter_from_history": "callbacks",
    "SurgeTrainingArguments": "training_args",
    "training_arguments": "training_args",
    "resolve_precision": "training_args",
    "precision_used": "training_args",
    "check_sharding": "training_args",
    "build_lexicon": "lexicons",
    "extract_lexicon_from_data": "lexicons",
    "train_run": "run",
    "uses_encoder_cache": "run",
    "EncoderStateCache": "encoder_cache",
    "cache_first_token_states": "encoder_cache",
    "encoder_fingerprint": "encoder_cache",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:
    from .callbacks import SurgeEarlyStoppingCallback, early_stopping_arguments, patience_counter_from_history
    from .class_weights import balanced_class_weights, class_weight_table, resolve_class_weights
    from .encoder_cache import EncoderStateCache, cache_first_token_states, encoder_fingerprint
    from .lexicons import build_lexicon, extract_lexicon_from_data
    from .run import train_run, uses_encoder_cache
    from .run_config import (
        LEXICON_CHOICES,
        MIXED_PRECISION_CHOICES,
        REUSE_IGNORED_KEYS,
        RunConfig,
        comparable_settings,
        load_run_config,
        settings_differences,
    )
    from .run_folder import (
        RUN_CONFIG_FORMAT,
        RUN_CONFIG_NAME,
        check_lexicon_matches,
        check_run_dir,
        get_last_complete_checkpoint,
        is_run_written,
        read_run_config,
        remove_incomplete_checkpoints,
        start_fresh,
        write_run_config,
    )
    from .run_lock import RunFolderBusyError, RunFolderLock
    from .sampler import TASK_SAMPLING_CHOICES, TaskBalancedBatchSampler, task_sampling_probabilities
    from .trainer import SurgeTrainer, build_compute_metrics
    from .training_args import (
        SurgeTrainingArguments,
        check_sharding,
        precision_used,
        resolve_precision,
        training_arguments,
    )
    from .variants import VARIANTS, Variant, get_variant

__all__ = list(_LAZY)
