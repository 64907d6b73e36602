"""RunConfig: budget rules, YAML loading with overrides, value checks."""

from __future__ import annotations

import pytest

from surgellm_hf.training import (
    RunConfig,
    load_run_config,
)


def test_run_config_budget_rules():
    cfg = RunConfig(data={"folder": "x"}, variant="baseline")
    assert (cfg.num_epochs, cfg.lr) == (3, 2e-5)
    assert RunConfig(data={"folder": "x"}, variant="IWN", epochs=3, equal_budget=True).num_epochs == 3
    with pytest.raises(ValueError, match="equal_budget: true` needs `epochs`"):
        RunConfig(data={"folder": "x"}, equal_budget=True)
    for kwargs, msg in [
        ({"prefix_style": "emoji"}, "prefix_style"),
        ({"batch_size": 0}, "`batch_size` must be a positive integer"),
        ({"lexicon": "fancy"}, "`lexicon` must be one of"),
        ({"warmup_ratio": 1.5}, "warmup_ratio"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
    ]:
        with pytest.raises(ValueError, match=msg):
            RunConfig(data={"folder": "x"}, **kwargs)


def test_load_run_config_overrides_and_errors(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  folder: data\nvariant: IWN\nseed: 0\n")
    cfg = load_run_config(
        path, ["seed=2", "variant=baseline", "data.max_rows.train=50", "learning_rate=3e-5"]
    )
    assert cfg.seed == 2 and cfg.variant == "baseline" and cfg.lr == 3e-5
    assert cfg.data == {"folder": str((tmp_path / "data").resolve()), "max_rows": {"train": 50}}
    with pytest.raises(ValueError, match=r"Unknown run config key\(s\) \['sed'\]"):
        load_run_config(path, ["sed=1"])
    with pytest.raises(ValueError, match="must look like key=value"):
        load_run_config(path, ["seed"])
    with pytest.raises(FileNotFoundError, match="run config not found"):
        load_run_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_run_config(tmp_path / "bad.yaml")
    (tmp_path / "nodata.yaml").write_text("variant: IWN\n")
    with pytest.raises(ValueError, match="needs a `data` section"):
        load_run_config(tmp_path / "nodata.yaml")


def test_run_config_checks_seeds_and_switches():
    for kwargs, msg in [
        ({"lexicon_seed": -1}, "`lexicon_seed` must be a non-negative integer"),
        ({"seed": "1"}, "`seed` must be a non-negative integer"),
        ({"overwrite": "yes"}, "`overwrite` must be true or false"),
    ]:
        with pytest.raises(ValueError, match=msg):
            RunConfig(data={"folder": "x"}, **kwargs)


def test_mixed_precision_no_survives_yaml(tmp_path):
    """YAML 1.1 reads `no` as false: `mixed_precision: no` (the documented spelling) still means fp32."""
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  folder: data\nmixed_precision: no\n")
    assert load_run_config(path).mixed_precision == "no"
    assert load_run_config(path, ["mixed_precision=no"]).mixed_precision == "no"
    with pytest.raises(ValueError, match="`mixed_precision` must be auto, no, bf16 or fp16, got True"):
        load_run_config(path, ["mixed_precision=yes"])


def test_prefix_style_defaults_to_soft_with_a_trained_encoder_and_text_with_a_frozen_one():
    """docs/benchmarks.md#prefix-default: soft when the encoder trains (full or LoRA), text with freeze_encoder, none
    for a variant without the prefix; an explicit style always wins; the reuse check compares the resolved style."""
    from surgellm_hf.training.run_config import comparable_settings, settings_differences

    base = {"data": {"folder": "x"}, "variant": "IWN"}
    assert RunConfig(**base).prefix_style is None  # the field keeps what the user wrote
    assert RunConfig(**base).prefix == "soft"
    assert RunConfig(**base, lora={"r": 4}).prefix == "soft"
    assert RunConfig(**base, freeze_encoder=True).prefix == "text"
    assert RunConfig(**base, freeze_encoder=True, cache_encoder_outputs=True).prefix == "text"  # no refusal
    assert RunConfig(**base, prefix_style="text").prefix == "text"
    assert RunConfig(**base, prefix_style="tokens").prefix == "tokens"
    assert RunConfig(data={"folder": "x"}, variant="baseline").prefix is None
    assert RunConfig(data={"folder": "x"}, variant="baseline", prefix_style="text").prefix is None
    # a folder written under the old default (text, recorded explicitly) is not reused by a default run now
    old, new = RunConfig(**base, prefix_style="text"), RunConfig(**base)
    assert settings_differences(comparable_settings(old), comparable_settings(new)) == [
        'prefix_style: saved "text", requested "soft"',
        "soft_prefix_length: saved null, requested 2",
    ]
    assert comparable_settings(RunConfig(**base, prefix_style="soft")) == comparable_settings(new)
    # for a variant without a prefix the style does not matter, so it does not block reuse
    plain = {"data": {"folder": "x"}, "variant": "baseline"}
    assert comparable_settings(RunConfig(**plain, prefix_style="text")) == comparable_settings(
        RunConfig(**plain)
    )
