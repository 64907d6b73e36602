"""TaskSpec validation."""

from __future__ import annotations

import pytest

from surgellm_hf.data import (
    TaskSpec,
)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": "", "source": "x"}, ValueError, "task name"),
        ({"name": "a b", "source": "x"}, ValueError, "task name"),
        ({"name": "t", "source": ""}, TypeError, "source"),
        ({"name": "t", "source": "x", "kind": "web"}, ValueError, "kind"),
        ({"name": "t", "source": "x", "splits": {"dev": "a.jsonl"}}, ValueError, "unknown split"),
        ({"name": "t", "source": "x", "label_names": ["only"]}, ValueError, "at least two"),
        ({"name": "t", "source": "x", "label_names": ["a", "a"]}, ValueError, "distinct"),
        (
            {"name": "t", "source": "x", "num_labels": 3, "label_names": ["a", "b"]},
            ValueError,
            "label_names has 2",
        ),
        ({"name": "t", "source": "x", "num_labels": 1}, ValueError, ">= 2"),
        ({"name": "t", "source": "x", "preprocess": "nope"}, ValueError, "unknown preprocess"),
        ({"name": "t", "source": "x", "holdout": {"validation": 1.2}}, ValueError, "holdout fractions"),
        (
            {"name": "t", "source": "x", "holdout": {"validation": 0.6, "test": 0.5}},
            ValueError,
            "sum below 1",
        ),
        ({"name": "t", "source": "x", "holdout": {"train": 0.2}}, ValueError, "cannot name 'train'"),
        (
            {"name": "t", "source": "x", "splits": {"train": "a", "test": "b"}, "holdout": {"test": 0.1}},
            ValueError,
            "both",
        ),
        ({"name": "t", "source": "x", "max_rows": 0}, ValueError, "max_rows"),
        ({"name": "t", "source": "x", "required_splits": ("dev",)}, ValueError, "unknown split"),
    ],
)
def test_task_spec_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        TaskSpec(**kwargs)
