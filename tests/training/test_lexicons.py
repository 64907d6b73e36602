"""The run's lexicon and its content hash."""

from __future__ import annotations

import hashlib
import json


def test_lexicon_hash_follows_groups_and_entries_not_the_name():
    from surgellm_hf import Lexicon
    from surgellm_hf.training import build_lexicon

    curated = Lexicon.curated()
    expected = hashlib.sha256(
        json.dumps([[g, e] for g, e in curated.groups.items()], separators=(",", ":")).encode()
    ).hexdigest()
    assert curated.content_hash() == expected
    assert Lexicon(curated.groups, name="renamed").content_hash() == expected
    reordered = dict(reversed(list(curated.groups.items())))
    assert Lexicon(reordered).content_hash() != expected  # column order is part of the features
    a, b = build_lexicon("random", None, "", seed=0), build_lexicon("random", None, "", seed=1)
    assert a.content_hash() == build_lexicon("random", None, "", seed=0).content_hash() != b.content_hash()
