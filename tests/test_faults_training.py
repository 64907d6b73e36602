"""Real faults around training: a process SIGKILLed mid checkpoint save, a full disk (RLIMIT_FSIZE) mid save, two
`surgellm train` processes on one run folder, two processes writing one encoder cache, `--overwrite` beside a
user's files. Every fault is real (child processes, real signals, real rlimits); a child reaches its fault at a known
point through a small hook passed with `python -c`, and says so on a pipe, so nothing depends on timing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from surgellm_hf.cli import main
from tests._helpers import write_run_config

STEPS_PER_EPOCH = 6  # 48 training rows per task, batches of 16, task-homogeneous: 3 + 3


def _child_argv(hook: str, *argv: str) -> list[str]:
    """A Python running `hook`, then `surgellm <argv>` (its exit code), in a fresh process."""
    code = (
        textwrap.dedent(hook)
        + "\nimport sys\nfrom surgellm_hf.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    return [sys.executable, "-c", code, *argv]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run_child(hook: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        _child_argv(hook, *argv), capture_output=True, text=True, timeout=600, env=_env(), cwd=cwd
    )


def _config(tmp_path: Path, encoder: Path, **overrides) -> Path:
    return write_run_config(
        tmp_path,
        encoder,
        # checkpoints kept after the run ends, so the checks below can see which ones a resume left
        **{"epochs": 2, "output_dir": str(tmp_path / "run"), "keep_checkpoints": True, **overrides},
    )


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_bert_with_tokenizer) -> tuple[Path, Path]:
    """An uninterrupted two-epoch run: what every resumed run below must reproduce."""
    tmp = tmp_path_factory.mktemp("reference")
    config = _config(tmp, tiny_bert_with_tokenizer)
    assert main(["train", "--config", str(config)]) == 0
    return config, tmp / "run"


def _assert_same_as_reference(run: Path, reference: Path) -> None:
    got, ref = (json.loads((p / "metrics.json").read_text()) for p in (run, reference))
    assert got["training"]["global_steps"] == ref["training"]["global_steps"] == 2 * STEPS_PER_EPOCH
    assert got["validation_history"] == pytest.approx(ref["validation_history"])
    a, b = load_file(reference / "model.safetensors"), load_file(run / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)


def _resume_and_check(
    config: Path,
    run: Path,
    reference: Path,
    caplog: pytest.LogCaptureFixture,
    resumed_from: int = STEPS_PER_EPOCH,
) -> None:
    """Train again (nothing deleted by hand): the run resumes from checkpoint-`resumed_from`, says why it skipped a
    newer cut-short checkpoint and removes it, and ends exactly as the uninterrupted run."""
    newer = [p for p in (run / "checkpoints").iterdir() if int(p.name.split("-")[1]) > resumed_from]
    with caplog.at_level("WARNING"):
        assert main(["train", "--config", str(config)]) == 0
    for cut_short in newer:
        assert f"Skipping and removing checkpoint {cut_short}, which cannot be resumed from" in caplog.text
    record = json.loads((run / "metrics.json").read_text())
    assert record["training"]["resumed_from"] == str(run / "checkpoints" / f"checkpoint-{resumed_from}")
    _assert_same_as_reference(run, reference)
    for checkpoint in (run / "checkpoints").iterdir():  # only complete checkpoints are left
        assert (checkpoint / "trainer_state.json").is_file(), checkpoint
    assert not [p for p in run.rglob(".tmp*")]  # and no temporary of a cut-short save


_KILL_MID_OPTIMIZER_SAVE = """
import io, os, signal
import torch

_save = torch.save

def cut_short(obj, f, *args, **kwargs):
    if not str(f).endswith(os.path.join("checkpoint-12", "optimizer.pt")):
        return _save(obj, f, *args, **kwargs)
    buffer = io.BytesIO()
    _save(obj, buffer, *args, **kwargs)
    with open(f, "wb") as out:  # torch.save writes straight into the file: half of it, then a real kill
        out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        out.flush()
        os.fsync(out.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = cut_short
"""


def test_a_kill_mid_checkpoint_save_resumes_from_the_newest_complete_checkpoint(
    reference_run, tmp_path, tiny_bert_with_tokenizer, caplog
):
    """SIGKILL while the second checkpoint's optimizer state is half written: every later run used to fail on
    that checkpoint (no trainer_state.json) until it was deleted by hand."""
    config = _config(tmp_path, tiny_bert_with_tokenizer)
    proc = _run_child(_KILL_MID_OPTIMIZER_SAVE, "train", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    run = tmp_path / "run"
    complete, cut_short = (run / "checkpoints" / f"checkpoint-{n}" for n in (6, 12))
    assert (complete / "trainer_state.json").is_file() and not (cut_short / "trainer_state.json").exists()
    assert (cut_short / "model.safetensors").is_file()
    assert 0 < (cut_short / "optimizer.pt").stat().st_size < (complete / "optimizer.pt").stat().st_size
    _resume_and_check(config, run, reference_run[1], caplog)


_FILL_THE_DISK = """
import resource, signal
from transformers import Trainer

KILLED_BY_THE_KERNEL = {killed}
_save = Trainer._save_checkpoint

def fill_the_disk():
    # from now on no file may grow past 1 MiB (the model's weights are about 4 MB): a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    if KILLED_BY_THE_KERNEL:  # Python ignores SIGXFSZ (a write fails with EFBIG); by default the kernel kills
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

def then_fill_the_disk(self, *args, **kwargs):
    _save(self, *args, **kwargs)
    if {at_the_final_save}:
        import surgellm_hf.training.run as training_run

        _final = training_run._save_model_and_processor

        def final_save(*a, **k):
            fill_the_disk()
            return _final(*a, **k)

        training_run._save_model_and_processor = final_save
    elif self.state.global_step == 6:
        fill_the_disk()

Trainer._save_checkpoint = then_fill_the_disk
"""


@pytest.mark.parametrize("killed", [False, True], ids=["write-fails", "killed-by-SIGXFSZ"])
def test_a_full_disk_mid_checkpoint_save_and_the_run_resumes(
    reference_run, tmp_path, tiny_bert_with_tokenizer, caplog, killed
):
    """The disk fills up while the second checkpoint's weights are written: the write fails (the run ends with
    one error line) or the kernel kills the process (SIGXFSZ), leaving safetensors' temporary file behind."""
    config = _config(tmp_path, tiny_bert_with_tokenizer)
    hook = _FILL_THE_DISK.format(killed=killed, at_the_final_save=False)
    proc = _run_child(hook, "train", "--config", str(config), cwd=tmp_path)
    cut_short = tmp_path / "run" / "checkpoints" / "checkpoint-12"
    assert not (cut_short / "trainer_state.json").exists() and not (cut_short / "model.safetensors").exists()
    temporaries = list(cut_short.glob(".tmp*"))
    if killed:
        assert proc.returncode == -signal.SIGXFSZ, proc.stderr[-3000:]
        assert len(temporaries) == 1  # safetensors' temporary file of the weights: the kill left it
    else:
        assert proc.returncode == 1, proc.stderr[-3000:]
        last_line = proc.stderr.strip().splitlines()[-1]
        assert last_line.startswith("surgellm train: error:") and "File too large" in last_line
        assert "Traceback" not in proc.stderr and temporaries == []  # safetensors removed its own temporary
    _resume_and_check(config, tmp_path / "run", reference_run[1], caplog)


def test_a_kill_mid_final_save_leaves_nothing_behind_after_the_rerun(
    reference_run, tmp_path, tiny_bert_with_tokenizer, caplog
):
    """Killed (SIGXFSZ on a full disk) while the trained model is written into the run folder: the rerun restores
    the last checkpoint, trains nothing more, saves the model and removes the dead save's temporary file."""
    config = _config(tmp_path, tiny_bert_with_tokenizer)
    hook = _FILL_THE_DISK.format(killed=True, at_the_final_save=True)
    proc = _run_child(hook, "train", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr[-3000:]
    run = tmp_path / "run"
    temporaries = list(run.glob(".tmp*"))
    assert len(temporaries) == 1 and not (run / "metrics.json").exists()
    _resume_and_check(config, run, reference_run[1], caplog, resumed_from=2 * STEPS_PER_EPOCH)
    assert f"Removing {temporaries[0]}, left by a save of the model that was cut short" in caplog.text


_PAUSE = """
import sys
{import_target}

_original = target.{name}

def paused(*args, **kwargs):
    print("READY", flush=True)  # holding the run folder's lock, where there is one
    sys.stdin.readline()  # until the test says go
    return _original(*args, **kwargs)

target.{name} = paused
"""


@pytest.mark.parametrize(
    "import_target, name",
    [
        ("import surgellm_hf.training.run as target", "write_run_config"),
        ("from transformers import Trainer as target", "train"),
    ],
    ids=["before-its-first-write", "while-it-trains"],
)
def test_a_second_train_on_a_folder_in_use_is_refused_naming_the_holder(
    tmp_path, tiny_bert_with_tokenizer, import_target, name
):
    """Two `surgellm train` of different settings on one folder, the first stopped before it writes anything (as
    when both start together) or while it trains: the second is refused naming the first, and the folder ends
    holding the first run only."""
    config = _config(tmp_path, tiny_bert_with_tokenizer)
    hook = _PAUSE.format(import_target=import_target, name=name)
    with open(tmp_path / "first.err", "w") as first_err:
        first = subprocess.Popen(
            _child_argv(hook, "train", "--config", str(config)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=first_err,
            text=True,
            env=_env(),
            cwd=tmp_path,
        )
        try:
            assert first.stdout.readline().strip() == "READY", (tmp_path / "first.err").read_text()[-3000:]
            second = subprocess.run(
                [sys.executable, "-m", "surgellm_hf.cli", "train", "--config", str(config), "seed=1"],
                capture_output=True,
                text=True,
                timeout=600,
                env=_env(),
                cwd=tmp_path,
            )
            first.stdin.write("go\n")
            first.stdin.close()
            out = first.stdout.read()
            assert first.wait(timeout=600) == 0, (tmp_path / "first.err").read_text()[-3000:]
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in second.stderr
    assert f"run folder {tmp_path / 'run'} is in use by another training run (pid {first.pid} " in err[0]
    assert f"command: -c train --config {config})" in err[0]
    assert "Run finished" not in second.stdout and "Run finished" in out
    run = tmp_path / "run"
    assert json.loads((run / "run_config.json").read_text())["config"]["seed"] == 0
    assert json.loads((run / "metrics.json").read_text())["seed"] == 0
    # the lock went with its holder: a third process may use the folder now (here: finds the run finished)
    assert main(["train", "--config", str(config)]) == 0


def test_overwrite_never_touches_a_users_files(tmp_path, tiny_bert_with_tokenizer, capsys):
    """A folder of a user's files is refused, with or without --overwrite; in a run folder that also holds a user's
    files, --overwrite removes what the run wrote (adapter files of a LoRA run included) and nothing else."""
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    (mine / "notes.md").write_text("my notes")
    (mine / "data" / "rows.csv").write_text("a,b\n1,2\n")
    before = sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*"))
    config = _config(tmp_path, tiny_bert_with_tokenizer, epochs=1)
    for flags in ([], ["--overwrite"]):
        capsys.readouterr()
        assert main(["train", "--config", str(config), f"output_dir={mine}", *flags]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is not empty (data, notes.md) and holds no run" in err[0]
        assert "choose another output_dir" in err[0]
        assert sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*")) == before
    assert (mine / "notes.md").read_text() == "my notes"

    from surgellm_hf.training import is_run_written
    from surgellm_hf.training.run_lock import LOCK_FILES

    run = tmp_path / "run"
    lora = "lora={r: 4, alpha: 8, dropout: 0.0}"
    assert main(["train", "--config", str(config), lora]) == 0
    written = {p.name for p in run.iterdir()} - set(LOCK_FILES)
    assert "adapter_model.safetensors" in written and all(is_run_written(n) for n in written), written
    (run / "notes.md").write_text("my notes")
    (run / "data").mkdir()
    (run / "data" / "rows.csv").write_text("a,b\n")
    assert main(["train", "--config", str(config), "--overwrite"]) == 0  # a full fine-tune this time
    names = {p.name for p in run.iterdir()} - set(LOCK_FILES)
    assert {"notes.md", "data"} <= names and (run / "data" / "rows.csv").read_text() == "a,b\n"
    assert not any(n.startswith("adapter_") for n in names)  # the LoRA run's adapter is gone
    assert all(is_run_written(n) for n in names - {"notes.md", "data"}), names
    assert json.loads((run / "metrics.json").read_text())["run_config"]["lora"] is None


# ------------------------------------------------------------------------------------------ encoder cache


def _states(first: int, count: int) -> dict[bytes, np.ndarray]:
    """The (key, state) pairs `_CACHE_WRITER` puts: states are a function of the key's number."""
    return {
        i.to_bytes(16, "big"): np.full(8, float(i), dtype=np.float32) + np.arange(8, dtype=np.float32)
        for i in range(first, first + count)
    }


_CACHE_WRITER = """
import sys
import numpy as np
from surgellm_hf.training.encoder_cache import EncoderStateCache

folder, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = EncoderStateCache(folder, "fp")
for i in range(first, first + count):
    cache.put(i.to_bytes(16, "big"), np.full(8, float(i), dtype=np.float32) + np.arange(8, dtype=np.float32))
{hook}
cache.save()
print("SAVED", flush=True)
"""

_PAUSE_BEFORE_RENAME = """
import os
_replace = os.replace

def paused(src, dst, *args, **kwargs):
    if str(dst).endswith("first_token_states-fp.npz"):
        print("PAUSED", flush=True)  # its temporary file is written; the rename is next
        sys.stdin.readline()
    return _replace(src, dst, *args, **kwargs)

os.replace = paused
"""

_ANNOUNCE_THE_WAIT = """
import filelock
_acquire = filelock.FileLock.acquire

def announced(self, *args, **kwargs):
    print("WAITING", flush=True)
    return _acquire(self, *args, **kwargs)

filelock.FileLock.acquire = announced
"""


def _cache_writer(folder: Path, first: int, count: int, hook: str = "") -> subprocess.Popen:
    code = _CACHE_WRITER.replace("{hook}", textwrap.dedent(hook))
    return subprocess.Popen(
        [sys.executable, "-c", code, str(folder), str(first), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def test_two_processes_saving_one_encoder_cache_keep_a_valid_file_with_both_their_states(tmp_path):
    """One writer is stopped between writing its temporary file and renaming it while a second writer saves: the
    cache ends valid (its checksum verified on load) and holding the states of both, with no temporary left."""
    from surgellm_hf.training.encoder_cache import EncoderStateCache

    first = _cache_writer(tmp_path, 0, 300, _PAUSE_BEFORE_RENAME)
    second = None
    try:
        assert first.stdout.readline().strip() == "PAUSED", first.stderr.read()[-3000:]
        second = _cache_writer(tmp_path, 1000, 200, _ANNOUNCE_THE_WAIT)
        second.stdout.readline()  # WAITING for the lock the first one holds (EOF where there is no lock)
        first.stdin.write("go\n")
        first.stdin.close()
        results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in (first, second)]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    for code, out, err in results:
        assert code == 0 and "SAVED" in out, err[-3000:]
    cache = EncoderStateCache(tmp_path, "fp")
    expected = {**_states(0, 300), **_states(1000, 200)}
    assert len(cache) == len(expected)
    for key, state in expected.items():
        np.testing.assert_array_equal(cache.get(key), state)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*.tmp.npz"))


_KILL_MID_CACHE_WRITE = """
import io, os, signal
_savez = np.savez

def cut_short(file, *args, **kwargs):
    buffer = io.BytesIO()
    _savez(buffer, *args, **kwargs)
    data = buffer.getvalue()
    target = file if hasattr(file, "write") else open(file, "wb")
    target.write(data[: len(data) // 2])  # half the file, then a real kill
    target.flush()
    os.kill(os.getpid(), signal.SIGKILL)

np.savez = cut_short
"""


def test_a_cache_writer_killed_mid_save_leaves_the_previous_cache_and_its_temporary_is_removed(
    tmp_path, caplog
):
    from surgellm_hf.training.encoder_cache import EncoderStateCache

    saved = _cache_writer(tmp_path, 0, 50)
    assert saved.wait(timeout=300) == 0, saved.stderr.read()
    killed = _cache_writer(tmp_path, 100, 50, _KILL_MID_CACHE_WRITE)
    assert killed.wait(timeout=300) == -signal.SIGKILL, killed.stderr.read()
    leftovers = list(tmp_path.glob(".first_token_states-fp.npz.*.tmp"))
    assert len(leftovers) == 1  # the killed writer's temporary
    with caplog.at_level("WARNING"):
        cache = EncoderStateCache(tmp_path, "fp")  # the file is the first writer's, intact
    assert "Ignoring" not in caplog.text and len(cache) == 50
    cache.put(b"k" * 16, np.zeros(8, dtype=np.float32))
    with caplog.at_level("WARNING"):
        cache.save()
    assert f"Removing {leftovers[0]}, left by an encoder cache save that was cut short" in caplog.text
    assert not list(tmp_path.glob("*.tmp")) and len(EncoderStateCache(tmp_path, "fp")) == 51
