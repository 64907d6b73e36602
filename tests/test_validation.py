"""Checked settings (`surgellm_hf.validation`): the type from the annotation, the range from a named validator, and
a refusal in one line naming the key (for a task: the task and the field), the value and what it must be."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from surgellm_hf.data import TaskSpec
from surgellm_hf.training import RunConfig, load_run_config

DATA = {"folder": "x"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("encoder", 5, "`encoder` must be a Hub id or a path, got 5."),
        ("disable_tqdm", "no", "`disable_tqdm` must be true or false, got 'no'."),
        ("batch_size", 2.5, "`batch_size` must be a positive integer, got 2.5."),
        ("epochs", True, "`epochs` must be a positive integer, got True."),
        ("learning_rate", True, "`learning_rate` must be a finite number > 0, got True."),
        ("learning_rate", "fast", "`learning_rate` must be a finite number > 0, got 'fast'."),
        ("per_device_batch_size", 0, "`per_device_batch_size` must be a positive integer or null, got 0."),
        ("encoder_cache_dir", 3, "`encoder_cache_dir` must be a string or null, got 3."),
        ("hub_private_repo", "yes", "`hub_private_repo` must be true, false or null, got 'yes'."),
        (
            "class_weights",
            5,
            "`class_weights` must be null, 'balanced' or {task: 'balanced' | [weights]}, got 5.",
        ),
        (
            "data",
            [],
            "`data` must be a mapping: {'folder': ...}, {'tasks': {...}} or {'preset': 'paper_hub'}, got [].",
        ),
        ("variant", "XL", "Unknown variant 'XL'; choose one of ['baseline', 'S', 'G', 'FULL', 'IWN']."),
        ("lora", {"r": 0}, "`lora.r` must be a positive integer, got 0."),
    ],
)
def test_a_refused_key_is_one_line_naming_key_value_and_what_it_must_be(key, value, message):
    kwargs = {"data": DATA, key: value}
    with pytest.raises(ValueError) as err:
        RunConfig(**kwargs)
    assert str(err.value) == message


def test_setting_a_key_later_is_checked_and_read_as_yaml_would_be():
    cfg = RunConfig(data=DATA)
    with pytest.raises(ValueError, match=r"^`batch_size` must be a positive integer, got 0\.$"):
        cfg.batch_size = 0
    assert cfg.batch_size == 32
    cfg.mixed_precision = False  # YAML's reading of `no`
    cfg.lora = True
    assert cfg.mixed_precision == "no" and cfg.lora == {
        "r": 8,
        "alpha": 16,
        "dropout": 0.1,
        "target_modules": None,
    }


def test_numbers_keep_what_was_written(tmp_path):
    """An integer float key stays an integer (run folders compare the values written); temperature is a float."""
    cfg = RunConfig(data=DATA, learning_rate=1, weight_decay=0, temperature=3)
    assert (cfg.to_dict()["learning_rate"], cfg.to_dict()["weight_decay"]) == (1, 0)
    assert (
        isinstance(cfg.learning_rate, int) and cfg.temperature == 3.0 and isinstance(cfg.temperature, float)
    )
    path = tmp_path / "run.yaml"
    path.write_text("data: {folder: d}\nlearning_rate: 3e-5\nmixed_precision: no\n")
    loaded = load_run_config(path)
    assert (loaded.learning_rate, loaded.mixed_precision) == (3e-5, "no")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"source": 5}, TypeError, "task 't': source must be a non-empty path or Hub id, got 5"),
        ({"text_column": 3}, TypeError, "task 't': text_column must be a non-empty string, got 3"),
        (
            {"splits": ["train"]},
            TypeError,
            "task 't': splits must be a non-empty mapping split -> source, got ['train']",
        ),
        ({"preprocess": 3}, TypeError, "task 't': preprocess must be a callable or a name, got 3"),
        ({"config_name": 3}, ValueError, "task 't': config_name must be a string or null, got 3"),
        ({"num_labels": "3"}, ValueError, "task 't': num_labels must be an integer or null, got '3'"),
        (
            {"label_names": [1, 2]},
            ValueError,
            "task 't': label_names must be distinct non-empty strings, got [1, 2]",
        ),
        ({"max_rows": True}, ValueError, "task 't': max_rows must be positive integers, got True"),
        (
            {"holdout": {"validation": "x"}},
            ValueError,
            "task 't': holdout must be {split: fraction}, got {'validation': 'x'}",
        ),
        (
            {"threshold": 1.5, "problem_type": "multi_label"},
            ValueError,
            "task 't': threshold must be a number in (0, 1), got 1.5",
        ),
        (
            {"max_rows": {"dev": 5}},
            ValueError,
            "task 't': max_rows names unknown split(s) ['dev']; allowed: ['train', 'validation', 'test']",
        ),
    ],
)
def test_a_refused_task_field_names_the_task_and_keeps_its_error_class(kwargs, error, message):
    with pytest.raises(error) as err:
        TaskSpec(**{"name": "t", "source": "x", **kwargs})
    assert str(err.value) == message


def test_a_task_spec_stores_plain_values_and_stays_frozen(tmp_path):
    def upper(batch):
        return batch

    spec = TaskSpec(
        name="t",
        source=tmp_path,
        splits={"train": Path("a.jsonl")},
        label_names=("neg", "pos"),
        holdout={"validation": 0.25},
        required_splits=["train", "train"],
        preprocess=upper,
    )
    assert (spec.source, spec.splits, spec.label_names) == (
        str(tmp_path),
        {"train": "a.jsonl"},
        ["neg", "pos"],
    )
    assert spec.required_splits == ("train",) and spec.preprocess is upper
    assert TaskSpec.from_dict(spec.to_dict() | {"preprocess": None}).splits == {"train": "a.jsonl"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.kind = 3
