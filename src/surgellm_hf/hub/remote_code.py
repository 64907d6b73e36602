"""The files the Hub copies for `trust_remote_code`, declared in one place.

`save_pretrained` (model and processor) copies each class's module and its relative imports; publishing then makes
sure every module listed here is in the uploaded folder, so a repo always carries the whole set. These modules are
flat siblings: they import each other only as ``from .x import y`` and, apart from that, only the standard library
and `REMOTE_CODE_DEPENDENCIES` (tests/hub/test_remote_code.py checks their import closure).
"""

from __future__ import annotations

import shutil
from pathlib import Path

REMOTE_CODE_MODULES: tuple[str, ...] = (
    "configuration_surge",
    "modeling_surge",
    "processing_surge",
    "pipeline_surge",
    "explaining_surge",
    "normalization",
    "features",
    "lexicon",
    "problem_types",
    "losses_surge",
    "modeling_surge_modules",
)
"""Modules of `surgellm_hf` that a model repo carries as remote code."""

REMOTE_CODE_DEPENDENCIES: tuple[str, ...] = (
    "torch",
    "numpy",
    "transformers",
    "huggingface_hub",
    "safetensors",
)
"""Third-party packages remote code may import (besides the standard library)."""

OPTIONAL_PACKAGE_IMPORTS: dict[str, tuple[str, ...]] = {
    "lexicon": ("surgellm_hf.lexicon_extraction",),
    "modeling_surge_modules": ("surgellm_hf.encoders",),
}
"""Package modules a remote-code module imports only when surgellm_hf is installed (with a clear error, or a plain
fallback, otherwise): `Lexicon.extract` and `Lexicon.random_like` need scikit-learn, wordfreq and an encoder; the
model maps the bundled encoder's Hub id to its local copy (`modeling_surge_modules.encoder_names`)."""

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def remote_code_files() -> list[Path]:
    """The source files of `REMOTE_CODE_MODULES` in this installation."""
    return [_PACKAGE_DIR / f"{name}.py" for name in REMOTE_CODE_MODULES]


def copy_remote_code(folder: str | Path) -> list[Path]:
    """Copy every remote-code file that `save_pretrained` did not already write into `folder`; returns the copies."""
    folder = Path(folder)
    copied = []
    for source in remote_code_files():
        target = folder / source.name
        if not target.exists():
            shutil.copyfile(source, target)
            copied.append(target)
    return copied


__all__ = [
    "REMOTE_CODE_MODULES",
    "REMOTE_CODE_DEPENDENCIES",
    "OPTIONAL_PACKAGE_IMPORTS",
    "copy_remote_code",
    "remote_code_files",
]
