"""LoRA from the run config (`lora:`): the run folder holds only the adapter, reloads to the author's predictions,
publishes adapter-only, and a stranger loads it onto the base encoder; default target modules per encoder family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from surgellm_hf import SurgeForSequenceClassification
from surgellm_hf.cli import main
from surgellm_hf.lora import DEFAULT_LORA_TARGETS, lora_target_regex
from surgellm_hf.training import RunConfig
from tests._helpers import write_run_config

TEXTS = ["the film is superb", "maybe i think so", "Dear Sir, please find attached the report."]


def _config(tmp_path: Path, encoder: Path, **overrides) -> Path:
    # IWN's compact prefix: its added token rows train as PEFT trainable tokens
    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    return write_run_config(
        tmp_path, encoder, **{"epochs": 2, "learning_rate": 5e-3, "lora": lora, **overrides}
    )


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_bert_with_tokenizer) -> Path:
    """A LoRA run trained through the CLI."""
    tmp = tmp_path_factory.mktemp("lora")
    assert main(["train", "--config", str(_config(tmp, tiny_bert_with_tokenizer))]) == 0
    return tmp / "runs" / "IWN-seed0"


def _logits(model, processor) -> dict[str, list]:
    out = {}
    with torch.no_grad():
        for task in model.config.tasks:
            inputs = processor(TEXTS, task=task, return_tensors="pt", padding=True)
            out[task] = model(**inputs).logits.tolist()
    return out


def test_run_folder_holds_only_the_adapter(lora_run, tiny_bert_with_tokenizer):
    files = {p.name for p in lora_run.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "config.json",
        "processor_config.json",
    } <= files
    assert "model.safetensors" not in files
    adapter = (lora_run / "adapter_model.safetensors").stat().st_size
    encoder = (tiny_bert_with_tokenizer / "model.safetensors").stat().st_size
    assert adapter < encoder / 3  # even on a tiny encoder (most of it is the 30k-row embedding matrix)
    training = json.loads((lora_run / "metrics.json").read_text())["training"]
    lora = training["lora"]
    assert lora["r"] == 4 and lora["alpha"] == 8 and "query" in lora["target_modules"]
    assert lora["trainable_parameters"] < lora["all_parameters"] / 5
    assert lora["artifact_bytes"]["adapter_model.safetensors"] == adapter
    saved = json.loads((lora_run / "run_config.json").read_text())
    assert saved["settings"]["lora"] == {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": None}


def test_reloaded_run_gives_the_authors_metrics_and_the_unmerged_logits(lora_run, tmp_path):
    from surgellm_hf.inference import load_run_model
    from surgellm_hf.lora import load_lora_model

    assert main(["evaluate", str(lora_run), "--split", "test", "--output", str(tmp_path / "m.json")]) == 0
    got = json.loads((tmp_path / "m.json").read_text())["tasks"]
    saved = json.loads((lora_run / "metrics.json").read_text())["tasks"]
    for task in ("reviews", "register"):
        for key in ("macro_f1", "accuracy", "roc_auc"):
            assert got[task][key] == pytest.approx(saved[task]["test"][key]), (task, key)
    merged, processor = load_run_model(lora_run)
    assert type(merged) is SurgeForSequenceClassification
    unmerged = load_lora_model(lora_run, merge=False)
    a, b = _logits(merged, processor), _logits(unmerged, processor)
    for task in a:
        np.testing.assert_allclose(a[task], b[task], atol=1e-5)


def test_adapter_only_push_and_a_stranger_loads_it(lora_run, hub_server):
    author = hub_server.run_python(
        f"""
import torch
from surgellm_hf.hub import publish_run
from surgellm_hf.inference import load_run_model
TEXTS = {TEXTS!r}
publish_run({str(lora_run)!r}, "tester/surge-lora", adapter_only=True)
model, processor = load_run_model({str(lora_run)!r})
out = {{}}
with torch.no_grad():
    for task in model.config.tasks:
        out[task] = model(**processor(TEXTS, task=task, return_tensors="pt", padding=True)).logits.tolist()
result(out)
""",
        surgellm=True,
    )
    files = set(hub_server.hub.files("tester/surge-lora"))
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "config.json",
        "README.md",
        "lexicon.json",
    } <= files
    assert "model.safetensors" not in files and "surge_adapter.safetensors" not in files
    card = hub_server.hub.read("tester/surge-lora", "README.md").decode()
    assert "**LoRA adapter**" in card and 'load_lora_model("tester/surge-lora")' in card
    stranger = hub_server.run_python(
        f"""
import torch
from transformers import AutoProcessor
from surgellm_hf.lora import load_lora_model
TEXTS = {TEXTS!r}
model = load_lora_model("tester/surge-lora")
processor = AutoProcessor.from_pretrained("tester/surge-lora", trust_remote_code=True)
out = {{}}
with torch.no_grad():
    for task in model.config.tasks:
        out[task] = model(**processor(TEXTS, task=task, return_tensors="pt", padding=True)).logits.tolist()
result(out)
""",
        surgellm=True,
    )
    for task in author:
        np.testing.assert_allclose(stranger[task], author[task], atol=1e-5)


@pytest.mark.parametrize(
    "family",
    sorted(
        set(DEFAULT_LORA_TARGETS) & {"bert", "roberta", "xlm-roberta", "distilbert", "deberta-v2", "electra"}
    ),
)
def test_default_target_modules_exist_in_every_tested_family(family, tiny_encoder_dirs):
    import re

    model = SurgeForSequenceClassification.from_encoder_pretrained(tiny_encoder_dirs[family], tasks={"a": 2})
    regex = lora_target_regex(model)
    found = [n for n, _ in model.named_modules() if re.fullmatch(regex, n)]
    assert len(found) == 3 * 2  # q, k, v in each of the 2 layers
    assert all(n.startswith("surge.encoder.") for n in found)


def test_bad_lora_settings_are_refused():
    with pytest.raises(ValueError, match="freeze_encoder: true"):
        RunConfig(data={"folder": "x"}, lora={}, freeze_encoder=True, prefix_style="text")
    with pytest.raises(ValueError, match=r"Unknown `lora` key\(s\) \['rank'\]"):
        RunConfig(data={"folder": "x"}, lora={"rank": 4})
    with pytest.raises(ValueError, match="`lora.r` must be a positive integer"):
        RunConfig(data={"folder": "x"}, lora={"r": 0})
    assert RunConfig(data={"folder": "x"}, lora=True).lora["r"] == 8


def test_target_modules_that_match_nothing_are_refused(tiny_encoder_dirs):
    model = SurgeForSequenceClassification.from_encoder_pretrained(tiny_encoder_dirs["bert"], tasks={"a": 2})
    with pytest.raises(ValueError, match=r"match no module"):
        lora_target_regex(model, ["q_lin"])
