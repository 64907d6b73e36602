"""Multi-task datasets for SURGELLM: local jsonl/csv/parquet files, folders and Hub dataset ids.

Every task becomes a `datasets.DatasetDict` whose splits ("train", "validation", optionally "test") have exactly the
columns ``id`` (str), ``text`` (str) and ``label`` (int64), validated in full before anything is returned.

- `task_spec`: `TaskSpec` (where a task's data lives, column mapping) and the split names;
- `preprocessing`: named batched preprocessing functions (HotpotQA difficulty);
- `presets`: the paper's tasks on the Hub (`PAPER_TASKS_HUB`);
- `multitask`: the `MultiTaskData` container;
- `loading`: `load_tasks`, `load_folder`, `load_run_data` (a run config's `data` section);
- `encoding`: a split of every task through a `SurgeProcessor` (`encode_split`);
- `data_collator`: `SurgeDataCollator`, batches for training and prediction.

Typical use::

    data = load_folder("data/paper_tasks")                      # <task>/{train,validation,test}.jsonl
    data = load_tasks([TaskSpec("sst2", "stanfordnlp/sst2", text_column="sentence", ...)])
    SurgeConfig(encoder_config=..., tasks=data.tasks_config(), task_label_names=data.label_names)
"""

from .data_collator import SurgeDataCollator
from .encoding import encode_split, split_ids
from .loading import load_folder, load_run_data, load_tasks
from .multitask import MultiTaskData
from .preprocessing import PREPROCESSORS, hotpotqa_difficulty
from .presets import DATA_PRESETS, PAPER_TASKS_HUB
from .task_spec import EVALUATION_SPLITS, FILE_FORMATS, REQUIRED_SPLITS, SPLITS, TaskSpec

__all__ = [
    "DATA_PRESETS",
    "EVALUATION_SPLITS",
    "FILE_FORMATS",
    "PAPER_TASKS_HUB",
    "PREPROCESSORS",
    "REQUIRED_SPLITS",
    "SPLITS",
    "MultiTaskData",
    "SurgeDataCollator",
    "TaskSpec",
    "encode_split",
    "hotpotqa_difficulty",
    "load_folder",
    "load_run_data",
    "load_tasks",
    "split_ids",
]
