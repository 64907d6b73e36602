"""Export a trained SURGELLM classifier to a self-contained ONNX folder (``surgellm export``).

The folder holds:

- ``model.onnx``: one graph exported with ``torch.onnx.export`` (the dynamo exporter; onnxscript optimises it).
  Inputs: ``input_ids``, ``attention_mask``, ``token_type_ids`` (only where the tokenizer makes them and the encoder
  takes them), ``lexical_features`` (raw ``[batch, n_features]`` float32; only with the gate) and ``task_ids``.
  Batch and sequence axes are dynamic. Outputs: ``logits`` ``[batch, max_num_labels]`` (padding columns at the
  float32 minimum, as the PyTorch model), ``gate`` ``[batch, hidden]`` with ``output_gate=True``, and, when the
  encoder input does not depend on the task, ``all_logits`` ``[batch, num_tasks, max_num_labels]`` (every task's
  logits from the same encoder pass, as ``forward_all_tasks``). The normalization statistics are constants of the
  graph (baked in).
- the processor files (tokenizer, ``processor_config.json``, ``lexicon.json``), so texts can be turned into inputs
  without the run folder;
- ``serving_config.json``: tasks in id order (a list), label names, feature width and names, prefix style, whether the
  encoder input depends on the task, inputs and outputs of the graph, opset, quantized or not, versions, and the
  parity measured against eager PyTorch at export time.
- ``model_quantized.onnx`` after ``quantize=True`` (see `surgellm_hf.serving.quantize`).

Why ``all_logits`` is a second output of the one graph and not a second graph: both outputs share the one encoder
pass and the one copy of the weights on disk; the extra work per call (the light fusion modules and the heads run
once per task) is well under 1% of the encoder's, and ONNX Runtime runs the same graph whichever outputs are asked.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .limits import DEFAULT_OPSET, SUPPORTED_OPSETS
from .runtime import (
    MODEL_FILE,
    PROBE_TEXTS,
    QUANTIZED_MODEL_FILE,
    SERVING_CONFIG_NAME,
    SERVING_FORMAT,
    SERVING_FORMAT_VERSION,
    input_depends_on_task,
    read_serving_config,
)

LONG_PROBE_TEXT = " ".join([PROBE_TEXTS[1], PROBE_TEXTS[2]] * 40)
"""A text several windows long: traced and checked when the processor splits long texts (`long_text`)."""
_EXTERNAL_DATA_BYTES = 1_500_000_000  # protobuf caps one file at 2 GiB: larger models keep weights beside it
ONNX_EXTRA_HINT = 'install the ONNX extras: pip install "surgellm_hf[onnx]"'


def require_onnx() -> None:
    """Raise a one-line ImportError naming the extras when onnx / onnxruntime are missing."""
    missing = [m for m in ("onnx", "onnxruntime") if not _importable(m)]
    if missing:
        raise ImportError(f"{' and '.join(missing)} not installed; {ONNX_EXTRA_HINT}")


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class _ExportWrapper(nn.Module):
    """The graph to export: named tensor inputs in, ``logits`` [, ``gate``] [, ``all_logits``] out."""

    def __init__(self, model: nn.Module, input_names: Sequence[str], output_gate: bool, all_tasks: bool):
        super().__init__()
        self.model = model
        self.input_names = list(input_names)
        self.output_gate = output_gate
        self.all_tasks = all_tasks

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        lexical_features: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        num_windows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        given = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "lexical_features": lexical_features,
            "task_ids": task_ids,
            "num_windows": num_windows,
        }
        inputs = {k: v for k, v in given.items() if k in self.input_names}
        # one encoder pass for both outputs (a graph holding two would run both: ONNX Runtime does not prune them)
        out = self.model.surge(**inputs, output_gate=self.output_gate, return_dict=True)
        result = [self.model._route_heads(out.pooled_output, inputs["task_ids"])]
        if self.output_gate:
            result.append(out.gate)
        if self.all_tasks:
            result.append(
                self.model.forward_all_tasks(
                    first_token_state=out.last_hidden_state[:, 0],
                    lexical_features=inputs.get("lexical_features"),
                    num_windows=inputs.get("num_windows"),
                )
            )
        return tuple(result)


def graph_input_names(model: nn.Module, processor: Any) -> list[str]:
    """The graph inputs: the tokenizer's (token_type_ids only where the encoder takes them), features, task ids."""
    tokenizer_inputs = list(processor.tokenizer.model_input_names)
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer_inputs and model.surge._encoder_takes_token_type_ids:
        names.append("token_type_ids")
    if model.config.use_gate or model.config.soft_prefix_length:
        names.append("lexical_features")
    names.append("task_ids")
    if getattr(processor, "windowed", False):
        names.append("num_windows")  # long texts: token inputs are [windows, sequence]
    return names


def check_opset(opset: Any) -> int:
    """`opset` if it is one of `SUPPORTED_OPSETS`, else a one-line ValueError (before anything is exported)."""
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise ValueError(
            f"opset {opset!r} is not supported: the exporter and ONNX Runtime here support opsets "
            f"{SUPPORTED_OPSETS.start} to {SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})"
        )
    return opset


def graph_opset(model: Any) -> int:
    """The default-domain (``ai.onnx``) opset an ONNX ModelProto declares (what the graph really is)."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ValueError("the ONNX graph declares no ai.onnx opset")
    return int(versions[0])


def _check_exportable(model: nn.Module, processor: Any) -> None:
    from ..modeling_surge import SurgeForSequenceClassification

    if not isinstance(model, SurgeForSequenceClassification):
        raise TypeError(f"export needs a SurgeForSequenceClassification, got {type(model).__name__}")
    if not model.feature_normalizer_fitted:
        raise ValueError(
            f"the model uses norm={model.config.norm!r} but its feature statistics were never fitted, so an exported "
            "graph would bake in meaningless ones; fit them (model.fit_feature_normalizer) or export a trained run"
        )
    processor.check_model(model)


def _prepare_output_dir(output_dir: Path, overwrite: bool) -> Path:
    """A fresh temporary folder beside `output_dir` (renamed into place at the end); refuses to clobber."""
    if output_dir.exists():
        if not output_dir.is_dir():
            raise NotADirectoryError(f"--output {output_dir} is a file")
        if any(output_dir.iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"output folder {output_dir} is not empty; pass overwrite=True (--overwrite)"
                )
            if not (output_dir / SERVING_CONFIG_NAME).is_file():
                raise FileExistsError(
                    f"output folder {output_dir} holds files that are not an ONNX export; refusing to overwrite it"
                )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.parent / f".{output_dir.name}.export-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def probe_pairs(processor: Any, texts: Sequence[str], tasks: Sequence[str]) -> list[str | None] | None:
    """Second texts for the probe rows of sentence-pair tasks (the probe texts in reverse order), None for the
    others; None when no row is of a pair task."""
    pair_tasks = set(getattr(processor, "pair_tasks", None) or ())
    others = list(reversed(texts))
    pairs = [others[i] if t in pair_tasks else None for i, t in enumerate(tasks)]
    return pairs if any(p is not None for p in pairs) else None


def _encode_probe(processor: Any, texts: Sequence[str], task: Any) -> Any:
    """The processor's torch inputs of probe texts under `task` (one name or one per text), pairs where needed."""
    tasks = [task] * len(texts) if isinstance(task, str) else list(task)
    pairs = probe_pairs(processor, texts, tasks)
    return processor(list(texts), text_pair=pairs, task=tasks, return_tensors="pt", padding=True)


def _sample_inputs(
    processor: Any, input_names: Sequence[str], texts: Sequence[str]
) -> dict[str, torch.Tensor]:
    tasks = [processor.tasks[i % len(processor.tasks)] for i in range(len(texts))]
    if getattr(processor, "windowed", False):  # one text split into windows, so windows != batch in the trace
        texts, tasks = [*texts, LONG_PROBE_TEXT], [*tasks, next(iter(processor.long_text))]
    enc = _encode_probe(processor, texts, tasks)
    return {name: enc[name] for name in input_names}


@contextlib.contextmanager
def _quiet_exporter_logs():
    """Silence the exporter's logger (it warns about every torchvision op it cannot register) while exporting."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("surgellm_hf", "torch", "transformers", "onnx", "onnxscript", "onnxruntime"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


def export_onnx(
    model: nn.Module,
    processor: Any,
    output_dir: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    output_gate: bool = False,
    quantize: bool = False,
    overwrite: bool = False,
    atol: float = 1e-4,
    sample_texts: Sequence[str] | None = None,
    optimize: bool = True,
) -> Path:
    """Export `model` (+ `processor`) to an ONNX folder, check it against eager PyTorch, and return the folder.

    With `optimize` (the default) the graph is exported with eager attention by the TorchScript exporter, whose
    graph ONNX Runtime's transformer optimizer fuses (attention, embedding and skip LayerNorm, GELU; see
    `optimize_graph`); where that export fails, or the fused graph fails the parity check, the plain dynamo graph
    is written instead. ``serving_config.json`` records which under ``optimization``.

    Raises ValueError for unfitted statistics, a processor that does not match the model, or ONNX Runtime logits
    further than `atol` from the eager ones on `sample_texts` (default: built-in probe texts, mixed tasks).
    """
    require_onnx()
    check_opset(opset)
    _check_exportable(model, processor)
    output_dir = Path(output_dir)
    all_tasks = not input_depends_on_task(processor)
    input_names = graph_input_names(model, processor)
    output_names = ["logits", *(["gate"] if output_gate else []), *(["all_logits"] if all_tasks else [])]

    export_model = model
    if any(p.dtype != torch.float32 for p in model.parameters()):
        import copy

        export_model = copy.deepcopy(model).float()
    was_training = export_model.training
    export_model.eval()
    wrapper = _ExportWrapper(export_model, input_names, output_gate, all_tasks).eval()
    probe = list(sample_texts or PROBE_TEXTS)
    sample = _sample_inputs(processor, input_names, probe[: max(2, min(len(probe), 4))])
    if getattr(processor, "windowed", False) and sample_texts is None:
        probe.append(LONG_PROBE_TEXT)  # the parity check covers a text of several windows
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence")
    rows = torch.export.Dim("windows") if "num_windows" in input_names else batch
    dynamic: dict[str, dict[int, Any]] = {n: {0: rows, 1: sequence} for n in input_names}
    dynamic["lexical_features"] = {0: batch}
    dynamic["task_ids"] = {0: batch}
    dynamic["num_windows"] = {0: batch}
    dynamic_shapes = {n: dynamic[n] for n in input_names}
    n_bytes = sum(p.numel() * p.element_size() for p in export_model.parameters())

    tmp = _prepare_output_dir(output_dir, overwrite)
    graph = _GraphExport(wrapper, sample, input_names, output_names, dynamic_shapes, opset, n_bytes, tmp)
    try:
        optimization = graph.write(optimize)
        processor.save_pretrained(tmp)
        # the exporter drops inputs the graph never reads (e.g. token_type_ids of an encoder without type
        # embeddings): record the graph's own inputs
        import onnx

        graph_model = onnx.load(str(tmp / MODEL_FILE), load_external_data=False)
        input_names = [i.name for i in graph_model.graph.input]
        written = graph_opset(graph_model)
        if written != opset:
            raise RuntimeError(
                f"torch.onnx.export wrote a graph of opset {written} where opset {opset} was asked for; export "
                f"with --opset {written}"
            )
        config = _serving_config(model, processor, input_names, output_names, written, all_tasks)
        _write_config(tmp, config)
        parity = check_parity(export_model, processor, tmp, probe, output_gate=output_gate)
        if optimization["applied"] and (
            parity["max_abs_logit_diff"] > atol or not parity["same_predictions"]
        ):
            # the fused graph does not reproduce the model: export the plain graph instead, and say why
            optimization = graph.write(False)
            optimization["reason"] = (
                f"the optimized graph failed the parity check (max |logit difference| "
                f"{parity['max_abs_logit_diff']:.3g}); exported the plain graph"
            )
            graph_model = onnx.load(str(tmp / MODEL_FILE), load_external_data=False)
            input_names = [i.name for i in graph_model.graph.input]
            config = _serving_config(model, processor, input_names, output_names, written, all_tasks)
            _write_config(tmp, config)
            parity = check_parity(export_model, processor, tmp, probe, output_gate=output_gate)
        if parity["max_abs_logit_diff"] > atol or not parity["same_predictions"]:
            raise ValueError(
                f"the exported graph disagrees with eager PyTorch: max |logit difference| "
                f"{parity['max_abs_logit_diff']:.3g} (tolerance {atol:g}), same predictions: "
                f"{parity['same_predictions']}"
            )
        config["parity"] = parity
        config["optimization"] = optimization
        _write_config(tmp, config)
        if quantize:
            from .quantize import quantize_export

            quantize_export(tmp)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        tmp.rename(output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        export_model.train(was_training)
    return output_dir


class _GraphExport:
    """Writes ``model.onnx`` into a folder: the fused graph (`optimize_graph`) or the plain dynamo graph."""

    def __init__(self, wrapper, sample, input_names, output_names, dynamic_shapes, opset, n_bytes, folder):
        self.wrapper, self.sample = wrapper, sample
        self.input_names, self.output_names = list(input_names), list(output_names)
        self.dynamic_shapes, self.opset, self.n_bytes, self.folder = dynamic_shapes, opset, n_bytes, folder

    def write(self, optimize: bool) -> dict[str, Any]:
        """Write the graph; returns the ``optimization`` record (applied or not, why, fused operators)."""
        path = self.folder / MODEL_FILE
        if optimize:
            if self.n_bytes > _EXTERNAL_DATA_BYTES:
                reason = "the model is too large for the TorchScript exporter (its graph must fit one file)"
            else:
                try:
                    fused = optimize_graph(
                        self.wrapper, self.sample, self.input_names, self.output_names, self.opset, path
                    )
                    return {"applied": True, "exporter": "torchscript", "fused_operators": fused}
                except Exception as err:  # noqa: BLE001 - any failure: the plain graph below, with the reason
                    reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
            self._dynamo(path)
            return {"applied": False, "exporter": "dynamo", "reason": reason}
        self._dynamo(path)
        return {"applied": False, "exporter": "dynamo", "reason": "not asked for (--no-optimize)"}

    def _dynamo(self, path: Path) -> None:
        # The exporter prints its progress on stdout and warns about skipped torchvision ops: keep both off a CLI's
        # stdout (which may carry predictions) and show them only on failure.
        model = self.wrapper.model
        try:
            with _quiet_export():
                torch.onnx.export(
                    self.wrapper,
                    (),
                    str(path),
                    kwargs=self.sample,
                    input_names=self.input_names,
                    output_names=self.output_names,
                    dynamic_shapes=self.dynamic_shapes,
                    opset_version=self.opset,
                    dynamo=True,
                    external_data=self.n_bytes > _EXTERNAL_DATA_BYTES,
                    verbose=False,
                )
        except Exception as err:
            raise RuntimeError(
                f"torch.onnx.export failed for encoder {model.config.encoder_config.model_type!r}: "
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            ) from err


@contextlib.contextmanager
def _quiet_export():
    with (
        contextlib.redirect_stdout(io.StringIO()),
        _quiet_exporter_logs(),
        warnings.catch_warnings(),
        torch.no_grad(),
    ):
        warnings.simplefilter("ignore")
        yield


class _Positional(nn.Module):
    """`wrapper` called with its inputs in `names` order, as positional arguments."""

    def __init__(self, wrapper: nn.Module, names: Sequence[str]):
        super().__init__()
        self.wrapper, self.names = wrapper, list(names)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.wrapper(**dict(zip(self.names, tensors)))


def optimize_graph(
    wrapper: nn.Module,
    sample: dict[str, torch.Tensor],
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int,
    path: Path,
) -> dict[str, int]:
    """Export `wrapper` with eager attention through the TorchScript exporter (whose attention subgraph ONNX
    Runtime's fusions recognise; the dynamo exporter's decomposed SDPA they do not) and fuse it with
    `onnxruntime.transformers.optimizer.optimize_model` (BERT-style fusions: Attention, EmbedLayerNormalization,
    SkipLayerNormalization, Gelu / BiasGelu). Writes `path`; returns the fused operator counts (non-zero)."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = wrapper.model
    encoder_config = model.config.encoder_config
    previous = model.config._attn_implementation
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    axes.update({n: {0: "batch"} for n in ("lexical_features", "task_ids", *output_names)})
    raw = path.with_name(path.stem + ".raw.onnx")
    model.set_attn_implementation("eager")
    try:
        with _quiet_export():
            torch.onnx.export(
                _Positional(wrapper, input_names).eval(),  # the TorchScript exporter traces positional inputs
                tuple(sample[n] for n in input_names),
                str(raw),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes={n: axes[n] for n in [*input_names, *output_names]},
                opset_version=opset,
                dynamo=False,
            )
        fusion_log = logging.getLogger("onnxruntime.transformers")
        level = fusion_log.level
        fusion_log.setLevel(logging.ERROR)
        try:
            optimized = optimize_model(
                str(raw),
                model_type="bert",
                num_heads=int(getattr(encoder_config, "num_attention_heads", 0) or 0),
                hidden_size=int(getattr(encoder_config, "hidden_size", 0) or 0),
            )
        finally:
            fusion_log.setLevel(level)
        optimized.save_model_to_file(str(path))
        return {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    finally:
        model.set_attn_implementation(previous)
        raw.unlink(missing_ok=True)


def _serving_config(
    model: nn.Module,
    processor: Any,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    all_tasks: bool,
) -> dict[str, Any]:
    config = model.config
    return {
        "format": SERVING_FORMAT,
        "format_version": SERVING_FORMAT_VERSION,
        "model_file": MODEL_FILE,
        "quantized_model_file": None,
        "quantized": False,
        "opset": opset,
        "tasks": [
            {
                "name": name,
                "num_labels": config.tasks[name],
                "label_names": config.label_names(name),
                "problem_type": config.task_problem_types[name],
                "threshold": config.task_thresholds.get(name),  # multi-label tasks only
                "temperature": config.task_temperatures.get(name),  # calibrated tasks only
                "text_pair": name in (getattr(processor, "pair_tasks", None) or ()),
            }
            for name in config.task_names
        ],
        "default_task": config.default_task,
        "max_num_labels": config.max_num_labels,
        "num_features": config.num_features,
        "feature_names": list(processor.lexicon.feature_names),
        "uses_gate": bool(config.use_gate),
        "norm": config.norm,
        "prefix": processor.prefix,
        "soft_prefix_length": config.soft_prefix_length,
        "long_text": getattr(processor, "long_text", None) or None,
        "max_length": processor.max_length,
        "input_depends_on_task": not all_tasks,
        "inputs": input_names,
        "outputs": output_names,
        "encoder_model_type": config.encoder_config.model_type,
        "versions": _versions(),
    }


def _write_config(folder: Path, config: dict[str, Any]) -> None:
    (folder / SERVING_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def check_parity(
    model: nn.Module,
    processor: Any,
    folder: str | os.PathLike,
    texts: Sequence[str],
    *,
    output_gate: bool = False,
    quantized: bool = False,
) -> dict[str, Any]:
    """Eager PyTorch vs ONNX Runtime on `texts` under every task: max |difference| of the real logits (and of
    ``all_logits`` / ``gate`` where the graph has them) and whether every predicted label agrees (by task type)."""
    from .runtime import OnnxSurgeClassifier

    runner = OnnxSurgeClassifier.from_pretrained(folder, quantized=quantized)
    texts = list(texts)
    config = model.config
    logit_diff = 0.0
    all_diff = gate_diff = None
    same = True
    with torch.no_grad():
        for name in config.task_names:
            n = config.tasks[name]
            enc = _encode_probe(processor, texts, name)
            inputs = {k: enc[k] for k in runner.input_names}
            eager = model(**inputs, output_gate=output_gate, return_dict=True)
            got = runner.run(dict(enc), ["logits", *(["gate"] if output_gate else [])])
            ref = eager.logits.float().numpy()
            logit_diff = max(logit_diff, float(np.abs(got[0][:, :n] - ref[:, :n]).max()))
            same = same and _same_labels(runner.scoring, got[0], ref, name)
            if output_gate:
                d = float(np.abs(got[1] - eager.gate.float().numpy()).max())
                gate_diff = d if gate_diff is None else max(gate_diff, d)
        if runner.has_all_tasks_output:
            enc = _encode_probe(processor, texts, config.default_task)
            inputs = {k: enc[k] for k in runner.input_names if k != "task_ids"}
            ref = model.forward_all_tasks(**inputs).float().numpy()
            got = runner.run(dict(enc), ["all_logits"])[0]
            all_diff = 0.0
            for t, name in enumerate(config.task_names):
                n = config.tasks[name]
                all_diff = max(all_diff, float(np.abs(got[:, t, :n] - ref[:, t, :n]).max()))
                same = same and _same_labels(runner.scoring, got[:, t], ref[:, t], name)
    result: dict[str, Any] = {
        "texts": len(texts),
        "max_abs_logit_diff": logit_diff,
        "same_predictions": same,
    }
    if all_diff is not None:
        result["max_abs_all_logits_diff"] = all_diff
        result["max_abs_logit_diff"] = max(logit_diff, all_diff)
    if gate_diff is not None:
        result["max_abs_gate_diff"] = gate_diff
    return result


def _same_labels(scoring: Any, got: np.ndarray, ref: np.ndarray, task: str) -> bool:
    """Whether two logit arrays give the same predicted labels under `task` (a regression task has none)."""
    tasks = [task] * len(got)
    return [r["label"] for r in scoring.records(got, tasks)] == [
        r["label"] for r in scoring.records(ref, tasks)
    ]


def export_run(run_dir: str | os.PathLike, output_dir: str | os.PathLike, **kwargs: Any) -> Path:
    """`export_onnx` of the model and processor `surgellm_hf.inference.load_run_model` reads from `run_dir` (a run
    folder, a LoRA run, merged, or a `save_adapter` folder; what ``surgellm export`` calls)."""
    from ..inference import load_run_model

    require_onnx()
    check_opset(kwargs.get("opset", DEFAULT_OPSET))  # before the model loads
    model, processor = load_run_model(run_dir)
    return export_onnx(model, processor, output_dir, **kwargs)


__all__ = [
    "export_onnx",
    "export_run",
    "check_parity",
    "read_serving_config",
    "check_opset",
    "graph_opset",
    "SUPPORTED_OPSETS",
    "input_depends_on_task",
    "graph_input_names",
    "SERVING_CONFIG_NAME",
    "MODEL_FILE",
    "QUANTIZED_MODEL_FILE",
]
