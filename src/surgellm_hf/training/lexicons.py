"""The lexicon of a run: curated, extracted from the training split, the random control, or a JSON file."""

from __future__ import annotations

from typing import Any

from ..data.multitask import MultiTaskData
from ..lexicon import Lexicon
from ..problem_types import info


def build_lexicon(choice: str, task_data: MultiTaskData, encoder: str, seed: int = 0) -> Lexicon:
    """The run's lexicon: curated, extracted from the training split, random control, or a JSON file.

    `seed` is the lexicon seed (k-means of the extraction, word draw of the random control): keep it apart from
    the training seed so that several training seeds share one lexicon.
    """
    if choice == "random":
        return Lexicon.random_like(Lexicon.curated(), seed=seed)
    if choice == "extracted":
        return extract_lexicon_from_data(task_data, encoder, seed=seed)
    return fixed_lexicon(choice)


def fixed_lexicon(choice: str) -> Lexicon | None:
    """The lexicon when no data or seed decides it, read cheaply: curated, or a JSON file as it is now; None for
    extracted and random (their settings, data and lexicon_seed, decide their content)."""
    if choice in ("extracted", "random"):
        return None
    return Lexicon.curated() if choice == "curated" else Lexicon.from_json(choice)


def extract_lexicon_from_data(
    task_data: MultiTaskData, encoder: str, seed: int = 0, **extract_kwargs: Any
) -> Lexicon:
    """`Lexicon.extract` on the training split of every task, each text ranked within its own task."""
    other = {t: k for t, k in task_data.problem_types.items() if not info(k).class_ids}
    if other:
        raise ValueError(
            f"lexicon: extracted ranks words by class and needs single-label tasks; this run has {other}. Use the "
            "curated lexicon, a lexicon file, or extract one from the single-label tasks' data (`surgellm "
            "extract-lexicon`)."
        )
    texts, labels, tasks = [], [], []
    for name in task_data.task_names:
        train = task_data[name]["train"]
        texts += list(train["text"])
        labels += list(train["label"])
        tasks += [name] * len(train)
    return Lexicon.extract(texts, labels, tasks=tasks, encoder=encoder, seed=seed, **extract_kwargs)
