"""`text-classification` pipeline for SURGELLM models: lexical features and task prefix come from the processor.

A saved SURGELLM model lists this class in its config's ``custom_pipelines``, so
``pipeline("text-classification", model=repo, trust_remote_code=True)`` builds it, with the repo's
`SurgeProcessor` (loaded through ``AutoProcessor``) computing the raw features s(x), the prefix and the tokens.
Each call may name its task (``clf(texts, task="sst2")``); without one the config's ``default_task`` is used.
Sentence-pair tasks take ``{"text": ..., "text_pair": ...}`` dicts (one, or a list), as the stock
text-classification pipeline does: ``clf({"text": premise, "text_pair": hypothesis}, task="nli")``.

Copied to the Hub for ``trust_remote_code`` loading: imports only numpy, torch, transformers and its flat siblings.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from transformers import Pipeline
from transformers.pipelines.text_classification import ClassificationFunction

from .explaining_surge import explain_batch
from .problem_types import info, sigmoid, task_probabilities

PIPELINE_TASK = "text-classification"
_WINDOWS = "windows"
_PER_TEXT = ("lexical_features", "task_ids", "num_windows")
PIPELINE_CLASS_NAME = "SurgeTextClassificationPipeline"
# What a SURGELLM config stores under `custom_pipelines` (see `surge_custom_pipelines`).
_CUSTOM_PIPELINES: dict[str, dict[str, Any]] = {
    PIPELINE_TASK: {
        "impl": f"pipeline_surge.{PIPELINE_CLASS_NAME}",
        "pt": ["AutoModelForSequenceClassification"],
        "type": "text",
    }
}


def surge_custom_pipelines() -> dict[str, dict[str, Any]]:
    """The ``config.custom_pipelines`` entry that routes ``pipeline("text-classification", ...)`` to this file."""
    return copy.deepcopy(_CUSTOM_PIPELINES)


class SurgeTextClassificationPipeline(Pipeline):
    """Multi-task text classification with a SURGELLM model and its processor.

    Call arguments: ``task`` (a task name of the model; default ``config.default_task``), ``top_k`` (labels per
    text, ``None`` for all; as in the stock pipeline) and ``function_to_apply`` (``"softmax"``, ``"sigmoid"``,
    ``"none"``; by default softmax for a single-label task, sigmoid for a multi-label task and the raw value for a
    regression task, as in transformers). Scores cover only the chosen task's own labels, named from
    ``config.task_label_names``; a task with a fitted temperature (``config.task_temperatures``, `surgellm
    calibrate`) is scored from logits / T.

    ``threshold`` (multi-label tasks): keep only the labels whose score reaches it: a number, one number per label,
    or ``"model"`` for the model's own (``config.task_thresholds``, per label once calibrated). ``explain=True``
    returns ``{"predictions": <the usual output>, "explanation": {...}}`` per text (see `explaining_surge`; with
    ``batch_size`` 1).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                "The SURGELLM pipeline needs the model's SurgeProcessor (tokenizer + lexicon + prefix settings): push "
                "it to the same repo with `processor.push_to_hub(repo_id)`, or pass `processor=`."
            )
        if not callable(self.processor):
            raise TypeError(f"`processor` must be a SurgeProcessor, got {type(self.processor).__name__}.")
        check = getattr(self.processor, "check_model", None)
        if check is not None:
            check(self.model)  # tasks / feature names of processor and model must agree

    def _resolve_task(self, task: Any) -> str:
        config = self.model.config
        if task is not None and not isinstance(task, str):
            raise TypeError(f"`task` must be a task name (one of {config.task_names}), got {task!r}.")
        return config.task_names[config.task_id(task)]  # None: the default task; unknown names raise

    def _sanitize_parameters(
        self,
        task=None,
        default_task=None,
        top_k="",
        function_to_apply=None,
        threshold=None,
        explain=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"Unexpected argument(s) {sorted(kwargs)} for the SURGELLM text-classification pipeline."
            )
        preprocess, forward, postprocess = {}, {}, {}
        chosen = task if task is not None else default_task
        if chosen is not None:
            chosen = self._resolve_task(chosen)
            preprocess["task"] = postprocess["task"] = chosen
        if explain is not None:
            preprocess["explain"] = forward["explain"] = postprocess["explain"] = bool(explain)
        if threshold is not None:
            postprocess["threshold"] = threshold
        if isinstance(top_k, int) or top_k is None:
            if isinstance(top_k, int) and top_k < 1:
                raise ValueError(f"`top_k` must be a positive integer or None, got {top_k}.")
            postprocess["top_k"] = top_k
            postprocess["_legacy"] = False
        if isinstance(function_to_apply, str):
            try:
                function_to_apply = ClassificationFunction[function_to_apply.upper()]
            except KeyError as err:
                raise ValueError(
                    f"`function_to_apply` must be 'softmax', 'sigmoid' or 'none', got {function_to_apply!r}."
                ) from err
        if function_to_apply is not None:
            postprocess["function_to_apply"] = function_to_apply
        return preprocess, forward, postprocess

    def __call__(
        self, inputs: str | dict[str, str] | list[str] | list[dict[str, str]], **kwargs: Any
    ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """Classify one text or a list of texts under one task (``task=``, else the model's default task); a
        sentence-pair task takes ``{"text": ..., "text_pair": ...}`` dicts instead of strings."""

        def valid(item: Any) -> bool:
            return isinstance(item, str) or (
                isinstance(item, dict)
                and isinstance(item.get("text"), str)
                and isinstance(item.get("text_pair"), str)
                and set(item) == {"text", "text_pair"}
            )

        if not (valid(inputs) or (isinstance(inputs, (list, tuple)) and all(valid(t) for t in inputs))):
            raise TypeError(
                "The SURGELLM pipeline takes a string or a list of strings; sentence-pair tasks take a "
                "{'text': ..., 'text_pair': ...} dict or a list of them."
            )
        result = super().__call__(inputs if valid(inputs) else list(inputs), **kwargs)
        if isinstance(inputs, str) and "top_k" not in kwargs:
            return [result]  # the stock text-classification pipeline wraps a single text's answer in a list
        return result

    def preprocess(
        self, inputs: str | dict[str, str], task: str | None = None, explain: bool = False
    ) -> dict[str, Any]:
        task = self._resolve_task(task)
        if explain:  # the texts themselves: explain_batch encodes them and finds their lexicon entries
            pair = inputs["text_pair"] if isinstance(inputs, dict) else None
            return {"_explain": (inputs["text"] if isinstance(inputs, dict) else inputs, pair, task)}
        if isinstance(inputs, dict):
            encoded = self.processor(
                [inputs["text"]], text_pair=[inputs["text_pair"]], task=task, return_tensors="pt"
            )
        else:
            encoded = self.processor([inputs], task=task, return_tensors="pt")
        encoded = dict(encoded)
        if "num_windows" in encoded:
            # a long text's windows ([windows, length]) travel as one item: the stock batching pads each
            # tensor input as one row per text, so they are joined in `_forward` instead
            encoded[_WINDOWS] = {k: encoded.pop(k) for k in list(encoded) if k not in _PER_TEXT}
        return encoded

    def _forward(self, model_inputs: dict[str, Any], explain: bool = False) -> dict[str, Any]:
        if explain:
            text, pair, task = model_inputs["_explain"]
            logits, explanations = explain_batch(
                self.model, self.processor, [text], [task], None if pair is None else [pair]
            )
            task_ids = torch.tensor([self.model.config.task_id(task)])
            return {"logits": torch.from_numpy(logits), "task_ids": task_ids, "explanation": explanations[0]}
        model_inputs = dict(model_inputs)
        if _WINDOWS in model_inputs:
            model_inputs.update(self._join_windows(model_inputs.pop(_WINDOWS)))
        outputs = self.model(**model_inputs)
        return {"logits": outputs.logits, "task_ids": model_inputs["task_ids"]}

    def _join_windows(
        self, windows: dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]
    ) -> dict[str, Any]:
        """The windows of one text (unbatched) or of a batch of texts (a list, one entry per text), as the token
        inputs of the batch: every window one row, padded on the tokenizer's side with its pad values."""
        if isinstance(windows, dict):
            return windows
        tokenizer = self.processor.tokenizer
        pad_values = {"input_ids": tokenizer.pad_token_id, "token_type_ids": tokenizer.pad_token_type_id}
        width = max(w["input_ids"].shape[1] for w in windows)
        out = {}
        for key in windows[0]:
            parts = []
            for w in windows:
                missing = width - w[key].shape[1]
                pad = (missing, 0) if tokenizer.padding_side == "left" else (0, missing)
                parts.append(torch.nn.functional.pad(w[key], pad, value=pad_values.get(key, 0) or 0))
            out[key] = torch.cat(parts, dim=0)
        return out

    def postprocess(
        self,
        model_outputs,
        task: str | None = None,
        function_to_apply=None,
        top_k=1,
        _legacy=True,
        threshold=None,
        explain: bool = False,
    ):
        config = self.model.config
        task = self._resolve_task(task)
        if int(model_outputs["task_ids"].reshape(-1)[0]) != config.task_id(task):
            raise RuntimeError("The processor encoded a different task than the pipeline asked for.")
        num_labels = config.tasks[task]
        logits = model_outputs["logits"][0].float().numpy()
        kind = config.task_problem_types[task]  # defaults as transformers': per problem type
        function_to_apply = function_to_apply or ClassificationFunction(info(kind).scoring)
        temperature = (getattr(config, "task_temperatures", None) or {}).get(task)
        if temperature is not None and function_to_apply != ClassificationFunction.NONE:
            logits = logits[:num_labels] / temperature
        if function_to_apply == ClassificationFunction.SOFTMAX:
            scores = task_probabilities(logits, num_labels)
        elif function_to_apply == ClassificationFunction.SIGMOID:
            scores = sigmoid(logits[:num_labels])
        else:
            scores = logits[:num_labels]
        labels = config.label_names(task)
        limit = self._threshold(task, threshold)
        if top_k == 1 and _legacy and limit is None:
            best = int(scores.argmax())
            result: Any = {"label": labels[best], "score": float(scores[best])}
        else:
            kept = range(len(scores)) if limit is None else np.flatnonzero(scores >= limit)
            ranked = [{"label": labels[i], "score": float(scores[i])} for i in kept]
            ranked.sort(key=lambda d: d["score"], reverse=True)
            result = ranked if top_k is None or limit is not None else ranked[:top_k]
        if explain:
            return {"predictions": result, "explanation": model_outputs["explanation"]}
        return result

    def _threshold(self, task: str, threshold: Any) -> np.ndarray | None:
        """The per-label decision thresholds a call asked for (None: rank every label, as the stock pipeline)."""
        if threshold is None:
            return None
        config = self.model.config
        if not info(config.task_problem_types[task]).has_thresholds:
            raise ValueError(
                f"`threshold` is for multi-label tasks; task {task!r} is {config.problem_type_of(task)}."
            )
        value = (
            config.threshold_of(task) if isinstance(threshold, str) and threshold == "model" else threshold
        )
        limit = np.broadcast_to(np.asarray(value, dtype=np.float64), (config.tasks[task],))
        if not np.all((limit > 0) & (limit < 1)):
            raise ValueError(
                f"`threshold` must be in (0, 1) (a number, one per label, or 'model'), got {threshold!r}."
            )
        return limit


__all__ = ["SurgeTextClassificationPipeline", "surge_custom_pipelines", "task_probabilities", "PIPELINE_TASK"]
