"""Serving SURGELLM models: ONNX export, an ONNX Runtime runner, int8 quantization and streaming prediction.

Needs the optional extras for ONNX: ``pip install "surgellm_hf[onnx]"``. Names load lazily, so importing this
package costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "export_onnx": "export",
    "export_run": "export",
    "check_parity": "export",
    "OnnxSurgeClassifier": "runtime",
    "read_serving_config": "runtime",
    "is_exported_folder": "runtime",
    "quantize_export": "quantize",
    "quantization_report": "quantize",
    "Predictor": "streaming",
    "TorchPredictor": "streaming",
    "load_predictor": "streaming",
    "read_rows": "streaming",
    "stream_predict": "streaming",
    "predict_file": "streaming",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_LAZY)
