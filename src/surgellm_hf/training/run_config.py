"""`RunConfig`: everything one training run needs, read from a YAML file with `key=value` overrides.

Each key is a checked field (`validation.checked`): its type comes from the annotation, its range or choices from a
small named validator, and a refused value is one line naming the key, the value and what it must be.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..encoders import BUNDLED_ENCODER
from ..validation import Requirement, at_least, checked, is_integer, is_number, one_of, setting
from .class_weights import CLASS_WEIGHTS_SPEC, check_class_weights_spec
from .sampler import TASK_SAMPLING_CHOICES
from .variants import VARIANTS, Variant, get_variant

LEXICON_CHOICES = ("curated", "extracted", "random")
FROZEN_MODULE_LR_SCALE = 100.0
"""Default `module_lr_scale` with a frozen encoder: best of 10 / 100 / 1000 on the frozen MiniLM protocol
(docs/benchmarks.md#module-learning-rate); a trained encoder keeps the paper's single rate (1): x10 and x30 were
within noise of it at budget C (docs/benchmarks.md#module-lr-default)."""
MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")
PREFIX_STYLE_CHOICES = ("text", "tokens", "soft")
DEFAULT_PREFIX_STYLE = "soft"
"""The prefix of a run that trains its encoder (full fine-tune, LoRA): budget C found it within noise of the text
prefix on average at 2 positions instead of 86, so the cheaper one is the default (docs/benchmarks.md#prefix-default)."""
DEFAULT_FROZEN_PREFIX_STYLE = "text"
"""The prefix of a frozen-encoder run: the cached encoder states cannot serve a soft prefix, whose virtual tokens
change every step (docs/benchmarks.md#prefix-default)."""
HUB_STRATEGIES = ("end", "every_save", "checkpoint", "all_checkpoints")
"""`hub_strategy` values: transformers' `HubStrategy`."""
RESUME_FROM_CHOICES = ("hub",)
LORA_DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": None}
LONG_TEXT_DEFAULTS: dict[str, Any] = {"max_chunks": 1, "stride": 0, "pool": "mean"}
LONG_TEXT_POOL_CHOICES = ("mean", "max", "first")

# ------------------------------------------------------------------ what the keys accept (used by the fields below)

_POSITIVE = at_least(1, "a positive integer")
_NON_NEGATIVE = at_least(0, "a non-negative integer")
_DATA = Requirement("a mapping: {'folder': ...}, {'tasks': {...}} or {'preset': 'paper_hub'}", bool)
_FOLDER_PATH = Requirement("a folder path", lambda v: bool(v.strip()))
_LEXICON = Requirement(
    f"one of {LEXICON_CHOICES} or a path to a lexicon .json",
    lambda v: v in LEXICON_CHOICES or v.endswith(".json"),
)
_ONE_LINE_NAME = Requirement("a one-line name or null", lambda v: bool(v.strip()) and "\n" not in v)


def number(low: str, high: str | None = None) -> Requirement:
    """A float setting: a finite number within `low` (e.g. '> 0') and `high` (e.g. '< 1'); NaN and infinity fail."""
    op, bound = low.split()

    def holds(value: float) -> bool:
        above = value > float(bound) if op == ">" else value >= float(bound)
        return math.isfinite(value) and above and (high is None or value < float(high.split()[1]))

    return Requirement(f"a finite number {low}{f' and {high}' if high else ''}", holds)


def _variant_name(value: Any) -> str:
    """The variant's canonical name (`get_variant` is case-insensitive and names the valid ones)."""
    return get_variant(value).name


def _yaml_no(value: Any) -> Any:
    """YAML 1.1 reads `mixed_precision: no` as false: read it back as 'no'."""
    return "no" if value is False else value


def _int_as_float(value: Any) -> Any:
    """An integer temperature (`temperature: 3`) as a float, as the sampler and run_config.json keep it."""
    return float(value) if is_integer(value) else value


def _check_output_dir(output_dir: str) -> None:
    """`output_dir` may name only the {variant} and {seed} format fields."""
    hint = "only {variant} and {seed} are filled in (write {{ and }} for a literal brace)"
    try:
        output_dir.format(variant="IWN", seed=0)
    except KeyError as err:
        raise ValueError(
            f"`output_dir` {output_dir!r} names the unknown field {{{err.args[0]}}}; {hint}."
        ) from None
    except (IndexError, ValueError, AttributeError) as err:
        raise ValueError(
            f"`output_dir` {output_dir!r} is not a valid folder pattern ({err}); {hint}."
        ) from None


def _check_hub_model_id(value: str | None) -> None:
    """A Hub repo id as huggingface_hub's `validate_repo_id` accepts it."""
    if value is None:
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError as err:
        raise ValueError(f"`hub_model_id` {value!r} is not a Hub repo id: {err}") from None


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


def _check_long_text_keys(spec: Any, where: str) -> dict[str, Any]:
    """One `long_text` entry (run-wide or a task's): only max_chunks / stride / pool, each valid."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"`{where}` must be a mapping of max_chunks, stride, pool; got {spec!r}.")
    unknown = sorted(set(spec) - set(LONG_TEXT_DEFAULTS))
    if unknown:
        raise ValueError(f"Unknown `{where}` key(s) {unknown}; valid keys are {list(LONG_TEXT_DEFAULTS)}.")
    k, stride, pool = spec.get("max_chunks", 1), spec.get("stride", 0), spec.get("pool", "mean")
    if not is_integer(k) or k < 1:
        raise ValueError(f"`{where}.max_chunks` must be a positive integer, got {k!r}.")
    if not is_integer(stride) or stride < 0:
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


def _normalize_selection_split(value: Any) -> dict[str, Any] | None:
    """`selection_split`: null, a fraction in (0, 1), or {fraction, seed} -> {fraction, seed} (seed 0 by default)."""
    if value is None:
        return None
    if is_number(value):
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
    if not is_number(fraction) or not 0 < fraction < 1:
        raise ValueError(f"`selection_split.fraction` must be a number in (0, 1), got {fraction!r}.")
    if not is_integer(seed) or seed < 0:
        raise ValueError(f"`selection_split.seed` must be a non-negative integer, got {seed!r}.")
    return {"fraction": float(fraction), "seed": seed}


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
    if not is_integer(lora["r"]) or lora["r"] < 1:
        raise ValueError(f"`lora.r` must be a positive integer, got {lora['r']!r}.")
    for key, upper in (("alpha", None), ("dropout", 1)):
        v = lora[key]
        if not is_number(v) or v < 0 or (upper and v >= upper):
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


@checked(label="`{}`", end=".")
@dataclass
class RunConfig:
    """Everything one training run needs; `surgellm train --config run.yaml key=value ...` fills it."""

    data: dict[str, Any] = setting(
        _DATA,
        help="Where the tasks come from: {'folder': path, 'tasks': [...]?, 'max_rows': {...}?} for a "
        "<task>/{train,validation,test}.jsonl layout, {'tasks': {name: TaskSpec fields}} for Hub ids or files, "
        "or {'preset': 'paper_hub'}.",
    )
    output_dir: str = setting(
        _FOLDER_PATH,
        _check_output_dir,
        default="runs/{variant}-seed{seed}",
        help="Run folder ({variant}, {seed} filled).",
    )
    encoder: str = setting(
        default=BUNDLED_ENCODER, must_be="a Hub id or a path", help="Hub id or path of the encoder."
    )
    variant: str = setting(convert=_variant_name, default="IWN", help=f"One of {list(VARIANTS)}.")
    epochs: int | None = setting(_POSITIVE, default=None, help="Epoch budget; default the variant's (paper).")
    equal_budget: bool = setting(
        default=False, help="Fair control: ignore the variant's epochs and use `epochs` for every variant."
    )
    learning_rate: float | None = setting(number("> 0"), default=None, help="Default the variant's (paper).")
    lexicon: str = setting(
        _LEXICON, default="curated", help="curated, extracted, random, or a lexicon JSON path."
    )
    prefix_style: str | None = setting(
        one_of(PREFIX_STYLE_CHOICES),
        default=None,
        help="Prefix style when the variant has P. Default: soft with a trained encoder (full fine-tune or LoRA) "
        "and text with freeze_encoder (docs/benchmarks.md#prefix-default). soft: `soft_prefix_length` virtual "
        "token embeddings built from a learned task prompt and a learned projection of the normalized features, "
        "inserted after the first token (1-2 positions); text: the paper's, in the encoder's vocabulary (86 "
        "tokens with MiniLM: needs max_length >= ~90; the one a cached frozen encoder can use); tokens: compact, "
        "n_features + 1 added tokens (17).",
    )
    soft_prefix_length: int = setting(
        one_of((1, 2), "1 or 2"),
        default=2,
        help="Virtual tokens of `prefix_style: soft`: 2 (the task prompt, then the feature projection) or 1 "
        "(their sum). Ignored by the other prefix styles.",
    )
    long_text: dict[str, Any] | None = setting(
        convert=_normalize_long_text,
        default=None,
        help="Read long texts whole: {max_chunks: K, stride: S, pool: mean | max | first, tasks: {name: "
        "{...}}}. A text longer than one input is split into up to K windows of max_length tokens (the prefix "
        "on each, the features of the whole text), consecutive windows overlapping by S tokens; the windows' "
        "first-token states are pooled before the gate. `tasks` overrides keys per task (a task not named "
        "takes the run-wide values). null or max_chunks 1: truncation, as without it. Not for sentence-pair "
        "tasks.",
    )
    selection_split: float | dict[str, Any] | None = setting(
        convert=_normalize_selection_split,
        default=None,
        help="Select on one split, report on another: a fraction (or {fraction: f, seed: s}) of each task's "
        "training rows, stratified and seeded, is carved out before anything else as the `selection` split; "
        "early stopping selects the epoch on it, and validation is only reported. null: select on validation.",
    )
    seed: int = setting(_NON_NEGATIVE, default=0, help="Seed of model init, data order and dropout.")
    lexicon_seed: int = setting(
        _NON_NEGATIVE,
        default=0,
        help="Seed of the extracted (k-means) and random lexicons; apart from `seed`, so runs of seeds "
        "0, 1, 2 compare models on one lexicon.",
    )
    batch_size: int = setting(
        _POSITIVE, default=32, help="Effective batch size (per device x accumulation x devices)."
    )
    per_device_batch_size: int | None = setting(
        _POSITIVE,
        must_be="a positive integer or null",
        default=None,
        help="Default: batch_size / devices. A run folder is resumed or reused only where the per-device "
        "and the effective batch are the ones it trained with (set this to resume on another device count).",
    )
    max_length: int = setting(_POSITIVE, default=128, help="Tokens per input, prefix included.")
    warmup_ratio: float = setting(
        number(">= 0", "< 1"), default=0.06, help="Linear warm-up share of the steps."
    )
    weight_decay: float = setting(number(">= 0"), default=0.01, help="AdamW weight decay.")
    adam_epsilon: float = setting(number("> 0"), default=1e-8, help="AdamW epsilon.")
    max_grad_norm: float = setting(number(">= 0"), default=1.0, help="Gradient clipping.")
    patience: int = setting(
        _POSITIVE, default=2, help="Early stopping patience in epochs (strict improvement)."
    )
    freeze_encoder: bool = setting(default=False, help="Train only the SURGELLM modules and heads.")
    task_sampling: str = setting(
        one_of(TASK_SAMPLING_CHOICES),
        default="proportional",
        help="How often each task's (task-homogeneous) batches come in an epoch: proportional (to its size: "
        "every example once per epoch), equal (every task equally often) or temperature (p_t ∝ n_t^(1/T)).",
    )
    temperature: float = setting(
        number("> 0"),
        convert=_int_as_float,
        default=2.0,
        help="T of `task_sampling: temperature` (1 = proportional, large = equal); T5 used 2.",
    )
    class_weights: str | dict[str, Any] | None = setting(
        check_class_weights_spec,
        must_be=CLASS_WEIGHTS_SPEC,
        default=None,
        help="Weighted loss: null (none), 'balanced' (every classification task from its training labels: "
        "single-label n / (K * n_c), multi-label pos_weight n_neg / n_pos per label; regression tasks get none), "
        "or {task: 'balanced' | [one weight per label]} for some classification tasks.",
    )
    lora: dict[str, Any] | None = setting(
        convert=_normalize_lora,
        default=None,
        help="LoRA on the encoder (the SURGELLM modules and heads train fully): {r: 8, alpha: 16, dropout: "
        "0.1, target_modules: [...]} (target_modules default: the encoder family's attention projections); "
        "the run folder then holds only the adapter.",
    )
    cache_encoder_outputs: bool = setting(
        default=True,
        help="With freeze_encoder: compute the encoder's first-token states once per example and split and "
        "train the modules and heads on them (same predictions in fp32, many times faster; in bf16/fp16 the "
        "states differ by ~5e-3, so a run folder is resumed or reused only with the same setting there). "
        "false: run the frozen encoder every step. No effect on a trained encoder.",
    )
    encoder_cache_dir: str | None = setting(
        default=None,
        help="Folder keeping cached first-token states on disk, keyed by a hash of the encoder weights and "
        "each example's encoder input, so runs of other variants or seeds with the same input reuse them.",
    )
    module_lr_scale: float | None = setting(
        number("> 0"),
        default=None,
        help="Learning rate of the SURGELLM modules (task embedding, feature projection, gate, fusion "
        "LayerNorm, normalizer) and the task heads, as a multiple of learning_rate (the encoder's rate). "
        "Default: 100 with freeze_encoder, else 1 (the paper's single rate; 10 is the first value to "
        "try when the gate stays at 0.50). Measured: docs/benchmarks.md#module-lr-default.",
    )
    mixed_precision: str = setting(
        one_of(MIXED_PRECISION_CHOICES, "auto, no, bf16 or fp16"),
        convert=_yaml_no,
        default="auto",
        help="auto (bf16/fp16 on GPU, fp32 on CPU), no, bf16 or fp16. A run folder is resumed or reused by "
        "the precision this resolves to on the machine, not by the word.",
    )
    resume: bool = setting(
        default=True,
        help="Resume from the last checkpoint in the run folder (only a run of the same configuration).",
    )
    overwrite: bool = setting(
        default=False,
        help="Start fresh: delete what an earlier run wrote in the run folder (weights, checkpoints, metrics, "
        "reports) before training; files no run writes are kept. Without it a folder holding another "
        "configuration's run is refused.",
    )
    eval_batch_size: int = setting(_POSITIVE, default=64, help="Evaluation batch size per device.")
    logging_steps: int = setting(_POSITIVE, default=10, help="Log the training loss every N steps.")
    disable_tqdm: bool = setting(default=False, help="Hide progress bars.")
    save_checkpoints: bool = setting(
        default=True,
        help="Keep epoch checkpoints (needed to resume). Without them the best weights are kept in memory "
        "(a CPU copy) for early stopping.",
    )
    keep_checkpoints: bool = setting(
        default=False,
        help="Keep checkpoints/ after the run has finished. By default it is deleted once metrics.json is "
        "written (the best weights are already in the run folder); checkpoints stay while a run is unfinished, "
        "for resuming.",
    )
    report_to: str | list[str] | None = setting(
        convert=_check_report_to_names,
        default=None,
        help="Experiment trackers the Trainer logs to, as TrainingArguments takes them: a name or a list "
        "(tensorboard, mlflow, wandb, trackio...; all: every installed one); null or none: no tracker. The "
        "run settings (resolved run config, lexicon hash, task order) and the final per-task metrics are "
        "logged there too.",
    )
    run_name: str | None = setting(
        _ONE_LINE_NAME,
        default=None,
        help="Name of the run in the trackers (TrainingArguments.run_name); default the run folder's name.",
    )
    push_to_hub: bool = setting(
        default=False,
        help="Push to the Hub while training (as hub_strategy says) and when the run ends: the model, the "
        "processor and lexicon, and the SURGELLM model card.",
    )
    hub_model_id: str | None = setting(
        _check_hub_model_id,
        must_be="a Hub repo id (namespace/name) or null",
        default=None,
        help="Hub repo of push_to_hub and resume_from: hub (namespace/name); for a push, default the run "
        "folder's name in the token's namespace.",
    )
    hub_strategy: str = setting(
        one_of(HUB_STRATEGIES),
        default="every_save",
        help="What push_to_hub pushes, as in TrainingArguments: end (once, the finished run), every_save (also "
        "after each epoch's save), checkpoint (also the last checkpoint, in last-checkpoint/, for resuming on "
        "another machine) or all_checkpoints (every checkpoint, in checkpoint-N/).",
    )
    hub_private_repo: bool | None = setting(
        must_be="true, false or null",
        default=None,
        help="Create the Hub repo private (null: the namespace's default); an existing repo keeps its setting.",
    )
    resume_from: str | None = setting(
        one_of(RESUME_FROM_CHOICES, "hub or null"),
        default=None,
        help="hub: resume from the checkpoint that hub_strategy: checkpoint (or all_checkpoints) pushed to "
        "hub_model_id, when it is newer than the run folder's own (e.g. in a fresh folder on a new machine).",
    )
    license: str | None = setting(
        _ONE_LINE_NAME,
        default=None,
        help="License of the model card (a Hub license id such as apache-2.0 or mit); default the base "
        "encoder's license where its card says it, else none.",
    )

    def __post_init__(self) -> None:
        """Checks across keys (each key's type and range are checked as it is set)."""
        if self.equal_budget and self.epochs is None:
            raise ValueError("`equal_budget: true` needs `epochs`, the budget shared by every variant.")
        _check_frozen_encoder(self)
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
    def prefix(self) -> str | None:
        """The prefix style the run uses: None for a variant without the prefix, else `prefix_style`, by default
        soft with a trained encoder and text with a frozen one (docs/benchmarks.md#prefix-default)."""
        if not self.variant_spec.use_prefix:
            return None
        if self.prefix_style is not None:
            return self.prefix_style
        return DEFAULT_FROZEN_PREFIX_STYLE if self.freeze_encoder else DEFAULT_PREFIX_STYLE

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


_FLOAT_FIELDS = (
    "learning_rate",
    "warmup_ratio",
    "weight_decay",
    "adam_epsilon",
    "max_grad_norm",
    "module_lr_scale",
    "temperature",
)
"""The float keys: YAML 1.1 reads 3e-5 (no dot) as a string, which `from_mapping` reads back as the number."""


def _check_frozen_encoder(cfg: RunConfig) -> None:
    """A frozen encoder refuses what it could not train (the compact prefix's new tokens), cached states of a soft
    prefix (they change every step) and LoRA (it adapts the encoder)."""
    prefix = cfg.prefix
    if cfg.freeze_encoder and prefix == "tokens":
        raise ValueError(
            "freeze_encoder with prefix_style: tokens is refused: the compact prefix adds new token embeddings "
            "(mean-initialised) that a frozen encoder never trains, so the prefix would carry no learned "
            "meaning. Use prefix_style: text (the paper's prefix, in the encoder's own vocabulary), or a "
            "variant without the prefix (baseline)."
        )
    if cfg.freeze_encoder and cfg.cache_encoder_outputs and prefix == "soft":
        raise ValueError(
            "freeze_encoder with prefix_style: soft cannot use cached encoder outputs: the soft prefix's virtual "
            "tokens are encoder inputs built from trainable parameters, so the encoder's states change every "
            "step. Set cache_encoder_outputs: false (the frozen encoder then runs every step, as prompt tuning "
            "does), or use prefix_style: text."
        )
    if cfg.lora and cfg.freeze_encoder:
        raise ValueError("`lora` adapts the encoder and `freeze_encoder: true` freezes it; choose one.")


def _check_hub_settings(cfg: RunConfig) -> None:
    """push_to_hub / hub_strategy / save_checkpoints and resume_from / hub_model_id / resume / overwrite: the
    combinations (each key's own value is checked by its field)."""
    if cfg.push_to_hub and cfg.hub_strategy in ("checkpoint", "all_checkpoints") and not cfg.save_checkpoints:
        raise ValueError(
            f"hub_strategy: {cfg.hub_strategy} pushes checkpoints, which save_checkpoints: false does not write."
        )
    if cfg.resume_from is None:
        return
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
    values["prefix_style"] = cfg.prefix  # resolved; None where the variant has no prefix
    if cfg.prefix != "soft":
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
