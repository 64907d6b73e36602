"""Frozen-encoder fast path: the same frozen-encoder run with and without cached first-token states, in one process.

Both runs go through `train_run` (same Trainer, early stopping, run folder); the per-epoch wall time is taken by a
callback (epoch begin to the end of the epoch's evaluation). Prints and writes the end-to-end
ratio, the per-epoch ratio of epochs 2..N and the largest difference between the two runs' predicted probabilities.

    python benchmarks/frozen_cache.py [--data ../shared/data] [--train-rows 256] [--eval-rows 64] [--epochs 5]
        [--variant IWN] [--max-length 128] [--threads 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


def timed_run(cfg: Any) -> dict[str, Any]:
    """Train one run with an epoch-timing callback; wall time end to end and per epoch."""
    from transformers import TrainerCallback

    import surgellm_hf.training.run as run_module

    begins: list[float] = []
    ends: list[float] = []

    class EpochTimer(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            begins.append(time.perf_counter())

        def on_evaluate(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())  # the epoch's evaluation done

    base = run_module.SurgeTrainer

    class TimedTrainer(base):
        def __init__(self, *a, **k):
            k["callbacks"] = [*k.get("callbacks", []), EpochTimer()]
            super().__init__(*a, **k)

    run_module.SurgeTrainer = TimedTrainer
    try:
        start = time.perf_counter()
        run_dir = run_module.train_run(cfg)
        wall = time.perf_counter() - start
    finally:
        run_module.SurgeTrainer = base
    epochs = [b - a for a, b in zip(begins, ends, strict=False)]
    return {"run_dir": run_dir, "wall_s": wall, "epoch_s": epochs}


def main(argv: list[str] | None = None) -> int:
    """Run both, print and write the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    p.add_argument("--encoder", default="bundled:all-MiniLM-L6-v2")
    p.add_argument("--variant", default="IWN")
    p.add_argument("--train-rows", type=int, default=256, help="training rows per task (stratified)")
    p.add_argument("--eval-rows", type=int, default=64, help="validation rows per task")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    import numpy as np
    import torch
    from quality import machine_line

    from surgellm_hf.evaluation import load_run
    from surgellm_hf.training import RunConfig

    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cache in (("uncached", False), ("cached", True)):
            cfg = RunConfig(
                data={
                    "folder": str(args.data),
                    "max_rows": {"train": args.train_rows, "validation": args.eval_rows},
                },
                output_dir=str(Path(tmp) / name),
                encoder=args.encoder,
                variant=args.variant,
                epochs=args.epochs,
                learning_rate=args.learning_rate,
                prefix_style="text",
                freeze_encoder=True,
                cache_encoder_outputs=cache,
                patience=args.epochs,  # no early stop: both runs train every epoch
                max_length=args.max_length,
                disable_tqdm=True,
            )
            print(f"[frozen_cache] {name} run ...", flush=True)
            results[name] = timed_run(cfg)
            print(
                f"[frozen_cache] {name}: {results[name]['wall_s']:.1f} s end to end, epochs "
                + ", ".join(f"{e:.2f}" for e in results[name]["epoch_s"]),
                flush=True,
            )
        recs = {k: load_run(v["run_dir"]) for k, v in results.items()}
        diff = 0.0
        same_pred = True
        for task, by_split in recs["cached"].predictions.items():
            for split, pred in by_split.items():
                other = recs["uncached"].predictions[task][split]
                diff = max(diff, float(np.abs(np.asarray(pred["score"]) - np.asarray(other["score"])).max()))
                same_pred &= list(pred["y_pred"]) == list(other["y_pred"])
        f1 = {k: r.avg_macro_f1.get("validation") for k, r in recs.items()}
    u, c = results["uncached"], results["cached"]
    later = [a / b for a, b in zip(u["epoch_s"][1:], c["epoch_s"][1:], strict=True)]
    summary = {
        "benchmark": "frozen_cache",
        "command": "python benchmarks/frozen_cache.py " + " ".join(sys.argv[1:]),
        "machine": machine_line(args.threads),
        "budget": {
            "encoder": args.encoder,
            "variant": args.variant,
            "prefix": "text",
            "train_rows_per_task": args.train_rows,
            "validation_rows_per_task": args.eval_rows,
            "epochs": args.epochs,
            "max_length": args.max_length,
            "learning_rate": args.learning_rate,
            "batch_size": 32,
            "torch_threads": args.threads,
        },
        "uncached": {"wall_s": u["wall_s"], "epoch_s": u["epoch_s"]},
        "cached": {"wall_s": c["wall_s"], "epoch_s": c["epoch_s"]},
        "end_to_end_speedup": u["wall_s"] / c["wall_s"],
        "later_epoch_speedups": later,
        "min_later_epoch_speedup": min(later),
        "max_probability_difference": diff,
        "same_predicted_labels": same_pred,
        "validation_avg_macro_f1": f1,
        "targets": {
            "end_to_end >= 4x": u["wall_s"] / c["wall_s"] >= 4,
            "every later epoch >= 30x": min(later) >= 30,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frozen_cache.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"[frozen_cache] end to end {summary['end_to_end_speedup']:.1f}x faster with the cache "
        f"({u['wall_s']:.1f} s -> {c['wall_s']:.1f} s); epochs 2-{args.epochs}: "
        + ", ".join(f"{x:.0f}x" for x in later)
        + f"; max |p_cached - p_uncached| = {diff:.2e}; same labels: {same_pred}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
