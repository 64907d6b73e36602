"""Inference helpers behind `surgellm evaluate` and `surgellm predict`: load a run folder, predict texts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evaluation.predictions import per_task_predictions
from .lora import is_lora_folder, load_lora_model
from .modeling_surge import SurgeForSequenceClassification
from .processing_surge import SurgeProcessor
from .serving.runtime import prediction_records


def load_run_model(run_dir: str | os.PathLike) -> tuple[SurgeForSequenceClassification, SurgeProcessor]:
    """Load the model and processor saved in a run folder (or any folder/repo holding both)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(
            f"no saved model (config.json) in {run_dir}; is it a finished `surgellm train` run?"
        )
    if is_lora_folder(run_dir):  # a LoRA run: adapter + config, the encoder comes from its base checkpoint
        model = load_lora_model(run_dir)
    else:
        model = SurgeForSequenceClassification.from_pretrained(run_dir).eval()
    processor = SurgeProcessor.from_pretrained(run_dir)
    processor.check_model(model)
    return model, processor


@torch.no_grad()
def predict_texts(
    model: SurgeForSequenceClassification,
    processor: SurgeProcessor,
    texts: Sequence[str],
    tasks: str | Sequence[str] | None = None,
    batch_size: int = 32,
    text_pairs: Sequence[str | None] | None = None,
) -> list[dict[str, Any]]:
    """Classify texts, each under its task (a name per text, one name for all, or the model's default task).

    `text_pairs`: the second texts of sentence pairs, one entry per text (None for rows of single-text tasks).

    Returns one record per text: task, label id, label name and the probability of every label of that task.
    A multi-label task's record holds the lists of predicted label ids and names (sigmoid probability >= the
    task's threshold) and every label's sigmoid probability; a regression task's record its value under
    ``value`` (label and label_name None, scores ``{name: value}``).
    """
    if isinstance(tasks, str) or tasks is None:
        tasks = [tasks or model.config.default_task] * len(texts)
    if len(tasks) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(tasks)} task names")
    if text_pairs is not None and len(text_pairs) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
    for t in set(tasks):
        model.config.task_id(t)
    records: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch_size):
        chunk, chunk_tasks = list(texts[start : start + batch_size]), list(tasks[start : start + batch_size])
        pairs = None if text_pairs is None else list(text_pairs[start : start + batch_size])
        inputs = processor(chunk, text_pair=pairs, task=chunk_tasks, return_tensors="pt", padding=True)
        logits = model(**dict(inputs)).logits.float().numpy()
        task_ids = np.asarray([model.config.task_id(t) for t in chunk_tasks])
        config = model.config
        by_task = per_task_predictions(
            logits, task_ids, config.tasks, config.task_problem_types, config.task_thresholds
        )
        names = {t: config.label_names(t) for t in by_task}
        records += prediction_records(by_task, len(chunk), names, config.task_problem_types)
    return records
