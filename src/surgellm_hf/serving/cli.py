"""The serving parts of the `surgellm` command line: ``export`` and the streaming ``predict``.

`surgellm_hf.cli` wires them in: ``add_export_command(sub)`` adds the ``export`` subcommand, and
``add_predict_arguments(p); p.set_defaults(func=cmd_predict)`` makes ``predict`` take a run folder or an exported
folder, ``--task all``, streaming and int8 options. Errors are ValueError / FileNotFoundError / ImportError with one
line, which `surgellm_hf.cli.main` prints without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_INPUTS, DEFAULT_OPSET, SUPPORTED_OPSETS

SERVE_EXTRA_HINT = 'install the serving extras: pip install "surgellm_hf[serve]"'


def add_export_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``surgellm export RUN_DIR --output DIR [--quantize] [--output-gate] [--opset N] [--overwrite]``."""
    p = subparsers.add_parser(
        "export",
        help="export a trained run to a self-contained ONNX folder (needs: pip install 'surgellm_hf[onnx]')",
        description="Write model.onnx (dynamic batch and sequence axes, statistics baked in), the processor files "
        "and serving_config.json; checks ONNX Runtime against eager PyTorch before finishing.",
    )
    p.add_argument(
        "run_dir",
        help="run folder (full, frozen-encoder or LoRA run), or any folder holding a saved model (or a "
        "`save_adapter` adapter) and its processor",
    )
    p.add_argument("--output", required=True, help="folder to write the ONNX export to")
    p.add_argument(
        "--quantize", action="store_true", help="also write model_quantized.onnx (dynamic int8, ONNX Runtime)"
    )
    p.add_argument("--output-gate", action="store_true", help="also output the gate values [batch, hidden]")
    p.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, {SUPPORTED_OPSETS.start} to {SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})",
    )
    p.add_argument(
        "--no-optimize",
        action="store_true",
        help="write the plain dynamo graph, without ONNX Runtime's transformer fusions (attention, LayerNorm, GELU)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export in --output")
    p.set_defaults(func=cmd_export)
    return p


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``surgellm export``: export, check parity, print where it went."""
    from .export import export_run
    from .runtime import read_serving_config

    try:
        folder = export_run(
            args.run_dir,
            args.output,
            quantize=args.quantize,
            output_gate=args.output_gate,
            opset=args.opset,
            overwrite=args.overwrite,
            optimize=not args.no_optimize,
        )
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    config = read_serving_config(folder)
    parity = config.get("parity", {})
    every = (
        "one encoder pass"
        if not config["input_depends_on_task"]
        else "one pass per task (the prefix names it)"
    )
    print(
        f"Exported to {folder}: {config['model_file']}"
        + (f" and {config['quantized_model_file']} (int8)" if config.get("quantized") else "")
        + f"; ONNX Runtime vs PyTorch max |logit difference| {parity.get('max_abs_logit_diff', float('nan')):.2g}"
        + f"; --task all: {every}"
    )
    optimization = config.get("optimization") or {}
    if optimization.get("applied"):
        fused = ", ".join(f"{k} {v}" for k, v in optimization.get("fused_operators", {}).items())
        print(f"Optimized with ONNX Runtime's transformer fusions: {fused or 'none applied'}")
    elif optimization:
        print(f"Not optimized: {optimization.get('reason')}")
    return 0


def add_serve_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``surgellm serve MODEL [--host] [--port] [--workers] [--max-batch-size] [--api-key-env VAR] ...``."""
    p = subparsers.add_parser(
        "serve",
        help="serve a run folder (PyTorch) or an ONNX export over HTTP (needs: pip install 'surgellm_hf[serve]')",
        description="POST /predict, GET /health, /info, /metrics (Prometheus) and /docs, on LitServe (FastAPI + "
        "uvicorn): request batching, worker processes, graceful shutdown on SIGTERM.",
    )
    p.add_argument(
        "model",
        help="run folder (any kind `surgellm predict` takes) or a folder written by `surgellm export`",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind: 127.0.0.1 (default), 0.0.0.0 or ::")
    p.add_argument("--port", type=int, default=8000, help="port, 1024-65535 (default 8000)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own copy of the model"
    )
    p.add_argument(
        "--max-batch-size", type=int, default=16, help="requests a worker scores together (default 16)"
    )
    p.add_argument(
        "--batch-timeout",
        type=float,
        default=0.005,
        help="seconds a worker waits for more requests to fill a batch (default 0.005)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="texts per model forward pass (default 32)")
    p.add_argument(
        "--max-inputs",
        type=int,
        default=DEFAULT_MAX_INPUTS,
        help=f"texts per request (default {DEFAULT_MAX_INPUTS})",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body (default {DEFAULT_MAX_BODY_BYTES})",
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the API key: requests then need 'Authorization: Bearer <key>' "
        "(/health stays open)",
    )
    p.add_argument("--int8", action="store_true", help="exported folder: serve the int8 graph")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads per worker (default: cores / workers)"
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a request may wait in the queue (default 60)"
    )
    p.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    """Run ``surgellm serve``: options checked, then the server runs until SIGTERM / Ctrl-C."""
    import os

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(
                f"--api-key-env {args.api_key_env}: that environment variable is not set or empty"
            )
    if not 1024 <= args.port <= 65535:
        raise ValueError(f"--port must be from 1024 to 65535, got {args.port}")
    try:
        from .server import serve
    except ImportError as err:
        raise ImportError(f"{err.name or err} is not installed; {SERVE_EXTRA_HINT}") from None
    return serve(
        args.model,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        workers=args.workers,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        batch_size=args.batch_size,
        max_inputs=args.max_inputs,
        max_body_bytes=args.max_body_bytes,
        api_key=api_key,
        quantized=args.int8,
        threads=args.threads,
        timeout=args.timeout,
    )


def add_predict_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``surgellm predict MODEL``: a run folder or an exported ONNX folder."""
    p.add_argument("run_dir", metavar="MODEL", help="run folder, or a folder written by `surgellm export`")
    p.add_argument(
        "--input",
        default="-",
        help="JSONL with 'text' (optional 'task'; 'text_pair' for sentence-pair tasks), CSV/TSV with a text "
        "column, plain text lines, or - (stdin)",
    )
    p.add_argument(
        "--task",
        help="task for rows without one (default: the model's default task); 'all': every task for every row",
    )
    p.add_argument(
        "--output",
        default="-",
        help="JSONL output file (written beside it and renamed into place at the end: an error never leaves it "
        "half written), or - for stdout",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="rows held at once, sorted by length into batches (default 64 batches); bounds memory",
    )
    p.add_argument(
        "--format", choices=["jsonl", "csv", "tsv", "text"], help="input format (default: by suffix)"
    )
    p.add_argument("--text-column", default="text", help="field or column holding the text (default: text)")
    p.add_argument(
        "--task-column", default="task", help="field or column naming a row's task (default: task)"
    )
    p.add_argument(
        "--text-pair-column",
        default="text_pair",
        help="field or column holding the second text of a sentence pair (default: text_pair)",
    )
    p.add_argument(
        "--int8", action="store_true", help="exported folder: use the int8 graph (model_quantized.onnx)"
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the runtime's choice)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold of every multi-label task for this call, in (0, 1) (default: the model's, per "
        "label once calibrated)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="add an explanation to each record: feature values, lexicon matches, mean gate, per-feature "
        "contributions (run folders only)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``surgellm predict``: stream the input through a run folder's model or an exported folder."""
    from .streaming import check_output_path, check_positive, load_predictor, predict_file

    # every argument and the input file checked before the model loads and before the output is touched
    check_positive("--batch-size", args.batch_size)
    for name, value in (("--window", args.window), ("--threads", args.threads)):
        if value is not None:
            check_positive(name, value)
    if args.input != "-" and not Path(args.input).is_file():
        raise FileNotFoundError(f"input file not found: {args.input}")
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise ValueError(f"--threshold must be in (0, 1), got {args.threshold}")
    if args.output != "-":
        check_output_path(args.output, args.input)
    predictor = load_predictor(args.run_dir, quantized=args.int8, num_threads=args.threads)
    if args.explain and not callable(getattr(predictor, "explain", None)):
        raise ValueError(
            f"--explain needs the PyTorch model; {args.run_dir} is an ONNX export: pass the run folder it came from"
        )
    if args.task == "all" and not getattr(predictor, "all_tasks_in_one_pass", True):
        print(
            f"surgellm predict: note: this model's input names the task, so --task all runs one encoder pass per "
            f"task ({len(predictor.task_names)} passes)",
            file=sys.stderr,
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*one encoder pass per task")
        predict_file(
            predictor,
            args.input,
            args.output,
            task=args.task,
            batch_size=args.batch_size,
            window=args.window,
            fmt=args.format,
            text_field=args.text_column,
            task_field=args.task_column,
            progress=not args.no_progress,
            pair_field=args.text_pair_column,
            threshold=args.threshold,
            explain=args.explain,
        )
    return 0


__all__ = [
    "add_export_command",
    "cmd_export",
    "add_predict_arguments",
    "cmd_predict",
    "add_serve_command",
    "cmd_serve",
]
