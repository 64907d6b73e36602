"""Data presets: the paper's tasks that exist on the Hub (`data: {preset: paper_hub}` in a run config)."""

from __future__ import annotations

from .task_spec import TaskSpec

# The paper's tasks that exist on the Hub in a documented, stable form. Verified on the dataset cards:
# stanfordnlp/sst2 (default config; idx/sentence/label with names negative/positive; train 67,349,
# validation 872, unlabelled test 1,821) and hotpotqa/hotpot_qa (config distractor; id/question/answer/type/
# level/supporting_facts/context; train 90,447, validation 7,405 hard-only). The paper's D3 ("LLM 7 prompt
# training dataset") and D4 ("Human vs. LLM Text Corpus") are Kaggle corpora with no stable Hub copy: give
# them as local folders, e.g. TaskSpec("llm7", "data/D3"), TaskSpec("humllm", "data/D4") (docs/task-mixes.md#paper-tasks).
PAPER_TASKS_HUB: tuple[TaskSpec, ...] = (
    TaskSpec(
        name="sst2",
        source="stanfordnlp/sst2",
        kind="hub",
        # GLUE dev is the test set (GLUE test has no labels); validation is a stratified 10 % of GLUE train.
        splits={"train": "train", "test": "validation"},
        holdout={"validation": 0.1},
        text_column="sentence",
        label_column="label",
        id_column="idx",
        label_names=["negative", "positive"],
    ),
    TaskSpec(
        name="hotpot",
        source="hotpotqa/hotpot_qa",
        kind="hub",
        config_name="distractor",
        # HotpotQA's validation split holds only 'hard' questions, so all splits come from train (70/15/15 of a
        # stratified 2,000-row sample, the size of the paper's reproduction reference).
        splits={"train": "train"},
        holdout={"validation": 0.15, "test": 0.15},
        preprocess="hotpotqa_difficulty",
        label_names=["easy", "medium_or_hard"],
        max_rows={"train": 1400, "validation": 300, "test": 300},
    ),
)
"""Hub presets for the paper's D1 (SST-2) and D2 (HotpotQA difficulty); D3/D4 must be local folders."""

DATA_PRESETS: dict[str, tuple[TaskSpec, ...]] = {"paper_hub": PAPER_TASKS_HUB}
"""Preset name -> its tasks, for the `preset` key of a run config's `data` section."""
