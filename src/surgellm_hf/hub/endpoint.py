"""The files that make a model repo deploy as a Hugging Face Inference Endpoint with no code of its own.

`surgellm push` writes them beside the model (`write_endpoint_files`): ``handler.py`` (the custom-handler
convention: ``EndpointHandler(path)`` called with ``{"inputs", "parameters"}``; the source is
`surgellm_hf.serving.endpoint_handler`), ``surgellm_runtime.py`` (the package's record layout and scoring,
`surgellm_hf.serving.runtime`, which the handler loads by path) and ``requirements.txt`` (what the handler and the
remote code import). A LoRA adapter repo gets none of them: loading it needs surgellm_hf and PEFT.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HANDLER_FILE = "handler.py"
RUNTIME_FILE = "surgellm_runtime.py"
REQUIREMENTS_FILE = "requirements.txt"
ENDPOINT_FILES = (HANDLER_FILE, RUNTIME_FILE, REQUIREMENTS_FILE)

ENDPOINT_REQUIREMENTS: tuple[str, ...] = (
    "torch>=2.4",
    "transformers>=5.0,<6",
    "numpy>=1.26",
    "safetensors>=0.4",
    "huggingface-hub>=1.0",
    "tokenizers>=0.21",
)
"""The distributions the handler and the remote code import (the package's own lower bounds)."""

_SERVING_DIR = Path(__file__).resolve().parents[1] / "serving"


def write_endpoint_files(folder: str | Path) -> list[Path]:
    """Write handler.py, surgellm_runtime.py and requirements.txt into `folder`; returns their paths."""
    folder = Path(folder)
    shutil.copyfile(_SERVING_DIR / "endpoint_handler.py", folder / HANDLER_FILE)
    shutil.copyfile(_SERVING_DIR / "runtime.py", folder / RUNTIME_FILE)
    (folder / REQUIREMENTS_FILE).write_text("\n".join(ENDPOINT_REQUIREMENTS) + "\n", encoding="utf-8")
    return [folder / name for name in ENDPOINT_FILES]


__all__ = ["ENDPOINT_FILES", "ENDPOINT_REQUIREMENTS", "write_endpoint_files"]
