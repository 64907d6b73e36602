"""One training process per run folder: an OS file lock (`filelock`, flock on Unix) held while a run writes there.

The lock file lives inside the run folder and is never removed (not even by `overwrite`), so the lock a process
holds always guards the folder's current content. A sidecar JSON names the holder (host, pid, command, start time)
for the refusal message. The kernel releases the lock when its process dies, so a killed run never blocks the next
one. Under DDP (torchrun, accelerate launch) only the global main process locks: the other ranks are the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

LOCK_NAME = ".surgellm.lock"
LOCK_INFO_NAME = ".surgellm.lock.json"
LOCK_FILES = (LOCK_NAME, LOCK_INFO_NAME)
"""Names the lock keeps in a run folder; they belong to no run and are never deleted by `overwrite`."""


class RunFolderBusyError(RuntimeError):
    """Another process holds the lock of the run folder (it is training there)."""


def is_main_process() -> bool:
    """True in the global rank-0 process of a distributed launch (RANK), and in a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0


def _holder(run_dir: Path) -> str:
    """Who holds the lock of `run_dir`, as the holder wrote it in the sidecar (or a note that it is not known)."""
    try:
        info = json.loads((run_dir / LOCK_INFO_NAME).read_text())
        return f"pid {info['pid']} on {info['host']}, since {info['started']}, command: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its details yet"


def _busy(run_dir: Path) -> RunFolderBusyError:
    return RunFolderBusyError(
        f"run folder {run_dir} is in use by another training run ({_holder(run_dir)}); wait for it to end, or "
        "choose another output_dir"
    )


def refuse_if_in_use(run_dir: str | os.PathLike) -> None:
    """RunFolderBusyError naming the holder when another process holds the lock of `run_dir` (a check only: it
    holds nothing afterwards and creates nothing; in a process other than the global main one it checks nothing)."""
    path = Path(run_dir) / LOCK_NAME
    if not is_main_process() or not path.is_file():
        return
    probe = FileLock(str(path), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        raise _busy(Path(run_dir)) from None
    probe.release()


class RunFolderLock:
    """The lock of one run folder; `acquire()` is idempotent and never waits, `release()` runs on context exit.

    In a process other than the global main one it holds nothing and refuses nothing.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self._lock: FileLock | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._lock is not None

    def acquire(self) -> None:
        """Take the lock (creating the run folder); RunFolderBusyError naming the holder when another process has it."""
        if self.held or not is_main_process():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.run_dir / LOCK_NAME), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise _busy(self.run_dir) from None
        self._lock = lock
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]]),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        with contextlib.suppress(OSError):  # the details only serve the message of a refused process
            (self.run_dir / LOCK_INFO_NAME).write_text(json.dumps(info) + "\n")

    def release(self) -> None:
        """Let go of the lock (the holder's details first, so they never describe a later holder)."""
        if self._lock is None:
            return
        with contextlib.suppress(OSError):
            (self.run_dir / LOCK_INFO_NAME).unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def __enter__(self) -> RunFolderLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
