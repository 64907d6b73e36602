"""`SurgeDataCollator`: batches of processed rows for training and prediction."""

from __future__ import annotations

from typing import Any

import torch


class SurgeDataCollator:
    """Pad token columns with the tokenizer; stack features, task ids and labels."""

    _STACK = ("lexical_features", "task_ids", "labels")

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        token_keys = [k for k in rows[0] if k not in self._STACK]
        batch = dict(self.tokenizer.pad([{k: r[k] for k in token_keys} for r in rows], return_tensors="pt"))
        if "lexical_features" in rows[0]:
            batch["lexical_features"] = torch.tensor(
                [r["lexical_features"] for r in rows], dtype=torch.float32
            )
        for key in ("task_ids", "labels"):
            if key in rows[0]:
                batch[key] = torch.tensor([int(r[key]) for r in rows], dtype=torch.long)
        return batch
