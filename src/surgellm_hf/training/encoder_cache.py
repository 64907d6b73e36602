"""Frozen-encoder fast path: the encoder's first-token states computed once per example, the modules and heads trained
on them (as SetFit trains its head on frozen embeddings).

With `freeze_encoder: true` the encoder stays in eval mode, so the first-token state of an example is the same in
every epoch. `cache_first_token_states` runs the encoder once over a processed split and returns the split with a
`first_token_state` column in place of the token columns; `SurgeForSequenceClassification.forward(first_token_state=)`
then runs only the modules and heads. The same Trainer, metrics, early stopping and run folder are used; the saved
model is the normal full model.

On disk (`EncoderStateCache`), states are keyed per example by a hash of the encoder's weights and the example's
encoder input (input ids, token type ids), so runs of other variants or seeds whose encoder input is the same
(baseline and the single-task reference; every text-prefix variant of one lexicon) reuse them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

TOKEN_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")
STATE_COLUMN = "first_token_state"


def encoder_fingerprint(model: Any) -> str:
    """SHA-256 (16 hex) of the encoder's weights and config: states from another encoder never match."""
    encoder = model.surge.encoder
    h = hashlib.sha256(encoder.config.to_json_string().encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _row_keys(dataset: Any) -> list[bytes]:
    """One key per row: a hash of the row's encoder input (input ids and token type ids; padding is added later)."""
    cols = [c for c in ("input_ids", "token_type_ids") if c in dataset.column_names]
    keys = []
    for row in zip(*(dataset[c] for c in cols), strict=True):
        h = hashlib.blake2b(digest_size=16)
        for ids in row:
            h.update(np.asarray(ids, dtype=np.int64).tobytes())
            h.update(b"|")
        keys.append(h.digest())
    return keys


class EncoderStateCache:
    """First-token states on disk, one `.npz` per encoder fingerprint under `folder`, keyed per example input."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.path = Path(folder) / f"first_token_states-{fingerprint}.npz"
        self._states: dict[bytes, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path) as f:
                self._states = dict(zip((bytes(k) for k in f["keys"]), f["states"], strict=True))
        self._dirty = False

    def get(self, key: bytes) -> np.ndarray | None:
        """The cached state of one example input, or None."""
        return self._states.get(key)

    def put(self, key: bytes, state: np.ndarray) -> None:
        """Remember one state (written by `save`)."""
        self._states[key] = state
        self._dirty = True

    def save(self) -> None:
        """Write the cache when it gained states (atomic rename)."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._states), dtype="S16")
        states = np.stack(list(self._states.values())).astype(np.float32)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, states=states)
        tmp.replace(self.path)
        self._dirty = False


@torch.no_grad()
def compute_first_token_states(
    model: Any,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_size: int = 64,
    rows: Sequence[int] | None = None,
) -> np.ndarray:
    """The encoder's first-token states (eval mode, float32) of `rows` (default all) of a processed split."""
    device = next(model.parameters()).device
    cols = [c for c in TOKEN_COLUMNS if c in dataset.column_names]
    rows = list(range(len(dataset))) if rows is None else list(rows)
    out = []
    for start in range(0, len(rows), batch_size):
        part = dataset.select(rows[start : start + batch_size])
        batch = collator([{c: r[c] for c in cols} for r in part])
        batch = {k: v.to(device) for k, v in batch.items() if k in cols}
        out.append(model.surge.first_token_states(**batch).float().cpu().numpy())
    hidden = model.config.hidden_size
    return np.concatenate(out) if out else np.zeros((0, hidden), dtype=np.float32)


def cache_first_token_states(
    model: Any,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_size: int = 64,
    cache: EncoderStateCache | None = None,
) -> Any:
    """The split with a `first_token_state` column instead of its token columns; states from `cache` where present."""
    if dataset is None:
        return None
    if not model.encoder_is_frozen:
        raise ValueError("Caching first-token states needs a frozen encoder (`model.freeze_encoder()`).")
    states: list[np.ndarray | None] = [None] * len(dataset)
    keys = _row_keys(dataset) if cache is not None else []
    if cache is not None:
        states = [cache.get(k) for k in keys]
    missing = [i for i, s in enumerate(states) if s is None]
    if missing:
        computed = compute_first_token_states(model, dataset, collator, batch_size, rows=missing)
        for i, state in zip(missing, computed, strict=True):
            states[i] = state
            if cache is not None:
                cache.put(keys[i], state)
        if cache is not None:
            cache.save()
    logger.info(
        "first-token states: %d computed, %d from the cache", len(missing), len(dataset) - len(missing)
    )
    array = np.stack(states).astype(np.float32) if len(dataset) else np.zeros((0, model.config.hidden_size))
    drop = [c for c in TOKEN_COLUMNS if c in dataset.column_names]
    return dataset.remove_columns(drop).add_column(STATE_COLUMN, list(array))
