"""Where and with what a run trained, for metrics.json and the model card: the hardware, the framework versions, and
the base encoder's license (the card's default `license`)."""

from __future__ import annotations

import logging
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FRAMEWORKS = (
    "surgellm_hf",
    "transformers",
    "torch",
    "accelerate",
    "datasets",
    "tokenizers",
    "huggingface_hub",
    "peft",
    "safetensors",
)
"""Distributions whose versions a run records (those installed)."""


def framework_versions() -> dict[str, str]:
    """Python and the installed versions of `FRAMEWORKS`."""
    versions = {"python": platform.python_version()}
    for name in FRAMEWORKS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` reports."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def hardware(world_size: int = 1) -> dict[str, Any]:
    """CPU model and core count, GPU names and count (none on CPU), and the number of training processes."""
    import torch

    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available()
        else []
    )
    return {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpus": gpus,
        "gpu_count": len(gpus),
        "processes": int(world_size),
    }


def base_model_license(encoder: str) -> str | None:
    """The `license` in the card of `encoder` (a folder with a README.md, or a Hub id: the cached card, or the
    Hub's when online), or None where no card says one."""
    from huggingface_hub import ModelCard, constants, hf_hub_download, try_to_load_from_cache

    path = Path(os.path.expanduser(encoder))
    readme: str | None = None
    if path.is_dir():
        readme = str(path / "README.md") if (path / "README.md").is_file() else None
    else:
        cached = try_to_load_from_cache(encoder, "README.md")
        if isinstance(cached, str):
            readme = cached
        elif not constants.HF_HUB_OFFLINE:
            try:
                readme = hf_hub_download(encoder, "README.md")
            except Exception as err:  # noqa: BLE001 - no card (or no network): the license is unknown, not an error
                logger.info("No model card of %s to read its license from (%s).", encoder, err)
    if readme is None:
        return None
    license_id = ModelCard.load(readme).data.get("license")
    return license_id if isinstance(license_id, str) and license_id else None
