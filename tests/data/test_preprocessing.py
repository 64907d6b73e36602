"""HotpotQA difficulty preprocessing."""

from __future__ import annotations

import pytest

from surgellm_hf.data import (
    hotpotqa_difficulty,
)


def test_hotpot_preprocess_original_json_layout_and_word_cap():
    batch = {
        "_id": ["x"],
        "question": ["Q?"],
        "level": ["medium"],
        "supporting_facts": [[["P", 0]]],
        "context": [[["P", ["w " * 200, "v " * 200]], ["Other", ["no"]]]],
    }
    out = hotpotqa_difficulty(batch)
    words = out["text"][0].split(" [CTX] ")[1].split()
    assert len(words) == 300 and words[:1] == ["w"] and words[-1] == "v" and words.count("w") == 200
    assert out["label"] == [1] and out["id"] == ["hotpotqa-x"]
    with pytest.raises(ValueError, match="level 'unknown'"):
        hotpotqa_difficulty({**batch, "level": ["unknown"]})
