"""The package's one way to import lazily: PEP 562 module attributes that load their module on first access, and
whether torch can be imported (as transformers' `_LazyModule` / `is_torch_available` do)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    module: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `module`: `names` maps a public name to the module defining it, relative to
    `module`'s package as in a ``from`` statement ("lexicon" or ".lexicon": a sibling; "..inference": one level up).

    Pair it with the same imports under ``if TYPE_CHECKING:`` so type checkers and editors see the names.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            target = names[name]
            owner = sys.modules[module]
            relative = target if target.startswith(".") else f".{target}"
            value = getattr(importlib.import_module(relative, owner.__package__), name)
            setattr(owner, name, value)  # later lookups find it without this hook
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[module]), *names})

    return __getattr__, __dir__


def is_torch_available() -> bool:
    """Whether ``import torch`` can succeed, without importing it (an import hook that refuses torch counts as no)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False
