"""Bad input to `surgellm train` is refused in one line naming the file and line, the key or the value, before
anything is written: broken or non-UTF-8 data lines, unparsable overrides, unknown output_dir fields, non-finite
numbers, a max_length too short for the prefix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from surgellm_hf.cli import main
from tests._helpers import QUICKSTART_DATA, write_run_config


def _data_copy(tmp_path: Path) -> Path:
    """The quickstart folder copied (the tests break its files)."""
    folder = tmp_path / "data"
    shutil.copytree(QUICKSTART_DATA, folder)
    return folder


def _train_error(capsys: pytest.CaptureFixture, config: Path, *overrides: str) -> str:
    """Run `surgellm train`; assert it fails with one error line and no traceback; return that line."""
    capsys.readouterr()
    assert main(["train", "--config", str(config), *overrides]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("surgellm")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err
    assert "Traceback" not in err
    return lines[0].removeprefix("surgellm train: error: ")


def _config(tmp_path: Path, encoder: Path, folder: Path | None = None, **overrides) -> Path:
    data = {"folder": str(folder)} if folder else None
    return write_run_config(tmp_path, encoder, data=data, **overrides)


@pytest.mark.parametrize("split", ["train", "validation"])
def test_a_broken_json_line_is_named_by_file_and_line(tmp_path, tiny_bert_with_tokenizer, capsys, split):
    folder = _data_copy(tmp_path)
    path = folder / "register" / f"{split}.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    broken = '{"text": "broken line", "label": 1'  # line 5 misses its closing brace
    lines[4] = broken + "\n"
    path.write_text("".join(lines))
    message = _train_error(capsys, _config(tmp_path, tiny_bert_with_tokenizer, folder))
    assert f"{path}, line 5, column {len(broken) + 1}: not valid JSON" in message
    assert not (tmp_path / "runs").exists()


def test_a_json_line_that_is_not_an_object_is_named(tmp_path):
    from surgellm_hf.data import load_folder

    folder = _data_copy(tmp_path)
    path = folder / "reviews" / "train.jsonl"
    path.write_text(path.read_text() + "[1, 2]\n")
    n = len(path.read_text().splitlines())
    with pytest.raises(ValueError, match=rf"train\.jsonl, line {n}: a JSON line must be one object"):
        load_folder(folder)


def test_a_non_utf8_byte_is_named_by_file_line_and_offset(tmp_path, tiny_bert_with_tokenizer, capsys):
    folder = _data_copy(tmp_path)
    path = folder / "reviews" / "train.jsonl"
    raw = path.read_bytes().split(b"\n")
    raw[2] = b'{"text": "caf\xe9 au lait", "label": 1}'  # Latin-1 é on line 3
    path.write_bytes(b"\n".join(raw))
    offset = len(raw[0]) + len(raw[1]) + 2 + raw[2].index(b"\xe9")
    message = _train_error(capsys, _config(tmp_path, tiny_bert_with_tokenizer, folder))
    assert f"{path}, line 3: not UTF-8 text (byte 0xe9 at byte offset {offset} of the file" in message
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("seed=[1,", "override 'seed=[1,': the value '[1,' is not valid YAML"),
        ("data.max_rows=1=2", "`data.max_rows` must be a positive integer or {split: positive integer}"),
        ("data..tasks=1", "override 'data..tasks=1' must look like key=value"),
        ("output_dir=runs/{foo}", "`output_dir` 'runs/{foo}' names the unknown field {foo}"),
        ("output_dir=runs/{}", "`output_dir` 'runs/{}' is not a valid folder pattern"),
        ("learning_rate=.inf", "`learning_rate` must be a finite number > 0, got inf"),
        ("learning_rate=nan", "`learning_rate` must be a finite number > 0, got nan"),
        ("weight_decay=-0.1", "`weight_decay` must be a finite number >= 0, got -0.1"),
        ("adam_epsilon=.nan", "`adam_epsilon` must be a finite number > 0, got nan"),
        ("max_grad_norm=.inf", "`max_grad_norm` must be a finite number >= 0, got inf"),
        ("module_lr_scale=-.inf", "`module_lr_scale` must be a finite number > 0, got -inf"),
        ("temperature=1e400", "`temperature` must be a finite number > 0, got inf"),
        ("warmup_ratio=.nan", "`warmup_ratio` must be a finite number >= 0 and < 1, got nan"),
    ],
)
def test_bad_overrides_are_named_before_anything_is_written(
    tmp_path, tiny_bert_with_tokenizer, capsys, override, expected
):
    config = _config(tmp_path, tiny_bert_with_tokenizer)
    message = _train_error(capsys, config, override)
    assert message.startswith(expected), message
    assert not (tmp_path / "runs").exists()


def test_a_bad_yaml_file_is_one_line_naming_its_line(tmp_path):
    from surgellm_hf.training import load_run_config

    path = tmp_path / "run.yaml"
    path.write_text("data:\n  folder: x\nseed: 1: 2\nvariant: IWN\n")
    with pytest.raises(ValueError) as err:
        load_run_config(path)
    message = str(err.value)
    assert "\n" not in message and message.endswith("mapping values are not allowed here at line 3, column 8")


@pytest.mark.parametrize(("style", "suggests_compact"), [("tokens", False), ("text", True)])
def test_a_max_length_too_short_for_the_prefix_suggests_only_what_helps(
    tmp_path, tiny_bert_with_tokenizer, capsys, style, suggests_compact
):
    config = _config(tmp_path, tiny_bert_with_tokenizer, prefix_style=style, max_length=12)
    message = _train_error(capsys, config)
    assert f"the '{style}' prefix takes" in message and "more than max_length=12" in message
    assert ("prefix_style: tokens" in message) is suggests_compact
    assert "prefix='tokens'" not in message or suggests_compact
    assert not (tmp_path / "runs").exists()


def test_surgellm_evaluate_names_the_broken_line_of_its_data(tmp_path, tiny_bert_with_tokenizer, capsys):
    """`surgellm evaluate RUN --data FOLDER` reads the scored split with the same loader: the same one line."""
    config = _config(tmp_path, tiny_bert_with_tokenizer)
    assert main(["train", "--config", str(config)]) == 0
    run = tmp_path / "runs" / "IWN-seed0"
    folder = _data_copy(tmp_path)
    path = folder / "reviews" / "test.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    broken = '{"text": "no comma" "label": 0}'
    lines[1] = broken + "\n"
    path.write_text("".join(lines))
    column = broken.index('"label"') + 1  # where a ',' was expected
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(folder), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        f"surgellm evaluate: error: task 'reviews', split 'test': {path}, line 2, column {column}:"
    )
