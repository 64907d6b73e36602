"""A finished run keeps no checkpoints (the best weights are in the run folder) unless `keep_checkpoints: true`, and
its last line says what the folder keeps; an unfinished run keeps them to resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from surgellm_hf.cli import main
from tests._helpers import interrupt_at_step, write_run_config


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _last_line(capsys: pytest.CaptureFixture) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_a_finished_run_deletes_its_checkpoints_and_says_what_it_keeps(
    tmp_path, tiny_bert_with_tokenizer, capsys, monkeypatch
):
    config = write_run_config(tmp_path, tiny_bert_with_tokenizer, epochs=2)
    run = tmp_path / "runs" / "IWN-seed0"
    interrupt_at_step(monkeypatch, 8)  # an unfinished run keeps its checkpoints to resume from
    assert main(["train", "--config", str(config)]) == 130
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["checkpoint-6"]
    monkeypatch.undo()
    assert main(["train", "--config", str(config)]) == 0
    line = _last_line(capsys)
    assert not (run / "checkpoints").exists() and (run / "model.safetensors").is_file()
    size = re.search(r"model \+ processor: (.+), (\d+) MB; no checkpoints kept\)$", line)
    assert size and size.group(1) == str(run) and int(size.group(2)) == round(_folder_bytes(run) / 1e6), line
    assert main(["train", "--config", str(config)]) == 0  # the finished run needs no checkpoints to be reused
    assert _last_line(capsys).startswith("Run already finished (nothing trained).")


def test_keep_checkpoints_keeps_them_and_says_how_large_they_are(tmp_path, tiny_bert_with_tokenizer, capsys):
    config = write_run_config(tmp_path, tiny_bert_with_tokenizer, epochs=2, keep_checkpoints=True)
    assert main(["train", "--config", str(config)]) == 0
    run = tmp_path / "runs" / "IWN-seed0"
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["checkpoint-12", "checkpoint-6"]
    line = _last_line(capsys)
    match = re.search(r", (\d+) MB; checkpoints kept: (\d+) MB\)$", line)
    checkpoints = _folder_bytes(run / "checkpoints")
    assert match and int(match.group(2)) == round(checkpoints / 1e6), line
    assert int(match.group(1)) == round((_folder_bytes(run) - checkpoints) / 1e6)
