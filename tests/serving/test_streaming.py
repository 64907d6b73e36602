"""Streaming prediction: input order kept under length-sorted batching, bounded look-ahead, the input formats, the
`predict` command over a run folder and an exported folder, and one-line errors."""

from __future__ import annotations

import argparse
import io
import json
import random

import pytest

from surgellm_hf.inference import predict_texts
from surgellm_hf.serving.cli import add_export_command, add_predict_arguments, cmd_predict
from surgellm_hf.serving.streaming import count_rows, predict_file, read_rows, stream_predict
from tests._serving_utils import TASKS, TEXTS, fitted_model


class FakePredictor:
    """Records every batch it gets; a record echoes the text length, so order mistakes show."""

    task_names = ["a", "b"]
    default_task = "a"

    def __init__(self):
        self.batches: list[tuple[list[str], object]] = []

    def predict(self, texts, task=None, batch_size=32):
        self.batches.append((list(texts), task))
        if task == "all":
            return [{"tasks": {t: {"label": len(x)} for t in self.task_names}} for x in texts]
        tasks = task if isinstance(task, list) else [task or self.default_task] * len(texts)
        return [{"task": t, "label": len(x)} for x, t in zip(texts, tasks)]


def _shuffled_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    lengths = list(range(1, n + 1))
    rng.shuffle(lengths)
    return [{"id": i, "text": "x" * k} for i, k in enumerate(lengths)]


def test_output_keeps_input_order_with_length_sorted_batches_and_bounded_lookahead():
    rows = _shuffled_rows(203)
    pulled = []

    def source():
        for row in rows:
            pulled.append(row["id"])
            yield row

    fake = FakePredictor()
    out = []
    for row, record in stream_predict(fake, source(), batch_size=8, window=50):
        out.append((row, record))
        assert len(pulled) - len(out) < 50  # never more than one window read ahead of what was written
    assert [r["id"] for r, _ in out] == list(range(203))
    assert all(rec["label"] == len(row["text"]) for row, rec in out)
    # within each window the batches are sorted longest first, and no batch exceeds batch_size
    assert all(len(b) <= 8 for b, _ in fake.batches)
    for texts, _ in fake.batches:
        assert [len(t) for t in texts] == sorted((len(t) for t in texts), reverse=True)
    assert sum(len(b) for b, _ in fake.batches) == 203


def test_tasks_per_row_default_and_all():
    fake = FakePredictor()
    rows = [{"text": "aa", "task": "b"}, {"text": "b"}, {"text": "ccc", "task": ""}]
    got = [rec["task"] for _, rec in stream_predict(fake, rows, task="b")]
    assert got == ["b", "b", "b"]
    assert [rec["task"] for _, rec in stream_predict(fake, rows)] == ["b", "a", "a"]
    every = [rec for _, rec in stream_predict(fake, rows, task="all")]
    assert every[0] == {"tasks": {"a": {"label": 2}, "b": {"label": 2}}}
    with pytest.raises(ValueError, match=r"unknown task 'c'; valid tasks are \['a', 'b'\]"):
        list(stream_predict(fake, rows, task="c"))


def test_input_formats(tmp_path, monkeypatch):
    (tmp_path / "in.jsonl").write_text('{"text": "one", "id": 1}\n\n{"text": "two", "task": "b"}\n')
    assert list(read_rows(tmp_path / "in.jsonl")) == [{"text": "one", "id": 1}, {"text": "two", "task": "b"}]
    (tmp_path / "in.csv").write_text('id,body,task\n1,"a, quoted ""text""",a\n2,"two\nlines",\n')
    assert list(read_rows(tmp_path / "in.csv", text_field="body")) == [
        {"id": "1", "body": 'a, quoted "text"', "task": "a"},
        {"id": "2", "body": "two\nlines", "task": ""},
    ]
    (tmp_path / "in.tsv").write_text("text\tid\nhello there\t7\n")
    assert list(read_rows(tmp_path / "in.tsv")) == [{"text": "hello there", "id": "7"}]
    (tmp_path / "in.txt").write_text("first line\n\nsecond {line}\n")
    assert list(read_rows(tmp_path / "in.txt")) == [{"text": "first line"}, {"text": "second {line}"}]
    assert (
        count_rows(tmp_path / "in.txt") == 2 and count_rows(tmp_path / "in.csv") == 3
    )  # CSV: an upper bound
    monkeypatch.setattr("sys.stdin", io.StringIO('\n{"text": "from stdin"}\n'))
    assert list(read_rows("-")) == [{"text": "from stdin"}]
    monkeypatch.setattr("sys.stdin", io.StringIO("plain\nlines\n"))
    assert list(read_rows("-")) == [{"text": "plain"}, {"text": "lines"}]


def test_bad_inputs_are_one_line_errors(tmp_path):
    fake = FakePredictor()
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(ValueError, match="input line 2 is not valid JSON"):
        predict_file(fake, tmp_path / "bad.jsonl", tmp_path / "out.jsonl", progress=False)
    (tmp_path / "notext.jsonl").write_text('{"body": "x"}\n')
    with pytest.raises(ValueError, match="input line 1 needs a string field 'text'"):
        predict_file(fake, tmp_path / "notext.jsonl", tmp_path / "out.jsonl", progress=False)
    (tmp_path / "in.csv").write_text("id,body\n1,x\n")
    with pytest.raises(ValueError, match=r"no 'text' column \(columns: \['id', 'body'\]\)"):
        predict_file(fake, tmp_path / "in.csv", tmp_path / "out.jsonl", progress=False)
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ValueError, match="no input texts"):
        predict_file(fake, tmp_path / "empty.jsonl", tmp_path / "never.jsonl", progress=False)
    assert not (tmp_path / "never.jsonl").exists()
    with pytest.raises(FileNotFoundError, match="input file not found"):
        predict_file(fake, tmp_path / "missing.jsonl", tmp_path / "out.jsonl", progress=False)
    with pytest.raises(ValueError, match="window must be a positive integer"):
        list(stream_predict(fake, [{"text": "x"}], window=0))


# ------------------------------------------------------------------------------------- the predict command


@pytest.fixture(scope="module")
def run_and_export(tmp_path_factory, tiny_bert_with_tokenizer):
    """A saved run folder (model + processor) and its ONNX export, through the `export` command."""
    root = tmp_path_factory.mktemp("predict_cli")
    model, processor = fitted_model(tiny_bert_with_tokenizer, seed=7)
    model.save_pretrained(root / "run")
    processor.save_pretrained(root / "run")
    args = _parser().parse_args(["export", str(root / "run"), "--output", str(root / "onnx")])
    assert args.func(args) == 0
    return model, processor, root / "run", root / "onnx"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="surgellm")
    sub = parser.add_subparsers(dest="command", required=True)
    add_export_command(sub)
    p = sub.add_parser("predict")
    add_predict_arguments(p)
    p.set_defaults(func=cmd_predict)
    return parser


def _predict(*argv: str) -> int:
    args = _parser().parse_args(["predict", *argv])
    return args.func(args)


def test_predict_command_streams_a_shuffled_input_through_both_backends(run_and_export, tmp_path, capfd):
    model, processor, run_dir, onnx_dir = run_and_export
    rng = random.Random(1)
    texts = [" ".join(rng.choice(TEXTS).split()[: rng.randint(1, 12)]) or "ok" for _ in range(57)]
    tasks = [rng.choice([*TASKS, None]) for _ in texts]
    with open(tmp_path / "in.jsonl", "w") as f:
        for i, (text, task) in enumerate(zip(texts, tasks)):
            f.write(json.dumps({"id": i, "text": text, **({"task": task} if task else {})}) + "\n")
    capfd.readouterr()
    outputs = {}
    for name, model_dir in (("torch", run_dir), ("onnx", onnx_dir)):
        out = tmp_path / f"{name}.jsonl"
        assert _predict(str(model_dir), "--input", str(tmp_path / "in.jsonl"), "--output", str(out),
                        "--task", "llm7", "--batch-size", "4", "--window", "10") == 0  # fmt: skip
        outputs[name] = [json.loads(line) for line in out.read_text().splitlines()]
        err = capfd.readouterr().err
        assert "57/57" in err  # the progress bar, on stderr
    ref = predict_texts(model, processor, texts, [t or "llm7" for t in tasks])
    for name, rows in outputs.items():
        assert [r["id"] for r in rows] == list(range(57)), name
        assert [r["text"] for r in rows] == texts
        assert [(r["task"], r["label"], r["label_name"]) for r in rows] == [
            (x["task"], x["label"], x["label_name"]) for x in ref
        ]
        for r, x in zip(rows, ref):
            assert r["scores"] == pytest.approx(x["scores"], abs=1e-5)


def test_predict_command_task_all_to_stdout(run_and_export, tmp_path, capfd):
    model, processor, _, onnx_dir = run_and_export
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    capfd.readouterr()
    assert _predict(str(onnx_dir), "--input", str(tmp_path / "in.txt"), "--task", "all", "--no-progress") == 0
    captured = capfd.readouterr()
    assert captured.err == ""
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    for t in TASKS:
        ref = predict_texts(model, processor, TEXTS, t)
        assert [r["tasks"][t]["label_name"] for r in rows] == [x["label_name"] for x in ref]


def test_predict_command_errors(run_and_export, tmp_path):
    _, _, run_dir, onnx_dir = run_and_export
    (tmp_path / "in.jsonl").write_text('{"text": "x", "task": "nope"}\n')
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        _predict(str(onnx_dir), "--input", str(tmp_path / "in.jsonl"), "--no-progress")
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        _predict(str(run_dir), "--input", str(tmp_path / "in.jsonl"), "--no-progress")
    with pytest.raises(ValueError, match="int8 needs `surgellm export --quantize`"):
        _predict(str(run_dir), "--int8", "--input", str(tmp_path / "in.jsonl"))
    with pytest.raises(ValueError, match="no int8 graph"):
        _predict(str(onnx_dir), "--int8", "--input", str(tmp_path / "in.jsonl"))
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        _predict(str(tmp_path / "nothing"), "--input", str(tmp_path / "in.jsonl"))
    args = _parser().parse_args(["export", str(run_dir), "--output", str(onnx_dir)])
    with pytest.raises(ValueError, match="not empty; pass overwrite=True"):
        args.func(args)
