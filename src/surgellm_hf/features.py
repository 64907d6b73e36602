"""Lexical and surface features s(x) (docs/method.md#features): one fast batch path from raw texts to a float32 matrix.

Columns: one per lexicon group (number of DISTINCT entries of the group present in the text), then six surface
features: word count, mean word length, sentence count, number of `?`, number of `!`, any digit (0/1).

Matching rules (all on the NFC-normalised, case-folded text):
- an entry made of word characters (`great`) matches whole words only (`\\w` in the Unicode sense);
- an entry ending in `*` (`captivat*`) matches any word starting with the stem;
- a multi-word entry (`results show`) matches the words in order separated by ANY whitespace, line breaks included;
- an entry with punctuation (`(1)`, `multi-hop`) matches literally; its word-character edges still need word
  boundaries (`multi-hop` does not match inside `semimulti-hop`), its punctuation edges do not.
Surface rules (on the NFC-normalised original text, not case-folded):
- words are the pieces of `str.split()` (any Unicode whitespace); mean word length is in code points, 0 without words;
- sentences are the pieces between `.`, `!` and `?` that contain a non-whitespace character (a whitespace-only piece
  such as the tail of `"Hi. "` is dropped), with at least 1 for a text that has any non-whitespace character and
  0 for an empty or whitespace-only text;
- `?` and `!` are the ASCII characters; "any digit" is any Unicode decimal digit (`\\d`).

A sentence pair is featurized as its two texts joined by one space (`pair_feature_text`).

This module is copied to the Hub with the model (trust_remote_code): it imports only stdlib and numpy.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

SURFACE_FEATURE_NAMES: tuple[str, ...] = (
    "word_count",
    "mean_word_length",
    "sentence_count",
    "question_marks",
    "exclamation_marks",
    "has_digit",
)
NUM_SURFACE_FEATURES = len(SURFACE_FEATURE_NAMES)

_WORD_RE = re.compile(r"\w+")
_WORD_ENTRY_RE = re.compile(r"\w+")
_PREFIX_ENTRY_RE = re.compile(r"(\w+)\*")
# One match per sentence piece that holds a non-whitespace character (see the module docstring).
_SENTENCE_RE = re.compile(r"[^.!?\s][^.!?]*")
_DIGIT_RE = re.compile(r"\d")
_WS_RE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFC-normalise `text` (composed and decomposed accents give the same features)."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def normalize_entry(entry: str) -> str:
    """The matching key of a lexicon entry: NFC, case-folded, surrounding whitespace stripped, inner runs collapsed."""
    return _WS_RE.sub(" ", normalize_text(entry).strip()).casefold()


def as_text_list(texts: Any, what: str = "texts") -> list[str]:
    """Validate a batch of texts (a string or an iterable of strings) and return it as a list; clear errors otherwise."""
    if isinstance(texts, str):
        return [texts]
    if texts is None:
        raise TypeError(f"{what} must be a string or a list of strings, got None")
    if isinstance(texts, (bytes, bytearray)):
        raise TypeError(
            f"{what} must be a string or a list of strings, got {type(texts).__name__}; decode it first"
        )
    if not isinstance(texts, Iterable):
        raise TypeError(f"{what} must be a string or a list of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{i}] must be a string, got {type(text).__name__} ({text!r:.60})")
    return out


PAIR_SEPARATOR = " "
"""What joins the two texts of a sentence pair into the one text whose features s(x) the pair gets."""


def pair_feature_text(text: str, text_pair: str) -> str:
    """The text whose features a sentence pair gets: both texts joined by one space (`PAIR_SEPARATOR`).

    Counts then cover both texts (a lexicon entry present in both counts once, as groups count distinct entries;
    words, `?`, `!` add up) and the feature vector keeps one dimension per lexicon group, so the gate and IWN work
    unchanged. Sentences are the pieces between `.`, `!` and `?` of the joined text: a first text without final
    punctuation runs into the second one's first sentence.
    """
    return text + PAIR_SEPARATOR + text_pair


class _ComplexEntry:
    """An entry that is not a plain word or word prefix: compiled to its own regex, searched only when gated in."""

    __slots__ = ("key", "groups", "pattern", "required_words", "literal")

    def __init__(self, key: str, groups: list[int]):
        self.key = key
        is_prefix = key.endswith("*")
        body = key[:-1] if is_prefix else key
        parts = body.split(" ")
        pattern = r"\s+".join(re.escape(part) for part in parts)
        if re.match(r"\w", body):
            pattern = r"(?<!\w)" + pattern
        if is_prefix:
            pattern += r"\w*"
        elif re.search(r"\w$", body):
            pattern += r"(?!\w)"
        self.pattern = re.compile(pattern)
        self.groups = groups
        runs = _WORD_RE.findall(body)
        if is_prefix and re.search(r"\w$", body):
            runs = runs[:-1]  # the stem before `*` need not be a whole word
        # Every word-character run of the entry must appear as a whole word of the text: a cheap exact pre-filter.
        self.required_words = frozenset(runs)
        self.literal = body if not runs and " " not in body else None


class LexiconMatcher:
    """A lexicon compiled for fast batch featurization (word sets, prefix tuples and gated per-entry regexes)."""

    def __init__(self, groups: Sequence[tuple[str, Sequence[str]]]):
        self.group_names = [name for name, _ in groups]
        self.n_groups = len(groups)
        self.num_features = self.n_groups + NUM_SURFACE_FEATURES
        words: dict[str, list[int]] = {}
        prefixes: dict[str, list[int]] = {}
        complex_: dict[str, list[int]] = {}
        for g, (_, entries) in enumerate(groups):
            for entry in dict.fromkeys(normalize_entry(e) for e in entries):
                if _WORD_ENTRY_RE.fullmatch(entry):
                    words.setdefault(entry, []).append(g)
                elif (m := _PREFIX_ENTRY_RE.fullmatch(entry)) is not None:
                    prefixes.setdefault(m.group(1), []).append(g)
                else:
                    complex_.setdefault(entry, []).append(g)
        self._words = {w: tuple(gs) for w, gs in words.items()}
        self._word_set = frozenset(self._words)
        self._prefixes = [(stem, tuple(gs)) for stem, gs in prefixes.items()]
        self._complex = [_ComplexEntry(key, gs) for key, gs in complex_.items()]

    def present_entries(self, folded: str) -> Iterator[tuple[str, Sequence[int]]]:
        """``(entry key, its groups)`` for every distinct entry present in the case-folded text `folded` (a word
        prefix's key is its stem plus ``*``)."""
        tokens = set(_WORD_RE.findall(folded))
        for word in tokens & self._word_set if self._words else ():
            yield word, self._words[word]
        yield from self._other_entries(folded, tokens)

    def _other_entries(self, folded: str, tokens: set[str]) -> Iterator[tuple[str, Sequence[int]]]:
        """`present_entries` of the word prefixes and the entries that are not one word."""
        for stem, gs in self._prefixes:
            # substring test first (fast, rarely true), then the exact rule: some word starts with the stem
            if stem in folded and any(w.startswith(stem) for w in tokens):
                yield stem + "*", gs
        for entry in self._complex:
            if entry.literal is not None:
                if entry.literal not in folded:
                    continue
            elif not entry.required_words <= tokens:
                continue
            if entry.pattern.search(folded) is not None:
                yield entry.key, entry.groups

    def group_counts_into(self, folded: str, row: np.ndarray) -> None:
        """Add, per group, the number of distinct entries present in the case-folded text `folded` to `row`."""
        tokens = set(_WORD_RE.findall(folded))
        for word in tokens & self._word_set if self._words else ():  # the common case, without a generator
            for g in self._words[word]:
                row[g] += 1
        for _, groups in self._other_entries(folded, tokens):
            for g in groups:
                row[g] += 1

    def matches(self, texts: Any) -> list[dict[str, list[str]]]:
        """Per text, the entry keys present, by group name (groups without a match left out), in group order."""
        out = []
        for text in as_text_list(texts):
            found: dict[int, list[str]] = {}
            for key, groups in self.present_entries(normalize_text(text).casefold()):
                for g in groups:
                    found.setdefault(g, []).append(key)
            out.append({self.group_names[g]: sorted(found[g]) for g in sorted(found)})
        return out

    def featurize(self, texts: Any) -> np.ndarray:
        """Features of a batch of texts: float32 array [n_texts, n_groups + 6] (see the module docstring)."""
        texts = as_text_list(texts)
        n_groups = self.n_groups
        out = np.zeros((len(texts), self.num_features), dtype=np.float64)
        for r, text in enumerate(texts):
            text = normalize_text(text)
            row = out[r]
            if n_groups:
                self.group_counts_into(text.casefold(), row)
            words = text.split()
            n_words = len(words)
            if not n_words:
                # empty or whitespace-only: no words, no sentences; `?`/`!`/digits cannot occur
                continue
            row[n_groups] = n_words
            row[n_groups + 1] = sum(map(len, words)) / n_words
            row[n_groups + 2] = len(_SENTENCE_RE.findall(text)) or 1
            row[n_groups + 3] = text.count("?")
            row[n_groups + 4] = text.count("!")
            row[n_groups + 5] = _DIGIT_RE.search(text) is not None
        return out.astype(np.float32)
