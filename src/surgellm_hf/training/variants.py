"""The SURGELLM variants of the paper (docs/method.md#variants): which modules a model has and the paper's training budget."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    """One row of the variant table (docs/method.md#variants): switches P (prefix), G (gate), E (extended training), I (IWN) and the paper's budget."""

    name: str = field(metadata={"help": "Variant name."})
    use_prefix: bool = field(metadata={"help": "P: task/feature prefix in the input."})
    use_gate: bool = field(metadata={"help": "G: surgical feature gate (with task embedding)."})
    norm: str = field(metadata={"help": "Feature normalization: none, standard or iwn (I)."})
    extended_training: bool = field(metadata={"help": "E: the paper's extended training budget."})
    epochs: int = field(metadata={"help": "Epoch budget in the paper."})
    learning_rate: float = field(metadata={"help": "Learning rate in the paper."})


VARIANTS: dict[str, Variant] = {
    "baseline": Variant(
        "baseline", False, False, "none", extended_training=False, epochs=3, learning_rate=2e-5
    ),
    "S": Variant("S", True, True, "standard", extended_training=False, epochs=4, learning_rate=2e-5),
    "G": Variant("G", True, False, "none", extended_training=False, epochs=4, learning_rate=1.5e-5),
    "FULL": Variant("FULL", True, True, "standard", extended_training=True, epochs=5, learning_rate=1.5e-5),
    "IWN": Variant("IWN", True, True, "iwn", extended_training=True, epochs=5, learning_rate=1.5e-5),
}
"""The variant table (the one place it is written): training builds models from it, the model card shows it."""


def get_variant(name: str) -> Variant:
    """Look a variant up by name (case-insensitive), with an error listing the valid ones."""
    for key, variant in VARIANTS.items():
        if key.lower() == str(name).lower():
            return variant
    raise ValueError(f"Unknown variant {name!r}; choose one of {list(VARIANTS)}.")
