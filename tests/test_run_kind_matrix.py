"""Every kind of saved model through every command: {full fine-tune, frozen encoder with cached states, LoRA run,
`save_adapter` folder} x {predict, evaluate, calibrate, export + ONNX predict, push then load in a fresh process,
resume}.

Each run kind trains once (module fixtures, a tiny BERT with the real MiniLM tokenizer, two short epochs so that an
interrupted run can resume from the epoch-1 checkpoint). Predictions are checked against logits computed by a
route independent of the loader under test (`from_pretrained`, the unmerged PEFT model, `from_adapter`).

Refused by design, each with one line: resuming a `save_adapter` folder (a model, not a run: no checkpoints, no
run configuration; `surgellm train` into it is refused and leaves it untouched); an ONNX export given to evaluate,
export or push (it serves predictions only); a `save_adapter` folder without its processor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from surgellm_hf.cli import main
from tests._helpers import QUICKSTART_DATA, interrupt_at_step, write_run_config
from tests._task_mix_utils import read_jsonl, softmax

SRC_DIR = Path(__file__).resolve().parents[1] / "src"

KINDS = ["full", "frozen", "lora", "adapter"]
TRAINED = ["full", "frozen", "lora"]
SETTINGS = {
    "full": {},
    # a frozen encoder cannot take new prefix-token rows: the text prefix (max_length >= 86)
    "frozen": {
        "freeze_encoder": True,
        "cache_encoder_outputs": True,
        "prefix_style": "text",
        "max_length": 96,
    },
    "lora": {"lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
}
ROWS = 16  # training rows per task: 2 steps per epoch at batch size 16
# texts of both tasks from the quickstart test split, rows in mixed task order
ROW_TASKS = ["reviews", "register"] * 4
TEXTS = [
    r["text"]
    for pair in zip(*(read_jsonl(QUICKSTART_DATA / t / "test.jsonl")[:4] for t in ("reviews", "register")))
    for r in pair
]


def _config(tmp: Path, encoder: Path, kind: str) -> Path:
    return write_run_config(
        tmp,
        encoder,
        name=f"{kind}.yaml",
        data={"max_rows": {"train": ROWS, "validation": 8, "test": 8}},
        epochs=2,
        learning_rate=5e-3,
        output_dir=str(tmp / "runs" / kind),
        **SETTINGS[kind],
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_bert_with_tokenizer) -> dict[str, Path]:
    """kind -> model folder: three runs trained through `surgellm train`, and the frozen run's model saved with
    `save_adapter` beside its processor (what an adapter-only download holds)."""
    from surgellm_hf.inference import load_run_model

    tmp = tmp_path_factory.mktemp("kinds")
    folders = {}
    for kind in TRAINED:
        assert main(["train", "--config", str(_config(tmp, tiny_bert_with_tokenizer, kind))]) == 0
        folders[kind] = tmp / "runs" / kind
    model, processor = load_run_model(folders["frozen"])
    model.freeze_encoder()  # loaded weights are trainable; the encoder was frozen in training
    folders["adapter"] = tmp / "adapter"
    model.save_adapter(folders["adapter"])
    processor.save_pretrained(folders["adapter"])
    return folders


@pytest.fixture(scope="module")
def input_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("input") / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t, "task": k}) + "\n" for t, k in zip(TEXTS, ROW_TASKS)))
    return path


def _independent_model(kind: str, folder: Path):
    """The model of a folder loaded without `load_run_model`, each kind by its own documented route."""
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor
    from surgellm_hf.lora import load_lora_model

    if kind == "lora":
        model = load_lora_model(folder, merge=False)  # the PEFT model itself, adapter not merged
    elif kind == "adapter":
        model = SurgeForSequenceClassification.from_adapter(folder)
    else:
        model = SurgeForSequenceClassification.from_pretrained(folder)
    return model.eval(), SurgeProcessor.from_pretrained(folder)


@pytest.fixture(scope="module")
def expected(models) -> dict[str, np.ndarray]:
    """kind -> each text's probabilities over its task's labels, from independently loaded models."""
    out = {}
    for kind, folder in models.items():
        model, processor = _independent_model(kind, folder)
        with torch.no_grad():
            inputs = processor(TEXTS, task=ROW_TASKS, return_tensors="pt", padding=True)
            logits = model(**dict(inputs)).logits.float().numpy()
        n = [model.config.tasks[t] for t in ROW_TASKS]
        out[kind] = [softmax(row[:k]) for row, k in zip(logits, n)]
    return out


def _predict(folder: Path, input_file: Path, out: Path) -> list[dict]:
    assert (
        main(["predict", str(folder), "--input", str(input_file), "--output", str(out), "--no-progress"]) == 0
    )
    return read_jsonl(out)


def _assert_records(records: list[dict], probs: list[np.ndarray], atol: float) -> None:
    assert [r["task"] for r in records] == ROW_TASKS and [r["text"] for r in records] == TEXTS
    for record, p in zip(records, probs):
        np.testing.assert_allclose(list(record["scores"].values()), p, rtol=0, atol=atol)
        assert record["label"] == int(np.argmax(p))


def test_the_kinds_are_what_they_claim(models, expected):
    files = {kind: {p.name for p in folder.iterdir()} for kind, folder in models.items()}
    assert {"model.safetensors", "processor_config.json"} <= files["full"] & files["frozen"]
    assert {"adapter_model.safetensors", "adapter_config.json"} <= files["lora"]
    assert "model.safetensors" not in files["lora"] | files["adapter"]
    assert {"surge_adapter.safetensors", "surge_adapter_config.json", "processor_config.json"} <= files[
        "adapter"
    ]
    training = {k: json.loads((models[k] / "metrics.json").read_text())["training"] for k in TRAINED}
    assert training["frozen"]["cached_encoder_outputs"] and "lora" in training["lora"]
    # the checks below have teeth: texts (and kinds) really get different probabilities
    assert np.ptp([p[0] for p in expected["full"]]) > 1e-3
    assert not np.allclose(expected["full"][0], expected["lora"][0], atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_predict(kind, models, expected, input_file, tmp_path):
    from surgellm_hf.inference import load_run_model, predict_texts
    from surgellm_hf.pipeline_surge import SurgeTextClassificationPipeline

    _assert_records(_predict(models[kind], input_file, tmp_path / "out.jsonl"), expected[kind], atol=1e-5)
    model, processor = load_run_model(models[kind])
    _assert_records(
        [{"text": t, **r} for t, r in zip(TEXTS, predict_texts(model, processor, TEXTS, ROW_TASKS))],
        expected[kind],
        atol=1e-5,
    )
    # the pipeline, given the loaded model and processor, scores as the records do
    clf = SurgeTextClassificationPipeline(model=model, processor=processor, device=-1)
    for i, (text, task) in enumerate(zip(TEXTS, ROW_TASKS)):
        answer = {d["label"]: d["score"] for d in clf(text, task=task, top_k=None)}
        names = model.config.label_names(task)
        np.testing.assert_allclose([answer[n] for n in names], expected[kind][i], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate(kind, models, tmp_path):
    out = tmp_path / "metrics.json"
    if kind == "adapter":  # no metrics.json: score given data; the frozen run it came from must agree
        data = ["--data", str(QUICKSTART_DATA)]
        assert main(["evaluate", str(models["adapter"]), *data, "--output", str(out)]) == 0
        assert main(["evaluate", str(models["frozen"]), *data, "--output", str(tmp_path / "ref.json")]) == 0
        got, want = json.loads(out.read_text()), json.loads((tmp_path / "ref.json").read_text())
        assert got["tasks"]["reviews"]["n"] == 100 and list(got["tasks"]) == ["reviews", "register"]
        for task, values in want["tasks"].items():
            assert got["tasks"][task] == pytest.approx(values), task
        return
    assert main(["evaluate", str(models[kind]), "--split", "test", "--output", str(out)]) == 0
    got = json.loads(out.read_text())["tasks"]
    saved = json.loads((models[kind] / "metrics.json").read_text())["tasks"]
    for task in ("reviews", "register"):
        assert got[task]["n"] == 8
        for key in ("macro_f1", "accuracy", "roc_auc"):
            assert got[task][key] == pytest.approx(saved[task]["test"][key]), (task, key)


@pytest.mark.parametrize("kind", KINDS)
def test_calibrate(kind, models, expected, input_file, tmp_path):
    """`surgellm calibrate` stores the temperatures in each kind's own config file (config.json, a LoRA run's
    config.json, an adapter's surge_adapter_config.json); `surgellm predict` then scores softmax(logits / T), i.e.
    the uncalibrated probabilities raised to 1/T and renormalized."""
    import shutil

    folder = tmp_path / kind
    shutil.copytree(models[kind], folder)
    data = ["--data", str(QUICKSTART_DATA)] if kind == "adapter" else []  # no metrics.json: name the data
    assert main(["calibrate", str(folder), *data]) == 0
    name = "surge_adapter_config.json" if kind == "adapter" else "config.json"
    saved = json.loads((folder / name).read_text())
    saved = saved["surge_config"] if kind == "adapter" else saved
    temperatures = dict(saved["task_temperatures"])
    assert list(temperatures) == ["reviews", "register"] and all(t > 0 for t in temperatures.values())
    calibrated = []
    for p, task in zip(expected[kind], ROW_TASKS):
        q = np.asarray(p, dtype=np.float64) ** (1.0 / temperatures[task])
        calibrated.append(q / q.sum())
    _assert_records(_predict(folder, input_file, tmp_path / "out.jsonl"), calibrated, atol=1e-5)
    if kind == "adapter":  # a model folder without run records gets none
        assert not (folder / "metrics.json").exists()
    else:
        assert "calibration" in json.loads((folder / "metrics.json").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_export_and_onnx_predict(kind, models, expected, input_file, tmp_path):
    import onnx

    onnx_dir = tmp_path / "onnx"
    assert main(["export", str(models[kind]), "--output", str(onnx_dir)]) == 0
    config = json.loads((onnx_dir / "serving_config.json").read_text())
    graph = onnx.load(str(onnx_dir / "model.onnx"), load_external_data=False)
    assert config["opset"] == 18 and [o.version for o in graph.opset_import if o.domain == ""] == [18]
    _assert_records(_predict(onnx_dir, input_file, tmp_path / "out.jsonl"), expected[kind], atol=1e-4)


def test_push_then_load_in_a_fresh_process(models, expected, module_hub_server):
    """Full and LoRA runs pushed whole (LoRA merged) and adapter-only; each repo loaded with `load_run_model` in
    a fresh process with an empty Hub cache gives the local predictions."""
    repos = {
        "full": (models["full"], []),
        "frozen": (models["frozen"], ["--adapter-only"]),
        "lora": (models["lora"], ["--adapter-only"]),
        "lora-merged": (models["lora"], []),
        "adapter": (models["adapter"], ["--adapter-only"]),
    }
    pushes = [[str(folder), f"tester/{name}", *flags] for name, (folder, flags) in repos.items()]
    module_hub_server.run_python(
        f"from surgellm_hf.cli import main\nfor args in {pushes!r}:\n    assert main(['push', *args]) == 0",
        surgellm=True,
    )
    hub = module_hub_server.hub
    assert {"adapter_model.safetensors", "adapter_config.json"} <= set(hub.files("tester/lora"))
    assert "model.safetensors" in hub.files("tester/lora-merged")
    for name in ("frozen", "adapter"):
        files = set(hub.files(f"tester/{name}"))
        assert "surge_adapter.safetensors" in files and "model.safetensors" not in files, name
    assert ("surgellm_run.json" in hub.files("tester/frozen")) and (
        "surgellm_run.json" not in hub.files("tester/adapter")  # a save_adapter folder has no run record
    )
    got = module_hub_server.run_python(
        f"""
import surgellm_hf, sys
from surgellm_hf.inference import load_run_model, predict_texts
assert surgellm_hf.__file__.startswith({str(SRC_DIR)!r})
out = {{}}
for name in {list(repos)!r}:
    model, processor = load_run_model("tester/" + name)
    out[name] = [list(r["scores"].values()) for r in predict_texts(model, processor, {TEXTS!r}, {ROW_TASKS!r})]
result(out)
""",
        surgellm=True,
    )
    for name in repos:
        kind = "lora" if name == "lora-merged" else name
        for scores, probs in zip(got[name], expected[kind]):
            np.testing.assert_allclose(scores, probs, rtol=0, atol=1e-5, err_msg=name)


def _folder_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("kind", KINDS)
def test_resume(kind, models, tiny_bert_with_tokenizer, tmp_path, monkeypatch, capsys):
    from safetensors.torch import load_file

    from surgellm_hf.training import load_run_config, train_run

    if kind == "adapter":  # refused by design: a model folder is not a run to resume or train into
        config = _config(tmp_path, tiny_bert_with_tokenizer, "frozen")
        before = _folder_digest(models["adapter"])
        capsys.readouterr()
        assert main(["train", "--config", str(config), f"output_dir={models['adapter']}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "surge_adapter_config.json" in err[0] and "run_config.json" in err[0], err
        assert _folder_digest(models["adapter"]) == before
        return
    reference = models[kind]
    cfg = load_run_config(
        _config(tmp_path, tiny_bert_with_tokenizer, kind), [f"output_dir={tmp_path / 'run'}"]
    )
    interrupt_at_step(monkeypatch, 3)  # in epoch 2, after the epoch-1 checkpoint (2 steps per epoch)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg)
    assert [c.name for c in (tmp_path / "run" / "checkpoints").glob("checkpoint-*")] == ["checkpoint-2"]
    monkeypatch.undo()
    resumed = train_run(cfg)
    record = json.loads((resumed / "metrics.json").read_text())
    assert record["training"]["resumed_from"].endswith("checkpoint-2")
    weights = "adapter_model.safetensors" if kind == "lora" else "model.safetensors"
    a, b = load_file(reference / weights), load_file(resumed / weights)
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=key)
    saved = json.loads((reference / "metrics.json").read_text())["tasks"]
    for task in ("reviews", "register"):
        assert record["tasks"][task]["test"] == pytest.approx(saved[task]["test"], nan_ok=True), task


def test_refused_by_design_each_in_one_line(models, tmp_path, capsys):
    """An ONNX export is for predictions only; a `save_adapter` folder needs its processor beside it."""
    onnx_dir = tmp_path / "onnx"
    assert main(["export", str(models["full"]), "--output", str(onnx_dir)]) == 0
    bare = tmp_path / "bare_adapter"
    bare.mkdir()
    for name in ("surge_adapter.safetensors", "surge_adapter_config.json"):
        (bare / name).write_bytes((models["adapter"] / name).read_bytes())
    cases = [
        (["evaluate", str(onnx_dir)], "already an ONNX export"),
        (["export", str(onnx_dir), "--output", str(tmp_path / "again")], "already an ONNX export"),
        (["push", str(onnx_dir), "tester/refused"], "already an ONNX export"),
        (["calibrate", str(onnx_dir)], "already an ONNX export"),
        (["predict", str(bare), "--input", "-"], "no saved processor"),
        (["evaluate", str(bare), "--data", str(QUICKSTART_DATA)], "no saved processor"),
        (["export", str(bare), "--output", str(tmp_path / "again")], "no saved processor"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
    assert not (tmp_path / "again").exists()
