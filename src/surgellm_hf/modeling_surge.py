"""SURGELLM modeling: a Hub encoder plus task embedding, surgical feature gate, fusion and per-task heads.

docs/method.md#model. Copied to the Hub for ``trust_remote_code`` loading: imports torch, transformers, huggingface_hub,
safetensors and its flat siblings only.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ModelOutput, SequenceClassifierOutput
from transformers.utils.generic import can_return_tuple

from .configuration_surge import LONG_TEXT_POOLS, SurgeConfig
from .losses_surge import labels_as_matrix, rows_loss
from .modeling_surge_modules import (  # noqa: F401 (ADAPTER_*, SURGE_MODULES_*: public names of this module)
    ADAPTER_CONFIG_NAME,
    ADAPTER_FORMAT_VERSION,
    ADAPTER_WEIGHTS_NAME,
    SURGE_MODULES_CONFIG_NAME,
    SURGE_MODULES_WEIGHTS_NAME,
    SurgeModulesMixin,
    encoder_names,
    load_encoder_weights,
)
from .normalization import apply_normalizer, fit_config_normalizer


def _tracing() -> bool:
    """Whether torch.compile / torch.export / the TorchScript tracer is running: data-dependent checks (host syncs)
    are skipped there, so compiled and exported graphs have no data-dependent Python control flow."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


@dataclass
class SurgeModelOutput(ModelOutput):
    """Output of [`SurgeModel`]: the fused representation z, the encoder states and the gate values."""

    pooled_output: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    gate: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class SurgeSequenceClassifierOutput(SequenceClassifierOutput):
    """A `SequenceClassifierOutput` plus the gate values.

    ``logits`` is ``[batch, max_num_labels]``; columns past an example's own task's label count hold the dtype's
    minimum, so ``argmax`` and ``softmax`` stay valid for every single-label task. A multi-label task's row holds
    one logit per label in its first columns (sigmoid each), a regression task's row its value in column 0.
    """

    gate: torch.FloatTensor | None = None


@dataclass
class SurgeFeatureExplanationOutput(ModelOutput):
    """Output of `SurgeForSequenceClassification.explain_features`: the logits, each row's mean gate value, the
    normalized features the gate saw, and the logits with each feature set to its task's mean (``[batch,
    num_features, max_num_labels]``) beside the unchanged rows' logits computed in the same batch
    (``reference_logits``; contributions are reference minus counterfactual); both None without the gate or
    without fitted statistics."""

    logits: torch.FloatTensor | None = None
    mean_gate: torch.FloatTensor | None = None
    normalized_features: torch.FloatTensor | None = None
    reference_logits: torch.FloatTensor | None = None
    counterfactual_logits: torch.FloatTensor | None = None


class SurgeFeatureNormalizer(nn.Module):
    """Frozen per-task feature statistics (buffers, saved with the weights), fitted once from training data."""

    def __init__(self, num_tasks: int, num_features: int, eps: float):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(num_tasks, num_features))
        self.register_buffer("std", torch.ones(num_tasks, num_features))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def forward(self, features: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        return apply_normalizer(features, self.mean, self.std, task_ids, self.eps)


class SurgeSoftPrefix(nn.Module):
    """The soft prefix: k virtual token embeddings per example, in the encoder's input-embedding space, from a
    learned task prompt E_p[t] and a learned projection W_v s + b of the normalized features s.

    k = 2: [E_p[t], W_v s + b]; k = 1: [E_p[t] + W_v s + b]. `SurgeModel` inserts them after the first token.
    """

    def __init__(self, num_tasks: int, num_features: int, embedding_dim: int, length: int):
        super().__init__()
        self.length = length
        self.task_prompt = nn.Embedding(num_tasks, embedding_dim)
        self.feature_prompt = nn.Linear(num_features, embedding_dim)

    def forward(self, features: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """``[rows, length, embedding_dim]`` virtual tokens of rows with these normalized features and task ids."""
        task = self.task_prompt(task_ids)
        feats = self.feature_prompt(features.to(self.feature_prompt.weight.dtype))
        if self.length == 1:
            return (task + feats).unsqueeze(1)
        return torch.stack([task, feats], dim=1)


def window_sample_index(num_windows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``[num_rows]`` example index of each window row, from ``num_windows`` ([batch], windows per example, rows in
    example order); a comparison against the running ends, so torch.export and ONNX see no data-dependent shape."""
    ends = torch.cumsum(num_windows, dim=0)
    rows = torch.arange(num_rows, device=num_windows.device)
    return (rows.unsqueeze(1) >= ends.unsqueeze(0)).sum(dim=1)


def pool_windows(states: torch.Tensor, num_windows: torch.Tensor, pool: str) -> torch.Tensor:
    """``[batch, hidden]`` pooled window states: each example's ``num_windows[i]`` consecutive rows of ``states``
    ([windows, hidden]) by their mean, element-wise max or first row, for the whole batch at once (no loop)."""
    if pool not in LONG_TEXT_POOLS:
        raise ValueError(f"pool must be one of {LONG_TEXT_POOLS}, got {pool!r}")
    ends = torch.cumsum(num_windows, dim=0)
    if pool == "first":
        return states.index_select(0, ends - num_windows)
    sample = window_sample_index(num_windows, states.shape[0])
    member = sample.unsqueeze(0) == torch.arange(num_windows.shape[0], device=states.device).unsqueeze(1)
    if pool == "mean":
        total = member.to(states.dtype) @ states
        return total / num_windows.to(states.dtype).unsqueeze(1)
    low = torch.finfo(states.dtype).min
    return torch.where(member.unsqueeze(-1), states.unsqueeze(0), low).amax(dim=1)


class SurgePreTrainedModel(PreTrainedModel):
    """Base class: config class, weight init of the SURGELLM modules, Auto-class metadata on save."""

    config_class = SurgeConfig
    base_model_prefix = "surge"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # The loss is a plain mean over the batch; the Trainer must scale it for gradient accumulation itself.
    accepts_loss_kwargs = False
    _no_split_modules: list[str] = []

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise every SURGELLM parameter and buffer (transformers 5 loads missing ones as empty memory)."""
        super()._init_weights(module)
        if isinstance(module, SurgeFeatureNormalizer):
            init.zeros_(module.mean)
            init.ones_(module.std)
            init.zeros_(module.fitted)
        elif isinstance(module, SurgeModel) and module.task_embedding is not None:
            init.normal_(module.task_embedding.weight, mean=0.0, std=0.02)
        elif isinstance(module, SurgeSoftPrefix):
            std = self.config.initializer_range
            init.normal_(module.task_prompt.weight, mean=0.0, std=std)
            init.normal_(module.feature_prompt.weight, mean=0.0, std=std)
            init.zeros_(module.feature_prompt.bias)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """Save weights and config with a complete ``auto_map`` so remote code loads every Auto class."""
        self.config.auto_map = {
            "AutoConfig": "configuration_surge.SurgeConfig",
            "AutoModel": "modeling_surge.SurgeModel",
            "AutoModelForSequenceClassification": "modeling_surge.SurgeForSequenceClassification",
        }
        # pipeline("text-classification", model=repo, trust_remote_code=True) then uses the SURGELLM pipeline.
        # Imported here, not at module level: the Auto-class registration may import this module while
        # transformers' pipelines package is still initialising (docs/architecture.md#auto-classes); transformers
        # reads relative imports anywhere in the file, so pipeline_surge still travels with the remote code.
        from .pipeline_surge import surge_custom_pipelines

        self.config.custom_pipelines = surge_custom_pipelines()
        if self.config.encoder_name_or_path:  # a model loaded from an older folder may name a machine's copy
            recorded = encoder_names(self.config.encoder_name_or_path)[0]
            self.config.encoder_name_or_path = self.config.encoder_config._name_or_path = recorded
        super().save_pretrained(save_directory, *args, **kwargs)

    # -- encoder construction ------------------------------------------------------------------------------------
    @classmethod
    def from_encoder_pretrained(
        cls, encoder_name_or_path: str | os.PathLike, tasks: dict[str, int], **config_kwargs
    ) -> SurgePreTrainedModel:
        """Build a SURGELLM model around a Hub encoder, loading the encoder's real weights (pooler dropped).

        Loads the encoder explicitly rather than through ``key_mapping`` (which reverses on save, see
        docs/architecture.md#pitfall-2). ``config_kwargs`` go to [`SurgeConfig`].
        """
        encoder_kwargs = {
            k: config_kwargs.pop(k)
            for k in ("revision", "token", "cache_dir", "local_files_only")
            if k in config_kwargs
        }
        recorded, source = encoder_names(encoder_name_or_path)
        encoder_config = AutoConfig.from_pretrained(source, **encoder_kwargs)
        encoder_config._name_or_path = recorded  # saved with the config: the portable name, not a local copy
        config = SurgeConfig(  # checks that the encoder can be wrapped
            encoder_config=encoder_config,
            tasks=tasks,
            encoder_name_or_path=recorded,
            **config_kwargs,
        )
        model = cls(config)
        base = model.surge if isinstance(model, SurgeForSequenceClassification) else model
        load_encoder_weights(
            base.encoder, source, str(encoder_name_or_path), config=encoder_config, **encoder_kwargs
        )
        return model


class SurgeModel(SurgePreTrainedModel):
    """Shared trunk: encoder -> first-token state h -> (task embedding, normalized features, gate, fusion) -> z."""

    def __init__(self, config: SurgeConfig):
        super().__init__(config)
        encoder = AutoModel.from_config(config.encoder_config)  # the config checked that it can be wrapped
        if getattr(encoder, "pooler", None) is not None:
            encoder.pooler = (
                None  # unused; DDP fails on parameters that get no gradient (docs/architecture.md#pitfall-7)
            )
        self.encoder = encoder
        config.encoder_config = encoder.config  # one config object, so resizing embeddings updates it
        d = config.hidden_size
        self.task_embedding = (
            nn.Embedding(config.num_tasks, d) if config.use_gate and config.use_task_embedding else None
        )
        self.normalizer = SurgeFeatureNormalizer(config.num_tasks, config.num_features, config.norm_eps)
        if config.use_gate:
            self.feature_proj = nn.Linear(config.num_features, d)
            self.gate = nn.Linear(2 * d, d)
            self.fusion_norm = nn.LayerNorm(d, eps=getattr(config.encoder_config, "layer_norm_eps", 1e-12))
        else:
            self.feature_proj = self.gate = self.fusion_norm = None
        self.soft_prefix = (
            SurgeSoftPrefix(
                config.num_tasks,
                config.num_features,
                encoder.get_input_embeddings().embedding_dim,  # ELECTRA/ALBERT: embedding_size != hidden_size
                config.soft_prefix_length,
            )
            if config.soft_prefix_length
            else None
        )
        forward_params = inspect.signature(encoder.forward).parameters
        self._encoder_takes_token_type_ids = "token_type_ids" in forward_params
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)

    @property
    def feature_normalizer_fitted(self) -> bool:
        """Whether normalization statistics were fitted (always True when ``norm == "none"``)."""
        return self.config.norm == "none" or bool(self.normalizer.fitted)

    # -- input checks ---------------------------------------------------------------------------------------------
    def _resolve_task_ids(self, task_ids, batch_size: int, device) -> torch.Tensor:
        if task_ids is None:
            return torch.full((batch_size,), self.config.default_task_id, dtype=torch.long, device=device)
        if not isinstance(task_ids, torch.Tensor):
            task_ids = torch.as_tensor(task_ids, device=device)
        if task_ids.dim() == 0:
            task_ids = task_ids.expand(batch_size)
        if task_ids.shape != (batch_size,):
            raise ValueError(f"`task_ids` must have shape ({batch_size},), got {tuple(task_ids.shape)}.")
        if task_ids.dtype.is_floating_point or task_ids.dtype == torch.bool:
            raise ValueError(f"`task_ids` must be an integer tensor, got {task_ids.dtype}.")
        if _tracing():
            return task_ids.long()
        bad = (task_ids < 0) | (task_ids >= self.config.num_tasks)
        if bool(bad.any()):
            raise ValueError(
                f"Unknown task id(s) {sorted(set(task_ids[bad].tolist()))}; valid ids are "
                + ", ".join(f"{i}={n!r}" for i, n in enumerate(self.config.task_names))
                + "."
            )
        return task_ids.long()

    def _check_features(self, lexical_features, batch_size: int) -> torch.Tensor:
        if lexical_features is None:
            uses = "the feature gate (use_gate=True)" if self.config.use_gate else "the soft prefix"
            raise ValueError(
                f"This model uses {uses} and needs `lexical_features` of shape "
                f"[batch, {self.config.num_features}]; compute them with SurgeProcessor or Lexicon.featurize."
            )
        if not isinstance(lexical_features, torch.Tensor):
            lexical_features = torch.as_tensor(lexical_features)
        if lexical_features.shape != (batch_size, self.config.num_features):
            raise ValueError(
                f"`lexical_features` must have shape ({batch_size}, {self.config.num_features}) (num_features from "
                f"the config), got {tuple(lexical_features.shape)}; does the lexicon match the model?"
            )
        return lexical_features

    def _fusion_features(self, lexical_features, batch_size: int) -> torch.Tensor | None:
        """The checked lexical features where the gate or the soft prefix reads them (refused while the statistics
        they are normalized with are unfitted); as given otherwise."""
        if not (self.config.use_gate or self.soft_prefix is not None):
            return lexical_features
        lexical_features = self._check_features(lexical_features, batch_size)
        if self.config.norm != "none" and not _tracing() and not self.feature_normalizer_fitted:
            raise ValueError(
                f"norm={self.config.norm!r} but the feature statistics were never fitted: call "
                "`model.fit_feature_normalizer(features, labels, task_ids)` on training data first."
            )
        return lexical_features

    def _check_windows(self, num_windows, num_rows: int, device) -> torch.Tensor:
        """``num_windows`` ([batch] windows per example, each >= 1, summing to the rows of the token inputs)."""
        num_windows = torch.as_tensor(num_windows, device=device)
        if num_windows.dim() != 1 or num_windows.dtype.is_floating_point or num_windows.dtype == torch.bool:
            raise ValueError(
                f"`num_windows` must be a 1-D integer tensor (windows per example), got shape "
                f"{tuple(num_windows.shape)} of {num_windows.dtype}."
            )
        if not _tracing():
            if bool((num_windows < 1).any()):
                raise ValueError(f"`num_windows` must be >= 1 for every example, got {num_windows.tolist()}.")
            if int(num_windows.sum()) != num_rows:
                raise ValueError(
                    f"`num_windows` sums to {int(num_windows.sum())} windows but the token inputs have {num_rows} "
                    "rows (one per window, examples in order)."
                )
        return num_windows.long()

    def pool(self, states: torch.Tensor, num_windows: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Window first-token states ``[windows, hidden]`` -> one state per example ``[batch, hidden]``, by each
        task's `long_text_pool` (every pool used is computed for the batch; rows take their task's)."""
        pools = [self.config.pool_of(t) for t in range(self.config.num_tasks)]
        used = list(dict.fromkeys(pools))
        pooled = {p: pool_windows(states, num_windows, p) for p in used}
        if len(used) == 1:
            return pooled[used[0]]
        codes = torch.tensor([used.index(p) for p in pools], device=states.device)[task_ids]
        out = pooled[used[0]]
        for i, p in enumerate(used[1:], start=1):
            out = torch.where((codes == i).unsqueeze(1), pooled[p], out)
        return out

    def soft_features(self, lexical_features: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """The features the soft prefix projects: normalized by the fitted statistics, or (``norm="none"``)
        sign(s) log(1 + |s|) of the raw ones, so counts of hundreds do not swamp the embedding scale."""
        feats = lexical_features.to(device=task_ids.device, dtype=torch.float32)
        if self.config.norm != "none":
            return self.normalizer(feats, task_ids)
        return torch.sign(feats) * torch.log1p(feats.abs())

    def _insert_soft_prefix(
        self,
        input_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        lexical_features: torch.Tensor,
        task_ids: torch.Tensor,
        num_windows: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Input embeddings, attention mask and token type ids with the k virtual tokens after the first token
        (mask 1, the first token's segment id); with windows every window of an example gets its virtual tokens."""
        if inputs_embeds is None:
            inputs_embeds = self.encoder.get_input_embeddings()(input_ids)
        rows, length = inputs_embeds.shape[0], inputs_embeds.shape[1]
        feats = self.soft_features(lexical_features, task_ids)
        if num_windows is not None:
            sample = window_sample_index(num_windows, rows)
            feats, task_ids = feats[sample], task_ids[sample]
        virtual = self.soft_prefix(feats, task_ids).to(inputs_embeds.dtype)
        k = virtual.shape[1]
        embeds = torch.cat([inputs_embeds[:, :1], virtual, inputs_embeds[:, 1:]], dim=1)
        if attention_mask is None:
            attention_mask = torch.ones(rows, length, dtype=torch.long, device=embeds.device)
        ones = torch.ones(rows, k, dtype=attention_mask.dtype, device=attention_mask.device)
        mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)
        if token_type_ids is not None:
            first = token_type_ids[:, :1]
            token_type_ids = torch.cat([first, first.expand(rows, k), token_type_ids[:, 1:]], dim=1)
        return embeds, mask, token_type_ids

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        lexical_features: torch.Tensor | None = None,
        task_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        first_token_state: torch.Tensor | None = None,
        num_windows: torch.LongTensor | None = None,
        output_gate: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SurgeModelOutput | tuple:
        """Encode, pool the first token and (with the gate) fuse it with the normalized lexical features.

        ``first_token_state`` (``[batch, hidden_size]``) replaces the encoder pass with cached first-token states of a
        frozen encoder (training the SURGELLM modules and heads on states computed once). ``output_hidden_states``,
        ``output_attentions`` and ``return_dict`` default to the config's values.

        Long texts (``long_text``): ``num_windows`` (``[batch]``) says how many consecutive rows of the token inputs
        (or of ``first_token_state``) belong to each example; the windows are encoded together and their first-token
        states pooled per example (`config.long_text_pool`) before the gate. ``lexical_features``, ``task_ids`` and
        the output stay per example. ``last_hidden_state`` and ``hidden_states`` are then per window.

        With a soft prefix (``config.soft_prefix_length`` k > 0) the k virtual tokens go in after the first token, so
        ``last_hidden_state`` holds them at positions 1..k.
        """
        given = [n for n, v in (("input_ids", input_ids), ("inputs_embeds", inputs_embeds),
                                ("first_token_state", first_token_state)) if v is not None]  # fmt: skip
        if len(given) != 1:
            raise ValueError(
                f"Pass exactly one of `input_ids`, `inputs_embeds` or `first_token_state`, got {given or 'none'}."
            )
        ref = (
            input_ids
            if input_ids is not None
            else inputs_embeds
            if inputs_embeds is not None
            else first_token_state
        )
        device = ref.device
        if num_windows is not None:
            num_windows = self._check_windows(num_windows, ref.shape[0], device)
        batch_size = ref.shape[0] if num_windows is None else num_windows.shape[0]
        task_ids = self._resolve_task_ids(task_ids, batch_size, device)
        lexical_features = self._fusion_features(lexical_features, batch_size)
        if first_token_state is not None:
            if self.soft_prefix is not None:
                raise ValueError(
                    "This model has a soft prefix (soft_prefix_length > 0): its virtual tokens are encoder inputs "
                    "built from trainable parameters, so cached first-token states cannot stand in for the encoder."
                )
            if first_token_state.shape != (ref.shape[0], self.config.hidden_size):
                rows = "windows" if num_windows is not None else str(batch_size)
                raise ValueError(
                    f"`first_token_state` must have shape ({rows}, {self.config.hidden_size}) (the encoder's "
                    f"hidden size), got {tuple(first_token_state.shape)}."
                )
            dtype = self.encoder.get_input_embeddings().weight.dtype
            h = first_token_state.to(dtype)
            if num_windows is not None:
                h = self.pool(h, num_windows, task_ids)
            z, gate = self.fuse(h, lexical_features, task_ids)
            return SurgeModelOutput(pooled_output=z, gate=gate if output_gate else None)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions

        token_type_ids = self._encoder_token_types(token_type_ids)
        if self.soft_prefix is not None:
            inputs_embeds, attention_mask, token_type_ids = self._insert_soft_prefix(
                input_ids,
                inputs_embeds,
                attention_mask,
                token_type_ids,
                lexical_features,
                task_ids,
                num_windows,
            )
            input_ids = None
        enc = self.encode(
            input_ids,
            attention_mask,
            token_type_ids,
            inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        h = enc.last_hidden_state[:, 0]
        if num_windows is not None:
            h = self.pool(h, num_windows, task_ids)
        z, gate = self.fuse(h, lexical_features, task_ids)
        return SurgeModelOutput(
            pooled_output=z,
            last_hidden_state=enc.last_hidden_state,
            gate=gate if output_gate else None,
            hidden_states=getattr(enc, "hidden_states", None),
            attentions=getattr(enc, "attentions", None),
        )

    def _encoder_token_types(self, token_type_ids: torch.Tensor | None) -> torch.Tensor | None:
        """``token_type_ids`` for the encoder: None for an encoder that takes none (non-zero ones are refused)."""
        if token_type_ids is None or self._encoder_takes_token_type_ids:
            return token_type_ids
        if not _tracing() and bool((token_type_ids != 0).any()):
            raise ValueError(
                f"Encoder {self.config.encoder_config.model_type!r} takes no `token_type_ids`, but non-zero "
                "ones were passed."
            )
        return None

    def encode(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = False,
        output_attentions: bool | None = False,
    ) -> Any:
        """The encoder's output for these rows (windows or examples), as they are: no soft prefix, no pooling."""
        encoder_kwargs: dict[str, Any] = {"attention_mask": attention_mask}
        token_type_ids = self._encoder_token_types(token_type_ids)
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        encoder_kwargs["output_hidden_states"] = (
            output_hidden_states  # a bool or, in transformers 5, layer indices
        )
        encoder_kwargs["output_attentions"] = output_attentions
        if input_ids is not None:
            encoder_kwargs["input_ids"] = input_ids
        else:
            encoder_kwargs["inputs_embeds"] = inputs_embeds
        return self.encoder(**encoder_kwargs, return_dict=True)

    @torch.no_grad()
    def first_token_states(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        """The encoder's first-token states ``[batch, hidden_size]`` in eval mode: what `first_token_state` caches."""
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None and self._encoder_takes_token_type_ids:
                kwargs["token_type_ids"] = token_type_ids
            return self.encoder(**kwargs, return_dict=True).last_hidden_state[:, 0]
        finally:
            self.encoder.train(was_training)

    def fuse(
        self, h: torch.Tensor, lexical_features: torch.Tensor | None, task_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """docs/method.md#model, steps 1-4, on first-token states h: (z, gate); without the gate z = h and gate is None.

        Separate from the encoder pass so that one encoder pass can serve every task (`forward_all_tasks`).
        """
        if not self.config.use_gate:
            return h, None
        feats = lexical_features.to(device=h.device, dtype=torch.float32)
        if self.config.norm != "none":
            feats = self.normalizer(feats, task_ids)
        feats = feats.to(h.dtype)
        h_task = h
        if self.task_embedding is not None:
            h_task = h + self.config.task_embedding_scale * self.task_embedding(task_ids)
        s_proj = torch.relu(self.feature_proj(feats))
        gate = torch.sigmoid(self.gate(torch.cat([h_task, s_proj], dim=-1)))
        return self.fusion_norm(gate * h_task + (1 - gate) * s_proj), gate


class SurgeTaskHead(nn.Sequential):
    """Dropout -> Linear(d, d/2) -> GELU -> Dropout -> Linear(d/2, C_t) (docs/method.md#model, step 5)."""

    def __init__(self, config: SurgeConfig, num_labels: int):
        d = config.hidden_size
        inner = config.head_hidden_size or max(1, d // 2)
        super().__init__(
            nn.Dropout(config.head_dropout),
            nn.Linear(d, inner),
            nn.GELU(),
            nn.Dropout(config.head_inner_dropout),
            nn.Linear(inner, num_labels),
        )


class SurgeForSequenceClassification(SurgeModulesMixin, SurgePreTrainedModel):
    """SURGELLM multi-task classifier: the shared trunk and one head per task; a batch may mix tasks."""

    def __init__(self, config: SurgeConfig):
        super().__init__(config)
        self.surge = SurgeModel(config)
        self.heads = nn.ModuleList([SurgeTaskHead(config, n) for n in config.tasks.values()])
        self.post_init()

    # -- embeddings -------------------------------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.surge.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.surge.set_input_embeddings(value)

    # -- normalization ---------------------------------------------------------------------------------------------
    @property
    def feature_normalizer_fitted(self) -> bool:
        """Whether normalization statistics were fitted (always True when ``norm == "none"``)."""
        return self.surge.feature_normalizer_fitted

    def fit_feature_normalizer(self, features, labels, task_ids, method: str | None = None) -> None:
        """Fit the per-task statistics (standard or IWN per ``config.norm``) from raw training features.

        Task ids may be ids or task names. Statistics are frozen buffers saved with the weights.
        """
        mean, std = fit_config_normalizer(self.config, features, labels, task_ids, method)
        normalizer = self.surge.normalizer
        normalizer.mean.copy_(torch.from_numpy(mean))
        normalizer.std.copy_(torch.from_numpy(std))
        normalizer.fitted.fill_(True)

    # -- labels and loss (by problem type: `losses_surge`) ----------------------------------------------------------
    def _label_matrix(self, labels: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Any accepted labels format as the padded float ``[batch, max_num_labels]`` matrix, checked (see `forward`)."""
        return labels_as_matrix(self.config, labels, task_ids, check=not _tracing())

    def loss_per_row(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        task_ids: torch.Tensor,
        pos_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """fp32 loss of each row under its task's type (labels in any format `forward` takes, checked);
        `pos_weight` ([batch, max_num_labels], 1 = none) weights a multi-label row's positive terms."""
        matrix = self._label_matrix(torch.as_tensor(labels), task_ids)
        return rows_loss(self.config, logits, matrix, task_ids, pos_weight)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        lexical_features: torch.Tensor | None = None,
        task_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        first_token_state: torch.Tensor | None = None,
        num_windows: torch.LongTensor | None = None,
        output_gate: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SurgeSequenceClassifierOutput | tuple:
        """Route each example to its own task's head; the loss is the mean over rows of each row's loss under its
        task's problem type (`loss_per_row`, computed in fp32).

        Every head runs on the whole batch and each row keeps its own task's logits (a gather, no Python loop over
        the tasks present), so the graph is the same for every batch: torch.compile and torch.export see no
        data-dependent control flow, and a batch may mix tasks and problem types.

        ``labels`` follow transformers' conventions for a batch of one type: long ``[batch]`` class ids
        (single-label), float ``[batch]`` or ``[batch, 1]`` targets (regression), float ``[batch, L]`` multi-hot
        rows (multi-label). A batch mixing types passes the padded float ``[batch, k]`` matrix
        (`SurgeDataCollator`'s layout): column 0 holds a single-label row's class id or a regression row's target,
        the first L columns a multi-label row's multi-hot vector, the other columns are ignored (the collator pads
        with 0). A 1-D ``labels`` is column 0 of that matrix for every row.

        Long texts: ``num_windows`` (``[batch]``) groups the rows of the token inputs into examples (see
        `SurgeModel.forward`); ``labels``, ``task_ids``, ``lexical_features`` and the logits stay per example.
        """
        ref = next((x for x in (input_ids, inputs_embeds, first_token_state) if x is not None), None)
        if ref is None:
            raise ValueError("Pass exactly one of `input_ids`, `inputs_embeds` or `first_token_state`.")
        batch_size = ref.shape[0] if num_windows is None else torch.as_tensor(num_windows).shape[0]
        task_ids = self.surge._resolve_task_ids(task_ids, batch_size, ref.device)
        if labels is not None:  # checked (and refused) before the encoder runs
            labels = self._label_matrix(torch.as_tensor(labels, device=ref.device), task_ids)
        out = self.surge(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            lexical_features=lexical_features,
            task_ids=task_ids,
            inputs_embeds=inputs_embeds,
            first_token_state=first_token_state,
            num_windows=num_windows,
            output_gate=output_gate,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        logits = self._route_heads(out.pooled_output, task_ids)
        loss = None
        if labels is not None:
            loss = rows_loss(self.config, logits, labels, task_ids).mean()
        return SurgeSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            gate=out.gate,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )

    def _route_heads(self, z: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """``[batch, max_num_labels]`` logits: row i holds head ``task_ids[i]``'s logits, then the dtype's minimum.

        The padding uses each head output's own dtype (under autocast the heads return bf16/fp16 while z is fp32).
        """
        stacked = torch.stack([self._head_logits(t, z) for t in range(len(self.heads))], dim=1)
        index = task_ids.view(-1, 1, 1).expand(-1, 1, stacked.shape[-1])  # stacked: [batch, tasks, width]
        return stacked.gather(1, index).squeeze(1)

    def _head_logits(self, task_id: int, z: torch.Tensor) -> torch.Tensor:
        """Head ``task_id`` on z, padded to ``max_num_labels`` columns with the minimum of its output's own dtype."""
        task_logits = self.heads[task_id](z)
        pad = self.config.max_num_labels - task_logits.shape[-1]
        if pad:
            task_logits = nn.functional.pad(task_logits, (0, pad), value=torch.finfo(task_logits.dtype).min)
        return task_logits

    def forward_all_tasks(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        lexical_features: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        num_windows: torch.LongTensor | None = None,
        first_token_state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[batch, num_tasks, max_num_labels]`` logits of every task from ONE encoder pass.

        Valid when the encoder input does not depend on the task (no prefix, or a prefix without the task token;
        never with a soft prefix, whose virtual tokens carry the task): the light modules (normalization, task
        embedding, gate, fusion) and each head then run once per task on the shared first-token states (pooled per
        task's `long_text_pool` when ``num_windows`` is given; `first_token_state`: states already computed, no
        encoder pass). Padding columns hold the dtype's minimum, as in `forward`.
        """
        if self.surge.soft_prefix is not None:
            raise ValueError(
                "forward_all_tasks needs an encoder input that does not depend on the task, but this model's soft "
                "prefix puts the task into the encoder input; run `forward` once per task instead."
            )
        ref = next((x for x in (input_ids, inputs_embeds, first_token_state) if x is not None), None)
        if ref is None:
            raise ValueError("Pass exactly one of `input_ids`, `inputs_embeds` or `first_token_state`.")
        if num_windows is not None:
            num_windows = self.surge._check_windows(num_windows, ref.shape[0], ref.device)
        batch_size = ref.shape[0] if num_windows is None else num_windows.shape[0]
        lexical_features = self.surge._fusion_features(lexical_features, batch_size)
        if first_token_state is not None:
            states = first_token_state
        else:
            states = self.surge.encode(
                input_ids, attention_mask, token_type_ids, inputs_embeds
            ).last_hidden_state[:, 0]
        out = []
        for t in range(len(self.heads)):
            task_ids = torch.full((batch_size,), t, dtype=torch.long, device=states.device)
            h = states if num_windows is None else self.surge.pool(states, num_windows, task_ids)
            out.append(self._head_logits(t, self.surge.fuse(h, lexical_features, task_ids)[0]))
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def explain_features(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        lexical_features: torch.Tensor | None = None,
        task_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        first_token_state: torch.Tensor | None = None,
        num_windows: torch.LongTensor | None = None,
        **kwargs,
    ) -> SurgeFeatureExplanationOutput:
        """The logits of one forward pass plus, per feature j, the logits with raw feature j set to its task's mean
        in the fitted statistics (its normalized value then 0), every other input unchanged.

        The encoder runs once: the counterfactuals reuse its first-token states and cost one pass of the fusion
        modules and heads over ``batch * num_features`` rows. A prefix is part of the encoder input, so what a
        feature does through the prefix tokens is not in the counterfactuals. Without the gate (the features do
        not reach the model) or without statistics (``norm="none"``: no task mean) they are None.
        """
        out = self.surge(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            lexical_features=lexical_features,
            task_ids=task_ids,
            inputs_embeds=inputs_embeds,
            first_token_state=first_token_state,
            num_windows=num_windows,
            output_gate=True,
            return_dict=True,
        )
        ref = next(x for x in (input_ids, inputs_embeds, first_token_state) if x is not None)
        batch_size = ref.shape[0] if num_windows is None else torch.as_tensor(num_windows).shape[0]
        task_ids = self.surge._resolve_task_ids(task_ids, batch_size, ref.device)
        logits = self._route_heads(out.pooled_output, task_ids)
        if not self.config.use_gate:
            return SurgeFeatureExplanationOutput(logits=logits)
        h = (
            out.last_hidden_state[:, 0]
            if first_token_state is None
            else first_token_state.to(self.surge.encoder.get_input_embeddings().weight.dtype)
        )
        if num_windows is not None:  # a long text's window states, pooled per example as in `forward`
            h = self.surge.pool(h, torch.as_tensor(num_windows, device=h.device).long(), task_ids)
        feats = torch.as_tensor(lexical_features).to(device=h.device, dtype=torch.float32)
        normalized = feats if self.config.norm == "none" else self.surge.normalizer(feats, task_ids)
        reference = counterfactual = None
        if self.config.norm != "none":
            reference, counterfactual = _feature_counterfactuals(self, h, feats, task_ids)
        return SurgeFeatureExplanationOutput(
            logits=logits,
            mean_gate=out.gate.float().mean(dim=-1),
            normalized_features=normalized,
            reference_logits=reference,
            counterfactual_logits=counterfactual,
        )

    def push_to_hub(self, repo_id: str, *args, **kwargs):
        """Refuse unfitted statistics before any upload, then push as transformers does.

        The SURGELLM model card, processor and lexicon are published by `surgellm_hf.hub.publish` (or
        `surgellm push`); this method only uploads the model, so it stays usable from remote code.
        """
        if not self.feature_normalizer_fitted:
            raise ValueError(
                f"The model uses norm={self.config.norm!r} but its feature normalization statistics were never "
                "fitted, so its predictions would be meaningless; call `model.fit_feature_normalizer(...)` first."
            )
        return super().push_to_hub(repo_id, *args, **kwargs)


# Saving copies the remote-code files; save_pretrained then writes the complete auto_map (docs/architecture.md#pitfall-3).
SurgeModel.register_for_auto_class("AutoModel")
SurgeForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def _feature_counterfactuals(
    model: SurgeForSequenceClassification, h: torch.Tensor, feats: torch.Tensor, task_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(reference logits [batch, labels], counterfactual logits [batch, features, labels]) of `explain_features`:
    row (i, 0) is example i as it is, row (i, j) example i with raw feature j - 1 at its task's mean. The reference
    runs in the same batch as the counterfactuals, so an unchanged feature contributes exactly 0."""
    batch, width = feats.shape
    diagonal = torch.arange(1, width + 1, device=h.device)
    moved = feats.unsqueeze(1).repeat(1, width + 1, 1)
    moved[:, diagonal, diagonal - 1] = model.surge.normalizer.mean[task_ids]
    rows = task_ids.repeat_interleave(width + 1)
    z, _ = model.surge.fuse(h.repeat_interleave(width + 1, dim=0), moved.view(-1, width), rows)
    both = model._route_heads(z, rows).view(batch, width + 1, -1)
    return both[:, 0], both[:, 1:]


__all__ = [
    "SurgeModel",
    "SurgePreTrainedModel",
    "SurgeForSequenceClassification",
    "SurgeModelOutput",
    "SurgeSequenceClassifierOutput",
    "SurgeFeatureExplanationOutput",
    "SurgeFeatureNormalizer",
    "SurgeSoftPrefix",
    "pool_windows",
    "window_sample_index",
]
