"""The paper's Hub presets."""

from __future__ import annotations

from surgellm_hf.data import (
    PAPER_TASKS_HUB,
    TaskSpec,
)


def test_paper_hub_preset_builds_valid_specs():
    by_name = {s.name: s for s in PAPER_TASKS_HUB}
    assert list(by_name) == ["sst2", "hotpot"]
    sst2, hotpot = by_name["sst2"], by_name["hotpot"]
    assert sst2.source == "stanfordnlp/sst2" and sst2.is_local() is False
    assert (sst2.text_column, sst2.label_column, sst2.label_names) == (
        "sentence",
        "label",
        ["negative", "positive"],
    )
    assert sst2.splits == {"train": "train", "test": "validation"} and sst2.holdout == {"validation": 0.1}
    assert hotpot.source == "hotpotqa/hotpot_qa" and hotpot.config_name == "distractor"
    assert hotpot.preprocess == "hotpotqa_difficulty" and hotpot.is_local() is False
    assert set(hotpot.splits) | set(hotpot.holdout) == {"train", "validation", "test"}
    for spec in PAPER_TASKS_HUB:  # plain-data round trip (what a YAML config holds)
        assert TaskSpec.from_dict(spec.to_dict()) == spec
