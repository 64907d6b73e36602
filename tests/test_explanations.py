"""Explanations from the lexical features (issue 19, part 3): `explain=True` in predict_texts, the pipeline and
`surgellm predict --explain`; the contributions checked against a brute-force loop that reruns the whole model once
per feature (encoder included, the encoder input unchanged), for three encoder families, three prefix styles and the
three problem types."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from surgellm_hf import Lexicon, SurgeForSequenceClassification, SurgeProcessor
from surgellm_hf.cli import main
from surgellm_hf.explaining_surge import NO_GATE_NOTE, NO_STATISTICS_NOTE
from surgellm_hf.inference import predict_texts
from surgellm_hf.pipeline_surge import SurgeTextClassificationPipeline
from tests._family_encoders import family_encoder
from tests._serving_utils import TEXTS, fitted_model


@pytest.fixture(scope="module")
def family_encoders(tmp_path_factory, minilm_path):
    root = tmp_path_factory.mktemp("explain_encoders")
    return {f: family_encoder(f, root / f, minilm_path) for f in ("bert", "roberta", "deberta-v2")}


def brute_force(model, processor, texts, task, kind: str) -> np.ndarray:
    """Per text and feature: the model's decision minus its decision with that raw feature set to the task's mean,
    each computed by a full forward pass (encoder included) on the original token ids (the prefix of the
    original features); [N, F] (predicted label's logit / value) or [N, F, L] (every label's logit)."""
    enc = processor(list(texts), task=task, return_tensors="pt", padding=True)
    t = model.config.task_id(task)
    n_labels = model.config.tasks[task]
    with torch.no_grad():
        base = model(**enc).logits[:, :n_labels].double()
        rows = []
        for j in range(model.config.num_features):
            moved = dict(enc)
            feats = enc["lexical_features"].clone()
            feats[:, j] = model.surge.normalizer.mean[t, j]
            moved["lexical_features"] = feats
            rows.append(model(**moved).logits[:, :n_labels].double())
    moved_logits = torch.stack(rows, dim=1)  # [N, F, L]
    if kind == "multi_label":
        return (base[:, None, :] - moved_logits).numpy()
    column = torch.zeros(len(texts), dtype=torch.long) if kind == "regression" else base.argmax(dim=1)
    rows = torch.arange(len(texts))
    picked = base[rows, column]  # [N]
    moved_picked = moved_logits[rows[:, None], torch.arange(moved_logits.shape[1])[None, :], column[:, None]]
    return (picked[:, None] - moved_picked).numpy()  # [N, F]


def _contributions(record: dict, names: list[str], labels: list[str] | None = None) -> np.ndarray:
    c = record["explanation"]["contributions"]
    if labels is None:
        return np.array([c[n] for n in names])
    return np.array([[c[n][label] for label in labels] for n in names])


@pytest.mark.parametrize(
    ("family", "prefix"),
    [("bert", None), ("bert", "tokens"), ("bert", "text"), ("roberta", None), ("deberta-v2", "tokens")],
)
def test_contributions_equal_a_brute_force_rerun_of_the_whole_model(family_encoders, family, prefix):
    model, processor = fitted_model(family_encoders[family], prefix=prefix, seed=2)
    processor.max_length = 160  # the text prefix needs room on top of the text
    names = processor.lexicon.feature_names
    for task in ("sst2", "llm7"):
        records = predict_texts(model, processor, TEXTS, tasks=task, explain=True)
        expected = brute_force(model, processor, TEXTS, task, "single_label")
        got = np.stack([_contributions(r, names) for r in records])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        assert np.abs(expected).max() > 1e-3  # the features move the decision: the test can fail


def test_contributions_of_multi_label_and_regression_tasks_by_brute_force(tiny_bert_with_tokenizer):
    tasks = {"topics": 3, "score": 1, "sentiment": 2}
    torch.manual_seed(0)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        tiny_bert_with_tokenizer,
        tasks=tasks,
        task_problem_types={"topics": "multi_label", "score": "regression"},
        task_label_names={"topics": ["sports", "politics", "tech"]},
        norm="standard",
    )
    processor = SurgeProcessor.from_encoder_pretrained(
        tiny_bert_with_tokenizer, tasks=list(tasks), prefix=None
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("surge.encoder."):
                p.add_(torch.randn_like(p) * 0.5)
    fit = [list(tasks)[i % 3] for i in range(len(TEXTS) * 2)]
    model.fit_feature_normalizer(processor.lexicon.featurize(TEXTS * 2), None, fit)
    model.eval()
    names = processor.lexicon.feature_names
    topics = predict_texts(model, processor, TEXTS, tasks="topics", explain=True)
    got = np.stack([_contributions(r, names, ["sports", "politics", "tech"]) for r in topics])
    np.testing.assert_allclose(got, brute_force(model, processor, TEXTS, "topics", "multi_label"), atol=1e-5)
    assert topics[0]["explanation"]["contribution_of"] == "each label's logit"
    score = predict_texts(model, processor, TEXTS, tasks="score", explain=True)
    got = np.stack([_contributions(r, names) for r in score])
    expected = brute_force(model, processor, TEXTS, "score", "regression")
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (
        np.abs(expected).max() > 1e-3 and score[0]["explanation"]["contribution_of"] == "the predicted value"
    )


def test_an_explanation_holds_features_normalized_values_matches_and_the_gate(family_encoders):
    model, processor = fitted_model(family_encoders["bert"], prefix=None, seed=1)
    text = "I think the results show a great, captivating film! Firstly (1), according to the passage..."
    record = predict_texts(model, processor, [text], tasks="sst2", explain=True)[0]
    explanation = record["explanation"]
    enc = processor([text], task="sst2", return_tensors="pt")
    raw = enc["lexical_features"][0].numpy()
    names = processor.lexicon.feature_names
    assert list(explanation["features"]) == names
    np.testing.assert_array_equal([explanation["features"][n] for n in names], raw.astype(np.float64))
    mean, std = model.surge.normalizer.mean[0].numpy(), model.surge.normalizer.std[0].numpy()
    expected = (raw - mean) / (std + model.config.norm_eps)
    np.testing.assert_allclose([explanation["normalized"][n] for n in names], expected, rtol=1e-6, atol=1e-6)
    assert explanation["matches"] == {
        "sst_pos": ["captivat*", "great"],
        "llm_stat": ["results show"],
        "llm_list": ["(1)", "firstly"],
        "human_pers": ["i", "i think"],
        "retrieval": ["according to"],
    }
    with torch.no_grad():
        gate = model(**enc, output_gate=True).gate.mean(-1)
    assert explanation["mean_gate"] == pytest.approx(float(gate[0]), abs=1e-6)
    assert explanation["contribution_of"] == "the predicted label's logit"


def test_explain_adds_only_the_explanation_to_the_records(family_encoders):
    model, processor = fitted_model(family_encoders["roberta"], prefix=None, seed=3)
    for task in ("sst2", "all"):
        plain = predict_texts(model, processor, TEXTS, tasks=task)
        explained = predict_texts(model, processor, TEXTS, tasks=task, explain=True)
        if task == "all":
            stripped = [
                {
                    "tasks": {
                        t: {k: v for k, v in r.items() if k != "explanation"} for t, r in row["tasks"].items()
                    }
                }
                for row in explained
            ]
            per_task = {
                t: predict_texts(model, processor, TEXTS, tasks=t, explain=True) for t in ("sst2", "llm7")
            }
            for i, row in enumerate(explained):  # every task's explanation, from the one encoder pass
                for t in per_task:
                    np.testing.assert_allclose(
                        list(row["tasks"][t]["explanation"]["contributions"].values()),
                        list(per_task[t][i]["explanation"]["contributions"].values()),
                        atol=1e-6,
                    )
        else:
            stripped = [{k: v for k, v in r.items() if k != "explanation"} for r in explained]
        assert stripped == plain


def test_a_model_without_the_gate_or_without_statistics_explains_features_only(tiny_bert_with_tokenizer):
    processor = SurgeProcessor.from_encoder_pretrained(
        tiny_bert_with_tokenizer, tasks=["a", "b"], prefix=None
    )
    no_gate = SurgeForSequenceClassification.from_encoder_pretrained(
        tiny_bert_with_tokenizer, tasks={"a": 2, "b": 2}, use_gate=False, norm="none"
    ).eval()
    record = predict_texts(no_gate, processor, ["a great film"], tasks="a", explain=True)[0]["explanation"]
    assert record["contributions"] is None and record["mean_gate"] is None and record["normalized"] is None
    assert record["note"] == NO_GATE_NOTE and record["matches"] == {"sst_pos": ["great"]}
    raw = SurgeForSequenceClassification.from_encoder_pretrained(
        tiny_bert_with_tokenizer, tasks={"a": 2, "b": 2}, norm="none"
    ).eval()
    record = predict_texts(raw, processor, ["a great film"], tasks="a", explain=True)[0]["explanation"]
    assert record["contributions"] is None and record["note"] == NO_STATISTICS_NOTE
    assert record["normalized"] == record["features"]  # norm "none": the gate sees the raw values
    assert 0 < record["mean_gate"] < 1


def test_the_pipeline_and_the_predict_command_give_the_same_explanations(family_encoders, tmp_path, capsys):
    model, processor = fitted_model(family_encoders["bert"], prefix="tokens", seed=4)
    model.save_pretrained(tmp_path / "run")
    processor.save_pretrained(tmp_path / "run")
    expected = predict_texts(model, processor, TEXTS[:3], tasks="llm7", explain=True)
    clf = SurgeTextClassificationPipeline(model=model, processor=processor, device=-1)
    answers = clf(TEXTS[:3], task="llm7", explain=True)
    for answer, want in zip(answers, expected):  # one text per forward pass here: equal to float precision
        got, ref = answer["explanation"], want["explanation"]
        assert (got["features"], got["matches"]) == (ref["features"], ref["matches"])
        np.testing.assert_allclose(
            list(got["contributions"].values()), list(ref["contributions"].values()), atol=1e-5
        )
        assert got["mean_gate"] == pytest.approx(ref["mean_gate"], abs=1e-6)
        assert answer["predictions"]["label"] == want["label_name"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:3]))
    capsys.readouterr()
    argv = ["predict", str(tmp_path / "run"), "--input", str(tmp_path / "in.jsonl"), "--task", "llm7"]
    assert main([*argv, "--explain", "--no-progress"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["explanation"] for x in lines] == [r["explanation"] for r in expected]


def test_lexicon_matches_name_the_entries_as_the_lexicon_spells_them():
    lexicon = Lexicon({"g": ["Great", "multi-hop", "results  show", "captivat*", "(2)"], "h": ["great"]})
    text = "GREAT results\nshow: a multi-hop, captivating (2) story; not semimulti-hop"
    assert lexicon.matches(text) == [
        {"g": ["(2)", "captivat*", "Great", "multi-hop", "results  show"], "h": ["great"]}
    ]
    counts = lexicon.featurize([text])[0]
    assert counts[:2].tolist() == [5, 1]  # what the group counts count
    assert lexicon.matches(["", "nothing here"]) == [{}, {}]


@pytest.mark.parametrize("prefix", [None, "tokens"])
def test_explanations_of_long_texts_pool_the_windows_as_the_model_does(family_encoders, prefix):
    """With `long_text`, the counterfactuals reuse the pooled window states: equal to a brute-force rerun of the
    windowed model, per task and (one encoder pass when the input does not carry the task) for every task at once."""
    model, _ = fitted_model(family_encoders["bert"], prefix=prefix, seed=4)
    processor = SurgeProcessor.from_encoder_pretrained(
        family_encoders["bert"],
        tasks=["sst2", "llm7"],
        prefix=prefix,
        long_text={"max_chunks": 3, "stride": 2},
    )
    processor.max_length = 40 if prefix is None else 48
    model.config.long_text_pool = {"sst2": "max", "llm7": "mean"}
    enc = processor(TEXTS, task="sst2", return_tensors="pt", padding=True)
    assert int(enc["num_windows"].max()) > 1  # some texts really are split into windows
    names = processor.lexicon.feature_names
    for task in ("sst2", "llm7"):
        records = predict_texts(model, processor, TEXTS, tasks=task, explain=True)
        expected = brute_force(model, processor, TEXTS, task, "single_label")
        got = np.stack([_contributions(r, names) for r in records])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        assert np.abs(expected).max() > 1e-3
    every = predict_texts(model, processor, TEXTS, tasks="all", explain=True)
    for task in ("sst2", "llm7"):
        expected = brute_force(model, processor, TEXTS, task, "single_label")
        got = np.stack([_contributions(row["tasks"][task], names) for row in every])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
