"""Tiny random encoders of several families, each saved with a working tokenizer of its kind (long-text and
soft-prefix tests: they need texts that really tokenize into many tokens)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests._helpers import TINY_ENCODERS
from tests._serving_utils import TEXTS

FAMILIES = ("bert", "roberta", "distilbert", "deberta-v2", "electra")


def _roberta_tokenizer(path: Path):
    """A byte-level BPE trained on the test texts, as a RobertaTokenizer (`<s>` x `</s>`, pad id 1)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    corpus = TEXTS * 4 + ["the quick brown fox jumps over the lazy dog, [TASK:sst2|F1:0] 0123456789 ?!"] * 3
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in model["merges"]]
    return RobertaTokenizer(vocab=model["vocab"], merges=merges)


def family_encoder(family: str, path: Path, minilm_path: Path, seed: int = 0) -> Path:
    """A tiny random encoder of `family` with a real tokenizer: the MiniLM WordPiece (BERT, ELECTRA, DeBERTa-v2;
    as a DistilBERT tokenizer for DistilBERT, no token_type_ids) or a byte-level BPE trained here (RoBERTa, no
    token_type_ids, pad id 1)."""
    import transformers
    from transformers import AutoModel, AutoTokenizer, DistilBertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    if family == "roberta":
        tokenizer = _roberta_tokenizer(path)
    elif family == "distilbert":
        tokenizer = DistilBertTokenizer(vocab=str(minilm_path / "vocab.txt"))
    else:
        tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    tokenizer.save_pretrained(path)
    # it tokenizes text into words, not into <s></s> or [UNK]s only
    ids = tokenizer("the quick brown fox")["input_ids"]
    assert len(ids) > 3 and tokenizer.unk_token_id not in ids, ids
    cls_name, kwargs = TINY_ENCODERS[family]
    config = getattr(transformers, cls_name)(
        **{**kwargs, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    )
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(path)
    return path


def quickstart_config(tmp: Path, encoder: Path, name: str, **overrides):
    """A tiny RunConfig on the quickstart data (32 / 16 / 16 rows per task, one epoch, no checkpoints)."""
    from surgellm_hf.training import RunConfig
    from tests._helpers import QUICKSTART_DATA

    values = {
        "encoder": str(encoder),
        "data": {
            "folder": str(QUICKSTART_DATA),
            "tasks": ["reviews", "register"],
            "max_rows": {"train": 32, "validation": 16, "test": 16},
        },
        "variant": "IWN",
        "epochs": 1,
        "learning_rate": 1e-3,
        "batch_size": 8,
        "max_length": 24,
        "disable_tqdm": True,
        "save_checkpoints": False,
        "output_dir": str(tmp / name),
    }
    return RunConfig(**{**values, **overrides})
