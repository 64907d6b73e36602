"""Run an exported SURGELLM folder with ONNX Runtime: texts + task in, label names and scores out, without torch.

``OnnxSurgeClassifier.from_pretrained(folder).predict(texts, task="sst2")`` returns the records of
`surgellm_hf.inference.predict_texts` (task, label, label_name, scores; each task scored by its problem type from
``serving_config.json``, see `prediction_records`); ``task="all"`` returns every task's prediction for every text,
from one encoder pass per batch when the encoder input does not depend on the task.

The per-type scoring (`split_by_task`, `prediction_records`: the record layout of `predict_texts`,
`task_probabilities`) is the package's one implementation in `surgellm_hf.problem_types` (numpy only), re-exported
here. Loaded by path without its package (an endpoint repo's ``surgellm_runtime.py``), this file loads
``problem_types.py`` from beside it (the repo's remote code) or from the package folder.

This module imports no torch and nothing of surgellm_hf at import time (numpy only; onnxruntime and the package's
`SurgeProcessor` when a folder is loaded), so ``surgellm_hf.serving.runtime`` runs in a process without torch, and
the Inference Endpoints handler loads a copy of this file by path (`surgellm_hf.hub.endpoint`) for its scoring.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ALL_TASKS = "all"
"""The task name that asks for every task's prediction of each text."""
SERVING_CONFIG_NAME = "serving_config.json"
SERVING_FORMAT = "surgellm-onnx"
SERVING_FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
QUANTIZED_MODEL_FILE = "model_quantized.onnx"
PROCESSOR_FILES = ("processor_config.json", "lexicon.json", "tokenizer_config.json")
TOKENIZER_VOCAB_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spm.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
# Texts of varied length and content for tracing the graph and for the parity check after export.
PROBE_TEXTS = (
    "A gorgeous, witty film!",
    "I think, maybe, the results show that the method works. Firstly, it is fast; secondly, it is cheap?",
    "According to the passage, the 1937 election was held in Dallas, Texas.",
    "ok",
)
_NP_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}


_PROBLEM_TYPES_MODULE = "_surgellm_hf_problem_types"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _load_problem_types() -> ModuleType:
    """`surgellm_hf.problem_types` for this file loaded by path (an endpoint repo's ``surgellm_runtime.py``, or run
    without the package): the package's module when it is imported, else ``problem_types.py`` beside this file (the
    repo's remote code) or in the package folder, loaded by path (numpy only)."""
    if sys.modules.get("surgellm_hf") is not None:
        return importlib.import_module("surgellm_hf.problem_types")
    if _PROBLEM_TYPES_MODULE in sys.modules:
        return sys.modules[_PROBLEM_TYPES_MODULE]
    # beside this file as named (a Hub cache snapshot links each file to a blob: not resolved), then the package's
    candidates = [
        Path(os.path.abspath(__file__)).parent / "problem_types.py",
        _PACKAGE_DIR / "problem_types.py",
    ]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise ImportError(
            f"problem_types.py (the per-task scoring) is in none of {[str(c) for c in candidates]}"
        )
    spec = importlib.util.spec_from_file_location(_PROBLEM_TYPES_MODULE, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PROBLEM_TYPES_MODULE] = module
    spec.loader.exec_module(module)
    return module


if __package__:  # surgellm_hf.serving.runtime
    from .. import problem_types as _problem_types
else:  # loaded by path
    _problem_types = _load_problem_types()
PROBLEM_TYPES = _problem_types.PROBLEM_TYPES
DEFAULT_PROBLEM_TYPE = _problem_types.DEFAULT_PROBLEM_TYPE
problem_type_info = _problem_types.info
ProbabilityFn = _problem_types.ProbabilityFn
split_by_task = _problem_types.split_by_task
prediction_records = _problem_types.prediction_records
task_probabilities = _problem_types.task_probabilities


def read_serving_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``serving_config.json`` of an exported folder (one-line errors when missing or foreign)."""
    path = Path(folder) / SERVING_CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {SERVING_CONFIG_NAME}: not an ONNX export (create one with `surgellm export`)"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err.msg} (line {err.lineno})") from None
    if not isinstance(config, dict) or config.get("format") != SERVING_FORMAT:
        raise ValueError(f"{path} is not a SURGELLM ONNX serving config")
    if config.get("format_version") != SERVING_FORMAT_VERSION:
        raise ValueError(
            f"{path} has format version {config.get('format_version')!r}; this code reads {SERVING_FORMAT_VERSION}"
        )
    return config


def task_types(config: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """(problem type per task, threshold per multi-label task) from a serving config's ``tasks`` list.

    An export written before per-task types (no ``problem_type`` in its task entries) is all single-label. A
    multi-label task without a threshold, an unknown type or a regression task with more than one output is a
    one-line ValueError naming the task.
    """
    types: dict[str, str] = {}
    thresholds: dict[str, float] = {}
    for entry in config["tasks"]:
        name, kind = entry["name"], entry.get("problem_type") or DEFAULT_PROBLEM_TYPE
        known = _problem_types.type_names()
        if kind not in known:
            raise ValueError(
                f"{SERVING_CONFIG_NAME}: task {name!r} has problem_type {kind!r}; one of {known}"
            )
        exact = problem_type_info(kind).exact_labels
        if exact is not None and int(entry["num_labels"]) != exact:
            raise ValueError(
                f"{SERVING_CONFIG_NAME}: {kind} task {name!r} has {entry['num_labels']} outputs; it needs "
                f"{'one' if exact == 1 else exact}"
            )
        threshold = entry.get("threshold")
        if problem_type_info(kind).has_thresholds:
            values = threshold if isinstance(threshold, list) else [threshold]
            if not all(_in_unit_interval(v) for v in values) or (
                isinstance(threshold, list) and len(threshold) != int(entry["num_labels"])
            ):
                raise ValueError(
                    f"{SERVING_CONFIG_NAME}: multi-label task {name!r} needs a threshold in (0, 1) (or one per "
                    f"label), got {threshold!r}"
                )
            thresholds[name] = (
                [float(v) for v in threshold] if isinstance(threshold, list) else float(threshold)
            )
        elif threshold is not None:
            raise ValueError(
                f"{SERVING_CONFIG_NAME}: task {name!r} is {kind} but has a threshold ({threshold!r})"
            )
        types[name] = kind
    return types, thresholds


def _in_unit_interval(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1


def task_temperatures(config: Mapping[str, Any]) -> dict[str, float]:
    """The fitted temperature of each calibrated classification task in a serving config's ``tasks`` list (tasks
    without one, and exports made before calibration existed, score with T = 1)."""
    out = {}
    for entry in config["tasks"]:
        value = entry.get("temperature")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ValueError(
                f"{SERVING_CONFIG_NAME}: task {entry['name']!r} has temperature {value!r}; a finite number > 0"
            )
        out[entry["name"]] = float(value)
    return out


def is_exported_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder written by `surgellm export` (it holds ``serving_config.json``)."""
    return (Path(path) / SERVING_CONFIG_NAME).is_file()


def input_depends_on_task(processor: Any) -> bool:
    """Whether the encoder input for a text changes with the task (a prefix that names the task, or a soft prefix)."""
    tasks = list(processor.tasks)
    if processor.prefix is None or len(tasks) < 2:
        return False
    if processor.prefix == "soft":
        return True  # the task enters the encoder as the soft prefix's virtual tokens, not as token ids
    pair_tasks = set(getattr(processor, "pair_tasks", None) or [])
    if pair_tasks and len(pair_tasks) < len(tasks):
        return True  # pair and single-text tasks: the encoder input (one text or two) depends on the task
    pairs = list(reversed(PROBE_TEXTS)) if pair_tasks else None
    ids = [processor(list(PROBE_TEXTS), text_pair=pairs, task=t)["input_ids"] for t in tasks]
    return any(other != ids[0] for other in ids[1:])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (what `predict_texts` computes from the model's logits)."""
    return _problem_types.softmax(np.asarray(logits, dtype=np.float64))


class TaskScoring:
    """How a predictor scores its tasks: tasks in id order with label counts, label names, types, thresholds (one
    number or one per label) and the temperatures of calibrated tasks."""

    def __init__(
        self,
        tasks: Mapping[str, int],
        label_names: Mapping[str, Sequence[str]],
        problem_types: Mapping[str, str] | None = None,
        thresholds: Mapping[str, float | Sequence[float]] | None = None,
        temperatures: Mapping[str, float] | None = None,
    ):
        self.tasks = dict(tasks)
        self.label_names = {t: list(label_names[t]) for t in self.tasks}
        self.problem_types = {t: (problem_types or {}).get(t, DEFAULT_PROBLEM_TYPE) for t in self.tasks}
        self.thresholds = {t: _threshold_value(v) for t, v in (thresholds or {}).items()}
        self.temperatures = {t: float(v) for t, v in (temperatures or {}).items()}

    def with_thresholds(self, threshold: Any) -> TaskScoring:
        """A copy whose multi-label thresholds are overridden for one call: a number (every multi-label task), or
        ``{task: number or one per label}``; None keeps the model's. A bad value is a one-line ValueError."""
        if threshold is None:
            return self
        multi = [t for t, k in self.problem_types.items() if problem_type_info(k).has_thresholds]
        if not multi:
            raise ValueError(
                f"a threshold is for multi-label tasks; this model has none (tasks: {list(self.tasks)})"
            )
        given = dict(threshold) if isinstance(threshold, Mapping) else dict.fromkeys(multi, threshold)
        wrong = [t for t in given if t not in multi]
        if wrong:
            raise ValueError(
                f"threshold names task(s) {wrong} that are not multi-label tasks (multi-label: {multi})"
            )
        limits = dict(self.thresholds)
        for task, value in given.items():
            values = list(value) if isinstance(value, (list, tuple)) else [value]
            if not all(_in_unit_interval(v) for v in values) or (
                isinstance(value, (list, tuple)) and len(values) != self.tasks[task]
            ):
                raise ValueError(
                    f"threshold of task {task!r} must be a number in (0, 1) or {self.tasks[task]} of them (one per "
                    f"label), got {value!r}"
                )
            limits[task] = _threshold_value(value)
        return TaskScoring(self.tasks, self.label_names, self.problem_types, limits, self.temperatures)

    def records(self, logits: np.ndarray, tasks: Sequence[str]) -> list[dict[str, Any]]:
        """One `predict_texts` record per row of padded ``[N, max_num_labels]`` logits, row i under ``tasks[i]``."""
        ids = {t: i for i, t in enumerate(self.tasks)}
        task_ids = np.asarray([ids[t] for t in tasks], dtype=np.int64)
        by_task = split_by_task(
            logits,
            task_ids,
            self.tasks,
            self.problem_types,
            self.thresholds,
            task_probabilities,
            self.temperatures,
        )
        return prediction_records(by_task, len(tasks), self.label_names, self.problem_types)

    def all_task_records(self, all_logits: np.ndarray) -> list[dict[str, Any]]:
        """One ``{"tasks": {task: record less its task}}`` per row of ``[N, num_tasks, C]`` logits."""
        per_task = [
            self.records(all_logits[:, t], [name] * len(all_logits)) for t, name in enumerate(self.tasks)
        ]
        return [
            {"tasks": {rec["task"]: {k: v for k, v in rec.items() if k != "task"} for rec in row}}
            for row in zip(*per_task)
        ]


def _threshold_value(value: Any) -> float | list[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


def length_order(texts: Sequence[str]) -> list[int]:
    """Indices of `texts` from longest to shortest (stable): batches of similar length pad little."""
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))


def predict_batched(
    predictor: Any,
    texts: list[str],
    tasks: list[str] | None,
    batch_size: int,
    text_pairs: Sequence[str | None] | None = None,
    scoring: TaskScoring | None = None,
    explain: bool = False,
) -> list[dict[str, Any]]:
    """Records in input order, batched longest first; ``tasks=None``: every task for every text.

    Shared by the ONNX runner and the torch predictor: both give ``logits(texts, tasks)``, ``all_logits(texts)``,
    ``task_names`` and ``scoring`` (a `TaskScoring`: each task scored by its problem type; `scoring` replaces it
    for one call). `text_pairs` (one entry per text, None for single-text rows) goes to
    ``logits(texts, tasks, text_pairs=...)``; it cannot be combined with every task (``tasks=None``). With
    `explain`, the predictor's ``explain(texts, tasks, text_pairs)`` / ``explain_all(texts)`` give the logits
    and one explanation per row (per task with every task), added to each record under ``explanation``.
    """
    scoring = scoring or predictor.scoring
    if text_pairs is not None:
        if tasks is None:
            raise ValueError(
                "task 'all' is not supported for sentence pairs: a pair fits only the pair tasks; name the task"
            )
        if len(text_pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        lengths = [len(t) + len(p or "") for t, p in zip(texts, text_pairs)]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    else:
        order = length_order(texts)
    out: list[dict[str, Any] | None] = [None] * len(texts)
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        chunk = [texts[i] for i in idx]
        if tasks is None:
            if explain:
                all_logits, explanations = predictor.explain_all(chunk)
                recs = scoring.all_task_records(all_logits)
                for rec, by_task in zip(recs, explanations):
                    for name, explanation in by_task.items():
                        rec["tasks"][name]["explanation"] = explanation
            else:
                recs = scoring.all_task_records(predictor.all_logits(chunk))
        else:
            chunk_tasks = [tasks[i] for i in idx]
            pairs = {} if text_pairs is None else {"text_pairs": [text_pairs[i] for i in idx]}
            if explain:
                logits, explanations = predictor.explain(chunk, chunk_tasks, **pairs)
                recs = scoring.records(logits, chunk_tasks)
                for rec, explanation in zip(recs, explanations):
                    rec["explanation"] = explanation
            else:
                recs = scoring.records(predictor.logits(chunk, chunk_tasks, **pairs), chunk_tasks)
        for i, rec in zip(idx, recs):
            out[i] = rec
    return out  # type: ignore[return-value]


def task_name(task: Any, task_names: Sequence[str], default: str) -> str:
    """A task name from a name, a task id or None (the default task); unknown ones are a one-line ValueError."""
    if task is None:
        return default
    if isinstance(task, (int, np.integer)) and not isinstance(task, bool):
        if not 0 <= int(task) < len(task_names):
            raise ValueError(f"unknown task id {task}; valid ids are 0..{len(task_names) - 1}")
        return task_names[int(task)]
    if task not in task_names:
        raise ValueError(f"unknown task {task!r}; valid tasks are {list(task_names)} (or 'all')")
    return task


def task_list(task: Any, n: int, task_names: Sequence[str], default: str) -> list[str]:
    """One task name per text from one `task_name` for all or one per text."""
    if task is None or isinstance(task, (str, int, np.integer)):
        return [task_name(task, task_names, default)] * n
    tasks = list(task)
    if len(tasks) != n:
        raise ValueError(f"got {n} texts but {len(tasks)} task names")
    names = {t: task_name(t, task_names, default) for t in set(tasks)}
    return [names[t] for t in tasks]


def predict_records(
    predictor: Any,
    texts: str | Sequence[str],
    task: Any,
    batch_size: int,
    text_pairs: Sequence[str | None] | None = None,
    prefix: Any = None,
    threshold: Any = None,
    explain: bool = False,
) -> list[dict[str, Any]]:
    """The `predict` of both predictors (ONNX and PyTorch): texts and tasks checked, ``task="all"`` (a warning
    when that costs one encoder pass per task), then `predict_batched`; `threshold` overrides the multi-label
    thresholds for this call (`TaskScoring.with_thresholds`), `explain` adds each row's explanation."""
    texts = _text_list(texts)
    batch_size = _check_batch_size(batch_size)
    scoring = predictor.scoring.with_thresholds(threshold)
    if explain and not callable(getattr(predictor, "explain", None)):
        raise ValueError(
            f"{type(predictor).__name__} gives no explanations; they need the PyTorch model (the run folder)"
        )
    names = predictor.task_names
    every = isinstance(task, str) and task == ALL_TASKS and ALL_TASKS not in names
    if every and not predictor.all_tasks_in_one_pass and len(names) > 1:
        warnings.warn(
            f"the encoder input of this model depends on the task (prefix {prefix!r}), so task='all' runs one "
            f"encoder pass per task ({len(names)} passes)",
            stacklevel=3,
        )
    tasks = None if every else task_list(task, len(texts), names, predictor.default_task)
    return predict_batched(predictor, texts, tasks, batch_size, text_pairs, scoring, explain)


def _text_list(texts: str | Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts must be strings; item {i} is {type(t).__name__}")
    return texts


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _onnxruntime() -> Any:
    """The onnxruntime module, or an ImportError naming the extra. Imported inside `try` so that transformers'
    remote-code import check (which skips guarded imports) does not require onnxruntime where this file is copied."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            'onnxruntime is not installed; install the ONNX extras: pip install "surgellm_hf[onnx]"'
        ) from None
    return onnxruntime


def default_session_options(num_threads: int | None = None) -> Any:
    """The runner's ONNX Runtime session options: every graph optimization, errors-only logging, one inter-op thread
    and ``num_threads`` intra-op threads (default: ONNX Runtime's choice); measured against its other settings in
    docs/benchmarks.md#serving."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.inter_op_num_threads = 1
    if num_threads is not None:
        options.intra_op_num_threads = int(num_threads)
    return options


class OnnxSurgeClassifier:
    """An exported SURGELLM folder served by ONNX Runtime; `predict` gives `predict_texts`' records."""

    def __init__(
        self, session: Any, processor: Any, config: Mapping[str, Any], folder: Path, quantized: bool
    ):
        self.session = session
        self.processor = processor
        self.config = dict(config)
        self.folder = folder
        self.quantized = quantized
        self.task_names: list[str] = [t["name"] for t in config["tasks"]]
        self.num_labels: dict[str, int] = {t["name"]: int(t["num_labels"]) for t in config["tasks"]}
        self._label_names: dict[str, list[str]] = {t["name"]: list(t["label_names"]) for t in config["tasks"]}
        self.problem_types, self.thresholds = task_types(config)
        self.temperatures = task_temperatures(config)
        self.scoring = TaskScoring(
            self.num_labels, self._label_names, self.problem_types, self.thresholds, self.temperatures
        )
        self.default_task: str = config["default_task"]
        self._inputs = {i.name: i for i in session.get_inputs()}
        self.input_names: list[str] = list(self._inputs)
        self.output_names: list[str] = [o.name for o in session.get_outputs()]

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        folder: str | os.PathLike,
        *,
        quantized: bool = False,
        num_threads: int | None = None,
        providers: Sequence[Any] | None = None,
        session_options: Any | None = None,
    ) -> OnnxSurgeClassifier:
        """Load an exported folder: the fp32 graph (or the int8 one with ``quantized=True``) and its processor.

        ``num_threads`` sets ONNX Runtime's intra-op threads (default: its own choice); ``providers`` defaults to
        the CPU provider. Every missing file and every mismatch between graph, lexicon and config is a one-line
        error.
        """
        ort = _onnxruntime()
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"exported model folder not found: {folder}")
        config = read_serving_config(folder)
        if quantized:
            model_file = config.get("quantized_model_file")
            if not model_file:
                raise ValueError(
                    f"{folder} has no int8 graph; quantize it first (`surgellm export --quantize` or "
                    "surgellm_hf.serving.quantize_export)"
                )
        else:
            model_file = config.get("model_file") or MODEL_FILE
        missing = [n for n in (model_file, *PROCESSOR_FILES) if not (folder / n).is_file()]
        if not any((folder / n).is_file() for n in TOKENIZER_VOCAB_FILES):
            missing.append(f"a tokenizer vocabulary ({' or '.join(TOKENIZER_VOCAB_FILES[:2])})")
        if missing:
            raise FileNotFoundError(
                f"exported folder {folder} is missing {', '.join(missing)}; export it again with `surgellm export`"
            )
        from ..processing_surge import SurgeProcessor

        processor = SurgeProcessor.from_pretrained(folder)
        if session_options is None:
            session_options = default_session_options(num_threads)
        try:
            session = ort.InferenceSession(
                str(folder / model_file),
                session_options,
                providers=list(providers or ["CPUExecutionProvider"]),
            )
        except Exception as err:  # onnxruntime raises its own exception types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"ONNX Runtime cannot load {folder / model_file}: {first}") from None
        runner = cls(session, processor, config, folder, quantized)
        runner._check_consistency()
        return runner

    def _check_consistency(self) -> None:
        """Graph, config, lexicon and processor must agree (feature width, tasks, inputs)."""
        config, folder = self.config, self.folder
        lexicon = self.processor.lexicon
        if "lexical_features" in self._inputs:
            width = self._inputs["lexical_features"].shape[-1]
            if isinstance(width, int) and width != lexicon.num_features:
                raise ValueError(
                    f"lexicon.json of {folder} gives {lexicon.num_features} features but the graph takes "
                    f"{width}; the files do not belong together (export again)"
                )
        if config.get("num_features") != lexicon.num_features:
            raise ValueError(
                f"lexicon.json of {folder} gives {lexicon.num_features} features but {SERVING_CONFIG_NAME} records "
                f"{config.get('num_features')}; the files do not belong together (export again)"
            )
        if list(self.processor.tasks) != self.task_names:
            raise ValueError(
                f"processor tasks {list(self.processor.tasks)} differ from the graph's {self.task_names} in {folder}"
            )
        expected = list(config.get("inputs", []))
        if sorted(expected) != sorted(self.input_names):
            raise ValueError(
                f"the graph in {folder} takes inputs {self.input_names} but {SERVING_CONFIG_NAME} lists {expected}"
            )
        if "logits" not in self.output_names:
            raise ValueError(f"the graph in {folder} has no 'logits' output (outputs: {self.output_names})")

    # ------------------------------------------------------------------ properties
    @property
    def has_all_tasks_output(self) -> bool:
        """Whether the graph returns ``all_logits`` (every task from one encoder pass)."""
        return "all_logits" in self.output_names

    @property
    def input_depends_on_task(self) -> bool:
        """Whether the encoder input carries the task (a prefix naming it): then "all" costs one pass per task."""
        return bool(self.config.get("input_depends_on_task"))

    @property
    def all_tasks_in_one_pass(self) -> bool:
        """Whether ``predict(texts, task="all")`` runs the encoder once per batch (else once per task)."""
        return self.has_all_tasks_output

    def label_names(self, task: str) -> list[str]:
        """Label names of a task, in label-id order."""
        self._task_name(task)
        return list(self._label_names[task])

    def _task_name(self, task: Any) -> str:
        return task_name(task, self.task_names, self.default_task)

    def _task_list(self, task: Any, n: int) -> list[str]:
        return task_list(task, n, self.task_names, self.default_task)

    # ------------------------------------------------------------------ running
    def encode(
        self,
        texts: Sequence[str],
        task: str | Sequence[str] | None = None,
        text_pairs: Sequence[str | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """The processor's numpy inputs for one batch (padded to its longest text); `text_pairs`: the second text
        of each sentence pair, None for single-text rows."""
        pairs = None if text_pairs is None else list(text_pairs)
        enc = self.processor(list(texts), text_pair=pairs, task=task, return_tensors="np", padding=True)
        return dict(enc)

    def run(self, inputs: Mapping[str, Any], output_names: Sequence[str] | None = None) -> list[np.ndarray]:
        """Run the graph on model inputs (numpy or torch tensors); extra inputs are ignored."""
        feed = {}
        for name, meta in self._inputs.items():
            if name not in inputs:
                raise ValueError(f"the graph needs input {name!r}; got {sorted(inputs)}")
            value = inputs[name]
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            feed[name] = np.ascontiguousarray(value, dtype=_NP_TYPES.get(meta.type))
        return self.session.run(list(output_names) if output_names else None, feed)

    def logits(
        self, texts: str | Sequence[str], task: Any = None, text_pairs: Sequence[str | None] | None = None
    ) -> np.ndarray:
        """Padded ``[N, max_num_labels]`` logits of one batch, each text under its task (pairs: `encode`)."""
        texts = _text_list(texts)
        tasks = self._task_list(task, len(texts))
        return self.run(self.encode(texts, tasks, text_pairs), ["logits"])[0]

    def all_logits(self, texts: str | Sequence[str]) -> np.ndarray:
        """``[N, num_tasks, max_num_labels]`` logits of one batch under every task (one pass where possible)."""
        texts = _text_list(texts)
        if self.has_all_tasks_output:
            return self.run(self.encode(texts, self.default_task), ["all_logits"])[0]
        return np.stack([self.logits(texts, t) for t in self.task_names], axis=1)

    def predict(
        self,
        texts: str | Sequence[str],
        task: Any = None,
        batch_size: int = 32,
        text_pairs: Sequence[str | None] | None = None,
        threshold: Any = None,
        explain: bool = False,
    ) -> list[dict[str, Any]]:
        """Classify texts: `predict_texts` records ({task, label, label_name, scores}, regression tasks also
        ``value``) in input order, each task scored by its problem type (and its fitted temperature).

        `text_pairs`: the second text of each sentence pair (one entry per text, None for rows of single-text
        tasks). `threshold` overrides the multi-label thresholds for this call (a number, or ``{task: number or
        one per label}``). Explanations (`explain`) need the PyTorch model: a ValueError here.

        ``task`` is a task name, one name per text, None (the default task) or ``"all"``: then each record is
        ``{"tasks": {task: {label, label_name, scores}}}`` for every task, from one encoder pass per batch when the
        input does not depend on the task (else one pass per task, with a warning saying so). Texts are batched by
        length (longest first) for throughput; the records come back in input order.
        """
        if text_pairs is not None and not any(p is not None for p in text_pairs):
            text_pairs = None
        return predict_records(
            self, texts, task, batch_size, text_pairs, self.config.get("prefix"), threshold, explain
        )

    def __call__(
        self, texts: str | Sequence[str], task: Any = None, batch_size: int = 32
    ) -> list[dict[str, Any]]:
        """Same as `predict`."""
        return self.predict(texts, task=task, batch_size=batch_size)

    def __repr__(self) -> str:
        kind = "int8" if self.quantized else "fp32"
        return f"OnnxSurgeClassifier({str(self.folder)!r}, {kind}, tasks={self.task_names})"


__all__ = [
    "ALL_TASKS",
    "OnnxSurgeClassifier",
    "read_serving_config",
    "is_exported_folder",
    "TaskScoring",
    "split_by_task",
    "prediction_records",
    "task_probabilities",
    "task_types",
    "task_temperatures",
    "softmax",
    "length_order",
    "predict_records",
    "task_name",
    "task_list",
    "input_depends_on_task",
    "PROBE_TEXTS",
    "SERVING_CONFIG_NAME",
    "MODEL_FILE",
    "QUANTIZED_MODEL_FILE",
]
