"""Smoke run of benchmarks/serving.py on a tiny encoder, so the script cannot rot (its figures come from real runs)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

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


def test_serving_profile_flops_and_bounds_by_hand():
    """The FLOP count and the bounds of benchmarks/serving_profile.py against hand arithmetic."""
    bench = _load("serving_profile")
    config = SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2)
    flops = bench.encoder_flops(config, [(2, 3), (1, 5)])  # 11 tokens, 2*9 + 25 = 43 token pairs
    assert flops == {
        "qkv": 2 * 11 * 3 * 16 * 2,
        "output_and_ffn": 2 * 11 * (16 + 64) * 2,
        "attention_core": 2 * 2 * 43 * 4 * 2,
    }
    eager = {"aten::addmm": 3.0, "aten::_scaled_dot_product_flash_attention_for_cpu": 0.5, "aten::gelu": 0.5}
    onnx = {"MatMul": 2.0, "Attention": 1.5, "SkipLayerNormalization": 0.25}
    flops = {"qkv": 1e9, "output_and_ffn": 4e9, "attention_core": 0.5e9}
    b = bench.breakdown(eager, onnx, flops, {"eager": 4.5, "ort_fp32": 4.0})
    assert b["eager"]["outside_ops_s"] == pytest.approx(0.5) and b["eager"]["other_s"] == pytest.approx(0.5)
    assert b["eager"]["projection_gflops"] == pytest.approx(5 / 3)
    # ONNX Runtime: MatMul does 4 GFLOP in 2 s, so the 1 GFLOP Q/K/V projection inside Attention takes 0.5 s
    assert b["onnxruntime"]["projection_gflops"] == pytest.approx(2.0)
    assert b["onnxruntime"]["projection_gemm_s"] == pytest.approx(2.5)
    assert b["onnxruntime"]["attention_core_s"] == pytest.approx(1.0)
    assert b["onnxruntime"]["other_s"] == pytest.approx(0.25)
    assert b["bound"]["eager_over_ort_gemms_and_attention"] == pytest.approx(4.5 / 3.5)
    assert b["bound"]["eager_over_eager_projection_gemms"] == pytest.approx(1.5)
    assert b["bound"]["measured_ratio"] == pytest.approx(1.125)


def test_serving_profile_benchmark_smoke(tmp_path, tiny_bert_with_tokenizer):
    """benchmarks/serving_profile.py on a tiny encoder: both profiles read, the groups add up to the op totals."""
    bench = _load("serving_profile")
    argv = [
        "--data", str(_data(tmp_path / "data")), "--tasks", "D1", "D2", "--encoder", str(tiny_bert_with_tokenizer),
        "--train-per-task", "8", "--timing-per-task", "4", "--rounds", "1", "--max-length", "32",
        "--batch-size", "4", "--threads", "1", "--work-dir", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    assert bench.main(argv) == 0
    results = json.loads((tmp_path / "out" / "serving-profile.json").read_text())
    assert results["fp32_max_abs_logit_diff"] <= 1e-4 and len(results["batch_shapes"]) == 2
    assert "aten::addmm" in results["eager_ops_s"] and "Attention" in results["ort_ops_s"]  # the fused graph
    for side, ops in (("eager", "eager_ops_s"), ("onnxruntime", "ort_ops_s")):
        part = results["breakdown"][side]
        assert part["total_s"] == pytest.approx(sum(results[ops].values()))
        groups = part["projection_gemm_s"] + part["attention_core_s"] + part["other_s"]
        assert groups == pytest.approx(part["total_s"])
    assert "Bounds on ONNX Runtime / eager" in (tmp_path / "out" / "serving-profile.md").read_text()


def test_serving_report_calls_a_machine_busy_only_beyond_its_own_threads():
    """The benchmark's own threads keep the load average near their count: that alone is a quiet machine."""
    serving = _load()

    def m(before: float, after: float) -> dict:
        return {
            "threads": 2,
            "load_average": {"before_timing": [before, 0, 0], "after_timing": [after, 0, 0]},
        }

    assert not serving.busy(m(1.38, 1.99)) and not serving.busy(m(0.1, 2.49))
    assert serving.busy(m(2.5, 1.9)) and serving.busy(m(5.73, 5.63))
