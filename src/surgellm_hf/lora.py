"""LoRA on the encoder with PEFT (`lora:` in the run config): the SURGELLM modules, heads and statistics train and
save in full, the encoder through low-rank adapters; added prefix-token rows train as PEFT trainable tokens.

A LoRA folder holds `adapter_model.safetensors` + `adapter_config.json` (PEFT's format: LoRA weights, the SURGELLM
modules and heads as `modules_to_save`, the added token rows) and the SurgeConfig (`config.json`), and no encoder
weights: `load_lora_model(folder_or_repo)` rebuilds the model on the base encoder named in the config. Not remote
code (it imports peft).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .configuration_surge import SurgeConfig
from .encoders import local_encoder
from .modeling_surge import SurgeForSequenceClassification
from .modeling_surge_modules import load_encoder_weights

LORA_ADAPTER_CONFIG = "adapter_config.json"
LORA_ADAPTER_WEIGHTS = "adapter_model.safetensors"

DEFAULT_LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "xlm-roberta": ["query", "key", "value"],
    "electra": ["query", "key", "value"],
    "camembert": ["query", "key", "value"],
    "distilbert": ["q_lin", "k_lin", "v_lin"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj"],
    "deberta": ["in_proj"],
    "mpnet": ["q", "k", "v"],
    "modernbert": ["Wqkv"],
}
"""Attention projections LoRA adapts by default, per encoder `model_type` (query, key, value, as in the LoRA paper
and PEFT's own defaults for these families)."""


def lora_target_regex(
    model: SurgeForSequenceClassification, target_modules: Sequence[str] | None = None
) -> str:
    """A PEFT `target_modules` regex matching only encoder modules whose last name is one of `target_modules`
    (default: `DEFAULT_LORA_TARGETS` of the encoder's family), so no SURGELLM module is adapted by accident."""
    family = model.config.encoder_config.model_type
    names = list(target_modules) if target_modules else DEFAULT_LORA_TARGETS.get(family)
    if not names:
        raise ValueError(
            f"No default LoRA target modules for encoder family {family!r}; set lora.target_modules "
            f"(known families: {sorted(DEFAULT_LORA_TARGETS)})."
        )
    regex = r"surge\.encoder\..*\.(" + "|".join(re.escape(n) for n in names) + r")"
    found = [n for n, _ in model.named_modules() if re.fullmatch(regex, n)]
    if not found:
        raise ValueError(f"lora.target_modules {names} match no module of the {family!r} encoder.")
    return regex


def apply_lora(
    model: SurgeForSequenceClassification,
    r: int = 8,
    alpha: float = 16,
    dropout: float = 0.1,
    target_modules: Sequence[str] | None = None,
    base_vocab_size: int | None = None,
) -> Any:
    """Wrap `model` in a PEFT LoRA model: LoRA on the encoder, SURGELLM modules and heads fully trainable
    (`modules_to_save`), embedding rows from `base_vocab_size` on (added prefix tokens) as trainable tokens.

    Fit the feature statistics before wrapping: the wrapper copies the normalizer.
    """
    from peft import LoraConfig, get_peft_model

    vocab = model.config.encoder_config.vocab_size
    extra: dict[str, Any] = {}
    if base_vocab_size is not None and vocab > base_vocab_size:
        embeddings = model.get_input_embeddings()
        name = next(n for n, m in model.named_modules() if m is embeddings)
        extra["trainable_token_indices"] = {name.rsplit(".", 1)[-1]: list(range(base_vocab_size, vocab))}
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_target_regex(model, target_modules),
        modules_to_save=model.surge_modules_to_save(),
        **extra,
    )
    return get_peft_model(model, config)


def save_lora(peft_model: Any, save_directory: str | os.PathLike) -> None:
    """Write the PEFT adapter (LoRA weights, SURGELLM modules, heads, statistics, added token rows) and the
    SurgeConfig; no encoder weights."""
    save_directory = Path(save_directory)
    config = peft_model.get_base_model().config
    # the adapter names its base as the SurgeConfig does (a Hub id, never a bundled copy's folder); embedding
    # layers are not saved (added prefix-token rows travel as trainable tokens), as PEFT decides without a base
    peft_model.peft_config["default"].base_model_name_or_path = config.encoder_name_or_path or None
    peft_model.save_pretrained(save_directory, save_embedding_layers=False)
    (save_directory / "README.md").unlink(missing_ok=True)  # PEFT's placeholder card; the run has its own
    config.save_pretrained(save_directory)


def is_lora_folder(path: str | os.PathLike) -> bool:
    """True for a folder written by `save_lora` (a PEFT adapter beside a SurgeConfig)."""
    path = Path(path)
    return (path / LORA_ADAPTER_CONFIG).is_file() and (path / "config.json").is_file()


def _base_model(config: SurgeConfig, encoder_name_or_path: str | None) -> SurgeForSequenceClassification:
    """The untrained SURGELLM model of `config` with the base encoder's weights (rows past its vocabulary, the
    added prefix tokens, come from the adapter)."""
    base = encoder_name_or_path or config.encoder_name_or_path
    if not base:
        raise ValueError(
            "The LoRA config names no base encoder (`encoder_name_or_path`); pass encoder_name_or_path."
        )
    model = SurgeForSequenceClassification(config)
    load_encoder_weights(model.surge.encoder, local_encoder(base), base)
    return model


def load_lora_model(
    path_or_repo: str | os.PathLike,
    encoder_name_or_path: str | None = None,
    merge: bool = True,
    **hub_kwargs: Any,
) -> Any:
    """Rebuild a LoRA-trained SURGELLM model from a `save_lora` folder or Hub repo on its base encoder.

    Returns a plain `SurgeForSequenceClassification` with the adapter merged (`merge=False`: the PEFT model), in
    eval mode.
    """
    from peft import PeftModel

    config = SurgeConfig.from_pretrained(path_or_repo, **hub_kwargs)
    model = _base_model(config, encoder_name_or_path)
    # PEFT calls a transformers method deprecated for v6: noise on every load, not the user's to fix
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        peft_model = PeftModel.from_pretrained(model, str(path_or_repo), **hub_kwargs)
        out = peft_model.merge_and_unload() if merge else peft_model
    return out.eval()


def lora_artifact_bytes(path: str | os.PathLike) -> dict[str, int]:
    """Sizes in bytes of the adapter files of a LoRA folder (weights, adapter config, SurgeConfig)."""
    path = Path(path)
    return {n: (path / n).stat().st_size for n in (LORA_ADAPTER_WEIGHTS, LORA_ADAPTER_CONFIG, "config.json")}


def lora_summary(peft_model: Any) -> dict[str, Any]:
    """Trainable and total parameter counts of a PEFT model, and its LoRA settings, for metrics.json."""
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    cfg = peft_model.peft_config["default"]
    targets = cfg.target_modules
    return {
        "r": cfg.r,
        "alpha": cfg.lora_alpha,
        "dropout": cfg.lora_dropout,
        "target_modules": targets if isinstance(targets, str) else sorted(targets),
        "trainable_parameters": int(trainable),
        "all_parameters": int(total),
    }
