"""The transformers model contract of SurgeModel / SurgeForSequenceClassification, tested directly.

What transformers' own common tests check (tests/test_transformers_common.py, which needs the sdist), checked
here without it: return_dict, output flags from the config, get_text_config and resizing, labels derived from the
tasks, refused num_labels/problem_type, torch.export / torch.compile(fullgraph=True), mixed-task routing; and the
config defaults of docs/method.md#model (task-embedding scale 0.1, eps 1e-6, head dropouts 0.1 / 0.05) as the built modules
and the forward pass actually use them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import BertConfig

from surgellm_hf import SurgeConfig, SurgeForSequenceClassification, SurgeModel

# Not alphabetical: task ids follow the given order, never a sorted one (docs/architecture.md#pitfall-11).
TASKS = {"sst2": 2, "llm7": 3}
LABEL_NAMES = {"sst2": ["negative", "positive"], "llm7": ["gpt", "llama", "human"]}
NUM_LAYERS = 2
VOCAB = 99
BOTH = [SurgeModel, SurgeForSequenceClassification]


def _encoder_config() -> BertConfig:
    return BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        pad_token_id=0,
    )


def _config(**kwargs) -> SurgeConfig:
    kwargs.setdefault("tasks", dict(TASKS))
    kwargs.setdefault("task_label_names", {k: list(v) for k, v in LABEL_NAMES.items()})
    kwargs.setdefault("norm", "none")
    return SurgeConfig(encoder_config=_encoder_config(), **kwargs)


def _model(cls: type, seed: int = 0, **kwargs) -> SurgeModel | SurgeForSequenceClassification:
    torch.manual_seed(seed)
    return cls(_config(**kwargs)).eval()


def _batch(
    n: int = 6, seq: int = 9, seed: int = 1, task_ids: list[int] | None = None
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(n, seq, dtype=torch.long)
    mask[1, -3:] = 0  # one padded row
    return {
        "input_ids": torch.randint(1, VOCAB, (n, seq), generator=g),
        "attention_mask": mask,
        "lexical_features": torch.poisson(torch.full((n, 16), 2.0), generator=g),
        "task_ids": torch.tensor(task_ids if task_ids is not None else [i % len(TASKS) for i in range(n)]),
    }


def _labels(task_ids: torch.Tensor) -> torch.Tensor:
    counts = torch.tensor(list(TASKS.values()))[task_ids]
    return torch.arange(task_ids.shape[0]) % counts


def _fit_iwn(model: SurgeForSequenceClassification) -> None:
    g = torch.Generator().manual_seed(3)
    feats = torch.poisson(torch.full((24, 16), 2.0), generator=g).numpy()
    tids = [i % 2 for i in range(24)]
    labels = [(i // 2) % TASKS["sst2" if t == 0 else "llm7"] for i, t in enumerate(tids)]
    model.fit_feature_normalizer(feats, labels, tids)


def _main_output(cls: type, out) -> torch.Tensor:
    return out.logits if cls is SurgeForSequenceClassification else out.pooled_output


# --------------------------------------------------------------------------------------------------- return_dict


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_return_dict_false_argument_gives_the_to_tuple_of_the_output(cls):
    model = _model(cls)
    inputs = _batch()
    if cls is SurgeForSequenceClassification:
        inputs["labels"] = _labels(inputs["task_ids"])
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
    assert type(as_tuple) is tuple
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected)
    for got, want in zip(as_tuple, expected):
        torch.testing.assert_close(got, want)
    if cls is SurgeForSequenceClassification:
        torch.testing.assert_close(as_tuple[0], as_dict.loss)  # loss first when labels are given
        torch.testing.assert_close(as_tuple[1], as_dict.logits)


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_return_dict_false_in_the_config_gives_a_tuple(cls, tmp_path):
    _model(cls).save_pretrained(tmp_path)
    model = cls.from_pretrained(tmp_path, return_dict=False).eval()
    assert model.config.return_dict is False
    inputs = _batch()
    with torch.no_grad():
        out = model(**inputs)
        explicit = model(**inputs, return_dict=True)
    assert type(out) is tuple
    torch.testing.assert_close(out[0], _main_output(cls, explicit))
    assert not isinstance(explicit, tuple)  # the argument overrides the config


# ---------------------------------------------------------------------------- output flags set on the config


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_output_hidden_states_from_the_config_is_honoured(cls, tmp_path):
    _model(cls).save_pretrained(tmp_path)
    plain = cls.from_pretrained(tmp_path).eval()
    model = cls.from_pretrained(tmp_path, output_hidden_states=True).eval()
    assert model.config.output_hidden_states is True
    inputs = _batch()
    with torch.no_grad():
        assert plain(**inputs).hidden_states is None
        out = model(**inputs)
        assert out.hidden_states is not None and len(out.hidden_states) == NUM_LAYERS + 1
        assert out.hidden_states[0].shape == (6, 9, 32)
        assert model(**inputs, output_hidden_states=False).hidden_states is None  # argument wins


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_output_attentions_from_the_config_is_honoured(cls, tmp_path):
    _model(cls).save_pretrained(tmp_path)
    model = cls.from_pretrained(tmp_path, output_attentions=True, attn_implementation="eager").eval()
    assert model.config.output_attentions is True
    with torch.no_grad():
        out = model(**_batch())
    assert out.attentions is not None and len(out.attentions) == NUM_LAYERS
    assert out.attentions[0].shape == (6, 4, 9, 9)


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_output_hidden_states_as_layer_indices_captures_only_those(cls):
    """transformers 5 takes a list of layer indices for output_hidden_states; the wrapper must pass it through."""
    model = _model(cls)
    inputs = _batch()
    with torch.no_grad():
        full = model(**inputs, output_hidden_states=True).hidden_states
        part = model(**inputs, output_hidden_states=[1]).hidden_states
    assert len(part) == len(full) == NUM_LAYERS + 1
    assert part[0] is None and part[2] is None
    torch.testing.assert_close(part[1], full[1])


# ------------------------------------------------------------------------------- text config and resizing


def test_get_text_config_is_the_encoder_config():
    config = _config()
    text = config.get_text_config()
    assert text is config.encoder_config
    assert text.vocab_size == VOCAB
    assert text.pad_token_id == 0


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_resize_token_embeddings_updates_the_text_config_and_survives_reload(cls, tmp_path):
    model = _model(cls)
    model.resize_token_embeddings(VOCAB + 7)
    assert model.config.get_text_config().vocab_size == VOCAB + 7
    assert model.get_input_embeddings().weight.shape[0] == VOCAB + 7
    inputs = _batch()
    inputs["input_ids"][0, 1] = VOCAB + 6  # a new token id runs
    with torch.no_grad():
        before = _main_output(cls, model(**inputs))
    model.save_pretrained(tmp_path)
    reloaded = cls.from_pretrained(tmp_path).eval()
    assert reloaded.config.get_text_config().vocab_size == VOCAB + 7
    assert reloaded.get_input_embeddings().weight.shape[0] == VOCAB + 7
    with torch.no_grad():
        torch.testing.assert_close(_main_output(cls, reloaded(**inputs)), before)


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_resize_token_embeddings_sets_model_vocab_size_as_transformers_does(cls):
    """PreTrainedModel.resize_token_embeddings sets `model.vocab_size`; generic code reads it."""
    model = _model(cls)
    model.resize_token_embeddings(VOCAB + 7)
    assert model.vocab_size == VOCAB + 7


# ------------------------------------------------------------------------------------ labels from the tasks


def test_num_labels_and_label_maps_are_the_default_tasks():
    config = _config()
    assert config.num_labels == 2
    assert config.id2label == {0: "negative", 1: "positive"}
    assert config.label2id == {"negative": 0, "positive": 1}
    other = _config(default_task="llm7")
    assert other.num_labels == 3
    assert other.id2label == {0: "gpt", 1: "llama", 2: "human"}
    assert other.label2id == {"gpt": 0, "llama": 1, "human": 2}
    unnamed = _config(task_label_names=None, default_task="llm7")
    assert unnamed.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


def test_label_maps_and_task_order_survive_save_and_reload(tmp_path):
    _model(SurgeForSequenceClassification, default_task="llm7").save_pretrained(tmp_path)
    config = SurgeConfig.from_pretrained(tmp_path)
    assert list(config.tasks.items()) == list(TASKS.items())
    assert config.default_task == "llm7"
    assert config.num_labels == 3
    assert config.id2label == {0: "gpt", 1: "llama", 2: "human"}
    assert config.label2id == {"gpt": 0, "llama": 1, "human": 2}


def test_tasks_are_saved_as_an_ordered_list_of_pairs(tmp_path):
    import json

    _config().save_pretrained(tmp_path)
    saved = json.loads((Path(tmp_path) / "config.json").read_text())
    assert saved["tasks"] == [["sst2", 2], ["llm7", 3]]


def test_a_conflicting_num_labels_is_refused(tmp_path):
    _model(SurgeForSequenceClassification).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="num_labels"):
        SurgeForSequenceClassification.from_pretrained(tmp_path, num_labels=42)
    with pytest.raises(ValueError, match="num_labels"):
        _config(num_labels=5)
    # the default task's own count is no conflict
    assert SurgeForSequenceClassification.from_pretrained(tmp_path, num_labels=2).config.num_labels == 2


def test_from_pretrained_with_a_tasks_dict_reinitialises_only_the_changed_head(tmp_path):
    """A Python dict passed to from_pretrained keeps its order (it is not a sorted JSON mapping)."""
    model = _model(SurgeForSequenceClassification)
    model.save_pretrained(tmp_path)
    bigger = {"sst2": 2, "llm7": 5}
    with pytest.raises(RuntimeError):
        SurgeForSequenceClassification.from_pretrained(tmp_path, tasks=bigger, task_label_names=None)
    new = SurgeForSequenceClassification.from_pretrained(
        tmp_path, tasks=bigger, task_label_names=None, ignore_mismatched_sizes=True
    )
    assert list(new.config.tasks.items()) == list(bigger.items())
    assert new.heads[1][4].out_features == 5
    torch.testing.assert_close(new.heads[0][4].weight, model.heads[0][4].weight)
    torch.testing.assert_close(new.heads[1][1].weight, model.heads[1][1].weight)


def test_problem_type_applies_to_every_task_or_must_match_the_saved_types(tmp_path):
    # without per-task types, transformers' problem_type is every task's type (counts must fit the type)
    with pytest.raises(ValueError, match="problem_type='regression' sets every task's type"):
        _config(problem_type="regression")
    config = _config(problem_type="multi_label_classification")
    assert config.task_problem_types == {"sst2": "multi_label", "llm7": "multi_label"}
    # a saved model has per-task types: a problem_type that contradicts them is refused, a matching one accepted
    _model(SurgeForSequenceClassification).save_pretrained(tmp_path)
    for problem_type in ("regression", "multi_label_classification"):
        with pytest.raises(ValueError, match="problem_type=.* contradicts the per-task types"):
            SurgeForSequenceClassification.from_pretrained(tmp_path, problem_type=problem_type)
    loaded = SurgeForSequenceClassification.from_pretrained(
        tmp_path, problem_type="single_label_classification"
    )
    assert loaded.config.problem_type == "single_label_classification"


def test_single_label_problem_type_is_accepted():
    assert _config(problem_type="single_label_classification").problem_type == "single_label_classification"


# --------------------------------------------------------------------------------------- export and compile


def _export_ready(cls: type) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A model with fitted IWN statistics (the full path: normalizer, gate, heads) and a mixed-task batch."""
    classifier = _model(SurgeForSequenceClassification, norm="iwn", seed=4)
    _fit_iwn(classifier)
    if cls is SurgeForSequenceClassification:
        model = classifier
    else:
        model = _model(SurgeModel, norm="iwn", seed=4)
        model.normalizer.load_state_dict(classifier.surge.normalizer.state_dict())
    return model.eval(), _batch(task_ids=[1, 0, 0, 1, 1, 0])


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_torch_export_gives_the_eager_outputs(cls):
    model, inputs = _export_ready(cls)
    with torch.no_grad():
        eager = _main_output(cls, model(**inputs))
        program = torch.export.export(model, args=(), kwargs=inputs, strict=False)
        exported = _main_output(cls, program.module()(**inputs))
    torch.testing.assert_close(exported, eager)


@pytest.mark.parametrize("cls", BOTH, ids=lambda c: c.__name__)
def test_torch_compile_fullgraph_gives_the_eager_outputs(cls):
    # backend "aot_eager": the full dynamo + AOTAutograd graph capture (what breaks on data-dependent Python
    # control flow) without inductor's C++ code generation, too slow for a 2-core test machine.
    torch._dynamo.reset()
    model, inputs = _export_ready(cls)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    with torch.no_grad():
        eager = _main_output(cls, model(**inputs))
        got = _main_output(cls, compiled(**inputs))
    torch.testing.assert_close(got, eager)
    torch._dynamo.reset()


# ------------------------------------------------------------------------------------------ mixed-task batches


def test_a_mixed_task_batch_gives_each_tasks_separate_logits():
    model = _model(SurgeForSequenceClassification, norm="iwn", seed=5)
    _fit_iwn(model)
    task_ids = [1, 0, 1, 1, 0, 0, 1]
    inputs = _batch(n=7, task_ids=task_ids)
    labels = _labels(inputs["task_ids"])
    with torch.no_grad():
        mixed = model(**inputs, labels=labels)
        per_row_loss = []
        for t, count in enumerate(TASKS.values()):
            rows = [i for i, tid in enumerate(task_ids) if tid == t]
            alone = model(**{k: v[rows] for k, v in inputs.items()})
            torch.testing.assert_close(mixed.logits[rows, :count], alone.logits[:, :count])
            # columns past a task's own label count hold the dtype's minimum
            assert torch.all(mixed.logits[rows, count:] == torch.finfo(mixed.logits.dtype).min)
            for j, i in enumerate(rows):
                logp = torch.log_softmax(alone.logits[j, :count].double(), dim=-1)
                per_row_loss.append(-float(logp[int(labels[i])]))
    assert mixed.logits.shape == (7, max(TASKS.values()))
    assert float(mixed.loss) == pytest.approx(sum(per_row_loss) / len(per_row_loss), rel=1e-5)


# ----------------------------------------------------------------------------------------- config defaults


def test_config_field_defaults_are_the_papers():
    config = SurgeConfig()
    assert config.task_embedding_scale == 0.1
    assert config.norm_eps == 1e-6
    assert config.head_dropout == 0.1
    assert config.head_inner_dropout == 0.05
    assert config.initializer_range == 0.02
    assert config.num_features == 16
    assert config.norm == "iwn"
    assert config.use_gate is True
    assert config.use_task_embedding is True
    assert config.head_hidden_size is None


def test_built_modules_use_the_default_dropouts_eps_and_widths():
    torch.manual_seed(0)
    model = SurgeForSequenceClassification(
        SurgeConfig(encoder_config=_encoder_config(), tasks=dict(TASKS))
    )  # every SURGELLM default
    assert model.surge.normalizer.eps == 1e-6
    assert model.surge.task_embedding.weight.shape == (len(TASKS), 32)
    for head, count in zip(model.heads, TASKS.values()):
        dropouts = [m for m in head.modules() if isinstance(m, nn.Dropout)]
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
        assert [d.p for d in dropouts] == [0.1, 0.05]
        assert [(lin.in_features, lin.out_features) for lin in linears] == [(32, 16), (16, count)]
        # order: Dropout(0.1) -> Linear(d, d/2) -> GELU -> Dropout(0.05) -> Linear(d/2, C_t)
        kinds = [type(m) for m in head.children()]
        assert kinds == [nn.Dropout, nn.Linear, nn.GELU, nn.Dropout, nn.Linear]


def test_forward_uses_scale_0_1_and_eps_1e_6_computed_by_hand():
    """The default forward equals docs/method.md#model written out with the literal constants 0.1 and 1e-6.

    Statistics with a tiny std and a large task embedding make both constants visible in the logits.
    """
    torch.manual_seed(0)
    model = SurgeForSequenceClassification(
        SurgeConfig(encoder_config=_encoder_config(), tasks=dict(TASKS))
    ).eval()
    surge = model.surge
    with torch.no_grad():
        surge.normalizer.mean.copy_(torch.full_like(surge.normalizer.mean, 2e-5))
        surge.normalizer.std.copy_(torch.full_like(surge.normalizer.std, 2e-6))
        surge.normalizer.fitted.fill_(True)
        surge.task_embedding.weight.mul_(100.0)
    inputs = _batch(task_ids=[0, 1, 1, 0, 1, 0])
    inputs["lexical_features"] = (
        inputs["lexical_features"] * 1e-5
    )  # (s - mean) / (std + eps) stays within ~±30
    with torch.no_grad():
        got = model(**inputs).logits
        h = surge.encoder(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        ).last_hidden_state[:, 0]
        t = inputs["task_ids"]
        s_hat = (inputs["lexical_features"] - 2e-5) / (2e-6 + 1e-6)
        h_task = h + 0.1 * surge.task_embedding.weight[t]
        s_proj = torch.relu(s_hat @ surge.feature_proj.weight.T + surge.feature_proj.bias)
        g = torch.sigmoid(torch.cat([h_task, s_proj], dim=-1) @ surge.gate.weight.T + surge.gate.bias)
        z = nn.functional.layer_norm(
            g * h_task + (1 - g) * s_proj,
            (32,),
            surge.fusion_norm.weight,
            surge.fusion_norm.bias,
            eps=1e-12,
        )
        for i in range(t.shape[0]):
            head = model.heads[int(t[i])]
            hidden = nn.functional.gelu(z[i] @ head[1].weight.T + head[1].bias)
            logits = hidden @ head[4].weight.T + head[4].bias
            count = logits.shape[0]
            torch.testing.assert_close(got[i, :count], logits, rtol=1e-4, atol=1e-4)


def test_head_dropouts_act_in_training_mode_with_the_default_rates():
    """In train mode the first dropout zeroes about 10 % of z and the inner one about 5 % of the hidden units."""
    torch.manual_seed(0)
    head = SurgeForSequenceClassification(
        SurgeConfig(encoder_config=_encoder_config(), tasks=dict(TASKS))
    ).heads[0]
    head.train()
    x = torch.ones(20000, 32)
    first = head[0](x)
    inner = head[3](torch.ones(20000, 16))
    assert float((first == 0).float().mean()) == pytest.approx(0.1, abs=0.01)
    assert float((inner == 0).float().mean()) == pytest.approx(0.05, abs=0.01)
    assert float(first.max()) == pytest.approx(1 / 0.9)
    assert float(inner.max()) == pytest.approx(1 / 0.95)
