"""Shared test helpers for the Hub: a `hub_server` fixture (a LocalHub on a free loopback port) and
`run_python`, which runs code in a fresh interpreter pointed at that server.

huggingface_hub reads HF_ENDPOINT / HF_HUB_OFFLINE / HF_HUB_CACHE once, at import time, and CI sets
HF_HUB_OFFLINE=1 for the test process. So every push and every load runs in a subprocess with its own
environment: online, aimed at the local server, with a private cache. By default that subprocess
cannot import surgellm_hf (the user who never installed it); `surgellm=True` gives the author's side.
tests/conftest.py loads this module as a plugin, so its fixtures serve every test.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.hub_server import LocalHub

REPO_ROOT = Path(__file__).resolve().parents[1]
SRC_DIR = REPO_ROOT / "src"

# Prepended to every subprocess that must behave as if surgellm_hf were not installed: removes the
# checkout's src/ from sys.path (the editable install adds it through a .pth file) and refuses the import.
_BLOCK_SURGELLM = f"""
import importlib.abc as _abc, os as _os, sys as _sys
_src = _os.path.realpath({str(SRC_DIR)!r})
_sys.path[:] = [p for p in _sys.path if not _os.path.realpath(p or ".").startswith(_src)]
class _BlockSurgellm(_abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "surgellm_hf" or name.startswith("surgellm_hf."):
            raise ModuleNotFoundError(f"No module named {{name!r}} (surgellm_hf is not installed here)", name=name)
        return None
_sys.meta_path.insert(0, _BlockSurgellm())
del _abc, _os, _sys, _src, _BlockSurgellm
"""

_RESULT_MARKER = "@@RESULT@@"


@dataclass
class HubSession:
    """A running LocalHub plus what a client process needs to reach it."""

    hub: LocalHub
    workdir: Path

    @property
    def endpoint(self) -> str:
        return self.hub.endpoint

    @property
    def token(self) -> str:
        return self.hub.token

    def env(self, cache_dir: Path | None = None) -> dict[str, str]:
        """Environment of a client process: online, aimed at this server, private caches, no Xet, no proxy."""
        cache_dir = cache_dir or Path(tempfile.mkdtemp(prefix="hf_home_", dir=self.workdir))
        env = {k: v for k, v in os.environ.items() if k.upper() not in _DROPPED_ENV}
        env.update(
            HF_ENDPOINT=self.endpoint,
            HF_TOKEN=self.token,
            HF_HOME=str(cache_dir),
            HF_HUB_CACHE=str(cache_dir / "hub"),
            HF_MODULES_CACHE=str(cache_dir / "modules"),
            HF_HUB_DISABLE_XET="1",
            HF_HUB_OFFLINE="0",
            TRANSFORMERS_OFFLINE="0",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_IMPLICIT_TOKEN="0",
            TOKENIZERS_PARALLELISM="false",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        return env

    def run_python(self, code: str, *, surgellm: bool = False, timeout: float = 300) -> Any:
        """Run `code` in a fresh interpreter against this Hub and return what it passed to `result(...)`.

        `code` may call `result(obj)` once to hand back a JSON-serialisable value. Without `surgellm=True`
        the interpreter runs isolated (`python -I`) and `import surgellm_hf` raises ModuleNotFoundError.
        """
        return run_python(code, self.env(), surgellm=surgellm, timeout=timeout, cwd=self.workdir)


_DROPPED_ENV = {
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_MODULES_CACHE",
    "PYTHONPATH",
}


def run_python(
    code: str, env: dict[str, str], *, surgellm: bool = False, timeout: float = 300, cwd: Path | None = None
) -> Any:
    """Run `code` in a new interpreter with `env`; return the value given to `result()`, or None.

    Raises AssertionError carrying the child's stdout/stderr when it exits non-zero.
    """
    prelude = "" if surgellm else _BLOCK_SURGELLM
    if surgellm:  # the author's side runs this checkout's code, whichever copy the environment installed
        env = {**env, "PYTHONPATH": str(SRC_DIR)}
    helper = (
        "import json as _json\n"
        "def result(obj):\n"
        f"    print('\\n' + {_RESULT_MARKER!r} + _json.dumps(obj), flush=True)\n"
    )
    script = prelude + helper + textwrap.dedent(code)
    with tempfile.NamedTemporaryFile("w", suffix=".py", dir=cwd, delete=False) as handle:
        handle.write(script)
        path = handle.name
    try:
        args = [sys.executable, *([] if surgellm else ["-I"]), path]
        proc = subprocess.run(
            args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        raise AssertionError(
            f"subprocess failed with exit code {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}"
            f"\n--- stderr ---\n{proc.stderr[-12000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_RESULT_MARKER)]
    if not lines and "result(" in code:
        raise AssertionError(
            f"the subprocess returned no result\n--- stdout ---\n{proc.stdout[-6000:]}"
            f"\n--- stderr ---\n{proc.stderr[-6000:]}"
        )
    return json.loads(lines[-1][len(_RESULT_MARKER) :]) if lines else None


@contextlib.contextmanager
def local_hub_session(workdir: Path) -> Iterator[HubSession]:
    """Start a LocalHub storing under `workdir`; stop it on exit (for fixtures of any scope)."""
    hub = LocalHub(workdir / "hub_storage").start()
    try:
        yield HubSession(hub=hub, workdir=workdir)
    finally:
        hub.stop()


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[HubSession]:
    """A LocalHub serving on 127.0.0.1 (free port) for one test; shut down afterwards."""
    with local_hub_session(tmp_path) as session:
        yield session


@pytest.fixture(scope="module")
def module_hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubSession]:
    """A LocalHub shared by the tests of one module (for an expensive publish done once)."""
    with local_hub_session(tmp_path_factory.mktemp("module_hub")) as session:
        yield session
