"""Publishing through the real huggingface_hub client to the local Hub server; loading in fresh interpreters in
which surgellm_hf cannot be imported (remote code only). The author's side runs in its own interpreter too, so
HF_ENDPOINT / offline settings of the test process never matter."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard
from transformers.dynamic_module_utils import get_imports

TEXTS = [
    "a gorgeous, witty film. I love it!",
    "Moreover, the results show a clear trend; therefore we conclude (1) and (2).",
    "i guess it was kind of boring, maybe?",
    "According to the article reports, the team won 3 games in 2024.",
]
TASK_LABELS = {"sst2": ["negative", "positive"], "aspect": ["world", "sports", "science"]}
# The author's side: a SURGELLM model built on the base encoder of the `encoder_repo` fixture, with the real
# curated lexicon and processor.
AUTHOR = f"""
import torch
from surgellm_hf import Lexicon, SurgeForSequenceClassification, SurgeProcessor

TEXTS = {TEXTS!r}
LABELS = {TASK_LABELS!r}
TASKS = {{t: len(v) for t, v in LABELS.items()}}
ENCODER = "tester/tiny-encoder"
FIT = [("great fun, superb acting", "sst2", 1), ("dull and boring, the worst", "sst2", 0),
       ("i love it!! amazing", "sst2", 1), ("awful. painful to watch?", "sst2", 0), ("a terrible mess", "sst2", 0),
       ("the match ended 2-1", "aspect", 1), ("moreover, results show gains", "aspect", 2),
       ("the minister said on tuesday", "aspect", 0), ("firstly, data show (1) and (2)", "aspect", 2),
       ("the team won the cup final", "aspect", 1), ("elections in the capital", "aspect", 0)]


def build(prefix="tokens", lexicon=None, fit=True, freeze=False, seed=1):
    lexicon = lexicon or Lexicon.curated()
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        ENCODER, tasks=TASKS, task_label_names=LABELS, default_task="aspect", norm="iwn", variant="IWN",
        num_features=lexicon.num_features, feature_names=lexicon.feature_names)
    processor = SurgeProcessor.from_encoder_pretrained(
        ENCODER, lexicon=lexicon, tasks=list(TASKS), prefix=prefix, max_length=128, default_task="aspect")
    processor.prepare_model(model)
    if freeze:
        model.freeze_encoder()
    torch.manual_seed(seed)
    with torch.no_grad():  # move the SURGELLM modules away from their init so that every part shows in the logits
        for name, p in model.named_parameters():
            if not name.startswith("surge.encoder."):
                p.add_(torch.randn_like(p) * 0.5)
    if fit:
        texts, tasks, labels = zip(*[(t, k, y) for t, k, y in FIT])
        model.fit_feature_normalizer(lexicon.featurize(list(texts)), list(labels), list(tasks))
    return model.eval(), processor


def author_logits(model, processor):
    out = {{}}
    with torch.no_grad():
        for task in TASKS:
            enc = processor(TEXTS, task=task, return_tensors="pt", padding=True)
            out[task] = model(**enc).logits.tolist()
    return out
"""

# The user's side: no surgellm_hf, only transformers and the repo's remote code.
USER = f"""
import torch
from transformers import AutoModelForSequenceClassification, AutoProcessor, pipeline
TEXTS = {TEXTS!r}
try:
    import surgellm_hf  # noqa
    raise SystemExit("surgellm_hf must not be importable here")
except ModuleNotFoundError:
    pass


def user_model_outputs(repo):
    model = AutoModelForSequenceClassification.from_pretrained(repo, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
    logits = {{}}
    with torch.no_grad():
        for task in model.config.tasks:
            logits[task] = model(**processor(TEXTS, task=task, return_tensors="pt", padding=True)).logits.tolist()
    return {{"logits": logits, "model_module": type(model).__module__,
            "processor_module": type(processor).__module__}}


def user_pipeline_outputs(repo):
    clf = pipeline("text-classification", model=repo, trust_remote_code=True)
    try:
        clf(TEXTS[0], task="no-such-task")
        bad_task = "accepted"
    except ValueError as err:
        bad_task = str(err)
    return {{
        "pipeline_class": type(clf).__name__,
        "pipeline_module": type(clf).__module__,
        "all_scores": {{t: clf(TEXTS, task=t, top_k=None) for t in clf.model.config.tasks}},
        "default": clf(TEXTS),
        "single": clf(TEXTS[1], task="sst2"),
        "bad_task": bad_task,
    }}
"""
RUN_METRICS = {
    "sst2": {
        "validation": {"macro_f1": 0.8125, "accuracy": 0.83, "roc_auc": 0.9},
        "test": {"macro_f1": 0.7931, "accuracy": 0.8},
    },
    "aspect": {
        "validation": {"macro_f1": 0.6543, "accuracy": 0.7},
        "test": {"macro_f1": 0.6012, "accuracy": 0.66},
    },
}
RUN_REPO, PLAIN_REPO = "tester/surge-iwn", "tester/surge-plain"


@pytest.fixture
def encoder_repo(hub_server, tiny_bert_with_tokenizer) -> str:
    """The tiny random BERT with the real MiniLM tokenizer (conftest), put on the local Hub as the base encoder."""
    hub_server.hub.add_folder("tester/tiny-encoder", tiny_bert_with_tokenizer, "base encoder")
    return "tester/tiny-encoder"


ALLOWED_REMOTE_IMPORTS = {"numpy", "torch", "transformers", "huggingface_hub", "safetensors"}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _check_model_matches_author(user: dict, author: dict) -> None:
    """The user's remote-code model and processor give the author's logits."""
    assert user["model_module"].startswith("transformers_modules.")
    assert user["processor_module"].startswith("transformers_modules.")
    for task, labels in TASK_LABELS.items():
        mine = np.array(author[task])
        np.testing.assert_allclose(np.array(user["logits"][task]), mine, rtol=0, atol=1e-5)
        assert (
            mine[:, len(labels) :] < -1e30
        ).all()  # columns past the task's own labels hold the dtype minimum
    # different tasks really give different answers for the same texts (task routing is exercised)
    assert not np.allclose(np.array(author["sst2"])[:, :2], np.array(author["aspect"])[:, :2])


def _check_pipeline_matches_author(user: dict, author: dict) -> None:
    """The user's pipeline answers equal the author's processor + model probabilities, per task and by default."""
    assert user["pipeline_class"] == "SurgeTextClassificationPipeline"
    assert user["pipeline_module"].startswith("transformers_modules.")
    assert "no-such-task" in user["bad_task"] and "sst2" in user["bad_task"] and "aspect" in user["bad_task"]
    for task, labels in TASK_LABELS.items():
        probs = _softmax(np.array(author[task])[:, : len(labels)])
        for i, answer in enumerate(user["all_scores"][task]):
            got = {d["label"]: d["score"] for d in answer}
            assert set(got) == set(labels)
            np.testing.assert_allclose([got[name] for name in labels], probs[i], atol=1e-5)
            assert answer[0]["label"] == labels[int(probs[i].argmax())]
    default_probs = _softmax(np.array(author["aspect"])[:, :3])  # the config's default task is "aspect"
    assert [d["label"] for d in user["default"]] == [
        TASK_LABELS["aspect"][int(p.argmax())] for p in default_probs
    ]
    np.testing.assert_allclose([d["score"] for d in user["default"]], default_probs.max(axis=1), atol=1e-5)
    sst2 = _softmax(np.array(author["sst2"])[1, :2])
    assert user["single"] == [
        {"label": TASK_LABELS["sst2"][int(sst2.argmax())], "score": pytest.approx(sst2.max(), abs=1e-5)}
    ]


def _check_remote_code_imports(hub, repo: str) -> list[str]:
    """Every .py file in the repo imports only stdlib + the allowed libraries (what check_imports enforces)."""
    names = [f for f in hub.files(repo) if f.endswith(".py")]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = Path(tmp) / name
            path.write_bytes(hub.read(repo, name))
            third_party = {m.split(".")[0] for m in get_imports(path)} - set(sys.stdlib_module_names)
            assert third_party <= ALLOWED_REMOTE_IMPORTS, (name, third_party)
    return names


@pytest.fixture(scope="module")
def published(module_hub_server, tiny_bert_with_tokenizer):
    """One author session: a run folder pushed with `surgellm push`, and a second model pushed with the stock
    `model.push_to_hub` + `processor.push_to_hub`; gives the Hub session and the author's logits per repo."""
    session = module_hub_server
    session.hub.add_folder("tester/tiny-encoder", tiny_bert_with_tokenizer, "base encoder")
    run_dir = session.workdir / "run"
    author = session.run_python(
        AUTHOR
        + f"""
from surgellm_hf.cli import main
from surgellm_hf.evaluation import save_run
from surgellm_hf.hub import update_model_card
model, processor = build(prefix="tokens")
model.save_pretrained({str(run_dir)!r})
processor.save_pretrained({str(run_dir)!r})
save_run({str(run_dir)!r}, "IWN", 0, {RUN_METRICS!r},
     extra={{"training": {{"learning_rate": 1.5e-5, "epochs_budget": 5, "effective_batch_size": 32}}}})
assert main(["push", {str(run_dir)!r}, {RUN_REPO!r}]) == 0
plain, plain_processor = build(prefix="text", seed=2)
plain.push_to_hub({PLAIN_REPO!r})
plain_processor.push_to_hub({PLAIN_REPO!r})
update_model_card({PLAIN_REPO!r})
from surgellm_hf.inference import predict_texts
records = {{
    "sst2": predict_texts(model, processor, TEXTS, tasks="sst2"),
    "all": predict_texts(model, processor, TEXTS, tasks="all"),
    "explained": predict_texts(model, processor, TEXTS[:2], tasks="aspect", explain=True, batch_size=8),
    "one": predict_texts(model, processor, [TEXTS[0]], tasks="aspect"),
}}
result({{{RUN_REPO!r}: author_logits(model, processor), {PLAIN_REPO!r}: author_logits(plain, plain_processor),
        "records": records}})
""",
        surgellm=True,
    )
    return session, author


def test_surgellm_push_uploads_everything_in_one_commit(published):
    hub = published[0].hub
    assert hub.commits(RUN_REPO) == [
        "initial commit",
        "Upload SURGELLM model, processor, lexicon and model card",
    ]
    files = set(hub.files(RUN_REPO))
    expected = {
        "config.json",
        "model.safetensors",
        "README.md",
        "processor_config.json",
        "lexicon.json",
        "surgellm_run.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "configuration_surge.py",
        "modeling_surge.py",
        "normalization.py",
        "pipeline_surge.py",
        "processing_surge.py",
        "lexicon.py",
        "features.py",
        "explaining_surge.py",
        "handler.py",
        "surgellm_runtime.py",
        "requirements.txt",
    }
    assert expected <= files, expected - files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)  # safetensors only
    config = json.loads(hub.read(RUN_REPO, "config.json"))
    assert config["auto_map"] == {
        "AutoConfig": "configuration_surge.SurgeConfig",
        "AutoModel": "modeling_surge.SurgeModel",
        "AutoModelForSequenceClassification": "modeling_surge.SurgeForSequenceClassification",
    }
    assert (
        config["custom_pipelines"]["text-classification"]["impl"]
        == "pipeline_surge.SurgeTextClassificationPipeline"
    )
    processor_config = json.loads(hub.read(RUN_REPO, "processor_config.json"))
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_surge.SurgeProcessor"
    assert processor_config["prefix"] == "tokens" and processor_config["tasks"] == ["sst2", "aspect"]
    lexicon = json.loads(hub.read(RUN_REPO, "lexicon.json"))
    assert [g["name"] for g in lexicon["groups"]][:2] == ["sst_pos", "sst_neg"] and len(
        lexicon["groups"]
    ) == 10
    assert (
        json.loads(hub.read(RUN_REPO, "surgellm_run.json"))["tasks"]["aspect"]["test"]["macro_f1"] == 0.6012
    )
    _check_remote_code_imports(hub, RUN_REPO)


def test_the_pushed_repo_deploys_with_its_handler_without_the_package(published):
    """Inference Endpoints' custom-handler route: the repo pulled in a fresh process without surgellm_hf, only the
    distributions requirements.txt names (installed here, at versions it allows), `EndpointHandler(path)(data)`
    gives the author's predict_texts records."""
    session, author = published
    assert {"handler.py", "surgellm_runtime.py", "requirements.txt"} <= set(session.hub.files(RUN_REPO))
    user = session.run_python(
        f"""
import importlib.metadata, importlib.util, json, sys
from huggingface_hub import snapshot_download
from packaging.requirements import Requirement

path = snapshot_download({RUN_REPO!r})
needs = [Requirement(line) for line in open(path + "/requirements.txt").read().split()]
versions = {{r.name: importlib.metadata.version(r.name) for r in needs}}
unmet = [str(r) for r in needs if not r.specifier.contains(versions[r.name], prereleases=True)]
spec = importlib.util.spec_from_file_location("handler", path + "/handler.py")
handler_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(handler_module)
handler = handler_module.EndpointHandler(path)
texts = {TEXTS!r}
answers = {{
    "sst2": handler({{"inputs": texts, "parameters": {{"task": "sst2"}}}}),
    "all": handler({{"inputs": texts, "parameters": {{"task": "all"}}}}),
    "explained": handler({{"inputs": texts[:2], "parameters": {{"task": "aspect", "explain": True, "batch_size": 8}}}}),
    "one": handler({{"inputs": texts[0]}}),
}}
try:
    handler({{"inputs": texts, "parameters": {{"task": "nosuch"}}}})
    bad = "accepted"
except ValueError as err:
    bad = str(err)
result({{"needs": [r.name for r in needs], "unmet": unmet, "answers": json.loads(json.dumps(answers)), "bad": bad,
        "package": "surgellm_hf" in sys.modules}})
"""
    )
    assert user["unmet"] == [] and {"torch", "transformers", "numpy"} <= set(user["needs"])
    assert user["package"] is False
    records = json.loads(json.dumps(author["records"]))
    for key in ("sst2", "all", "explained"):  # the same batches as the author's: the same bytes
        assert user["answers"][key] == records[key], key
    (one,), (want,) = (
        user["answers"]["one"],
        records["one"],
    )  # a lone text: its own kernel path, float precision
    assert (one["task"], one["label"]) == (want["task"], want["label"]) and want["task"] == "aspect"
    np.testing.assert_allclose(list(one["scores"].values()), list(want["scores"].values()), atol=1e-6)
    assert "unknown task 'nosuch'" in user["bad"]


def test_run_card_shows_tasks_metrics_lexicon_variant_and_usage(published):
    card = ModelCard(published[0].hub.read(RUN_REPO, "README.md").decode())
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert card.data.base_model == "tester/tiny-encoder" and "custom_code" in card.data.tags
    results = {
        (r.dataset_name, r.metric_type): (r.metric_value, r.dataset_split) for r in card.data.eval_results
    }
    assert results[("sst2", "f1")] == (0.7931, "test") and results[("aspect", "accuracy")] == (0.66, "test")
    for snippet in (
        "world, sports, science",
        "negative, positive",
        "| `sst2` | 0.812 | 0.830 | 0.900 |",
        "| `aspect` | 0.601 | 0.660 |",
        f"**{(0.7931 + 0.6012) / 2:.3f}**",
        "**Variant:** IWN",
        "I (IWN) = on",
        "`sst_pos`",
        "curated",
        f'pipeline("text-classification", model="{RUN_REPO}"',
        'task="sst2"',
        "| learning_rate | 1.5e-05 |",
        "## Intended use",
        "## Limitations",
        "**Inference Endpoints.** This repo carries `handler.py`",
    ):
        assert snippet in card.text, snippet


def test_stock_push_plus_card_update(published):
    hub = published[0].hub
    files = set(hub.files(PLAIN_REPO))
    assert {
        "model.safetensors",
        "config.json",
        "lexicon.json",
        "processor_config.json",
        "modeling_surge.py",
        "processing_surge.py",
    } <= files
    card = ModelCard(hub.read(PLAIN_REPO, "README.md").decode())  # re-rendered from what the repo holds
    assert "**Groups:** 10 (88 entries)" in card.text and "| prefix style | text |" in card.text
    assert "No test metrics were recorded" in card.text and card.data.eval_results is None
    _check_remote_code_imports(hub, PLAIN_REPO)


@pytest.mark.parametrize("repo", [RUN_REPO, PLAIN_REPO])
def test_user_without_surgellm_gets_the_authors_logits(published, repo):
    session, author = published
    user = session.run_python(USER + f"\nresult(user_model_outputs({repo!r}))")
    _check_model_matches_author(user, author[repo])


@pytest.mark.parametrize(
    "repo",
    [
        RUN_REPO,
        PLAIN_REPO,
    ],
)
def test_user_pipeline_gives_the_authors_predictions(published, repo):
    session, author = published
    user = session.run_python(USER + f"\nresult(user_pipeline_outputs({repo!r}))")
    _check_pipeline_matches_author(user, author[repo])


def test_adapter_only_publish_and_from_adapter(hub_server, encoder_repo):
    author = hub_server.run_python(
        AUTHOR
        + """
from surgellm_hf.hub import publish
model, processor = build(prefix="text", freeze=True, seed=3)
from surgellm_hf.evaluation import save_run
from surgellm_hf.hub import publish_run
publish(model, processor, "tester/surge-adapter", adapter_only=True)
again = SurgeForSequenceClassification.from_adapter("tester/surge-adapter").eval()
metrics = {"sst2": {"validation": {"macro_f1": 0.5}}, "aspect": {"validation": {"macro_f1": 0.4}}}
for name, m in (("frozen", model), ("tuned", build(prefix="text", seed=4)[0])):
    if name == "tuned":
        with torch.no_grad():
            m.surge.encoder.embeddings.word_embeddings.weight[5] += 1.0  # as if fine-tuning moved the encoder
    m.save_pretrained(name)
    processor.save_pretrained(name)
    save_run(name, "IWN", 0, metrics)
publish_run("frozen", "tester/surge-adapter-run", adapter_only=True)
try:
    publish_run("tuned", "tester/refused", adapter_only=True)
    refused = "pushed"
except ValueError as err:
    refused = str(err)
result({"author": author_logits(model, processor), "installed": author_logits(again, processor),
        "refused": refused})
""",
        surgellm=True,
    )
    files = set(hub_server.hub.files("tester/surge-adapter"))
    assert {
        "surge_adapter.safetensors",
        "surge_adapter_config.json",
        "modeling_surge.py",
        "lexicon.json",
        "README.md",
    } <= files
    assert "model.safetensors" not in files and "config.json" not in files  # no encoder weights travel
    assert {"surge_adapter.safetensors", "surgellm_run.json"} <= set(
        hub_server.hub.files("tester/surge-adapter-run")
    )
    assert (
        "differs from its base 'tester/tiny-encoder'" in author["refused"]
        and "fine-tuned" in author["refused"]
    )
    assert not hub_server.hub.repo_exists("tester/refused")
    card = hub_server.hub.read("tester/surge-adapter", "README.md").decode()
    assert "holds only the **adapter**" in card and 'from_surge_modules("tester/surge-adapter")' in card
    _check_remote_code_imports(hub_server.hub, "tester/surge-adapter")

    user = hub_server.run_python(
        f"""
import torch
from transformers import AutoProcessor
from transformers.dynamic_module_utils import get_class_from_dynamic_module
TEXTS = {TEXTS!r}
cls = get_class_from_dynamic_module("modeling_surge.SurgeForSequenceClassification", "tester/surge-adapter")
model = cls.from_surge_modules("tester/surge-adapter").eval()  # the card's call
processor = AutoProcessor.from_pretrained("tester/surge-adapter", trust_remote_code=True)
out = {{}}
with torch.no_grad():
    for task in model.config.tasks:
        out[task] = model(**processor(TEXTS, task=task, return_tensors="pt", padding=True)).logits.tolist()
result({{"logits": out, "module": cls.__module__}})
"""
    )
    assert user["module"].startswith("transformers_modules.")
    for task in TASK_LABELS:
        np.testing.assert_allclose(author["installed"][task], author["author"][task], atol=1e-5)
        np.testing.assert_allclose(user["logits"][task], author["author"][task], atol=1e-5)


def test_bad_input_is_refused_before_any_upload(hub_server, encoder_repo):
    writes_before = len(hub_server.hub.write_requests())
    out = hub_server.run_python(
        AUTHOR
        + """
from surgellm_hf.hub import publish
model, processor = build(prefix="text")
unfitted, _ = build(prefix="text", fit=False)
other = Lexicon({"a": ["x", "y*"], "b": ["z"]}, name="tiny")
renamed = Lexicon({f"group{i}": e for i, e in enumerate(Lexicon.curated().groups.values())}, name="renamed")
cases = {
    "unfitted": (unfitted, processor, "tester/refused"),
    "malformed_repo_id": (model, processor, "tester/bad name//x"),
    "lexicon_mismatch": (model, SurgeProcessor.from_encoder_pretrained(ENCODER, lexicon=other, tasks=list(TASKS),
                                                                         prefix="text"), "tester/refused"),
    "feature_names_mismatch": (model, SurgeProcessor.from_encoder_pretrained(
        ENCODER, lexicon=renamed, tasks=list(TASKS), prefix="text"), "tester/refused"),
    "task_mismatch": (model, SurgeProcessor.from_encoder_pretrained(ENCODER, tasks=["aspect", "sst2"], prefix="text"),
                      "tester/refused"),
    "no_processor": (model, None, "tester/refused"),
}
out = {}
for name, (m, p, repo) in cases.items():
    try:
        publish(m, p, repo)
        out[name] = "published"
    except (ValueError, TypeError) as err:
        out[name] = f"{type(err).__name__}: {err}"
for name, obj in (("model_push_to_hub", model), ("processor_push_to_hub", processor)):
    try:
        obj.push_to_hub("tester/has space")
        out[name] = "pushed"
    except ValueError as err:
        out[name] = f"{type(err).__name__}: {err}"
result(out)
""",
        surgellm=True,
    )
    expected = {
        "unfitted": "never fitted",
        "malformed_repo_id": "Malformed Hub repo id 'tester/bad name//x'",
        "lexicon_mismatch": "lexicon 'tiny' gives 8",
        "feature_names_mismatch": "feature names differ",
        "task_mismatch": "tasks differ",
        "no_processor": "needs the model's SurgeProcessor",
        "model_push_to_hub": "tester/has space",  # HFValidationError (a ValueError) from the client's repo-id check
        "processor_push_to_hub": "tester/has space",
    }
    for name, fragment in expected.items():
        assert fragment in out[name] and out[name].split(":")[0] in ("ValueError", "HFValidationError"), (
            name,
            out,
        )
    assert hub_server.hub.write_requests()[writes_before:] == []  # nothing created, nothing committed
    assert not hub_server.hub.repo_exists("tester/refused")


def test_model_push_to_hub_refuses_unfitted_statistics(hub_server, encoder_repo):
    writes_before = len(hub_server.hub.write_requests())
    out = hub_server.run_python(
        AUTHOR
        + """
unfitted, _ = build(prefix="text", fit=False)
try:
    unfitted.push_to_hub("tester/refused")
    result("pushed")
except ValueError as err:
    result(str(err))
""",
        surgellm=True,
    )
    assert "never fitted" in out
    assert hub_server.hub.write_requests()[writes_before:] == []
    assert not hub_server.hub.repo_exists("tester/refused")
