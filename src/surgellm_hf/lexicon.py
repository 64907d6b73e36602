"""Lexicon: named groups of entries whose presence counts are the first n_groups lexical features (docs/method.md#features).

A lexicon is data: it loads from and saves to a plain JSON file (see `Lexicon.to_dict` for the format), travels with
a processor or model to the Hub, and may hold any number of groups; the feature vector is then `n_groups + 6` long.
`Lexicon.curated()` is the paper's ten groups; `Lexicon.extract` (docs/method.md#lexicon-extraction) and `Lexicon.random_like`
(docs/method.md#random-lexicon) build lexicons from data and live in the non-copied module `lexicon_extraction.py`.

This module is copied to the Hub (trust_remote_code): it imports only stdlib, numpy and its flat sibling `features`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .features import NUM_SURFACE_FEATURES, SURFACE_FEATURE_NAMES, LexiconMatcher, normalize_entry

LEXICON_FORMAT = "surgellm-lexicon"
LEXICON_FORMAT_VERSION = 1
LEXICON_FILE_NAME = "lexicon.json"

# The paper's curated lexicon (ten groups, 88 entries; `terrible` and `awful` sit in two groups).
CURATED_GROUPS: dict[str, list[str]] = {
    "sst_pos": [
        "great",
        "excellent",
        "brilliant",
        "terrific",
        "wonderful",
        "masterpiece",
        "captivat*",
        "impressive",
        "delightful",
        "superb",
    ],
    "sst_neg": [
        "terrible",
        "awful",
        "dreadful",
        "unwatchable",
        "boring",
        "dull",
        "mediocre",
        "disappoint*",
        "worst",
        "painful",
    ],
    "llm_stat": [
        "empirically",
        "statistically",
        "demonstrated",
        "observed",
        "evidenced",
        "indicate*",
        "suggest*",
        "results show",
        "data show",
    ],
    "llm_formal": [
        "moreover",
        "furthermore",
        "additionally",
        "consequently",
        "therefore",
        "in conclusion",
        "in summary",
        "to summarize",
    ],
    "llm_list": [
        "firstly",
        "secondly",
        "thirdly",
        "finally",
        "in addition",
        "on the other hand",
        "(1)",
        "(2)",
        "(3)",
    ],
    "human_pers": ["i", "my", "we", "our", "personally", "i think", "i believe", "i feel"],
    "human_hedge": [
        "maybe",
        "perhaps",
        "possibly",
        "kind of",
        "sort of",
        "i guess",
        "probably",
        "somewhat",
        "arguably",
    ],
    "human_emo": [
        "love",
        "hate",
        "amazing",
        "awesome",
        "terrible",
        "awful",
        "fantastic",
        "horrible",
        "sad",
        "happy",
    ],
    "retrieval": [
        "according to",
        "as stated in",
        "the article reports",
        "the text states",
        "multi-hop",
        "supporting context",
        "in the passage",
    ],
    "prompt_cot": [
        "step by step",
        "let us think",
        "first",
        "then",
        "next",
        "reasoning",
        "the chain of thought",
        "walk through",
    ],
}

_WORD_CHAR = re.compile(r"\w")


def _check_entry(group: str, index: int, entry: Any) -> str:
    """Validate one entry and return it stripped; clear errors for non-strings, blanks and misplaced `*`."""
    where = f"group {group!r}, entry {index}"
    if not isinstance(entry, str):
        raise TypeError(
            f"Lexicon {where}: entries must be strings, got {type(entry).__name__} ({entry!r:.60})"
        )
    stripped = entry.strip()
    if not stripped:
        raise ValueError(f"Lexicon {where}: entry is blank ({entry!r})")
    if "*" in stripped[:-1]:
        raise ValueError(
            f"Lexicon {where}: {entry!r} has '*' before its end; '*' marks a word prefix and may only "
            "end an entry"
        )
    if stripped.endswith("*") and (len(stripped) < 2 or not _WORD_CHAR.match(stripped[-2])):
        raise ValueError(
            f"Lexicon {where}: {entry!r} must have a word stem before the final '*' (e.g. 'captivat*')"
        )
    return stripped


def _load_extraction_module() -> Any:
    """Import the extraction helpers, which need scikit-learn / wordfreq and the installed surgellm_hf package."""
    candidates = [f"{__package__}.lexicon_extraction"] if __package__ else []
    candidates.append("surgellm_hf.lexicon_extraction")
    for name in candidates:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is None or not name.startswith(err.name):
                raise  # a dependency of the module is missing: report that, not the module
    raise ImportError(
        "Lexicon.extract and Lexicon.random_like need the surgellm_hf package (pip install surgellm_hf); "
        "a model loaded with trust_remote_code carries only the code that computes features."
    )


class Lexicon:
    """Named groups of entries; `featurize(texts)` gives the `n_groups + 6` raw feature columns (docs/method.md#features).

    Args:
        groups: mapping group name -> entries, or a sequence of (name, entries) pairs (order is kept; it is the
            column order). Entries are case-insensitive; `stem*` matches a word prefix; multi-word entries match
            as phrases across any whitespace; punctuation such as `(1)` matches literally.
        name: a short label for the lexicon (saved with it).
        metadata: JSON-serialisable facts about how the lexicon was made (saved with it).
    """

    def __init__(
        self,
        groups: Mapping[str, Sequence[str]] | Sequence[tuple[str, Sequence[str]]],
        name: str = "custom",
        metadata: Mapping[str, Any] | None = None,
    ):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"Lexicon name must be a non-blank string, got {name!r}")
        if isinstance(groups, Mapping):
            pairs = list(groups.items())
        elif isinstance(groups, Sequence) and not isinstance(groups, str):
            pairs = []
            for i, item in enumerate(groups):
                if not (isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2):
                    raise TypeError(f"Lexicon groups[{i}] must be a (name, entries) pair, got {item!r:.80}")
                pairs.append((item[0], item[1]))
        else:
            raise TypeError(
                f"Lexicon groups must be a mapping name -> entries or a list of (name, entries) pairs, "
                f"got {type(groups).__name__}"
            )
        if not pairs:
            raise ValueError("Lexicon needs at least one group")
        checked: dict[str, list[str]] = {}
        reserved = set(SURFACE_FEATURE_NAMES)
        for group, entries in pairs:
            if not isinstance(group, str) or not group.strip():
                raise ValueError(f"Lexicon group names must be non-blank strings, got {group!r}")
            if group != group.strip():
                raise ValueError(f"Lexicon group name {group!r} has surrounding whitespace")
            if group in checked:
                raise ValueError(f"Lexicon has two groups named {group!r}; group names must be unique")
            if group in reserved:
                raise ValueError(
                    f"Lexicon group name {group!r} clashes with a surface feature name "
                    f"({', '.join(SURFACE_FEATURE_NAMES)})"
                )
            if isinstance(entries, str) or not isinstance(entries, Sequence):
                raise TypeError(
                    f"Lexicon group {group!r}: entries must be a list of strings, "
                    f"got {type(entries).__name__}"
                )
            if len(entries) == 0:
                raise ValueError(f"Lexicon group {group!r} is empty; every group needs at least one entry")
            cleaned = [_check_entry(group, i, e) for i, e in enumerate(entries)]
            seen: dict[str, str] = {}
            for entry in cleaned:
                key = normalize_entry(entry)
                if key in seen:
                    raise ValueError(
                        f"Lexicon group {group!r} lists {seen[key]!r} and {entry!r}, which match the "
                        "same text (entries are case-insensitive); remove the duplicate"
                    )
                seen[key] = entry
            checked[group] = cleaned
        meta = dict(metadata or {})
        try:
            json.dumps(meta)
        except (TypeError, ValueError) as err:
            raise TypeError(f"Lexicon metadata must be JSON-serialisable: {err}") from err
        self.name = name
        self.metadata = meta
        self._groups = checked
        self._matcher: LexiconMatcher | None = None

    # ------------------------------------------------------------------ views
    @property
    def groups(self) -> dict[str, list[str]]:
        """A copy of the groups (name -> entries), in column order."""
        return {g: list(e) for g, e in self._groups.items()}

    @property
    def group_names(self) -> list[str]:
        return list(self._groups)

    @property
    def n_groups(self) -> int:
        return len(self._groups)

    @property
    def num_features(self) -> int:
        """Width of the feature vector: one column per group plus six surface features."""
        return len(self._groups) + NUM_SURFACE_FEATURES

    @property
    def feature_names(self) -> list[str]:
        """Column names of `featurize`: the group names, then the six surface feature names."""
        return [*self._groups, *SURFACE_FEATURE_NAMES]

    def __len__(self) -> int:
        return len(self._groups)

    def __getitem__(self, group: str) -> list[str]:
        if group not in self._groups:
            raise KeyError(f"no group {group!r} in lexicon {self.name!r}; groups: {', '.join(self._groups)}")
        return list(self._groups[group])

    def __iter__(self):
        return iter(self._groups)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Lexicon):
            return NotImplemented
        return self.name == other.name and list(self._groups.items()) == list(other._groups.items())

    __hash__ = None  # mutable-looking container semantics: equal by content, not hashable

    def __repr__(self) -> str:
        sizes = ", ".join(f"{g}={len(e)}" for g, e in self._groups.items())
        return f"Lexicon(name={self.name!r}, n_groups={self.n_groups}, groups: {sizes})"

    def content_hash(self) -> str:
        """SHA-256 (hex) of the groups and their entries in column order: what decides the features, not the name."""
        payload = json.dumps(
            [[g, e] for g, e in self._groups.items()], ensure_ascii=False, separators=(",", ":")
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    # ------------------------------------------------------------------ features
    def featurize(self, texts: Any) -> np.ndarray:
        """Raw features of a batch of texts (or one string): float32 array [n_texts, n_groups + 6]."""
        if self._matcher is None:
            self._matcher = LexiconMatcher(list(self._groups.items()))
        return self._matcher.featurize(texts)

    def matches(self, texts: Any) -> list[dict[str, list[str]]]:
        """Per text (or for one string, a list of one), the lexicon entries present in it by group, as the
        lexicon spells them (groups without a match left out): what the group counts of `featurize` count."""
        if self._matcher is None:
            self._matcher = LexiconMatcher(list(self._groups.items()))
        spelled = {
            (group, normalize_entry(entry)): entry
            for group, entries in self._groups.items()
            for entry in entries
        }
        return [
            {group: [spelled[(group, key)] for key in keys] for group, keys in found.items()}
            for found in self._matcher.matches(texts)
        ]

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: {"format", "format_version", "name", "metadata", "groups": [{"name", "entries"}...]}."""
        return {
            "format": LEXICON_FORMAT,
            "format_version": LEXICON_FORMAT_VERSION,
            "name": self.name,
            "metadata": copy.deepcopy(self.metadata),
            "groups": [{"name": g, "entries": list(e)} for g, e in self._groups.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lexicon:
        """Build from `to_dict` output; `groups` may also be a plain object mapping names to entry lists."""
        if not isinstance(data, Mapping):
            raise TypeError(f"a lexicon dict must be a JSON object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != LEXICON_FORMAT:
            raise ValueError(f"not a SURGELLM lexicon: 'format' is {fmt!r}, expected {LEXICON_FORMAT!r}")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"lexicon 'format_version' must be an integer, got {version!r}")
        if version != LEXICON_FORMAT_VERSION:
            newer = (
                " (written by a newer surgellm_hf; upgrade it)" if version > LEXICON_FORMAT_VERSION else ""
            )
            raise ValueError(
                f"unsupported lexicon format_version {version}; this code reads version "
                f"{LEXICON_FORMAT_VERSION}{newer}"
            )
        if "groups" not in data:
            raise ValueError("lexicon dict has no 'groups'")
        raw = data["groups"]
        if isinstance(raw, Mapping):
            groups: Any = list(raw.items())
        elif isinstance(raw, list):
            groups = []
            for i, item in enumerate(raw):
                if not isinstance(item, Mapping) or set(item) != {"name", "entries"}:
                    raise ValueError(
                        f"lexicon groups[{i}] must be an object with exactly 'name' and 'entries', "
                        f"got {item!r:.80}"
                    )
                groups.append((item["name"], item["entries"]))
        else:
            raise ValueError(f"lexicon 'groups' must be a list or an object, got {type(raw).__name__}")
        return cls(groups, name=data.get("name", "custom"), metadata=data.get("metadata") or {})

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the lexicon to a UTF-8 JSON file (`to_dict` format)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=2)
            f.write("\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Lexicon:
        """Read a lexicon JSON file; clear errors for unreadable files, invalid JSON, wrong format or version."""

        def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in pairs]
            dup = next((k for k in keys if keys.count(k) > 1), None)
            if dup is not None:
                raise ValueError(
                    f"lexicon file {os.fspath(path)!r} repeats the key {dup!r} (duplicate group name?)"
                )
            return dict(pairs)

        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"lexicon file {os.fspath(path)!r} does not exist") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read lexicon file {os.fspath(path)!r}: {err}") from err
        try:
            data = json.loads(text, object_pairs_hook=no_duplicate_keys)
        except json.JSONDecodeError as err:
            raise ValueError(f"lexicon file {os.fspath(path)!r} is not valid JSON: {err}") from err
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise type(err)(f"lexicon file {os.fspath(path)!r}: {err}") from err

    # ------------------------------------------------------------------ constructors
    @classmethod
    def curated(cls) -> Lexicon:
        """The paper's curated lexicon: ten groups, 88 entries (docs/method.md#curated-lexicon)."""
        return cls(
            CURATED_GROUPS, name="curated", metadata={"source": "SURGELLM paper (arXiv 2606.24259), §3"}
        )

    @classmethod
    def extract(
        cls,
        texts: Sequence[str],
        labels: Sequence[Any],
        *,
        tasks: Sequence[str] | None = None,
        prior_texts: Sequence[str] | None = None,
        top_n: int = 50,
        k: int = 10,
        encoder: Any = None,
        seed: int = 0,
        min_count: int = 2,
        batch_size: int = 64,
        name: str = "extracted",
    ) -> Lexicon:
        """Automatic lexicon (docs/method.md#lexicon-extraction): Monroe et al. log-odds z-scores per class, top words, k-means.

        Per class of each task (`tasks` gives each text's task; None means one task), words are ranked by the
        z-scored log-odds ratio of the class against the rest of its task with an informative Dirichlet prior
        (word counts of `prior_texts`, default all `texts` pooled). The `top_n` positive words per class are
        embedded with `encoder` (a path / hub id, a (model, tokenizer) pair, or None for the bundled
        all-MiniLM-L6-v2; mean pooling) and clustered by k-means (scikit-learn, fixed `seed`) into `k` groups.
        Deterministic for a seed. Raises ValueError for tiny, one-class or mismatched inputs; warns and lowers k
        when fewer than k words qualify. Needs the installed package (scikit-learn, torch, transformers).
        """
        helpers = _load_extraction_module()
        groups, metadata = helpers.extract_groups(
            texts,
            labels,
            tasks=tasks,
            prior_texts=prior_texts,
            top_n=top_n,
            k=k,
            encoder=encoder,
            seed=seed,
            min_count=min_count,
            batch_size=batch_size,
        )
        return cls(groups, name=name, metadata=metadata)

    @classmethod
    def random_like(
        cls, lexicon: Lexicon, seed: int = 0, *, lang: str = "en", pool_size: int = 100_000
    ) -> Lexicon:
        """Random-lexicon control (docs/method.md#random-lexicon): same group names and sizes, each entry replaced by a random
        English word of similar corpus frequency (wordfreq Zipf scale), reproducible for a seed."""
        if not isinstance(lexicon, Lexicon):
            raise TypeError(f"random_like needs a Lexicon, got {type(lexicon).__name__}")
        helpers = _load_extraction_module()
        groups, metadata = helpers.random_groups_like(
            lexicon.groups, seed=seed, lang=lang, pool_size=pool_size
        )
        metadata = {"random_like": lexicon.name, **metadata}
        return cls(groups, name=f"random_like_{lexicon.name}_seed{seed}", metadata=metadata)


def featurize(texts: Any, lexicon: Lexicon | None = None) -> np.ndarray:
    """Features of `texts` with `lexicon` (default: the paper's curated lexicon): float32 [n, n_groups + 6]."""
    return (lexicon or Lexicon.curated()).featurize(texts)


__all__ = [
    "Lexicon",
    "featurize",
    "CURATED_GROUPS",
    "LEXICON_FORMAT",
    "LEXICON_FORMAT_VERSION",
    "LEXICON_FILE_NAME",
]
