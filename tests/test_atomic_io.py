"""Atomic writes (`surgellm_hf.atomic_io`): a failing write, a full disk or a kill never leaves a target file half
written, and an existing file keeps its content and permissions until the new one is complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from surgellm_hf.atomic_io import atomic_write_text, replace_on_success


def test_a_failing_block_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old\n")
    target.chmod(0o640)
    with pytest.raises(RuntimeError), replace_on_success(target) as out:
        out.write("new, half")
        raise RuntimeError("broken on the way")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n" and (target.stat().st_mode & 0o777) == 0o640


@pytest.mark.parametrize("on_limit", ["error", "signal"])
def test_a_full_disk_never_truncates_the_existing_file(tmp_path, on_limit):
    """RLIMIT_FSIZE in a child: with SIGXFSZ ignored the write fails (EFBIG) and the temporary is removed; with the
    default action the kernel kills the child mid-write. Either way the old file is whole."""
    target = tmp_path / "run_config.json"
    target.write_text("old content\n")
    code = textwrap.dedent(
        f"""
        import resource, signal, sys
        from surgellm_hf.atomic_io import atomic_write_text
        # CPython ignores SIGXFSZ (the write then fails with EFBIG); the default action kills the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN if {on_limit!r} == "error" else signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            atomic_write_text({str(target)!r}, "x" * 100_000)
        except OSError as err:
            print("refused:", err.errno)
            sys.exit(3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if on_limit == "error":
        assert proc.returncode == 3, proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run_config.json"]
    else:
        assert proc.returncode == -signal.SIGXFSZ, proc.stderr
    assert target.read_text() == "old content\n"


def test_writes_through_a_symlink_replace_the_file_it_points_to(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    os.symlink(real, link)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
