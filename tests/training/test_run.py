"""End to end on a tiny encoder: `surgellm train/evaluate/predict/compare`, resume, DDP, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from surgellm_hf.cli import main
from surgellm_hf.training import load_run_config, train_run
from tests._helpers import QUICKSTART_DATA, interrupt_at_step, torchrun_two_cpu, write_run_config

MAX_ROWS = {"train": 48, "validation": 24, "test": 24}


def _write_config(tmp_path: Path, encoder: Path, name: str = "run.yaml", **overrides) -> Path:
    data = {
        "max_rows": MAX_ROWS,
        "label_names": {"reviews": ["negative", "positive"], "register": ["casual", "formal"]},
    }
    return write_run_config(tmp_path, encoder, name, data=data, **{"epochs": 2, "seed": 0, **overrides})


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, tiny_bert_with_tokenizer):
    """Two variants x one seed plus a second IWN seed, trained through the CLI."""
    tmp = tmp_path_factory.mktemp("e2e")
    config = _write_config(tmp, tiny_bert_with_tokenizer)
    assert main(["train", "--config", str(config), "--seeds", "0", "1"]) == 0
    assert main(["train", "--config", str(config), "variant=baseline"]) == 0
    runs = {key: tmp / "runs" / f"{key[0]}-seed{key[1]}" for key in (("IWN", 0), ("IWN", 1), ("baseline", 0))}
    return tmp, config, runs


def test_train_writes_a_complete_run_folder(trained_runs):
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor
    from surgellm_hf.evaluation import load_run

    _, _, runs = trained_runs
    run = runs[("IWN", 0)]
    for name in (
        "config.json",
        "model.safetensors",
        "lexicon.json",
        "metrics.json",
        "report.md",
        "task_f1_by_variant.png",
        "gate_distribution.png",
    ):
        assert (run / name).is_file(), name
    record = load_run(run)
    assert record.variant == "IWN" and list(record.tasks) == ["reviews", "register"]
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["task_order"] == ["reviews", "register"] == list(saved["data"])
    assert json.loads((run / "run_config.json").read_text())["task_order"] == ["reviews", "register"]
    if not torch.cuda.is_available():
        assert saved["training"]["precision"] == "fp32"  # mixed_precision: auto stays fp32 on CPU
    assert set(record.tasks["reviews"]) == {"validation", "test"}
    assert record.extra["training"]["effective_batch_size"] == 16
    model = SurgeForSequenceClassification.from_pretrained(run)
    processor = SurgeProcessor.from_pretrained(run)
    assert model.feature_normalizer_fitted and model.config.norm == "iwn"
    assert list(model.config.task_names) == ["reviews", "register"]
    assert model.config.label_names("register") == ["casual", "formal"]
    # the saved test predictions are what the saved model predicts
    rows = [
        json.loads(line) for line in (run / "predictions" / "reviews_test.jsonl").read_text().splitlines()
    ]
    texts = {
        json.loads(line)["id"]: json.loads(line)["text"]
        for line in (QUICKSTART_DATA / "reviews" / "test.jsonl").read_text().splitlines()
    }
    batch = processor([texts[r["id"]] for r in rows[:8]], task="reviews", return_tensors="pt", padding=True)
    with torch.no_grad():
        pred = model.eval()(**dict(batch)).logits[:, :2].argmax(-1).tolist()
    assert pred == [r["y_pred"] for r in rows[:8]]
    # the report's per-task table carries the metrics.json values
    report = (run / "report.md").read_text()
    assert f"{record.tasks['reviews']['test']['macro_f1']:.4f}" in report
    baseline = load_run(runs[("baseline", 0)])
    assert baseline.extra["variant_switches"]["use_gate"] is False
    assert baseline.predictions["reviews"]["test"]["gate"] is None  # no gate, no gate values
    gates = record.predictions["reviews"]["test"]["gate"]
    assert gates is not None and len(gates) == record.tasks["reviews"]["test"]["n"]
    assert ((gates > 0) & (gates < 1)).all()  # per-example mean of sigmoid outputs


def test_evaluate_and_predict_commands(trained_runs, capsys, tmp_path):
    _, _, runs = trained_runs
    run = runs[("IWN", 0)]
    assert main(["evaluate", str(run), "--split", "test", "--output", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    saved = json.loads((run / "metrics.json").read_text())
    for task in ("reviews", "register"):
        assert result["tasks"][task]["macro_f1"] == pytest.approx(saved["tasks"][task]["test"]["macro_f1"])
    # a held-back test folder: only <task>/test.jsonl, no train or validation files
    import shutil

    for task in ("reviews", "register"):
        (tmp_path / "heldout" / task).mkdir(parents=True)
        shutil.copy(QUICKSTART_DATA / task / "test.jsonl", tmp_path / "heldout" / task / "test.jsonl")
    assert (
        main(
            ["evaluate", str(run), "--data", str(tmp_path / "heldout"), "--output", str(tmp_path / "h.json")]
        )
        == 0
    )
    held = json.loads((tmp_path / "h.json").read_text())
    assert (
        held["tasks"]["reviews"]["n"] == 100
    )  # every test row (the run itself was scored on a 24-row sample)
    capsys.readouterr()
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        json.dumps({"text": "the film is superb", "task": "reviews"})
        + "\n"
        + json.dumps({"text": "maybe i think so"})
        + "\n"
    )
    assert main(["predict", str(run), "--input", str(inp), "--task", "register"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["task"] for x in lines] == ["reviews", "register"]
    assert lines[0]["label_name"] in ("negative", "positive") and lines[1]["label_name"] in (
        "casual",
        "formal",
    )
    assert sum(lines[0]["scores"].values()) == pytest.approx(1.0)


def test_compare_command(trained_runs, tmp_path, capsys):
    _, _, runs = trained_runs
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            *map(str, runs.values()),
            "--baseline",
            "baseline",
            "--output",
            str(out),
            "--n-resamples",
            "200",
        ]
    )
    assert code == 0
    report = (out / "report.md").read_text()
    assert "IWN" in report and "baseline" in report and (out / "task_f1_by_variant.png").is_file()
    table = capsys.readouterr().out
    assert "| IWN | 2 |" in table  # two seeds aggregated


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--config", "/nonexistent.yaml"], "run config not found"),
        (["evaluate", "/nonexistent-run"], "no saved model"),
        (["compare", "/nonexistent-run"], "no metrics.json"),
        (["train", "--config", "{cfg}", "variant=Q"], "Unknown variant 'Q'"),
        (["train", "--config", "{cfg}", "encoder=/nonexistent-encoder"], "encoder folder not found"),
        (["train", "--config", "{cfg}", "data.folder=/nonexistent-data"], "data folder not found"),
        (
            ["train", "--config", "{cfg}", "data.tasks=[reviews, nope]", "data.label_names=null"],
            "task folder not found",
        ),
    ],
)
def test_cli_errors_are_one_line_without_traceback(argv, message, tmp_path, tiny_bert_with_tokenizer):
    cfg = _write_config(tmp_path, tiny_bert_with_tokenizer)
    argv = [a.replace("{cfg}", str(cfg)) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-m", "surgellm_hf.cli", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, tiny_bert_with_tokenizer, monkeypatch):
    config = _write_config(tmp_path, tiny_bert_with_tokenizer, epochs=3, variant="IWN")
    reference = train_run(load_run_config(config, [f"output_dir={tmp_path / 'ref'}"]))
    interrupt_at_step(monkeypatch, 8)  # in epoch 2 (6 steps per epoch), after the epoch-1 checkpoint
    cfg = load_run_config(config, [f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg)
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and not (tmp_path / "run" / "metrics.json").exists()
    monkeypatch.undo()
    resumed = train_run(cfg)
    _assert_same_run(resumed, reference)
    ref = json.loads((reference / "metrics.json").read_text())
    got = json.loads((resumed / "metrics.json").read_text())
    for task in ref["tasks"]:
        assert got["tasks"][task]["test"]["macro_f1"] == pytest.approx(ref["tasks"][task]["test"]["macro_f1"])


def test_ddp_two_cpu_processes(tmp_path, tiny_bert_with_tokenizer):
    config = _write_config(tmp_path, tiny_bert_with_tokenizer, epochs=1)
    proc = torchrun_two_cpu(
        ["-m", "surgellm_hf.cli", "train", "--config", str(config)], tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "IWN-seed0"
    record = json.loads((run / "metrics.json").read_text())
    assert record["training"]["world_size"] == 2
    assert record["training"]["effective_batch_size"] == 16  # 8 per device x 2 processes
    # 48 train rows per task, batches of 8 per process, task-homogeneous: 12 batches / 2 processes = 6 steps
    assert record["training"]["global_steps"] == 6
    assert proc.stdout.count("Run finished") == 1


def test_extract_lexicon_command(tmp_path, tiny_bert_with_tokenizer, capsys):
    from surgellm_hf import Lexicon

    out = tmp_path / "lex.json"
    code = main(
        [
            "extract-lexicon",
            "--data",
            str(QUICKSTART_DATA),
            "--output",
            str(out),
            "--encoder",
            str(tiny_bert_with_tokenizer),
            "--k",
            "4",
            "--top-n",
            "10",
        ]
    )
    assert code == 0 and "Wrote 4 groups" in capsys.readouterr().out
    lexicon = Lexicon.from_json(out)
    entries = {e for group in lexicon.groups.values() for e in group}
    assert lexicon.n_groups == 4 and lexicon.num_features == 10
    # the generator's class words are what log-odds must surface (examples/make_quickstart_data.py)
    planted = {"great", "excellent", "terrible", "awful", "moreover", "furthermore", "think", "maybe"}
    assert len(entries & planted) >= 4, entries


def test_python_api_example_runs(tmp_path, tiny_bert_with_tokenizer):
    """examples/train_with_trainer.py (the documented Python route) trains and saves a loadable model."""
    import importlib.util

    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor

    path = Path(__file__).resolve().parents[2] / "examples" / "train_with_trainer.py"
    spec = importlib.util.spec_from_file_location("train_with_trainer", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = example.main(
        [
            "--encoder",
            str(tiny_bert_with_tokenizer),
            "--out",
            str(tmp_path / "out"),
            "--epochs",
            "1",
            "--max-rows",
            "24",
        ]
    )
    model = SurgeForSequenceClassification.from_pretrained(out).eval()
    processor = SurgeProcessor.from_pretrained(out)
    batch = processor(["the plot is superb"], task="reviews", return_tensors="pt")
    assert model(**dict(batch)).logits.shape == (1, 2) and model.feature_normalizer_fitted


# ------------------------------------------------------------------ precision, run folders, resume, early stopping


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU route of mixed precision")
def test_bf16_on_cpu_trains_under_cpu_autocast(tmp_path, tiny_bert_with_tokenizer, monkeypatch):
    """`surgellm train` with mixed_precision: bf16 on CPU: every training forward runs under bf16 autocast."""
    from safetensors.torch import load_file

    import surgellm_hf.training.run as training_run

    seen: list[tuple[bool, bool, torch.dtype]] = []

    class Watched(training_run.SurgeTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            first_linear = next(m for m in self.model.modules() if isinstance(m, torch.nn.Linear))
            first_linear.register_forward_hook(
                lambda mod, inp, out: seen.append((mod.training, torch.is_autocast_enabled("cpu"), out.dtype))
            )

    monkeypatch.setattr(training_run, "SurgeTrainer", Watched)
    config = _write_config(tmp_path, tiny_bert_with_tokenizer, epochs=1)
    assert main(["train", "--config", str(config), "mixed_precision=bf16"]) == 0
    train_calls = [s for s in seen if s[0]]
    assert train_calls and all(s[1:] == (True, torch.bfloat16) for s in train_calls)
    run = tmp_path / "runs" / "IWN-seed0"
    record = json.loads((run / "metrics.json").read_text())
    assert record["training"]["precision"] == "bf16"
    assert json.loads((run / "run_config.json").read_text())["precision"] == "bf16"
    assert all(0 <= record["tasks"][t]["test"]["macro_f1"] <= 1 for t in record["task_order"])
    weights = load_file(run / "model.safetensors").values()
    assert {t.dtype for t in weights if t.is_floating_point()} == {torch.float32}  # fp32 master weights


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is refused only without a GPU")
def test_fp16_on_cpu_is_a_clear_error(tmp_path, tiny_bert_with_tokenizer, capsys):
    config = _write_config(tmp_path, tiny_bert_with_tokenizer)
    assert main(["train", "--config", str(config), "mixed_precision=fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fp16 needs a CUDA GPU" in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_run_folder_of_another_configuration_is_refused_until_overwrite(
    tmp_path, tiny_bert_with_tokenizer, capsys
):
    from surgellm_hf import Lexicon

    config = _write_config(tmp_path, tiny_bert_with_tokenizer, epochs=1, output_dir=str(tmp_path / "run"))
    assert main(["train", "--config", str(config)]) == 0
    run = tmp_path / "run"
    files = ("metrics.json", "model.safetensors", "run_config.json", "lexicon.json")
    before = {name: (run / name).read_bytes() for name in files}
    capsys.readouterr()
    # curated run there, random requested: refused before anything is loaded, trained or written
    assert main(["train", "--config", str(config), "lexicon=random"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'lexicon: saved "curated", requested "random"' in err[0]
    assert "--overwrite" in err[0] and "Traceback" not in err[0]
    assert {name: (run / name).read_bytes() for name in files} == before
    # the same configuration again: the finished run is kept as it is
    assert main(["train", "--config", str(config), "disable_tqdm=false"]) == 0
    assert "Run already finished" in capsys.readouterr().out
    assert {name: (run / name).read_bytes() for name in files} == before
    # starting fresh is explicit
    assert main(["train", "--config", str(config), "lexicon=random", "--overwrite"]) == 0
    record = json.loads((run / "metrics.json").read_text())
    expected = Lexicon.random_like(Lexicon.curated(), seed=0).content_hash()
    assert record["lexicon"]["choice"] == "random" and record["lexicon"]["sha256"] == expected
    assert json.loads((run / "run_config.json").read_text())["lexicon_sha256"] == expected
    assert Lexicon.from_json(run / "lexicon.json").content_hash() == expected  # the weights' own lexicon
    assert record["training"]["resumed_from"] is None
    assert (run / "model.safetensors").read_bytes() != before["model.safetensors"]


def test_a_sweep_checks_every_run_folder_before_training(tmp_path, tiny_bert_with_tokenizer, capsys):
    config = _write_config(tmp_path, tiny_bert_with_tokenizer, epochs=1)
    (tmp_path / "runs" / "IWN-seed1" / "checkpoints" / "checkpoint-3").mkdir(
        parents=True
    )  # no run_config.json
    assert main(["train", "--config", str(config), "--seeds", "0", "1"]) == 2
    assert "IWN-seed1 holds checkpoints/ but no run_config.json" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "IWN-seed0").exists()  # seed 0 did not train first
    shared = str(tmp_path / "one-folder")
    assert main(["train", "--config", str(config), f"output_dir={shared}", "--seeds", "0", "1"]) == 2
    assert "would share the run folder" in capsys.readouterr().err


def test_training_seeds_share_one_lexicon(tmp_path, tiny_bert_with_tokenizer):
    """Random (and extracted) lexicons follow lexicon_seed, not the training seed; metrics.json records the hash."""
    from surgellm_hf import Lexicon

    config = _write_config(tmp_path, tiny_bert_with_tokenizer, epochs=1, lexicon="random")
    small = ["data.max_rows.train=16", "data.max_rows.validation=8", "data.max_rows.test=8"]
    assert main(["train", "--config", str(config), *small, "--seeds", "0", "1"]) == 0
    other = f"output_dir={tmp_path / 'lexseed1'}"
    assert main(["train", "--config", str(config), *small, "seed=1", "lexicon_seed=1", other]) == 0
    runs = [tmp_path / "runs" / "IWN-seed0", tmp_path / "runs" / "IWN-seed1", tmp_path / "lexseed1"]
    lex = [json.loads((r / "metrics.json").read_text())["lexicon"] for r in runs]
    curated = Lexicon.curated()
    assert lex[0]["sha256"] == lex[1]["sha256"] == Lexicon.random_like(curated, seed=0).content_hash()
    assert lex[2]["sha256"] == Lexicon.random_like(curated, seed=1).content_hash() != lex[0]["sha256"]
    assert [entry["seed"] for entry in lex] == [0, 0, 1]
    # the data sample is the training seed's neither: both seeds saw the same rows
    ids = [[json.loads(x)["id"] for x in (r / "predictions" / "reviews_test.jsonl").open()] for r in runs]
    assert ids[0] == ids[1] == ids[2]


STOP = {"epochs": 6, "learning_rate": 1e-3, "variant": "IWN", "patience": 2, "keep_checkpoints": True}


@pytest.fixture(scope="module")
def stopping_reference(tmp_path_factory, tiny_bert_with_tokenizer):
    """An uninterrupted run that stops early, with the count above zero at the checkpoint before the stop."""
    from tests._early_stopping_reference import EarlyStopper

    tmp = tmp_path_factory.mktemp("stopping")
    config = _write_config(tmp, tiny_bert_with_tokenizer, **STOP)
    ref_dir = train_run(load_run_config(config, [f"output_dir={tmp / 'ref'}"]))
    ref = json.loads((ref_dir / "metrics.json").read_text())
    stopper, stop_epoch = EarlyStopper(STOP["patience"]), None
    for epoch, h in enumerate(ref["validation_history"], 1):
        if stopper.update(h["avg_macro_f1"]):
            stop_epoch = epoch
            break
    best_epoch = stopper.best_step + 1
    assert stop_epoch is not None and stop_epoch < STOP["epochs"], ref["validation_history"]
    assert stop_epoch - 1 > best_epoch, "the scenario needs a non-improving epoch before the interruption"
    steps = ref["training"]["global_steps"] // stop_epoch
    return config, ref_dir, ref, stop_epoch, best_epoch, steps


def _assert_same_run(got_dir: Path, ref_dir: Path) -> None:
    from safetensors.torch import load_file

    got = json.loads((got_dir / "metrics.json").read_text())
    ref = json.loads((ref_dir / "metrics.json").read_text())
    for key in ("global_steps", "epochs_run", "best_epoch"):
        assert got["training"][key] == ref["training"][key], key
    assert [h["epoch"] for h in got["validation_history"]] == [h["epoch"] for h in ref["validation_history"]]
    a, b = load_file(ref_dir / "model.safetensors"), load_file(got_dir / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)


def test_resume_restores_the_early_stopping_count(stopping_reference, tmp_path, monkeypatch):
    """Interrupted after a non-improving epoch, resumed: it stops at the same epoch with the same weights."""
    from surgellm_hf.training import patience_counter_from_history

    config, ref_dir, _, stop_epoch, best_epoch, steps = stopping_reference
    interrupt_at_step(monkeypatch, (stop_epoch - 1) * steps)  # in the epoch that brings the stop
    cfg = load_run_config(config, [f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg)
    last = tmp_path / "run" / "checkpoints" / f"checkpoint-{(stop_epoch - 1) * steps}"
    state = json.loads((last / "trainer_state.json").read_text())
    assert patience_counter_from_history(state["log_history"]) == stop_epoch - 1 - best_epoch >= 1
    monkeypatch.undo()
    resumed = train_run(cfg)
    assert json.loads((resumed / "metrics.json").read_text())["training"]["resumed_from"] == str(last)
    _assert_same_run(resumed, ref_dir)


def test_resume_after_the_stop_trains_no_further(stopping_reference, tmp_path, monkeypatch):
    """Stopped early, then killed before writing metrics.json: resuming restores the best weights, no more steps."""
    import surgellm_hf.training.run as training_run

    config, ref_dir, _, stop_epoch, _, steps = stopping_reference

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training_run, "predict_split", killed)
    cfg = load_run_config(config, [f"output_dir={tmp_path / 'run'}"])
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg)
    assert (tmp_path / "run" / "checkpoints" / f"checkpoint-{stop_epoch * steps}").is_dir()
    assert not (tmp_path / "run" / "metrics.json").exists()
    monkeypatch.undo()
    _assert_same_run(train_run(cfg), ref_dir)


def test_without_checkpoints_it_still_stops_early_and_restores_the_best(stopping_reference, tmp_path):
    from safetensors.torch import load_file

    config, ref_dir, ref, stop_epoch, best_epoch, steps = stopping_reference
    run = train_run(load_run_config(config, [f"output_dir={tmp_path / 'run'}", "save_checkpoints=false"]))
    assert not (run / "checkpoints").exists()
    _assert_same_run(run, ref_dir)
    assert json.loads((run / "metrics.json").read_text())["training"]["best_epoch"] == best_epoch
    # and those are the best epoch's weights, not the last epoch's
    last = load_file(ref_dir / "checkpoints" / f"checkpoint-{stop_epoch * steps}" / "model.safetensors")
    best = load_file(ref_dir / "checkpoints" / f"checkpoint-{best_epoch * steps}" / "model.safetensors")
    got = load_file(run / "model.safetensors")
    assert any(not torch.equal(got[k], last[k]) for k in got)
    for key in got:
        torch.testing.assert_close(got[key], best[key], rtol=1e-4, atol=1e-5)
