"""Default request limits of `surgellm serve` (shared by the command line and the server, which it imports lazily)."""

from __future__ import annotations

DEFAULT_MAX_INPUTS = 256
"""Texts one ``POST /predict`` may send (``--max-inputs``)."""

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""Largest request body the server reads (``--max-body-bytes``)."""

__all__ = ["DEFAULT_MAX_INPUTS", "DEFAULT_MAX_BODY_BYTES"]
