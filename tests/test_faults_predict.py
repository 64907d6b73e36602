"""`surgellm predict --output FILE` never destroys what FILE held: arguments and input are checked before the output
is touched, and the predictions are written beside FILE and renamed over it only when every row succeeded.

Faults are real: a full disk (RLIMIT_FSIZE in the child process), an interrupt (SIGINT) mid-stream, a malformed input
line after records were already produced, a bad argument, and --output naming the --input file.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from surgellm_hf.cli import main
from tests._serving_utils import fitted_model

SRC_DIR = Path(__file__).resolve().parents[1] / "src"
OLD = "".join(
    json.dumps({"text": f"old row {i}", "label": i % 2}) + "\n" for i in range(40)
)  # the user's file
TEXTS = [f"row {i}: the film was {'great' if i % 3 else 'dull'}, I think {'!' * (i % 4)}" for i in range(60)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_bert_with_tokenizer) -> Path:
    model, processor = fitted_model(tiny_bert_with_tokenizer)
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _write_input(path: Path, texts: list[str], broken_at: int | None = None) -> Path:
    lines = [json.dumps({"text": t}) + "\n" for t in texts]
    if broken_at is not None:
        lines.insert(broken_at - 1, '{"text": "unterminated\n')  # line `broken_at` is not JSON
    path.write_text("".join(lines))
    return path


def _cli(args: list[str], **kwargs) -> subprocess.Popen:
    """`surgellm` in a child process running this checkout's code."""
    env = {**os.environ, "PYTHONPATH": str(SRC_DIR), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "surgellm_hf.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_leaves_the_existing_output_intact(model_dir, tmp_path):
    source = _write_input(tmp_path / "in.jsonl", TEXTS)
    out = tmp_path / "out.jsonl"
    out.write_text(OLD)
    limit = 4096  # the 60 predictions take about 10 kB: the disk "fills" part way through
    proc = _cli(
        [
            "predict",
            str(model_dir),
            "--input",
            str(source),
            "--output",
            str(out),
            "--batch-size",
            "4",
            "--window",
            "8",
            "--no-progress",
        ],  # fmt: skip
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert err.strip().splitlines()[-1].startswith("surgellm predict: error: OSError") and "too large" in err
    assert out.read_text() == OLD
    assert _listing(tmp_path) == ["in.jsonl", "out.jsonl"]  # no partial file left behind
    # without the limit the same command replaces the file with every prediction (so the limit was the fault)
    assert (
        main(["predict", str(model_dir), "--input", str(source), "--output", str(out), "--no-progress"]) == 0
    )
    written = out.read_text()
    assert len(written.encode()) > limit and [json.loads(x)["text"] for x in written.splitlines()] == TEXTS


def test_an_interrupt_mid_stream_leaves_the_existing_output_intact(model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text(OLD)
    proc = _cli(
        [
            "predict",
            str(model_dir),
            "--input",
            "-",
            "--output",
            str(out),
            "--batch-size",
            "1",
            "--window",
            "1",
            "--no-progress",
        ],  # fmt: skip
        stdin=subprocess.PIPE,
    )
    for text in TEXTS[:5]:  # rows arrive one by one; the last read blocks, waiting for more
        proc.stdin.write(json.dumps({"text": text}) + "\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 240
    # wait until the output is being written (a partial file beside it, or, without one, the file itself)
    while out.read_text() == OLD and not [n for n in _listing(tmp_path) if n.endswith(".partial")]:
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"predict ended or stalled before writing: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    time.sleep(0.5)  # the five rows available are predicted; the sixth read blocks
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err
    assert out.read_text() == OLD and _listing(tmp_path) == ["out.jsonl"]


@pytest.mark.parametrize("existing", [True, False], ids=["over an existing file", "new file"])
def test_a_broken_input_line_mid_stream_leaves_no_partial_output(existing, model_dir, tmp_path, capsys):
    source = _write_input(tmp_path / "in.jsonl", TEXTS, broken_at=41)
    out = tmp_path / "out.jsonl"
    if existing:
        out.write_text(OLD)
    before = _listing(tmp_path)
    capsys.readouterr()
    # batches of 2 in windows of 4: forty records are predicted (and written) before line 41 is read
    argv = ["predict", str(model_dir), "--input", str(source), "--output", str(out), "--batch-size", "2"]
    assert main([*argv, "--window", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["surgellm predict: error: input line 41 is not valid JSON: Invalid control character at"]
    assert _listing(tmp_path) == before
    assert (out.read_text() == OLD) if existing else not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
        (["--window", "0"], "--window must be a positive integer, got 0"),
        (["--task", "nope"], "unknown task 'nope'"),
        (["--format", "csv"], "no 'text' column"),
    ],
)
def test_a_bad_argument_leaves_the_existing_output_intact(extra, message, model_dir, tmp_path, capsys):
    source = _write_input(tmp_path / "in.jsonl", TEXTS[:3])
    out = tmp_path / "out.jsonl"
    out.write_text(OLD)
    capsys.readouterr()
    argv = ["predict", str(model_dir), "--input", str(source), "--output", str(out), "--no-progress", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert out.read_text() == OLD and _listing(tmp_path) == ["in.jsonl", "out.jsonl"]


@pytest.mark.parametrize("spelling", ["same path", "another spelling", "a symlink"])
def test_output_naming_the_input_file_is_refused(spelling, model_dir, tmp_path, capsys, monkeypatch):
    source = _write_input(tmp_path / "texts.jsonl", TEXTS[:3])
    content = source.read_text()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    if spelling == "a symlink":
        (tmp_path / "link.jsonl").symlink_to(source)
    output = {"same path": str(source), "another spelling": "sub/../texts.jsonl", "a symlink": "link.jsonl"}
    capsys.readouterr()
    argv = ["predict", str(model_dir), "--input", str(source), "--output", output[spelling], "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"output {output[spelling]} is the input file" in err[0], err
    assert source.read_text() == content


def test_a_good_run_replaces_the_file_and_keeps_its_permissions(model_dir, tmp_path):
    from surgellm_hf.inference import load_run_model, predict_texts

    source = _write_input(tmp_path / "in.jsonl", TEXTS[:6])
    out = tmp_path / "out.jsonl"
    out.write_text(OLD)
    out.chmod(0o640)
    assert (
        main(["predict", str(model_dir), "--input", str(source), "--output", str(out), "--no-progress"]) == 0
    )
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    records = predict_texts(*load_run_model(model_dir), TEXTS[:6])
    assert [x["text"] for x in lines] == TEXTS[:6]
    assert [x["label_name"] for x in lines] == [r["label_name"] for r in records]
    assert [x["scores"] for x in lines] == [pytest.approx(r["scores"], abs=1e-6) for r in records]
    assert (out.stat().st_mode & 0o777) == 0o640 and _listing(tmp_path) == ["in.jsonl", "out.jsonl"]
