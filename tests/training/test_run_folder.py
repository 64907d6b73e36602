"""Run folders on the training side: reuse only by the same configuration, legacy folders, changed lexicon files."""

from __future__ import annotations

import json

import pytest

from surgellm_hf.training import (
    RunConfig,
)

# ------------------------------------------------------------------------------------------- run folders


def _cfg(tmp_path, **kw) -> RunConfig:
    base = {"data": {"folder": str(tmp_path / "data")}, "output_dir": str(tmp_path / "run"), "variant": "IWN"}
    return RunConfig(**{**base, **kw})


def _checkpoint(folder, step: int, complete: bool = True):
    """A checkpoint-N folder with the files the Trainer writes, trainer_state.json (written last) only if complete."""
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (path / name).write_bytes(b"x")
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return path


def test_a_run_folder_is_reused_only_by_the_same_configuration(tmp_path):
    from surgellm_hf.training import check_run_dir, write_run_config

    cfg = _cfg(tmp_path, lexicon="curated")
    assert check_run_dir(cfg) == "new"
    write_run_config(cfg, {})
    saved = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert saved["config"]["lexicon"] == "curated" and saved["settings"]["epochs"] == 5
    _checkpoint(tmp_path / "run" / "checkpoints", 6)
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
    assert check_run_dir(cfg) == "new"  # an empty folder may be used
    (tmp_path / "run" / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds checkpoints/ but no run_config.json"):
        check_run_dir(cfg)
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert start_fresh(tmp_path / "run") == ["checkpoints"]  # what a run wrote, nothing else
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["notes.txt"]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("keep")
    assert start_fresh(tmp_path / "other") == []  # not a run folder: nothing deleted
    assert (tmp_path / "other" / "config.json").read_text() == "keep"


def test_a_folder_holding_files_but_no_run_is_refused_even_with_overwrite(tmp_path):
    """A run never trains into (or clears) a user's folder; the message names what is there."""
    from surgellm_hf.training import check_run_dir

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    (tmp_path / "run" / "config.json").write_text("{}")  # a name a run writes, but no run made it
    for overwrite in (False, True):
        with pytest.raises(
            ValueError, match=r"is not empty \(config.json, notes.txt\) and holds no run"
        ) as err:
            check_run_dir(_cfg(tmp_path, overwrite=overwrite))
        assert "choose another output_dir" in str(err.value)
    # the run's own lock files and its encoder cache folder are not a user's files
    for name in ("notes.txt", "config.json"):
        (tmp_path / "run" / name).unlink()
    (tmp_path / "run" / ".surgellm.lock").write_text("")
    (tmp_path / "run" / "states").mkdir()
    assert check_run_dir(_cfg(tmp_path, encoder_cache_dir=str(tmp_path / "run" / "states"))) == "new"


def test_the_newest_complete_checkpoint_is_resumed_and_cut_short_saves_are_removed(tmp_path, caplog):
    from surgellm_hf.training import (
        check_run_dir,
        get_last_complete_checkpoint,
        remove_incomplete_checkpoints,
        write_run_config,
    )
    from surgellm_hf.training.run_folder import checkpoint_problem

    cfg = _cfg(tmp_path)
    write_run_config(cfg, {})
    folder = tmp_path / "run" / "checkpoints"
    cut = _checkpoint(folder, 12, complete=False)
    assert check_run_dir(cfg) == "new"  # only a cut-short save: nothing to resume
    six = _checkpoint(folder, 6)
    truncated = _checkpoint(folder, 18)
    (truncated / "trainer_state.json").write_text('{"global_step": 18, "log_hist')
    no_weights = _checkpoint(folder, 24)
    (no_weights / "model.safetensors").unlink()
    assert checkpoint_problem(cut) == "no trainer_state.json: its save was cut short"
    assert checkpoint_problem(truncated) == "trainer_state.json is cut short or unreadable"
    assert checkpoint_problem(no_weights) == "no model weights"
    assert checkpoint_problem(six) is None
    assert check_run_dir(cfg) == "resume"
    assert get_last_complete_checkpoint(folder) == str(six)
    assert remove_incomplete_checkpoints(folder) == [no_weights, truncated, cut]  # newest first
    assert [p.name for p in folder.iterdir()] == ["checkpoint-6"]
    for path in (no_weights, truncated, cut):
        assert f"Skipping and removing checkpoint {path}" in caplog.text


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


# ------------------------------------------------------------- reuse compares what changes the result (issue 17)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_bert_with_tokenizer):
    """One tiny run trained through `surgellm train` with a lexicon JSON file; tests copy its folder."""
    from surgellm_hf import Lexicon
    from surgellm_hf.cli import main
    from tests._helpers import write_run_config as write_yaml

    tmp = tmp_path_factory.mktemp("finished")
    Lexicon({"praise": ["good", "great"], "blame": ["bad", "awful"]}).to_json(tmp / "lexicon.json")
    config = write_yaml(tmp, tiny_bert_with_tokenizer, lexicon=str(tmp / "lexicon.json"))
    assert main(["train", "--config", str(config)]) == 0
    return tmp


def _copy_of(finished_run, tmp_path):
    """A copy of the finished run folder under tmp_path (same lexicon file), and a config training into it."""
    import shutil

    import yaml

    shutil.copytree(finished_run / "runs", tmp_path / "runs")
    raw = yaml.safe_load((finished_run / "run.yaml").read_text())
    raw.update(output_dir=str(tmp_path / "runs" / "{variant}-seed{seed}"))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path / "run.yaml", tmp_path / "runs" / "IWN-seed0"


def _refused(capsys, config, *overrides) -> str:
    from surgellm_hf.cli import main

    capsys.readouterr()
    assert main(["train", "--config", str(config), *overrides]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("surgellm train: error:") == 1
    return err.strip().splitlines()[-1]


def test_a_finished_run_whose_lexicon_file_was_edited_is_refused(finished_run, tmp_path, capsys):
    from surgellm_hf import Lexicon
    from surgellm_hf.cli import main

    config, run = _copy_of(finished_run, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["train", "--config", str(config)]) == 0  # unchanged: nothing to train
    assert "Run already finished" in capsys.readouterr().out
    lexicon = finished_run / "lexicon.json"
    original = lexicon.read_bytes()
    try:
        Lexicon({"praise": ["good", "great", "fine"], "blame": ["bad", "awful"]}).to_json(lexicon)
        message = _refused(capsys, config)
    finally:
        lexicon.write_bytes(original)
    assert f"run folder {run} was trained with another lexicon" in message
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing touched


def test_an_edited_lexicon_file_is_refused_before_resuming(tmp_path):
    from surgellm_hf import Lexicon
    from surgellm_hf.training import check_run_dir, write_run_config

    path = tmp_path / "lex.json"
    Lexicon({"a": ["good"]}).to_json(path)
    cfg = _cfg(tmp_path, lexicon=str(path))
    write_run_config(cfg, {"lexicon_sha256": Lexicon.from_json(path).content_hash()})
    _checkpoint(tmp_path / "run" / "checkpoints", 2)
    assert check_run_dir(cfg) == "resume"
    Lexicon({"a": ["good", "fine"]}).to_json(path)
    with pytest.raises(ValueError, match="was trained with another lexicon"):
        check_run_dir(cfg)


def test_mixed_precision_auto_is_compared_by_the_precision_it_resolves_to(finished_run, tmp_path, capsys):
    """`auto` is fp32 on CPU and bf16 on a GPU: the same word, another result. The folder's run_config.json says
    which precision it trained in; a run folder written on a GPU (precision bf16) is refused on this CPU."""
    from surgellm_hf.training import check_run_dir, load_run_config

    config, run = _copy_of(finished_run, tmp_path)
    record = json.loads((run / "run_config.json").read_text())
    assert record["config"]["mixed_precision"] == "auto" and record["precision"] == "fp32"
    assert check_run_dir(load_run_config(config, ["mixed_precision=no"])) == "finished"  # fp32 as well
    record["precision"] = "bf16"  # what the same config writes on a GPU with bf16
    (run / "run_config.json").write_text(json.dumps(record))
    message = _refused(capsys, config)
    assert (
        "precision: saved bf16, now fp32 (mixed_precision 'auto' on this machine; mixed_precision: bf16"
        in message
    )
    assert check_run_dir(load_run_config(config, ["mixed_precision=bf16"])) == "finished"  # CPU autocast bf16


def test_the_batch_is_compared_per_device_and_effective_across_process_counts(tmp_path, monkeypatch, capsys):
    from surgellm_hf.training import check_run_dir, write_run_config

    cfg = _cfg(tmp_path, batch_size=16)
    write_run_config(cfg, {})  # one process: per-device 16, effective 16
    _checkpoint(tmp_path / "run" / "checkpoints", 2)
    monkeypatch.setenv("WORLD_SIZE", "2")  # a resume under `accelerate launch --num_processes 2`
    with pytest.raises(ValueError, match=r"per-device batch: saved 16 \(1 process\), now 8 \(2 processes\)"):
        check_run_dir(cfg)
    with pytest.raises(ValueError, match=r"effective batch: saved 16 \(1 process\), now 32 \(2 processes\)"):
        check_run_dir(_cfg(tmp_path, batch_size=16, per_device_batch_size=16))
    # started on two processes (8 x 1 x 2); one process with per_device_batch_size 8 accumulates 2: the same batches
    write_run_config(cfg, {})
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ValueError, match=r"per-device batch: saved 8 \(2 processes\), now 16 \(1 process\)"):
        check_run_dir(cfg)
    assert check_run_dir(_cfg(tmp_path, batch_size=16, per_device_batch_size=8)) == "resume"


def test_run_folders_without_the_machine_record_compare_the_settings_as_written(
    tmp_path, monkeypatch, caplog
):
    """run_config.json written before the record: mixed_precision and per_device_batch_size compare as words, and
    a warning says the batch layout could not be checked; a finished run's metrics.json record is used."""
    from surgellm_hf.training import check_run_dir, write_run_config

    cfg = _cfg(tmp_path, batch_size=16)
    path = write_run_config(cfg, {})
    record = json.loads(path.read_text())
    for key in ("precision", "world_size", "per_device_batch_size", "gradient_accumulation_steps"):
        del record[key]
    del record["effective_batch_size"]
    path.write_text(json.dumps(record))
    _checkpoint(tmp_path / "run" / "checkpoints", 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with caplog.at_level("WARNING"):
        assert check_run_dir(cfg) == "resume"
    assert "does not record how many processes it trained with" in caplog.text
    with pytest.raises(ValueError, match='mixed_precision: saved "auto", requested "no"'):
        check_run_dir(_cfg(tmp_path, batch_size=16, mixed_precision="no"))
    with pytest.raises(ValueError, match="per_device_batch_size: saved null, requested 8"):
        check_run_dir(_cfg(tmp_path, batch_size=16, per_device_batch_size=8))
    # a finished run: metrics.json's training record says how it trained
    training = {"precision": "fp32", "world_size": 1, "effective_batch_size": 16}
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"training": training}))
    with pytest.raises(ValueError, match=r"per-device batch: saved 16 \(1 process\), now 8 \(2 processes\)"):
        check_run_dir(cfg)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert check_run_dir(_cfg(tmp_path, batch_size=16, mixed_precision="no")) == "finished"


def test_cache_encoder_outputs_is_compared_below_fp32(tmp_path):
    """Cached and uncached frozen-encoder states agree in fp32 but differ by ~5e-3 in bf16."""
    from surgellm_hf.training import check_run_dir, write_run_config

    frozen = {"freeze_encoder": True}
    for precision in ("no", "bf16"):
        cfg = _cfg(tmp_path, mixed_precision=precision, cache_encoder_outputs=True, **frozen)
        write_run_config(cfg, {})
        if not (tmp_path / "run" / "checkpoints" / "checkpoint-2").is_dir():
            _checkpoint(tmp_path / "run" / "checkpoints", 2)
        uncached = _cfg(tmp_path, mixed_precision=precision, cache_encoder_outputs=False, **frozen)
        if precision == "no":
            assert check_run_dir(uncached) == "resume"
        else:
            with pytest.raises(
                ValueError, match=r"cache_encoder_outputs: saved true, requested false \(in bf16"
            ):
                check_run_dir(uncached)
    # with a trained encoder the setting has no effect, in any precision
    write_run_config(_cfg(tmp_path, mixed_precision="bf16"), {})
    assert check_run_dir(_cfg(tmp_path, mixed_precision="bf16", cache_encoder_outputs=False)) == "resume"


@pytest.mark.parametrize("saved", [("config.json", "model.safetensors"), ("surge_adapter_config.json",)])
def test_overwrite_refuses_a_saved_model_that_no_run_wrote(tmp_path, saved):
    """A `save_adapter` folder or a saved model without run records is the user's model, not a run folder: with or
    without overwrite it is refused, and every file stays."""
    from surgellm_hf.training import check_run_dir

    run = tmp_path / "run"
    run.mkdir()
    for name in (*saved, "processor_config.json"):
        (run / name).write_text("{}")
    before = sorted(p.name for p in run.iterdir())
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="no run"):
            check_run_dir(_cfg(tmp_path, overwrite=overwrite))
    assert sorted(p.name for p in run.iterdir()) == before
