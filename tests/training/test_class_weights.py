"""Class-weighted loss: 'balanced' weights as scikit-learn computes them, the loss as torch's weighted
cross-entropy, checks before training, and the record in run_config.json, metrics.json and the model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.utils.class_weight import compute_class_weight

from conftest import QUICKSTART_DATA
from surgellm_hf.training import (
    RunConfig,
    balanced_class_weights,
    class_weight_table,
    comparable_settings,
    load_run_config,
    resolve_class_weights,
    train_run,
)
from surgellm_hf.training.trainer import weighted_task_cross_entropy


def test_balanced_weights_match_scikit_learn():
    labels = [0] * 70 + [1] * 20 + [2] * 10
    expected = compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels))
    np.testing.assert_allclose(balanced_class_weights(labels, 3), expected)


def test_resolve_balanced_explicit_and_errors():
    tasks = {"a": 2, "b": 3}
    labels = {"a": [0, 0, 0, 1], "b": [0, 1, 2, 2]}
    got = resolve_class_weights("balanced", tasks, labels)
    assert got == {"a": pytest.approx([4 / 6, 2.0]), "b": pytest.approx([4 / 3, 4 / 3, 2 / 3])}
    assert resolve_class_weights({"b": [1, 2, 3]}, tasks, labels) == {"b": [1.0, 2.0, 3.0]}
    assert resolve_class_weights(None, tasks, labels) is None
    with pytest.raises(
        ValueError, match=r"task 'b' has 2 value\(s\) but the task has 3 labels \['x', 'y', 'z'\]"
    ):
        resolve_class_weights({"b": [1, 2]}, tasks, labels, {"b": ["x", "y", "z"]})
    with pytest.raises(ValueError, match=r"task\(s\) \['c'\]"):
        resolve_class_weights({"c": "balanced"}, tasks, labels)
    table = class_weight_table({"b": [1, 2, 3]}, tasks)
    assert table.tolist() == [[1, 1, 1], [1, 2, 3]]


def test_weighted_loss_equals_torch_weighted_cross_entropy_per_task():
    torch.manual_seed(0)
    tasks = {"a": 2, "b": 3}
    table = class_weight_table({"a": [0.5, 2.0], "b": [1.0, 3.0, 0.2]}, tasks)
    logits = torch.randn(6, 3)
    logits[:3, 2] = torch.finfo(torch.float32).min  # task a's padding column, as the model pads it
    labels = torch.tensor([0, 1, 1, 2, 0, 1])
    task_ids = torch.tensor([0, 0, 0, 1, 1, 1])
    # a task-homogeneous batch is torch's weighted mean
    for rows, t, k in ((slice(0, 3), 0, 2), (slice(3, 6), 1, 3)):
        ref = torch.nn.functional.cross_entropy(logits[rows, :k], labels[rows], weight=table[t, :k])
        got = weighted_task_cross_entropy(logits[rows], labels[rows], task_ids[rows], table)
        torch.testing.assert_close(got, ref)
    # uniform weights give the model's plain mean cross-entropy
    ones = torch.ones_like(table)
    torch.testing.assert_close(
        weighted_task_cross_entropy(logits, labels, task_ids, ones),
        torch.nn.functional.cross_entropy(logits, labels),
    )


def test_class_weights_and_sampling_change_the_comparable_settings():
    base = comparable_settings(RunConfig(data={"folder": "x"}))
    assert base["task_sampling"] == "proportional" and base["temperature"] is None
    assert base["class_weights"] is None and base["lora"] is None
    other = comparable_settings(RunConfig(data={"folder": "x"}, class_weights="balanced"))
    assert other["class_weights"] == "balanced"
    hot = comparable_settings(RunConfig(data={"folder": "x"}, task_sampling="temperature", temperature=3))
    assert hot["temperature"] == 3.0


def _config(tmp_path: Path, encoder: Path, **overrides) -> Path:
    cfg = {
        "encoder": str(encoder),
        "data": {
            "folder": str(QUICKSTART_DATA),
            "tasks": ["reviews", "register"],
            "max_rows": {"train": 40, "validation": 16, "test": 16},
        },
        "variant": "IWN",
        "epochs": 1,
        "learning_rate": 1e-3,
        "batch_size": 8,
        "max_length": 48,
        "disable_tqdm": True,
        "output_dir": str(tmp_path / "runs" / "{variant}-seed{seed}"),
        **overrides,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_wrong_length_is_refused_before_anything_is_written(tmp_path, tiny_bert_with_tokenizer):
    cfg = load_run_config(_config(tmp_path, tiny_bert_with_tokenizer, class_weights={"register": [1, 2, 3]}))
    with pytest.raises(ValueError, match="class_weights of task 'register' has 3 value"):
        train_run(cfg)
    assert not (tmp_path / "runs").exists()


def test_run_records_sampling_and_class_weights(tmp_path, tiny_bert_with_tokenizer):
    from surgellm_hf import SurgeForSequenceClassification
    from surgellm_hf.hub import SurgeModelCardData

    cfg = load_run_config(
        _config(
            tmp_path,
            tiny_bert_with_tokenizer,
            task_sampling="temperature",
            temperature=3,
            class_weights={"reviews": "balanced", "register": [1.0, 2.5]},
        )
    )
    run = train_run(cfg)
    saved = json.loads((run / "run_config.json").read_text())
    assert saved["task_sampling"] == "temperature" and saved["temperature"] == 3.0
    assert saved["class_weights"]["register"] == [1.0, 2.5]
    w = saved["class_weights"]["reviews"]  # n / (K * n_c): the inverse weights sum to K
    assert len(w) == 2 and sum(1 / x for x in w) == pytest.approx(2.0)
    training = json.loads((run / "metrics.json").read_text())["training"]
    assert training["task_sampling"] == "temperature" and training["class_weights"] == saved["class_weights"]
    card = SurgeModelCardData.from_run(run, SurgeForSequenceClassification.from_pretrained(run))
    text = str(card.to_model_card())
    assert "| task_sampling | temperature |" in text and "register=[1.0, 2.5]" in text
    # another rule on the same folder is another configuration
    other = load_run_config(_config(tmp_path, tiny_bert_with_tokenizer, task_sampling="equal"))
    with pytest.raises(ValueError, match="task_sampling: saved"):
        train_run(other)
