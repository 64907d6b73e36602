"""Hub repo ids: the one place they are validated (publishing refuses a bad id, the model card keeps only real ids)."""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub.utils import HFValidationError, validate_repo_id


def check_repo_id(repo_id: Any) -> str:
    """Return `repo_id` if it is a valid Hub model id (`name` or `namespace/name`), else raise ValueError."""
    if not isinstance(repo_id, str):
        raise TypeError(
            f"repo_id must be a string such as 'my-org/surgellm-roberta', got {type(repo_id).__name__}."
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"Malformed Hub repo id {repo_id!r}: {err}") from None
    return repo_id


def is_hub_id(value: Any) -> bool:
    """True for a plausible Hub repo id that is not a local path (the Hub rejects paths in `base_model`)."""
    if not isinstance(value, str) or not value or os.path.exists(value) or value.startswith((".", "/", "~")):
        return False
    try:
        check_repo_id(value)
    except ValueError:
        return False
    return True


__all__ = ["check_repo_id", "is_hub_id"]
