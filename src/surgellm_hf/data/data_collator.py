"""`SurgeDataCollator`: batches of processed rows for training and prediction."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..normalization import label_matrix


class SurgeDataCollator:
    """Pad token columns with the tokenizer; stack features, task ids, labels and cached first-token states.

    Labels: class ids (every task single-label) become a long ``[batch]`` tensor; label lists (a run with
    multi-label or regression tasks, see `data.targets`) become the padded float ``[batch, k]`` matrix the model
    takes for a batch that mixes problem types: k is the batch's widest row, column 0 holds a single-label class id
    or a regression target, the first L columns a multi-label row's multi-hot vector, the rest is 0.

    Long texts (rows of a windowed `SurgeProcessor`, holding `num_windows`): every window of the batch becomes one
    row of the token tensors (``[windows, length]``, padded together), in example order, and ``num_windows``
    (``[batch]``) says how many belong to each example; cached window states are stacked the same way.
    """

    _STACK = ("lexical_features", "task_ids", "labels", "first_token_state", "num_windows")

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        token_keys = [k for k in rows[0] if k not in self._STACK]
        windowed = "num_windows" in rows[0]
        token_rows = (
            [{k: r[k][j] for k in token_keys} for r in rows for j in range(int(r["num_windows"]))]
            if windowed
            else [{k: r[k] for k in token_keys} for r in rows]
        )
        batch = dict(self.tokenizer.pad(token_rows, return_tensors="pt")) if token_keys else {}
        if windowed:
            batch["num_windows"] = torch.tensor([int(r["num_windows"]) for r in rows], dtype=torch.long)
        if "first_token_state" in rows[0]:  # cached encoder output (frozen-encoder fast path)
            states = [r["first_token_state"] for r in rows]
            batch["first_token_state"] = torch.tensor(
                np.concatenate(states) if windowed else np.asarray(states), dtype=torch.float32
            )
        if "lexical_features" in rows[0]:
            batch["lexical_features"] = torch.tensor(
                [r["lexical_features"] for r in rows], dtype=torch.float32
            )
        if "task_ids" in rows[0]:
            batch["task_ids"] = torch.tensor([int(r["task_ids"]) for r in rows], dtype=torch.long)
        if "labels" in rows[0]:
            labels = [r["labels"] for r in rows]
            if any(isinstance(v, list | tuple | np.ndarray) for v in labels):
                batch["labels"] = torch.from_numpy(label_matrix(labels)).float()
            else:
                batch["labels"] = torch.tensor([int(v) for v in labels], dtype=torch.long)
        return batch
