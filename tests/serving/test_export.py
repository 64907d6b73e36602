"""ONNX export: ONNX Runtime logits against eager PyTorch on tiny encoders of four families and on MiniLM, the
folder's contents, int8 quantization, and one-line errors for bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from surgellm_hf.serving.export import export_onnx, export_run
from surgellm_hf.serving.quantize import quantize_export
from surgellm_hf.serving.runtime import OnnxSurgeClassifier, read_serving_config
from tests._family_encoders import family_encoder
from tests._serving_utils import TASKS, TEXTS, eager_logits, fitted_model

LONG_TEXT = " ".join(
    ["the results show that the method works, maybe"] * 30
)  # longer than every traced sample
F32_MIN = np.finfo(np.float32).min


@pytest.fixture(scope="module")
def family_encoders(tmp_path_factory, minilm_path):
    root = tmp_path_factory.mktemp("serving_encoders")
    return {
        f: family_encoder(f, root / f, minilm_path) for f in ("bert", "roberta", "distilbert", "deberta-v2")
    }


def _assert_matches_eager(runner, model, processor, texts, atol=1e-4):
    """Every task: ORT logits within atol of eager on the real columns, same argmax, padding at float32 min."""
    for task, n in TASKS.items():
        ref = eager_logits(model, processor, texts, task).numpy()
        got = runner.logits(texts, task)
        assert got.shape == ref.shape == (len(texts), max(TASKS.values()))
        assert np.abs(got[:, :n] - ref[:, :n]).max() <= atol
        assert (got[:, :n].argmax(1) == ref[:, :n].argmax(1)).all()
        assert (got[:, n:] == F32_MIN).all()


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "deberta-v2"])
def test_onnx_runtime_matches_eager_pytorch(family, family_encoders, tmp_path):
    model, processor = fitted_model(family_encoders[family], seed=1)
    folder = export_onnx(model, processor, tmp_path / "onnx", output_gate=True)
    runner = OnnxSurgeClassifier.from_pretrained(folder, num_threads=1)
    config = read_serving_config(folder)

    # inputs: token_type_ids only where the tokenizer makes them and the encoder reads them
    makes_types = "token_type_ids" in processor.tokenizer.model_input_names
    assert runner.input_names[:2] == ["input_ids", "attention_mask"]
    assert runner.input_names[-2:] == ["lexical_features", "task_ids"]
    assert ("token_type_ids" in runner.input_names) <= makes_types
    assert config["inputs"] == runner.input_names
    # dynamic batch and sequence axes
    shapes = {i.name: i.shape for i in runner.session.get_inputs()}
    assert all(isinstance(d, str) for d in shapes["input_ids"])
    assert shapes["lexical_features"][1] == processor.lexicon.num_features

    # mixed lengths, a batch of one, a text longer than any traced sample
    for texts in (TEXTS, TEXTS[:1], [LONG_TEXT, "ok"]):
        _assert_matches_eager(runner, model, processor, texts)
    # a mixed-task batch, the gate, and every task from one pass
    mixed = [list(TASKS)[i % 2] for i in range(len(TEXTS))]
    enc = processor(TEXTS, task=mixed, return_tensors="pt", padding=True)
    with torch.no_grad():
        eager = model(**enc, output_gate=True)
        every = model.forward_all_tasks(**{k: v for k, v in enc.items() if k != "task_ids"})
    logits, gate, all_logits = runner.run(dict(enc), ["logits", "gate", "all_logits"])
    np.testing.assert_allclose(logits, eager.logits.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(gate, eager.gate.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(all_logits, every.numpy(), atol=1e-4, rtol=0)
    assert config["parity"]["same_predictions"] and config["parity"]["max_abs_logit_diff"] <= 1e-4


@pytest.fixture(scope="module")
def minilm_export(tmp_path_factory, minilm_path):
    model, processor = fitted_model(minilm_path, seed=2)
    folder = export_onnx(model, processor, tmp_path_factory.mktemp("minilm") / "onnx", quantize=True)
    return model, processor, folder


def test_minilm_export_matches_eager_and_is_self_contained(minilm_export):
    model, processor, folder = minilm_export
    runner = OnnxSurgeClassifier.from_pretrained(folder, num_threads=2)
    _assert_matches_eager(runner, model, processor, TEXTS + [LONG_TEXT])
    files = {p.name for p in folder.iterdir()}
    assert {
        "model.onnx",
        "serving_config.json",
        "processor_config.json",
        "lexicon.json",
        "tokenizer.json",
    } <= files
    config = json.loads((folder / "serving_config.json").read_text())
    assert [t["name"] for t in config["tasks"]] == list(TASKS)  # an ordered list, not a sorted mapping
    assert [t["label_names"] for t in config["tasks"]] == [
        ["negative", "positive"],
        ["gpt", "llama", "human"],
    ]
    assert config["num_features"] == processor.lexicon.num_features == len(config["feature_names"])
    assert config["prefix"] is None and config["input_depends_on_task"] is False
    assert config["outputs"] == ["logits", "all_logits"] and config["opset"] == 18
    # the statistics are baked in: the folder has no weights file besides the graphs
    assert not any(name.endswith(".safetensors") for name in files)


def test_int8_graph_is_recorded_and_close_to_fp32(minilm_export):
    model, processor, folder = minilm_export
    config = read_serving_config(folder)
    assert config["quantized"] is True and config["quantized_model_file"] == "model_quantized.onnx"
    fp32 = OnnxSurgeClassifier.from_pretrained(folder, num_threads=2)
    int8 = OnnxSurgeClassifier.from_pretrained(folder, quantized=True, num_threads=2)
    assert (folder / "model_quantized.onnx").stat().st_size < 0.5 * (folder / "model.onnx").stat().st_size
    ops = {n.op_type for n in __import__("onnx").load(str(folder / "model_quantized.onnx")).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops
    assert "Gather" not in read_serving_config(folder)["quantization"]["op_types"]
    for task, n in TASKS.items():  # the fused graph's QAttention gave correlations near 0.5 here: garbage
        a, b = fp32.logits(TEXTS + [LONG_TEXT], task)[:, :n], int8.logits(TEXTS + [LONG_TEXT], task)[:, :n]
        assert not np.array_equal(a, b)  # really another graph
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98, task  # int8 noise, not garbage
    # quantizing again overwrites in place
    quantize_export(folder)
    assert read_serving_config(folder)["quantized"] is True


def test_task_prefix_export_has_no_all_tasks_output(family_encoders, tmp_path):
    model, processor = fitted_model(family_encoders["bert"], prefix="tokens", seed=3)
    folder = export_onnx(model, processor, tmp_path / "onnx")
    runner = OnnxSurgeClassifier.from_pretrained(folder)
    assert runner.input_depends_on_task and not runner.has_all_tasks_output
    assert runner.output_names == ["logits"]
    _assert_matches_eager(runner, model, processor, TEXTS)


def test_export_run_reads_a_saved_run_folder(family_encoders, tmp_path):
    model, processor = fitted_model(family_encoders["distilbert"], seed=4)
    model.save_pretrained(tmp_path / "run")
    processor.save_pretrained(tmp_path / "run")
    folder = export_run(tmp_path / "run", tmp_path / "onnx")
    _assert_matches_eager(OnnxSurgeClassifier.from_pretrained(folder), model, processor, TEXTS)
    with pytest.raises(FileExistsError, match="not empty; pass overwrite=True"):
        export_run(tmp_path / "run", tmp_path / "onnx")
    assert export_run(tmp_path / "run", tmp_path / "onnx", overwrite=True) == folder
    with pytest.raises(FileExistsError, match="not an ONNX export; refusing"):
        export_run(tmp_path / "run", tmp_path / "run", overwrite=True)
    with pytest.raises(ValueError, match="already an ONNX export"):
        export_run(folder, tmp_path / "again")
    with pytest.raises(FileNotFoundError, match="no saved model"):
        export_run(tmp_path, tmp_path / "again")


# ----------------------------------------------------------------------------------------------- bad input


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


def test_unfitted_statistics_are_refused(family_encoders, tmp_path):
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor

    path = family_encoders["bert"]
    model = SurgeForSequenceClassification.from_encoder_pretrained(path, tasks=TASKS, norm="iwn")
    processor = SurgeProcessor.from_encoder_pretrained(path, tasks=list(TASKS), prefix=None)
    with pytest.raises(ValueError, match="never fitted") as err:
        export_onnx(model, processor, tmp_path / "onnx")
    _one_line(err)
    assert not (tmp_path / "onnx").exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_broken_folders_give_one_line_errors(minilm_export, tmp_path):
    from surgellm_hf import Lexicon

    _, _, folder = minilm_export
    for name in (
        "lexicon.json",
        "model.onnx",
        "tokenizer.json",
        "serving_config.json",
        "processor_config.json",
    ):
        broken = tmp_path / f"no-{name}"
        shutil.copytree(folder, broken)
        (broken / name).unlink()
        if name == "tokenizer.json":
            (broken / "vocab.txt").unlink(missing_ok=True)
        with pytest.raises(FileNotFoundError) as err:
            OnnxSurgeClassifier.from_pretrained(broken)
        assert ("tokenizer vocabulary" if name == "tokenizer.json" else name) in _one_line(err)

    # a lexicon whose width does not match the graph's lexical_features input
    wrong = tmp_path / "wrong-lexicon"
    shutil.copytree(folder, wrong)
    Lexicon.from_dict({"format": "surgellm-lexicon", "format_version": 1, "name": "small",
                       "groups": {"good": ["good"], "bad": ["bad"]}}).to_json(wrong / "lexicon.json")  # fmt: skip
    processor_config = json.loads((wrong / "processor_config.json").read_text())
    processor_config.pop("feature_names")
    (wrong / "processor_config.json").write_text(json.dumps(processor_config))
    with pytest.raises(ValueError, match="gives 8 features but the graph takes 16") as err:
        OnnxSurgeClassifier.from_pretrained(wrong)
    _one_line(err)

    runner = OnnxSurgeClassifier.from_pretrained(folder)
    with pytest.raises(ValueError, match=r"unknown task 'nope'; valid tasks are \['sst2', 'llm7'\]") as err:
        runner.predict(["a text"], task="nope")
    _one_line(err)
    with pytest.raises(FileNotFoundError, match="not found"):
        OnnxSurgeClassifier.from_pretrained(tmp_path / "missing")
    int8_less = tmp_path / "fp32-only"
    shutil.copytree(folder, int8_less)
    config = json.loads((int8_less / "serving_config.json").read_text())
    config.update(quantized=False, quantized_model_file=None)
    (int8_less / "serving_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no int8 graph"):
        OnnxSurgeClassifier.from_pretrained(int8_less, quantized=True)


def test_a_model_without_the_gate_exports_without_feature_input(family_encoders, tmp_path):
    from surgellm_hf import SurgeForSequenceClassification, SurgeProcessor

    path = family_encoders["distilbert"]
    torch.manual_seed(0)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        path, tasks=TASKS, use_gate=False, norm="none"
    )
    processor = SurgeProcessor.from_encoder_pretrained(path, tasks=list(TASKS), prefix=None)
    folder = export_onnx(model.eval(), processor, tmp_path / "onnx")
    runner = OnnxSurgeClassifier.from_pretrained(folder)
    assert runner.input_names == ["input_ids", "attention_mask", "task_ids"]
    assert read_serving_config(folder)["uses_gate"] is False
    _assert_matches_eager(runner, model, processor, TEXTS)


def test_unsupported_opsets_are_refused_up_front_and_the_real_one_is_recorded(
    tiny_bert_with_tokenizer, tmp_path, capsys
):
    """`--opset 1` used to print the converter's traceback, exit 0 and record 1 beside an opset-18 graph."""
    import onnx

    from surgellm_hf.cli import main

    model, processor = fitted_model(tiny_bert_with_tokenizer, seed=5)
    model.save_pretrained(tmp_path / "run")
    processor.save_pretrained(tmp_path / "run")
    for opset in ("1", "17", "26"):
        capsys.readouterr()
        assert (
            main(["export", str(tmp_path / "run"), "--output", str(tmp_path / "onnx"), "--opset", opset]) == 2
        )
        err = capsys.readouterr().err
        assert err.strip() == (
            f"surgellm export: error: opset {opset} is not supported: the exporter and ONNX Runtime here support "
            "opsets 18 to 25 (default 18)"
        )
        assert not (tmp_path / "onnx").exists() and [p.name for p in tmp_path.iterdir()] == ["run"]
    with pytest.raises(ValueError, match="opset 16 is not supported"):
        export_onnx(model, processor, tmp_path / "onnx", opset=16)
    assert main(["export", str(tmp_path / "run"), "--output", str(tmp_path / "onnx"), "--opset", "21"]) == 0
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx"), load_external_data=False)
    assert [o.version for o in graph.opset_import if o.domain == ""] == [21]
    assert read_serving_config(tmp_path / "onnx")["opset"] == 21
    _assert_matches_eager(OnnxSurgeClassifier.from_pretrained(tmp_path / "onnx"), model, processor, TEXTS)


@pytest.mark.parametrize("family", ["bert", "deberta-v2"])
def test_the_default_export_is_fused_with_one_encoder_pass_and_parity(family, family_encoders, tmp_path):
    """ONNX Runtime's transformer fusions are applied (attention, skip LayerNorm, GELU; DeBERTa's disentangled
    attention has no fused form) on a graph holding ONE encoder pass for logits and all_logits, the parity check
    holds, and the model keeps its train/eval mode."""
    import collections

    import onnx

    model, processor = fitted_model(family_encoders[family], seed=5)
    model.train()
    folder = export_onnx(model, processor, tmp_path / "onnx")
    assert model.training  # the exporters switch modes; the model is left as it was
    config = read_serving_config(folder)
    layers = model.config.encoder_config.num_hidden_layers
    assert config["optimization"]["applied"] is True and config["optimization"]["exporter"] == "torchscript"
    assert config["parity"]["max_abs_logit_diff"] <= 1e-4 and "all_logits" in config["outputs"]
    ops = collections.Counter(n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node)
    assert ops["SkipLayerNormalization"] == 2 * layers  # two per layer: one encoder pass for both outputs
    if family == "bert":
        assert ops["Attention"] == layers and config["optimization"]["fused_operators"]["Attention"] == layers
    model.eval()
    _assert_matches_eager(OnnxSurgeClassifier.from_pretrained(folder), model, processor, TEXTS + [LONG_TEXT])
    plain = export_onnx(model, processor, tmp_path / "plain", optimize=False)
    assert read_serving_config(plain)["optimization"] == {
        "applied": False,
        "exporter": "dynamo",
        "reason": "not asked for (--no-optimize)",
    }
    plain_ops = {n.domain for n in onnx.load(str(plain / "model.onnx")).graph.node}
    assert "com.microsoft" not in plain_ops


def test_a_fused_graph_that_fails_parity_falls_back_to_the_plain_graph(
    family_encoders, tmp_path, monkeypatch
):
    import surgellm_hf.serving.export as export_module

    model, processor = fitted_model(family_encoders["bert"], seed=6)
    real = export_module.optimize_graph

    def broken(wrapper, sample, input_names, output_names, opset, path):  # a fused graph that is wrong
        fused = real(wrapper, sample, input_names, output_names, opset, path)
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path))
        for init in graph.graph.initializer:
            if "heads" in init.name and init.name.endswith("bias"):
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 1.0, init.name))
        onnx.save(graph, str(path))
        return fused

    monkeypatch.setattr(export_module, "optimize_graph", broken)
    folder = export_onnx(model, processor, tmp_path / "onnx")
    optimization = read_serving_config(folder)["optimization"]
    assert optimization["applied"] is False and "failed the parity check" in optimization["reason"]
    _assert_matches_eager(OnnxSurgeClassifier.from_pretrained(folder), model, processor, TEXTS)
