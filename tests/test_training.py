"""Training: task-balanced batches, run configs, variants, collator, metrics plumbing."""

from __future__ import annotations

import hashlib
import json

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


# ------------------------------------------------------------------------------------------- mixed precision


def test_precision_choices_on_cpu_and_gpu():
    from surgellm_hf.training import resolve_precision

    assert resolve_precision("bf16", cuda=False) == "bf16"  # CPU autocast, not silently fp32
    assert resolve_precision("auto", cuda=False) == "fp32"
    assert resolve_precision("no", cuda=True) == "fp32"
    assert resolve_precision("fp16", cuda=True) == "fp16"
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", cuda=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU route")
def test_bf16_on_cpu_reaches_the_training_arguments():
    from surgellm_hf.training import training_arguments

    args = training_arguments(RunConfig(data={"folder": "x"}, mixed_precision="bf16"), num_tasks=2)
    assert args.bf16 and args.use_cpu and args.mixed_precision == "bf16"
    fp32 = training_arguments(RunConfig(data={"folder": "x"}, mixed_precision="auto"), num_tasks=2)
    assert not fp32.bf16 and not fp32.fp16
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        training_arguments(RunConfig(data={"folder": "x"}, mixed_precision="fp16"), num_tasks=2)


# ------------------------------------------------------------------------------------------- run folders


def _cfg(tmp_path, **kw) -> RunConfig:
    base = {"data": {"folder": str(tmp_path / "data")}, "output_dir": str(tmp_path / "run"), "variant": "IWN"}
    return RunConfig(**{**base, **kw})


def test_a_run_folder_is_reused_only_by_the_same_configuration(tmp_path):
    from surgellm_hf.training import check_run_dir, write_run_config

    cfg = _cfg(tmp_path, lexicon="curated")
    assert check_run_dir(cfg) == "new"
    write_run_config(cfg, {})
    saved = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert saved["config"]["lexicon"] == "curated" and saved["settings"]["epochs"] == 5
    (tmp_path / "run" / "checkpoints" / "checkpoint-6").mkdir(parents=True)
    assert check_run_dir(cfg) == "resume"
    # keys that do not change what the run computes, and spelled-out defaults, are the same configuration
    same = _cfg(
        tmp_path, disable_tqdm=True, logging_steps=3, eval_batch_size=7, epochs=5, learning_rate=1.5e-5
    )
    assert check_run_dir(same) == "resume"
    with pytest.raises(ValueError) as err:
        check_run_dir(_cfg(tmp_path, lexicon="random", seed=1))
    message = str(err.value)
    assert (
        'lexicon: saved "curated", requested "random"' in message and "seed: saved 0, requested 1" in message
    )
    assert "overwrite=true" in message and "epochs" not in message
    with pytest.raises(ValueError, match="resume is false"):
        check_run_dir(_cfg(tmp_path, resume=False))
    with pytest.raises(ValueError, match="save_checkpoints: false cannot"):
        check_run_dir(_cfg(tmp_path, save_checkpoints=False))
    assert check_run_dir(_cfg(tmp_path, lexicon="random", overwrite=True)) == "overwrite"
    (tmp_path / "run" / "metrics.json").write_text("{}")
    assert check_run_dir(cfg) == "finished"


def test_a_run_folder_without_a_saved_configuration_is_refused(tmp_path):
    from surgellm_hf.training import check_run_dir, start_fresh

    cfg = _cfg(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("not a run")
    assert check_run_dir(cfg) == "new"  # a folder without anything of a run may be used
    (tmp_path / "run" / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds checkpoints/ but no run_config.json"):
        check_run_dir(cfg)
    start_fresh(tmp_path / "run")
    assert not (tmp_path / "run").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep")
    start_fresh(tmp_path / "other")  # not a run folder: never deleted
    assert (tmp_path / "other" / "notes.txt").read_text() == "keep"


def test_runs_written_before_run_config_json_compare_with_their_metrics_json(tmp_path):
    """Before lexicon_seed, random and extracted lexicons followed the training seed: such a run is not reused."""
    from surgellm_hf.training import check_run_dir

    old = _cfg(tmp_path, lexicon="random", seed=1).to_dict()
    del old["lexicon_seed"], old["overwrite"]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"run_config": old}))
    with pytest.raises(ValueError, match="lexicon_seed: saved 1, requested 0"):
        check_run_dir(_cfg(tmp_path, lexicon="random", seed=1))
    assert check_run_dir(_cfg(tmp_path, lexicon="random", seed=1, lexicon_seed=1)) == "finished"
    # for the curated lexicon the lexicon seed means nothing
    old.update(lexicon="curated")
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"run_config": old}))
    assert check_run_dir(_cfg(tmp_path, lexicon="curated", seed=1, lexicon_seed=5)) == "finished"


def test_a_lexicon_file_whose_content_changed_is_refused(tmp_path):
    from surgellm_hf import Lexicon
    from surgellm_hf.training import check_lexicon_matches, write_run_config

    path = tmp_path / "lex.json"
    Lexicon({"a": ["good"]}).to_json(path)
    cfg = _cfg(tmp_path, lexicon=str(path))
    write_run_config(cfg, {"lexicon_sha256": Lexicon.from_json(path).content_hash()})
    check_lexicon_matches(cfg, Lexicon.from_json(path).content_hash())  # unchanged: fine
    Lexicon({"a": ["good", "fine"]}).to_json(path)
    with pytest.raises(ValueError, match="trained with another lexicon"):
        check_lexicon_matches(cfg, Lexicon.from_json(path).content_hash())
    check_lexicon_matches(_cfg(tmp_path, lexicon=str(path), overwrite=True), "anything")


def test_run_config_checks_seeds_and_switches():
    for kwargs, msg in [
        ({"lexicon_seed": -1}, "`lexicon_seed` must be a non-negative integer"),
        ({"seed": "1"}, "`seed` must be a non-negative integer"),
        ({"overwrite": "yes"}, "`overwrite` must be true or false"),
    ]:
        with pytest.raises(ValueError, match=msg):
            RunConfig(data={"folder": "x"}, **kwargs)


# ------------------------------------------------------------------------------------------- seeds and lexicons


def test_load_run_data_draws_its_sample_with_its_seed():
    from conftest import QUICKSTART_DATA
    from surgellm_hf.training import load_run_data

    section = {"folder": str(QUICKSTART_DATA), "max_rows": {"train": 10}}

    def ids(data, seed=0):
        return list(load_run_data(data, seed=seed)["reviews"]["train"]["id"])

    assert ids(section, 1) == ids(section, 1) != ids(section, 0)
    assert ids({**section, "seed": 1}) == ids(section, 1)  # the section's own seed key wins
    all_ids = [json.loads(line)["id"] for line in (QUICKSTART_DATA / "reviews" / "train.jsonl").open()]
    assert len(ids(section, 1)) == 10 and set(ids(section, 1)) <= set(all_ids)


def test_lexicon_hash_follows_groups_and_entries_not_the_name():
    from surgellm_hf import Lexicon
    from surgellm_hf.training import build_lexicon

    curated = Lexicon.curated()
    expected = hashlib.sha256(
        json.dumps([[g, e] for g, e in curated.groups.items()], separators=(",", ":")).encode()
    ).hexdigest()
    assert curated.content_hash() == expected
    assert Lexicon(curated.groups, name="renamed").content_hash() == expected
    reordered = dict(reversed(list(curated.groups.items())))
    assert Lexicon(reordered).content_hash() != expected  # column order is part of the features
    a, b = build_lexicon("random", None, "", seed=0), build_lexicon("random", None, "", seed=1)
    assert a.content_hash() == build_lexicon("random", None, "", seed=0).content_hash() != b.content_hash()


# ------------------------------------------------------------------------------------------- early stopping state


def test_callback_refuses_to_leave_last_epoch_weights(tmp_path):
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from surgellm_hf.evaluation import SurgeEarlyStoppingCallback, early_stopping_arguments

    no_restore = TrainingArguments(
        output_dir=str(tmp_path),
        report_to="none",
        use_cpu=True,
        **{**early_stopping_arguments(), "save_strategy": "no", "load_best_model_at_end": False},
    )
    with pytest.raises(ValueError, match="last epoch's weights"):
        SurgeEarlyStoppingCallback().on_train_begin(no_restore, TrainerState(), TrainerControl())
    SurgeEarlyStoppingCallback(keep_best_in_memory=True).on_train_begin(
        no_restore, TrainerState(), TrainerControl()
    )
    # a resumed state carries on with its count
    state = TrainerState(log_history=[{"eval_avg_macro_f1": s} for s in (0.5, 0.7, 0.6)])
    cb = SurgeEarlyStoppingCallback(patience=2, keep_best_in_memory=True)
    cb.on_train_begin(no_restore, state, TrainerControl())
    assert cb.early_stopping_patience_counter == 1
    # its exported state rebuilds it (transformers' restore_callback_states_from_checkpoint)
    exported = cb.state()
    rebuilt = type(cb)(**exported["args"])
    assert rebuilt.early_stopping_patience == 2 and rebuilt.keep_best_in_memory
