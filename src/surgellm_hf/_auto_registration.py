"""Register SURGELLM with transformers' Auto classes when those are first imported, not when the package is.

``import surgellm_hf`` imports neither transformers nor torch (so `surgellm --help`, the processor and the ONNX
runner stay fast and torch-free). The registration runs through post-import hooks (the maintained `wrapt` library):
the configuration is registered once both ``transformers.models.auto.configuration_auto`` and our
`configuration_surge` have finished importing, the models once ``...auto.modeling_auto`` and `modeling_surge` have
(and only where torch can be imported). Waiting for both sides matters because either may be imported from inside
the other's import: registering against a half-initialised module would fail. See docs/architecture.md#auto-classes.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from types import ModuleType

import wrapt

from ._lazy import is_torch_available

PACKAGE = __name__.rpartition(".")[0]
CONFIG_AUTO = "transformers.models.auto.configuration_auto"
MODEL_AUTO = "transformers.models.auto.modeling_auto"


def _register_config(auto: ModuleType, ours: ModuleType) -> None:
    """AutoConfig resolves ``model_type: surge`` to `SurgeConfig`."""
    auto.AutoConfig.register(ours.SurgeConfig.model_type, ours.SurgeConfig, exist_ok=True)


def _register_models(auto: ModuleType, ours: ModuleType) -> None:
    """AutoModel and AutoModelForSequenceClassification resolve `SurgeConfig` to SURGELLM's models."""
    auto.AutoModel.register(ours.SurgeConfig, ours.SurgeModel, exist_ok=True)
    auto.AutoModelForSequenceClassification.register(
        ours.SurgeConfig, ours.SurgeForSequenceClassification, exist_ok=True
    )


class _Pair:
    """Runs `register(auto_module, our_module)` once, after both modules have finished importing."""

    def __init__(self, auto: str, ours: str, register: Callable[[ModuleType, ModuleType], None]) -> None:
        self.auto, self.ours, self.register = auto, ours, register
        self.loaded: dict[str, ModuleType] = {}
        self.done = False
        self.lock = threading.RLock()

    def on_auto(self, module: ModuleType) -> None:
        """transformers' Auto module is complete: import ours if nobody is importing it yet (its hook registers)."""
        with self.lock:
            self.loaded[self.auto] = module
            if (
                self.ours not in sys.modules
            ):  # not being imported: import it now; its own hook finishes the job
                importlib.import_module(self.ours)
            self._maybe_register()

    def on_ours(self, module: ModuleType) -> None:
        """Our module is complete: register if transformers' Auto module already is."""
        with self.lock:
            self.loaded[self.ours] = module
            self._maybe_register()

    def _maybe_register(self) -> None:
        if not self.done and self.auto in self.loaded and self.ours in self.loaded:
            self.done = True
            self.register(self.loaded[self.auto], self.loaded[self.ours])


def install() -> None:
    """Install the hooks (idempotent per process: `wrapt` fires a hook at once when its module is already loaded)."""
    pairs = [(CONFIG_AUTO, f"{PACKAGE}.configuration_surge", _register_config)]
    if is_torch_available():  # the model classes need torch; without it only the configuration is registered
        pairs.append((MODEL_AUTO, f"{PACKAGE}.modeling_surge", _register_models))
    for auto, ours, register in pairs:
        pair = _Pair(auto, ours, register)
        wrapt.register_post_import_hook(pair.on_ours, ours)
        wrapt.register_post_import_hook(pair.on_auto, auto)
