"""`RunConfig`: everything one training run needs, read from a YAML file with `key=value` overrides."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..encoders import BUNDLED_ENCODER
from .variants import VARIANTS, Variant, get_variant

LEXICON_CHOICES = ("curated", "extracted", "random")
FROZEN_MODULE_LR_SCALE = 100.0
"""Default `module_lr_scale` with a frozen encoder: best of 10 / 100 / 1000 on the frozen MiniLM protocol (benchmarks/
README.md, "Learning rate of the modules and heads"); a full fine-tune keeps the paper's single rate (1) by default,
as no full fine-tune was measured."""
MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")


@dataclass
class RunConfig:
    """Everything one training run needs; `surgellm train --config run.yaml key=value ...` fills it."""

    data: dict[str, Any] = field(
        metadata={
            "help": "Where the tasks come from: {'folder': path, 'tasks': [...]?, 'max_rows': {...}?} for a "
            "<task>/{train,validation,test}.jsonl layout, {'tasks': {name: TaskSpec fields}} for Hub ids or files, "
            "or {'preset': 'paper_hub'}."
        }
    )
    output_dir: str = field(
        default="runs/{variant}-seed{seed}", metadata={"help": "Run folder ({variant}, {seed} filled)."}
    )
    encoder: str = field(default=BUNDLED_ENCODER, metadata={"help": "Hub id or path of the encoder."})
    variant: str = field(default="IWN", metadata={"help": f"One of {list(VARIANTS)}."})
    epochs: int | None = field(
        default=None, metadata={"help": "Epoch budget; default the variant's (paper)."}
    )
    equal_budget: bool = field(
        default=False,
        metadata={"help": "Fair control: ignore the variant's epochs and use `epochs` for every variant."},
    )
    learning_rate: float | None = field(default=None, metadata={"help": "Default the variant's (paper)."})
    lexicon: str = field(
        default="curated", metadata={"help": "curated, extracted, random, or a lexicon JSON path."}
    )
    prefix_style: str = field(
        default="text",
        metadata={
            "help": "Prefix style when the variant has P: text (the paper's, in the encoder's vocabulary; the "
            "default: higher average macro-F1 in a CPU full fine-tune, docs/benchmarks.md#cpu-full-fine-tunes; needs "
            "max_length >= ~90 with MiniLM), tokens (compact, n_features + 1 added tokens: 17 instead of 86, "
            "faster, and better there on the long-text tasks) or soft (`soft_prefix_length` virtual token "
            "embeddings built from a learned task prompt and a learned projection of the normalized features, "
            "inserted after the first token: 1-2 positions)."
        },
    )
    soft_prefix_length: int = field(
        default=2,
        metadata={
            "help": "Virtual tokens of `prefix_style: soft`: 2 (the task prompt, then the feature projection) or 1 "
            "(their sum). Ignored by the other prefix styles."
        },
    )
    long_text: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Read long texts whole: {max_chunks: K, stride: S, pool: mean | max | first, tasks: {name: "
            "{...}}}. A text longer than one input is split into up to K windows of max_length tokens (the prefix "
            "on each, the features of the whole text), consecutive windows overlapping by S tokens; the windows' "
            "first-token states are pooled before the gate. `tasks` overrides keys per task (a task not named "
            "takes the run-wide values). null or max_chunks 1: truncation, as without it. Not for sentence-pair "
            "tasks."
        },
    )
    selection_split: float | dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Select on one split, report on another: a fraction (or {fraction: f, seed: s}) of each task's "
            "training rows, stratified and seeded, is carved out before anything else as the `selection` split; "
            "early stopping selects the epoch on it, and validation is only reported. null: select on validation."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of model init, data order and dropout."})
    lexicon_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the extracted (k-means) and random lexicons; apart from `seed`, so runs of seeds "
            "0, 1, 2 compare models on one lexicon."
        },
    )
    batch_size: int = field(
        default=32, metadata={"help": "Effective batch size (per device x accumulation x devices)."}
    )
    per_device_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Default: batch_size / devices. A run folder is resumed or reused only where the per-device "
            "and the effective batch are the ones it trained with (set this to resume on another device count)."
        },
    )
    max_length: int = field(default=128, metadata={"help": "Tokens per input, prefix included."})
    warmup_ratio: float = field(default=0.06, metadata={"help": "Linear warm-up share of the steps."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping."})
    patience: int = field(
        default=2, metadata={"help": "Early stopping patience in epochs (strict improvement)."}
    )
    freeze_encoder: bool = field(
        default=False, metadata={"help": "Train only the SURGELLM modules and heads."}
    )
    task_sampling: str = field(
        default="proportional",
        metadata={
            "help": "How often each task's (task-homogeneous) batches come in an epoch: proportional (to its size: "
            "every example once per epoch), equal (every task equally often) or temperature (p_t ∝ n_t^(1/T))."
        },
    )
    temperature: float = field(
        default=2.0,
        metadata={"help": "T of `task_sampling: temperature` (1 = proportional, large = equal); T5 used 2."},
    )
    class_weights: str | dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Weighted loss: null (none), 'balanced' (every classification task from its training labels: "
            "single-label n / (K * n_c), multi-label pos_weight n_neg / n_pos per label; regression tasks get none), "
            "or {task: 'balanced' | [one weight per label]} for some classification tasks."
        },
    )
    lora: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "LoRA on the encoder (the SURGELLM modules and heads train fully): {r: 8, alpha: 16, dropout: "
            "0.1, target_modules: [...]} (target_modules default: the encoder family's attention projections); "
            "the run folder then holds only the adapter."
        },
    )
    cache_encoder_outputs: bool = field(
        default=True,
        metadata={
            "help": "With freeze_encoder: compute the encoder's first-token states once per example and split and "
            "train the modules and heads on them (same predictions in fp32, many times faster; in bf16/fp16 the "
            "states differ by ~5e-3, so a run folder is resumed or reused only with the same setting there). "
            "false: run the frozen encoder every step. No effect on a trained encoder."
        },
    )
    encoder_cache_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder keeping cached first-token states on disk, keyed by a hash of the encoder weights and "
            "each example's encoder input, so runs of other variants or seeds with the same input reuse them."
        },
    )
    module_lr_scale: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the SURGELLM modules (task embedding, feature projection, gate, fusion "
            "LayerNorm, normalizer) and the task heads, as a multiple of learning_rate (the encoder's rate). "
            "Default: 100 with freeze_encoder (measured), else 1 (the paper's single rate)."
        },
    )
    mixed_precision: str = field(
        default="auto",
        metadata={
            "help": "auto (bf16/fp16 on GPU, fp32 on CPU), no, bf16 or fp16. A run folder is resumed or reused by "
            "the precision this resolves to on the machine, not by the word."
        },
    )
    resume: bool = field(
        default=True,
        metadata={
            "help": "Resume from the last checkpoint in the run folder (only a run of the same configuration)."
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "Start fresh: delete what an earlier run wrote in the run folder (weights, checkpoints, metrics, "
            "reports) before training; files no run writes are kept. Without it a folder holding another "
            "configuration's run is refused."
        },
    )
    eval_batch_size: int = field(default=64, metadata={"help": "Evaluation batch size per device."})
    logging_steps: int = field(default=10, metadata={"help": "Log the training loss every N steps."})
    disable_tqdm: bool = field(default=False, metadata={"help": "Hide progress bars."})
    save_checkpoints: bool = field(
        default=True,
        metadata={
            "help": "Keep epoch checkpoints (needed to resume). Without them the best weights are kept in memory "
            "(a CPU copy) for early stopping."
        },
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "Keep checkpoints/ after the run has finished. By default it is deleted once metrics.json is "
            "written (the best weights are already in the run folder); checkpoints stay while a run is unfinished, "
            "for resuming."
        },
    )
    report_to: str | list[str] | None = field(
        default=None,
        metadata={
            "help": "Experiment trackers the Trainer logs to, as TrainingArguments takes them: a name or a list "
            "(tensorboard, mlflow, wandb, trackio...; all: every installed one); null or none: no tracker. The "
            "run settings (resolved run config, lexicon hash, task order) and the final per-task metrics are "
            "logged there too."
        },
    )
    run_name: str | None = field(
        default=None,
        metadata={
            "help": "Name of the run in the trackers (TrainingArguments.run_name); default the run folder's name."
        },
    )
    push_to_hub: bool = field(
        default=False,
        metadata={
            "help": "Push to the Hub while training (as hub_strategy says) and when the run ends: the model, the "
            "processor and lexicon, and the SURGELLM model card."
        },
    )
    hub_model_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub repo of push_to_hub and resume_from: hub (namespace/name); for a push, default the run "
            "folder's name in the token's namespace."
        },
    )
    hub_strategy: str = field(
        default="every_save",
        metadata={
            "help": "What push_to_hub pushes, as in TrainingArguments: end (once, the finished run), every_save (also "
            "after each epoch's save), checkpoint (also the last checkpoint, in last-checkpoint/, for resuming on "
            "another machine) or all_checkpoints (every checkpoint, in checkpoint-N/)."
        },
    )
    hub_private_repo: bool | None = field(
        default=None,
        metadata={
            "help": "Create the Hub repo private (null: the namespace's default); an existing repo keeps its setting."
        },
    )
    resume_from: str | None = field(
        default=None,
        metadata={
            "help": "hub: resume from the checkpoint that hub_strategy: checkpoint (or all_checkpoints) pushed to "
            "hub_model_id, when it is newer than the run folder's own (e.g. in a fresh folder on a new machine)."
        },
    )
    license: str | None = field(
        default=None,
        metadata={
            "help": "License of the model card (a Hub license id such as apache-2.0 or mit); default the base "
            "encoder's license where its card says it, else none."
        },
    )

    def __post_init__(self) -> None:
        variant = get_variant(self.variant)
        self.variant = variant.name
        if not isinstance(self.data, Mapping) or not self.data:
            raise ValueError(
                "`data` must be a mapping: {'folder': ...}, {'tasks': {...}} or {'preset': 'paper_hub'}."
            )
        if self.equal_budget and self.epochs is None:
            raise ValueError("`equal_budget: true` needs `epochs`, the budget shared by every variant.")
        if self.prefix_style not in PREFIX_STYLE_CHOICES:
            raise ValueError(
                f"`prefix_style` must be one of {list(PREFIX_STYLE_CHOICES)}, got {self.prefix_style!r}."
            )
        if isinstance(self.soft_prefix_length, bool) or self.soft_prefix_length not in (1, 2):
            raise ValueError(f"`soft_prefix_length` must be 1 or 2, got {self.soft_prefix_length!r}.")
        if self.mixed_precision is False:  # YAML 1.1 reads `mixed_precision: no` as false
            self.mixed_precision = "no"
        self.long_text = _normalize_long_text(self.long_text)
        self.selection_split = _normalize_selection_split(self.selection_split)
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ValueError(
                f"`mixed_precision` must be auto, no, bf16 or fp16, got {self.mixed_precision!r}."
            )
        for name in ("batch_size", "max_length", "patience", "eval_batch_size", "logging_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        for name in ("seed", "lexicon_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")
        for name in (
            "resume",
            "overwrite",
            "save_checkpoints",
            "equal_budget",
            "freeze_encoder",
            "cache_encoder_outputs",
            "keep_checkpoints",
            "push_to_hub",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be true or false, got {getattr(self, name)!r}.")
        if self.per_device_batch_size is not None and (
            isinstance(self.per_device_batch_size, bool)
            or not isinstance(self.per_device_batch_size, int)
            or self.per_device_batch_size < 1
        ):
            raise ValueError(
                f"`per_device_batch_size` must be a positive integer or null, got {self.per_device_batch_size!r}."
            )
        if self.epochs is not None and (
            isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1
        ):
            raise ValueError(f"`epochs` must be a positive integer, got {self.epochs!r}.")
        for name, (low, high) in _FLOAT_RANGES.items():
            _check_number(name, getattr(self, name), low, high)
        _check_output_dir(self.output_dir, self.variant, self.seed)
        if self.freeze_encoder and self.variant_spec.use_prefix and self.prefix_style == "tokens":
            raise ValueError(
                "freeze_encoder with prefix_style: tokens is refused: the compact prefix adds new token embeddings "
                "(mean-initialised) that a frozen encoder never trains, so the prefix would carry no learned "
                "meaning. Use prefix_style: text (the paper's prefix, in the encoder's own vocabulary), or a "
                "variant without the prefix (baseline)."
            )
        if (
            self.freeze_encoder
            and self.cache_encoder_outputs
            and self.variant_spec.use_prefix
            and self.prefix_style == "soft"
        ):
            raise ValueError(
                "freeze_encoder with prefix_style: soft cannot use cached encoder outputs: the soft prefix's virtual "
                "tokens are encoder inputs built from trainable parameters, so the encoder's states change every "
                "step. Set cache_encoder_outputs: false (the frozen encoder then runs every step, as prompt tuning "
                "does), or use prefix_style: text."
            )
        from .sampler import check_task_sampling

        if isinstance(self.temperature, int) and not isinstance(self.temperature, bool):
            self.temperature = float(self.temperature)
        check_task_sampling(self.task_sampling, self.temperature)
        _check_class_weights_shape(self.class_weights)
        self.lora = _normalize_lora(self.lora)
        if self.lora and self.freeze_encoder:
            raise ValueError("`lora` adapts the encoder and `freeze_encoder: true` freezes it; choose one.")
        if self.lexicon not in LEXICON_CHOICES and not str(self.lexicon).endswith(".json"):
            raise ValueError(
                f"`lexicon` must be one of {LEXICON_CHOICES} or a path to a lexicon .json, got {self.lexicon!r}."
            )
        self.report_to = _check_report_to_names(self.report_to)
        for name in ("run_name", "license"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip() or "\n" in value):
                raise ValueError(f"`{name}` must be a one-line name or null, got {value!r}.")
        _check_hub_settings(self)

    @property
    def variant_spec(self) -> Variant:
        """The variant's row of the table (`VARIANTS`)."""
        return get_variant(self.variant)

    @property
    def num_epochs(self) -> int:
        """The epoch budget: `epochs` when given, else the variant's."""
        return self.epochs if (self.equal_budget or self.epochs is not None) else self.variant_spec.epochs

    @property
    def lr(self) -> float:
        """The learning rate: `learning_rate` when given, else the variant's."""
        return float(
            self.learning_rate if self.learning_rate is not None else self.variant_spec.learning_rate
        )

    @property
    def module_lr_multiplier(self) -> float:
        """`module_lr_scale` resolved: given, else 100 with a frozen encoder and 1 otherwise."""
        if self.module_lr_scale is not None:
            return float(self.module_lr_scale)
        return FROZEN_MODULE_LR_SCALE if self.freeze_encoder else 1.0

    @property
    def run_dir(self) -> Path:
        """The run folder: `output_dir` with {variant} and {seed} filled in."""
        return Path(self.output_dir.format(variant=self.variant, seed=self.seed))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], base_dir: str | os.PathLike | None = None) -> RunConfig:
        """Build from a parsed YAML mapping; unknown keys are an error naming them; relative paths resolve
        against `base_dir` (the YAML file's folder)."""
        if not isinstance(mapping, Mapping):
            raise ValueError(f"A run config must be a mapping of settings, got {type(mapping).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - known)
        if unknown:
            raise ValueError(f"Unknown run config key(s) {unknown}; valid keys are {sorted(known)}.")
        if "data" not in mapping:
            raise ValueError("The run config needs a `data` section.")
        values = dict(mapping)
        for key in _FLOAT_FIELDS:  # YAML 1.1 reads 3e-5 (no dot) as a string
            if isinstance(values.get(key), str):
                try:
                    values[key] = float(values[key])
                except ValueError:
                    raise ValueError(f"`{key}` must be a number, got {values[key]!r}.") from None
        if base_dir is not None:
            values["data"] = _resolve_paths(dict(values["data"]), Path(base_dir))
            for key in ("encoder", "lexicon"):
                value = values.get(key)
                if isinstance(value, str) and value.startswith(("./", "../")):
                    values[key] = str((Path(base_dir) / value).resolve())
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain JSON-able values."""
        return dataclasses.asdict(self)


_FLOAT_RANGES: dict[str, tuple[str, str | None]] = {
    "learning_rate": ("> 0", None),
    "warmup_ratio": (">= 0", "< 1"),
    "weight_decay": (">= 0", None),
    "adam_epsilon": ("> 0", None),
    "max_grad_norm": (">= 0", None),  # 0: no clipping (the Trainer's meaning)
    "module_lr_scale": ("> 0", None),
    "temperature": ("> 0", None),
}
"""The float settings and their allowed ranges (every one also finite: NaN and infinity are refused)."""
_FLOAT_FIELDS = tuple(_FLOAT_RANGES)


def _check_number(name: str, value: Any, low: str, high: str | None) -> None:
    """Refuse a float setting that is not a finite number within `low` (e.g. '> 0') and `high` (e.g. '< 1');
    None passes (a default that resolves later)."""
    if value is None:
        return
    op, bound = low.split()
    number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if (
        not number
        or (value <= float(bound) if op == ">" else value < float(bound))
        or (high is not None and value >= float(high.split()[1]))
    ):
        allowed = f"{low}{f' and {high}' if high else ''}"
        raise ValueError(f"`{name}` must be a finite number {allowed}, got {value!r}.")


def _check_output_dir(output_dir: Any, variant: str, seed: int) -> None:
    """`output_dir` must be a path whose only format fields are {variant} and {seed}."""
    if not isinstance(output_dir, str) or not output_dir.strip():
        raise ValueError(f"`output_dir` must be a folder path, got {output_dir!r}.")
    hint = "only {variant} and {seed} are filled in (write {{ and }} for a literal brace)"
    try:
        output_dir.format(variant=variant, seed=seed)
    except KeyError as err:
        raise ValueError(
            f"`output_dir` {output_dir!r} names the unknown field {{{err.args[0]}}}; {hint}."
        ) from None
    except (IndexError, ValueError, AttributeError) as err:
        raise ValueError(
            f"`output_dir` {output_dir!r} is not a valid folder pattern ({err}); {hint}."
        ) from None


HUB_STRATEGIES = ("end", "every_save", "checkpoint", "all_checkpoints")
"""`hub_strategy` values: transformers' `HubStrategy`."""
RESUME_FROM_CHOICES = ("hub",)


def _check_report_to_names(value: Any) -> str | list[str]:
    """`report_to` as TrainingArguments takes it ('none', 'all', a name or a list of names); an unknown name is
    refused naming transformers' integrations (whether one is installed is checked before training,
    `training.tracking.check_report_to`)."""
    if value is None or value == "none" or value == []:
        return "none"
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"`report_to` must be a tracker name, a list of names, all or none, got {value!r}.")
    if value == "all":
        return "all"
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    unknown = [n for n in names if n not in INTEGRATION_TO_CALLBACK]
    if unknown:
        raise ValueError(
            f"`report_to` names unknown tracker(s) {unknown}; transformers knows "
            f"{sorted(INTEGRATION_TO_CALLBACK)} (or all, or none)."
        )
    return value if isinstance(value, str) else list(names)


def _check_hub_settings(cfg: RunConfig) -> None:
    """push_to_hub / hub_model_id / hub_strategy / hub_private_repo / resume_from: values and combinations."""
    if cfg.hub_strategy not in HUB_STRATEGIES:
        raise ValueError(f"`hub_strategy` must be one of {list(HUB_STRATEGIES)}, got {cfg.hub_strategy!r}.")
    if cfg.hub_private_repo is not None and not isinstance(cfg.hub_private_repo, bool):
        raise ValueError(f"`hub_private_repo` must be true, false or null, got {cfg.hub_private_repo!r}.")
    if cfg.hub_model_id is not None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            if not isinstance(cfg.hub_model_id, str):
                raise HFValidationError(f"a string is needed, got {type(cfg.hub_model_id).__name__}")
            validate_repo_id(cfg.hub_model_id)
        except HFValidationError as err:
            raise ValueError(f"`hub_model_id` {cfg.hub_model_id!r} is not a Hub repo id: {err}") from None
    if cfg.push_to_hub and cfg.hub_strategy in ("checkpoint", "all_checkpoints") and not cfg.save_checkpoints:
        raise ValueError(
            f"hub_strategy: {cfg.hub_strategy} pushes checkpoints, which save_checkpoints: false does not write."
        )
    if cfg.resume_from is None:
        return
    if cfg.resume_from not in RESUME_FROM_CHOICES:
        raise ValueError(f"`resume_from` must be hub or null, got {cfg.resume_from!r}.")
    if not cfg.hub_model_id or "/" not in cfg.hub_model_id:
        raise ValueError(
            "resume_from: hub needs `hub_model_id` with its namespace (e.g. my-org/surgellm-run): the repo whose "
            "last-checkpoint/ it resumes from."
        )
    for name, wanted in (("resume", True), ("overwrite", False), ("save_checkpoints", True)):
        if getattr(cfg, name) != wanted:
            raise ValueError(
                f"resume_from: hub resumes a run from a checkpoint; it needs {name}: {str(wanted).lower()}."
            )


LORA_DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": None}
PREFIX_STYLE_CHOICES = ("text", "tokens", "soft")
LONG_TEXT_DEFAULTS: dict[str, Any] = {"max_chunks": 1, "stride": 0, "pool": "mean"}
LONG_TEXT_POOL_CHOICES = ("mean", "max", "first")


def _check_long_text_keys(spec: Any, where: str) -> dict[str, Any]:
    """One `long_text` entry (run-wide or a task's): only max_chunks / stride / pool, each valid."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"`{where}` must be a mapping of max_chunks, stride, pool; got {spec!r}.")
    unknown = sorted(set(spec) - set(LONG_TEXT_DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown `{where}` key(s) {unknown}; valid keys are {list(LONG_TEXT_DEFAULTS)}.")
    k, stride, pool = spec.get("max_chunks", 1), spec.get("stride", 0), spec.get("pool", "mean")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`{where}.max_chunks` must be a positive integer, got {k!r}.")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
        raise ValueError(f"`{where}.stride` must be an integer >= 0 (tokens of overlap), got {stride!r}.")
    if pool not in LONG_TEXT_POOL_CHOICES:
        raise ValueError(f"`{where}.pool` must be one of {list(LONG_TEXT_POOL_CHOICES)}, got {pool!r}.")
    return dict(spec)


def _normalize_long_text(value: Any) -> dict[str, Any] | None:
    """`long_text`: null (off) or {max_chunks, stride, pool, tasks: {name: {...}}} with the run-wide defaults
    filled in; task entries keep only the keys they override."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"`long_text` must be a mapping (max_chunks, stride, pool, tasks) or null, got {value!r}."
        )
    base = _check_long_text_keys({k: v for k, v in value.items() if k != "tasks"}, "long_text")
    tasks = value.get("tasks") or {}
    if not isinstance(tasks, Mapping):
        raise ValueError(f"`long_text.tasks` must map task names to settings, got {tasks!r}.")
    per_task = {str(t): _check_long_text_keys(spec, f"long_text.tasks.{t}") for t, spec in tasks.items()}
    return {**LONG_TEXT_DEFAULTS, **base, "tasks": per_task}


def long_text_settings(
    long_text: Mapping[str, Any] | None, task_names: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """{task: {max_chunks, stride, pool}} of every task: the run-wide `long_text` values, then the task's own
    overrides; a task named in `long_text.tasks` that the run does not have is an error."""
    if not long_text:
        return {t: dict(LONG_TEXT_DEFAULTS) for t in task_names}
    unknown = [t for t in long_text.get("tasks", {}) if t not in task_names]
    if unknown:
        raise ValueError(
            f"`long_text.tasks` names unknown task(s) {unknown}; the run's tasks are {list(task_names)}."
        )
    base = {k: long_text.get(k, v) for k, v in LONG_TEXT_DEFAULTS.items()}
    return {t: {**base, **long_text.get("tasks", {}).get(t, {})} for t in task_names}


def splits_long_texts(long_text: Mapping[str, Any] | None) -> bool:
    """Whether a normalized `long_text` gives any task more than one window (else it is plain truncation)."""
    if not long_text:
        return False
    overrides = long_text.get("tasks", {}).values()
    return long_text["max_chunks"] > 1 or any(spec.get("max_chunks", 1) > 1 for spec in overrides)


def _normalize_selection_split(value: Any) -> dict[str, Any] | None:
    """`selection_split`: null, a fraction in (0, 1), or {fraction, seed} -> {fraction, seed} (seed 0 by default)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = {"fraction": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"`selection_split` must be a fraction or {{fraction, seed}}, got {value!r}.")
    unknown = sorted(set(value) - {"fraction", "seed"})
    if unknown:
        raise ValueError(f"Unknown `selection_split` key(s) {unknown}; valid keys are ['fraction', 'seed'].")
    fraction, seed = value.get("fraction"), value.get("seed", 0)
    if isinstance(fraction, str):
        try:
            fraction = float(fraction)
        except ValueError:
            raise ValueError(f"`selection_split.fraction` must be a number, got {fraction!r}.") from None
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ValueError(f"`selection_split.fraction` must be a number in (0, 1), got {fraction!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`selection_split.seed` must be a non-negative integer, got {seed!r}.")
    return {"fraction": float(fraction), "seed": seed}


def _check_class_weights_shape(value: Any) -> None:
    """`class_weights` is null, 'balanced', or {task: 'balanced' | list of finite numbers > 0}."""
    if value is None or value == "balanced":
        return
    if not isinstance(value, Mapping):
        raise ValueError(
            f"`class_weights` must be null, 'balanced' or {{task: 'balanced' | [weights]}}, got {value!r}."
        )
    from .class_weights import check_weight_values

    for task, weights in value.items():
        if weights != "balanced":
            check_weight_values(task, weights)


def _normalize_lora(value: Any) -> dict[str, Any] | None:
    """`lora`: null/false (off), true or a mapping; returns the mapping with defaults filled in, or None."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(
            f"`lora` must be a mapping (r, alpha, dropout, target_modules) or null, got {value!r}."
        )
    unknown = sorted(set(value) - set(LORA_DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown `lora` key(s) {unknown}; valid keys are {list(LORA_DEFAULTS)}.")
    lora = {**LORA_DEFAULTS, **value}
    if isinstance(lora["r"], bool) or not isinstance(lora["r"], int) or lora["r"] < 1:
        raise ValueError(f"`lora.r` must be a positive integer, got {lora['r']!r}.")
    for key, upper in (("alpha", None), ("dropout", 1)):
        v = lora[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or (upper and v >= upper):
            raise ValueError(f"`lora.{key}` must be a number in [0, {upper or 'inf'}), got {v!r}.")
    modules = lora["target_modules"]
    if modules is not None:
        if isinstance(modules, str):
            modules = [modules]
        if (
            not isinstance(modules, Sequence)
            or not modules
            or not all(isinstance(m, str) and m for m in modules)
        ):
            raise ValueError(f"`lora.target_modules` must be a list of module names, got {modules!r}.")
        lora["target_modules"] = list(modules)
    return lora


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    folder = data.get("folder")
    if isinstance(folder, str) and not os.path.isabs(folder):
        data["folder"] = str((base / folder).resolve())
    return data


REUSE_IGNORED_KEYS = (
    "cache_encoder_outputs",  # in fp32 the cached path gives the same predictions (float tolerance): see below
    "encoder_cache_dir",
    "output_dir",
    "resume",
    "overwrite",
    "save_checkpoints",
    "disable_tqdm",
    "logging_steps",
    "eval_batch_size",
    "equal_budget",
    "keep_checkpoints",
    "report_to",
    "run_name",
    "push_to_hub",
    "hub_model_id",
    "hub_strategy",
    "hub_private_repo",
    "resume_from",
    "license",
)
"""RunConfig keys that do not change what a run computes: a run folder may be resumed or reused across them
(`equal_budget` only labels the budget; `epochs` carries it)."""

MACHINE_RESOLVED_KEYS = ("mixed_precision", "per_device_batch_size")
"""RunConfig keys whose effect depends on the machine (a GPU, the number of processes): a run folder compares what
they resolve to there, the precision and the per-device and effective batch, not the words (`run_folder`), and
`cache_encoder_outputs` where the precision is not fp32 (cached and uncached bf16 states differ by ~5e-3)."""


def comparable_settings(cfg: RunConfig) -> dict[str, Any]:
    """The settings that decide what a run computes, resolved: variant defaults filled in, the data folder made
    absolute, `lexicon_seed` only where the lexicon uses it; nested `data` keys flattened to `data.<key>`. The
    machine-dependent keys (`MACHINE_RESOLVED_KEYS`) are left to the run folder's check, which resolves them."""
    skipped = {*REUSE_IGNORED_KEYS, *MACHINE_RESOLVED_KEYS, "data"}
    values = {k: v for k, v in cfg.to_dict().items() if k not in skipped}
    values["epochs"] = cfg.num_epochs
    values["learning_rate"] = cfg.lr
    values["module_lr_scale"] = cfg.module_lr_multiplier
    if cfg.lexicon not in ("extracted", "random"):
        values["lexicon_seed"] = None
    if cfg.task_sampling != "temperature":
        values["temperature"] = None  # only the temperature rule reads it
    if cfg.prefix_style != "soft" or not cfg.variant_spec.use_prefix:
        values["soft_prefix_length"] = None  # only the soft prefix reads it
    if not splits_long_texts(cfg.long_text):
        values["long_text"] = None  # max_chunks 1 everywhere is truncation, as without long_text
    data = dict(cfg.data)
    if isinstance(data.get("folder"), str):
        data["folder"] = os.path.abspath(os.path.expanduser(data["folder"]))
    values.update({f"data.{k}": v for k, v in data.items()})
    return values


def settings_differences(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """Keys whose values differ between two `comparable_settings` results, each as 'key: saved X, requested Y'."""
    diffs = []
    for key in [*saved, *(k for k in requested if k not in saved)]:
        a, b = saved.get(key), requested.get(key)
        if _json_canonical(a) != _json_canonical(b):
            diffs.append(f"{key}: saved {_short(a)}, requested {_short(b)}")
    return diffs


def _json_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)  # for comparison only; never written


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_run_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML run config and apply `key=value` overrides (dotted keys reach into sections); a file or an
    override that cannot be parsed is refused in one line naming the file's line or the override."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run config not found: {path}")
    try:
        mapping = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ValueError(f"run config {path} is not UTF-8 text (byte {err.start}: {err.reason})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"run config {path} is not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(mapping, dict):
        raise ValueError(f"run config {path} must be a mapping of settings, got {type(mapping).__name__}")
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ValueError(
                f"override {item!r} must look like key=value (e.g. seed=1 or data.max_rows.train=200)"
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ValueError(
                f"override {item!r}: the value {raw!r} is not valid YAML ({_yaml_problem(err)})"
            ) from None
        target = mapping
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        target[parts[-1]] = value
    return RunConfig.from_mapping(mapping, base_dir=path.parent)


def _yaml_problem(err: Exception) -> str:
    """A YAML parser error in one line: what and where (line and column, 1-based)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem
