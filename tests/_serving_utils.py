"""Helpers for the serving tests: tiny encoders of several families with a real tokenizer, fitted SURGELLM models."""

from __future__ import annotations

from pathlib import Path

import torch

TASKS = {"sst2": 2, "llm7": 3}  # not alphabetical: task ids follow the given order
LABEL_NAMES = {"sst2": ["negative", "positive"], "llm7": ["gpt", "llama", "human"]}

TEXTS = [
    "A gorgeous, witty film!",
    "Moreover, the results show a consistent improvement. Furthermore, the data show it again.",
    "i think maybe it's kind of boring?? honestly i guess",
    "ok",
    "According to the passage, the 1937 election was held in Dallas, Texas, by 12 votes.",
    "Firstly, we observed the effect. Secondly, statistically significant results indicate a trend; finally, "
    "in conclusion, the evidence suggests the method works across 3 datasets and many, many settings.",
    "terrible, awful, dreadful acting",
    "I love it. I love it so much! Best day ever!!!",
]
FIT_TASKS = ["sst2"] * 4 + ["llm7"] * 4
FIT_LABELS = [1, 0, 0, 1, 0, 1, 2, 2]


def fitted_model(encoder_path: Path, prefix: str | None = None, seed: int = 0, tasks: dict | None = None):
    """(model, processor): a SURGELLM classifier with fitted IWN statistics and heads scaled to O(1) logits."""
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor

    tasks = dict(tasks or TASKS)
    label_names = {t: LABEL_NAMES.get(t, [f"c{i}" for i in range(n)]) for t, n in tasks.items()}
    torch.manual_seed(seed)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        encoder_path, tasks=tasks, task_label_names=label_names, norm="iwn"
    )
    processor = SurgeProcessor.from_encoder_pretrained(encoder_path, tasks=list(tasks), prefix=prefix)
    processor.prepare_model(model)
    names = list(tasks)
    fit_tasks = [names[i * len(names) // len(TEXTS)] for i in range(len(TEXTS))]
    fit_labels = [i % tasks[t] if i % 2 == 0 else (i + 1) % tasks[t] for i, t in enumerate(fit_tasks)]
    for t in names:  # IWN needs two classes per task
        rows = [i for i, ft in enumerate(fit_tasks) if ft == t]
        fit_labels[rows[0]], fit_labels[rows[1]] = 0, 1
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant feature columns on eight texts
        model.fit_feature_normalizer(processor.lexicon.featurize(TEXTS), fit_labels, fit_tasks)
    with torch.no_grad():
        for head in model.heads:
            head[-1].weight.mul_(40.0)
    return model.eval(), processor


def eager_logits(model, processor, texts, task) -> torch.Tensor:
    """Eager PyTorch logits of `texts` under `task` (a name or one per text)."""
    with torch.no_grad():
        return model(**processor(list(texts), task=task, return_tensors="pt", padding=True)).logits


BLOCK_TORCH = """
import sys
sys.modules["torch"] = None  # import torch fails and find_spec("torch") is None, as on a machine without torch
"""
"""Prepended to a subprocess's code: that process plays a machine without torch."""
LOADED_TORCH = 'sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "torch" and v is not None)'
"""An expression, in such a subprocess, for the torch modules that got loaded anyway."""


def run_fresh_python(code: str, tmp_path: Path, torch: bool = True) -> dict:
    """Run `code` in a fresh Python (where torch cannot be imported unless `torch`); return the JSON it prints last."""
    import json
    import subprocess
    import sys

    script = tmp_path / "fresh_python.py"
    script.write_text(code if torch else BLOCK_TORCH + code)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def predict_without_torch(folder: Path, texts: list[str], tasks: list[str], tmp_path: Path) -> dict:
    """``{"records", "all", "torch"}``: the ONNX runner (``surgellm_hf.serving.runtime``) in a fresh process where
    torch cannot be imported; ``torch`` lists any torch module that got loaded anyway."""
    code = f"""
import json
from surgellm_hf.serving.runtime import OnnxSurgeClassifier
runner = OnnxSurgeClassifier.from_pretrained({str(folder)!r})
out = {{"records": runner.predict({texts!r}, task={tasks!r}), "all": runner.predict({texts!r}, task="all"),
       "torch": {LOADED_TORCH}}}
print(json.dumps(out))
"""
    return run_fresh_python(code, tmp_path, torch=False)
