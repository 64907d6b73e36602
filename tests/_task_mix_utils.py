"""Tiny data for a GLUE-style task mix (tests/test_task_mix_end_to_end.py): two sentence-pair tasks (a regression
and a 3-class one) and two single-text tasks (multi-label and single-label), in non-alphabetical order."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from tests.test_problem_types import TOPICS, _sentiment_rows, _topic_rows

# Not alphabetical: task ids, heads and statistics rows follow this order.
MIX_TASKS = ["sts", "topics", "nli", "sentiment"]
MIX_TYPES = {"sts": "regression", "topics": "multi_label", "nli": "single_label", "sentiment": "single_label"}
MIX_PAIR_TASKS = ["sts", "nli"]
NLI_LABELS = ["entailment", "neutral", "contradiction"]
SENTIMENT_LABELS = ["negative", "positive"]
TOPIC_THRESHOLD = 0.4
MIX_LABELS = {"sts": ["LABEL_0"], "topics": TOPICS, "nli": NLI_LABELS, "sentiment": SENTIMENT_LABELS}
assert MIX_TASKS != sorted(MIX_TASKS)

_WORDS = ["cat", "dog", "mat", "sun", "tree", "car", "bird", "lake"]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write `rows` as JSON lines, creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sts_rows(n: int, seed: int) -> list[dict]:
    """Sentence pairs scored by how many of the second text's words occur in the first (0.5 .. 3.5)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a = [rng.choice(_WORDS) for _ in range(4)]
        shared = i % 4
        b = [rng.choice(a) for _ in range(shared)] + ["xylo"] * (3 - shared)
        rows.append(
            {"id": f"sts{seed}-{i}", "text": " ".join(a), "text_pair": " ".join(b), "label": shared + 0.5}
        )
    return rows


def nli_rows(n: int, seed: int) -> list[dict]:
    """Three-class pairs: the hypothesis repeats the premise (entailment), is unrelated (neutral) or negates it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a = " ".join(rng.choice(_WORDS) for _ in range(4))
        label = i % 3
        b = [a, " ".join(rng.choice(_WORDS) for _ in range(2)), "not " + a][label]
        rows.append({"id": f"nli{seed}-{i}", "text": a, "text_pair": b, "label": NLI_LABELS[label]})
    return rows


def write_task_mix(root: Path, sizes: dict[str, int] | None = None) -> dict[str, dict]:
    """Write the four tasks' splits under `root`; return the run config's `data.tasks` mapping (in MIX_TASKS order)."""
    sizes = sizes or {"train": 12, "validation": 6, "test": 6}
    for seed, (split, n) in enumerate(sizes.items()):
        write_jsonl(root / "sts" / f"{split}.jsonl", sts_rows(n, seed))
        write_jsonl(root / "topics" / f"{split}.jsonl", _topic_rows(n, seed, as_names=True))
        write_jsonl(root / "nli" / f"{split}.jsonl", nli_rows(n, seed))
        write_jsonl(root / "sentiment" / f"{split}.jsonl", _sentiment_rows(n, seed))
    specs = {
        "sts": {"source": str(root / "sts"), "problem_type": "regression", "text_pair_column": "text_pair"},
        "topics": {"source": str(root / "topics"), "problem_type": "multi_label", "label_names": TOPICS,
                   "threshold": TOPIC_THRESHOLD},
        "nli": {"source": str(root / "nli"), "text_pair_column": "text_pair", "label_names": NLI_LABELS},
        "sentiment": {"source": str(root / "sentiment"), "label_names": SENTIMENT_LABELS},
    }  # fmt: skip
    assert list(specs) == MIX_TASKS
    return specs


def build_small_vocab_bert(path: Path, seed: int = 0) -> Path:
    """A tiny random BERT with a WordPiece tokenizer over this data's words (a 30k vocabulary makes every
    `datasets.map` spend ~1 s hashing the tokenizer for its fingerprint)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from tests.test_problem_types import WORDS

    words = set(_WORDS) | {"not", "xylo", "item", *" ".join(WORDS.values()).split()}
    words |= {"good", "happy", "fine", "bad", "sad", "awful", *map(str, range(24))}
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (path / "vocab.txt").write_text(
        "\n".join(specials + sorted(words) + list("abcdefghijklmnopqrstuvwxyz")) + "\n"
    )
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    tokenizer.save_pretrained(path)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=len(tokenizer), max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    return path


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function in float64."""
    return 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64)))
