"""SurgeConfig: the configuration of a SURGELLM model (an encoder plus gate, task prefixes and IWN).

This file is copied to the Hub for ``trust_remote_code`` loading: it imports only transformers and the stdlib.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

NORM_CHOICES = ("none", "standard", "iwn")


class SurgeConfig(PreTrainedConfig):
    r"""Configuration of [`SurgeModel`] / [`SurgeForSequenceClassification`] (SURGELLM, arXiv 2606.24259).

    Args:
        encoder_config (`PreTrainedConfig` or `dict`):
            Config of the wrapped Hub encoder (BERT, RoBERTa, DeBERTa-v2, DistilBERT, ELECTRA, XLM-R, MiniLM...).
        tasks (`dict[str, int]`):
            Ordered mapping of task name to its number of labels; the order defines the task ids.
        task_label_names (`dict[str, list[str]]`, *optional*):
            Label names per task (length must equal the task's label count).
        default_task (`str`, *optional*):
            Task used when a forward pass gets no `task_ids`; defaults to the first task.
        use_gate (`bool`): surgical feature gate over [CLS] and lexical features (METHOD §5). Off: z = h.
        use_task_embedding (`bool`): add `task_embedding_scale * E[t]` to h before the gate.
        norm (`str`): feature normalization, one of "none", "standard", "iwn" (METHOD §3).
        task_embedding_scale (`float`): scale of the task embedding (0.1 in the paper).
        num_features (`int`): width of the raw feature vector s(x) (n_groups + 6; 16 for the curated lexicon).
        feature_names (`list[str]`, *optional*): names of the features, checked against the processor's lexicon.
        head_hidden_size (`int`, *optional*): hidden width of each task head; defaults to hidden_size // 2.
        head_dropout (`float`): dropout before the first head layer (0.1).
        head_inner_dropout (`float`): dropout before the last head layer (0.05).
        norm_eps (`float`): epsilon added to the standard deviation (1e-6).
        encoder_name_or_path (`str`, *optional*): where the encoder weights came from (used by adapters).
        initializer_range (`float`): std of the normal init of new weights (0.02).
    """

    model_type = "surge"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder_config: dict | PreTrainedConfig | None = None
    tasks: dict[str, int] | None = None
    task_label_names: dict[str, list[str]] | None = None
    default_task: str | None = None
    use_gate: bool = True
    use_task_embedding: bool = True
    norm: str = "iwn"
    task_embedding_scale: float = 0.1
    num_features: int = 16
    feature_names: list[str] | None = None
    head_hidden_size: int | None = None
    head_dropout: float = 0.1
    head_inner_dropout: float = 0.05
    norm_eps: float = 1e-6
    encoder_name_or_path: str | None = None
    initializer_range: float = 0.02
    variant: str | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.tasks is None:
            self.tasks = {"default": 2}
        self._validate()

    def _validate(self) -> None:
        """Check every field; raise a ValueError naming the problem (called before any model is built)."""
        if not isinstance(self.tasks, dict) or not self.tasks:
            raise ValueError(
                f"`tasks` must be a non-empty mapping of task name to label count, got {self.tasks!r}."
            )
        tasks: OrderedDict[str, int] = OrderedDict()
        for name, count in self.tasks.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"Task names must be non-empty strings, got {name!r}.")
            if isinstance(count, bool) or not isinstance(count, int) or count < 2:
                raise ValueError(f"Task {name!r} must have an integer label count >= 2, got {count!r}.")
            tasks[name] = count
        self.tasks = dict(tasks)
        if self.task_label_names is not None:
            for name, labels in self.task_label_names.items():
                if name not in self.tasks:
                    raise ValueError(
                        f"`task_label_names` names unknown task {name!r}; tasks are {self.task_names}."
                    )
                if len(labels) != self.tasks[name]:
                    raise ValueError(
                        f"Task {name!r} has {self.tasks[name]} labels but {len(labels)} label names: {labels!r}."
                    )
        if self.default_task is None:
            self.default_task = self.task_names[0]
        elif self.default_task not in self.tasks:
            raise ValueError(
                f"`default_task` {self.default_task!r} is not a task; tasks are {self.task_names}."
            )
        if self.norm not in NORM_CHOICES:
            raise ValueError(f"`norm` must be one of {NORM_CHOICES}, got {self.norm!r}.")
        if (
            isinstance(self.num_features, bool)
            or not isinstance(self.num_features, int)
            or self.num_features < 1
        ):
            raise ValueError(f"`num_features` must be a positive integer, got {self.num_features!r}.")
        if self.feature_names is not None and len(self.feature_names) != self.num_features:
            raise ValueError(
                f"`feature_names` has {len(self.feature_names)} names but `num_features` is {self.num_features}."
            )
        if not self.norm_eps > 0:
            raise ValueError(f"`norm_eps` must be > 0, got {self.norm_eps!r}.")
        if getattr(self.encoder_config, "is_encoder_decoder", False):
            raise ValueError(
                f"Encoder type {self.encoder_config.model_type!r} is an encoder-decoder model; SURGELLM wraps a "
                "bidirectional text encoder whose first-token state is pooled (BERT, RoBERTa, DeBERTa, ...)."
            )
        if getattr(self.encoder_config, "hidden_size", None) is None:
            raise ValueError(
                f"Encoder type {self.encoder_config.model_type!r} has no `hidden_size`; it cannot be wrapped."
            )

    @property
    def task_names(self) -> list[str]:
        """Task names in id order."""
        return list(self.tasks)

    @property
    def num_tasks(self) -> int:
        """Number of tasks (heads)."""
        return len(self.tasks)

    @property
    def max_num_labels(self) -> int:
        """Width of the logits tensor: the largest label count over tasks."""
        return max(self.tasks.values())

    @property
    def hidden_size(self) -> int:
        """Hidden size of the wrapped encoder."""
        return self.encoder_config.hidden_size

    @property
    def default_task_id(self) -> int:
        """Id of the default task."""
        return self.task_names.index(self.default_task)

    def task_id(self, task: str | int) -> int:
        """Map a task name (or id) to its id, with an error that lists the valid tasks."""
        if isinstance(task, bool):
            raise TypeError(f"Task must be a name or an integer id, got {task!r}.")
        if isinstance(task, int):
            if not 0 <= task < self.num_tasks:
                raise ValueError(
                    f"Unknown task id {task}; valid ids are 0..{self.num_tasks - 1} for {self.task_names}."
                )
            return task
        if task not in self.tasks:
            raise ValueError(f"Unknown task {task!r}; valid tasks are {self.task_names}.")
        return self.task_names.index(task)

    def label_names(self, task: str) -> list[str]:
        """Label names of a task (``LABEL_<i>`` where none were given)."""
        self.task_id(task)
        names = (self.task_label_names or {}).get(task)
        return list(names) if names else [f"LABEL_{i}" for i in range(self.tasks[task])]


# Saving copies this file beside the weights and writes auto_map, so the Hub can load it as remote code.
SurgeConfig.register_for_auto_class()

__all__ = ["SurgeConfig", "NORM_CHOICES"]
