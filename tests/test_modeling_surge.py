"""SurgeConfig / SurgeForSequenceClassification: method, routing, persistence, errors, transformers 5 pitfalls."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, BertConfig

from surgellm_hf import SurgeConfig, SurgeForSequenceClassification, SurgeModel
from surgellm_hf.normalization import fit_normalizer
from tests._helpers import TINY_ENCODERS, run_isolated

TASKS = {"sst2": 2, "aspect": 3}


def _feats(n: int, f: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).poisson(2.0, size=(n, f)).astype(np.float32)


def _fitted_model(encoder_dir, tasks=TASKS, seed: int = 0, **kwargs) -> SurgeForSequenceClassification:
    torch.manual_seed(seed)
    model = SurgeForSequenceClassification.from_encoder_pretrained(encoder_dir, tasks=tasks, **kwargs)
    if model.config.norm != "none":
        n = 12 * len(tasks)
        tids = np.repeat(np.arange(len(tasks)), 12)
        labels = np.concatenate([np.arange(12) % c for c in tasks.values()])
        model.fit_feature_normalizer(_feats(n, model.config.num_features), labels, tids)
    return model.eval()


def _batch(model, n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    vocab = model.config.encoder_config.vocab_size
    return {
        "input_ids": torch.randint(5, vocab, (n, 9), generator=g),
        "attention_mask": torch.ones(n, 9, dtype=torch.long),
        "lexical_features": torch.from_numpy(_feats(n, model.config.num_features, seed)),
        "task_ids": torch.tensor([i % model.config.num_tasks for i in range(n)]),
    }


# ---------------------------------------------------------------------------------------------- normalization


def test_iwn_two_class_skewed_by_hand():
    # Task 0: 4 rows of class 0 and 1 row of class 1, one feature.
    feats = np.array([[1.0], [1.0], [3.0], [3.0], [10.0]])
    labels = np.array([0, 0, 0, 0, 1])
    mean, std = fit_normalizer(feats, labels, np.zeros(5), num_tasks=1, method="iwn")
    # class 0: mean 2, population std 1; class 1: mean 10, std 0 -> IWN mean 6, std 0.5
    assert mean[0, 0] == pytest.approx(6.0)
    assert std[0, 0] == pytest.approx(0.5)
    mean_s, std_s = fit_normalizer(feats, labels, np.zeros(5), num_tasks=1, method="standard")
    # plain mean sits near the majority class: (1+1+3+3+10)/5 = 3.6
    assert mean_s[0, 0] == pytest.approx(3.6)
    assert std_s[0, 0] == pytest.approx(np.sqrt(((np.array([1, 1, 3, 3, 10]) - 3.6) ** 2).mean()))


def test_iwn_three_class_two_tasks_by_hand():
    feats = np.array(
        [
            [0.0, 4.0],
            [2.0, 4.0],
            [2.0, 4.0],
            [5.0, 0.0],
            [7.0, 2.0],
            [9.0, 9.0],  # task 0
            [1.0, 1.0],
            [3.0, 3.0],
        ]  # task 1
    )
    labels = np.array([0, 0, 0, 1, 1, 2, 0, 1])
    tids = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    with pytest.warns(UserWarning, match="constant within"):
        mean, std = fit_normalizer(feats, labels, tids, num_tasks=2, method="iwn")
    # task 0, feature 0: class means 4/3, 6, 9 -> 49/9; class stds sqrt(8/9), 1, 0 -> (sqrt(8/9)+1)/3
    assert mean[0, 0] == pytest.approx((4 / 3 + 6 + 9) / 3, rel=1e-6)
    assert std[0, 0] == pytest.approx((np.sqrt(8 / 9) + 1 + 0) / 3, rel=1e-6)
    # task 0, feature 1: class means 4, 1, 9 -> 14/3; stds 0, 1, 0 -> 1/3
    assert mean[0, 1] == pytest.approx(14 / 3, rel=1e-6)
    assert std[0, 1] == pytest.approx(1 / 3, rel=1e-6)
    # task 1: one row per class -> stds 0, which are set to 1 (centre only); means 2 and 2
    np.testing.assert_allclose(mean[1], [2.0, 2.0])
    np.testing.assert_allclose(std[1], [1.0, 1.0])


def test_constant_dimension_is_centred_not_exploded():
    feats = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, 2.0], [0.0, 6.0]])
    with pytest.warns(UserWarning, match="constant within"):
        mean, std = fit_normalizer(feats, [0, 0, 1, 1], np.zeros(4), num_tasks=1, method="iwn")
    assert mean[0, 0] == 0.0 and std[0, 0] == 1.0  # an unseen value 1 normalizes to 1, not 1e6
    assert std[0, 1] == pytest.approx((1.0 + 2.0) / 2)


def test_fit_errors_are_clear_and_change_nothing(tiny_bert_dir):
    model = SurgeForSequenceClassification.from_encoder_pretrained(tiny_bert_dir, tasks=TASKS)
    before = {k: v.clone() for k, v in model.surge.normalizer.state_dict().items()}
    with pytest.raises(ValueError, match="only label"):
        model.fit_feature_normalizer(_feats(6), [0] * 6, [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="out of range for task 'aspect'"):
        model.fit_feature_normalizer(_feats(6), [0, 1, 0, 0, 1, 5], [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="No rows for task"):
        model.fit_feature_normalizer(_feats(4), [0, 1, 0, 1], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="num_features=16"):
        model.fit_feature_normalizer(_feats(6, 10), [0, 1, 0, 0, 1, 2], [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="Unknown task 'nope'"):
        model.fit_feature_normalizer(_feats(2), [0, 1], ["sst2", "nope"])
    for k, v in model.surge.normalizer.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not model.feature_normalizer_fitted


def test_forward_uses_fitted_statistics(tiny_bert_dir):
    model = _fitted_model(tiny_bert_dir, norm="standard")
    batch = _batch(model)
    # second implementation: normalize by hand, then run the trunk with norm switched off
    mean, std = model.surge.normalizer.mean, model.surge.normalizer.std
    hand = (batch["lexical_features"] - mean[batch["task_ids"]]) / (std[batch["task_ids"]] + 1e-6)
    ref = model(**batch).logits
    model.config.norm = "none"
    got = model(**{**batch, "lexical_features": hand}).logits
    torch.testing.assert_close(got, ref)


# ---------------------------------------------------------------------------------------------- forward and routing


def test_mixed_task_batch_routes_each_example_to_its_head(tiny_bert_dir):
    model = _fitted_model(tiny_bert_dir)
    batch = _batch(model, n=7)
    batch["task_ids"] = torch.tensor([1, 0, 0, 1, 1, 0, 1])
    labels = torch.tensor([2, 1, 0, 0, 1, 1, 2])
    out = model(**batch, labels=labels)
    z = model.surge(**batch).pooled_output
    expected_ce = []
    for i, t in enumerate(batch["task_ids"].tolist()):
        own = model.heads[t](z[i : i + 1])[0]
        n_labels = list(TASKS.values())[t]
        torch.testing.assert_close(out.logits[i, :n_labels], own)
        assert torch.all(out.logits[i, n_labels:] == torch.finfo(out.logits.dtype).min)
        expected_ce.append(-torch.log_softmax(own, -1)[labels[i]])
    torch.testing.assert_close(out.loss, torch.stack(expected_ce).mean())
    # the same examples run one task at a time give the same logits
    for t in (0, 1):
        idx = (batch["task_ids"] == t).nonzero().flatten()
        sub = {k: v[idx] for k, v in batch.items()}
        torch.testing.assert_close(model(**sub).logits, out.logits[idx])


def test_gate_formula_matches_a_second_implementation(tiny_bert_dir):
    model = _fitted_model(tiny_bert_dir)
    batch = _batch(model)
    out = model.surge(**batch, output_gate=True)
    s = model.surge
    h = s.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state[
        :, 0
    ]
    t = batch["task_ids"]
    s_hat = (batch["lexical_features"] - s.normalizer.mean[t]) / (s.normalizer.std[t] + 1e-6)
    h_t = h + 0.1 * s.task_embedding.weight[t]
    s_p = torch.relu(s_hat @ s.feature_proj.weight.T + s.feature_proj.bias)
    g = torch.sigmoid(torch.cat([h_t, s_p], -1) @ s.gate.weight.T + s.gate.bias)
    z = torch.nn.functional.layer_norm(
        g * h_t + (1 - g) * s_p, (h.shape[-1],), s.fusion_norm.weight, s.fusion_norm.bias, s.fusion_norm.eps
    )
    torch.testing.assert_close(out.gate, g)
    torch.testing.assert_close(out.pooled_output, z)


def test_baseline_without_gate_is_plain_cls(tiny_bert_dir):
    model = _fitted_model(tiny_bert_dir, use_gate=False, norm="none")
    assert model.surge.gate is None and model.surge.task_embedding is None
    batch = _batch(model)
    batch.pop("lexical_features")
    h = model.surge.encoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state[:, 0]
    torch.testing.assert_close(model.surge(**batch).pooled_output, h)


def test_extra_parameter_count_matches_method_for_d768():
    config = SurgeConfig(
        encoder_config=BertConfig(hidden_size=768, num_hidden_layers=1, num_attention_heads=12),
        tasks={"a": 2, "b": 2, "c": 2, "d": 2},
    )
    d, f, t = 768, 16, 4
    with torch.device("meta"):
        model = SurgeForSequenceClassification(config)
    report = model.trainable_parameters_report()
    trunk = sum(report[k]["total"] for k in ("task_embedding", "feature_proj", "gate", "fusion_norm"))
    assert trunk == t * d + (f * d + d) + (2 * d * d + d) + 2 * d  # about 1.2 M, as docs/method.md#model says
    assert 1.15e6 < trunk < 1.25e6
    assert report["heads"]["total"] == t * (d * (d // 2) + d // 2 + (d // 2) * 2 + 2)


# ---------------------------------------------------------------------------------------------- encoder families


@pytest.mark.parametrize("family", sorted(TINY_ENCODERS))
def test_wraps_each_encoder_family_with_its_real_weights(family, tiny_encoder_dirs):
    path = tiny_encoder_dirs[family]
    model = _fitted_model(path)
    assert getattr(model.surge.encoder, "pooler", None) is None
    plain = AutoModel.from_pretrained(path).eval()
    own = model.surge.encoder.state_dict()
    for key, value in plain.state_dict().items():
        if not key.startswith("pooler."):
            assert torch.equal(own[key], value), key
    batch = _batch(model)
    ref = plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state[:, 0]
    got = model.surge.encoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state[:, 0]
    torch.testing.assert_close(got, ref)
    out = model(**batch, labels=torch.zeros(6, dtype=torch.long))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    no_grad = [
        n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and "heads" not in n
    ]
    assert no_grad == [], f"parameters without gradient (DDP would fail): {no_grad[:5]}"


def test_token_type_ids_only_where_the_encoder_takes_them(tiny_encoder_dirs):
    model = _fitted_model(tiny_encoder_dirs["distilbert"])
    batch = _batch(model)
    ref = model(**batch).logits
    zeros = torch.zeros_like(batch["input_ids"])
    torch.testing.assert_close(model(**batch, token_type_ids=zeros).logits, ref)
    with pytest.raises(ValueError, match="takes no `token_type_ids`"):
        model(**batch, token_type_ids=torch.ones_like(batch["input_ids"]))


def test_encoders_that_cannot_be_wrapped_are_refused(tmp_path):
    from transformers import GPT2Config, T5Config

    GPT2Config(n_embd=32, n_layer=1, n_head=2).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="not a bidirectional"):
        SurgeForSequenceClassification.from_encoder_pretrained(tmp_path / "gpt2", tasks=TASKS)
    T5Config(d_model=32, num_layers=1, num_heads=2, d_kv=8, d_ff=16).save_pretrained(tmp_path / "t5")
    with pytest.raises(ValueError, match="encoder-decoder"):
        SurgeForSequenceClassification.from_encoder_pretrained(tmp_path / "t5", tasks=TASKS)


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors(tiny_bert_dir):
    model = _fitted_model(tiny_bert_dir)
    batch = _batch(model, n=4)
    with pytest.raises(ValueError, match=r"Unknown task id\(s\) \[7\]; valid ids are 0='sst2', 1='aspect'"):
        model(**{**batch, "task_ids": torch.tensor([0, 7, 1, 0])})
    with pytest.raises(ValueError, match="Unknown task 'qa'; valid tasks are \\['sst2', 'aspect'\\]"):
        model.config.task_id("qa")
    with pytest.raises(ValueError, match="Label 2 out of range for task 'sst2'"):
        model(**batch, labels=torch.tensor([2, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"shape \(4, 16\)"):
        model(**{**batch, "lexical_features": torch.zeros(4, 10)})
    with pytest.raises(ValueError, match="needs `lexical_features`"):
        model(**{k: v for k, v in batch.items() if k != "lexical_features"})
    unfitted = SurgeForSequenceClassification.from_encoder_pretrained(tiny_bert_dir, tasks=TASKS, norm="iwn")
    with pytest.raises(ValueError, match="never fitted"):
        unfitted(**batch)
    for kwargs, msg in [
        ({"tasks": {}}, "non-empty"),
        ({"tasks": {"a": 1}}, ">= 2"),
        ({"tasks": TASKS, "norm": "batch"}, "`norm` must be one of"),
        ({"tasks": TASKS, "default_task": "x"}, "`default_task` 'x'"),
        ({"tasks": TASKS, "task_label_names": {"sst2": ["neg"]}}, "2 labels but 1 label names"),
        ({"tasks": TASKS, "feature_names": ["a"]}, "1 names but `num_features` is 16"),
    ]:
        with pytest.raises(ValueError, match=msg):
            SurgeConfig(encoder_config=BertConfig(hidden_size=32), **kwargs)


def test_default_task_when_no_task_ids(tiny_bert_dir):
    model = _fitted_model(tiny_bert_dir, default_task="aspect")
    batch = _batch(model)
    batch.pop("task_ids")
    logits = model(**batch).logits
    torch.testing.assert_close(logits, model(**batch, task_ids=torch.ones(6, dtype=torch.long)).logits)


# ---------------------------------------------------------------------------------------------- persistence


def test_save_load_and_auto_classes_give_identical_logits(tiny_bert_dir, tmp_path):
    model = _fitted_model(tiny_bert_dir, task_label_names={"sst2": ["neg", "pos"], "aspect": ["a", "b", "c"]})
    batch = _batch(model)
    ref = model(**batch).logits
    model.save_pretrained(tmp_path / "m")
    auto_map = json.loads((tmp_path / "m" / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"}
    for name in ("configuration_surge.py", "modeling_surge.py", "normalization.py"):
        assert (tmp_path / "m" / name).exists()
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "m"), SurgeConfig)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    assert loaded.feature_normalizer_fitted
    assert loaded.config.label_names("aspect") == ["a", "b", "c"]
    torch.testing.assert_close(loaded(**batch).logits, ref, rtol=0, atol=0)
    trunk = AutoModel.from_pretrained(tmp_path / "m").eval()
    assert isinstance(trunk, SurgeModel)
    torch.testing.assert_close(
        trunk(**batch).pooled_output, model.surge(**batch).pooled_output, rtol=0, atol=0
    )


def test_remote_code_load_without_the_package(tiny_bert_dir, tmp_path):
    model = _fitted_model(tiny_bert_dir)
    batch = _batch(model)
    model.save_pretrained(tmp_path / "m")
    torch.save(batch, tmp_path / "batch.pt")
    expected = model(**batch).logits
    result = run_isolated(
        f"""
        import json, torch
        try:
            import surgellm_hf
            raise SystemExit("surgellm_hf importable")
        except ModuleNotFoundError:
            pass
        from transformers import AutoModel, AutoModelForSequenceClassification
        m = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / "m")!r}, trust_remote_code=True).eval()
        batch = torch.load({str(tmp_path / "batch.pt")!r})
        trunk = AutoModel.from_pretrained({str(tmp_path / "m")!r}, trust_remote_code=True)
        print(json.dumps({{"logits": m(**batch).logits.tolist(), "cls": type(m).__module__, "trunk": type(trunk).__name__}}))
        """,
        tmp_path,
    )
    assert result["cls"].startswith("transformers_modules")
    assert result["trunk"] == "SurgeModel"
    from transformers.modeling_outputs import SequenceClassifierOutput

    assert isinstance(model(**batch), SequenceClassifierOutput)
    # another process may use another thread count, hence another reduction order: equal up to float rounding
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, rtol=1e-6, atol=1e-7)


def test_missing_weights_are_initialised_not_garbage(tiny_bert_dir, tmp_path):
    """Pitfall 1: keys absent from a checkpoint must come from _init_weights, not uninitialised memory."""
    from safetensors.torch import load_file, save_file

    model = _fitted_model(tiny_bert_dir)
    model.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    state = load_file(path)
    dropped = [k for k in state if not k.startswith("surge.encoder.")]
    save_file(
        {k: v for k, v in state.items() if k.startswith("surge.encoder.")}, path, metadata={"format": "pt"}
    )
    for _attempt in range(2):
        loaded = SurgeForSequenceClassification.from_pretrained(tmp_path / "m")
        s = loaded.surge
        assert torch.equal(s.normalizer.std, torch.ones_like(s.normalizer.std))
        assert torch.equal(s.normalizer.mean, torch.zeros_like(s.normalizer.mean))
        assert not loaded.feature_normalizer_fitted
        assert torch.equal(s.fusion_norm.weight, torch.ones_like(s.fusion_norm.weight))
        assert torch.equal(s.gate.bias, torch.zeros_like(s.gate.bias))
        for weight in (
            s.task_embedding.weight,
            s.gate.weight,
            s.feature_proj.weight,
            loaded.heads[0][1].weight,
        ):
            assert torch.isfinite(weight).all() and 0.01 < float(weight.detach().std()) < 0.03
    assert dropped  # the test removed real keys


def test_from_encoder_pretrained_initialises_new_modules(tiny_bert_dir):
    model = SurgeForSequenceClassification.from_encoder_pretrained(tiny_bert_dir, tasks=TASKS)
    s = model.surge
    assert (
        torch.equal(s.normalizer.std, torch.ones_like(s.normalizer.std))
        and not model.feature_normalizer_fitted
    )
    assert 0.01 < float(s.gate.weight.detach().std()) < 0.03 and torch.equal(
        s.gate.bias, torch.zeros_like(s.gate.bias)
    )


# ---------------------------------------------------------------------------------------------- adapters and PEFT


def test_adapter_round_trip(tiny_bert_dir, tmp_path):
    model = _fitted_model(tiny_bert_dir).freeze_encoder()
    report = model.trainable_parameters_report()
    own = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("surge.encoder."))
    assert report["all"]["trainable"] == own and report["encoder"]["trainable"] == 0
    with torch.no_grad():  # make the adapter differ from a fresh init
        model.heads[1][-1].bias.add_(0.5)
        model.surge.gate.weight.mul_(1.5)
    batch = _batch(model)
    ref = model(**batch).logits
    model.save_adapter(tmp_path / "adapter")
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "adapter" / "surge_adapter.safetensors")
    assert saved and not any(k.startswith("surge.encoder.") for k in saved)
    assert "surge.normalizer.mean" in saved and "surge.normalizer.fitted" in saved
    meta = json.loads((tmp_path / "adapter" / "surge_adapter_config.json").read_text())
    assert meta["base_model_name_or_path"] == str(tiny_bert_dir)
    torch.manual_seed(123)
    loaded = SurgeForSequenceClassification.from_adapter(tmp_path / "adapter").eval()
    torch.testing.assert_close(loaded(**batch).logits, ref, rtol=0, atol=0)


def test_adapter_refuses_a_trained_encoder(tiny_bert_dir, tmp_path):
    model = _fitted_model(tiny_bert_dir)
    with pytest.raises(ValueError, match="encoder is trainable"):
        model.save_adapter(tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(FileNotFoundError, match="No adapter file"):
        SurgeForSequenceClassification.from_adapter(tmp_path)


def test_lora_on_the_encoder_save_reload_merge(tiny_bert_dir, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    model = _fitted_model(tiny_bert_dir)
    lora = LoraConfig(
        r=4, lora_alpha=8, target_modules=["query", "value"], modules_to_save=model.surge_modules_to_save()
    )
    peft_model = get_peft_model(model, lora)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable)
    assert not any("encoder" in n and "lora_" not in n for n in trainable)
    batch = _batch(model)
    opt = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.5)
    peft_model.train()
    for _ in range(2):
        loss = peft_model(**batch, labels=torch.zeros(6, dtype=torch.long)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    peft_model.eval()
    ref = peft_model(**batch).logits
    peft_model.save_pretrained(tmp_path / "lora")
    fresh = SurgeForSequenceClassification.from_encoder_pretrained(tiny_bert_dir, tasks=TASKS)
    reloaded = PeftModel.from_pretrained(fresh, tmp_path / "lora").eval()
    torch.testing.assert_close(reloaded(**batch).logits, ref)
    merged = reloaded.merge_and_unload().eval()
    assert isinstance(merged, SurgeForSequenceClassification)
    torch.testing.assert_close(merged(**batch).logits, ref, rtol=1e-4, atol=1e-5)
    assert merged.feature_normalizer_fitted


# ---------------------------------------------------------------------------------------------- Trainer pitfalls


def _trainer_dataset(model, n=8):
    import datasets

    batch = _batch(model, n=n)
    rows = {k: v.tolist() for k, v in batch.items()}
    rows["token_type_ids"] = torch.zeros(n, 9, dtype=torch.long).tolist()
    rows["labels"] = [i % 2 for i in range(n)]
    rows["text"] = ["unused"] * n
    return datasets.Dataset.from_dict(rows)


def test_trainer_keeps_surge_columns(tiny_bert_dir, tmp_path):
    from transformers import Trainer, TrainingArguments

    model = _fitted_model(tiny_bert_dir)
    trainer = Trainer(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    )
    kept = trainer._remove_unused_columns(_trainer_dataset(model))
    assert set(kept.column_names) == {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "lexical_features",
        "task_ids",
        "labels",
    }


def test_gradient_accumulation_does_not_inflate_the_loss(tiny_bert_dir, tmp_path):
    """Pitfall 5: batch 4 in one step equals batch 2 accumulated twice."""
    from transformers import Trainer, TrainingArguments

    results = []
    for bs, ga in ((4, 1), (2, 2)):
        model = _fitted_model(
            tiny_bert_dir,
            head_dropout=0.0,
            head_inner_dropout=0.0,
        )
        model.surge.encoder.config.hidden_dropout_prob = 0.0
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        args = TrainingArguments(
            output_dir=str(tmp_path / f"{bs}"),
            per_device_train_batch_size=bs,
            gradient_accumulation_steps=ga,
            max_steps=1,
            learning_rate=0.1,
            optim="sgd",
            lr_scheduler_type="constant",
            report_to=[],
            use_cpu=True,
            seed=0,
            logging_steps=1,
            save_strategy="no",
            max_grad_norm=0.0,
            disable_tqdm=True,
        )
        trainer = Trainer(model=model, args=args, train_dataset=_trainer_dataset(model, n=4))
        out = trainer.train()
        results.append((out.training_loss, [p.detach().clone() for p in model.parameters()]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------------------------- real MiniLM


def test_minilm_integration(minilm_path, tmp_path):
    """The real all-MiniLM-L6-v2: wrapped with its weights, a few steps reduce the loss, save/load is exact."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    texts = [
        "a gorgeous , witty film",
        "boring and painful to watch",
        "terrific acting",
        "the worst movie",
    ] * 2
    labels = torch.tensor([1, 0, 1, 0] * 2)
    torch.manual_seed(0)
    model = SurgeForSequenceClassification.from_encoder_pretrained(minilm_path, tasks={"sst2": 2}, norm="iwn")
    enc = tok(texts, padding=True, return_tensors="pt")
    feats = torch.from_numpy(_feats(len(texts)))
    model.fit_feature_normalizer(feats, labels, [0] * len(texts))
    plain = AutoModel.from_pretrained(minilm_path).eval()
    model.eval()
    torch.testing.assert_close(
        model.surge.encoder(**enc).last_hidden_state, plain(**enc).last_hidden_state, rtol=0, atol=0
    )
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = model(**enc, lexical_features=feats, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    model.eval()
    model.save_pretrained(tmp_path / "m")
    loaded = SurgeForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    torch.testing.assert_close(
        loaded(**enc, lexical_features=feats).logits, model(**enc, lexical_features=feats).logits
    )


# ---------------------------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("norm", ["iwn", "none"])
def test_bf16_autocast_training_and_evaluation_match_fp32(tiny_bert_dir, norm):
    """Under autocast the heads return bf16 while LayerNorm returns fp32 (docs/architecture.md#pitfall-12): training steps
    and evaluation must run, and bf16 logits and loss stay within bf16 rounding of the fp32 ones."""
    use_gate = norm != "none"
    model = _fitted_model(tiny_bert_dir, norm=norm, use_gate=use_gate)
    batch = _batch(model, n=8)
    labels = torch.tensor([i % 2 for i in range(8)])
    with torch.no_grad():
        ref = model(**batch, labels=labels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(**batch, labels=labels)
    assert low.logits.dtype == torch.bfloat16
    own = torch.tensor([TASKS[model.config.task_names[t]] for t in batch["task_ids"]])
    for i, count in enumerate(own.tolist()):  # each row's own columns agree; the padding is bf16's minimum
        torch.testing.assert_close(low.logits[i, :count].float(), ref.logits[i, :count], atol=2e-2, rtol=2e-2)
        assert (low.logits[i, count:] == torch.finfo(torch.bfloat16).min).all()
    assert low.loss.dtype == torch.float32
    assert abs(low.loss.item() - ref.loss.item()) < 2e-2

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.parametrize("use_gate", [True, False])
def test_forward_all_tasks_equals_one_forward_per_task(tiny_bert_dir, use_gate):
    """One encoder pass serves every head: slice t equals a forward pass with every row under task t."""
    model = _fitted_model(tiny_bert_dir, use_gate=use_gate, norm="iwn" if use_gate else "none")
    batch = _batch(model, n=5)
    with torch.no_grad():
        every = model.forward_all_tasks(**{k: v for k, v in batch.items() if k != "task_ids"})
        assert every.shape == (5, model.config.num_tasks, model.config.max_num_labels)
        for t in range(model.config.num_tasks):
            one = model(**{**batch, "task_ids": torch.full((5,), t)}).logits
            torch.testing.assert_close(every[:, t], one, rtol=0, atol=1e-6)
    assert not torch.allclose(every[:, 0, :2], every[:, 1, :2])


def test_cached_first_token_state_gives_the_same_logits_loss_and_gradients(tiny_bert_dir):
    """A frozen encoder stays in eval mode under train(), so its cached first-token states reproduce the full
    forward: same logits, loss and gradients of the SURGELLM modules and heads (the frozen-encoder fast path)."""
    model = _fitted_model(tiny_bert_dir).freeze_encoder()
    model.train()
    assert model.surge.encoder.training is False and model.heads[0].training is True
    batch = _batch(model, n=6)
    labels = torch.tensor([1, 2, 0, 1, 1, 0])
    states = model.surge.first_token_states(batch["input_ids"], batch["attention_mask"])
    # the cache is the encoder's own first-token output, computed by hand here
    with torch.no_grad():
        by_hand = model.surge.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    torch.testing.assert_close(states, by_hand.last_hidden_state[:, 0], rtol=0, atol=0)
    outs, grads = [], []
    for inputs in (
        {k: v for k, v in batch.items()},
        {
            "first_token_state": states,
            "lexical_features": batch["lexical_features"],
            "task_ids": batch["task_ids"],
        },
    ):
        torch.manual_seed(7)  # the heads' dropout draws the same masks in both passes
        out = model(**inputs, labels=labels)
        out.loss.backward()
        outs.append(out)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        model.zero_grad()
    torch.testing.assert_close(outs[0].logits, outs[1].logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(outs[0].loss, outs[1].loss, rtol=0, atol=1e-6)
    assert grads[0].keys() == grads[1].keys() and not any(n.startswith("surge.encoder.") for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-5, atol=1e-6)
    model.freeze_encoder(False)
    assert model.surge.encoder.training is True  # unfrozen: dropout is back
    with pytest.raises(ValueError, match="exactly one of"):
        model(**batch, first_token_state=states)
    with pytest.raises(ValueError, match=r"shape \(6, 32\)"):
        model(first_token_state=states[:, :5], lexical_features=batch["lexical_features"])
