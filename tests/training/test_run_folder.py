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
