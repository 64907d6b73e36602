"""SurgeConfig: the configuration of a SURGELLM model (an encoder plus gate, task prefixes and IWN).

This file is copied to the Hub for ``trust_remote_code`` loading: it imports only transformers, the stdlib and its flat
sibling `problem_types` (numpy).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .problem_types import (
    DEFAULT_PROBLEM_TYPE,
    HF_PROBLEM_TYPES,
    PROBLEM_TYPES,
    info,
    type_names,
    types_where,
)

NORM_CHOICES = ("none", "standard", "iwn")

LONG_TEXT_POOLS = ("mean", "max", "first")
"""How the first-token states of a long text's windows become one state: their mean, their element-wise max, or the
first window's (`long_text` in the run config; `SurgeConfig.long_text_pool`)."""

SOFT_PREFIX_LENGTHS = (0, 1, 2)
"""Virtual tokens of the soft prefix: 0 (none), 1 (task and features summed into one) or 2 (task, then features)."""


class SurgeConfig(PreTrainedConfig):
    r"""Configuration of [`SurgeModel`] / [`SurgeForSequenceClassification`] (SURGELLM, arXiv 2606.24259).

    Args:
        encoder_config (`PreTrainedConfig` or `dict`):
            Config of the wrapped Hub encoder (BERT, RoBERTa, DeBERTa-v2, DistilBERT, ELECTRA, XLM-R, MiniLM...).
        tasks (`dict[str, int]` or `list[[str, int]]`):
            Ordered mapping of task name to its number of labels (or a list of `[name, count]` pairs, the form it is
            saved in); the order defines the task ids, heads, task-embedding rows and statistics rows. JSON writers
            sort mapping keys, so the config saves it as a list; a saved mapping of several tasks is refused on load.
            The count is the head's number of outputs: >= 2 classes (single-label), >= 1 labels (multi-label), 1
            (regression).
        task_problem_types (`dict[str, str]` or `list[[str, str]]`, *optional*):
            Problem type per task, one of "single_label" (default), "multi_label", "regression"; saved as an
            ordered list. `problem_type` (transformers' name) is the default task's; without per-task types a given
            `problem_type` applies to every task, with them a `problem_type` that contradicts is refused.
        task_thresholds (`dict[str, float | list[float]]` or `list[[str, ...]]`, *optional*):
            Decision threshold on the sigmoid probability of each multi-label task (default 0.5): one number for
            every label of the task, or a list with one per label (what `surgellm calibrate` fits).
        task_temperatures (`dict[str, float]` or `list[[str, float]]`, *optional*):
            Temperature of each calibrated classification task: its scores are softmax / sigmoid of logits / T
            (`surgellm calibrate` fits them on a validation split; a task without one is scored with T = 1).
        iwn_regression_bins (`int`): number of quantile bins of a regression target that IWN uses as classes (4).
        task_label_names (`dict[str, list[str]]` or `list[[str, list[str]]]`, *optional*):
            Label names per task (length must equal the task's label count). `id2label`/`label2id` are those of the
            default task, so generic tools (the Hub widget, the text-classification pipeline) show real names.
        default_task (`str`, *optional*):
            Task used when a forward pass gets no `task_ids`; defaults to the first task.
        use_gate (`bool`): surgical feature gate over [CLS] and lexical features (docs/method.md#model). Off: z = h.
        use_task_embedding (`bool`): add `task_embedding_scale * E[t]` to h before the gate.
        norm (`str`): feature normalization, one of "none", "standard", "iwn" (docs/method.md#normalization).
        task_embedding_scale (`float`): scale of the task embedding (0.1 in the paper).
        num_features (`int`): width of the raw feature vector s(x) (n_groups + 6; 16 for the curated lexicon).
        feature_names (`list[str]`, *optional*): names of the features, checked against the processor's lexicon.
        head_hidden_size (`int`, *optional*): hidden width of each task head; defaults to hidden_size // 2.
        head_dropout (`float`): dropout before the first head layer (0.1).
        head_inner_dropout (`float`): dropout before the last head layer (0.05).
        norm_eps (`float`): epsilon added to the standard deviation (1e-6).
        encoder_name_or_path (`str`, *optional*): where the encoder weights came from (used by adapters).
        initializer_range (`float`): std of the normal init of new weights (0.02).
        soft_prefix_length (`int`): virtual tokens of the soft prefix (`prefix_style: soft`), inserted after the
            first token as input embeddings: 0 (none, the default), 1 (task prompt + feature projection summed) or 2
            (the task prompt, then the feature projection).
        long_text_pool (`str`, `dict[str, str]` or `list[[str, str]]`, *optional*): how the window states of a
            long text are pooled ("mean", "max" or "first"): one name for every task, or per task (saved as an
            ordered list); tasks not named pool by "mean". Used only when the inputs carry `num_windows`.
    """

    model_type = "surge"
    sub_configs_defaults = {"encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder_config: dict | PreTrainedConfig | None = None
    tasks: dict[str, int] | list | None = None
    task_label_names: dict[str, list[str]] | list | None = None
    task_problem_types: dict[str, str] | list | None = None
    task_thresholds: dict[str, float | list[float]] | list | None = None
    task_temperatures: dict[str, float] | list | None = None
    iwn_regression_bins: int = 4
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
    soft_prefix_length: int = 0
    long_text_pool: str | dict[str, str] | list | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        num_labels = kwargs.pop("num_labels", None)
        given_id2label = self.id2label
        given_label2id = self.label2id
        super().__post_init__(**kwargs)
        if self.tasks is None:
            self.tasks = {"default": 2}
        self._validate()
        self._sync_labels(num_labels, given_id2label, given_label2id)
        self.problem_type = info(self.task_problem_types[self.default_task]).hf_name

    def _sync_labels(self, num_labels: Any, id2label: Any, label2id: Any) -> None:
        """Make `num_labels`/`id2label`/`label2id` the default task's; refuse values that say otherwise."""
        names = self.label_names(self.default_task)
        expected = dict(enumerate(names))
        if num_labels is not None and num_labels != len(names):
            raise ValueError(
                f"num_labels={num_labels!r} does not match the SURGELLM tasks: the default task "
                f"{self.default_task!r} has {len(names)} labels ({self.task_summary()}). Label counts are set per "
                "task through `tasks`; a different head needs a new model with other `tasks`."
            )
        if id2label is not None:
            try:
                given = {int(k): v for k, v in dict(id2label).items()}
            except (TypeError, ValueError):
                raise ValueError(f"`id2label` must map integer ids to names, got {id2label!r}.") from None
            if given != expected:
                raise ValueError(
                    f"`id2label` {given} does not match the default task {self.default_task!r}, whose labels are "
                    f"{expected}; set label names per task with `task_label_names`."
                )
        if label2id is not None and dict(label2id) != {v: k for k, v in expected.items()}:
            raise ValueError(
                f"`label2id` {dict(label2id)} does not match the default task {self.default_task!r}, whose labels "
                f"are {expected}; set label names per task with `task_label_names`."
            )
        self.id2label = expected
        self.label2id = {v: k for k, v in expected.items()}

    def task_summary(self) -> str:
        """The tasks and their label counts as one readable string, e.g. ``sst2: 2, llm7: 3``."""
        return ", ".join(f"{n}: {c}" for n, c in self.tasks.items())

    def _validate(self) -> None:
        """Check every field; raise a ValueError naming the problem (called before any model is built)."""
        self.tasks = _ordered_tasks(self.tasks)
        self._validate_problem_types()
        if self.task_label_names is not None:
            label_names = _pairs_to_dict(self.task_label_names, "task_label_names")
            for name, labels in label_names.items():
                if name not in self.tasks:
                    raise ValueError(
                        f"`task_label_names` names unknown task {name!r}; tasks are {self.task_names}."
                    )
                if isinstance(labels, str) or len(labels) != self.tasks[name]:
                    raise ValueError(
                        f"Task {name!r} has {self.tasks[name]} labels but {len(labels)} label names: {labels!r}."
                    )
            self.task_label_names = {n: list(label_names[n]) for n in self.tasks if n in label_names}
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
        if isinstance(self.soft_prefix_length, bool) or self.soft_prefix_length not in SOFT_PREFIX_LENGTHS:
            raise ValueError(
                f"`soft_prefix_length` must be one of {SOFT_PREFIX_LENGTHS} (0: no soft prefix), got "
                f"{self.soft_prefix_length!r}."
            )
        self.long_text_pool = self._validated_pools(self.long_text_pool)
        check_encoder_config(self.encoder_config)

    def _validated_pools(self, value: Any) -> str | dict[str, str] | None:
        """`long_text_pool` checked: None, one pool name, or {task: pool name} in task order."""
        if value is None or isinstance(value, str):
            if value is not None and value not in LONG_TEXT_POOLS:
                raise ValueError(f"`long_text_pool` must be one of {LONG_TEXT_POOLS}, got {value!r}.")
            return value
        pools = _pairs_to_dict(value, "long_text_pool")
        unknown = [n for n in pools if n not in self.tasks]
        if unknown:
            raise ValueError(
                f"`long_text_pool` names unknown task(s) {unknown}; tasks are {self.task_names}."
            )
        bad = {n: p for n, p in pools.items() if p not in LONG_TEXT_POOLS}
        if bad:
            raise ValueError(f"`long_text_pool` {bad}: each pool must be one of {list(LONG_TEXT_POOLS)}.")
        return {n: pools[n] for n in self.tasks if n in pools}

    def pool_of(self, task: str | int | None = None) -> str:
        """How the window states of a long text of `task` are pooled ("mean" unless `long_text_pool` says)."""
        name = self.task_names[self.task_id(task)]
        pools = self.long_text_pool
        if isinstance(pools, str):
            return pools
        return (pools or {}).get(name, "mean")

    def _validate_problem_types(self) -> None:
        """Resolve `task_problem_types` (all single-label by default) against `problem_type` and the label counts;
        resolve `task_thresholds` of the multi-label tasks."""
        by_hf: dict[str, str] = {}  # transformers' name -> the first type registered under it
        for kind in type_names():
            by_hf.setdefault(info(kind).hf_name, kind)
        if self.problem_type is not None and self.problem_type not in by_hf:
            raise ValueError(
                f"problem_type={self.problem_type!r} is not one of transformers' {list(by_hf)}; SURGELLM sets "
                f"types per task with `task_problem_types` ({list(type_names())})."
            )
        if self.task_problem_types is None:
            # transformers' meaning: the model's problem type, i.e. every task's (old configs: all single-label)
            kind = by_hf[self.problem_type] if self.problem_type else DEFAULT_PROBLEM_TYPE
            types = dict.fromkeys(self.tasks, kind)
        else:
            given = _pairs_to_dict(self.task_problem_types, "task_problem_types")
            unknown = [n for n in given if n not in self.tasks]
            if unknown:
                raise ValueError(
                    f"`task_problem_types` names unknown task(s) {unknown}; tasks are {self.task_names}."
                )
            bad = {n: t for n, t in given.items() if t not in type_names()}
            if bad:
                raise ValueError(
                    f"`task_problem_types` {bad}: each type must be one of {list(type_names())}."
                )
            types = {n: given.get(n, DEFAULT_PROBLEM_TYPE) for n in self.tasks}
            default = self.default_task if self.default_task in types else self.task_names[0]
            if self.problem_type is not None and info(types[default]).hf_name != self.problem_type:
                raise ValueError(
                    f"problem_type={self.problem_type!r} contradicts the per-task types: the default task "
                    f"{default!r} is {types[default]!r} ({info(types[default]).hf_name!r}); task types are "
                    f"{types}. A task's type is fixed by its head and training; change it with "
                    "`task_problem_types` on a new model, or drop `problem_type`."
                )
        origin = (
            f" (problem_type={self.problem_type!r} sets every task's type)"
            if self.task_problem_types is None and self.problem_type
            else ""
        )
        for name, kind in types.items():
            problem = info(kind).label_count_error(name, self.tasks[name])
            if problem:
                raise ValueError(f"{problem}{origin}.")
        self.task_problem_types = types
        thresholds = (
            {} if self.task_thresholds is None else _pairs_to_dict(self.task_thresholds, "task_thresholds")
        )
        wrong = [n for n in thresholds if n not in types or not info(types[n]).has_thresholds]
        if wrong:
            raise ValueError(
                f"`task_thresholds` names task(s) {wrong} that are not {_titles(lambda t: t.has_thresholds)} tasks."
            )
        self.task_thresholds = {
            n: _check_threshold(n, thresholds.get(n, 0.5), self.tasks[n])
            for n, k in types.items()
            if info(k).has_thresholds
        }
        temperatures = (
            {}
            if self.task_temperatures is None
            else _pairs_to_dict(self.task_temperatures, "task_temperatures")
        )
        wrong = [n for n in temperatures if n not in types or not info(types[n]).has_classes]
        if wrong:
            raise ValueError(
                f"`task_temperatures` names task(s) {wrong} that are not classification tasks "
                f"(tasks: {self.task_names})."
            )
        for name, value in temperatures.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"Temperature of task {name!r} must be a finite number > 0, got {value!r}.")
        self.task_temperatures = {n: float(temperatures[n]) for n in self.tasks if n in temperatures}
        bins = self.iwn_regression_bins
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            raise ValueError(f"`iwn_regression_bins` must be an integer >= 2, got {bins!r}.")

    def problem_type_of(self, task: str | int | None = None) -> str:
        """The problem type of a task (name or id; None: the default task)."""
        return self.task_problem_types[self.task_names[self.task_id(task)]]

    def threshold_of(self, task: str | int | None = None) -> float | list[float]:
        """The decision threshold of a multi-label task: one number, or one per label (calibrated)."""
        name = self.task_names[self.task_id(task)]
        if name not in self.task_thresholds:
            raise ValueError(
                f"Task {name!r} is {self.problem_type_of(name)!r}, not multi-label: no threshold."
            )
        return self.task_thresholds[name]

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PreTrainedConfig:
        """The wrapped encoder's config: generic code (resizing, special-token alignment) reads vocab_size there."""
        return self.encoder_config

    def to_dict(self) -> dict[str, Any]:
        """Serialize with `tasks` and `task_label_names` as lists in task order (JSON writers sort mapping keys)."""
        output = super().to_dict()
        output["tasks"] = [[name, count] for name, count in self.tasks.items()]
        output["task_problem_types"] = [[name, self.task_problem_types[name]] for name in self.tasks]
        output["task_thresholds"] = [[name, value] for name, value in self.task_thresholds.items()]
        if isinstance(self.long_text_pool, Mapping):
            output["long_text_pool"] = [[name, pool] for name, pool in self.long_text_pool.items()]
        output["task_temperatures"] = [[name, value] for name, value in self.task_temperatures.items()]
        if self.task_label_names is not None:
            output["task_label_names"] = [
                [name, list(self.task_label_names[name])]
                for name in self.tasks
                if name in self.task_label_names
            ]
        return output

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> SurgeConfig:
        """Load a saved config; SURGELLM fields passed as kwargs are validated with it, not set afterwards.

        A saved `tasks` mapping of several tasks is refused: JSON writers sort keys, so its order (which indexes the
        heads, task embeddings and statistics) cannot be known for sure.
        """
        config_dict = dict(config_dict)
        if (
            any(k in kwargs for k in ("tasks", "task_label_names", "task_problem_types", "default_task"))
            and "id2label" not in kwargs
        ):
            # the saved id2label/label2id were derived from the saved default task; derive them anew
            config_dict.pop("id2label", None)
            config_dict.pop("label2id", None)
        if "tasks" in kwargs:
            _keep_saved_task_settings(config_dict, kwargs)
        if (
            any(k in kwargs for k in ("tasks", "task_problem_types", "default_task"))
            and "problem_type" not in kwargs
            and (config_dict.get("task_problem_types") is not None or "task_problem_types" in kwargs)
        ):
            config_dict.pop(
                "problem_type", None
            )  # derived from the saved default task's type; derive it anew
        tasks = config_dict.get("tasks")
        if isinstance(tasks, Mapping) and len(tasks) > 1 and "tasks" not in kwargs:
            raise ValueError(_UNORDERED_TASKS_MESSAGE.format(tasks=list(tasks)))
        for key in _VALIDATED_ON_LOAD:  # a Python mapping passed here keeps its order
            if key in kwargs:
                config_dict[key] = kwargs.pop(key)
        return super().from_dict(config_dict, **kwargs)

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

    def task_id(self, task: str | int | None = None) -> int:
        """Map a task name or id (None: the default task) to its id, with an error that lists the valid tasks."""
        return resolve_task_id(task, self.task_names, self.default_task)

    def label_names(self, task: str) -> list[str]:
        """Label names of a task (``LABEL_<i>`` where none were given)."""
        self.task_id(task)
        names = (self.task_label_names or {}).get(task)
        return list(names) if names else [f"LABEL_{i}" for i in range(self.tasks[task])]


def resolve_task_id(
    task: str | int | None, task_names: Sequence[str], default_task: str | None = None
) -> int:
    """The id of a task given by name or id (None: `default_task`) among `task_names`, the one place task names
    are resolved (config, model, processor, pipeline); errors list the valid tasks."""
    if task is None:
        if default_task is None:
            raise ValueError(f"No task given and no default task; valid tasks are {list(task_names)}.")
        task = default_task
    if isinstance(task, numbers.Integral) and not isinstance(task, bool):
        if not 0 <= int(task) < len(task_names):
            raise ValueError(
                f"Unknown task id {task}; valid ids are 0..{len(task_names) - 1} for {list(task_names)}."
            )
        return int(task)
    if not isinstance(task, str):
        raise TypeError(
            f"A task must be a task name (str) or id (int), got {type(task).__name__} ({task!r:.40})."
        )
    if task not in task_names:
        raise ValueError(f"Unknown task {task!r}; valid tasks are {list(task_names)}.")
    return list(task_names).index(task)


def check_encoder_config(encoder_config: PreTrainedConfig) -> None:
    """Refuse, with a ValueError naming the reason, an encoder SURGELLM cannot wrap (checked once, in the config)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES

    model_type = getattr(encoder_config, "model_type", None)
    if model_type not in MODEL_MAPPING_NAMES:
        raise ValueError(f"Encoder type {model_type!r} has no AutoModel class; it cannot be wrapped.")
    if getattr(encoder_config, "is_encoder_decoder", False):
        raise ValueError(
            f"Encoder type {model_type!r} is an encoder-decoder model; SURGELLM wraps a bidirectional text "
            "encoder whose first-token state is pooled (BERT, RoBERTa, DeBERTa-v2, DistilBERT, ELECTRA, XLM-R)."
        )
    if getattr(encoder_config, "is_decoder", False) or model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ValueError(
            f"Encoder type {model_type!r} is not a bidirectional (masked-LM) text encoder; SURGELLM pools the "
            "first-token state of encoders such as BERT, RoBERTa, DeBERTa-v2, DistilBERT, ELECTRA, XLM-R."
        )
    if getattr(encoder_config, "hidden_size", None) is None:
        raise ValueError(f"Encoder type {model_type!r} has no `hidden_size`; it cannot be wrapped.")


_VALIDATED_ON_LOAD = (
    "tasks",
    "task_label_names",
    "task_problem_types",
    "task_thresholds",
    "task_temperatures",
    "default_task",
    "id2label",
    "label2id",
    "problem_type",
    "num_features",
    "feature_names",
    "norm",
    "soft_prefix_length",
    "long_text_pool",
)

_UNORDERED_TASKS_MESSAGE = (
    "This config stores `tasks` as a mapping {tasks}, the form surgellm_hf 0.1 wrote; JSON serialization sorts "
    "mapping keys, so the task order (which indexes the heads, task embeddings and statistics) cannot be known for "
    "sure and is not guessed. Pass the training order explicitly, e.g. from_pretrained(path, tasks=[['sst2', 2], "
    "['llm7', 2]]), and save the model again (it now saves tasks as an ordered list)."
)


def _keep_saved_task_settings(config_dict: dict[str, Any], kwargs: Mapping[str, Any]) -> None:
    """`from_pretrained(path, tasks=...)`: keep the saved problem types, thresholds and label names of the tasks
    named (the saved ones of other tasks are dropped); a label count that contradicts a kept type is refused."""
    tasks = _ordered_tasks(kwargs["tasks"])
    saved_types = config_dict.get("task_problem_types")
    if "task_problem_types" not in kwargs and saved_types is not None:
        types = {n: t for n, t in _pairs_to_dict(saved_types, "task_problem_types").items() if n in tasks}
        for name, kind in types.items():
            count = tasks[name]
            if not info(kind).accepts_label_count(count):
                raise ValueError(
                    f"tasks= gives task {name!r} {count} label(s), but the saved config makes it a {kind} task "
                    f"({info(kind).label_need}); keep its label count, or pass task_problem_types= to give it "
                    "another type (a new head, trained anew)."
                )
        config_dict["task_problem_types"] = [[n, types[n]] for n in tasks if n in types]
        if "task_thresholds" not in kwargs and config_dict.get("task_thresholds") is not None:
            limits = _pairs_to_dict(config_dict["task_thresholds"], "task_thresholds")
            config_dict["task_thresholds"] = [
                [n, limits[n]] for n in tasks if n in limits and n in types and info(types[n]).has_thresholds
            ]
        if "task_temperatures" not in kwargs and config_dict.get("task_temperatures") is not None:
            fitted = _pairs_to_dict(config_dict["task_temperatures"], "task_temperatures")
            config_dict["task_temperatures"] = [
                [n, fitted[n]]
                for n in tasks
                if n in fitted and info(types.get(n, DEFAULT_PROBLEM_TYPE)).has_classes
            ]
    if "task_label_names" not in kwargs and config_dict.get("task_label_names") is not None:
        names = _pairs_to_dict(config_dict["task_label_names"], "task_label_names")
        config_dict["task_label_names"] = [[n, names[n]] for n in tasks if n in names]


def _titles(test: Any) -> str:
    """The message names of the problem types passing `test` ("multi-label", "single-label or multi-label")."""
    return " or ".join(info(k).title.lower() for k in types_where(test))


def _check_threshold(task: str, value: Any, num_labels: int) -> float | list[float]:
    """A multi-label task's threshold: a number in (0, 1), or a list of one such number per label."""

    def number(v: Any) -> bool:
        return not isinstance(v, bool) and isinstance(v, numbers.Real) and 0 < v < 1

    if isinstance(value, (list, tuple)):
        if len(value) != num_labels or not all(number(v) for v in value):
            raise ValueError(
                f"Per-label thresholds of task {task!r} must be {num_labels} numbers in (0, 1) (one per label), "
                f"got {list(value)!r}."
            )
        return [float(v) for v in value]
    if not number(value):
        raise ValueError(f"Threshold of task {task!r} must be a number in (0, 1), got {value!r}.")
    return float(value)


def _pairs_to_dict(value: Any, field: str) -> dict:
    """A mapping, or a list of ``[key, value]`` pairs (the saved form), as an ordered dict; duplicate keys refused."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        out: dict = {}
        for item in value:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise ValueError(f"`{field}` as a list must hold [name, value] pairs, got item {item!r}.")
            if item[0] in out:
                raise ValueError(f"`{field}` names {item[0]!r} twice.")
            out[item[0]] = item[1]
        return out
    raise ValueError(f"`{field}` must be a mapping or a list of [name, value] pairs, got {value!r}.")


def _ordered_tasks(tasks: Any) -> dict[str, int]:
    """Validate `tasks` (mapping or list of [name, count] pairs) into an ordered dict of name -> label count."""
    if not tasks:
        raise ValueError(f"`tasks` must be a non-empty mapping of task name to label count, got {tasks!r}.")
    ordered = _pairs_to_dict(tasks, "tasks")
    for name, count in ordered.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"Task names must be non-empty strings, got {name!r}.")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"Task {name!r} must have a positive integer label count, got {count!r}.")
    return ordered


# Saving copies this file beside the weights and writes auto_map, so the Hub can load it as remote code.
SurgeConfig.register_for_auto_class()

__all__ = [
    "SurgeConfig",
    "NORM_CHOICES",
    "LONG_TEXT_POOLS",
    "SOFT_PREFIX_LENGTHS",
    "PROBLEM_TYPES",
    "HF_PROBLEM_TYPES",
    "check_encoder_config",
    "resolve_task_id",
]
