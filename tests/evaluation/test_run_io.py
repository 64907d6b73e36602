"""The run-folder format: save_run / load_run round trips, task order, format errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgellm_hf import evaluation as ev
from tests.evaluation._evaluation_fixtures import noisy_predictions as _noisy_predictions

# ----------------------------------------------------------------------------------------------- runs and report


def test_save_and_load_run_round_trip(tmp_path):
    y, p = _noisy_predictions(30, 0.8, seed=0)
    metrics = {"a_b": {"validation": ev.task_metrics(y, p), "test": ev.task_metrics(y, p)}}
    path = ev.save_run(
        tmp_path,
        "IWN",
        1,
        metrics,
        {"a_b": {"test": {"y_true": y, "y_pred": p, "score": y * 0.5}}},
        {"epochs": 5},
    )
    on_disk = json.loads(path.read_text())
    assert on_disk["format"] == "surgellm-run/1" and on_disk["variant"] == "IWN" and on_disk["seed"] == 1
    assert on_disk["avg_macro_f1"]["test"] == pytest.approx(metrics["a_b"]["test"]["macro_f1"])
    assert (tmp_path / "predictions" / "a_b_test.jsonl").is_file()
    rec = ev.load_run(tmp_path)
    assert rec.variant == "IWN" and rec.seed == 1 and rec.extra == {"epochs": 5}
    assert rec.tasks["a_b"]["test"] == pytest.approx(metrics["a_b"]["test"], nan_ok=True)
    assert '"roc_auc": null' in path.read_text()  # NaN is written as strict-JSON null
    np.testing.assert_array_equal(rec.predictions["a_b"]["test"]["y_pred"], p)
    np.testing.assert_allclose(rec.predictions["a_b"]["test"]["score"], y * 0.5)
    assert rec.predictions["a_b"]["test"]["gate"] is None


def test_run_task_order_survives_a_key_sorting_json_round_trip(tmp_path):
    """Task order is a list in metrics.json: a tool that rewrites the file with sorted keys cannot reorder tasks."""
    y, p = _noisy_predictions(20, 0.8, seed=1)
    order = ["sst2", "llm7", "hotpot"]  # not alphabetical
    metrics = {t: {"test": ev.task_metrics(y, p)} for t in order}
    path = ev.save_run(tmp_path, "IWN", 0, metrics, {t: {"test": {"y_true": y, "y_pred": p}} for t in order})
    assert json.loads(path.read_text())["task_order"] == order
    path.write_text(json.dumps(json.loads(path.read_text()), sort_keys=True))  # e.g. `jq -S`
    rec = ev.load_run(tmp_path)
    assert list(rec.tasks) == order and "task_order" not in rec.extra
    assert list(json.loads(path.read_text())["tasks"]) == sorted(order)  # the object itself did get reordered
    record = json.loads(path.read_text())
    record["task_order"] = ["sst2", "llm7"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="does not list the tasks"):
        ev.load_run(tmp_path)


def test_run_format_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        ev.load_run(tmp_path)
    with pytest.raises(ValueError, match="lack 'macro_f1'"):
        ev.save_run(tmp_path, "v", 0, {"t": {"test": {"accuracy": 1.0}}})
    with pytest.raises(ValueError, match="splits among"):
        ev.save_run(tmp_path, "v", 0, {"t": {"dev": {"macro_f1": 1.0}}})
    with pytest.raises(ValueError, match="y_pred has 1 entries"):
        ev.save_run(
            tmp_path,
            "v",
            0,
            {"t": {"test": {"macro_f1": 1.0}}},
            {"t": {"test": {"y_true": [0, 1], "y_pred": [0]}}},
        )
    ev.save_run(tmp_path, "v", 0, {"t": {"test": {"macro_f1": 1.0}}})
    (tmp_path / "predictions").mkdir(exist_ok=True)
    (tmp_path / "predictions" / "other_test.jsonl").write_text('{"y_true": 0, "y_pred": 0}\n')
    with pytest.raises(ValueError, match="<task>_<split>.jsonl"):
        ev.load_run(tmp_path)
