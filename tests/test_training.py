"""Training: task-balanced batches, run configs, variants, collator, metrics plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surgellm_hf.training import (
    VARIANTS,
    RunConfig,
    TaskBalancedBatchSampler,
    build_compute_metrics,
    get_variant,
    load_run_config,
    per_task_predictions,
)


def test_batches_are_task_homogeneous_cover_every_example_once_and_interleave():
    task_ids = [0] * 100 + [1] * 20 + [2] * 45
    sampler = TaskBalancedBatchSampler(task_ids, per_batch=8, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 13 + 3 + 6
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(task_ids)))
    for b in batches:
        assert len({task_ids[i] for i in b}) == 1 and 1 <= len(b) <= 8
    order = [task_ids[b[0]] for b in batches]
    # balanced: each task's batches are spread over the epoch, e.g. the small task is not all at one end
    for t, n in ((0, 13), (1, 3), (2, 6)):
        positions = np.flatnonzero(np.array(order) == t) / len(order)
        assert len(positions) == n
        assert positions.min() < 0.5 < positions.max()
    # every third of the epoch holds batches of every task with at least 3 batches
    thirds = [set(order[i * len(order) // 3 : (i + 1) * len(order) // 3]) for i in range(3)]
    assert all({0, 1, 2} <= third for third in thirds)


def test_sampler_is_deterministic_per_seed_and_epoch():
    ids = [0] * 30 + [1] * 30
    a, b = TaskBalancedBatchSampler(ids, 4, seed=0), TaskBalancedBatchSampler(ids, 4, seed=0)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(TaskBalancedBatchSampler(ids, 4, seed=1)) != list(b)


def test_variants_match_the_method_table():
    rows = {name: (v.prefix, v.gate, v.norm, v.epochs, v.learning_rate) for name, v in VARIANTS.items()}
    assert rows == {
        "baseline": (False, False, "none", 3, 2e-5),
        "S": (True, True, "standard", 4, 2e-5),
        "G": (True, False, "none", 4, 1.5e-5),
        "FULL": (True, True, "standard", 5, 1.5e-5),
        "IWN": (True, True, "iwn", 5, 1.5e-5),
    }
    assert get_variant("iwn").name == "IWN"
    with pytest.raises(ValueError, match="Unknown variant 'X'; choose one of"):
        get_variant("X")


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


def test_per_task_predictions_use_only_each_tasks_columns():
    low = torch.finfo(torch.float32).min
    logits = np.array([[2.0, 0.0, low], [0.0, 1.0, 3.0], [0.0, 5.0, low]], dtype=np.float32)
    pred = per_task_predictions(logits, np.array([0, 1, 0]), {"a": 2, "b": 3})
    assert pred["a"]["index"].tolist() == [0, 2] and pred["a"]["y_pred"].tolist() == [0, 1]
    np.testing.assert_allclose(pred["a"]["score"][0], [np.exp(2) / (np.exp(2) + 1), 1 / (np.exp(2) + 1)])
    assert pred["b"]["y_pred"].tolist() == [2]
    np.testing.assert_allclose(pred["b"]["score"][0].sum(), 1.0)


def test_compute_metrics_averages_per_task_macro_f1():
    from sklearn.metrics import f1_score
    from transformers import EvalPrediction

    logits = np.array([[1, 0], [0, 1], [0, 1], [1, 0], [0, 1], [0, 1]], dtype=np.float32)
    labels = np.array([0, 1, 0, 0, 1, 1])
    tids = np.array([0, 0, 0, 1, 1, 1])
    out = build_compute_metrics({"a": 2, "b": 2})(
        EvalPrediction(predictions=logits, label_ids=(labels, tids))
    )
    f1_a = f1_score([0, 1, 0], [0, 1, 1], average="macro")
    assert out["a_macro_f1"] == pytest.approx(f1_a)
    assert out["b_macro_f1"] == pytest.approx(1.0)
    assert out["avg_macro_f1"] == pytest.approx((f1_a + 1.0) / 2)
