"""Lexicon building from data: log-odds ranking and extraction (docs/method.md#lexicon-extraction), the random control (docs/method.md#random-lexicon)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from surgellm_hf.lexicon import Lexicon
from surgellm_hf.lexicon_extraction import log_odds_dirichlet, rank_words


# ----------------------------------------------------------------------------- log-odds
def test_log_odds_dirichlet_matches_hand_computation():
    a, b, prior = np.array([3.0, 1.0]), np.array([1.0, 5.0]), np.array([2.0, 4.0])
    # word 0: delta = log(5/(4+6-5)) - log(3/(6+6-3)); var = 1/5 + 1/3
    delta0 = math.log(5 / 5) - math.log(3 / 9)
    z0 = delta0 / math.sqrt(1 / 5 + 1 / 3)
    delta1 = math.log(5 / (4 + 6 - 5)) - math.log(9 / (6 + 6 - 9))
    z1 = delta1 / math.sqrt(1 / 5 + 1 / 9)
    np.testing.assert_allclose(log_odds_dirichlet(a, b, prior), [z0, z1], rtol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        log_odds_dirichlet(a, b, np.array([0.0, 1.0]))


def _synthetic_corpus(n_per_class=60, seed=0):
    """Two classes sharing filler words; each class plants its own discriminative words."""
    rng = random.Random(seed)
    filler = [
        "the",
        "a",
        "of",
        "and",
        "film",
        "story",
        "people",
        "day",
        "house",
        "water",
        "city",
        "time",
        "road",
        "music",
        "book",
        "table",
        "window",
        "paper",
        "garden",
        "river",
    ]
    planted = {0: ["dreadful", "boring", "tedious"], 1: ["wonderful", "delightful", "charming"]}
    texts, labels = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            words = rng.choices(filler, k=12) + rng.sample(planted[label], 2)
            rng.shuffle(words)
            texts.append(" ".join(words))
            labels.append(label)
    return texts, labels, planted


def test_rank_words_puts_planted_words_first():
    texts, labels, planted = _synthetic_corpus()
    ranked = rank_words(texts, labels, top_n=5)
    for label, words in planted.items():
        top = [w for w, _ in ranked[None][label]]
        assert set(top[:3]) == set(words), top
        assert all(z > 0 for _, z in ranked[None][label])


def _monroe_z(class_counts: dict, rest_counts: dict, prior: dict) -> dict[str, float]:
    """Monroe et al. (2008) z-scored log-odds with an informative Dirichlet prior, written out independently:
    delta = log((y_i+a)/(n_i+a0-y_i-a)) - log((y_j+a)/(n_j+a0-y_j-a)), var = 1/(y_i+a) + 1/(y_j+a)."""
    a0 = sum(prior.values())
    n_i, n_j = sum(class_counts.values()), sum(rest_counts.values())
    z = {}
    for w, a in prior.items():
        y_i, y_j = class_counts.get(w, 0), rest_counts.get(w, 0)
        delta = math.log((y_i + a) / (n_i + a0 - y_i - a)) - math.log((y_j + a) / (n_j + a0 - y_j - a))
        z[w] = delta / math.sqrt(1 / (y_i + a) + 1 / (y_j + a))
    return z


# Two tasks; task "b" uses task "a"'s words at very different rates, so the pooled prior (all tasks' text)
# differs clearly from task "a"'s own counts and from a flat prior.
_PRIOR_TEXTS = {
    "a": [
        ("good good fun plot", 1),
        ("good fun fun cast", 1),
        ("good plot cast good", 1),
        ("bad bad plot dull", 0),
        ("bad dull dull cast", 0),
        ("bad plot fun bad", 0),
    ],
    "b": [
        ("plot plot plot plot bad", 0),
        ("cast cast plot plot good", 1),
        ("plot dull plot plot plot", 0),
        ("cast plot cast fun cast", 1),
    ],
}


def _counts(texts: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for text in texts:
        for w in text.split():
            out[w] = out.get(w, 0) + 1
    return out


def test_rank_words_uses_the_informative_prior_of_all_tasks_pooled():
    """Every z-score equals the independent formula with prior = word counts of all tasks' text (docs/method.md#lexicon-extraction)."""
    texts = [t for task in _PRIOR_TEXTS for t, _ in _PRIOR_TEXTS[task]]
    labels = [y for task in _PRIOR_TEXTS for _, y in _PRIOR_TEXTS[task]]
    tasks = [task for task in _PRIOR_TEXTS for _ in _PRIOR_TEXTS[task]]
    ranked = rank_words(texts, labels, tasks=tasks, top_n=50, min_count=1)
    pooled = _counts(texts)  # the default prior: every task's text, not only the ranked task's
    for task, rows in _PRIOR_TEXTS.items():
        for label in (0, 1):
            own = _counts([t for t, y in rows if y == label])
            rest = _counts([t for t, y in rows if y != label])
            vocab = set(own) | set(rest)
            z = _monroe_z(own, rest, {w: pooled[w] for w in vocab})
            expected = sorted(
                ((w, v) for w, v in z.items() if own.get(w, 0) >= 1 and v > 0), key=lambda p: -p[1]
            )
            got = ranked[task][label]
            assert [w for w, _ in got] == [w for w, _ in expected], (task, label, got, expected)
            np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-12)
    # the prior is visible: with a flat prior task "a" class 1 would rank another order or other values
    own = _counts([t for t, y in _PRIOR_TEXTS["a"] if y == 1])
    rest = _counts([t for t, y in _PRIOR_TEXTS["a"] if y == 0])
    flat = _monroe_z(own, rest, dict.fromkeys(set(own) | set(rest), 0.01))
    assert not np.allclose([v for _, v in ranked["a"][1]], [flat[w] for w, _ in ranked["a"][1]])


def test_rank_words_explicit_prior_texts_and_floor_for_unseen_words():
    """`prior_texts` replaces the pooled prior; a word the prior text lacks gets the documented floor 0.01."""
    texts = [t for t, _ in _PRIOR_TEXTS["a"]]
    labels = [y for _, y in _PRIOR_TEXTS["a"]]
    prior_texts = ["plot plot plot cast good", "bad plot cast cast"]  # no "fun", no "dull"
    ranked = rank_words(texts, labels, prior_texts=prior_texts, top_n=50, min_count=1)
    prior_counts = _counts(prior_texts)
    for label in (0, 1):
        own = _counts([t for t, y in _PRIOR_TEXTS["a"] if y == label])
        rest = _counts([t for t, y in _PRIOR_TEXTS["a"] if y != label])
        vocab = set(own) | set(rest)
        z = _monroe_z(own, rest, {w: prior_counts.get(w, 0.01) for w in vocab})
        expected = sorted(
            ((w, v) for w, v in z.items() if own.get(w, 0) >= 1 and v > 0), key=lambda p: (-p[1], p[0])
        )
        got = ranked[None][label]
        assert [w for w, _ in got] == [w for w, _ in expected], (label, got, expected)
        np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-12)


def test_extract_recovers_planted_words_and_is_deterministic(minilm_path):
    texts, labels, planted = _synthetic_corpus()
    kwargs = dict(top_n=10, k=3, seed=0, encoder=str(minilm_path))
    lex = Lexicon.extract(texts, labels, **kwargs)
    entries = {e for es in lex.groups.values() for e in es}
    assert set(planted[0]) | set(planted[1]) <= entries
    assert lex.n_groups == 3 and lex.metadata["k"] == 3 and lex.metadata["seed"] == 0
    for label, words in planted.items():
        assert set(lex.metadata["top_words"]["None"][str(label)][:3]) == set(words)
    again = Lexicon.extract(texts, labels, **kwargs)
    assert again == lex and again.metadata == lex.metadata
    # the extracted lexicon finds its planted words in text
    row = lex.featurize(["wonderful, charming, zzz"])[0]
    assert row[: lex.n_groups].sum() == 2


def test_extract_per_task_with_a_model_and_tokenizer_pair(minilm_path):
    from transformers import AutoModel, AutoTokenizer

    t1, y1, p1 = _synthetic_corpus(seed=1)
    t2 = [t.replace("dreadful", "zigzag").replace("wonderful", "quartz") for t in t1]
    pair = (AutoModel.from_pretrained(minilm_path).train(), AutoTokenizer.from_pretrained(minilm_path))
    lex = Lexicon.extract(
        t1 + t2, y1 + y1, tasks=["a"] * len(t1) + ["b"] * len(t2), top_n=3, k=4, encoder=pair
    )
    assert set(lex.metadata["top_words"]) == {"a", "b"}
    assert (
        "zigzag" in lex.metadata["top_words"]["b"]["0"] and "dreadful" in lex.metadata["top_words"]["a"]["0"]
    )
    entries = {e for es in lex.groups.values() for e in es}
    assert {"zigzag", "quartz", "dreadful", "wonderful"} <= entries
    assert pair[0].training  # embedding ran in eval mode and restored the caller's train mode


def test_extract_with_fewer_words_than_k_warns_and_lowers_k(minilm_path):
    texts = ["good good film", "good day", "bad bad film", "bad night"]
    with pytest.warns(UserWarning, match="fewer than k=10"):
        lex = Lexicon.extract(texts, [1, 1, 0, 0], encoder=str(minilm_path))
    assert lex.n_groups == lex.metadata["k"] < 10
    assert {"good", "bad"} <= {e for es in lex.groups.values() for e in es}


@pytest.mark.parametrize(
    "texts,labels,kwargs,exc,match",
    [
        (["a b", "a c"], [1, 1], {}, ValueError, "only one class"),
        ([], [], {}, ValueError, "empty"),
        (["a", "b"], [0], {}, ValueError, "differ in length"),
        (["a", "b"], [0, 1], {"tasks": ["t"]}, ValueError, "differ in length"),
        (["a", 3], [0, 1], {}, TypeError, r"texts\[1\] must be a string"),
        # every word occurs once < min_count
        (["xx yy", "zz ww"], [0, 1], {}, ValueError, "no word qualifies"),
        (["a a", "b b"], [0, None], {}, ValueError, "missing"),
        (["a a", "b b"], [0, 1], {"k": 0}, ValueError, "k must be a positive integer"),
        (["a a", "b b"], [0, 1], {"top_n": 0}, ValueError, "top_n"),
        (["aa aa", "bb bb", "cc cc"], [0, 1, 2], {"k": 2, "encoder": 42}, TypeError, "encoder must be"),
    ],
)
def test_extract_bad_inputs(texts, labels, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Lexicon.extract(texts, labels, **kwargs)


# ----------------------------------------------------------------------------- random control
def test_random_like_keeps_sizes_and_is_reproducible():
    import wordfreq

    lex = Lexicon.curated()
    r0 = Lexicon.random_like(lex, seed=0)
    assert r0.group_names == lex.group_names
    assert [len(e) for e in r0.groups.values()] == [len(e) for e in lex.groups.values()]
    assert Lexicon.random_like(lex, seed=0) == r0
    r1 = Lexicon.random_like(lex, seed=1)
    assert r1.groups != r0.groups
    original_words = {w for es in lex.groups.values() for e in es for w in e.replace("*", "").split()}
    all_new = [e for es in r0.groups.values() for e in es]
    assert len(set(all_new)) == len(all_new)  # no duplicates within (or across) groups
    assert not set(all_new) & original_words
    # frequency matched: plain-word entries get a word within a small Zipf distance
    gaps = [
        abs(wordfreq.zipf_frequency(new, "en") - wordfreq.zipf_frequency(old, "en"))
        for g in lex.group_names
        for old, new in zip(lex[g], r0[g])
        if old.isalpha()
    ]
    assert max(gaps) < 0.5, gaps
    assert r0.metadata["random_like"] == "curated" and r0.metadata["seed"] == 0
    assert r0.featurize(["some text"]).shape == (1, 16)


def test_random_like_custom_lexicon_and_bad_input():
    lex = Lexicon({"one": ["apple", "banana split", "zyx*"], "two": ["car"]}, name="mine")
    r = Lexicon.random_like(lex, seed=7)
    assert {g: len(e) for g, e in r.groups.items()} == {"one": 3, "two": 1}
    assert r.name == "random_like_mine_seed7"
    with pytest.raises(TypeError, match="needs a Lexicon"):
        Lexicon.random_like({"one": ["a"]}, seed=0)
    with pytest.raises(TypeError, match="seed must be an integer"):
        Lexicon.random_like(lex, seed="0")


def test_artefact_rule_drops_template_markers_clitics_mojibake_and_stray_letters():
    """Hand-made texts of each artefact: `[Q]`/`[CTX]`, PTB `n't` / `'s`, mojibake `â‚¬`, single letters."""
    from surgellm_hf.lexicon_extraction import _words, clean_text

    assert _words("[Q] Who wrote it ? [CTX] The author") == ["who", "wrote", "it", "the", "author"]
    assert _words("it does n't work , it 's bad") == ["it", "work", "bad"]  # `doesn't`, `it's`: no words
    assert _words("I don\u2019t know") == [
        "i",
        "know",
    ]  # curly apostrophe, unsplit contraction: no `don`, `t`
    assert _words("rose to â‚¬34bn in Ã©tÃ©") == ["rose", "to", "in", "été"]  # ftfy repairs, no `â`
    assert _words("x = y + a b c") == ["a"]
    assert _words("Château Gaillard, [sic] [EU]") == [
        "château",
        "gaillard",
        "sic",
    ]  # only all-caps markers go
    assert clean_text("A do n't") == "a don't"


def test_extraction_ranks_no_artefact_words():
    """A class whose texts carry a template and PTB clitics ranks its real words, none of the artefacts."""
    from surgellm_hf.lexicon_extraction import rank_words

    texts = ["[Q] is it good ? [CTX] it 's great , does n't fail"] * 6 + ["plain boring text here"] * 6
    ranked = rank_words(texts, [1] * 6 + [0] * 6, top_n=20)
    words = {w for by_class in ranked.values() for ws in by_class.values() for w, _ in ws}
    assert {"great", "good"} <= words
    assert not words & {"q", "ctx", "n", "t", "s"}
