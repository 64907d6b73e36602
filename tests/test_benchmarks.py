"""Smoke runs of the benchmark scripts on a tiny encoder, so they cannot rot (their figures come from real runs)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from conftest import QUICKSTART_DATA

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quality_benchmark_runs_and_aggregates(tmp_path, tiny_bert_with_tokenizer):
    quality = _load("quality")
    args = [
        "--data",
        str(QUICKSTART_DATA),
        "--out",
        str(tmp_path),
        "--variants",
        "baseline",
        "IWN",
        "--seeds",
        "0",
        "--encoder",
        str(tiny_bert_with_tokenizer),
        "--max-train-rows",
        "16",
        "--max-eval-rows",
        "8",
        "--epochs",
        "1",
        "--max-length",
        "32",
        "--batch-size",
        "8",
        "--n-resamples",
        "100",
        "--threads",
        "1",
    ]
    assert quality.main(args) in (0, None)
    results = json.loads((tmp_path / "results.json").read_text())
    text = json.dumps(results)
    assert "baseline" in text and "IWN" in text and "reviews" in text
    assert (tmp_path / "results.md").is_file()


def test_overhead_benchmark_runs(tmp_path, tiny_bert_with_tokenizer):
    overhead = _load("overhead")
    args = [
        "--data",
        str(QUICKSTART_DATA),
        "--encoder",
        str(tiny_bert_with_tokenizer),
        "--configs",
        "plain",
        "surge-iwn-tokens",
        "--per-task",
        "4",
        "--batch-size",
        "2",
        "--rounds",
        "1",
        "--per-round",
        "1",
        "--max-length",
        "32",
        "--skip-memory",
        "--skip-processor",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert overhead.main(args) in (0, None)
    result = json.loads((tmp_path / "overhead.json").read_text())
    for mode in ("train", "inference"):
        measured = result["throughput"]["max_length"][mode]
        assert (
            measured["plain"]["median_ex_per_s"] > 0 and measured["surge-iwn-tokens"]["median_ex_per_s"] > 0
        )
    seq = result["throughput"]["max_length"]["sequence"]
    assert seq["surge-iwn-tokens"]["mean_tokens"] > seq["plain"]["mean_tokens"]  # the prefix adds tokens
    assert (tmp_path / "overhead.md").is_file()
