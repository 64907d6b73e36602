"""Frozen-encoder fast path: the encoder's first-token states computed once per example, the modules and heads trained
on them (as SetFit trains its head on frozen embeddings).

With `freeze_encoder: true` the encoder stays in eval mode, so the first-token state of an example is the same in
every epoch. `cache_first_token_states` runs the encoder once over a processed split and returns the split with a
`first_token_state` column in place of the token columns; `SurgeForSequenceClassification.forward(first_token_state=)`
then runs only the modules and heads. The same Trainer, metrics, early stopping and run folder are used; the saved
model is the normal full model.

On disk (`EncoderStateCache`), states are keyed per example by a hash of the encoder's weights and the example's
encoder input (input ids, token type ids), so runs of other variants or seeds whose encoder input is the same
(baseline and the single-task reference; every text-prefix variant of one lexicon) reuse them. Runs may share the
folder: a save merges into the file under a file lock and replaces it atomically from a uniquely named temporary
file, and only the main process of a distributed run writes; a SHA-256 of the stored arrays is checked on load, and
a file that fails it (cut short, corrupt) is ignored with a warning and rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout

from .run_lock import is_main_process

logger = logging.getLogger(__name__)

CACHE_LOCK_TIMEOUT_S = 300.0
"""How long a save waits for another process's save of the same cache file before it skips saving."""

KEY_BYTES = 16
"""Length of an example's key (a BLAKE2b digest of its encoder input)."""
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
        h = hashlib.blake2b(digest_size=KEY_BYTES)
        for ids in row:
            h.update(np.asarray(ids, dtype=np.int64).tobytes())
            h.update(b"|")
        keys.append(h.digest())
    return keys


def _checksum(keys: np.ndarray, states: np.ndarray) -> str:
    """SHA-256 of the stored arrays (shape, dtype and bytes), kept in the file and checked on load."""
    h = hashlib.sha256()
    for array in (keys, states):
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _read_states(path: Path) -> tuple[dict[bytes, np.ndarray], str | None]:
    """The states of a cache file and None, or ({}, why) when it is absent, unreadable or fails its checksum."""
    if not path.is_file():
        return {}, None
    try:
        with np.load(path, allow_pickle=False) as f:
            if "sha256" not in f.files:
                return {}, "it has no checksum (written by an older version)"
            keys, states, digest = f["keys"], f["states"], str(f["sha256"])
    except Exception as err:  # noqa: BLE001 - np.load of a cut-short or garbled file raises many kinds of error
        return {}, f"it cannot be read ({type(err).__name__}: {err})"
    if len(keys) != len(states) or _checksum(keys, states) != digest:
        return {}, "its content does not match its checksum"
    return dict(zip((k.tobytes() for k in keys), states, strict=True)), None


class EncoderStateCache:
    """First-token states on disk, one `.npz` per encoder fingerprint under `folder`, keyed per example input."""

    def __init__(self, folder: str | Path, fingerprint: str):
        self.path = Path(folder) / f"first_token_states-{fingerprint}.npz"
        self._states, problem = _read_states(self.path)
        if problem:
            logger.warning("Ignoring the encoder cache file %s: %s; it is rebuilt.", self.path, problem)
        self._dirty = False

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: bytes) -> np.ndarray | None:
        """The cached state of one example input, or None."""
        return self._states.get(key)

    def put(self, key: bytes, state: np.ndarray) -> None:
        """Remember one state (written by `save`)."""
        if len(key) != KEY_BYTES:
            raise ValueError(f"an encoder cache key has {KEY_BYTES} bytes, got {len(key)}")
        self._states[key] = state
        self._dirty = True

    def save(self) -> None:
        """Write the cache when it gained states, in the main process only: under a file lock, merged with what
        other processes saved meanwhile, to a unique temporary file that atomically replaces the cache file."""
        if not self._dirty or not is_main_process():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self.path.with_name(f".{self.path.name}.lock")), timeout=CACHE_LOCK_TIMEOUT_S):
                self._remove_stale_temporaries()
                on_disk, _ = _read_states(self.path)
                merged = {**on_disk, **self._states}
                self._write(merged)
                self._states = merged
        except Timeout:
            logger.warning(
                "Encoder cache %s: another process kept it locked for %.0f s; these states are not saved.",
                self.path,
                CACHE_LOCK_TIMEOUT_S,
            )
            return
        self._dirty = False

    def _temporary_prefix(self) -> str:
        return f".{self.path.name}."

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writers that died mid-save (under the lock, no live writer has one open)."""
        for stale in self.path.parent.glob(f"{self._temporary_prefix()}*.tmp"):
            logger.warning("Removing %s, left by an encoder cache save that was cut short.", stale)
            stale.unlink(missing_ok=True)

    def _write(self, states: dict[bytes, np.ndarray]) -> None:
        # one row of 16 bytes per key (a fixed-size bytes dtype would drop a key's trailing zero bytes)
        keys = np.frombuffer(b"".join(states), dtype=np.uint8).reshape(len(states), -1)
        values = np.stack(list(states.values())).astype(np.float32)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self._temporary_prefix(), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=keys, states=values, sha256=np.array(_checksum(keys, values)))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


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
