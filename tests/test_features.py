"""Feature vectors s(x) (docs/method.md#features): hand-computed cases, a second simple implementation, bad input."""

from __future__ import annotations

import json
import random
import re
import unicodedata

import numpy as np
import pytest

from surgellm_hf.features import SURFACE_FEATURE_NAMES, LexiconMatcher
from surgellm_hf.lexicon import CURATED_GROUPS, Lexicon, featurize


def surface_features(text: str) -> list[float]:
    """The six surface features of one text, as plain floats (the batch path with no lexicon groups)."""
    return LexiconMatcher([]).featurize([text])[0].tolist()


GROUPS = list(CURATED_GROUPS)  # sst_pos, sst_neg, llm_stat, llm_formal, llm_list, human_pers, human_hedge,
# human_emo, retrieval, prompt_cot


def vec(groups: dict[str, int] | None = None, wc=0, mwl=0.0, sents=0, q=0, ex=0, digit=0) -> np.ndarray:
    """Expected curated feature vector written out by hand: group counts by name, then the six surface values."""
    row = [0.0] * len(GROUPS)
    for name, n in (groups or {}).items():
        row[GROUPS.index(name)] = n
    return np.array(row + [wc, mwl, sents, q, ex, digit], dtype=np.float32)


HAND_CASES = [
    ("", vec()),
    ("  \n\t ", vec()),
    (
        "?!...",
        vec(wc=1, mwl=5, sents=1, q=1, ex=1),
    ),  # only punctuation: no non-blank piece, but >= 1 sentence
    ("Captivating!", vec({"sst_pos": 1}, wc=1, mwl=12, sents=1, ex=1)),
    # phrase split by a line break still matches; 6 words of 3+7+4+4+2+6 characters
    ("The results\nshow that it works.", vec({"llm_stat": 1}, wc=6, mwl=26 / 6, sents=1)),
    ("results \r\n\t show", vec({"llm_stat": 1}, wc=2, mwl=5.5, sents=1)),
    ("results-show", vec(wc=1, mwl=12, sents=1)),
    # `(1)` lists: (1),(2) literal; first, then; `we` twice counts once; observed
    (
        "(1) First, we observed it. (2) Then we did not.",
        vec(
            {"llm_list": 2, "prompt_cot": 2, "human_pers": 1, "llm_stat": 1}, wc=10, mwl=3.8, sents=2, digit=1
        ),
    ),
    ("(12) is not (1)", vec({"llm_list": 1}, wc=4, mwl=3, sents=1, digit=1)),
    ("Call 911 now", vec(wc=3, mwl=10 / 3, sents=1, digit=1)),
    ("Room \u0663", vec(wc=2, mwl=2.5, sents=1, digit=1)),  # Arabic-Indic digit three
    ("Привет, мир! Как дела?", vec(wc=4, mwl=19 / 4, sents=2, q=1, ex=1)),
    ("我喜欢这部电影。真好！", vec(wc=1, mwl=11, sents=1)),  # no ASCII terminators, fullwidth ! is not `!`
    ("GREAT great Great, greatest", vec({"sst_pos": 1}, wc=4, mwl=6, sents=1)),  # presence, not occurrences
    (
        "Terrible. Simply awful!",
        vec({"sst_neg": 2, "human_emo": 2}, wc=3, mwl=7, sents=2, ex=1),
    ),  # two groups
    ("I think I guess I feel", vec({"human_pers": 3, "human_hedge": 1}, wc=6, mwl=17 / 6, sents=1)),
    ("indicates indicating suggestion", vec({"llm_stat": 2}, wc=3, mwl=29 / 3, sents=1)),  # stem `indicate`
    ("semimulti-hop multi-hops", vec(wc=2, mwl=11.5, sents=1)),
    ("multi-hop.", vec({"retrieval": 1}, wc=1, mwl=10, sents=1)),
    ("step by\nstep", vec({"prompt_cot": 1}, wc=3, mwl=10 / 3, sents=1)),
    ("Hi. ", vec(wc=1, mwl=3, sents=1)),  # the whitespace-only tail after the period is not a sentence
    ("Wait... what?!", vec(wc=2, mwl=6.5, sents=2, q=1, ex=1)),
    ("STRASSE", vec(wc=1, mwl=7, sents=1)),
]


@pytest.mark.parametrize("text,expected", HAND_CASES, ids=[repr(t)[:30] for t, _ in HAND_CASES])
def test_hand_computed_feature_vectors(text, expected):
    got = Lexicon.curated().featurize([text])
    assert got.dtype == np.float32 and got.shape == (1, 16)
    np.testing.assert_allclose(got[0], expected, rtol=1e-6, atol=0)


def test_batch_equals_rows_and_single_string():
    lex = Lexicon.curated()
    texts = [t for t, _ in HAND_CASES]
    batch = lex.featurize(texts)
    np.testing.assert_allclose(batch, np.stack([e for _, e in HAND_CASES]), rtol=1e-6)
    np.testing.assert_array_equal(lex.featurize(texts[3]), batch[3:4])  # a single string is a batch of one
    np.testing.assert_array_equal(lex.featurize(tuple(texts)), batch)
    np.testing.assert_array_equal(lex.featurize(np.array(texts)), batch)
    np.testing.assert_array_equal(featurize(texts), batch)  # module function defaults to the curated lexicon
    assert lex.featurize([]).shape == (0, 16)


def test_unicode_normalization_and_case_folding():
    composed, decomposed = "Caf\u00e9 gro\u00dfartig", "Cafe\u0301 gro\u00dfartig"
    lex = Lexicon({"g": ["café", "grossartig"]})
    a, b = lex.featurize([composed, decomposed])
    np.testing.assert_array_equal(a, b)
    assert a[0] == 2  # casefold: ß == ss
    assert a[2] == (4 + 9) / 2  # mean word length in code points of the NFC text


def test_entry_rules_on_a_custom_lexicon():
    lex = Lexicon({"punct": [":)", "f(x)", "e.g."], "pre": ["re*"], "phrase": ["new york*"]})
    rows = lex.featurize(
        [
            "nice :) ok",
            "let f(x) be, e.g. this",
            "ref(x) e.g.,",
            "redo rerun",  # one prefix entry: present once
            "New   York-based people",
            "new yorkers",
            "newyork",
        ]
    )
    np.testing.assert_array_equal(
        rows[:, :3], [[1, 0, 0], [2, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 0, 0]]
    )


def test_any_number_of_groups():
    one = Lexicon({"only": ["yes"]})
    many = Lexicon({f"g{i}": [f"w{i}"] for i in range(25)})
    assert one.featurize(["yes yes no"]).shape == (1, 7)
    got = many.featurize(["w3 w24 w3"])
    assert got.shape == (1, 31)
    assert got[0, :25].tolist() == [1.0 if i in (3, 24) else 0.0 for i in range(25)]
    np.testing.assert_allclose(got[0, 25:], [3, 7 / 3, 1, 0, 0, 1], rtol=1e-6)


def test_surface_features_helper():
    assert surface_features("Really? Yes!") == [2.0, 5.5, 2.0, 1.0, 1.0, 0.0]
    assert len(SURFACE_FEATURE_NAMES) == 6


# ----------------------------------------------------------------------------- second implementation
def reference_features(text: str, groups: dict[str, list[str]]) -> list[float]:
    """Straightforward reading of docs/method.md#features: one regex per entry on the case-folded text, no shortcuts."""
    t = unicodedata.normalize("NFC", text)
    low = t.casefold()
    row: list[float] = []
    for entries in groups.values():
        present = 0
        for entry in entries:
            e = " ".join(unicodedata.normalize("NFC", entry).casefold().split())
            is_prefix = e.endswith("*")
            body = e[:-1] if is_prefix else e
            pattern = r"\s+".join(re.escape(p) for p in body.split(" "))
            if re.match(r"\w", body):
                pattern = r"(?<!\w)" + pattern
            if not is_prefix and re.search(r"\w$", body):
                pattern += r"(?!\w)"
            present += re.search(pattern, low) is not None
        row.append(present)
    words = t.split()
    if not words:
        return row + [0.0] * 6
    pieces = [p for p in re.split(r"[.!?]", t) if p.strip()]
    row += [
        len(words),
        sum(len(w) for w in words) / len(words),
        max(1, len(pieces)),
        t.count("?"),
        t.count("!"),
        float(any(unicodedata.category(c) == "Nd" for c in t)),
    ]
    return row


def _sample_real_texts(shared_data, per_task=150) -> list[str]:
    texts = []
    for task_dir in sorted(p for p in shared_data.iterdir() if (p / "train.jsonl").is_file()):
        lines = (task_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()
        texts += [json.loads(line)["text"] for line in lines[:per_task]]
    return texts


def _random_tricky_texts(n=400, seed=0) -> list[str]:
    rng = random.Random(seed)
    atoms = [
        "great",
        "GREAT",
        "captivating",
        "uncaptivated",
        "i",
        "I",
        "think",
        "results",
        "show",
        "(1)",
        "(2)",
        "multi-hop",
        "multi",
        "hop",
        "in",
        "conclusion",
        "the",
        "chain",
        "of",
        "thought",
        "step",
        "by",
        "?",
        "!",
        ".",
        "...",
        "3",
        "٣",
        "é",
        "e\u0301",
        "ß",
        "Привет",
        "电影",
        "according",
        "to",
        "kind",
        "sort",
        "on",
        "other",
        "hand",
        "let",
        "us",
        "data",
        "indicates",
        "suggest",
        "\n",
        "\t",
        "  ",
        ",",
        "-",
        "'",
    ]
    return [
        "".join(rng.choice(atoms) + rng.choice(["", " ", " ", "\n"]) for _ in range(rng.randint(0, 30)))
        for _ in range(n)
    ]


def test_matches_reference_implementation_on_real_and_random_text(shared_data):
    lex = Lexicon.curated()
    texts = _sample_real_texts(shared_data) + _random_tricky_texts()
    got = lex.featurize(texts)
    expected = np.array([reference_features(t, lex.groups) for t in texts], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got[:, :10].sum() > 100  # the sample really exercises the lexicon


def test_matches_reference_implementation_on_random_text():
    """The random half of the check above, which must not skip where ../shared/data is absent."""
    lex = Lexicon.curated()
    texts = _random_tricky_texts()
    expected = np.array([reference_features(t, lex.groups) for t in texts], dtype=np.float32)
    np.testing.assert_allclose(lex.featurize(texts), expected, rtol=1e-6)


# Sentence counts worked out by hand with docs/method.md#features: split on `.`, `!`, `?`; drop empty (and whitespace-only)
# pieces; at least 1 for a text with any non-whitespace character. The comment shows the kept pieces.
SENTENCE_CASES = [
    ("One sentence.", 1),  # "One sentence"
    ("One. Two. Three.", 3),
    ("No terminator at all", 1),
    ("Question? Answer!", 2),
    ("Ellipsis... then more", 2),  # "Ellipsis", " then more"
    ("Dr. Smith arrived at 3 p.m. today.", 4),  # "Dr", " Smith arrived at 3 p", "m", " today"
    ("Version 2.0.1 released", 3),  # "Version 2", "0", "1 released"
    ("Wow!!! Really??? Yes.", 3),
    ("...leading dots", 1),
    ("trailing spaces.   ", 1),  # the tail "   " is whitespace only
    (". . .", 1),  # no non-blank piece, but the text is not blank
    ("?", 1),
    ("!!! ??? ...", 1),
    ("Hello?!?!", 1),
    ("Line one\nLine two\nLine three", 1),  # line breaks do not end sentences
    ("First line.\nSecond line.\n", 2),
    ("a.b.c", 3),
    ("Is it? It is. It is!", 3),
    ("Ünïcödé text. Ещё одно предложение! 第三句？", 3),  # the fullwidth ？ is no terminator
    ("e.g. this, i.e. that", 5),  # "e", "g", " this, i", "e", " that"
    ("Price: $3.50! Cheap?", 3),  # "Price: $3", "50", " Cheap"
    ("\u201cQuoted.\u201d Then end", 2),  # "“Quoted", "” Then end"
    ("Tabs\t.\tand more", 2),
    ("A sentence . Another one .", 2),
    ("x", 1),
    ("", 0),
]


def test_sentence_counts_on_varied_hand_written_text():
    texts = [t for t, _ in SENTENCE_CASES]
    expected = [n for _, n in SENTENCE_CASES]
    column = len(GROUPS) + SURFACE_FEATURE_NAMES.index("sentence_count")
    got = Lexicon.curated().featurize(texts)[:, column]
    assert got.tolist() == expected, [(t, g, e) for t, g, e in zip(texts, got.tolist(), expected) if g != e]
    assert [surface_features(t)[2] for t in texts] == expected


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "bad,match",
    [
        (None, "got None"),
        (["ok", None], r"texts\[1\] must be a string, got NoneType"),
        ([1, "a"], r"texts\[0\] must be a string, got int"),
        (b"bytes", "bytes"),
        (3.5, "float"),
    ],
)
def test_bad_texts_raise_clear_errors(bad, match):
    with pytest.raises(TypeError, match=match):
        Lexicon.curated().featurize(bad)


def test_matcher_without_groups_gives_surface_only():
    m = LexiconMatcher([])
    assert m.featurize(["a b?"]).tolist() == [[2.0, 1.5, 1.0, 1.0, 0.0, 0.0]]
