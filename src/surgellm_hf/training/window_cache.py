"""The frozen-encoder cache for long texts: one cached first-token state per window, pooled by the model.

A windowed split (`SurgeProcessor(long_text=...)`: each row holds its windows and `num_windows`) is flattened to one
row per window, cached with `encoder_cache.cache_first_token_states` (so each window's state is keyed by its own
encoder input, and the first window of a text shares its state with the truncated input of a run without windows),
and regrouped: each row then holds a ``[num_windows, hidden]`` `first_token_state`, which the collator stacks and
the model pools (`SurgeModel.forward(first_token_state=..., num_windows=...)`) as it pools encoded windows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .encoder_cache import STATE_COLUMN, TOKEN_COLUMNS, EncoderStateCache, cache_first_token_states

WINDOW_OF = "window_of"


def flatten_windows(dataset: Any) -> Any:
    """One row per window, in row order, from a windowed split: its token columns and `window_of`, the index of
    the row it belongs to."""
    import datasets

    cols = [c for c in TOKEN_COLUMNS if c in dataset.column_names]
    flat: dict[str, list[Any]] = {c: [] for c in cols}
    for c in cols:
        for windows in dataset[c]:
            flat[c].extend(windows)
    counts = np.asarray(dataset["num_windows"], dtype=np.int64)
    flat[WINDOW_OF] = np.repeat(np.arange(len(dataset)), counts).tolist()
    return datasets.Dataset.from_dict(flat)


def cache_window_states(
    model: Any,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_size: int = 64,
    cache: EncoderStateCache | None = None,
) -> Any:
    """A windowed split with a ``[num_windows, hidden]`` `first_token_state` per row instead of its token columns."""
    if dataset is None:
        return None
    states = cache_first_token_states(model, flatten_windows(dataset), collator, batch_size, cache=cache)
    flat = np.asarray(states[STATE_COLUMN], dtype=np.float32)
    ends = np.cumsum(np.asarray(dataset["num_windows"], dtype=np.int64))
    grouped = [list(part) for part in np.split(flat, ends[:-1])] if len(dataset) else []
    drop = [c for c in TOKEN_COLUMNS if c in dataset.column_names]
    return dataset.remove_columns(drop).add_column(STATE_COLUMN, grouped)
