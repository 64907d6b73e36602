"""Smoke runs of the benchmark scripts on a tiny encoder, so they cannot rot (their figures come from real runs)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests._helpers import QUICKSTART_DATA

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quality_args(out: Path, encoder: Path, *extra: str) -> list[str]:
    return [
        "--data",
        str(QUICKSTART_DATA),
        "--out",
        str(out),
        "--variants",
        "baseline",
        "IWN",
        "--seeds",
        "0",
        "--encoder",
        str(encoder),
        "--max-train-rows",
        "16",
        "--max-eval-rows",
        "8",
        "--max-length",
        "32",
        "--batch-size",
        "8",
        "--n-resamples",
        "50",
        "--threads",
        "1",
        "--prefix-style",
        "tokens",  # the text prefix needs max_length >= 86 with this tokenizer
        *extra,
    ]


def test_quality_reuses_a_run_only_with_the_requested_settings(tmp_path, tiny_bert_with_tokenizer, capsys):
    quality = _load("quality")
    runs = [tmp_path / "runs" / name / "metrics.json" for name in ("baseline-seed0", "IWN-seed0")]
    assert quality.main(_quality_args(tmp_path, tiny_bert_with_tokenizer, "--epochs", "1")) == 0
    first = [p.read_bytes() for p in runs]
    budget = (tmp_path / "budget.json").read_bytes()
    assert json.loads(budget)["labels"] == ["baseline", "IWN"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["labels"] == ["baseline", "IWN"] and results["tasks"] == ["register", "reviews"]
    assert {r["label"] for r in results["runs"]} == {"baseline", "IWN"} and (
        tmp_path / "results.md"
    ).is_file()
    capsys.readouterr()
    # the same settings again: both runs reused, nothing retrained
    assert quality.main(_quality_args(tmp_path, tiny_bert_with_tokenizer, "--epochs", "1")) == 0
    assert capsys.readouterr().out.count("[quality] reuse") == 2
    assert [p.read_bytes() for p in runs] == first
    # paper budgets into the equal-budget folder: refused before anything trains or is written
    with pytest.raises(SystemExit, match="equal_budget: True there, False now"):
        quality.main(_quality_args(tmp_path, tiny_bert_with_tokenizer, "--epoch-scale", "0.2"))
    with pytest.raises(SystemExit, match="epochs of IWN: 1 there, 2 now"):
        quality.main(_quality_args(tmp_path, tiny_bert_with_tokenizer, "--epochs", "2"))
    assert (tmp_path / "budget.json").read_bytes() == budget and [p.read_bytes() for p in runs] == first
    # without budget.json the runs' own saved settings still refuse a different request
    (tmp_path / "budget.json").unlink()
    with pytest.raises(SystemExit, match="epochs: saved 1, requested 2"):
        quality.main(_quality_args(tmp_path, tiny_bert_with_tokenizer, "--epochs", "2"))
    assert [p.read_bytes() for p in runs] == first
    # --overwrite retrains them at the new budget
    assert (
        quality.main(_quality_args(tmp_path, tiny_bert_with_tokenizer, "--epochs", "2", "--overwrite")) == 0
    )
    assert [json.loads(p.read_text())["training"]["epochs_budget"] for p in runs] == [2, 2]
    assert json.loads((tmp_path / "budget.json").read_text())["epochs"] == {"baseline": 2, "IWN": 2}


def test_quality_budget_merge_keeps_labels_and_reads_old_files():
    quality = _load("quality")
    old = {  # a budget.json written before equal_budget and labels existed
        "command": "old",
        "machine": "m",
        "data": "/d",
        "encoder": "e",
        "max_train_rows_per_task": 16,
        "max_eval_rows_per_task": 8,
        "max_length": 32,
        "epochs": "3 for every variant (equal budget)",
        "learning_rate": {"IWN": 1e-4, "baseline": 1e-4},
        "batch_size": 8,
        "prefix_style": "tokens",
        "seeds": [0, 1],
        "torch_threads": 2,
    }
    new = {
        **old,
        "command": "new",
        "equal_budget": True,
        "labels": ["G", "IWN"],
        "epochs": {"G": 3, "IWN": 3},
        "learning_rate": {"G": 1e-4, "IWN": 1e-4},
        "seeds": [2],
        "task_sampling": "proportional",  # an old file was proportional: the only rule before the flag
    }
    merged = quality.merge_budget(old, new)
    assert merged["labels"] == ["IWN", "baseline", "G"] and merged["seeds"] == [0, 1, 2]
    assert merged["epochs"] == {"IWN": 3, "baseline": 3, "G": 3} and merged["command"] == "new"
    with pytest.raises(SystemExit, match="max_length: 32 there, 64 now"):
        quality.merge_budget(old, {**new, "max_length": 64})
    with pytest.raises(SystemExit, match="task_sampling: 'proportional' there, 'equal' now"):
        quality.merge_budget(old, {**new, "task_sampling": "equal"})


def test_quality_task_sampling_reaches_the_run_config(tmp_path):
    quality = _load("quality")
    args = quality.build_parser().parse_args(
        ["--out", str(tmp_path), "--task-sampling", "temperature", "--temperature", "3"]
    )
    cfg = quality.run_config("IWN", 0, args)
    assert (cfg.task_sampling, cfg.temperature) == ("temperature", 3.0)
    default = quality.run_config("IWN", 0, quality.build_parser().parse_args(["--out", str(tmp_path)]))
    assert default.task_sampling == "proportional"


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
        "surge-iwn-soft",
        "surge-iwn-soft-long4",
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
    # the soft prefix adds its 2 virtual tokens to every example; at max_length 32 the long texts take windows
    dynamic = result["throughput"]["longest"]["sequence"]
    assert dynamic["surge-iwn-soft"]["mean_tokens"] == pytest.approx(dynamic["plain"]["mean_tokens"] + 2)
    assert dynamic["surge-iwn-soft-long4"]["mean_windows"] >= 1.0
    assert any(
        t.startswith("surge-iwn-soft train >= 0.95x plain (dynamic padding) on the task mix")
        for t in result["targets"]
    )
    assert (tmp_path / "overhead.md").is_file()


def test_quality_labels_set_prefix_long_text_and_module_lr_side_by_side(tmp_path):
    quality = _load("quality")
    args = quality.build_parser().parse_args(
        [
            "--out",
            str(tmp_path),
            "--selection-split",
            "0.2",
            "--selection-seed",
            "3",
            "--long-text-stride",
            "8",
        ]
    )
    assert quality.label_settings("IWN-random") == {"variant": "IWN", "lexicon": "random"}
    cfg = quality.run_config("IWN-soft1-long4-x10", 0, args)
    assert (cfg.variant, cfg.prefix_style, cfg.soft_prefix_length, cfg.module_lr_scale) == (
        "IWN",
        "soft",
        1,
        10.0,
    )
    assert cfg.long_text == {"max_chunks": 4, "stride": 8, "pool": "mean", "tasks": {}}
    assert cfg.selection_split == {"fraction": 0.2, "seed": 3}
    assert cfg.run_dir.name == "IWN-soft1-long4-x10-seed0"
    plain = quality.run_config("IWN-tokens", 0, args)
    assert (plain.prefix_style, plain.long_text, plain.module_lr_scale) == ("tokens", None, None)
    assert quality.run_config("IWN-long", 0, args).long_text["max_chunks"] == 4
    for bad, match in (("IWN-soft-tokens", "sets its prefix twice"), ("IWN-fast", "part 'fast' is none of")):
        with pytest.raises(ValueError, match=match):
            quality.label_settings(bad)
    with pytest.raises(SystemExit, match="--pairs takes LABEL:LABEL items"):
        quality.parse_pairs(["IWN-text"])


def test_quality_selects_on_a_slice_of_train_and_compares_pairs(tmp_path, tiny_bert_with_tokenizer):
    quality = _load("quality")
    extra = ["--epochs", "1", "--selection-split", "0.25", "--pairs", "IWN-soft:IWN"]
    args = _quality_args(tmp_path, tiny_bert_with_tokenizer, *extra)
    args[args.index("baseline")] = "IWN-soft"
    assert quality.main(args) == 0
    budget = json.loads((tmp_path / "budget.json").read_text())
    assert budget["selection_split"] == {"fraction": 0.25, "seed": 0}
    assert budget["label_settings"]["IWN-soft"]["prefix_style"] == "soft"
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["selected_on"] for r in results["runs"]} == {"selection"}
    assert all(r["selection_avg_macro_f1"] is not None for r in results["runs"])
    cell = results["pairs"]["validation"]["IWN-soft vs IWN"]["average"]
    by_label = {r["label"]: r["avg_macro_f1"]["validation"] for r in results["runs"]}
    assert cell["diff"] == pytest.approx(by_label["IWN-soft"] - by_label["IWN"])
    assert "### Pairs (macro_f1, validation)" in (tmp_path / "results.md").read_text()
    # another selection slice is another folder setting: refused before anything trains
    with pytest.raises(SystemExit, match="selection_split"):
        quality.main([*args, "--selection-seed", "1"])
