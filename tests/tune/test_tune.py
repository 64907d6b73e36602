"""`surgellm tune`: the search space (every key type, nested keys, refusals naming the key), pruning from the
per-epoch validation score (a pruned trial stops training early and is a finished run folder), a study interrupted
mid-trial that resumes from its SQLite storage with its trial numbers, and the outputs (best config YAML that
`surgellm train` reads, trials table, plots)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from surgellm_hf.cli import main
from surgellm_hf.training import RunConfig, load_run_config
from surgellm_hf.tune import apply_values, load_space, parse_space, run_study
from tests._helpers import write_run_config

SPACE = """
learning_rate: {type: float, low: 1e-5, high: 1.0e-3, log: true}
warmup_ratio: {type: float, low: 0.0, high: 0.2, step: 0.05}
weight_decay: {type: float, low: 0.0, high: 0.1}
epochs: {type: int, low: 2, high: 6, step: 2}
batch_size: {type: int, low: 8, high: 64, log: true}
lora.r: {type: int, low: 4, high: 16}
data.max_rows.train: {type: int, low: 100, high: 300, step: 100}
task_sampling: [proportional, equal, temperature]
temperature: [1, 2.5, 4]
freeze_encoder: {type: categorical, choices: [false, true]}
class_weights: [null, balanced]
class_weights.reviews: [balanced]
module_lr_scale: 10
patience: {type: fixed, value: 3}
"""


def test_the_search_space_parses_every_key_type_and_applies_nested_keys(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    space = load_space(path)
    dists = {p.key: p.distribution() for p in space.params}
    assert dists["learning_rate"] == FloatDistribution(
        1e-5, 1e-3, log=True
    )  # "1e-5": YAML 1.1 reads a string
    assert dists["warmup_ratio"] == FloatDistribution(0.0, 0.2, step=0.05)
    assert dists["weight_decay"] == FloatDistribution(0.0, 0.1)
    assert dists["epochs"] == IntDistribution(2, 6, step=2)
    assert dists["batch_size"] == IntDistribution(8, 64, log=True)
    assert dists["lora.r"] == IntDistribution(4, 16)
    assert dists["data.max_rows.train"] == IntDistribution(100, 300, step=100)
    assert dists["task_sampling"] == CategoricalDistribution(["proportional", "equal", "temperature"])
    assert dists["temperature"] == CategoricalDistribution([1, 2.5, 4])
    assert dists["freeze_encoder"] == CategoricalDistribution([False, True])
    assert dists["class_weights"] == CategoricalDistribution([None, "balanced"])
    assert dists["module_lr_scale"] is None and dists["patience"] is None  # fixed values
    assert [p.key for p in space.searched] == list(dists)[:-2]

    fixed = {
        "learning_rate": 3e-4, "warmup_ratio": 0.1, "weight_decay": 0.05, "epochs": 4, "batch_size": 16,
        "lora.r": 8, "data.max_rows.train": 200, "task_sampling": "temperature", "temperature": 2.5,
        "freeze_encoder": False, "class_weights": None, "class_weights.reviews": "balanced",
    }  # fmt: skip
    values = space.sample(optuna.trial.FixedTrial(fixed))
    assert values == {**fixed, "module_lr_scale": 10, "patience": 3}
    base = RunConfig(data={"folder": "data", "max_rows": {"test": 50}}, lexicon_seed=3)
    cfg = apply_values(base, values)
    assert (
        cfg.lora["r"] == 8 and cfg.lora["alpha"] == 16
    )  # a section made from a dotted key gets its defaults
    assert cfg.data["max_rows"] == {"test": 50, "train": 200}  # the section's other keys are kept
    assert cfg.class_weights == {"reviews": "balanced"}  # null, then a key inside it, in file order
    assert (cfg.learning_rate, cfg.epochs, cfg.module_lr_scale, cfg.patience) == (3e-4, 4, 10, 3)
    assert (cfg.task_sampling, cfg.temperature, cfg.lexicon_seed) == ("temperature", 2.5, 3)
    space.check(base)  # every bound and choice is a valid run config


@pytest.mark.parametrize(
    "entry, message",
    [
        ("lerning_rate: [0.1]", "`lerning_rate` is not a run config key"),
        ("data..train: [1]", "`data..train` is not a run config key"),
        ("output_dir: [a, b]", "`output_dir` is set by `surgellm tune` for every trial"),
        ("epochs: {type: int, low: 5, high: 2}", "low and high must be integers with low <= high"),
        ("epochs: {type: int, low: 1.5, high: 2}", "low and high must be integers"),
        ("learning_rate: {type: float, low: 0, high: 1, log: true}", "a log scale needs low > 0"),
        ("learning_rate: {type: float, low: 0.1, high: 1, step: 0.1, log: true}", "not used with log"),
        ("learning_rate: {type: float, low: 0.1, high: 1, scale: log}", "takes ['high', 'log', 'low', 'step', 'type']"),
        ("lora: [{r: 8}]", "choices must be strings, numbers, true/false or null"),
        ("seed: {type: uniform}", "type must be one of"),
        ("seed: []", "choices must be a non-empty list"),
        ("warmup_ratio: {type: float, low: 0.0, high: 1.5}", "`warmup_ratio`: the value 1.5 is refused"),
        ("task_sampling: [proportional, round_robin]", "`task_sampling`: the value 'round_robin' is refused"),
        ("seed: 3", "searches nothing"),
    ],
)  # fmt: skip
def test_a_wrong_space_entry_is_refused_naming_the_file_and_key(tmp_path, entry, message):
    path = tmp_path / "space.yaml"
    path.write_text(entry + "\n")
    base = RunConfig(data={"folder": "data"})
    with pytest.raises(ValueError, match=None) as err:
        load_space(path).check(base)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_space_must_be_a_mapping():
    with pytest.raises(ValueError, match="must be a mapping of run-config keys"):
        parse_space(["learning_rate"], "space.yaml")


def _frozen_config(tmp_path: Path, minilm_path: Path) -> Path:
    """Frozen MiniLM on the quickstart data: trials train only the modules and heads, on states cached once."""
    return write_run_config(
        tmp_path, minilm_path, epochs=3, freeze_encoder=True, prefix_style="text", max_length=128,
        learning_rate=1e-3, encoder_cache_dir=str(tmp_path / "encoder_cache"),
    )  # fmt: skip


def test_an_unpromising_trial_is_pruned_and_stops_training_early(tmp_path, minilm_path):
    config = _frozen_config(tmp_path, minilm_path)
    (tmp_path / "space.yaml").write_text("learning_rate: [1.0e-3, 1.0e-9]\n")
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    study = optuna.create_study(study_name="prune", storage=storage, direction="maximize")
    study.enqueue_trial({"learning_rate": 1e-3})  # a learning trial first, then one that cannot learn
    study.enqueue_trial({"learning_rate": 1e-9})
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    result = run_study(
        config, tmp_path / "space.yaml", 2, study_name="prune", storage=storage, output=tmp_path / "tune",
        pruner=pruner,
    )  # fmt: skip
    good, bad = result.study.trials
    assert (good.state, bad.state) == (TrialState.COMPLETE, TrialState.PRUNED)
    assert bad.intermediate_values[1] < good.intermediate_values[1]  # below the median of the earlier trials
    good_run, bad_run = (
        json.loads((result.folder / f"trial-00{i}" / "metrics.json").read_text()) for i in (0, 1)
    )
    assert good_run["training"]["epochs_run"] == 3.0 and bad_run["training"]["epochs_run"] == 1.0
    assert [h["epoch"] for h in bad_run["validation_history"]] == [1.0]  # it stopped training after epoch 1
    assert json.loads((result.folder / "trial-001" / "trial.json").read_text())["state"] == "PRUNED"
    assert good.value == pytest.approx(
        good_run["avg_macro_f1"]["validation"]
    )  # the objective: validation avg
    saved = json.loads((result.folder / "trial-001" / "run_config.json").read_text())
    assert saved["config"]["learning_rate"] == 1e-9  # every trial is a run folder with its run config
    rows = list(csv.reader((result.folder / "trials.csv").open()))
    assert [r[1] for r in rows[1:]] == ["COMPLETE", "PRUNED"]


def test_an_interrupted_study_resumes_from_its_storage_with_its_trial_numbers(
    tmp_path, tiny_bert_with_tokenizer, monkeypatch, capsys
):
    import surgellm_hf.training.run as training_run

    config = write_run_config(tmp_path, tiny_bert_with_tokenizer, epochs=2)
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\nseed: 0\n")
    argv = ["tune", "--config", str(config), "--space", str(space), "--trials", "2", "--study-name", "lr"]

    class CtrlCInTrialOne(training_run.SurgeTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            if "trial-001" in self.args.output_dir and self.state.global_step >= 2:
                raise KeyboardInterrupt
            return super().training_step(model, inputs, num_items_in_batch)

    monkeypatch.setattr(training_run, "SurgeTrainer", CtrlCInTrialOne)
    assert main(argv) == 130  # Ctrl-C in the second trial
    monkeypatch.undo()
    folder = tmp_path / "runs" / "IWN-seed0-tune" / "lr"
    storage = f"sqlite:///{(tmp_path / 'runs' / 'IWN-seed0-tune' / 'tune.db').resolve()}"
    study = optuna.load_study(study_name="lr", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert not (folder / "trial-001" / "metrics.json").exists()

    capsys.readouterr()
    assert main(argv) == 0  # the same command again: the study goes on from its storage
    study = optuna.load_study(study_name="lr", storage=storage)
    assert [(t.number, t.state) for t in study.trials] == [
        (0, TrialState.COMPLETE),
        (1, TrialState.FAIL),
        (2, TrialState.COMPLETE),
    ]
    assert (folder / "trial-002" / "metrics.json").is_file()
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith("Study 'lr': 3 trials (2 complete, 1 fail); best: trial ")
    assert main(argv) == 0 and len(optuna.load_study(study_name="lr", storage=storage).trials) == 3  # done

    # the outputs: the best configuration trains with `surgellm train`, a table row per trial, both plots
    best = study.best_trial
    best_cfg = load_run_config(folder / "best_config.yaml")
    assert best_cfg.learning_rate == best.params["learning_rate"] and best_cfg.seed == 0
    assert best_cfg.output_dir == load_run_config(config).output_dir  # trains into the base run folder
    assert yaml.safe_load((folder / "best_config.yaml").read_text())["epochs"] == 2
    rows = list(csv.reader((folder / "trials.csv").open()))
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"] and rows[0][5] == "learning_rate"
    assert "| 1 | FAIL" in (folder / "trials.md").read_text()
    assert (folder / "history.png").stat().st_size > 0 and (folder / "importance.png").stat().st_size > 0

    (tmp_path / "other.yaml").write_text("learning_rate: [0.001, 0.01]\n")
    other = [*argv[:4], str(tmp_path / "other.yaml"), *argv[5:]]
    assert main(other) == 2
    assert "was made with another search space" in capsys.readouterr().err
