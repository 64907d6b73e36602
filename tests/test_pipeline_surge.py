"""SurgeTextClassificationPipeline in process: per-call task, default task, top_k, errors (the Hub route is in
hub/test_publishing.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from surgellm_hf import Lexicon, SurgeForSequenceClassification, SurgeProcessor
from surgellm_hf.pipeline_surge import SurgeTextClassificationPipeline, surge_custom_pipelines

LABELS = {"sst2": ["negative", "positive"], "aspect": ["world", "sports", "science"]}
TEXTS = ["a superb, delightful film!", "Moreover, results show (1) a trend.", "maybe it was dull?"]


@pytest.fixture(scope="module")
def model_and_processor(tiny_bert_with_tokenizer):
    lexicon = Lexicon.curated()
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        tiny_bert_with_tokenizer,
        tasks={t: len(v) for t, v in LABELS.items()},
        task_label_names=LABELS,
        default_task="aspect",
        norm="standard",
        num_features=lexicon.num_features,
        feature_names=lexicon.feature_names,
    )
    processor = SurgeProcessor.from_encoder_pretrained(
        tiny_bert_with_tokenizer, lexicon=lexicon, tasks=list(LABELS), prefix="tokens", default_task="aspect"
    )
    processor.prepare_model(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("surge.encoder."):
                p.add_(torch.randn_like(p) * 0.5)
    feats = lexicon.featurize(TEXTS * 2)
    model.fit_feature_normalizer(feats, [0, 1, 0, 0, 1, 2], ["sst2"] * 3 + ["aspect"] * 3)
    return model.eval(), processor


def _probs(model, processor, task: str) -> np.ndarray:
    """The author's route: processor + model, softmax over the task's own label columns."""
    with torch.no_grad():
        logits = model(**processor(TEXTS, task=task, return_tensors="pt", padding=True)).logits
    return torch.softmax(logits[:, : len(LABELS[task])], dim=-1).numpy()


def test_pipeline_matches_processor_and_model_per_task_and_default(model_and_processor):
    model, processor = model_and_processor
    clf = SurgeTextClassificationPipeline(model=model, processor=processor, device=-1)
    for task, labels in LABELS.items():
        expected = _probs(model, processor, task)
        ranked = clf(TEXTS, task=task, top_k=None)
        for row, answer in zip(expected, ranked):
            assert [d["label"] for d in answer] == [labels[i] for i in np.argsort(-row)]
            np.testing.assert_allclose([d["score"] for d in answer], np.sort(row)[::-1], atol=1e-5)
    default = _probs(model, processor, "aspect")  # config.default_task
    assert clf(TEXTS) == [
        {"label": LABELS["aspect"][int(r.argmax())], "score": pytest.approx(float(r.max()), abs=1e-5)}
        for r in default
    ]
    one = _probs(model, processor, "sst2")[0]
    assert clf(TEXTS[0], task="sst2") == [
        {"label": LABELS["sst2"][int(one.argmax())], "score": pytest.approx(float(one.max()), abs=1e-5)}
    ]
    assert len(clf(TEXTS[0], task="aspect", top_k=2)) == 2
    raw = clf(TEXTS[1], task="sst2", top_k=None, function_to_apply="none")
    with torch.no_grad():
        logits = model(**processor([TEXTS[1]], task="sst2", return_tensors="pt")).logits[0, :2].numpy()
    assert sorted(d["score"] for d in raw) == pytest.approx(sorted(logits.tolist()), abs=1e-5)
    # a constructor-level default task overrides the config's
    assert clf.__class__(model=model, processor=processor, device=-1, default_task="sst2")(TEXTS[0]) == clf(
        TEXTS[0], task="sst2"
    )


def test_pipeline_refuses_bad_calls(model_and_processor):
    model, processor = model_and_processor
    clf = SurgeTextClassificationPipeline(model=model, processor=processor, device=-1)
    with pytest.raises(ValueError, match=r"Unknown task 'nope'; valid tasks are \['sst2', 'aspect'\]"):
        clf(TEXTS[0], task="nope")
    with pytest.raises(ValueError, match="top_k"):
        clf(TEXTS[0], top_k=0)
    with pytest.raises(ValueError, match="function_to_apply"):
        clf(TEXTS[0], function_to_apply="relu")
    with pytest.raises(TypeError, match="string or a list of strings"):
        clf([TEXTS[0], 3])
    with pytest.raises(ValueError, match="needs the model's SurgeProcessor"):
        SurgeTextClassificationPipeline(model=model, device=-1)
    other = SurgeProcessor(
        processor.tokenizer, Lexicon({"a": ["x"]}, name="tiny"), tasks=list(LABELS), prefix=None
    )
    with pytest.raises(ValueError, match="do not match"):
        SurgeTextClassificationPipeline(model=model, processor=other, device=-1)


def test_custom_pipelines_entry_names_this_class():
    entry = surge_custom_pipelines()
    assert entry["text-classification"]["impl"] == "pipeline_surge.SurgeTextClassificationPipeline"
    assert SurgeTextClassificationPipeline.__module__.rsplit(".", 1)[-1] == "pipeline_surge"
    entry["text-classification"]["pt"].append("x")  # a copy each time: callers may not mutate the shared one
    assert surge_custom_pipelines()["text-classification"]["pt"] == ["AutoModelForSequenceClassification"]
