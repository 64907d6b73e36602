"""report_to: a run logs to TensorBoard (event files read back with tensorboard's own reader) and to MLflow (a local
SQLite store, read back with MlflowClient): the loss and per-epoch validation scores through the Trainer's
integrations, plus the run settings (run_config.json: resolved config, lexicon hash, task order) and the final
per-task metrics; an unknown or missing tracker is refused before anything is written; the trackers change nothing a
run computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from surgellm_hf.cli import main
from surgellm_hf.training import RunConfig, load_run_config, train_run
from surgellm_hf.training.tracking import check_report_to, final_metric_logs
from tests._helpers import write_run_config


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, tiny_bert_with_tokenizer):
    """One two-epoch run reporting to TensorBoard and MLflow (a SQLite store in the test folder)."""
    tmp = tmp_path_factory.mktemp("tracked")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
    mp.chdir(tmp)  # MLflow's artifacts go to ./mlruns
    try:
        config = write_run_config(
            tmp, tiny_bert_with_tokenizer, epochs=2, report_to=["tensorboard", "mlflow"]
        )
        run = train_run(load_run_config(config))
    finally:
        mp.undo()
    return tmp, config, run


def test_tensorboard_gets_the_curves_the_settings_and_the_final_metrics(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, run = tracked_run
    metrics = json.loads((run / "metrics.json").read_text())
    settings = json.loads((run / "run_config.json").read_text())
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"]
    curve = [(e.step, e.value) for e in events.Scalars("eval/avg_macro_f1")]
    assert [v for _, v in curve] == pytest.approx([h["avg_macro_f1"] for h in metrics["validation_history"]])
    last_step = metrics["training"]["global_steps"]
    for task in ("reviews", "register"):
        (final,) = events.Scalars(f"test/{task}_macro_f1")
        assert final.step == last_step and final.value == pytest.approx(
            metrics["tasks"][task]["test"]["macro_f1"]
        )
        (best,) = events.Scalars(f"eval/best_{task}_accuracy")
        assert best.value == pytest.approx(metrics["tasks"][task]["validation"]["accuracy"])
    (avg,) = events.Scalars("test/avg_macro_f1")
    assert avg.value == pytest.approx(metrics["avg_macro_f1"]["test"])
    (text,) = events.Tensors("surgellm/run_settings/text_summary")
    logged = json.loads(text.tensor_proto.string_val[0].decode())  # the Markdown code block is indented JSON
    assert logged == settings
    assert (
        logged["task_order"] == ["reviews", "register"]
        and logged["lexicon_sha256"] == metrics["lexicon"]["sha256"]
    )
    assert logged["settings"]["epochs"] == 2  # the resolved config, not only what the YAML said


def test_mlflow_gets_the_settings_as_params_and_artifact_and_the_final_metrics(tracked_run):
    from mlflow.tracking import MlflowClient

    tmp, _, run = tracked_run
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    (record,) = client.search_runs(["0"])
    assert (
        record.info.run_name == "IWN-seed0" and record.info.status == "FINISHED"
    )  # run_name: the run folder's
    metrics = json.loads((run / "metrics.json").read_text())
    settings = json.loads((run / "run_config.json").read_text())
    params = record.data.params
    assert params["surgellm.lexicon_sha256"] == settings["lexicon_sha256"]
    assert json.loads(params["surgellm.task_order"]) == ["reviews", "register"]
    assert params["surgellm.settings.module_lr_scale"] == "1.0" and params["learning_rate"] == "0.001"
    history = client.get_metric_history(record.info.run_id, "eval_avg_macro_f1")
    assert [m.value for m in history] == pytest.approx(
        [h["avg_macro_f1"] for h in metrics["validation_history"]]
    )
    for task in ("reviews", "register"):
        assert record.data.metrics[f"test_{task}_macro_f1"] == pytest.approx(
            metrics["tasks"][task]["test"]["macro_f1"]
        )
    artifact = Path(client.download_artifacts(record.info.run_id, "surgellm/run_settings.json", str(tmp)))
    assert json.loads(artifact.read_text()) == settings


def test_final_metric_logs_leave_out_undefined_scores():
    metrics = {
        "sts": {"test": {"pearson": float("nan"), "spearman": 0.5, "n": 6}},
        "topics": {"validation": {"micro_f1": 0.7, "macro_f1": None}},
    }
    logs = final_metric_logs(metrics, {"test": 0.25, "validation": float("nan")})
    assert logs == {"test_sts_spearman": 0.5, "eval_best_topics_micro_f1": 0.7, "test_avg_macro_f1": 0.25}


def test_trackers_change_nothing_the_run_computes(tracked_run, capsys):
    _, config, run = tracked_run
    before = (run / "metrics.json").read_text()
    assert main(["train", "--config", str(config), "report_to=none", "run_name=renamed"]) == 0
    assert "Run already finished (nothing trained)" in capsys.readouterr().out
    assert (run / "metrics.json").read_text() == before


def test_an_unknown_or_missing_tracker_is_refused_before_anything_is_written(
    tmp_path, tiny_bert_with_tokenizer, capsys, monkeypatch
):
    with pytest.raises(ValueError, match=r"`report_to` names unknown tracker\(s\) \['tensorbored'\]"):
        RunConfig(data={"folder": "x"}, report_to=["tensorbored"])
    assert RunConfig(data={"folder": "x"}).report_to == "none"
    monkeypatch.setenv("DISABLE_MLFLOW_INTEGRATION", "TRUE")  # transformers then treats mlflow as absent
    with pytest.raises(
        ValueError, match=r"tracker\(s\) \['mlflow'\] are not installed here.*pip install mlflow-skinny"
    ):
        check_report_to(["tensorboard", "mlflow"])
    config = write_run_config(tmp_path, tiny_bert_with_tokenizer, report_to="mlflow")
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tracker(s) ['mlflow'] are not installed here" in err[0]
    assert not (tmp_path / "runs").exists()
    check_report_to("none")
    check_report_to(None)
