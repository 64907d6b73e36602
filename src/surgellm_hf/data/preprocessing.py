"""Named batched preprocessing functions (so that YAML configs can refer to them): HotpotQA difficulty."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def _hotpot_gold_context(supporting_facts: Any, context: Any) -> str:
    """All sentences of the gold paragraphs (titles named in supporting_facts), in context order."""
    if isinstance(supporting_facts, Mapping):  # HF datasets layout: {"title": [...], "sent_id": [...]}
        gold = set(supporting_facts["title"])
    else:  # original HotpotQA JSON layout: [[title, sent_id], ...]
        gold = {title for title, _ in supporting_facts}
    if isinstance(context, Mapping):  # {"title": [...], "sentences": [[...], ...]}
        paragraphs = zip(context["title"], context["sentences"])
    else:  # [[title, [sentence, ...]], ...]
        paragraphs = ((title, sentences) for title, sentences in context)
    sentences = [s for title, sents in paragraphs if title in gold for s in sents]
    return " ".join(" ".join(sentences).split())


def hotpotqa_difficulty(batch: dict[str, list[Any]], max_context_words: int = 300) -> dict[str, list[Any]]:
    """Batched map: HotpotQA rows -> text "[Q] question [CTX] gold context" and label easy=0, medium/hard=1.

    Mirrors how the paper's D2 was built (docs/task-mixes.md#paper-tasks): context = all sentences of the
    gold supporting paragraphs in context order, titles omitted, whitespace-normalised, first 300 words.
    """
    texts, labels, ids = [], [], []
    for i, (question, level) in enumerate(zip(batch["question"], batch["level"])):
        if level not in ("easy", "medium", "hard"):
            raise ValueError(
                f"HotpotQA row {i} of this batch has level {level!r}; expected easy, medium or hard"
            )
        words = _hotpot_gold_context(batch["supporting_facts"][i], batch["context"][i]).split()
        texts.append(f"[Q] {' '.join(question.split())} [CTX] {' '.join(words[:max_context_words])}")
        labels.append(0 if level == "easy" else 1)
        raw_id = batch["id"][i] if "id" in batch else batch["_id"][i]
        ids.append(f"hotpotqa-{raw_id}")
    return {"id": ids, "text": texts, "label": labels}


PREPROCESSORS: dict[str, Callable[[dict[str, list[Any]]], dict[str, list[Any]]]] = {
    "hotpotqa_difficulty": hotpotqa_difficulty,
}
"""Named batched preprocessing functions usable as `TaskSpec(preprocess="name")`."""
