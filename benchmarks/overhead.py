"""Cost benchmark (issue 6.2): what each SURGELLM module costs against a plain fine-tune, at equal inputs.

One process, interleaved rounds (every model runs the same batches of the same texts in each round, the order
rotating between rounds), medians over rounds and per-round ratios to the plain fine-tune, for:

- plain             AutoModelForSequenceClassification (num_labels=2) on the encoder's tokenizer;
- surge-baseline    SurgeForSequenceClassification, no gate, no normalization, no prefix;
- surge-iwn-text    gate + task embedding + IWN, the paper's text prefix `[TASK:..|F1:..|..]`;
- surge-iwn-tokens  gate + task embedding + IWN, the compact prefix (n_features + 1 added tokens);
- surge-iwn-soft    gate + task embedding + IWN, the soft prefix (--soft-prefix-length virtual tokens, 2 by default);
- surge-iwn-soft-long4 / surge-iwn-text-long4
                    the soft / text prefix with long_text (up to 4 windows of max_length per text, overlap
                    --long-text-stride): long texts cost more windows, the price of reading them whole;
- lora              PEFT LoRA (r=8, alpha 16, on query/value) on the plain model.

Measured: train examples/s (forward + backward + clipping + AdamW step, batch 32, task-homogeneous batches),
inference examples/s (no grad), both padded to max_length (the paper) and with dynamic padding (the prefix then
lengthens short texts, so sequence lengths are reported too); peak RSS of each model in a fresh child process
(CPU: resident-set high-water mark per phase, reset through /proc/self/clear_refs; CUDA: max_memory_allocated);
the processor's cost against the fast tokenizer (featurize, each prefix style); prefix length per style.

Targets: surge-iwn-tokens trains and infers at >= 0.9x the plain model's examples/s; surge-iwn-soft at >= 0.95x
with dynamic padding, on the mix and on its shortest-text task (run with --tasks D1 for D1 alone); the compact prefix
costs n_features + 1 tokens; features run at >= 2x the tokenizer.

    python benchmarks/overhead.py [--data ../shared/data] [--tasks D1 ...] [--rounds 5] [--threads 2]
        [--configs ...] [--out benchmarks/results] [--tag overhead]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import DEFAULT_DATA, machine_line  # noqa: E402

CONFIGS = (
    "plain",
    "surge-baseline",
    "surge-iwn-text",
    "surge-iwn-tokens",
    "surge-iwn-soft",
    "surge-iwn-soft-long4",
    "surge-iwn-text-long4",
    "lora",
)
PADDINGS = ("max_length", "longest")
REFERENCE = "plain"
TARGET_CONFIG = "surge-iwn-tokens"
SOFT_CONFIG = "surge-iwn-soft"
SOFT_TARGET = 0.95
LONG_CHUNKS = 4


# ---------------------------------------------------------------------------------------------------- inputs


def task_folders(data: Path, only: list[str] | None = None) -> list[Path]:
    """The task folders (with a train.jsonl) under `data`, or only those named."""
    folders = sorted(p for p in data.iterdir() if (p / "train.jsonl").is_file())
    if only:
        missing = sorted(set(only) - {p.name for p in folders})
        if missing:
            raise SystemExit(f"--tasks {missing}: no <task>/train.jsonl under {data}")
        folders = [p for p in folders if p.name in only]
    if not folders:
        raise SystemExit(f"no <task>/train.jsonl under {data}")
    return folders


def load_texts(
    data: Path, per_task: int, seed: int, only: list[str] | None = None
) -> tuple[list[str], list[str], list[int]]:
    """`per_task` seeded random training rows of every task folder (or of `only`): texts, task names, labels."""
    texts, tasks, labels = [], [], []
    rng = np.random.default_rng(seed)
    folders = task_folders(data, only)
    for folder in folders:
        with open(folder / "train.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        for i in sorted(rng.choice(len(rows), size=min(per_task, len(rows)), replace=False)):
            texts.append(rows[i]["text"])
            tasks.append(folder.name)
            labels.append(int(rows[i]["label"]))
    return texts, tasks, labels


def all_train_texts(data: Path, only: list[str] | None = None) -> tuple[list[str], list[str]]:
    """Every training text of every task folder (or of `only`), with its task name."""
    texts, tasks = [], []
    for folder in task_folders(data, only):
        with open(folder / "train.jsonl", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    texts.append(json.loads(line)["text"])
                    tasks.append(folder.name)
    return texts, tasks


def task_batches(tasks: list[str], batch_size: int) -> list[list[int]]:
    """Task-homogeneous batches of indices, tasks interleaved (as in training), each batch full where possible."""
    by_task: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        by_task.setdefault(t, []).append(i)
    chunks = {t: [ix[j : j + batch_size] for j in range(0, len(ix), batch_size)] for t, ix in by_task.items()}
    out = []
    for j in range(max(len(c) for c in chunks.values())):
        out += [c[j] for c in chunks.values() if j < len(c)]
    return out


# ---------------------------------------------------------------------------------------------------- models


class Setup:
    """One benchmarked configuration: its model and a function turning (texts, task) into model inputs."""

    def __init__(
        self,
        name: str,
        encoder: str,
        task_names: list[str],
        max_length: int,
        fit_rows,
        soft_prefix_length: int = 2,
        long_text_stride: int = 0,
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from surgellm_hf.lexicon import Lexicon
        from surgellm_hf.modeling_surge import SurgeForSequenceClassification
        from surgellm_hf.processing_surge import SurgeProcessor

        if name not in CONFIGS:
            raise ValueError(f"unknown config {name!r}; choose from {CONFIGS}")
        self.name, self.max_length, self.processor = name, max_length, None
        if name in ("plain", "lora"):
            self.tokenizer = AutoTokenizer.from_pretrained(encoder)
            model = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=2)
            if name == "lora":
                from peft import LoraConfig, get_peft_model

                lora = LoraConfig(
                    task_type="SEQ_CLS",
                    r=8,
                    lora_alpha=16,
                    lora_dropout=0.1,
                    target_modules=["query", "value"],
                )
                model = get_peft_model(model, lora)
            self.model = model
            return
        gate = name.startswith("surge-iwn")
        prefix = None if name == "surge-baseline" else name.split("-")[2]
        long_text = (
            {"max_chunks": LONG_CHUNKS, "stride": long_text_stride} if name.endswith("-long4") else None
        )
        lexicon = Lexicon.curated()
        self.processor = SurgeProcessor.from_encoder_pretrained(
            encoder,
            lexicon=lexicon,
            tasks=task_names,
            prefix=prefix,
            max_length=max_length,
            soft_prefix_length=soft_prefix_length,
            long_text=long_text,
        )
        self.tokenizer = self.processor.tokenizer
        self.model = SurgeForSequenceClassification.from_encoder_pretrained(
            encoder,
            tasks=dict.fromkeys(task_names, 2),
            use_gate=gate,
            use_task_embedding=gate,
            norm="iwn" if gate else "none",
            num_features=lexicon.num_features,
            feature_names=lexicon.feature_names,
            soft_prefix_length=soft_prefix_length if prefix == "soft" else 0,
        )
        self.processor.prepare_model(self.model)
        if gate:
            texts, tasks, labels = fit_rows
            self.model.fit_feature_normalizer(lexicon.featurize(texts), labels, tasks)

    def encode(self, texts: list[str], task: str, padding: str) -> dict[str, torch.Tensor]:
        """Model inputs (no labels) for one task-homogeneous batch."""
        if self.processor is None:
            return dict(
                self.tokenizer(
                    texts, truncation=True, max_length=self.max_length, padding=padding, return_tensors="pt"
                )
            )
        return dict(self.processor(texts, task=task, padding=padding, return_tensors="pt"))

    def parameters(self) -> dict[str, int]:
        """Total and trainable parameter counts."""
        params = list(self.model.parameters())
        return {
            "total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
        }


def make_setup(name: str, encoder: str, task_names: list[str], args: argparse.Namespace, fit_rows) -> Setup:
    """The Setup of one config with the command line's max length, soft prefix length and window overlap."""
    return Setup(
        name, encoder, task_names, args.max_length, fit_rows, args.soft_prefix_length, args.long_text_stride
    )


def encode_batches(setup: Setup, texts, tasks, labels, batches, padding: str, device: str) -> list[dict]:
    """Pre-encoded batches (inputs + labels) so the timed loops measure the model only."""
    out = []
    for ix in batches:
        enc = setup.encode([texts[i] for i in ix], tasks[ix[0]], padding)
        enc["labels"] = torch.tensor([labels[i] for i in ix], dtype=torch.long)
        out.append({k: v.to(device) for k, v in enc.items()})
    return out


def sequence_stats(batches: list[dict], batch_tasks: list[str], extra_tokens: int = 0) -> dict[str, Any]:
    """Mean tokens per example the encoder reads (overall and per task; all windows of a long text, and the
    `extra_tokens` virtual tokens a soft prefix adds to each), mean windows per example and mean padded width."""

    def per_example(b: dict) -> torch.Tensor:
        tokens = b["attention_mask"].sum(dim=1).float() + extra_tokens
        if "num_windows" not in b:
            return tokens
        owner = torch.repeat_interleave(torch.arange(len(b["num_windows"])), b["num_windows"])
        return torch.zeros(len(b["num_windows"])).index_add_(0, owner, tokens)

    lengths = [per_example(b) for b in batches]
    windows = [
        b["num_windows"].float() if "num_windows" in b else torch.ones(len(b["labels"])) for b in batches
    ]
    per_task = {
        t: float(torch.cat([x for x, bt in zip(lengths, batch_tasks) if bt == t]).mean())
        for t in dict.fromkeys(batch_tasks)
    }
    return {
        "mean_tokens": float(torch.cat(lengths).mean()),
        "per_task_tokens": per_task,
        "mean_windows": float(torch.cat(windows).mean()),
        "mean_padded_width": float(np.mean([b["input_ids"].shape[1] + extra_tokens for b in batches])),
        "token_slots": int(
            sum((b["input_ids"].shape[1] + extra_tokens) * b["input_ids"].shape[0] for b in batches)
        ),
    }


class Runner:
    """A model with its own AdamW (the paper's settings) and timed train / inference steps."""

    def __init__(self, setup: Setup, device: str):
        self.setup = setup
        self.model = setup.model.to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=2e-5, weight_decay=0.01, eps=1e-8)
        self.device = device

    def train_step(self, batch: dict) -> None:
        self.model.train()
        loss = self.model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    @torch.inference_mode()
    def infer_step(self, batch: dict) -> None:
        self.model.eval()
        self.model(**{k: v for k, v in batch.items() if k != "labels"}).logits.sum().item()

    def timed(self, mode: str, batches: list[dict]) -> list[float]:
        """Seconds each of these batches took."""
        step = self.train_step if mode == "train" else self.infer_step
        seconds = []
        for b in batches:
            _sync(self.device)
            start = time.perf_counter()
            step(b)
            _sync(self.device)
            seconds.append(time.perf_counter() - start)
        return seconds


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(
    runners: dict[str, Runner],
    batches: dict[str, list[dict]],
    batch_tasks: list[str],
    mode: str,
    rounds: int,
    per_round: int,
) -> dict[str, dict[str, Any]]:
    """Interleaved at the batch level: each round takes `per_round` consecutive batches (4 = one per task) and
    every model runs each batch right after the others (order rotating), so a paired ratio compares steps taken
    seconds apart, which keeps it valid while other jobs load the cores.

    Per model: examples/s (median over rounds and of totals); per task the median seconds per batch and the
    median paired ratio; `ratio_mix` = sum over tasks of (batches x median plain seconds) / the same for the
    model, i.e. the throughput ratio on this task mix from per-task medians (robust to bursts of load), and
    `ratio_total` = total plain time / total model time (exact when the machine is quiet)."""
    names = list(runners)
    n_batches = len(batch_tasks)
    for name in names:  # warm-up, untimed
        runners[name].timed(mode, batches[name][:1])
    seconds: dict[str, list[float]] = {n: [] for n in names}
    timed_tasks: list[str] = []
    n_examples: list[int] = []
    rates: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        start = len(timed_tasks)
        for j in range(per_round):
            i = (r * per_round + j) % n_batches
            timed_tasks.append(batch_tasks[i])
            n_examples.append(len(batches[names[0]][i]["labels"]))
            shift = (r * per_round + j) % len(names)
            for name in names[shift:] + names[:shift]:
                seconds[name] += runners[name].timed(mode, [batches[name][i]])
        for name in names:
            rates[name].append(sum(n_examples[start:]) / sum(seconds[name][start:]))
        print(
            f"  {mode} round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {rates[n][-1]:.1f}" for n in names)
            + " ex/s",
            flush=True,
        )
    tasks = list(dict.fromkeys(timed_tasks))
    count = {t: timed_tasks.count(t) for t in tasks}
    examples = sum(n_examples)

    def task_median(name: str, t: str) -> float:
        return statistics.median(sec for sec, bt in zip(seconds[name], timed_tasks) if bt == t)

    out = {}
    for name in names:
        entry: dict[str, Any] = {
            "median_ex_per_s": statistics.median(rates[name]),
            "total_ex_per_s": examples / sum(seconds[name]),
            "rounds": rates[name],
            "per_task": {t: {"median_s_per_batch": task_median(name, t)} for t in tasks},
        }
        if REFERENCE in seconds:
            paired = [a / b for a, b in zip(seconds[REFERENCE], seconds[name])]
            q1, _, q3 = statistics.quantiles(paired, n=4) if len(paired) > 1 else (paired[0],) * 3
            mix_ref = sum(count[t] * task_median(REFERENCE, t) for t in tasks)
            mix = sum(count[t] * task_median(name, t) for t in tasks)
            entry.update(
                ratio_mix=mix_ref / mix,
                ratio_total=sum(seconds[REFERENCE]) / sum(seconds[name]),
                paired_ratio_median=statistics.median(paired),
                paired_ratio_q1=q1,
                paired_ratio_q3=q3,
            )
            for t, cell in entry["per_task"].items():
                cell["paired_ratio_median"] = statistics.median(
                    p for p, bt in zip(paired, timed_tasks) if bt == t
                )
        out[name] = entry
    return out


# ---------------------------------------------------------------------------------------------------- processor


def processor_costs(args: argparse.Namespace, encoder: str, repeats: int) -> dict[str, Any]:
    """Texts/s of the fast tokenizer, Lexicon.featurize and the processor in each prefix style, interleaved."""
    from transformers import AutoTokenizer

    from surgellm_hf.lexicon import Lexicon
    from surgellm_hf.processing_surge import SurgeProcessor

    texts, tasks = all_train_texts(args.data, args.tasks)
    names = sorted(set(tasks))
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    lexicon = Lexicon.curated()
    procs = {
        p or "none": SurgeProcessor.from_encoder_pretrained(
            encoder,
            lexicon=lexicon,
            tasks=names,
            prefix=p,
            max_length=args.max_length,
            soft_prefix_length=args.soft_prefix_length,
        )
        for p in (None, "text", "tokens", "soft")
    }
    jobs = {
        "tokenizer": lambda: tokenizer(texts, truncation=True, max_length=args.max_length),
        "featurize": lambda: lexicon.featurize(texts),
        **{f"processor-{k}": (lambda p=p: p(texts, task=tasks)) for k, p in procs.items()},
    }
    for job in jobs.values():  # warm-up (thread pools, caches)
        job()
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    out: dict[str, Any] = {"texts": len(texts), "characters": sum(map(len, texts))}
    tok = statistics.median(times["tokenizer"])
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"texts_per_s": len(texts) / med, "median_s": med, "vs_tokenizer": tok / med}
    prefix_len = {}
    for style in ("text", "tokens", "soft"):
        lengths = np.asarray(procs[style].prefix_length(texts, task=tasks))
        prefix_len[style] = {
            "mean": float(lengths.mean()),
            "min": int(lengths.min()),
            "max": int(lengths.max()),
            "n_features_plus_1": lexicon.num_features + 1,
        }
    out["prefix_length_tokens"] = prefix_len
    out["tokenizers_parallelism"] = os.environ.get("TOKENIZERS_PARALLELISM", "(unset: Rust thread pool)")
    return out


# ---------------------------------------------------------------------------------------------------- memory


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def tensor_peak_mib(fn) -> float:
    """Peak of the tensor memory allocated while `fn` runs, above the level before it, from the torch profiler's
    memory events (each op's own allocations and the frees, in time order)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage), key=lambda e: e.time_range.start)
    level = peak = 0
    for e in events:
        level += e.self_cpu_memory_usage
        peak = max(peak, level)
    return peak / 2**20


def _tensors_mib(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def memory_probe(args: argparse.Namespace) -> dict[str, Any]:
    """In this (fresh) process: RSS after imports+data, after building one model, peak in inference, peak in
    training; then the tensor accounting: weights, optimizer state and the largest per-step tensor peak."""
    encoder = _encoder_path(args.encoder)
    texts, tasks, labels = load_texts(args.data, args.per_task, args.seed, args.tasks)
    names = sorted(set(tasks))
    batches_ix = task_batches(tasks, args.batch_size)[: args.probe_batches]
    mib = 1 / 1024
    result: dict[str, Any] = {"config": args.probe, "padding": args.padding}
    result["rss_base_mib"] = _rss_kib("VmRSS") * mib
    setup = make_setup(args.probe, encoder, names, args, (texts, tasks, labels))
    runner = Runner(setup, args.device)
    batches = encode_batches(setup, texts, tasks, labels, batches_ix, args.padding, args.device)
    result["rss_model_mib"] = _rss_kib("VmRSS") * mib
    cuda = args.device.startswith("cuda")
    for mode in ("inference", "train"):
        resettable = _reset_peak()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for b in batches:
            runner.infer_step(b) if mode == "inference" else runner.train_step(b)
        result[f"peak_rss_{mode}_mib"] = _rss_kib("VmHWM") * mib
        result["peak_reset_per_phase"] = resettable
        if cuda:
            result[f"cuda_peak_{mode}_mib"] = torch.cuda.max_memory_allocated() / 2**20
    model = runner.model
    result["weights_mib"] = _tensors_mib([*model.parameters(), *model.buffers()])
    result["optimizer_state_mib"] = _tensors_mib(
        v for state in runner.opt.state.values() for v in state.values() if torch.is_tensor(v)
    )
    if not cuda:  # steady state: the optimizer state exists already, so a step allocates activations + grads
        result["step_peak_inference_mib"] = max(
            tensor_peak_mib(lambda b=b: runner.infer_step(b)) for b in batches
        )
        result["step_peak_train_mib"] = max(
            tensor_peak_mib(lambda b=b: runner.train_step(b)) for b in batches
        )
    return result


def memory_table(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One child process per (config, padding), run one after another."""
    rows = []
    for padding in PADDINGS:
        for name in args.configs:
            cmd = [
                sys.executable,
                __file__,
                "--probe",
                name,
                "--padding",
                padding,
                *_forwarded(args),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), None)
            if proc.returncode or line is None:
                raise RuntimeError(f"memory probe {name}/{padding} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(line))
            print(f"  memory {name}/{padding}: {rows[-1]}", flush=True)
    return rows


def _forwarded(args: argparse.Namespace) -> list[str]:
    return [
        "--data",
        str(args.data),
        "--encoder",
        args.encoder,
        "--per-task",
        str(args.per_task),
        "--batch-size",
        str(args.batch_size),
        "--max-length",
        str(args.max_length),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--probe-batches",
        str(args.probe_batches),
        "--soft-prefix-length",
        str(args.soft_prefix_length),
        "--long-text-stride",
        str(args.long_text_stride),
        *(["--tasks", *args.tasks] if args.tasks else []),
    ]


def _encoder_path(encoder: str) -> str:
    from surgellm_hf.encoders import resolve_encoder

    return resolve_encoder(encoder)


# ---------------------------------------------------------------------------------------------------- report


def render(result: dict[str, Any]) -> str:
    """The markdown tables of results.json."""
    lines = [
        "# Cost benchmark: SURGELLM modules against a plain fine-tune",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {result['machine']}",
        "",
        f"Inputs: {result['inputs']}",
        "",
    ]
    for padding in result["throughput"]:
        lines += [
            f"## Throughput, padding={padding!r}",
            "",
            "| config | train ex/s | train ratio: mix / totals / paired (IQR) | infer ex/s | "
            "infer ratio: mix / totals / paired (IQR) | tokens/example | windows/example | padded width | "
            "trainable params |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        block = result["throughput"][padding]
        for name in block["train"]:
            tr, inf, seq = block["train"][name], block["inference"][name], block["sequence"][name]
            lines.append(
                f"| {name} | {tr['median_ex_per_s']:.1f} | {_ratio(tr)} | {inf['median_ex_per_s']:.1f} | "
                f"{_ratio(inf)} | {seq['mean_tokens']:.1f} | {seq.get('mean_windows', 1.0):.2f} | "
                f"{seq['mean_padded_width']:.1f} | {result['parameters'][name]['trainable']:,} |"
            )
        lines += _per_task_lines(block)
    if result.get("memory"):
        lines += [
            "## Memory (a fresh child process per row)",
            "",
            "Tensor accounting (torch profiler memory events): weights + buffers, AdamW state, and the largest "
            "extra tensor memory a single steady-state step allocates (activations, gradients, temporaries); "
            "train total = weights + optimizer + train step. RSS: the process's resident-set high-water mark in "
            "each phase (reset through /proc/self/clear_refs), which includes the Python/torch runtime "
            "(~490 MiB after imports) and allocator caching.",
            "",
            "| config | padding | weights MiB | AdamW state MiB | inference step MiB | train step MiB | "
            "train total MiB | peak RSS inference MiB | peak RSS train MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m in result["memory"]:
            step_inf, step_tr = (
                m.get("step_peak_inference_mib", float("nan")),
                m.get("step_peak_train_mib", float("nan")),
            )
            total = m["weights_mib"] + m["optimizer_state_mib"] + step_tr
            lines.append(
                f"| {m['config']} | {m['padding']} | {m['weights_mib']:.0f} | {m['optimizer_state_mib']:.0f} | "
                f"{step_inf:.0f} | {step_tr:.0f} | {total:.0f} | {m['peak_rss_inference_mib']:.0f} | "
                f"{m['peak_rss_train_mib']:.0f} |"
            )
        lines.append("")
    proc = result.get("processor")
    if proc:
        lines += [
            f"## Processor against the fast tokenizer ({proc['texts']} training texts, "
            f"{proc['characters'] / 1e6:.2f} M characters; TOKENIZERS_PARALLELISM={proc['tokenizers_parallelism']})",
            "",
            "| step | texts/s | x tokenizer |",
            "|---|---:|---:|",
        ]
        for name in (
            "tokenizer",
            "featurize",
            "processor-none",
            "processor-text",
            "processor-tokens",
            "processor-soft",
        ):
            lines.append(f"| {name} | {proc[name]['texts_per_s']:.0f} | {proc[name]['vs_tokenizer']:.2f} |")
        lines += [
            "",
            "| prefix style | mean tokens | min | max | n_features + 1 |",
            "|---|---:|---:|---:|---:|",
        ]
        for style, p in proc["prefix_length_tokens"].items():
            lines.append(
                f"| {style} | {p['mean']:.1f} | {p['min']} | {p['max']} | {p['n_features_plus_1']} |"
            )
        lines.append("")
    lines += ["## Targets", ""] + [f"- {t}" for t in result["targets"]] + [""]
    return "\n".join(lines)


def _per_task_lines(block: dict[str, Any]) -> list[str]:
    """Ratio of totals to the plain model per task (train / inference) and mean tokens per example per task."""
    first = next(iter(block["train"].values()))
    tasks = list(first.get("per_task", {}))
    if not tasks:
        return [""]
    lines = [
        "",
        "Per task: median paired ratio to plain (train / inference) and mean tokens per example:",
        "",
        "| config | " + " | ".join(tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for name, tr in block["train"].items():
        inf, seq = block["inference"][name]["per_task"], block["sequence"][name].get("per_task_tokens", {})
        cells = [
            f"{tr['per_task'][t]['paired_ratio_median']:.2f} / {inf[t]['paired_ratio_median']:.2f}"
            + (f" ({seq[t]:.0f} tok)" if t in seq else "")
            for t in tasks
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _ratio(entry: dict[str, Any]) -> str:
    return (
        f"{entry['ratio_mix']:.3f} / {entry['ratio_total']:.3f} / {entry['paired_ratio_median']:.3f} "
        f"({entry['paired_ratio_q1']:.2f}–{entry['paired_ratio_q3']:.2f})"
    )


def targets(result: dict[str, Any]) -> list[str]:
    """The issue's targets, each with the measured value and MET / MISSED."""
    out = []
    for padding, block in result["throughput"].items():
        for mode in ("train", "inference"):
            if TARGET_CONFIG in block[mode]:
                entry = block[mode][TARGET_CONFIG]
                r, total = entry["ratio_mix"], entry["ratio_total"]
                out.append(
                    f"{TARGET_CONFIG} {mode} >= 0.9x plain (padding={padding}): {r:.3f}x on the task mix "
                    f"(ratio of totals {total:.3f}x): {'MET' if r >= 0.9 else 'MISSED'}"
                )
    for padding, block in result["throughput"].items():
        if padding != "longest" or SOFT_CONFIG not in block["train"]:
            continue
        timed = block["train"][SOFT_CONFIG]["per_task"]  # the tasks the rounds timed
        every = block["sequence"].get(REFERENCE, {}).get("per_task_tokens", {})
        plain_tokens = {t: n for t, n in every.items() if t in timed}
        shortest = min(plain_tokens, key=plain_tokens.get) if plain_tokens else None
        for mode in ("train", "inference"):
            entry = block[mode][SOFT_CONFIG]
            checks = [("the task mix", entry["ratio_mix"])]
            if shortest is not None and len(plain_tokens) > 1:
                checks.append(
                    (f"{shortest} (shortest texts)", entry["per_task"][shortest]["paired_ratio_median"])
                )
            for where, r in checks:
                out.append(
                    f"{SOFT_CONFIG} {mode} >= {SOFT_TARGET}x plain (dynamic padding) on {where}: {r:.3f}x "
                    f"{'MET' if r >= SOFT_TARGET else 'MISSED'}"
                )
    proc = result.get("processor")
    if proc:
        p = proc["prefix_length_tokens"]["tokens"]
        ok = p["min"] == p["max"] == p["n_features_plus_1"]
        out.append(
            f"compact prefix = n_features + 1 = {p['n_features_plus_1']} tokens: min {p['min']}, max {p['max']} "
            f"{'MET' if ok else 'MISSED'}"
        )
        f = proc["featurize"]["vs_tokenizer"]
        out.append(f"featurize >= 2x tokenizer: {f:.2f}x {'MET' if f >= 2 else 'MISSED'}")
    return out


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--encoder", default="bundled:all-MiniLM-L6-v2")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--paddings", nargs="+", default=list(PADDINGS), choices=PADDINGS)
    p.add_argument("--tasks", nargs="+", default=None, help="only these task folders (e.g. D1 alone)")
    p.add_argument("--soft-prefix-length", type=int, choices=(1, 2), default=2, help="k of surge-iwn-soft*")
    p.add_argument("--long-text-stride", type=int, default=0, help="overlap of the *-long4 configs' windows")
    p.add_argument("--per-task", type=int, default=64, help="training texts per task (seeded sample)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--per-round", type=int, default=4, help="consecutive batches per model per round (4 = one per task)"
    )
    p.add_argument("--processor-repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-processor", action="store_true")
    p.add_argument(
        "--probe-batches", type=int, default=4, help="batches per phase in a memory probe (4 = one per task)"
    )
    p.add_argument(
        "--out", type=Path, default=REPO_ROOT / "benchmarks" / "results", help="folder for results"
    )
    p.add_argument("--tag", default="overhead", help="results file stem: <tag>.json / <tag>.md")
    p.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    p.add_argument("--padding", default="max_length", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the throughput rounds, the processor comparison and the memory probes; write <tag>.json and .md."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.probe:
        print(json.dumps(memory_probe(args)))
        return 0
    import shlex

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    encoder = _encoder_path(args.encoder)
    texts, tasks, labels = load_texts(args.data, args.per_task, args.seed, args.tasks)
    names = sorted(set(tasks))
    batches_ix = task_batches(tasks, args.batch_size)
    batch_tasks = [tasks[ix[0]] for ix in batches_ix]
    result: dict[str, Any] = {
        "benchmark": "overhead",
        "command": "python "
        + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO_ROOT), *sys.argv[1:]]),
        "machine": machine_line(args.threads) + f"; device {args.device}",
        "inputs": (
            f"{len(texts)} training texts ({args.per_task} per task of {names}, seed {args.seed}), "
            f"{len(batches_ix)} task-homogeneous batches of {args.batch_size}, max_length {args.max_length}; "
            f"{args.rounds} interleaved rounds of {args.per_round} batches per model and mode"
        ),
    }
    setups = {n: make_setup(n, encoder, names, args, (texts, tasks, labels)) for n in args.configs}
    result["parameters"] = {n: s.parameters() for n, s in setups.items()}
    runners = {n: Runner(s, args.device) for n, s in setups.items()}
    result["throughput"] = {}
    for padding in args.paddings:
        print(f"padding={padding}", flush=True)
        batches = {
            n: encode_batches(s, texts, tasks, labels, batches_ix, padding, args.device)
            for n, s in setups.items()
        }
        result["throughput"][padding] = {
            "sequence": {
                n: sequence_stats(
                    b, batch_tasks, setups[n].model.config.soft_prefix_length if setups[n].processor else 0
                )
                for n, b in batches.items()
            },
            "train": interleaved(runners, batches, batch_tasks, "train", args.rounds, args.per_round),
            "inference": interleaved(runners, batches, batch_tasks, "inference", args.rounds, args.per_round),
        }
    del runners, setups
    if not args.skip_processor:
        print("processor vs tokenizer", flush=True)
        result["processor"] = processor_costs(args, encoder, args.processor_repeats)
    if not args.skip_memory:
        print("memory probes", flush=True)
        result["memory"] = memory_table(args)
    result["targets"] = targets(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = render(result)
    (args.out / f"{args.tag}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
