"""The encoder side of a SURGELLM classifier: loading a pretrained encoder's weights, freezing it, and saving or loading
the SURGELLM modules on their own.

"SURGELLM modules" are everything but the encoder: task embedding, feature projection, gate, fusion norm, soft
prefix, the feature statistics and the task heads. `SurgeModulesMixin.save_surge_modules` writes only them (files
``surge_adapter.safetensors`` + ``surge_adapter_config.json``, names kept from when this was called the "SURGELLM
adapter") beside the name of their base encoder; `from_surge_modules` rebuilds the model on that encoder. A PEFT LoRA
adapter is a different thing (`surgellm_hf.lora`: LoRA weights of the encoder plus these modules as
``modules_to_save``, see `surge_modules_to_save`).

Copied to the Hub for ``trust_remote_code`` loading: imports torch, transformers, huggingface_hub and safetensors
only (surgellm_hf's `encoders` when the package is installed, see `encoder_names`).
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from typing import Any, Self

import torch
from torch import nn
from transformers import AutoConfig, AutoModel

SURGE_MODULES_WEIGHTS_NAME = "surge_adapter.safetensors"
SURGE_MODULES_CONFIG_NAME = "surge_adapter_config.json"
SURGE_MODULES_FORMAT_VERSION = 1
# the names from when the SURGELLM modules were called the "SURGELLM adapter" (the files keep them)
ADAPTER_WEIGHTS_NAME = SURGE_MODULES_WEIGHTS_NAME
ADAPTER_CONFIG_NAME = SURGE_MODULES_CONFIG_NAME
ADAPTER_FORMAT_VERSION = SURGE_MODULES_FORMAT_VERSION
ENCODER_PREFIX = "surge.encoder."
SURGE_MODULES = ("task_embedding", "feature_proj", "gate", "fusion_norm", "soft_prefix")
"""The trainable SURGELLM modules of `SurgeModel` (each None when the config has no use for it)."""


def encoder_names(name_or_path: str | os.PathLike) -> tuple[str, str]:
    """(the name a model records for its base encoder, where to load it from).

    With surgellm_hf installed, the bundled all-MiniLM-L6-v2 is recorded by its Hub id (never a machine's folder)
    and that id loads from the bundled copy; otherwise (remote code without the package) both are the name.
    """
    name = str(name_or_path)
    try:
        encoders = importlib.import_module("surgellm_hf.encoders")
    except ModuleNotFoundError as err:
        if err.name is None or not "surgellm_hf.encoders".startswith(err.name):
            raise
        return name, name
    recorded = encoders.encoder_record_name(name)
    return recorded, encoders.local_encoder(recorded)


def load_encoder_weights(encoder: nn.Module, source: str, name: str, **from_pretrained_kwargs: Any) -> None:
    """Load the pretrained weights of the encoder at `source` into the wrapped `encoder` (its pooler dropped).

    The one place encoder weights are loaded (`from_encoder_pretrained`, `lora.load_lora_model`). Token-embedding
    rows past the pretrained vocabulary (prefix tokens added by resizing) keep their values; any other missing or
    unexpected weight is a ValueError naming `name`.
    """
    pretrained = AutoModel.from_pretrained(source, **from_pretrained_kwargs)
    own = encoder.state_dict()
    state = {}
    for key, value in pretrained.state_dict().items():
        if key.startswith("pooler."):
            continue
        mine = own.get(key)
        if mine is not None and mine.shape != value.shape and mine.shape[1:] == value.shape[1:]:
            grown = mine.clone()  # resized token embeddings: the pretrained rows, then the added ones
            grown[: value.shape[0]] = value
            value = grown
        state[key] = value
    result = encoder.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"Encoder weights of {name!r} do not fit the wrapped encoder: missing {missing[:5]}, unexpected "
            f"{result.unexpected_keys[:5]}."
        )
    del pretrained


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"`{old}` is deprecated, use `{new}` (the SURGELLM modules are not a PEFT adapter)",
        FutureWarning,
        stacklevel=3,
    )


class SurgeModulesMixin:
    """Frozen encoder, parameter counts, PEFT ``modules_to_save`` and the SURGELLM modules' own save and load, for a
    model with ``surge`` (a `SurgeModel`), ``heads`` and ``config``."""

    # -- frozen encoder ----------------------------------------------------------------------------------------------
    def freeze_encoder(self, freeze: bool = True) -> Self:
        """Freeze (or unfreeze) the encoder; the SURGELLM modules and heads stay trainable.

        A frozen encoder stays in eval mode (no dropout) even under ``model.train()``, so its first-token states are
        fixed per example and can be cached (`first_token_state`).
        """
        for p in self.surge.encoder.parameters():
            p.requires_grad_(not freeze)
        return self.train(self.training)

    @property
    def encoder_is_frozen(self) -> bool:
        """True when no encoder parameter is trainable (only the SURGELLM modules and heads train)."""
        return not any(p.requires_grad for p in self.surge.encoder.parameters())

    def train(self, mode: bool = True) -> Self:
        """As `nn.Module.train`, except that a frozen encoder stays in eval mode."""
        super().train(mode)
        if mode and self.encoder_is_frozen:
            self.surge.encoder.eval()
        return self

    def trainable_parameters_report(self) -> dict[str, dict[str, int]]:
        """Trainable and total parameter counts per component (encoder, SURGELLM modules, heads, all)."""
        groups = {"encoder": self.surge.encoder, "heads": self.heads}
        modules = {n: getattr(self.surge, n) for n in SURGE_MODULES if getattr(self.surge, n) is not None}
        report = {}
        for name, mod in {**groups, **modules, "all": self}.items():
            params = list(mod.parameters())
            report[name] = {
                "trainable": sum(p.numel() for p in params if p.requires_grad),
                "total": sum(p.numel() for p in params),
            }
        return report

    def print_trainable_parameters(self) -> None:
        """Print the PEFT-style one-line summary of trainable parameters."""
        a = self.trainable_parameters_report()["all"]
        print(
            f"trainable params: {a['trainable']:,} || all params: {a['total']:,} || "
            f"trainable%: {100 * a['trainable'] / a['total']:.4f}"
        )

    def surge_modules_to_save(self) -> list[str]:
        """Module names to pass as PEFT ``modules_to_save`` when LoRA adapts the encoder."""
        names = ["normalizer"] + [f"heads.{i}" for i in range(len(self.heads))]
        names += [n for n in SURGE_MODULES if getattr(self.surge, n) is not None]
        return names

    # -- the SURGELLM modules on their own ---------------------------------------------------------------------------
    def surge_modules_state_dict(self) -> dict[str, torch.Tensor]:
        """Every non-encoder weight and buffer (gate, task embedding, statistics, heads)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(ENCODER_PREFIX)}

    def save_surge_modules(self, save_directory: str | os.PathLike) -> None:
        """Write only the SURGELLM modules (non-encoder weights and buffers) plus a JSON config naming the base
        encoder. Refuses when the encoder was trained (its weights would be lost) or its base is unknown."""
        from safetensors.torch import save_file

        if not self.config.encoder_name_or_path:
            raise ValueError(
                "The model has no `encoder_name_or_path`; an adapter must name its base encoder."
            )
        if any(p.requires_grad for p in self.surge.encoder.parameters()):
            raise ValueError(
                "The encoder is trainable, so its weights may differ from the base checkpoint and an adapter-only "
                "save would lose them. Call `model.freeze_encoder()` before training, or use `save_pretrained`."
            )
        base_vocab = AutoConfig.from_pretrained(encoder_names(self.config.encoder_name_or_path)[1]).vocab_size
        if getattr(self.config.encoder_config, "vocab_size", base_vocab) != base_vocab:
            raise ValueError(
                "The token embeddings were resized (added prefix tokens): their new rows are encoder weights, so "
                "an adapter-only save cannot hold them. Use `save_pretrained`."
            )
        os.makedirs(save_directory, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.surge_modules_state_dict().items()}
        save_file(state, os.path.join(save_directory, SURGE_MODULES_WEIGHTS_NAME), metadata={"format": "pt"})
        config = self.config.to_dict()
        config.pop("encoder_config", None)
        config.pop("_name_or_path", None)  # the folder this model was loaded from: a path of this machine
        config["encoder_name_or_path"] = base = encoder_names(self.config.encoder_name_or_path)[0]
        payload = {
            "format_version": SURGE_MODULES_FORMAT_VERSION,
            "base_model_name_or_path": base,
            "surge_config": config,
        }
        with open(os.path.join(save_directory, SURGE_MODULES_CONFIG_NAME), "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=True)

    @classmethod
    def from_surge_modules(
        cls, path_or_repo: str | os.PathLike, encoder_name_or_path: str | None = None, **hub_kwargs
    ) -> Self:
        """Rebuild a model from its base encoder and a folder or Hub repo written by `save_surge_modules`."""
        from safetensors.torch import load_file

        config_path, weights_path = _surge_modules_files(path_or_repo, hub_kwargs)
        with open(config_path, encoding="utf-8") as f:
            payload = json.load(f)
        if payload.get("format_version") != SURGE_MODULES_FORMAT_VERSION:
            raise ValueError(
                f"Unsupported adapter format version {payload.get('format_version')!r} in {config_path} "
                f"(this code reads version {SURGE_MODULES_FORMAT_VERSION})."
            )
        surge_config = dict(payload["surge_config"])
        for key in (
            "auto_map",
            "architectures",
            "transformers_version",
            "model_type",
            "encoder_name_or_path",
        ):
            surge_config.pop(key, None)
        tasks = surge_config.pop("tasks")
        if isinstance(tasks, dict) and len(tasks) > 1:
            raise ValueError(
                f"The adapter config {config_path} stores `tasks` as a mapping {list(tasks)} (surgellm_hf 0.1); "
                "JSON writers sort mapping keys, so the task order (which indexes the heads, task embeddings and "
                "statistics) cannot be known for sure and is not guessed. Save the adapter again with this version."
            )
        base = encoder_name_or_path or payload["base_model_name_or_path"]
        model = cls.from_encoder_pretrained(base, tasks=tasks, **surge_config)
        state = load_file(weights_path)
        expected = set(model.surge_modules_state_dict())
        if set(state) != expected:
            raise ValueError(
                f"Adapter weights do not match the model: missing {sorted(expected - set(state))[:5]}, "
                f"unexpected {sorted(set(state) - expected)[:5]}."
            )
        model.load_state_dict(state, strict=False)
        return model

    # -- the names from when the SURGELLM modules were called the "SURGELLM adapter" -----------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Deprecated alias of `surge_modules_state_dict`."""
        _deprecated("adapter_state_dict", "surge_modules_state_dict")
        return self.surge_modules_state_dict()

    def save_adapter(self, save_directory: str | os.PathLike) -> None:
        """Deprecated alias of `save_surge_modules`."""
        _deprecated("save_adapter", "save_surge_modules")
        self.save_surge_modules(save_directory)

    @classmethod
    def from_adapter(
        cls, adapter_name_or_path: str | os.PathLike, encoder_name_or_path: str | None = None, **hub_kwargs
    ) -> Self:
        """Deprecated alias of `from_surge_modules`."""
        _deprecated("from_adapter", "from_surge_modules")
        return cls.from_surge_modules(adapter_name_or_path, encoder_name_or_path, **hub_kwargs)


def _surge_modules_files(path_or_repo: str | os.PathLike, hub_kwargs: dict[str, Any]) -> tuple[str, str]:
    """(config file, weights file) of a `save_surge_modules` folder, or downloaded from a Hub repo."""
    if os.path.isdir(path_or_repo):
        config_path = os.path.join(path_or_repo, SURGE_MODULES_CONFIG_NAME)
        weights_path = os.path.join(path_or_repo, SURGE_MODULES_WEIGHTS_NAME)
        for path in (config_path, weights_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"No adapter file {path}; was it written by `save_adapter`?")
        return config_path, weights_path
    from huggingface_hub import hf_hub_download

    config_path = hf_hub_download(str(path_or_repo), SURGE_MODULES_CONFIG_NAME, **hub_kwargs)
    weights_path = hf_hub_download(str(path_or_repo), SURGE_MODULES_WEIGHTS_NAME, **hub_kwargs)
    return config_path, weights_path


__all__ = [
    "SurgeModulesMixin",
    "encoder_names",
    "load_encoder_weights",
    "SURGE_MODULES",
    "SURGE_MODULES_WEIGHTS_NAME",
    "SURGE_MODULES_CONFIG_NAME",
    "SURGE_MODULES_FORMAT_VERSION",
    "ADAPTER_WEIGHTS_NAME",
    "ADAPTER_CONFIG_NAME",
    "ADAPTER_FORMAT_VERSION",
]
