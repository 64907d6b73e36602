"""The one way to load and run a saved SURGELLM model, behind every command (`surgellm evaluate`, `predict`,
`export`, `push`), the ONNX exporter and `predict_texts`.

`load_run_model(path)` reads any folder (or Hub repo) that holds a model and its processor: a full run or
`save_pretrained` folder, a LoRA run (its adapter merged into the base encoder), or a SURGELLM adapter written by
`save_adapter` beside its processor. `TorchPredictor` scores texts with the package's one scoring
(`serving.runtime.TaskScoring`), the same records the ONNX runner gives.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from .explaining_surge import explain_batch, explain_every_task
from .lora import LORA_ADAPTER_CONFIG, load_lora_model
from .modeling_surge import ADAPTER_CONFIG_NAME, SurgeForSequenceClassification
from .processing_surge import SurgeProcessor
from .serving.runtime import (
    SERVING_CONFIG_NAME,
    TaskScoring,
    input_depends_on_task,
    predict_records,
    task_list,
)

PROCESSOR_CONFIG_NAME = "processor_config.json"
_FULL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def model_folder_kind(folder: str | os.PathLike) -> str:
    """What a folder holds: 'full' (config + weights), 'lora' (a PEFT LoRA adapter + config), 'adapter' (a
    `save_adapter` folder) or 'onnx' (a `surgellm export` folder); a one-line error for anything else."""
    folder = Path(folder)
    if (folder / SERVING_CONFIG_NAME).is_file():
        return "onnx"
    if (folder / ADAPTER_CONFIG_NAME).is_file():
        return "adapter"
    has_config = (folder / "config.json").is_file()
    if has_config and (folder / LORA_ADAPTER_CONFIG).is_file():
        return "lora"
    if has_config and any((folder / name).is_file() for name in _FULL_WEIGHTS):
        return "full"
    if has_config:
        raise FileNotFoundError(
            f"{folder} has config.json but no weights (model.safetensors, a LoRA adapter_config.json or a "
            f"{ADAPTER_CONFIG_NAME}); is it a finished `surgellm train` run?"
        )
    raise FileNotFoundError(
        f"no saved model (config.json, or {ADAPTER_CONFIG_NAME} of `save_adapter`) in {folder}; is it a finished "
        "`surgellm train` run?"
    )


def _local_folder(path_or_repo: str | os.PathLike, **hub_kwargs: Any) -> Path:
    """`path_or_repo` as a local folder: itself, or the downloaded snapshot of a Hub repo of that id."""
    path = Path(path_or_repo)
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; a model is a folder (a run folder or a saved model)")
    name = str(path_or_repo)
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    missing = f"no saved model at {name}: no such folder"
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise FileNotFoundError(missing) from None
    if name.startswith((".", "~")) or name.count("/") != 1:
        raise FileNotFoundError(missing)
    try:
        return Path(snapshot_download(name, **hub_kwargs))
    except Exception as err:  # noqa: BLE001 - any Hub failure: the path was not a local folder either
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileNotFoundError(f"{missing} here, and no Hub repo of that id ({first})") from None


def load_run_model(
    path_or_repo: str | os.PathLike, **hub_kwargs: Any
) -> tuple[SurgeForSequenceClassification, SurgeProcessor]:
    """Model (eval mode, a plain `SurgeForSequenceClassification`) and processor of a run folder, any folder
    holding both, or a Hub repo of that id.

    Reads a full model (config.json + model.safetensors), a LoRA run (adapter merged into its base encoder) or a
    `save_adapter` folder (SURGELLM modules + heads on their base encoder) with its processor saved beside it. An
    ONNX export folder, a folder without a processor and one whose processor does not match the model are
    refused with one line.
    """
    folder = _local_folder(path_or_repo, **hub_kwargs)
    kind = model_folder_kind(folder)
    if kind == "onnx":
        raise ValueError(
            f"{folder} is already an ONNX export (it holds {SERVING_CONFIG_NAME}): it serves predictions (`surgellm "
            "predict`, OnnxSurgeClassifier) only; use the run folder it was exported from"
        )
    if not (folder / PROCESSOR_CONFIG_NAME).is_file():
        hint = (
            f"save it beside the adapter (processor.save_pretrained({str(folder)!r}))"
            if kind == "adapter"
            else "is it a finished `surgellm train` run?"
        )
        raise FileNotFoundError(f"no saved processor ({PROCESSOR_CONFIG_NAME}) in {folder}; {hint}")
    if kind == "lora":
        model = load_lora_model(folder)
    elif kind == "adapter":
        model = SurgeForSequenceClassification.from_surge_modules(folder)
    else:
        model = SurgeForSequenceClassification.from_pretrained(folder)
    processor = SurgeProcessor.from_pretrained(folder)
    processor.check_model(model)
    return model.eval(), processor


class TorchPredictor:
    """A PyTorch SURGELLM model + processor behind the streaming `Predictor` interface (``task="all"`` included):
    the one PyTorch prediction path (`predict_texts`, `surgellm predict RUN_DIR`)."""

    def __init__(self, model: Any, processor: Any):
        processor.check_model(model)
        self.model = model.eval()
        self.processor = processor
        config = model.config
        self.task_names: list[str] = list(config.task_names)
        self.default_task: str = config.default_task
        self.scoring = TaskScoring(
            config.tasks,
            {t: config.label_names(t) for t in self.task_names},
            config.task_problem_types,
            config.task_thresholds,
            config.task_temperatures,
        )

    @cached_property
    def all_tasks_in_one_pass(self) -> bool:
        """Whether ``task="all"`` runs the encoder once per batch (the input does not depend on the task)."""
        return not input_depends_on_task(self.processor)

    @classmethod
    def from_pretrained(cls, path_or_repo: str | os.PathLike, **hub_kwargs: Any) -> TorchPredictor:
        """Load any model folder `load_run_model` reads (run folder, LoRA run, adapter folder, Hub repo)."""
        return cls(*load_run_model(path_or_repo, **hub_kwargs))

    def _inputs(
        self, texts: Sequence[str], task: Any, text_pairs: Sequence[str | None] | None = None
    ) -> dict:
        pairs = None if text_pairs is None else list(text_pairs)
        enc = self.processor(list(texts), text_pair=pairs, task=task, return_tensors="pt", padding=True)
        device = self.model.device
        return {k: v.to(device) for k, v in enc.items()}

    def logits(
        self, texts: Sequence[str], task: Any = None, text_pairs: Sequence[str | None] | None = None
    ) -> Any:
        """Padded ``[N, max_num_labels]`` float32 numpy logits of one batch (`text_pairs`: None per single text)."""
        import torch

        with torch.inference_mode():
            return self.model(**self._inputs(texts, task, text_pairs)).logits.float().cpu().numpy()

    def all_logits(self, texts: Sequence[str]) -> Any:
        """``[N, num_tasks, max_num_labels]`` logits of one batch: `forward_all_tasks` (one encoder pass) where
        the input does not depend on the task, else one pass per task."""
        import numpy as np
        import torch

        if not self.all_tasks_in_one_pass:
            return np.stack([self.logits(texts, t) for t in self.task_names], axis=1)
        inputs = self._inputs(texts, self.default_task)
        inputs.pop("task_ids")
        with torch.inference_mode():
            return self.model.forward_all_tasks(**inputs).float().cpu().numpy()

    def explain(
        self, texts: Sequence[str], task: Any = None, text_pairs: Sequence[str | None] | None = None
    ) -> tuple[Any, list[dict[str, Any]]]:
        """``(logits, explanations)`` of one batch from one encoder pass (`explaining_surge.explain_batch`)."""
        tasks = task_list(task, len(texts), self.task_names, self.default_task)
        return explain_batch(self.model, self.processor, texts, tasks, text_pairs)

    def explain_all(self, texts: Sequence[str]) -> tuple[Any, list[dict[str, dict[str, Any]]]]:
        """``(all_logits, one {task: explanation} per text)``: `explaining_surge.explain_every_task`."""
        return explain_every_task(self.model, self.processor, texts, self.all_tasks_in_one_pass)

    def predict(
        self,
        texts: str | Sequence[str],
        task: Any = None,
        batch_size: int = 32,
        text_pairs: Sequence[str | None] | None = None,
        threshold: Any = None,
        explain: bool = False,
    ) -> list[dict[str, Any]]:
        """Records in input order (batched longest first), each task scored by its problem type; ``task="all"``:
        every task per text. `text_pairs`: the second text of each sentence pair, None for single-text rows;
        `threshold` overrides the multi-label thresholds for this call; `explain` adds each record's
        ``explanation`` (`explaining_surge`)."""
        return predict_records(
            self, texts, task, batch_size, text_pairs, self.processor.prefix, threshold, explain
        )


def predict_texts(
    model: SurgeForSequenceClassification,
    processor: SurgeProcessor,
    texts: Sequence[str],
    tasks: str | Sequence[str] | None = None,
    batch_size: int = 32,
    text_pairs: Sequence[str | None] | None = None,
    threshold: Any = None,
    explain: bool = False,
) -> list[dict[str, Any]]:
    """Classify texts, each under its task (a name per text, one name for all, the model's default task, or
    ``"all"``: every task); `TorchPredictor.predict` of `model` and `processor`.

    `text_pairs`: the second texts of sentence pairs, one entry per text (None for rows of single-text tasks).
    `threshold`: the multi-label decision threshold for this call (a number for every multi-label task, or
    ``{task: number or one per label}``; default: the model's, per label once calibrated). `explain`: each
    record gets an ``explanation`` of what the lexical features did (docs/serving.md#explanations).

    Returns one record per text: task, label id, label name and the probability of every label of that task.
    A multi-label task's record holds the lists of predicted label ids and names (sigmoid probability >= the
    task's threshold) and every label's sigmoid probability; a regression task's record its value under
    ``value`` (label and label_name None, scores ``{name: value}``).
    """
    return TorchPredictor(model, processor).predict(texts, tasks, batch_size, text_pairs, threshold, explain)


__all__ = [
    "load_run_model",
    "model_folder_kind",
    "predict_texts",
    "TorchPredictor",
]
