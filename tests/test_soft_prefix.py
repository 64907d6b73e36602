"""The soft prefix (`prefix_style: soft`): k virtual token embeddings from the task prompt and the projected
normalized features, inserted after the first token for every encoder family; init, save/load, remote code,
torch.export, ONNX, training (full, frozen, LoRA) and the refusals."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor
from surgellm_hf.serving.runtime import input_depends_on_task
from surgellm_hf.training import RunConfig, train_run
from tests._family_encoders import FAMILIES, family_encoder, quickstart_config
from tests._helpers import QUICKSTART_DATA, run_isolated
from tests._serving_utils import TASKS, TEXTS

BATCH_TASKS = ["sst2", "llm7", "sst2", "llm7"]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory, minilm_path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("soft_prefix_encoders")
    return {f: family_encoder(f, root / f, minilm_path) for f in FAMILIES}


def soft_model(path: Path, k: int = 2, norm: str = "iwn", use_gate: bool = True, max_length: int = 40):
    """(model, processor) with a soft prefix of k tokens, fitted statistics and prompt weights large enough to
    move the logits."""
    torch.manual_seed(0)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        path, tasks=TASKS, norm=norm, use_gate=use_gate, use_task_embedding=use_gate, soft_prefix_length=k
    )
    processor = SurgeProcessor.from_encoder_pretrained(
        path, tasks=list(TASKS), prefix="soft", soft_prefix_length=k, max_length=max_length
    )
    if norm != "none":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant feature columns on eight texts
            model.fit_feature_normalizer(
                processor.lexicon.featurize(TEXTS), [0, 1] * 4, ["sst2"] * 4 + ["llm7"] * 4
            )
    with torch.no_grad():
        model.surge.soft_prefix.task_prompt.weight.normal_(0, 1.0)
        model.surge.soft_prefix.feature_prompt.weight.normal_(0, 0.5)
        for head in model.heads:
            head[-1].weight.mul_(40.0)
    return model.eval(), processor


def _capture_encoder_inputs(model) -> tuple[list[dict], object]:
    seen: list[dict] = []
    hook = model.surge.encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(dict(kwargs)), with_kwargs=True
    )
    return seen, hook


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("k", [1, 2])
def test_virtual_tokens_reach_the_encoder_after_the_first_token(encoders, family, k):
    """The encoder gets input embeddings: the first token's, then k virtual tokens (E_p[t], W s + b; summed for
    k = 1, s normalized by the task's statistics) with mask 1 and the first token's segment id, then the rest of
    the tokens as they were."""
    model, processor = soft_model(encoders[family], k)
    enc = processor(TEXTS[:4], task=BATCH_TASKS, return_tensors="pt", padding=True)
    seen, hook = _capture_encoder_inputs(model)
    with torch.no_grad():
        model(**enc)
    hook.remove()
    (kwargs,) = seen
    assert kwargs.get("input_ids") is None
    embeds, mask = kwargs["inputs_embeds"], kwargs["attention_mask"]
    n, length = enc["input_ids"].shape
    assert embeds.shape == (n, length + k, model.get_input_embeddings().embedding_dim)
    words = model.get_input_embeddings()(enc["input_ids"])
    # the virtual tokens, computed here from the model's buffers and weights
    tids = enc["task_ids"]
    stats = model.surge.normalizer
    norm = (enc["lexical_features"] - stats.mean[tids]) / (stats.std[tids] + model.config.norm_eps)
    prompt = model.surge.soft_prefix
    task_vec = prompt.task_prompt.weight[tids]
    feat_vec = norm @ prompt.feature_prompt.weight.T + prompt.feature_prompt.bias
    virtual = (task_vec + feat_vec)[:, None] if k == 1 else torch.stack([task_vec, feat_vec], dim=1)
    with torch.no_grad():
        assert torch.equal(embeds[:, 0], words[:, 0])
        torch.testing.assert_close(embeds[:, 1 : 1 + k], virtual, rtol=1e-5, atol=1e-5)
        assert torch.equal(embeds[:, 1 + k :], words[:, 1:])
    assert torch.equal(mask[:, 1 : 1 + k], torch.ones(n, k, dtype=mask.dtype))
    assert torch.equal(mask[:, :1], enc["attention_mask"][:, :1])
    assert torch.equal(mask[:, 1 + k :], enc["attention_mask"][:, 1:])
    if kwargs.get("token_type_ids") is not None:
        types = kwargs["token_type_ids"]
        assert torch.equal(types[:, 1 : 1 + k], enc["token_type_ids"][:, :1].expand(n, k))
        assert torch.equal(types[:, 1 + k :], enc["token_type_ids"][:, 1:])


@pytest.mark.parametrize("family", FAMILIES)
def test_embedding_inputs_keep_the_positions_of_the_token_path(encoders, family):
    """Right-padded batch: the encoder given input embeddings (as the soft prefix gives them) computes the real
    tokens' states exactly as from input ids, so positions (RoBERTa's padding-offset ones included) and masks
    agree; DeBERTa-v2's relative positions need nothing more."""
    model, processor = soft_model(encoders[family], 2)
    enc = processor(TEXTS, task="sst2", return_tensors="pt", padding=True)
    encoder = model.surge.encoder
    kwargs = {"attention_mask": enc["attention_mask"]}
    with torch.no_grad():
        from_ids = encoder(input_ids=enc["input_ids"], **kwargs).last_hidden_state
        from_embeds = encoder(inputs_embeds=encoder.get_input_embeddings()(enc["input_ids"]), **kwargs)
    real = enc["attention_mask"].bool()
    torch.testing.assert_close(from_embeds.last_hidden_state[real], from_ids[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_and_batch_neighbours_do_not_change_an_examples_logits(encoders, family):
    model, processor = soft_model(encoders[family], 2)
    with torch.no_grad():
        batch = model(**processor(TEXTS[:4], task=BATCH_TASKS, return_tensors="pt", padding=True)).logits
        alone = torch.cat(
            [
                model(**processor([t], task=[task], return_tensors="pt")).logits
                for t, task in zip(TEXTS, BATCH_TASKS)
            ]
        )
    torch.testing.assert_close(batch, alone, rtol=1e-4, atol=1e-5)


def test_the_soft_prefix_carries_task_and_features_into_the_encoder(encoders):
    """Without the gate and without normalization (variant G's switches) the features and the task reach the
    model only through the soft prefix: they change the logits, and the loss trains both prompts."""
    model, processor = soft_model(encoders["bert"], 2, norm="none", use_gate=False)
    enc = dict(processor(TEXTS[:4], task=BATCH_TASKS, return_tensors="pt", padding=True))
    with torch.no_grad():
        base = model(**enc).logits
        other = model(**{**enc, "lexical_features": enc["lexical_features"] + 5}).logits
        swapped = model(**{**enc, "task_ids": 1 - enc["task_ids"]}).logits
    assert not torch.allclose(base[:, :2], other[:, :2]) and not torch.allclose(base[:, :2], swapped[:, :2])
    model.train()
    model(**enc, labels=torch.tensor([0, 1, 1, 0])).loss.backward()
    prompt = model.surge.soft_prefix
    assert prompt.task_prompt.weight.grad.abs().sum(dim=1).gt(0).tolist() == [True, True]
    assert prompt.feature_prompt.weight.grad.abs().sum() > 0
    assert model.trainable_parameters_report()["soft_prefix"]["trainable"] == 2 * 32 + 16 * 32 + 32


def test_the_processor_reserves_the_virtual_tokens_in_max_length(encoders):
    model, processor = soft_model(encoders["bert"], 2, max_length=24)
    long = " ".join(TEXTS)
    enc = processor([long, "ok"], task="sst2", return_tensors="pt", padding="max_length")
    assert enc["input_ids"].shape == (2, 22)
    assert processor.prefix_length(long, task="sst2") == 2 and processor.reserved_tokens == 2
    assert (
        processor(long, task="sst2")["input_ids"]
        == processor.tokenizer(long, truncation=True, max_length=22)["input_ids"]
    )  # no text prefix: the text itself, cut k tokens earlier
    seen, hook = _capture_encoder_inputs(model)
    with torch.no_grad():
        model(**enc)
    hook.remove()
    assert seen[0]["inputs_embeds"].shape[1] == 24  # max_length after the insertion
    other = SurgeProcessor.from_encoder_pretrained(
        encoders["bert"], tasks=list(TASKS), prefix="soft", soft_prefix_length=1
    )
    with pytest.raises(ValueError, match="soft prefix of 2 virtual tokens but the processor reserves 1"):
        other.check_model(model)
    with pytest.raises(ValueError, match="leaves no text in max_length=3"):
        processor("text", task="sst2", max_length=3)


def test_new_soft_prefix_weights_are_initialised_on_load(encoders, tmp_path):
    """A checkpoint without soft-prefix weights loaded with soft_prefix_length=2: the new weights get the normal
    init (transformers 5 would leave uninitialised memory otherwise)."""
    plain = SurgeForSequenceClassification.from_encoder_pretrained(encoders["bert"], tasks=TASKS, norm="none")
    plain.save_pretrained(tmp_path)
    loaded = SurgeForSequenceClassification.from_pretrained(tmp_path, soft_prefix_length=2)
    prompt = loaded.surge.soft_prefix
    for weight in (prompt.task_prompt.weight, prompt.feature_prompt.weight):
        assert torch.isfinite(weight).all() and 0.01 < float(weight.detach().std()) < 0.03
    assert torch.equal(prompt.feature_prompt.bias, torch.zeros_like(prompt.feature_prompt.bias))
    assert torch.equal(loaded.heads[0][1].weight, plain.heads[0][1].weight)


def test_save_load_and_remote_code_give_the_same_logits(encoders, tmp_path):
    model, processor = soft_model(encoders["roberta"], 2)
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["soft_prefix_length"] == 2
    assert json.loads((folder / "processor_config.json").read_text())["soft_prefix_length"] == 2
    with torch.no_grad():
        expected = model(**processor(TEXTS, task="llm7", return_tensors="pt", padding=True)).logits
        reloaded = SurgeForSequenceClassification.from_pretrained(folder).eval()
        again = SurgeProcessor.from_pretrained(folder)
        assert torch.equal(
            reloaded(**again(TEXTS, task="llm7", return_tensors="pt", padding=True)).logits, expected
        )
    result = run_isolated(
        f"""
        import json, torch
        from transformers import AutoModelForSequenceClassification, AutoProcessor
        path = {str(folder)!r}
        model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        with torch.no_grad():
            logits = model(**processor({TEXTS!r}, task="llm7", return_tensors="pt", padding=True)).logits
        print(json.dumps({{"logits": logits.tolist(), "module": type(model).__module__}}))
        """,
        tmp_path,
    )
    assert result["module"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, rtol=1e-5, atol=1e-6)


def test_torch_export_and_onnx_export_agree_with_eager(encoders, tmp_path):
    from surgellm_hf.serving.export import export_onnx
    from surgellm_hf.serving.runtime import OnnxSurgeClassifier
    from surgellm_hf.serving.streaming import TorchPredictor

    model, processor = soft_model(encoders["bert"], 2)
    enc = dict(processor(TEXTS[:4], task=BATCH_TASKS, return_tensors="pt", padding=True))
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", min=3, max=150)
    dims = {"lexical_features": {0: batch}, "task_ids": {0: batch}}
    program = torch.export.export(
        model, (), kwargs=enc, dynamic_shapes={k: dims.get(k, {0: batch, 1: length}) for k in enc}
    )
    other = dict(processor(TEXTS[3:8], task="llm7", return_tensors="pt", padding=True))
    with torch.no_grad():
        for inputs in (enc, other):
            torch.testing.assert_close(program.module()(**inputs).logits, model(**inputs).logits)
    model, processor = soft_model(encoders["deberta-v2"], 2)  # relative positions, no token types read
    folder = export_onnx(model, processor, tmp_path / "onnx")  # refuses a graph that disagrees with eager
    config = json.loads((folder / "serving_config.json").read_text())
    assert config["soft_prefix_length"] == 2 and config["input_depends_on_task"] is True
    assert "all_logits" not in config["outputs"] and config["parity"]["same_predictions"]
    runner = OnnxSurgeClassifier.from_pretrained(folder)
    predictor = TorchPredictor(model, processor)
    for got, ref in zip(
        runner.predict(TEXTS, task=BATCH_TASKS * 2), predictor.predict(TEXTS, task=BATCH_TASKS * 2)
    ):
        assert got["label"] == ref["label"] and got["scores"] == pytest.approx(ref["scores"], abs=1e-4)


def test_what_a_soft_prefix_cannot_do_is_refused(encoders):
    model, processor = soft_model(encoders["bert"], 2)
    assert input_depends_on_task(processor)  # no single encoder pass serves every task
    enc = dict(processor(TEXTS[:2], task="sst2", return_tensors="pt", padding=True))
    enc.pop("task_ids")
    with pytest.raises(ValueError, match="soft prefix puts the task into the encoder input"):
        model.forward_all_tasks(**enc)
    with pytest.raises(ValueError, match="cached first-token states cannot stand in"):
        model(first_token_state=torch.zeros(2, 32), lexical_features=enc["lexical_features"])
    with pytest.raises(ValueError, match="soft_prefix_length` must be one of"):
        SurgeForSequenceClassification.from_encoder_pretrained(
            encoders["bert"], tasks=TASKS, soft_prefix_length=3
        )
    base = {"data": {"folder": "x"}, "prefix_style": "soft", "freeze_encoder": True}
    with pytest.raises(ValueError, match="Set cache_encoder_outputs: false"):
        RunConfig(**base)
    assert RunConfig(**base, cache_encoder_outputs=False).prefix_style == "soft"
    with pytest.raises(ValueError, match="`soft_prefix_length` must be 1 or 2"):
        RunConfig(data={"folder": "x"}, soft_prefix_length=0)


# ----------------------------------------------------------------------------------------------- training


def _run_config(tmp: Path, encoder: Path, name: str, **overrides) -> RunConfig:
    return quickstart_config(tmp, encoder, name, **{"prefix_style": "soft", **overrides})


def _snapshot_soft_prefix(monkeypatch) -> dict[str, torch.Tensor]:
    """The soft-prefix weights of the next `train_run`'s model as the Trainer gets them (before training)."""
    import surgellm_hf.training.run as training_run

    before: dict[str, torch.Tensor] = {}

    class Snapshot(training_run.SurgeTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            state = self.model.state_dict()
            before.update(
                {k: v.clone() for k, v in state.items() if "soft_prefix" in k or "encoder.embeddings" in k}
            )

    monkeypatch.setattr(training_run, "SurgeTrainer", Snapshot)
    return before


def test_a_frozen_encoder_trains_only_the_prompts_and_modules(
    tmp_path, tiny_bert_with_tokenizer, monkeypatch
):
    """Prompt tuning: frozen encoder, no cache; the soft prefix trains, the encoder stays the base checkpoint's."""
    before = _snapshot_soft_prefix(monkeypatch)
    run = train_run(
        _run_config(
            tmp_path, tiny_bert_with_tokenizer, "frozen", freeze_encoder=True, cache_encoder_outputs=False
        )
    )
    model = SurgeForSequenceClassification.from_pretrained(run)
    state = model.state_dict()
    prompts = [k for k in before if "soft_prefix" in k]
    assert len(prompts) == 3 and model.config.soft_prefix_length == 2
    assert all(not torch.equal(state[k], before[k]) for k in prompts)
    assert all(torch.equal(state[k], before[k]) for k in before if "encoder.embeddings" in k)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run_config"]["prefix_style"] == "soft" and metrics["prefix"] == "soft"


def test_lora_trains_and_saves_the_soft_prefix_with_long_texts(
    tmp_path, tiny_bert_with_tokenizer, monkeypatch
):
    from surgellm_hf.evaluation import load_run
    from surgellm_hf.inference import load_run_model, predict_texts

    before = _snapshot_soft_prefix(monkeypatch)
    run = train_run(
        _run_config(
            tmp_path,
            tiny_bert_with_tokenizer,
            "lora",
            lora={"r": 4},
            long_text={"max_chunks": 3, "stride": 2},
            max_length=16,
        )
    )
    adapter = json.loads((run / "adapter_config.json").read_text())
    assert "soft_prefix" in adapter["modules_to_save"]
    model, processor = load_run_model(run)
    assert processor.windowed and processor.reserved_tokens == 2
    for key in ("task_prompt.weight", "feature_prompt.weight"):
        trained = model.surge.soft_prefix.state_dict()[key]
        initial = next(v for k, v in before.items() if "soft_prefix" in k and k.endswith(key))  # PEFT names
        assert not torch.equal(trained, initial), key
    record = load_run(run)
    pred = record.predictions["reviews"]["test"]
    rows = {
        r["id"]: r["text"]
        for r in map(json.loads, (QUICKSTART_DATA / "reviews" / "test.jsonl").read_text().splitlines())
    }
    texts = [rows[i] for i in pred["id"]]
    assert max(processor(texts, task="reviews")["num_windows"]) > 1
    records = predict_texts(model, processor, texts, tasks="reviews")
    assert [r["label"] for r in records] == list(pred["y_pred"])
    np.testing.assert_allclose([list(r["scores"].values()) for r in records], pred["score"], atol=1e-5)
