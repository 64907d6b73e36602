"""`SurgeDataCollator`: batches of processed rows for training and prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class SurgeDataCollator:
    """Pad token columns with the tokenizer; stack features, task ids, labels and cached first-token states."""

    _STACK = ("lexical_features", "task_ids", "labels", "first_token_state")

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        token_keys = [k for k in rows[0] if k not in self._STACK]
        batch = (
            dict(self.tokenizer.pad([{k: r[k] for k in token_keys} for r in rows], return_tensors="pt"))
            if token_keys
            else {}
        )
        if "first_token_state" in rows[0]:  # cached encoder output (frozen-encoder fast path)
            batch["first_token_state"] = torch.tensor(
                np.asarray([r["first_token_state"] for r in rows]), dtype=torch.float32
            )
        if "lexical_features" in rows[0]:
            batch["lexical_features"] = torch.tensor(
                [r["lexical_features"] for r in rows], dtype=torch.float32
            )
        for key in ("task_ids", "labels"):
            if key in rows[0]:
                batch[key] = torch.tensor([int(r[key]) for r in rows], dtype=torch.long)
        return batch
