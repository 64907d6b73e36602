"""Inference Endpoints handler of a SURGELLM model repo: `surgellm push` writes this file as ``handler.py``, with
``surgellm_runtime.py`` (the package's record layout and scoring, `surgellm_hf.serving.runtime`) and
``requirements.txt``, so the repo deploys as a custom-handler endpoint with no code of its own.

``EndpointHandler(path)(data)`` takes ``{"inputs": text | [texts], "parameters": {"task": name | "all",
"text_pair": text | [texts], "explain": bool, "threshold": number | {task: value}, "batch_size": int}}`` and returns
the records of `surgellm_hf.inference.predict_texts` (the same JSON as `surgellm predict` and `surgellm serve`). It
needs no surgellm_hf: the model, the processor and the explanations load as the repo's remote code.

Imports only the standard library, numpy, torch and transformers (what ``requirements.txt`` names).
"""

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

RUNTIME_FILE = "surgellm_runtime.py"
ADAPTER_CONFIG_NAME = "surge_adapter_config.json"
PARAMETERS = ("task", "text_pair", "explain", "threshold", "batch_size")


def _load_runtime(path: Path) -> Any:
    """The repo's copy of the package's runtime module (loaded by path: no package needed)."""
    spec = importlib.util.spec_from_file_location("surgellm_runtime", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("surgellm_runtime", module)
    spec.loader.exec_module(module)
    return module


class EndpointHandler:
    """The Inference Endpoints custom handler of a SURGELLM repo (a full model or a `save_adapter` adapter)."""

    def __init__(self, path: str = ""):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoProcessor
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        folder = Path(path or os.path.dirname(os.path.abspath(__file__)))
        self.runtime = _load_runtime(folder / RUNTIME_FILE)
        if (folder / ADAPTER_CONFIG_NAME).is_file():  # the SURGELLM modules and heads on their base encoder
            model_class = get_class_from_dynamic_module(
                "modeling_surge.SurgeForSequenceClassification", str(folder)
            )
            model = model_class.from_surge_modules(str(folder))
        else:
            model = AutoModelForSequenceClassification.from_pretrained(str(folder), trust_remote_code=True)
        self.model = model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
        self.processor = AutoProcessor.from_pretrained(str(folder), trust_remote_code=True)
        package = type(model).__module__.rpartition(".")[0]
        self.explaining = importlib.import_module(f"{package}.explaining_surge")
        config = model.config
        self.task_names = list(config.task_names)
        self.default_task = config.default_task
        self.scoring = self.runtime.TaskScoring(
            config.tasks,
            {t: config.label_names(t) for t in self.task_names},
            config.task_problem_types,
            config.task_thresholds,
            getattr(config, "task_temperatures", None),
        )
        self.all_tasks_in_one_pass = not self.runtime.input_depends_on_task(self.processor)

    # -- what `surgellm_runtime.predict_records` needs of a predictor -------------------------------------------
    def logits(self, texts: list[str], task: Any = None, text_pairs: list[str | None] | None = None) -> Any:
        """Padded ``[N, max_num_labels]`` logits of one batch."""
        import torch

        enc = self.processor(list(texts), text_pair=text_pairs, task=task, return_tensors="pt", padding=True)
        with torch.inference_mode():
            return self.model(**enc.to(self.model.device)).logits.float().cpu().numpy()

    def all_logits(self, texts: list[str]) -> Any:
        """``[N, num_tasks, max_num_labels]`` logits: one encoder pass where the input does not name the task."""
        import numpy as np
        import torch

        if not self.all_tasks_in_one_pass:
            return np.stack([self.logits(texts, t) for t in self.task_names], axis=1)
        enc = self.processor(list(texts), task=self.default_task, return_tensors="pt", padding=True)
        enc.pop("task_ids")
        with torch.inference_mode():
            return self.model.forward_all_tasks(**enc.to(self.model.device)).float().cpu().numpy()

    def explain(self, texts: list[str], task: Any = None, text_pairs: list[str | None] | None = None) -> Any:
        tasks = self.runtime.task_list(task, len(texts), self.task_names, self.default_task)
        return self.explaining.explain_batch(self.model, self.processor, texts, tasks, text_pairs)

    def explain_all(self, texts: list[str]) -> Any:
        return self.explaining.explain_every_task(
            self.model, self.processor, texts, self.all_tasks_in_one_pass
        )

    # -- the endpoint -----------------------------------------------------------------------------------------
    def __call__(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The records of ``data["inputs"]`` under ``data["parameters"]`` (see the module docstring)."""
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError('the request needs "inputs": a text or a list of texts')
        params = data.get("parameters") or {}
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; known: {list(PARAMETERS)}")
        inputs, pairs = data["inputs"], params.get("text_pair")
        if pairs is not None:
            pairs = [pairs] if isinstance(pairs, str) else list(pairs)
        return self.runtime.predict_records(
            self,
            inputs,
            params.get("task"),
            int(params.get("batch_size", 32)),
            pairs,
            self.processor.prefix,
            params.get("threshold"),
            bool(params.get("explain", False)),
        )
