"""Long documents (`long_text`): windows in the processor, pooling in the model, one encoder pass per batch, and the
paths that carry windows (collator, frozen cache, training, LoRA, predict, pipeline, torch.export, ONNX)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from surgellm_hf import SurgeProcessor
from surgellm_hf.data.data_collator import SurgeDataCollator
from surgellm_hf.modeling_surge import pool_windows
from surgellm_hf.training import RunConfig, train_run
from tests._family_encoders import family_encoder, quickstart_config
from tests._helpers import QUICKSTART_DATA
from tests._serving_utils import TASKS, TEXTS, fitted_model

FAMILIES = ("bert", "roberta", "distilbert", "deberta-v2")
LONG = (
    " ".join(TEXTS) + " " + " ".join(reversed(TEXTS))
)  # about 170 words: several windows of any budget here
DOCS = ["ok", LONG, TEXTS[5], " ".join(TEXTS[:3])]
DOC_TASKS = ["sst2", "llm7", "llm7", "sst2"]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, minilm_path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("long_text_encoders")
    return {f: family_encoder(f, root / f, minilm_path) for f in (*FAMILIES, "electra")}


def _processor(path: Path, prefix: str | None, **kwargs) -> SurgeProcessor:
    return SurgeProcessor.from_encoder_pretrained(path, tasks=list(TASKS), prefix=prefix, **kwargs)


def _budget(proc: SurgeProcessor, text: str, task: str, window: int) -> int:
    """A max_length whose windows hold `window` text tokens for this text (2 special tokens, its prefix)."""
    return window + 2 + proc.prefix_length(text, task=task)


# ----------------------------------------------------------------------------------------------- processor


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prefix", [None, "tokens", "text"])
def test_one_window_is_exactly_truncation(encoders, family, prefix):
    """max_chunks 1 is the processor without long_text; with K > 1, the first window of every text is what
    truncation gives (ids, mask, token types), and features and task ids are those of the whole text."""
    plain = _processor(encoders[family], prefix)
    max_length = _budget(plain, LONG, "llm7", 20)
    one = _processor(encoders[family], prefix, long_text={"max_chunks": 1, "stride": 5})
    assert not one.windowed
    assert dict(one(DOCS, task=DOC_TASKS, max_length=max_length)) == dict(
        plain(DOCS, task=DOC_TASKS, max_length=max_length)
    )
    many = _processor(encoders[family], prefix, long_text={"max_chunks": 4, "stride": 5})
    got, ref = (p(DOCS, task=DOC_TASKS, max_length=max_length) for p in (many, plain))
    assert got["num_windows"][1] == 4 and got["num_windows"][0] == 1
    for key in ref:
        if key in ("lexical_features", "task_ids"):
            assert got[key] == ref[key]
        else:
            assert [windows[0] for windows in got[key]] == ref[key], key


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prefix", [None, "tokens", "text"])
@pytest.mark.parametrize("k,stride", [(3, 0), (4, 6), (50, 7)])
def test_windows_cover_the_text_with_the_stated_overlap(encoders, family, prefix, k, stride):
    """Each window: the special tokens, the prefix of the whole text, then text tokens [j (T - S), j (T - S) + T);
    min(K, 1 + ceil((n - T) / (T - S))) windows; the text after the K-th window dropped."""
    proc = _processor(encoders[family], prefix, long_text={"max_chunks": k, "stride": stride})
    tok = proc.tokenizer
    window = 20
    max_length = _budget(proc, LONG, "llm7", window)
    enc = proc(LONG, task="llm7", max_length=max_length)
    prefix_text = proc.make_prefix(proc.lexicon.featurize([LONG])[0], "llm7")
    joined = tok(f"{prefix_text} {LONG}" if prefix else LONG, add_special_tokens=False)["input_ids"]
    n_prefix = len(tok(prefix_text, add_special_tokens=False)["input_ids"]) if prefix else 0
    prefix_ids, text_ids = joined[:n_prefix], joined[n_prefix:]
    expected = min(k, 1 + math.ceil(max(0, len(text_ids) - window) / (window - stride)))
    assert enc["num_windows"] == len(enc["input_ids"]) == expected
    first, last = tok("a")["input_ids"][0], tok("a")["input_ids"][-1]
    for j, ids in enumerate(enc["input_ids"]):
        assert ids[0] == first and ids[-1] == last and len(ids) <= max_length
        body = ids[1:-1]
        assert body[:n_prefix] == prefix_ids  # the same prefix on every window
        start = j * (window - stride)
        assert body[n_prefix:] == text_ids[start : start + window]
        assert enc["attention_mask"][j] == [1] * len(ids)
    covered = (expected - 1) * (window - stride) + window
    assert (covered >= len(text_ids)) == (expected < k or covered >= len(text_ids))


def test_window_tensors_batch_every_window_with_num_windows(encoders):
    proc = _processor(encoders["bert"], "tokens", long_text={"max_chunks": 3, "stride": 2}, max_length=40)
    lists = proc(DOCS, task=DOC_TASKS)
    tensors = proc(DOCS, task=DOC_TASKS, return_tensors="pt")
    assert tensors["num_windows"].tolist() == lists["num_windows"] == [1, 3, 2, 2]
    assert tensors["input_ids"].shape[0] == sum(lists["num_windows"]) and tensors["input_ids"].shape[1] <= 40
    flat = [w for windows in lists["input_ids"] for w in windows]
    for row, ids in zip(tensors["input_ids"].tolist(), flat):
        assert row[: len(ids)] == ids and set(row[len(ids) :]) <= {proc.tokenizer.pad_token_id}
    assert tensors["lexical_features"].shape == (4, proc.lexicon.num_features)
    assert tensors["task_ids"].tolist() == [0, 1, 1, 0]
    assert "num_windows" in proc.model_input_names
    # the collator flattens rows of windows the same way
    rows = [{k: lists[k][i] for k in lists} for i in range(4)]
    batch = SurgeDataCollator(proc.tokenizer)(rows)
    assert torch.equal(batch["input_ids"], tensors["input_ids"])
    assert torch.equal(batch["num_windows"], tensors["num_windows"])


def test_long_text_settings_survive_save_and_load(encoders, tmp_path):
    proc = _processor(
        encoders["bert"], "tokens", long_text={"llm7": {"max_chunks": 3, "stride": 2}}, max_length=40
    )
    proc.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["long_text"] == {"llm7": {"max_chunks": 3, "stride": 2}}
    loaded = SurgeProcessor.from_pretrained(tmp_path)
    assert loaded.long_text == proc.long_text and loaded.windowed
    assert dict(loaded(DOCS, task=DOC_TASKS)) == dict(proc(DOCS, task=DOC_TASKS))
    # sst2 has no long_text: its long text is truncated to one window
    assert loaded(LONG, task="sst2")["num_windows"] == 1 and loaded(LONG, task="llm7")["num_windows"] == 3


def test_bad_long_text_settings_are_refused_with_their_names(encoders):
    path = encoders["bert"]
    with pytest.raises(ValueError, match="pool is the model's setting"):
        _processor(path, "tokens", long_text={"max_chunks": 2, "pool": "max"})
    with pytest.raises(ValueError, match="max_chunks of task 'sst2' must be a positive integer, got 0"):
        _processor(path, "tokens", long_text={"max_chunks": 0})
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['nope'\]"):
        _processor(path, "tokens", long_text={"nope": {"max_chunks": 2}})
    with pytest.raises(ValueError, match="not supported for the sentence-pair task 'llm7'"):
        _processor(path, "tokens", pair_tasks=["llm7"], long_text={"max_chunks": 2})
    proc = _processor(path, "tokens", long_text={"max_chunks": 2, "stride": 21}, max_length=40)
    with pytest.raises(ValueError, match="stride 21 of task 'sst2' must be smaller than the 21 text tokens"):
        proc(LONG, task="sst2")
    with pytest.raises(ValueError, match="need truncation=True"):
        proc(LONG, task="sst2", truncation=False)


# ----------------------------------------------------------------------------------------------- model


def test_pooling_matches_a_hand_loop():
    torch.manual_seed(0)
    num_windows = torch.tensor([3, 1, 4, 2, 1])
    states = torch.randn(int(num_windows.sum()), 7)
    ends = num_windows.cumsum(0).tolist()
    spans = [(e - n, e) for e, n in zip(ends, num_windows.tolist())]
    expected = {
        "mean": torch.stack([states[s:e].mean(0) for s, e in spans]),
        "max": torch.stack([states[s:e].max(0).values for s, e in spans]),
        "first": torch.stack([states[s] for s, _ in spans]),
    }
    for pool, ref in expected.items():
        got = pool_windows(states, num_windows, pool)
        assert got.shape == (5, 7)
        if pool == "mean":
            torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
        else:
            assert torch.equal(got, ref), pool


@pytest.mark.parametrize("family", [*FAMILIES, "electra"])
def test_one_window_per_example_gives_bitwise_the_truncated_logits(encoders, family):
    model, _ = fitted_model(encoders[family], prefix="tokens")
    plain = _processor(encoders[family], "tokens", max_length=40)
    windowed = _processor(encoders[family], "tokens", max_length=40, long_text={"max_chunks": 4, "stride": 3})
    model.resize_token_embeddings(len(plain.tokenizer))
    short = [t for t in TEXTS if windowed(t, task="sst2")["num_windows"] == 1]
    assert len(short) >= 4
    with torch.no_grad():
        ref = model(**plain(short, task="sst2", return_tensors="pt", padding=True)).logits
        enc = windowed(short, task="sst2", return_tensors="pt", padding=True)
        assert enc["num_windows"].tolist() == [1] * len(short)
        assert torch.equal(model(**enc).logits, ref)
        # a long text: its windowed logits differ from truncation's (the other windows count)
        long_ref = model(**plain([LONG], task="sst2", return_tensors="pt")).logits
        long_got = model(**windowed([LONG], task="sst2", return_tensors="pt")).logits
        assert not torch.equal(long_got, long_ref)


def test_windows_are_encoded_together_and_pooled_by_their_tasks_pool(encoders):
    """One encoder call for all windows of a batch; logits equal a hand loop that encodes each example's windows
    alone and pools them with its task's pool (sst2: max, llm7: first)."""
    model, _ = fitted_model(encoders["bert"])
    model.config.long_text_pool = {"sst2": "max", "llm7": "first"}
    proc = _processor(encoders["bert"], None, max_length=24, long_text={"max_chunks": 3, "stride": 4})
    enc = proc(DOCS, task=DOC_TASKS, return_tensors="pt")
    calls = []
    hook = model.surge.encoder.register_forward_hook(lambda m, a, kw, out: calls.append(1), with_kwargs=True)
    with torch.no_grad():
        got = model(**enc).logits
    hook.remove()
    assert len(calls) == 1
    rows = []
    with torch.no_grad():
        for i, task in enumerate(DOC_TASKS):
            windows = proc(DOCS[i], task=task)
            states = torch.stack(
                [
                    model.surge.encoder(
                        input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])
                    ).last_hidden_state[0, 0]
                    for ids, types in zip(windows["input_ids"], windows["token_type_ids"])
                ]
            )
            h = states.max(0).values if task == "sst2" else states[0]
            t = torch.tensor([model.config.task_id(task)])
            z, _ = model.surge.fuse(h[None], enc["lexical_features"][i : i + 1], t)
            rows.append(model._route_heads(z, t)[0])
    torch.testing.assert_close(got, torch.stack(rows), rtol=1e-5, atol=1e-5)


def test_bad_num_windows_are_refused(encoders):
    model, proc = fitted_model(encoders["bert"])
    enc = dict(proc(TEXTS[:3], task="sst2", return_tensors="pt", padding=True))
    with pytest.raises(ValueError, match="sums to 4 windows but the token inputs have 3 rows"):
        model(**enc, num_windows=torch.tensor([1, 1, 2]))
    with pytest.raises(ValueError, match=r"must be >= 1 for every example, got \[3, 0\]"):
        model(**{**enc, "lexical_features": enc["lexical_features"][:2], "task_ids": enc["task_ids"][:2]},
              num_windows=torch.tensor([3, 0]))  # fmt: skip


def test_torch_export_of_windows_matches_eager(encoders):
    model, _ = fitted_model(encoders["bert"])
    model.config.long_text_pool = {"llm7": "max"}
    proc = _processor(encoders["bert"], None, max_length=24, long_text={"max_chunks": 3, "stride": 4})
    enc = dict(proc(DOCS, task=DOC_TASKS, return_tensors="pt"))
    batch, windows, length = (
        torch.export.Dim("batch"),
        torch.export.Dim("windows"),
        torch.export.Dim("length", max=160),
    )
    dims = {k: {0: windows, 1: length} for k in ("input_ids", "attention_mask", "token_type_ids")}
    dims.update(lexical_features={0: batch}, task_ids={0: batch}, num_windows={0: batch})
    program = torch.export.export(model, (), kwargs=enc, dynamic_shapes={k: dims[k] for k in enc})
    other = dict(proc([LONG, "ok", TEXTS[1]], task=["sst2", "llm7", "llm7"], return_tensors="pt"))
    with torch.no_grad():
        for inputs in (enc, other):
            torch.testing.assert_close(program.module()(**inputs).logits, model(**inputs).logits)


# ----------------------------------------------------------------------------------------------- training and serving


def _run_config(tmp: Path, encoder: Path, name: str, **overrides) -> RunConfig:
    long_text = {"max_chunks": 3, "stride": 2, "pool": "max", "tasks": {"register": {"pool": "first"}}}
    return quickstart_config(
        tmp, encoder, name, **{"prefix_style": "tokens", "long_text": long_text, **overrides}
    )


@pytest.fixture(scope="module")
def windowed_run(tmp_path_factory, tiny_bert_with_tokenizer) -> Path:
    return train_run(_run_config(tmp_path_factory.mktemp("long_run"), tiny_bert_with_tokenizer, "run"))


def test_a_trained_windowed_run_saves_its_settings_and_reproduces_its_predictions(windowed_run):
    from surgellm_hf.evaluation import load_run
    from surgellm_hf.inference import load_run_model, predict_texts

    saved = json.loads((windowed_run / "processor_config.json").read_text())
    assert saved["long_text"] == {t: {"max_chunks": 3, "stride": 2} for t in ("reviews", "register")}
    config = json.loads((windowed_run / "config.json").read_text())
    assert config["long_text_pool"] == [["reviews", "max"], ["register", "first"]]
    record = load_run(windowed_run)
    model, processor = load_run_model(windowed_run)
    rows = [
        json.loads(x) for x in (QUICKSTART_DATA / "register" / "validation.jsonl").read_text().splitlines()
    ]
    by_id = {r["id"]: r["text"] for r in rows}
    pred = record.predictions["register"]["validation"]
    texts = [by_id[i] for i in pred["id"]]
    assert max(processor(texts, task="register")["num_windows"]) > 1  # the run really read several windows
    records = predict_texts(model, processor, texts, tasks="register")
    assert [r["label"] for r in records] == list(pred["y_pred"])
    np.testing.assert_allclose([list(r["scores"].values()) for r in records], pred["score"], atol=1e-5)


def test_streaming_pipeline_and_onnx_read_windows_like_the_model(windowed_run, tmp_path):
    from transformers import pipeline

    from surgellm_hf.serving.export import export_run
    from surgellm_hf.serving.runtime import OnnxSurgeClassifier
    from surgellm_hf.serving.streaming import TorchPredictor

    torch_records = TorchPredictor.from_pretrained(windowed_run).predict(DOCS, task="reviews", batch_size=3)
    clf = pipeline("text-classification", model=str(windowed_run), trust_remote_code=True)
    for batch_size in (1, 3):
        scores = clf(DOCS, task="reviews", top_k=None, batch_size=batch_size)
        for rec, ranked in zip(torch_records, scores):
            got = {d["label"]: d["score"] for d in ranked}
            assert got == pytest.approx(rec["scores"], abs=1e-5)
    folder = export_run(windowed_run, tmp_path / "onnx")  # refuses a graph that disagrees with eager
    config = json.loads((folder / "serving_config.json").read_text())
    assert "num_windows" in config["inputs"] and config["long_text"]["reviews"]["max_chunks"] == 3
    assert config["parity"]["same_predictions"] and config["parity"]["texts"] == 5  # 4 probes + a long one
    onnx_records = OnnxSurgeClassifier.from_pretrained(folder).predict(DOCS, task="reviews")
    for a, b in zip(onnx_records, torch_records):
        assert a["label"] == b["label"] and a["scores"] == pytest.approx(b["scores"], abs=1e-4)
    with pytest.warns(UserWarning, match="one encoder pass per task"):  # the compact prefix names the task
        every = OnnxSurgeClassifier.from_pretrained(folder).predict(DOCS, task="all")
    assert every[1]["tasks"]["reviews"]["scores"] == pytest.approx(torch_records[1]["scores"], abs=1e-4)


def test_frozen_cache_of_window_states_predicts_like_the_uncached_run(tmp_path, tiny_bert_with_tokenizer):
    """Frozen encoder, text prefix (86 tokens) at max_length 96: 8 text tokens a window. The cache holds one state
    per window (the first shared with truncation's input) and the model pools them as it pools encoded windows."""
    from surgellm_hf.evaluation import load_run

    frozen = {"freeze_encoder": True, "prefix_style": "text", "max_length": 96, "epochs": 2}
    cached = train_run(
        _run_config(
            tmp_path, tiny_bert_with_tokenizer, "cached", encoder_cache_dir=str(tmp_path / "c"), **frozen
        )
    )
    plain = train_run(
        _run_config(tmp_path, tiny_bert_with_tokenizer, "plain", cache_encoder_outputs=False, **frozen)
    )
    a, b = load_run(cached), load_run(plain)
    assert a.extra["training"]["cached_encoder_outputs"] and not b.extra["training"]["cached_encoder_outputs"]
    for task in ("reviews", "register"):
        for split in ("validation", "test"):
            x, y = a.predictions[task][split], b.predictions[task][split]
            np.testing.assert_allclose(np.asarray(x["score"]), np.asarray(y["score"]), atol=1e-4)
            assert list(x["y_pred"]) == list(y["y_pred"])
    # the disk cache holds one state per distinct window of the run's rows, not one per example
    from surgellm_hf.data.encoding import encode_split
    from surgellm_hf.data.loading import load_run_data

    with np.load(next((tmp_path / "c").glob("*.npz"))) as f:
        n_states = len(f["keys"])
    processor = SurgeProcessor.from_pretrained(cached)
    data = load_run_data(_run_config(tmp_path, tiny_bert_with_tokenizer, "x").data)
    windows, examples = set(), 0
    for split in ("train", "validation", "test"):
        ds = encode_split(data, processor, split)
        examples += len(ds)
        for ids, types in zip(ds["input_ids"], ds["token_type_ids"]):
            windows |= {(tuple(i), tuple(t)) for i, t in zip(ids, types)}
    assert n_states == len(windows) > examples


# ----------------------------------------------------------------------------------------------- run config


def test_run_config_long_text_is_normalized_checked_and_compared():
    from surgellm_hf.training.run_config import comparable_settings, long_text_settings

    base = {"data": {"folder": "x"}}
    cfg = RunConfig(**base, long_text={"max_chunks": 4, "tasks": {"D1": {"max_chunks": 1}}})
    assert cfg.long_text == {"max_chunks": 4, "stride": 0, "pool": "mean", "tasks": {"D1": {"max_chunks": 1}}}
    assert long_text_settings(cfg.long_text, ["D1", "D3"]) == {
        "D1": {"max_chunks": 1, "stride": 0, "pool": "mean"},
        "D3": {"max_chunks": 4, "stride": 0, "pool": "mean"},
    }
    with pytest.raises(ValueError, match=r"`long_text.tasks` names unknown task\(s\) \['D9'\]"):
        long_text_settings(RunConfig(**base, long_text={"tasks": {"D9": {}}}).long_text, ["D1"])
    with pytest.raises(ValueError, match="`long_text.pool` must be one of"):
        RunConfig(**base, long_text={"max_chunks": 2, "pool": "sum"})
    with pytest.raises(ValueError, match=r"Unknown `long_text.tasks.D1` key\(s\) \['chunks'\]"):
        RunConfig(**base, long_text={"tasks": {"D1": {"chunks": 2}}})
    # max_chunks 1 everywhere is truncation: a run folder of either may be reused for the other
    one = comparable_settings(RunConfig(**base, long_text={"max_chunks": 1, "pool": "max"}))
    assert one == comparable_settings(RunConfig(**base))
    assert comparable_settings(cfg) != comparable_settings(RunConfig(**base))
