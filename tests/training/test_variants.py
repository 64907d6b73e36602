"""The variant table (docs/method.md#variants)."""

from __future__ import annotations

import pytest

from surgellm_hf.training import (
    VARIANTS,
    get_variant,
)


def test_variants_match_the_method_table():
    rows = {
        name: (v.use_prefix, v.use_gate, v.norm, v.extended_training, v.epochs, v.learning_rate)
        for name, v in VARIANTS.items()
    }
    assert rows == {
        "baseline": (False, False, "none", False, 3, 2e-5),
        "S": (True, True, "standard", False, 4, 2e-5),
        "G": (True, False, "none", False, 4, 1.5e-5),
        "FULL": (True, True, "standard", True, 5, 1.5e-5),
        "IWN": (True, True, "iwn", True, 5, 1.5e-5),
    }
    assert get_variant("iwn").name == "IWN"
    with pytest.raises(ValueError, match="Unknown variant 'X'; choose one of"):
        get_variant("X")
