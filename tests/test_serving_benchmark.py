"""Smoke run of benchmarks/serving.py on a tiny encoder, so the script cannot rot (its figures come from real runs)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load():
    spec = importlib.util.spec_from_file_location("bench_serving", BENCHMARKS / "serving.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(root: Path) -> Path:
    """Two binary tasks in the shared data's layout, made here (no shared data needed)."""
    words = {0: "terrible awful boring dull", 1: "great brilliant witty superb"}
    for task in ("D1", "D2"):
        for split, n in (("train", 12), ("validation", 8)):
            (root / task).mkdir(parents=True, exist_ok=True)
            rows = [{"id": f"{task}-{i}", "text": f"{words[i % 2]} film number {i}" + " more" * i, "label": i % 2}
                    for i in range(n)]  # fmt: skip
            (root / task / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_serving_benchmark_smoke(tmp_path, tiny_bert_with_tokenizer, capsys):
    serving = _load()
    argv = [
        "--data", str(_data(tmp_path / "data")), "--tasks", "D1", "D2", "--encoder", str(tiny_bert_with_tokenizer),
        "--train-per-task", "8", "--epochs", "1", "--timing-per-task", "4", "--all-tasks-per-task", "4",
        "--rounds", "1", "--max-length", "32", "--batch-size", "4", "--threads", "1",
        "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "results"),
    ]  # fmt: skip
    assert serving.main(argv) == 0
    results = json.loads((tmp_path / "results" / "serving.json").read_text())
    assert results["settings"]["tasks"] == ["D1", "D2"] and results["machine"]["threads"] == 1
    assert results["accuracy"]["rows"] == 16 and set(results["accuracy"]["tasks"]) == {"D1", "D2"}
    assert results["accuracy"]["fp32_identical_predictions"] is True
    assert results["accuracy"]["fp32_max_abs_logit_diff"] <= 1e-4
    assert set(results["targets"]) == {
        "fp32_identical_predictions",
        "fp32_max_abs_logit_diff",
        "fp32_speedup_model_only",
        "int8_speedup_model_only",
        "task_all_speedup_ort_fp32",
    }
    assert results["all_tasks"]["same_labels_as_single_passes"] is True
    report = (tmp_path / "results" / "serving.md").read_text()
    assert "## Targets" in report and ("MET" in report or "MISSED" in report)
    assert "# Serving benchmark" in capsys.readouterr().out
