"""Smoke run of benchmarks/serving.py on a tiny encoder, so the script cannot rot (its figures come from real runs)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str = "serving"):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
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
    assert set(results["throughput_model_only"]) >= {"eager", "ort_fp32", "ort_fp32_plain", "ort_int8"}
    assert results["optimization"]["applied"] is True  # the default export is the fused graph
    assert set(results["machine"]["load_average"]) == {"start", "before_timing", "after_timing", "end"}
    assert results["settings"]["rounds"] == 1
    report = (tmp_path / "results" / "serving.md").read_text()
    assert "## Targets" in report and ("MET" in report or "MISSED" in report)
    assert "# Serving benchmark" in capsys.readouterr().out


def test_serving_http_benchmark_smoke(tmp_path, tiny_bert_with_tokenizer):
    """The HTTP benchmark on a tiny encoder: a real server, two client counts, two request sizes, no errors."""
    bench = _load("serving_http")
    argv = [
        "--data", str(_data(tmp_path / "data")), "--tasks", "D1", "D2", "--encoder", str(tiny_bert_with_tokenizer),
        "--clients", "1", "4", "--sizes", "1", "3", "--requests-per-client", "2", "--min-requests", "4",
        "--texts-per-task", "8", "--threads", "1", "--max-length", "32",
        "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "results"),
    ]  # fmt: skip
    assert bench.main(argv) == 0
    results = json.loads((tmp_path / "results" / "serving_http.json").read_text())
    cells = {(c["clients"], c["texts_per_request"]): c for c in results["cells"]}
    assert set(cells) == {(1, 1), (1, 3), (4, 1), (4, 3)}
    assert results["target"]["zero_errors"] is True and results["server_exit_code"] == 0
    for (clients, size), cell in cells.items():
        assert cell["requests"] == max(4, clients * 2) and cell["p50_ms"] <= cell["p99_ms"]
        assert cell["texts_per_s"] == pytest.approx(cell["requests_per_s"] * size, rel=0.01)
        assert cell["peak_rss_mib"] > 50 and cell["in_process_texts_per_s"] > 0
    assert "# HTTP serving benchmark" in (tmp_path / "results" / "serving_http.md").read_text()
