"""Hyperparameter search over run configs (`surgellm tune`) with Optuna: each trial a run folder, pruning on the
per-epoch validation score, studies that resume from their storage.

- `space`: the search-space YAML (`load_space`, `parse_space`, `SearchSpace`, `apply_values`);
- `study`: `run_study` (what `surgellm tune` calls) and its `PruningCallback`;
- `outputs`: best_config.yaml, the trials table, the history and importance plots.

Needs the `tune` extra: `pip install "surgellm_hf[tune]"` (optuna).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports as _lazy_exports

_LAZY: dict[str, str] = {
    "SearchSpace": "space",
    "Param": "space",
    "load_space": "space",
    "parse_space": "space",
    "apply_values": "space",
    "run_study": "study",
    "PruningCallback": "study",
    "StudyResult": "outputs",
    "write_outputs": "outputs",
}

__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:
    from .outputs import StudyResult, write_outputs
    from .space import Param, SearchSpace, apply_values, load_space, parse_space
    from .study import PruningCallback, run_study

__all__ = list(_LAZY)
