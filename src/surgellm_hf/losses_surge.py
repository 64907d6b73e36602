"""Label checks and per-row losses of SURGELLM by problem type (torch), beside `problem_types` (numpy only).

`labels_as_matrix` turns any accepted ``labels`` into the padded ``[batch, max_num_labels]`` matrix (layout:
`problem_types.label_matrix`) and refuses values a task's type cannot take; `rows_loss` is each row's loss under
its task's type: cross-entropy, BCE with logits over the task's labels, squared error.

Copied to the Hub for ``trust_remote_code`` loading: imports only torch and its flat sibling `problem_types`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .problem_types import ProblemType

# plain ints in the tensor code (torch.compile / torch.export trace them as constants)
_SINGLE, _MULTI, _REGRESSION = (
    int(ProblemType.SINGLE_LABEL),
    int(ProblemType.MULTI_LABEL),
    int(ProblemType.REGRESSION),
)


def task_constants(config: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task `ProblemType` codes and label counts of a `SurgeConfig`, as tensors indexed by task id."""
    codes = [int(ProblemType.of(k)) for k in config.task_problem_types.values()]
    return torch.tensor(codes, device=device), torch.tensor(list(config.tasks.values()), device=device)


def labels_as_matrix(
    config: Any, labels: torch.Tensor, task_ids: torch.Tensor, check: bool = True
) -> torch.Tensor:
    """Any accepted labels format as the padded float ``[batch, max_num_labels]`` matrix (see
    `SurgeForSequenceClassification.forward`); `check` refuses values a task's type cannot take (a host sync)."""
    batch, width = task_ids.shape[0], config.max_num_labels
    if labels.dim() == 1:
        if labels.shape[0] != batch:
            raise ValueError(f"`labels` must have {batch} rows (one per example), got {tuple(labels.shape)}.")
        labels = labels.view(-1, 1)
    if labels.dim() != 2 or labels.shape[0] != batch or not 1 <= labels.shape[1] <= width:
        raise ValueError(
            f"`labels` must be [{batch}] (class ids or regression targets) or [{batch}, k] with 1 <= k <= "
            f"max_num_labels={width} (multi-hot rows, padded), got {tuple(labels.shape)}."
        )
    matrix = labels.float()
    if labels.shape[1] < width:
        matrix = nn.functional.pad(matrix, (0, width - labels.shape[1]))
    if check:
        check_label_values(config, matrix, task_ids, given_width=labels.shape[1])
    return matrix


def check_label_values(config: Any, matrix: torch.Tensor, task_ids: torch.Tensor, given_width: int) -> None:
    """Raise a ValueError naming the task and the first offending row for labels its task type cannot take."""
    codes, counts = task_constants(config, matrix.device)
    kind, count = codes[task_ids], counts[task_ids]
    y0 = matrix[:, 0]
    in_task = (torch.arange(matrix.shape[1], device=matrix.device).view(1, -1) < count.view(-1, 1)) & (
        kind == _MULTI
    ).view(-1, 1)
    problems = {
        "single": (kind == _SINGLE) & ~((y0 == y0.round()) & (y0 >= 0) & (y0 < count)),
        "regression": (kind == _REGRESSION) & ~torch.isfinite(y0),
        "width": (kind == _MULTI) & (count > given_width),
        "multi": (in_task & (matrix != 0) & (matrix != 1)).any(dim=1),
    }
    for what, bad in problems.items():
        if not bool(bad.any()):
            continue
        i = int(bad.nonzero()[0])
        name = config.task_names[int(task_ids[i])]
        n_bad = int(bad.sum())
        if what == "single":
            raise ValueError(
                f"Label {float(y0[i]):g} out of range for task {name!r} (0..{config.tasks[name] - 1}); "
                f"single-label labels are class ids; {n_bad} bad label(s) in the batch, first at row {i}."
            )
        if what == "regression":
            raise ValueError(
                f"Regression target {float(y0[i])} of task {name!r} is not a finite number; {n_bad} bad "
                f"target(s) in the batch, first at row {i}."
            )
        if what == "width":
            raise ValueError(
                f"Multi-label task {name!r} has {config.tasks[name]} labels but `labels` has "
                f"{given_width} column(s) (batch row {i}); pass multi-hot rows [batch, >= "
                f"{config.tasks[name]}]."
            )
        row = matrix[i, : config.tasks[name]].tolist()
        raise ValueError(
            f"Multi-hot labels of task {name!r} must be 0 or 1; batch row {i} holds {row} ({n_bad} bad row(s))."
        )


def rows_loss(
    config: Any,
    logits: torch.Tensor,
    matrix: torch.Tensor,
    task_ids: torch.Tensor,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy (single-label), BCE with logits averaged over the task's labels (multi-label; with
    `pos_weight` p: -(p_j y_j log s(x_j) + (1 - y_j) log(1 - s(x_j))), torch's meaning), squared error on output 0
    (regression), in fp32. No branch on the data: the three losses are computed for every row and selected with
    `torch.where` (the inputs of the unselected ones made safe, so no NaN/inf gradients)."""
    codes, counts = task_constants(config, logits.device)
    kind, count = codes[task_ids], counts[task_ids]
    x = logits.float()
    matrix = matrix.to(x.device)
    single, multi = kind == _SINGLE, kind == _MULTI
    target = torch.where(single, matrix[:, 0], torch.zeros_like(matrix[:, 0])).long()
    ce = nn.functional.cross_entropy(x, target, reduction="none")
    columns = torch.arange(x.shape[1], device=x.device).view(1, -1) < count.view(-1, 1)
    multi_hot = torch.where(columns & multi.view(-1, 1), matrix, torch.zeros_like(matrix))
    bce = nn.functional.binary_cross_entropy_with_logits(
        torch.where(columns, x, torch.zeros_like(x)),
        multi_hot,
        reduction="none",
        pos_weight=None if pos_weight is None else pos_weight.to(x.device, torch.float32),
    )
    bce = torch.where(columns, bce, torch.zeros_like(bce)).sum(dim=1) / count.float()
    mse = (x[:, 0] - torch.where(kind == _REGRESSION, matrix[:, 0], x[:, 0].detach())) ** 2
    return torch.where(single, ce, torch.where(multi, bce, mse))


__all__ = ["task_constants", "labels_as_matrix", "check_label_values", "rows_loss"]
