"""Frozen-encoder fast path (cached first-token states) and the separate learning rate of the modules and heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from surgellm_hf.data.data_collator import SurgeDataCollator
from surgellm_hf.training import RunConfig, train_run
from tests._helpers import QUICKSTART_DATA


def _config(tmp_path: Path, encoder: Path, name: str, **overrides) -> RunConfig:
    values = {
        "encoder": str(encoder),
        "data": {
            "folder": str(QUICKSTART_DATA),
            "tasks": ["reviews", "register"],
            "max_rows": {"train": 40, "validation": 16, "test": 16},
        },
        "variant": "IWN",
        "prefix_style": "text",
        "freeze_encoder": True,
        "epochs": 2,
        "learning_rate": 1e-3,
        "batch_size": 8,
        "max_length": 128,
        "disable_tqdm": True,
        "output_dir": str(tmp_path / name),
    }
    values.update(overrides)
    return RunConfig(**values)


@pytest.fixture(scope="module")
def cached_and_plain_runs(tmp_path_factory, tiny_bert_with_tokenizer) -> tuple[Path, Path]:
    """The same frozen-encoder run with and without the cache (the cached one through an on-disk cache)."""
    tmp = tmp_path_factory.mktemp("cache")
    cached = train_run(
        _config(tmp, tiny_bert_with_tokenizer, "cached", encoder_cache_dir=str(tmp / "states"))
    )
    plain = train_run(_config(tmp, tiny_bert_with_tokenizer, "plain", cache_encoder_outputs=False))
    return cached, plain


def test_cached_and_uncached_frozen_runs_predict_the_same(cached_and_plain_runs):
    """Cached and uncached frozen-encoder runs: same metrics and per-example scores (float tolerance)."""
    from surgellm_hf.evaluation import load_run

    cached, plain = (load_run(p) for p in cached_and_plain_runs)
    assert cached.extra["training"]["cached_encoder_outputs"] is True
    assert plain.extra["training"]["cached_encoder_outputs"] is False
    for task in ("reviews", "register"):
        for split in ("validation", "test"):
            a, b = cached.predictions[task][split], plain.predictions[task][split]
            np.testing.assert_allclose(np.asarray(a["score"]), np.asarray(b["score"]), atol=1e-4)
            assert list(a["y_pred"]) == list(b["y_pred"])
            np.testing.assert_allclose(np.asarray(a["gate"]), np.asarray(b["gate"]), atol=1e-4)
    assert cached.avg_macro_f1 == pytest.approx(plain.avg_macro_f1)
    assert len(list(cached_and_plain_runs[0].parent.joinpath("states").glob("*.npz"))) == 1


def test_cached_run_saves_a_normal_full_model(cached_and_plain_runs):
    """The saved model of a cached run reloads as a full model (encoder included) and predicts its saved scores."""
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor
    from surgellm_hf.evaluation import load_run
    from surgellm_hf.evaluation.predictions import predict_split

    run_dir = cached_and_plain_runs[0]
    model = SurgeForSequenceClassification.from_pretrained(run_dir)
    processor = SurgeProcessor.from_pretrained(run_dir)
    assert all(p.requires_grad for p in model.surge.encoder.parameters())  # a normal model, nothing frozen
    record = load_run(run_dir)
    import datasets

    rows = [
        __import__("json").loads(line)
        for line in (QUICKSTART_DATA / "reviews" / "validation.jsonl").read_text().splitlines()
    ]
    ids = set(record.predictions["reviews"]["validation"]["id"])
    rows = [r for r in rows if r["id"] in ids]
    enc = dict(processor([r["text"] for r in rows], task="reviews"))
    enc["labels"] = [r["label"] for r in rows]
    pred = predict_split(model, datasets.Dataset.from_dict(enc), SurgeDataCollator(processor.tokenizer))
    saved = dict(
        zip(
            record.predictions["reviews"]["validation"]["id"],
            record.predictions["reviews"]["validation"]["score"],
            strict=True,
        )
    )
    probs = torch.softmax(torch.tensor(pred["logits"][:, :2]), dim=-1).numpy()
    np.testing.assert_allclose(probs, np.asarray([saved[r["id"]] for r in rows]), atol=1e-4)


def test_states_come_from_the_disk_cache_the_second_time(tiny_bert_with_tokenizer, tmp_path):
    """A second pass over the same inputs computes nothing; another encoder gets another cache file."""
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor
    from surgellm_hf.training import encoder_cache as ec

    model = SurgeForSequenceClassification.from_encoder_pretrained(
        str(tiny_bert_with_tokenizer), tasks={"a": 2}
    ).freeze_encoder()
    processor = SurgeProcessor.from_encoder_pretrained(
        str(tiny_bert_with_tokenizer), tasks=["a"], max_length=32, prefix=None
    )
    import datasets

    enc = dict(processor(["one text", "another, longer text here", "one text"], task="a"))
    enc["labels"] = [0, 1, 0]
    ds = datasets.Dataset.from_dict(enc)
    collator = SurgeDataCollator(processor.tokenizer)
    cache = ec.EncoderStateCache(tmp_path, ec.encoder_fingerprint(model))
    first = ec.cache_first_token_states(model, ds, collator, cache=cache)
    assert "input_ids" not in first.column_names and "first_token_state" in first.column_names
    calls = []
    original = ec.compute_first_token_states
    ec.compute_first_token_states = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        again = ec.cache_first_token_states(
            model, ds, collator, cache=ec.EncoderStateCache(tmp_path, ec.encoder_fingerprint(model))
        )
    finally:
        ec.compute_first_token_states = original
    assert calls == []
    np.testing.assert_array_equal(
        np.asarray(first["first_token_state"]), np.asarray(again["first_token_state"])
    )
    with torch.no_grad():
        model.surge.encoder.embeddings.word_embeddings.weight.add_(0.01)
    assert ec.encoder_fingerprint(model) != cache.path.stem.rsplit("-", 1)[1]
    batch = collator([{k: first[0][k] for k in first.column_names}])
    assert set(batch) == {"first_token_state", "lexical_features", "task_ids", "labels"}
    assert batch["first_token_state"].shape == (1, model.config.hidden_size)


def test_frozen_encoder_with_the_compact_prefix_is_refused(tmp_path):
    """New prefix token embeddings never train in a frozen encoder: refused with the fix named."""
    with pytest.raises(ValueError, match="prefix_style: text"):
        RunConfig(data={"folder": "x"}, variant="IWN", prefix_style="tokens", freeze_encoder=True)
    RunConfig(data={"folder": "x"}, variant="baseline", prefix_style="tokens", freeze_encoder=True)
    with pytest.raises(ValueError, match="module_lr_scale"):
        RunConfig(data={"folder": "x"}, module_lr_scale=0)


def test_module_lr_scale_gives_two_learning_rates_and_keeps_the_decay_split(
    tiny_bert_with_tokenizer, tmp_path
):
    """Encoder groups at learning_rate, modules and heads at x module_lr_scale; biases and LayerNorms undecayed."""
    from transformers import TrainingArguments

    from surgellm_hf import SurgeForSequenceClassification
    from surgellm_hf.training.trainer import SurgeTrainer, is_encoder_parameter

    model = SurgeForSequenceClassification.from_encoder_pretrained(
        str(tiny_bert_with_tokenizer), tasks={"a": 2, "b": 3}, use_gate=True, norm="iwn", num_features=16
    )
    args = TrainingArguments(
        output_dir=str(tmp_path), learning_rate=2e-5, weight_decay=0.01, use_cpu=True, report_to=[]
    )
    trainer = SurgeTrainer(model=model, args=args, module_lr_scale=50.0)
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    decay = set(trainer.get_decay_parameter_names(model))
    seen = set()
    for group in optimizer.param_groups:
        for p in group["params"]:
            n = names[id(p)]
            seen.add(n)
            assert group["lr"] == pytest.approx(2e-5 if is_encoder_parameter(n) else 1e-3), n
            assert group["weight_decay"] == (0.01 if n in decay else 0.0), n
    assert seen == {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(not is_encoder_parameter(n) and "bias" in n for n in seen)
    plain = SurgeTrainer(model=model, args=args).create_optimizer()
    assert {g["lr"] for g in plain.param_groups} == {2e-5}


def test_module_lr_scale_default_is_100_with_a_frozen_encoder_and_1_otherwise():
    """The measured default for frozen-encoder training; the paper's single rate for a full fine-tune."""
    assert RunConfig(data={"folder": "x"}).module_lr_multiplier == 1.0
    frozen = RunConfig(data={"folder": "x"}, freeze_encoder=True, prefix_style="text")
    assert frozen.module_lr_multiplier == 100.0
    assert RunConfig(data={"folder": "x"}, module_lr_scale=7).module_lr_multiplier == 7.0


def _some_states(count: int, offset: float = 0.0) -> dict[bytes, np.ndarray]:
    return {
        bytes([i]) * 16: np.arange(4, dtype=np.float32) + i + offset for i in range(count)
    }  # keys ending in zero bytes too


@pytest.mark.parametrize("damage", ["cut short", "garbled", "wrong checksum", "older format", "not a zip"])
def test_a_damaged_cache_file_is_ignored_with_a_warning_and_rebuilt(tmp_path, caplog, damage):
    """A cache file that is cut short, garbled, fails its checksum or has none is never fatal: it is treated as
    empty (a warning says why) and the next save replaces it with a valid one."""
    from surgellm_hf.training.encoder_cache import EncoderStateCache

    cache = EncoderStateCache(tmp_path, "fp")
    for key, state in _some_states(20).items():
        cache.put(key, state)
    cache.save()
    path = cache.path
    data = path.read_bytes()
    keys = np.frombuffer(b"".join(_some_states(20)), dtype=np.uint8).reshape(20, 16)
    states = np.stack(list(_some_states(20).values()))
    if damage == "cut short":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbled":
        middle = len(data) // 2
        path.write_bytes(
            data[:middle] + bytes(255 - b for b in data[middle : middle + 64]) + data[middle + 64 :]
        )
    elif damage == "wrong checksum":
        with open(path, "wb") as f:
            np.savez(f, keys=keys, states=states, sha256=np.array("0" * 64))
    elif damage == "older format":
        with open(path, "wb") as f:
            np.savez(f, keys=np.array(list(_some_states(20)), dtype="S16"), states=states)
    else:
        path.write_bytes(b"not an npz file")
    with caplog.at_level("WARNING"):
        damaged = EncoderStateCache(tmp_path, "fp")
    assert f"Ignoring the encoder cache file {path}" in caplog.text and "it is rebuilt" in caplog.text
    assert damaged.get(next(iter(_some_states(1)))) is None
    for key, state in _some_states(20, offset=0.5).items():
        damaged.put(key, state)
    damaged.save()
    caplog.clear()
    with caplog.at_level("WARNING"):
        rebuilt = EncoderStateCache(tmp_path, "fp")
    assert "Ignoring" not in caplog.text
    for key, state in _some_states(20, offset=0.5).items():
        np.testing.assert_array_equal(rebuilt.get(key), state)


def test_only_the_main_process_of_a_distributed_run_writes_the_cache(tmp_path, monkeypatch):
    """Under DDP every rank computes the states it lacks, but only rank 0 writes the file (ranks saving at the
    same moment would race)."""
    from surgellm_hf.training.encoder_cache import EncoderStateCache

    monkeypatch.setenv("RANK", "1")
    cache = EncoderStateCache(tmp_path, "fp")
    for key, state in _some_states(3).items():
        cache.put(key, state)
    cache.save()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RANK", "0")
    cache.save()
    assert len(EncoderStateCache(tmp_path, "fp")) == 3
