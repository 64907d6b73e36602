"""Serving SURGELLM models: ONNX export, an ONNX Runtime runner, int8 quantization and streaming prediction.

Needs the optional extras for ONNX: ``pip install "surgellm_hf[onnx]"``. Names load lazily, so importing this
package costs nothing until one is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports as _lazy_exports

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

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:
    from .export import check_parity, export_onnx, export_run
    from .quantize import quantization_report, quantize_export
    from .runtime import OnnxSurgeClassifier, is_exported_folder, read_serving_config
    from .streaming import Predictor, TorchPredictor, load_predictor, predict_file, read_rows, stream_predict


__all__ = list(_LAZY)
