"""Defaults the command line shares with the modules it imports lazily (so ``surgellm --help`` needs no torch): the
request limits of `surgellm serve` and the ONNX opsets of `surgellm export`."""

from __future__ import annotations

DEFAULT_MAX_INPUTS = 256
"""Texts one ``POST /predict`` may send (``--max-inputs``)."""

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""Largest request body the server reads (``--max-body-bytes``)."""

DEFAULT_OPSET = 18
"""The ONNX opset `surgellm export` writes (``--opset``)."""

SUPPORTED_OPSETS = range(18, 26)
"""ONNX opsets an export may target: torch.onnx's dynamo exporter writes opset 18 and converts upward (under 18
its converter fails on LayerNormalization, or leaves the graph at 18); ONNX Runtime 1.32 runs up to 25."""

__all__ = ["DEFAULT_MAX_INPUTS", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_OPSET", "SUPPORTED_OPSETS"]
