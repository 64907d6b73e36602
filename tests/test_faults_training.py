"""Real faults around training: two processes writing one encoder cache, a cache writer killed mid-save. Every fault
is real (child processes, real signals); a child reaches its fault at a known point through a small hook passed with
`python -c`, and says so on a pipe, so nothing depends on timing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


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
