"""`selection_split`: early stopping selects on a stratified slice of train; validation is only reported."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from surgellm_hf.data.loading import load_run_data
from surgellm_hf.training import RunConfig, check_run_dir, train_run
from tests._helpers import QUICKSTART_DATA

DATA = {
    "folder": str(QUICKSTART_DATA),
    "tasks": ["reviews", "register"],
    "max_rows": {"train": 40, "validation": 16, "test": 16},
}


def test_the_selection_split_is_a_stratified_seeded_slice_of_train():
    data = load_run_data(DATA)
    carved = data.with_selection_split(0.25, seed=3)
    again = data.with_selection_split(0.25, seed=3)
    other = data.with_selection_split(0.25, seed=4)
    for task in data.task_names:
        train, sel = carved[task]["train"][:], carved[task]["selection"][:]  # columns as lists
        assert len(sel["id"]) == 10 and len(train["id"]) == 30
        assert sorted(train["id"] + sel["id"]) == sorted(data[task]["train"][:]["id"])  # a partition of train
        assert not set(train["id"]) & set(sel["id"])
        # stratified: each class keeps its share of train (largest-remainder rounding)
        before, picked = Counter(data[task]["train"][:]["label"]), Counter(sel["label"])
        assert all(abs(picked[c] - before[c] * 10 / 40) < 1 for c in before)
        assert carved[task]["validation"][:] == data[task]["validation"][:]  # untouched
        assert again[task]["selection"][:]["id"] == sel["id"]
    assert any(other[t]["selection"][:]["id"] != carved[t]["selection"][:]["id"] for t in data.task_names)
    with pytest.raises(ValueError, match="leaves none to train on"):
        data.with_selection_split(0.99)
    with pytest.raises(ValueError, match=r"must be a number in \(0, 1\)"):
        data.with_selection_split(1.0)


def test_run_config_normalizes_and_checks_selection_split():
    assert RunConfig(data=DATA, selection_split=0.2).selection_split == {"fraction": 0.2, "seed": 0}
    assert RunConfig(data=DATA, selection_split={"fraction": "0.1", "seed": 2}).selection_split == {
        "fraction": 0.1,
        "seed": 2,
    }
    with pytest.raises(ValueError, match=r"`selection_split.fraction` must be a number in \(0, 1\), got 0"):
        RunConfig(data=DATA, selection_split=0)
    with pytest.raises(ValueError, match=r"Unknown `selection_split` key\(s\) \['rows'\]"):
        RunConfig(data=DATA, selection_split={"rows": 5})


def test_a_run_selects_on_the_selection_split_and_reports_validation(tmp_path, tiny_bert_with_tokenizer):
    def config(**overrides) -> RunConfig:
        values = dict(
            data=DATA,
            encoder=str(tiny_bert_with_tokenizer),
            variant="IWN",
            prefix_style="tokens",
            epochs=2,
            learning_rate=1e-3,
            batch_size=8,
            max_length=32,
            disable_tqdm=True,
            save_checkpoints=False,
            selection_split={"fraction": 0.25, "seed": 1},
            output_dir=str(tmp_path / "run"),
        )
        return RunConfig(**{**values, **overrides})

    run = train_run(config())
    metrics = json.loads((run / "metrics.json").read_text())
    selection = metrics["selection"]
    assert selection["fraction"] == 0.25 and selection["seed"] == 1
    assert set(selection["tasks"]) == {"reviews", "register"}
    assert all(m["n"] == 10 for m in selection["tasks"].values())  # a quarter of the 40 training rows
    training = metrics["training"]
    assert training["selected_on"] == "selection" and training["best_validation_avg_macro_f1"] is None
    # the restored best epoch is the one the selection split chose: its score is the selection split's
    assert training["best_selection_avg_macro_f1"] == pytest.approx(selection["avg_macro_f1"])
    assert len(metrics["selection_history"]) == 2 and "validation_history" not in metrics
    assert {s for t in metrics["tasks"].values() for s in t} == {"validation", "test"}
    assert metrics["data"]["reviews"] == {"train": 30, "selection": 10, "validation": 16, "test": 16}
    assert not list((run / "predictions").glob("*_selection.jsonl"))
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["settings"]["selection_split"] == {"fraction": 0.25, "seed": 1}
    assert "Selection mean macro-F1 by epoch" in (run / "report.md").read_text()
    # a run folder selected on another slice is another configuration
    with pytest.raises(ValueError, match=r"selection_split: saved \{\"fraction\": 0.25, \"seed\": 1\}"):
        check_run_dir(config(selection_split={"fraction": 0.25, "seed": 2}))
    assert check_run_dir(config()) == "finished"
