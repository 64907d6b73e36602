"""Calibration and thresholds (issue 19, part 4): temperature scaling, per-label thresholds, ECE and Brier, their
storage in the config, their use by predict_texts, the pipeline, `surgellm predict`, the ONNX runner, and the
`surgellm calibrate` command on a trained run (metrics.json, report, model card)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from surgellm_hf import SurgeConfig, SurgeForSequenceClassification
from surgellm_hf.calibration import (
    calibrate_run,
    fit_label_thresholds,
    fit_temperature,
    negative_log_likelihood,
)
from surgellm_hf.cli import main
from surgellm_hf.evaluation.metrics import calibration_metrics, expected_calibration_error
from surgellm_hf.inference import load_run_model, predict_texts
from surgellm_hf.pipeline_surge import SurgeTextClassificationPipeline
from tests._helpers import write_run_config
from tests.serving.test_problem_types import LABELS, TEXTS, TYPES, loaded, mixed_run  # noqa: F401  (fixtures)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("kind", ["single_label", "multi_label"])
@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_temperature_recovers_a_known_temperature(kind, true_t):
    """Labels drawn from softmax / sigmoid of logits / T: the fitted T is that T (20k rows)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, size=(20000, 3))
    if kind == "multi_label":
        labels = (rng.random(logits.shape) < _sigmoid(logits / true_t)).astype(np.int64)
    else:
        prob = _softmax(logits / true_t)
        labels = np.array([rng.choice(3, p=p) for p in prob])
    fitted = fit_temperature(logits, labels, kind)
    assert fitted == pytest.approx(true_t, rel=0.05)
    nll = negative_log_likelihood(logits, labels, kind, fitted)  # a minimum: both neighbours are worse
    assert nll < negative_log_likelihood(logits, labels, kind, fitted * 1.05)
    assert nll < negative_log_likelihood(logits, labels, kind, fitted / 1.05)


def _hand_ece(conf: list[float], hit: list[float], bins: int = 15) -> float:
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        rows = [i for i, c in enumerate(conf) if (lo < c <= hi) or (b == 0 and c == 0.0)]
        if rows:
            acc = sum(hit[i] for i in rows) / len(rows)
            mean_conf = sum(conf[i] for i in rows) / len(rows)
            total += len(rows) / len(conf) * abs(acc - mean_conf)
    return total


def test_ece_and_brier_against_a_hand_computation():
    prob = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45], [0.2, 0.8], [1 / 3, 2 / 3]])
    y = np.array([0, 1, 1, 0, 0, 1])
    got = calibration_metrics(y, prob)
    conf = [max(r) for r in prob.tolist()]
    hit = [float(int(np.argmax(r)) == t) for r, t in zip(prob.tolist(), y.tolist())]
    assert got["ece"] == pytest.approx(_hand_ece(conf, hit), abs=1e-12)
    brier = (
        sum(sum((p - (k == t)) ** 2 for k, p in enumerate(r)) for r, t in zip(prob.tolist(), y.tolist())) / 6
    )
    assert got["brier"] == pytest.approx(brier, abs=1e-12)
    multi_p = np.array([[0.9, 0.2, 0.5], [0.1, 0.7, 0.6]])
    multi_y = np.array([[1, 0, 1], [0, 0, 1]])
    got = calibration_metrics(multi_y, multi_p, "multi_label")
    flat_p, flat_y = multi_p.ravel().tolist(), multi_y.ravel().astype(float).tolist()
    assert got["ece"] == pytest.approx(_hand_ece(flat_p, flat_y), abs=1e-12)
    assert got["brier"] == pytest.approx(sum((p - t) ** 2 for p, t in zip(flat_p, flat_y)) / 6, abs=1e-12)
    # a probability on a bin edge (2/15) falls in the lower bin, 0 in the first
    assert expected_calibration_error([2 / 15, 0.0], [1.0, 0.0]) == pytest.approx(
        _hand_ece([2 / 15, 0.0], [1.0, 0.0]), abs=1e-12
    )


def test_fitted_thresholds_maximise_each_labels_f1():
    rng = np.random.default_rng(1)
    prob = rng.random((80, 3))
    y = (rng.random((80, 3)) < 0.3 + 0.4 * prob).astype(int)
    y[:, 2] = 0  # a label without positives keeps no fitted threshold
    fitted = fit_label_thresholds(prob, y)
    assert fitted[2] is None
    for j in range(2):
        candidates = np.unique(np.concatenate([prob[:, j], [0.5, 1e-6]]))
        best = max(f1_score(y[:, j], prob[:, j] >= t, zero_division=0) for t in candidates)
        assert f1_score(y[:, j], prob[:, j] >= fitted[j], zero_division=0) == pytest.approx(best)
        assert 0 < fitted[j] < 1


# ----------------------------------------------------------------------------- the config
def test_the_config_keeps_temperatures_and_per_label_thresholds_in_task_order(tmp_path):
    tasks = {"topics": 3, "score": 1, "sentiment": 2}  # not alphabetical
    config = SurgeConfig(
        tasks=tasks,
        task_problem_types=TYPES,
        task_thresholds={"topics": [0.3, 0.5, 0.7]},
        task_temperatures={"sentiment": 0.8, "topics": 1.7},
    )
    assert list(config.task_temperatures) == ["topics", "sentiment"]  # task order, whatever the given order
    saved = config.to_dict()
    assert saved["task_temperatures"] == [["topics", 1.7], ["sentiment", 0.8]]
    assert saved["task_thresholds"] == [["topics", [0.3, 0.5, 0.7]]]
    config.save_pretrained(tmp_path)
    again = SurgeConfig.from_pretrained(tmp_path)
    assert again.task_temperatures == {"topics": 1.7, "sentiment": 0.8}
    assert again.threshold_of("topics") == [0.3, 0.5, 0.7]
    for bad, message in (
        ({"task_temperatures": {"score": 2.0}}, "not classification tasks"),
        ({"task_temperatures": {"sentiment": 0.0}}, "finite number > 0"),
        ({"task_temperatures": {"sentiment": float("inf")}}, "finite number > 0"),
        ({"task_thresholds": {"topics": [0.3, 0.5]}}, "3 numbers in"),
        ({"task_thresholds": {"topics": [0.3, 1.0, 0.5]}}, "3 numbers in"),
    ):
        with pytest.raises(ValueError, match=message):
            SurgeConfig(tasks=tasks, task_problem_types=TYPES, **bad)


# ----------------------------------------------------------------------------- every way of predicting uses them
TEMPERATURES = {"topics": 2.0, "sentiment": 0.5}
PER_LABEL = [0.3, 0.5, 0.7]


@pytest.fixture(scope="module")
def calibrated_run(mixed_run, tmp_path_factory) -> Path:  # noqa: F811
    """The mixed-type model of tests/serving/test_problem_types.py with temperatures and per-label thresholds set."""
    folder = tmp_path_factory.mktemp("calibrated") / "run"
    shutil.copytree(mixed_run, folder)
    config = json.loads((folder / "config.json").read_text())
    config["task_temperatures"] = [[t, v] for t, v in TEMPERATURES.items()]
    config["task_thresholds"] = [["topics", PER_LABEL]]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _hand(logits: np.ndarray, task: str, threshold=None) -> list[dict]:
    out = []
    names = LABELS[task]
    for row in np.asarray(logits, dtype=np.float64):
        if task == "topics":
            p = _sigmoid(row[:3] / TEMPERATURES[task])
            hit = [j for j in range(3) if p[j] >= (PER_LABEL[j] if threshold is None else threshold)]
            out.append({"label": hit, "label_name": [names[j] for j in hit], "scores": p})
        elif task == "sentiment":
            p = _softmax(row[:2] / TEMPERATURES[task])
            out.append({"label": int(p.argmax()), "label_name": names[int(p.argmax())], "scores": p})
        else:
            out.append({"label": None, "label_name": None, "scores": row[:1]})
    return out


def _check(records: list[dict], want: list[dict], atol: float = 1e-5) -> None:
    for rec, w in zip(records, want):
        assert (rec["label"], rec["label_name"]) == (w["label"], w["label_name"])
        np.testing.assert_allclose(list(rec["scores"].values()), w["scores"], atol=atol, rtol=0)


def test_predict_texts_the_pipeline_predict_and_the_onnx_runner_use_the_calibration(
    calibrated_run, tmp_path, capsys
):
    model, processor = load_run_model(calibrated_run)
    assert model.config.task_temperatures == TEMPERATURES
    with torch.no_grad():
        logits = {t: model(**processor(TEXTS, task=t, return_tensors="pt", padding=True)).logits.double().numpy()
                  for t in TYPES}  # fmt: skip
    for task in TYPES:
        _check(predict_texts(model, processor, TEXTS, tasks=task), _hand(logits[task], task))
    labels = [tuple(r["label"]) for r in predict_texts(model, processor, TEXTS, tasks="topics")]
    assert len(set(labels)) > 1  # the thresholds decide something here
    _check(
        predict_texts(model, processor, TEXTS, tasks="topics", threshold=0.45),
        _hand(logits["topics"], "topics", 0.45),
    )
    clf = SurgeTextClassificationPipeline(model=model, processor=processor, device=-1)
    for i, answer in enumerate(clf(TEXTS, task="sentiment", top_k=None)):
        want = _softmax(logits["sentiment"][i, :2] / 0.5)
        np.testing.assert_allclose([d["score"] for d in sorted(answer, key=lambda d: d["label"])],
                                   [want[LABELS["sentiment"].index(n)] for n in sorted(LABELS["sentiment"])], atol=1e-5)  # fmt: skip
    kept = clf(TEXTS, task="topics", threshold="model")
    for i, answer in enumerate(kept):
        p = _sigmoid(logits["topics"][i, :3] / 2.0)
        assert sorted(d["label"] for d in answer) == sorted(
            LABELS["topics"][j] for j in range(3) if p[j] >= PER_LABEL[j]
        )
    assert main(["export", str(calibrated_run), "--output", str(tmp_path / "onnx")]) == 0
    config = json.loads((tmp_path / "onnx" / "serving_config.json").read_text())
    assert [(t["name"], t["temperature"]) for t in config["tasks"]] == [
        ("topics", 2.0),
        ("score", None),
        ("sentiment", 0.5),
    ]
    assert config["tasks"][0]["threshold"] == PER_LABEL
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"text": t, "task": "topics"}) + "\n" for t in TEXTS)
    )
    capsys.readouterr()
    assert (
        main(["predict", str(tmp_path / "onnx"), "--input", str(tmp_path / "in.jsonl"), "--no-progress"]) == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    _check(lines, _hand(logits["topics"], "topics"), atol=1e-5)
    assert main(["predict", str(tmp_path / "onnx"), "--input", str(tmp_path / "in.jsonl"), "--no-progress",
                 "--threshold", "0.45"]) == 0  # fmt: skip
    _check(
        [json.loads(x) for x in capsys.readouterr().out.splitlines()],
        _hand(logits["topics"], "topics", 0.45),
        atol=1e-5,
    )


# ----------------------------------------------------------------------------- surgellm calibrate
def _write_mixed_data(root: Path, model, processor) -> dict:
    """A data folder for the mixed-type model whose labels follow its own calibrated-at-T scores (drawn, seeded)."""
    rng = np.random.default_rng(0)
    texts = [f"{t} {w}" for t in TEXTS for w in ("alpha", "beta gamma", "delta!", "eps 12")]
    for task in TYPES:
        with torch.no_grad():
            logits = (
                model(**processor(texts, task=task, return_tensors="pt", padding=True))
                .logits.double()
                .numpy()
            )
        rows = []
        for i, text in enumerate(texts):
            if task == "topics":
                label = (rng.random(3) < _sigmoid(logits[i, :3] / 3.0)).astype(int).tolist()
                label[i % 3] = i % 2  # every label has positive and negative rows
            elif task == "sentiment":
                label = int(rng.choice(2, p=_softmax(logits[i, :2] / 3.0)))
            else:
                label = float(logits[i, 0] + rng.normal())
            rows.append({"id": f"{task}-{i}", "text": text, "label": label})
        for split in ("train", "validation"):
            (root / task).mkdir(parents=True, exist_ok=True)
            (root / task / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"folder": str(root), "tasks": list(TYPES), "problem_types": dict(TYPES),
            "label_names": {"topics": LABELS["topics"], "sentiment": LABELS["sentiment"]}}  # fmt: skip


def test_calibrate_run_fits_stores_and_is_used_afterwards(mixed_run, tmp_path):  # noqa: F811
    folder = tmp_path / "run"
    shutil.copytree(mixed_run, folder)
    model, processor = load_run_model(folder)
    data = _write_mixed_data(tmp_path / "data", model, processor)
    section = calibrate_run(folder, data, "validation")
    assert list(section["temperatures"]) == ["topics", "sentiment"] and "score" not in section["temperatures"]
    saved = json.loads((folder / "config.json").read_text())
    assert [t for t, _ in saved["task_temperatures"]] == ["topics", "sentiment"]
    again, _ = load_run_model(folder)
    assert again.config.task_temperatures == pytest.approx(section["temperatures"])
    assert again.config.threshold_of("topics") == section["thresholds"]["topics"]
    # independent checks on the split: T minimises the NLL, each threshold maximises its label's F1
    rows = [
        json.loads(x) for x in (tmp_path / "data" / "topics" / "validation.jsonl").read_text().splitlines()
    ]
    with torch.no_grad():
        z = model(
            **processor([r["text"] for r in rows], task="topics", return_tensors="pt", padding=True)
        ).logits
    z, y = z[:, :3].double().numpy(), np.array([r["label"] for r in rows])
    t = section["temperatures"]["topics"]
    assert negative_log_likelihood(z, y, "multi_label", t) <= min(
        negative_log_likelihood(z, y, "multi_label", t * f) for f in (0.9, 1.1)
    )
    p = _sigmoid(z / t)
    for j, threshold in enumerate(section["thresholds"]["topics"]):
        best = max(f1_score(y[:, j], p[:, j] >= c, zero_division=0) for c in np.unique(p[:, j]))
        assert f1_score(y[:, j], p[:, j] >= threshold, zero_division=0) == pytest.approx(best)
    after = section["tasks"]["topics"]["validation"]["after"]
    assert after["nll"] <= section["tasks"]["topics"]["validation"]["before"]["nll"]
    record = predict_texts(again, processor, [rows[0]["text"]], tasks="topics")[0]
    np.testing.assert_allclose(list(record["scores"].values()), p[0], atol=1e-6)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_bert_with_tokenizer) -> Path:
    tmp = tmp_path_factory.mktemp("calibrate_run")
    assert main(["train", "--config", str(write_run_config(tmp, tiny_bert_with_tokenizer))]) == 0
    return tmp / "runs" / "IWN-seed0"


def test_a_trained_run_records_calibration_metrics_and_feature_contributions(trained_run):
    record = json.loads((trained_run / "metrics.json").read_text())
    for task in ("reviews", "register"):
        for split in ("validation", "test"):
            m = record["tasks"][task][split]
            assert 0 <= m["ece"] <= 1 and 0 <= m["brier"] <= 2
        ranked = record["feature_contributions"]["tasks"][task]
        assert len(ranked) == 16 and [r["mean_abs_contribution"] for r in ranked] == sorted(
            (r["mean_abs_contribution"] for r in ranked), reverse=True
        )
    report = (trained_run / "report.md").read_text()
    assert "## Features that drive the decisions (validation)" in report and "| ece | brier |" in report


def test_the_calibrate_command_updates_config_metrics_report_and_card(trained_run, tmp_path, capsys):
    from surgellm_hf.hub.model_card import SurgeModelCardData

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    model, processor = load_run_model(run)
    before = str(SurgeModelCardData.from_run(run, model, processor).to_model_card())
    assert "not calibrated probabilities" in before and "### Calibration" not in before
    assert "### Features that drive the decisions" in before
    capsys.readouterr()
    assert main(["calibrate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "reviews: temperature" in out and "register: temperature" in out
    record = json.loads((run / "metrics.json").read_text())
    section = record["calibration"]
    assert section["split"] == "validation" and set(section["tasks"]["reviews"]) == {"validation", "test"}
    for by_split in section["tasks"].values():
        for scores in by_split.values():
            assert set(scores["before"]) == set(scores["after"]) == {"ece", "brier", "nll"}
        assert by_split["validation"]["after"]["nll"] <= by_split["validation"]["before"]["nll"] + 1e-12
    config = json.loads((run / "config.json").read_text())
    assert [t for t, _ in config["task_temperatures"]] == ["reviews", "register"]
    report = (run / "report.md").read_text()
    assert "## Calibration (fitted on validation)" in report
    model, processor = load_run_model(run)
    card = str(SurgeModelCardData.from_run(run, model, processor).to_model_card())
    assert "### Calibration" in card and "not calibrated probabilities" not in card
    assert "temperature-scaled" in card
    with pytest.raises(SystemExit):
        main(["calibrate"])
    assert main(["calibrate", str(run), "--split", "nosuch"]) == 2
    assert "no task of the run's data has a 'nosuch' split" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text()) == config  # a refused call changes nothing


def test_calibrate_refuses_an_export_and_a_model_without_classification_tasks(
    trained_run, tiny_bert_with_tokenizer, tmp_path, capsys
):
    assert main(["export", str(trained_run), "--output", str(tmp_path / "onnx")]) == 0
    capsys.readouterr()
    assert main(["calibrate", str(tmp_path / "onnx")]) == 2
    assert "ONNX export" in capsys.readouterr().err
    _, processor = load_run_model(trained_run)
    regression = SurgeForSequenceClassification.from_encoder_pretrained(
        tiny_bert_with_tokenizer,
        tasks={"reviews": 1, "register": 1},
        task_problem_types={"reviews": "regression", "register": "regression"},
        norm="none",
    )
    with pytest.raises(ValueError, match="no classification task to calibrate"):
        calibrate_run(tmp_path / "nowhere", {"folder": "unused"}, loaded=(regression, processor))
