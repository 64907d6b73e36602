"""Shared test helpers (imported as ``tests._helpers``): data folders, tiny encoder specs, run configs, an isolated
Python runner, a two-process torchrun launch and a training interrupt. The fixtures built on them live in conftest.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
QUICKSTART_DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "quickstart"


def write_run_config(
    tmp_path: Path, encoder: Path, name: str = "run.yaml", data: dict | None = None, **overrides
) -> Path:
    """A small `surgellm train` YAML on the quickstart data (tasks in non-alphabetical order): IWN, one epoch,
    the compact prefix (the text prefix needs max_length >= 86); `data` entries and `overrides` replace the base's."""
    import yaml

    cfg = {
        "encoder": str(encoder),
        "data": {
            "folder": str(QUICKSTART_DATA),
            "tasks": ["reviews", "register"],  # not alphabetical: the order must survive every file
            "max_rows": {"train": 48, "validation": 24, "test": 24},
            **(data or {}),
        },
        "variant": "IWN",
        "epochs": 1,
        "learning_rate": 1e-3,
        "batch_size": 16,
        "max_length": 48,
        "prefix_style": "tokens",
        "disable_tqdm": True,
        "output_dir": str(tmp_path / "runs" / "{variant}-seed{seed}"),
        **overrides,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def interrupt_at_step(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the next `train_run` raise KeyboardInterrupt (as Ctrl-C would) when about to train step `step + 1`."""
    import surgellm_hf.training.run as training_run

    class Interrupted(training_run.SurgeTrainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            if self.state.global_step >= step:
                raise KeyboardInterrupt
            return super().training_step(model, inputs, num_items_in_batch)

    monkeypatch.setattr(training_run, "SurgeTrainer", Interrupted)


# name -> (config class name, kwargs); all small enough to build in milliseconds.
_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=120)
TINY_ENCODERS: dict[str, tuple[str, dict]] = {
    "bert": ("BertConfig", dict(_TINY, max_position_embeddings=160)),
    "roberta": ("RobertaConfig", dict(_TINY, max_position_embeddings=162, pad_token_id=1)),
    "xlm-roberta": ("XLMRobertaConfig", dict(_TINY, max_position_embeddings=162, pad_token_id=1)),
    "distilbert": ("DistilBertConfig", dict(dim=32, n_layers=2, n_heads=2, hidden_dim=37, vocab_size=120)),
    "deberta-v2": (
        "DebertaV2Config",
        dict(
            _TINY,
            max_position_embeddings=160,
            relative_attention=True,
            position_buckets=16,
            pos_att_type=["p2c", "c2p"],
        ),
    ),
    "electra": ("ElectraConfig", dict(_TINY, embedding_size=16, max_position_embeddings=160)),
}


def build_tiny_encoder(family: str, path: Path, seed: int = 0) -> Path:
    """Save a tiny randomly initialised encoder of `family` to `path` (a stand-in for a Hub checkpoint)."""
    import transformers
    from transformers import AutoModel

    cls_name, kwargs = TINY_ENCODERS[family]
    config = getattr(transformers, cls_name)(**kwargs)
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(path)
    return path


_BLOCK_PACKAGE = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "surgellm_hf" or name.startswith("surgellm_hf."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: this process plays a user without it)")
        return None
sys.meta_path.insert(0, _Block())
"""


def run_isolated(code: str, tmp_path: Path, env: dict[str, str] | None = None, timeout: int = 300) -> dict:
    """Run `code` in a fresh Python in which surgellm_hf cannot be imported; return the JSON it prints last."""
    script = tmp_path / "isolated_user.py"
    script.write_text(_BLOCK_PACKAGE + textwrap.dedent(code))
    full_env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "hf_modules"), **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"isolated process failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A free local TCP port (for a server or a process group the test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_two_cpu(args: list[str], cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run` with two processes of one thread each on a free local port, output captured."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"},
        cwd=cwd,
    )
