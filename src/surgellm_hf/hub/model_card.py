"""Model cards for SURGELLM models: `SurgeModelCardData` gathers what a Hub user needs to know (tasks and labels,
per-task validation / test metrics, the lexicon, the variant and its switches, the base encoder, training settings,
intended use, limitations, a usage snippet) and renders it with `huggingface_hub.ModelCard.from_template` from the
Jinja template `surgellm_model_card.md` beside this module (`model_cards/` in a checkout links to it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.task_spec import EVALUATION_SPLITS
from ..evaluation.run_io import RunRecord, load_run
from ..features import SURFACE_FEATURE_NAMES
from ..problem_types import DEFAULT_PROBLEM_TYPE, PROBLEM_TYPE_INFO, info
from ..training.variants import VARIANTS
from .repo_id import is_hub_id

TEMPLATE_NAME = "surgellm_model_card.md"

_SWITCH_LABELS = {
    "prefix": "P (prefix)",
    "gate": "G (gate)",
    "extended_training": "E (extended training)",
    "iwn": "I (IWN)",
}
_METRIC_TITLES = {
    "macro_f1": "macro-F1",
    "accuracy": "accuracy",
    "precision": "precision (macro)",
    "recall": "recall (macro)",
    "roc_auc": "ROC-AUC",
    "micro_f1": "micro-F1",
    "subset_accuracy": "subset accuracy",
    "ece": "ECE (15 bins)",
    "brier": "Brier score",
    "pearson": "Pearson r",
    "spearman": "Spearman rho",
    "rmse": "RMSE",
}
_SPLIT_TITLES = {"validation": "Validation", "test": "Test", "train": "Train"}
MODEL_INDEX_METRICS: dict[str, tuple[str, ...]] = {k: t.card_metrics for k, t in PROBLEM_TYPE_INFO.items()}
"""The primary metrics of each problem type that the card's model-index carries (`ProblemTypeInfo.card_metrics`;
a snapshot of the built-in types)."""
_HUB_METRICS = {
    "macro_f1": ("f1", "macro"),
    "micro_f1": ("f1", "micro"),
    "accuracy": ("accuracy", None),
    "pearson": ("pearsonr", None),
    "spearman": ("spearmanr", None),
}
"""(Hub metric id, its config) of each model-index metric."""
_DEFAULT_INTENDED_USE = (
    "Classifying English texts into the label sets of the tasks listed above, one task per example, as in the "
    "training data. Intended for research on multi-task classification with lexical features and for "
    "reproducing the SURGELLM experiments; check the per-task results before relying on a task."
)
_DEFAULT_LIMITATIONS = [
    "Each task head only knows its own label set: name the task of every input (`task=`); the model cannot tell "
    "which task a text belongs to.",
    "Lexical features come from a fixed English lexicon and surface statistics of the raw text; texts in other "
    "languages, or in styles far from the training data, get uninformative features.",
    "Normalization statistics were fitted on the training split of each task; a strong shift in text length or "
    "punctuation moves the features away from those statistics.",
    "Inputs longer than the processor's maximum length are truncated (the task prefix never is); the lexical "
    "features still see the full text.",
    "Scores are the softmax (single-label tasks) or per-label sigmoid (multi-label tasks) outputs of a fine-tuned "
    "classifier, not calibrated probabilities; a regression task's output is the model's raw estimate of the "
    "target.",
]


def template_path() -> Path:
    """Path of the card template shipped with the package (`model_cards/` in a checkout links to it)."""
    return Path(str(resources.files(__package__) / TEMPLATE_NAME))


def _quoted(text: str) -> str:
    """`text` as a double-quoted Python string literal (backslashes and quotes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pipeline_input(card: SurgeModelCardData, text_pair: bool) -> str:
    """The usage snippet's pipeline input: the example text, or a {"text", "text_pair"} dict for a pair task."""
    if not text_pair:
        return _quoted(card.example_text)
    return f'{{"text": {_quoted(card.example_text)}, "text_pair": {_quoted(card.example_text_pair)}}}'


@dataclass
class TaskCardInfo:
    """One task of the model as the card shows it."""

    name: str = field(metadata={"help": "Task name (the `task=` value)."})
    num_labels: int = field(metadata={"help": "Number of labels of the task."})
    label_names: list[str] = field(metadata={"help": "Label names in id order."})
    dataset: str | None = field(default=None, metadata={"help": "Hub dataset id or description of the data."})
    problem_type: str = field(
        default=DEFAULT_PROBLEM_TYPE, metadata={"help": "single_label, multi_label or regression."}
    )
    threshold: float | None = field(
        default=None, metadata={"help": "Decision threshold of a multi-label task."}
    )
    text_pair: bool = field(
        default=False, metadata={"help": "The task takes sentence pairs (text, text_pair)."}
    )


@dataclass
class SurgeModelCardData:
    """Everything a SURGELLM model card shows; build it with `from_model` / `from_run`, render with `to_model_card`."""

    model_name: str = field(metadata={"help": "Repo id (or name) the card describes."})
    tasks: list[TaskCardInfo] = field(metadata={"help": "Tasks in id order."})
    default_task: str = field(metadata={"help": "Task used when a call names none."})
    base_model: str | None = field(
        default=None, metadata={"help": "Encoder checkpoint the model was built on."}
    )
    encoder_type: str | None = field(
        default=None, metadata={"help": "model_type of the encoder (bert, roberta...)."}
    )
    variant: str | None = field(
        default=None, metadata={"help": "Variant name (baseline, S, G, FULL, IWN...)."}
    )
    switches: dict[str, bool | None] = field(
        default_factory=dict,
        metadata={"help": "prefix / gate / extended_training / iwn switches of the variant."},
    )
    model_settings: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Architecture settings shown."}
    )
    lexicon: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Lexicon summary: name, groups {name: entries}, feature names."},
    )
    metrics: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=dict,
        metadata={"help": "split -> task -> metric -> value (a number, or {'mean', 'std'} over seeds)."},
    )
    training: dict[str, Any] = field(default_factory=dict, metadata={"help": "Training settings shown."})
    license: str | None = field(
        default=None,
        metadata={
            "help": "License of the weights (a Hub license id); a run's `license`, else its base encoder's."
        },
    )
    validation_history: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={
            "help": "Per epoch: {'epoch', 'avg_macro_f1', 'tasks': {task: {metric: value}}} (metrics.json)."
        },
    )
    data_sizes: dict[str, dict[str, int]] = field(
        default_factory=dict, metadata={"help": "task -> split -> number of rows."}
    )
    label_counts: dict[str, dict[str, list[int]]] = field(
        default_factory=dict,
        metadata={"help": "task -> split -> rows per class (multi-label: rows per label) in label order."},
    )
    environment: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "{'hardware': {cpu, cpu_cores, gpus, gpu_count, processes}, 'versions': {package: version}}."
        },
    )
    progress: str | None = field(
        default=None,
        metadata={"help": "A card pushed while training: how far the run is (shown under the title)."},
    )
    language: list[str] = field(
        default_factory=lambda: ["en"], metadata={"help": "Languages of the training data."}
    )
    datasets: list[str] = field(default_factory=list, metadata={"help": "Hub dataset ids used for training."})
    intended_use: str = field(default=_DEFAULT_INTENDED_USE, metadata={"help": "Intended-use paragraph."})
    limitations: list[str] = field(
        default_factory=lambda: list(_DEFAULT_LIMITATIONS), metadata={"help": "Limitations, one per bullet."}
    )
    example_text: str = field(
        default="a gorgeous, witty film", metadata={"help": "Text used in the usage snippet."}
    )
    example_text_pair: str = field(
        default="the film is witty",
        metadata={"help": "Second text of the usage snippet's sentence-pair tasks."},
    )
    adapter_only: bool = field(
        default=False,
        metadata={"help": "The repo holds only the adapter (non-encoder weights); usage differs."},
    )
    lora_adapter: bool = field(
        default=False,
        metadata={
            "help": "With adapter_only: the adapter is a PEFT LoRA adapter (a `lora:` run); usage differs."
        },
    )
    feature_contributions: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "A run's features by mean |contribution| per task (metrics.json feature_contributions)."
        },
    )
    calibration: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Fitted temperatures and thresholds, with a run's ECE / Brier before and after."},
    )

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("A model card needs at least one task.")
        names = [t.name for t in self.tasks]
        if self.default_task not in names:
            raise ValueError(f"default_task {self.default_task!r} is not one of the tasks {names}.")
        for split, by_task in self.metrics.items():
            unknown = sorted(set(by_task) - set(names))
            if unknown:
                raise ValueError(
                    f"Metrics for split {split!r} name task(s) {unknown} that the model does not have ({names}); "
                    "is this the right run for this model?"
                )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(
        cls,
        model: Any,
        processor: Any = None,
        *,
        repo_id: str | None = None,
        metrics: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        training: Mapping[str, Any] | None = None,
        variant: str | None = None,
        datasets: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> SurgeModelCardData:
        """Fill the card from a SURGELLM model (config), its processor (lexicon, prefix) and a run's metrics.

        `metrics` is split -> task -> metric -> value; `datasets` maps task -> Hub dataset id.
        """
        config = model.config
        datasets = dict(datasets or {})
        pair_tasks = set(getattr(processor, "pair_tasks", None) or ())
        tasks = [
            TaskCardInfo(
                name,
                int(n),
                list(config.label_names(name)),
                datasets.get(name),
                config.task_problem_types[name],
                config.task_thresholds.get(name),
                name in pair_tasks,
            )
            for name, n in config.tasks.items()
        ]
        variant = variant or getattr(config, "variant", None)
        prefix_style = getattr(processor, "prefix", None) if processor is not None else None
        switches: dict[str, bool | None] = {
            "prefix": None if processor is None else prefix_style is not None,
            "gate": bool(config.use_gate),
            "extended_training": VARIANTS[variant].extended_training if variant in VARIANTS else None,
            "iwn": config.use_gate and config.norm == "iwn",
        }
        settings: dict[str, Any] = {
            "encoder": getattr(config.encoder_config, "model_type", None),
            "hidden size": config.hidden_size,
            "feature gate": config.use_gate,
            "task embedding": bool(config.use_gate and config.use_task_embedding),
            "task embedding scale": config.task_embedding_scale,
            "feature normalization": config.norm,
            "features": config.num_features,
        }
        if processor is not None:
            settings["prefix style"] = prefix_style if prefix_style is not None else "none"
            if getattr(processor, "max_length", None) is not None:
                settings["max length (tokens)"] = processor.max_length
        lexicon = getattr(processor, "lexicon", None)
        temperatures = dict(getattr(config, "task_temperatures", None) or {})
        limitations = list(_DEFAULT_LIMITATIONS)
        if temperatures:
            limitations[-1] = _calibrated_caveat(temperatures, config)
        fields: dict[str, Any] = {
            "model_name": repo_id or getattr(config, "_name_or_path", None) or "surgellm-model",
            "tasks": tasks,
            "default_task": config.default_task,
            "base_model": getattr(config, "encoder_name_or_path", None),
            "encoder_type": settings["encoder"],
            "variant": variant,
            "switches": switches,
            "model_settings": settings,
            "lexicon": _lexicon_summary(lexicon) if lexicon is not None else {},
            "metrics": _metrics_by_split(metrics or {}),
            "training": dict(training or {}),
            "datasets": sorted({d for d in datasets.values() if is_hub_id(d)}),
            "limitations": limitations,
            "calibration": {"temperatures": temperatures} if temperatures else {},
        }
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike,
        model: Any,
        processor: Any = None,
        *,
        repo_id: str | None = None,
        **kw: Any,
    ) -> SurgeModelCardData:
        """Fill the card from a training run folder (metrics.json, see `evaluation.load_run`) and its model."""
        return cls.from_record(load_run(run_dir), model, processor, repo_id=repo_id, **kw)

    @classmethod
    def from_record(
        cls, record: RunRecord, model: Any, processor: Any = None, *, repo_id: str | None = None, **kw: Any
    ) -> SurgeModelCardData:
        """Fill the card from a run record (a finished run's metrics.json, or the record of a run in progress)."""
        metrics: dict[str, dict[str, dict[str, Any]]] = {}
        for task, by_split in record.tasks.items():
            for split, values in by_split.items():
                metrics.setdefault(split, {})[task] = dict(values)
        training = _training_from_extra(record.extra)
        training.setdefault("seed", record.seed)
        extra = record.extra
        for key, name, kind in (
            ("validation_history", "validation_history", list),
            ("selection_history", "validation_history", list),  # a run that selected on a slice of train
            ("data", "data_sizes", Mapping),
            ("label_counts", "label_counts", Mapping),
            ("environment", "environment", Mapping),
        ):
            if isinstance(extra.get(key), kind):
                kw.setdefault(name, extra[key] if kind is list else dict(extra[key]))
        if isinstance(extra.get("license"), str):
            kw.setdefault("license", extra["license"])
        # the Hub id the run names, not a local copy's path
        if isinstance(record.extra.get("base_model"), str):
            kw.setdefault("base_model", record.extra["base_model"])
        kw.setdefault(
            "datasets",
            record.extra.get("datasets") if isinstance(record.extra.get("datasets"), dict) else None,
        )
        if isinstance(record.extra.get("feature_contributions"), dict):
            kw.setdefault("feature_contributions", record.extra["feature_contributions"])
        if isinstance(record.extra.get("calibration"), dict) and getattr(
            model.config, "task_temperatures", None
        ):
            kw.setdefault("calibration", record.extra["calibration"])
        return cls.from_model(
            model,
            processor,
            repo_id=repo_id,
            metrics=metrics,
            training=training,
            variant=kw.pop("variant", None) or record.variant,
            **kw,
        )

    # ------------------------------------------------------------------ rendering
    def eval_results(self) -> list[EvalResult]:
        """The model-index entries: every task's primary metrics by its type (`ProblemTypeInfo.card_metrics`), on its test
        split where it has one, else on its validation split; undefined values left out."""
        results = []
        for task in self.tasks:
            split = next((s for s in ("test", "validation") if task.name in self.metrics.get(s, {})), None)
            values = self.metrics[split][task.name] if split else {}
            for metric in info(task.problem_type).card_metrics:
                number = _point(values.get(metric))
                if number is None:
                    continue
                metric_type, metric_config = _HUB_METRICS[metric]
                results.append(
                    EvalResult(
                        task_type="text-classification",
                        task_name=f"Text classification ({task.name})",
                        dataset_type=task.dataset or task.name,
                        dataset_name=task.name,
                        dataset_split=split,
                        metric_type=metric_type,
                        metric_name=_METRIC_TITLES[metric],
                        metric_value=round(number, 4),
                        metric_config=metric_config,
                    )
                )
        return results

    def to_hub_card_data(self) -> ModelCardData:
        """The YAML metadata block of the card (library, pipeline tag, tags, base model and how the repo relates to
        it, license, eval results)."""
        eval_results = self.eval_results()
        tags = ["surgellm", "text-classification", "multi-task", "lexical-features", "custom_code"]
        if self.variant:
            tags.append(f"surgellm-{self.variant.lower()}")
        base_model = self.base_model if is_hub_id(self.base_model) else None
        relation = (
            {"base_model_relation": "adapter" if self.adapter_only else "finetune"} if base_model else {}
        )
        return ModelCardData(
            language=self.language or None,
            license=self.license,
            # PEFT loads a LoRA adapter repo (PeftModel.from_pretrained on the SURGELLM base model); the SURGELLM-modules
            # adapter (save_adapter) and full models load with transformers (remote code)
            library_name="peft" if self.adapter_only and self.lora_adapter else "transformers",
            pipeline_tag="text-classification",
            tags=tags,
            base_model=base_model,
            datasets=self.datasets or None,
            metrics=list(dict.fromkeys(r.metric_type for r in eval_results)) or None,
            model_name=self.model_name,
            eval_results=eval_results or None,
            **relation,
        )

    def template_variables(self) -> dict[str, Any]:
        """What the Jinja template sees besides `card_data`."""
        result_splits, missing = [], []
        for split in EVALUATION_SPLITS:
            by_task = self.metrics.get(split)
            if by_task:
                result_splits.append(_split_table(split, by_task, [t.name for t in self.tasks]))
            else:
                missing.append(f"No {split} metrics were recorded for this run.")
        for split in sorted(set(self.metrics) - set(EVALUATION_SPLITS)):
            result_splits.append(_split_table(split, self.metrics[split], [t.name for t in self.tasks]))
        default = next(t for t in self.tasks if t.name == self.default_task)
        return {
            "title": self.model_name,
            "summary": _summary(self),
            "repo_id": self.model_name,
            "tasks": [asdict(t) for t in self.tasks],
            "default_task": self.default_task,
            "default_task_labels": default.num_labels,
            "base_model_display": self.base_model or self.encoder_type or "an unknown encoder",
            "result_splits": result_splits,
            "missing_splits": missing,
            "lexicon": self.lexicon or _EMPTY_LEXICON,
            "surface_feature_names": list(SURFACE_FEATURE_NAMES),
            "variant": self.variant or "custom",
            "uses_gate": bool(self.switches.get("gate", True)),
            "switches": [
                {"name": _SWITCH_LABELS[k], "value": "n/a" if v is None else ("on" if v else "off")}
                for k, v in self.switches.items()
            ],
            "model_settings": [(k, _fmt_value(v)) for k, v in self.model_settings.items()],
            "training_settings": [(k, _fmt_value(v)) for k, v in self.training.items()],
            "intended_use": self.intended_use,
            "limitations": self.limitations,
            "adapter_only": self.adapter_only,
            "lora_adapter": self.lora_adapter,
            "progress": self.progress,
            "data_rows": _data_rows(self),
            "history": _history_table(self),
            "environment": _environment_lines(self),
            "versions": sorted((self.environment.get("versions") or {}).items()),
            # the usage snippets' inputs: a string, or for a sentence-pair task a {"text", "text_pair"} dict
            "contribution_lines": _contribution_table(self.feature_contributions),
            "feature_contributions_split": self.feature_contributions.get("split", "validation"),
            "calibration_lines": _calibration_table(self.calibration),
            "pipeline_inputs": {t.name: _pipeline_input(self, t.text_pair) for t in self.tasks},
            "processor_inputs": f"[{_quoted(self.example_text)}]"
            + (f", text_pair=[{_quoted(self.example_text_pair)}]" if default.text_pair else ""),
        }

    def to_model_card(self, template: str | os.PathLike | None = None) -> ModelCard:
        """Render the card with `ModelCard.from_template` (the package template unless `template` is given)."""
        path = Path(template) if template is not None else template_path()
        if not path.is_file():
            raise FileNotFoundError(f"Model card template {path} does not exist.")
        return ModelCard.from_template(
            self.to_hub_card_data(), template_path=str(path), **self.template_variables()
        )


_EMPTY_LEXICON = {
    "name": "none",
    "n_groups": 0,
    "n_entries": 0,
    "num_features": 0,
    "feature_names": [],
    "groups": [],
    "metadata": None,
}


def _calibrated_caveat(temperatures: Mapping[str, float], config: Any) -> str:
    """The limitation that replaces "scores are not calibrated" once temperatures were fitted."""
    named = ", ".join(f"`{t}` (T = {v:.3g})" for t, v in temperatures.items())
    rest = [t for t, k in config.task_problem_types.items() if info(k).has_classes and t not in temperatures]
    text = (
        f"Scores of {named} are temperature-scaled (`surgellm calibrate`): calibrated on the split they were "
        "fitted on, and only as far as new data resembles it."
    )
    if rest:
        text += f" Scores of {', '.join(f'`{t}`' for t in rest)} are not calibrated."
    return text + " A regression task's output is the model's raw estimate of the target."


def _contribution_table(summary: Mapping[str, Any]) -> list[str]:
    from ..evaluation.explanations import top_features_table

    return top_features_table(dict(summary)) if summary else []


def _calibration_table(calibration: Mapping[str, Any]) -> list[str]:
    """Markdown lines: a run's calibration table, or the fitted temperatures alone (a model without its run)."""
    from ..evaluation.report import calibration_lines

    if calibration.get("tasks"):
        return calibration_lines(calibration)[2:]  # the card has its own heading
    temperatures = calibration.get("temperatures") or {}
    if not temperatures:
        return []
    return ["| task | temperature |", "|---|---:|"] + [f"| {t} | {v:.3f} |" for t, v in temperatures.items()]


def _lexicon_summary(lexicon: Any, max_examples: int = 8) -> dict[str, Any]:
    groups = lexicon.groups
    meta = getattr(lexicon, "metadata", None) or {}
    return {
        "name": lexicon.name,
        "n_groups": len(groups),
        "n_entries": sum(len(e) for e in groups.values()),
        "num_features": lexicon.num_features,
        "feature_names": list(lexicon.feature_names),
        "groups": [
            {
                "name": name,
                "size": len(entries),
                "examples": ", ".join(f"`{e}`" for e in entries[:max_examples])
                + (", ..." if len(entries) > max_examples else ""),
            }
            for name, entries in groups.items()
        ],
        "metadata": ", ".join(f"{k}: {v}" for k, v in meta.items()) if meta else None,
    }


def _metrics_by_split(metrics: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split, by_task in metrics.items():
        if not isinstance(by_task, Mapping):
            raise TypeError(
                f"metrics[{split!r}] must map task -> metric -> value, got {type(by_task).__name__}."
            )
        out[split] = {task: dict(values) for task, values in by_task.items()}
    return out


def _training_from_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Training settings from a run's extra keys: a `training` (or `training_args`) mapping, else scalar keys."""
    for key in ("training", "training_args", "training_settings"):
        if isinstance(extra.get(key), Mapping):
            return dict(extra[key])
    return {
        k: v for k, v in extra.items() if isinstance(v, (int, float, str, bool)) and not k.startswith("_")
    }


def _point(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("mean")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _fmt_metric(value: Any) -> str:
    if isinstance(value, Mapping):
        mean, std = _point(value), value.get("std")
        if mean is None:
            return "–"
        if isinstance(std, (int, float)) and not math.isnan(std):
            return f"{mean:.3f} ± {std:.3f}"
        return f"{mean:.3f}"
    number = _point(value)
    return "–" if number is None else f"{number:.3f}"


def _fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _split_table(split: str, by_task: Mapping[str, Mapping[str, Any]], task_order: Sequence[str]) -> dict:
    present = [m for m in _METRIC_TITLES if any(m in by_task.get(t, {}) for t in task_order)]
    rows = [
        {"task": f"`{t}`", "cells": [_fmt_metric(by_task[t].get(m)) for m in present]}
        for t in task_order
        if t in by_task
    ]
    note = None
    missing_tasks = [t for t in task_order if t not in by_task]
    if missing_tasks:
        note = f"No {split} metrics for: {', '.join(missing_tasks)}."
    elif "macro_f1" in present:
        values = [_primary(by_task[t]) for t in task_order]
        if all(v is not None for v in values):
            label = (
                "**average**"
                if "pearson" not in present
                else "**average** (regression: (Pearson + Spearman) / 2)"
            )
            rows.append(
                {
                    "task": label,
                    "cells": [
                        f"**{sum(values) / len(values):.3f}**" if m == "macro_f1" else "" for m in present
                    ],
                }
            )
    return {
        "title": _SPLIT_TITLES.get(split, split.title()),
        "metric_names": [_METRIC_TITLES[m] for m in present],
        "rows": rows,
        "note": note,
    }


def _label_cells(task: TaskCardInfo, counts: Sequence[int] | None) -> str:
    """A split's class counts as 'name count' pairs (multi-label: rows per label); regression: nothing to count."""
    if not counts or not info(task.problem_type).has_classes:
        return "–"
    names = task.label_names if len(task.label_names) == len(counts) else [str(i) for i in range(len(counts))]
    return ", ".join(f"{name} {int(n)}" for name, n in zip(names, counts))


def _data_rows(card: SurgeModelCardData) -> list[dict[str, Any]]:
    """One row per task and split: rows, and class counts (the method balances classes, so they matter)."""
    rows = []
    for task in card.tasks:
        sizes = card.data_sizes.get(task.name, {})
        counts = card.label_counts.get(task.name, {})
        for split in [s for s in ("train", *EVALUATION_SPLITS) if s in sizes or s in counts]:
            n = sizes.get(split)
            rows.append(
                {
                    "task": f"`{task.name}`",
                    "split": split,
                    "rows": "–" if n is None else str(n),
                    "classes": _label_cells(task, counts.get(split)),
                }
            )
    return rows


def _history_table(card: SurgeModelCardData) -> dict[str, Any] | None:
    """The validation history per epoch: the mean primary score and each task's primary score."""
    if not card.validation_history:
        return None
    names = [t.name for t in card.tasks]
    rows = []
    for entry in card.validation_history:
        per_task = entry.get("tasks") or {}
        epoch = entry.get("epoch")
        rows.append(
            {
                "epoch": f"{epoch:g}" if isinstance(epoch, int | float) else "–",
                "avg": _fmt_metric(entry.get("avg_macro_f1")),
                "cells": [_fmt_metric(_primary(per_task.get(t, {}))) for t in names],
            }
        )
    return {"tasks": [f"`{t}`" for t in names], "rows": rows}


def _environment_lines(card: SurgeModelCardData) -> list[str]:
    """Hardware and training time, one bullet each."""
    lines = []
    hw = card.environment.get("hardware") or {}
    if hw.get("cpu"):
        lines.append(f"CPU: {hw['cpu']}" + (f" ({hw['cpu_cores']} cores)" if hw.get("cpu_cores") else ""))
    if hw:
        gpus = hw.get("gpus") or []
        names = sorted(set(gpus))
        lines.append("GPUs: " + (", ".join(f"{gpus.count(n)} × {n}" for n in names) if gpus else "none"))
        if hw.get("processes"):
            lines.append(f"Training processes: {hw['processes']}")
    runtime = card.training.get("train_runtime_s")
    if isinstance(runtime, int | float):
        lines.append(f"Training time: {_duration(runtime)}")
    return lines


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
    )


def _primary(metrics: Mapping[str, Any]) -> float | None:
    """A task's primary score (macro-F1; a regression task's mean of Pearson and Spearman), None when missing."""
    if "macro_f1" in metrics:
        return _point(metrics["macro_f1"])
    pearson, spearman = _point(metrics.get("pearson")), _point(metrics.get("spearman"))
    return None if pearson is None or spearman is None else (pearson + spearman) / 2


def _summary(card: SurgeModelCardData) -> str:
    parts = [f"Multi-task text classifier for {', '.join(f'`{t.name}`' for t in card.tasks)}"]
    if card.variant:
        parts.append(f"(SURGELLM variant **{card.variant}**)")
    test = card.metrics.get("test") or card.metrics.get("validation")
    split = "test" if card.metrics.get("test") else "validation"
    text = " ".join(parts) + "."
    if test:
        values = [_primary(test.get(t.name, {})) for t in card.tasks]
        if all(v is not None for v in values):
            by_f1 = all(info(t.problem_type).primary_metrics == ("macro_f1",) for t in card.tasks)
            what = "macro-F1" if by_f1 else "primary score"
            text += f" Average {split} {what} over tasks: **{sum(values) / len(values):.3f}**."
    return text


__all__ = ["SurgeModelCardData", "TaskCardInfo", "template_path"]
