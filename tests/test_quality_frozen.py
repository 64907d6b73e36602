"""Smoke run of `benchmarks/quality.py --protocol frozen` (cached states shared across runs, class-ratio data,
single-task references, gate table) on a tiny encoder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests._helpers import QUICKSTART_DATA

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _quality():
    spec = importlib.util.spec_from_file_location("bench_quality_frozen", BENCHMARKS / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_frozen_protocol_runs_variants_controls_references_and_class_ratio(
    tmp_path, tiny_bert_with_tokenizer
):
    """Variants + random lexicon + single-task references share one state cache; a class-ratio run subsamples."""
    quality = _quality()
    common = [
        "--data",
        str(QUICKSTART_DATA),
        "--encoder",
        str(tiny_bert_with_tokenizer),
        "--protocol",
        "frozen",
    ]
    common += ["--seeds", "0", "--max-train-rows", "24", "--max-eval-rows", "8", "--epochs", "2"]
    common += ["--batch-size", "8", "--n-resamples", "50", "--threads", "1", "--learning-rate", "1e-3"]
    cache = tmp_path / "states"
    out = tmp_path / "main"
    argv = [*common, "--out", str(out), "--encoder-cache-dir", str(cache)]
    assert quality.main([*argv, "--variants", "baseline", "IWN", "IWN-random", "--single-task-refs"]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["labels"] == ["baseline", "IWN", "IWN-random"]
    assert set(result["single_task_references"]) == {"register", "reviews"}
    assert set(result["gates"]) == {"IWN", "IWN-random"}
    runs = {r["label"]: r for r in result["runs"]}
    assert "single-reviews" in runs and runs["single-reviews"]["tasks"].keys() == {"reviews"}
    metrics = json.loads((out / "runs" / "IWN-seed0" / "metrics.json").read_text())
    assert metrics["training"]["cached_encoder_outputs"] is True
    assert metrics["run_config"]["prefix_style"] == "text"
    assert len(list(cache.glob("*.npz"))) == 1  # one encoder, one cache file for every run
    skew = tmp_path / "skew"
    argv = [*common, "--out", str(skew), "--encoder-cache-dir", str(cache), "--work-dir", str(tmp_path / "w")]
    assert (
        quality.main(
            [*argv, "--variants", "baseline", "IWN", "--tasks", "reviews", "--class-ratio", "reviews=3"]
        )
        == 0
    )
    folder = tmp_path / "w" / "ratio-reviews3" / "reviews"
    labels = [json.loads(line)["label"] for line in (folder / "train.jsonl").read_text().splitlines()]
    assert labels.count(0) == round(3 * labels.count(1)) or abs(labels.count(0) / labels.count(1) - 3) < 0.5
    assert (folder / "validation.jsonl").is_symlink()


def test_full_protocol_estimate_counts_paper_epochs_and_times_steps(tiny_bert_with_tokenizer):
    """The full protocol's estimate: paper epochs (3 + 5) x seeds, batches per epoch from the data, a timed step."""
    quality = _quality()
    args = quality.build_parser().parse_args(
        [
            "--data",
            str(QUICKSTART_DATA),
            "--encoder",
            str(tiny_bert_with_tokenizer),
            "--variants",
            "baseline",
            "IWN",
        ]
        + ["--max-length", "32", "--seeds", "0", "1"]
    )
    e = quality.estimate_full_protocol_seconds(args, repeats=1)
    assert e["epochs_total"] == (3 + 5) * 2
    assert e["train_batches_per_epoch"] > 0 and e["step_s"] > 0
    assert e["estimated_s"] > e["step_s"] * e["epochs_total"] * e["train_batches_per_epoch"] * 0.99
