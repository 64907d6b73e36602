"""Atomic file writes: a file is written to a temporary name beside its target and renamed over it only when the
write succeeded, so a reader (or a crash, a kill, a full disk) never sees it half written and an existing file is
never truncated. Used for every record a run or a command writes (docs/troubleshooting.md#atomic-writes)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def replace_on_success(path: str | os.PathLike) -> Iterator[IO[str]]:
    """A text file to write `path` through: a temporary file beside it, renamed over `path` only when the block
    succeeds; on any error it is removed, so an existing `path` is never truncated or half written."""
    target = Path(os.path.realpath(path))  # a symlink: replace the file it points to, not the link
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    tmp = Path(name)
    out = open(handle, "w", encoding="utf-8")  # noqa: SIM115 - closed below on every path
    try:
        if target.exists():
            shutil.copymode(target, tmp)
        else:  # mkstemp makes it private; a new file gets the usual permissions
            umask = os.umask(0)
            os.umask(umask)
            tmp.chmod(0o666 & ~umask)
        yield out
        out.flush()
        os.fsync(out.fileno())
        out.close()
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):  # closing flushes, which fails again on a full disk
            out.close()
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically (`replace_on_success`); returns the path."""
    with replace_on_success(path) as out:
        out.write(text)
    return Path(path)


__all__ = ["replace_on_success", "atomic_write_text"]
