"""Sentence-pair tasks (issue 13): TaskSpec.text_pair_column, loading checks, the processor's pair encoding and
truncation, pair features, and a mixed pair + single-text run through train, save/load, predict, pipeline, remote code.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoTokenizer

from surgellm_hf import Lexicon, SurgeProcessor
from surgellm_hf.cli import main
from surgellm_hf.data.loading import load_folder, load_run_data, load_tasks
from surgellm_hf.data.task_spec import TaskSpec
from surgellm_hf.processing_surge import pair_lengths
from tests._helpers import run_isolated
from tests.test_processing_surge import tokenizer_dirs  # noqa: F401  (BERT WordPiece and RoBERTa byte-level BPE)

TASKS = ["sst", "nli"]  # not alphabetical: the order must survive every file
assert TASKS != sorted(TASKS)
PAIRS = [
    ("The cat sat on the mat.", "A cat is sitting!"),
    ("Results show a clear trend; moreover it is great.", "Is the trend clear?"),
    ("ok", "maybe 42"),
]


def make(dirs, family: str = "bert", **kwargs) -> SurgeProcessor:
    kwargs.setdefault("tasks", TASKS)
    kwargs.setdefault("pair_tasks", ["nli"])
    return SurgeProcessor.from_encoder_pretrained(dirs[family], **kwargs)


# ----------------------------------------------------------------------------- encoding
@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "deberta-v2"])
@pytest.mark.parametrize("prefix", ["text", "tokens", None])
def test_pair_encoding_is_the_tokenizers_own_after_the_prefix(tokenizer_dirs, family, prefix):  # noqa: F811
    proc = make(tokenizer_dirs, family, prefix=prefix, max_length=512)
    tok = proc.tokenizer  # the "tokens" style added its prefix tokens to this tokenizer
    texts, pairs = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    out = proc(texts, text_pair=pairs, task="nli")
    for i, (a, b) in enumerate(PAIRS):
        features = Lexicon.curated().featurize([a + " " + b])[0]
        first = a if prefix is None else proc.make_prefix(features, "nli") + " " + a
        ref = tok(first, b)
        assert out["input_ids"][i] == ref["input_ids"]
        assert ("token_type_ids" in out) == (family in ("bert", "deberta-v2"))
        if "token_type_ids" in out:
            assert out["token_type_ids"][i] == ref["token_type_ids"]
        tokens = tok.convert_ids_to_tokens(out["input_ids"][i])
        n_b = len(tok(b, add_special_tokens=False)["input_ids"])
        if family == "bert":  # [CLS] prefix a [SEP] b [SEP]; segment 1 is b and its [SEP]
            assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens[-2 - n_b] == "[SEP]"
            assert out["token_type_ids"][i] == [0] * (len(tokens) - n_b - 1) + [1] * (n_b + 1)
        elif family == "roberta":  # <s> prefix a </s></s> b </s>
            assert tokens[0] == "<s>" and tokens[-1] == "</s>"
            assert tokens[-3 - n_b : -1 - n_b] == ["</s>", "</s>"]
        if prefix is not None:  # the whole prefix sits right after the first special token
            n_prefix = proc._prefix_token_count(proc.make_prefix(features, "nli"))
            prefix_ids = tok(proc.make_prefix(features, "nli"), add_special_tokens=False)["input_ids"]
            assert out["input_ids"][i][1 : 1 + n_prefix] == prefix_ids


def test_a_mixed_batch_equals_its_rows_and_pads(tokenizer_dirs):  # noqa: F811
    proc = make(tokenizer_dirs, prefix="text", max_length=256)
    texts = ["a single text here", PAIRS[0][0], PAIRS[1][0]]
    batch = proc(texts, text_pair=[None, PAIRS[0][1], PAIRS[1][1]], task=["sst", "nli", "nli"])
    assert batch["input_ids"][0] == proc(texts[0], task="sst")["input_ids"]
    assert batch["input_ids"][1] == proc(PAIRS[0][0], text_pair=PAIRS[0][1], task="nli")["input_ids"]
    assert batch["task_ids"] == [0, 1, 1]
    padded = proc(texts, text_pair=[None, PAIRS[0][1], PAIRS[1][1]], task=["sst", "nli", "nli"],
                  return_tensors="pt", padding=True)  # fmt: skip
    longest = max(len(ids) for ids in batch["input_ids"])
    assert padded["input_ids"].shape == (3, longest)
    for i, ids in enumerate(batch["input_ids"]):
        assert padded["input_ids"][i, : len(ids)].tolist() == ids
        assert padded["attention_mask"][i].tolist() == [1] * len(ids) + [0] * (longest - len(ids))
        assert padded["token_type_ids"][i, : len(ids)].tolist() == batch["token_type_ids"][i]
    one = proc(PAIRS[0][0], text_pair=PAIRS[0][1], task="nli", return_tensors="pt")
    assert one["input_ids"].shape[0] == 1 and one["task_ids"].tolist() == [1]


# ----------------------------------------------------------------------------- truncation
@pytest.mark.parametrize(
    ("n_a", "n_b", "budget", "expected"),
    [
        (10, 4, 8, (4, 4)),  # the shorter fits in half the budget: kept; the longer gets the rest
        (3, 10, 8, (3, 5)),
        (10, 9, 8, (4, 4)),  # both longer than half: each keeps half
        (10, 9, 7, (4, 3)),  # odd budget: the longer keeps the extra token
        (9, 10, 7, (3, 4)),
        (6, 6, 7, (3, 4)),  # a tie: text_pair keeps the extra token
        (2, 3, 8, (2, 3)),  # both fit: nothing cut
        (5, 5, 0, (0, 0)),
    ],
)
def test_pair_lengths_by_hand(n_a, n_b, budget, expected):
    assert pair_lengths(n_a, n_b, budget) == expected


def test_truncation_without_prefix_is_the_tokenizers_longest_first(tokenizer_dirs):  # noqa: F811
    proc = make(tokenizer_dirs, prefix=None)
    tok = AutoTokenizer.from_pretrained(tokenizer_dirs["bert"])
    rng = random.Random(0)
    words = "the cat sat on a mat while dogs ran far away".split()
    for _ in range(60):
        a = " ".join(rng.choice(words) for _ in range(rng.randint(1, 15)))
        b = " ".join(rng.choice(words) for _ in range(rng.randint(1, 15)))
        length = rng.randint(3, 30)
        got = proc(a, text_pair=b, task="nli", max_length=length)
        ref = tok(a, b, truncation="longest_first", max_length=length)
        assert got["input_ids"] == ref["input_ids"], (a, b, length)


@pytest.mark.parametrize("prefix", ["tokens", "text"])
def test_truncation_keeps_the_prefix_and_cuts_the_texts_by_hand(tokenizer_dirs, prefix):  # noqa: F811
    proc = make(tokenizer_dirs, prefix=prefix, max_length=512)
    tok = proc.tokenizer
    a, b = " ".join(["cat"] * 10), " ".join(["dog"] * 9)  # one WordPiece token per word
    features = proc.lexicon.featurize([a + " " + b])[0]
    pre = proc.make_prefix(features, "nli")
    n_prefix = len(tok(pre, add_special_tokens=False)["input_ids"])
    for budget, (keep_a, keep_b) in [(8, (4, 4)), (7, (4, 3)), (15, (8, 7)), (19, (10, 9))]:
        out = proc(a, text_pair=b, task="nli", max_length=n_prefix + 3 + budget)
        first = pre + " " + " ".join(["cat"] * keep_a)
        assert out["input_ids"] == tok(first, " ".join(["dog"] * keep_b))["input_ids"], budget
        assert len(out["input_ids"]) == n_prefix + 3 + keep_a + keep_b
    # no room for text: [CLS] prefix [SEP] [SEP], both texts cut to nothing, the prefix whole
    out = proc(a, text_pair=b, task="nli", max_length=n_prefix + 3)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    assert out["input_ids"] == [cls, *tok(pre, add_special_tokens=False)["input_ids"], sep, sep]
    assert proc.prefix_length(a, task="nli", text_pair=b) == n_prefix
    assert out["token_type_ids"] == [0] * (n_prefix + 2) + [1]
    with pytest.raises(ValueError, match="special tokens of a sentence pair"):
        proc(a, text_pair=b, task="nli", max_length=n_prefix + 2)


# ----------------------------------------------------------------------------- features
def test_pair_features_are_the_features_of_both_texts_joined_by_a_space(tokenizer_dirs):  # noqa: F811
    lexicon = Lexicon({"pos": ["great"], "hedge": ["maybe"]}, name="tiny")
    proc = make(tokenizer_dirs, lexicon=lexicon, prefix="text")
    out = proc("Great film!", text_pair="Maybe it is great?", task="nli")
    # by hand: "great" in both texts counts once (distinct entries), "maybe" once; 6 words of 5,5,5,2,2,6 code
    # points; sentences "Great film" and " Maybe it is great"; one '?', one '!', no digit
    assert out["lexical_features"] == pytest.approx([1, 1, 6, 25 / 6, 2, 1, 1, 0])
    joined = lexicon.featurize(["Great film! Maybe it is great?"])[0]
    np.testing.assert_array_equal(np.float32(out["lexical_features"]), joined)
    texts, pairs = [a for a, _ in PAIRS], [b for _, b in PAIRS]
    batch = proc(texts, text_pair=pairs, task="nli")
    np.testing.assert_array_equal(
        np.float32(batch["lexical_features"]), lexicon.featurize([a + " " + b for a, b in PAIRS])
    )


# ----------------------------------------------------------------------------- errors and config
def test_pair_and_single_text_tasks_are_not_mixed_up(tokenizer_dirs):  # noqa: F811
    proc = make(tokenizer_dirs)
    with pytest.raises(ValueError, match=r"\['nli'\] take sentence pairs.*rows 0, 1"):
        proc(["a", "b"], task="nli")
    with pytest.raises(ValueError, match=r"\['sst'\] take a single text but text_pair is given in rows 1"):
        proc(["a", "b"], text_pair=[None, "c"], task="sst")
    with pytest.raises(ValueError, match=r"\['nli'\] take sentence pairs but text_pair is None in rows 0"):
        proc(["a", "b"], text_pair=[None, "c"], task=["nli", "nli"])
    with pytest.raises(ValueError, match="text_pair has 1 entries for 2 texts"):
        proc(["a", "b"], text_pair=["c"], task="nli")
    with pytest.raises(TypeError, match="text_pair must be a list"):
        proc(["a", "b"], text_pair="c", task="nli")
    with pytest.raises(ValueError, match=r"pair_tasks names unknown task\(s\) \['qqp'\]"):
        make(tokenizer_dirs, pair_tasks=["qqp"])
    assert make(tokenizer_dirs, pair_tasks=None).pair_tasks == []


def test_pair_tasks_round_trip_in_task_order(tokenizer_dirs, tmp_path):  # noqa: F811
    proc = make(tokenizer_dirs, tasks=["sst", "qqp", "nli"], pair_tasks=["nli", "qqp"], prefix="text")
    assert proc.pair_tasks == ["qqp", "nli"]
    proc.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["pair_tasks"] == ["qqp", "nli"] and saved["tasks"] == ["sst", "qqp", "nli"]
    loaded = SurgeProcessor.from_pretrained(tmp_path)
    assert loaded.pair_tasks == ["qqp", "nli"]
    want = proc(PAIRS[0][0], text_pair=PAIRS[0][1], task="qqp")
    assert loaded(PAIRS[0][0], text_pair=PAIRS[0][1], task="qqp")["input_ids"] == want["input_ids"]


# ----------------------------------------------------------------------------- loading
def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_task_spec_and_loading_keep_the_pair_column_as_text_pair(tmp_path):
    rows = [{"id": f"r{i}", "premise": f"p {i}", "hyp": f"h {i}", "label": i % 2} for i in range(4)]
    _write_jsonl(tmp_path / "nli" / "train.jsonl", rows)
    _write_jsonl(tmp_path / "nli" / "validation.jsonl", rows)
    spec = {"source": str(tmp_path / "nli"), "text_column": "premise", "text_pair_column": "hyp"}
    assert TaskSpec.from_dict(spec, name="nli").to_dict()["text_pair_column"] == "hyp"
    data = load_tasks({"nli": spec})
    assert sorted(data["nli"]["train"].column_names) == ["id", "label", "text", "text_pair"]
    assert data["nli"]["validation"]["text_pair"] == [f"h {i}" for i in range(4)]
    folder = load_run_data({"folder": str(tmp_path), "tasks": ["nli"], "text_column": "premise",
                            "text_pair_column": {"nli": "hyp"}})  # fmt: skip
    assert folder["nli"]["train"]["text_pair"] == [f"h {i}" for i in range(4)]
    with pytest.raises(ValueError, match="text_pair_column 'premise' is also the text or label column"):
        TaskSpec(name="nli", source="x.jsonl", text_column="premise", text_pair_column="premise")
    with pytest.raises(ValueError, match=r"text_pair_column given for unknown task\(s\) \['qqp'\]"):
        load_folder(tmp_path, tasks=["nli"], text_pair_column={"qqp": "hyp"})


def test_bad_pair_rows_are_named_before_anything_trains(tmp_path):
    good = [{"id": f"g{i}", "text": "a", "text_pair": "b", "label": i % 2} for i in range(3)]
    bad = [
        {"id": "x1", "text": "a", "text_pair": None, "label": 0},
        {"id": "x2", "text": "a", "text_pair": "  ", "label": 1},
        {"id": "x3", "text": "a", "text_pair": 7, "label": 0},
    ]
    _write_jsonl(tmp_path / "nli" / "train.jsonl", good + bad)
    _write_jsonl(tmp_path / "nli" / "validation.jsonl", good)
    with pytest.raises(ValueError) as err:
        load_folder(tmp_path, tasks=["nli"], text_pair_column="text_pair")
    message = str(err.value)
    assert "task 'nli', split 'train'" in message and "column 'text_pair'" in message
    assert "3 missing, empty or non-string" in message and "rows 3, 4, 5" in message
    assert "ids 'x1', 'x2', 'x3'" in message
    _write_jsonl(tmp_path / "nli" / "train.jsonl", [{"text": "a", "label": 0}])
    with pytest.raises(ValueError, match=r"split 'train'.*missing column\(s\) \['text_pair'\]"):
        load_folder(tmp_path, tasks=["nli"], text_pair_column="text_pair")


# ----------------------------------------------------------------------------- end to end
NLI_WORDS = ["cat", "dog", "mat", "sun", "tree", "car"]


def _pair_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a = " ".join(rng.choice(NLI_WORDS) for _ in range(5))
        same = i % 2 == 0
        b = " ".join(rng.choice(a.split()) if same else rng.choice(NLI_WORDS) for _ in range(3))
        rows.append({"id": f"n{seed}-{i}", "premise": a, "hypothesis": b, "label": int(same)})
    return rows


def _single_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    good, bad = ["great", "superb", "lovely"], ["dull", "awful", "boring"]
    return [
        {"id": f"s{seed}-{i}", "premise": f"a {rng.choice(good if i % 2 else bad)} film", "label": i % 2}
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory, tiny_bert_with_tokenizer) -> Path:
    """A mixed run (single-text "sst" then pair "nli") trained through `surgellm train`."""
    tmp = tmp_path_factory.mktemp("pairs")
    for split, n, seed in (("train", 16, 0), ("validation", 8, 1), ("test", 8, 2)):
        _write_jsonl(tmp / "data" / "sst" / f"{split}.jsonl", _single_rows(n, seed))
        _write_jsonl(tmp / "data" / "nli" / f"{split}.jsonl", _pair_rows(n, seed))
    config = {
        "encoder": str(tiny_bert_with_tokenizer),
        "data": {
            "folder": str(tmp / "data"),
            "tasks": TASKS,
            "text_column": "premise",
            "text_pair_column": {"nli": "hypothesis"},
        },
        "variant": "FULL",
        "epochs": 1,
        "learning_rate": 1e-3,
        "batch_size": 8,
        "max_length": 64,
        "prefix_style": "tokens",  # pinned: the text prefix needs max_length >= 86
        "seed": 0,
        "disable_tqdm": True,
        "output_dir": str(tmp / "run"),
    }
    (tmp / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp / "run.yaml")]) == 0
    return tmp / "run"


def _expected(run: Path, texts: list[str], pairs: list[str | None], tasks: list[str]) -> np.ndarray:
    from surgellm_hf.inference import load_run_model

    model, processor = load_run_model(run)
    with torch.no_grad():
        inputs = processor(texts, text_pair=pairs, task=tasks, return_tensors="pt", padding=True)
        return model(**inputs).logits.numpy()


def test_mixed_run_saves_pair_tasks_and_scores_both_tasks(pair_run):
    saved = json.loads((pair_run / "processor_config.json").read_text())
    assert saved["tasks"] == TASKS and saved["pair_tasks"] == ["nli"]
    metrics = json.loads((pair_run / "metrics.json").read_text())
    assert set(metrics["tasks"]) == set(TASKS)
    assert metrics["tasks"]["nli"]["test"]["n"] == 8
    loaded = SurgeProcessor.from_pretrained(pair_run)
    assert loaded.pair_tasks == ["nli"]


def test_predict_jsonl_with_text_pair(pair_run, tmp_path, capsys):
    rows = [
        {"text": "cat dog mat sun tree", "text_pair": "cat dog", "task": "nli"},
        {"text": "a superb film"},  # --task sst
        {"text": "car sun", "text_pair": "tree", "task": "nli", "extra": 1},
    ]
    _write_jsonl(tmp_path / "in.jsonl", rows)
    capsys.readouterr()
    assert main(["predict", str(pair_run), "--input", str(tmp_path / "in.jsonl"), "--task", "sst"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["task"] for x in lines] == ["nli", "sst", "nli"]
    assert lines[0]["text_pair"] == "cat dog" and lines[2]["extra"] == 1
    logits = _expected(
        pair_run, [r["text"] for r in rows], [r.get("text_pair") for r in rows], ["nli", "sst", "nli"]
    )
    for line, row in zip(lines, logits):
        probs = torch.softmax(torch.tensor(row[:2], dtype=torch.float64), -1).numpy()
        np.testing.assert_allclose(list(line["scores"].values()), probs, atol=1e-5)
    _write_jsonl(tmp_path / "bad.jsonl", [{"text": "cat", "task": "nli"}])
    assert main(["predict", str(pair_run), "--input", str(tmp_path / "bad.jsonl")]) == 2
    assert "['nli'] take sentence pairs" in capsys.readouterr().err


def test_pipeline_takes_text_pair_dicts(pair_run):
    from surgellm_hf.inference import load_run_model
    from surgellm_hf.pipeline_surge import SurgeTextClassificationPipeline

    model, processor = load_run_model(pair_run)
    clf = SurgeTextClassificationPipeline(model=model, processor=processor, device=-1)
    pairs = [{"text": a, "text_pair": b} for a, b in PAIRS]
    logits = _expected(pair_run, [a for a, _ in PAIRS], [b for _, b in PAIRS], ["nli"] * 3)
    probs = torch.softmax(torch.tensor(logits[:, :2]), -1).numpy()
    one = clf(pairs[0], task="nli")
    assert one["score"] == pytest.approx(probs[0].max(), abs=1e-5)
    many = clf(pairs, task="nli", top_k=None)
    for answer, row in zip(many, probs):
        np.testing.assert_allclose(sorted(d["score"] for d in answer), sorted(row), atol=1e-5)
    with pytest.raises(ValueError, match="take sentence pairs"):
        clf("a single text", task="nli")
    with pytest.raises(ValueError, match="take a single text"):
        clf(pairs[0], task="sst")
    with pytest.raises(TypeError, match="text_pair"):
        clf({"text": "only a text"}, task="nli")


def test_remote_code_without_the_package_handles_pairs(pair_run, tmp_path):
    logits = _expected(pair_run, [a for a, _ in PAIRS], [b for _, b in PAIRS], ["nli"] * 3)
    got = run_isolated(
        f"""
        import json, torch
        from transformers import AutoModelForSequenceClassification, AutoProcessor, pipeline
        path = {str(pair_run)!r}
        model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        texts, pairs = {[a for a, _ in PAIRS]!r}, {[b for _, b in PAIRS]!r}
        with torch.no_grad():
            logits = model(**processor(texts, text_pair=pairs, task="nli", return_tensors="pt", padding=True)).logits
        clf = pipeline("text-classification", model=path, trust_remote_code=True)
        answers = clf([{{"text": a, "text_pair": b}} for a, b in zip(texts, pairs)], task="nli", top_k=None)
        print(json.dumps({{"logits": logits.tolist(), "answers": answers, "pair_tasks": processor.pair_tasks,
                          "module": type(processor).__module__}}))
        """,
        tmp_path,
    )
    assert got["module"].startswith("transformers_modules") and got["pair_tasks"] == ["nli"]
    np.testing.assert_allclose(np.asarray(got["logits"]), logits, atol=1e-5)
    probs = torch.softmax(torch.tensor(logits[:, :2]), -1).numpy()
    for answer, row in zip(got["answers"], probs):
        np.testing.assert_allclose(sorted(d["score"] for d in answer), sorted(row), atol=1e-5)


def test_evaluate_command_scores_the_pair_task(pair_run, tmp_path, capsys):
    assert main(["evaluate", str(pair_run), "--split", "test", "--output", str(tmp_path / "m.json")]) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    saved = json.loads((pair_run / "metrics.json").read_text())
    assert result["tasks"]["nli"]["macro_f1"] == pytest.approx(saved["tasks"]["nli"]["test"]["macro_f1"])


def test_frozen_encoder_cache_keys_and_states_of_pairs(pair_run, tmp_path):
    """Cached first-token states of pair rows: keyed on the pair's ids (same first text, other second text: other
    key) and equal to the encoder's states computed directly on the collated pair batch."""
    from surgellm_hf.data.data_collator import SurgeDataCollator
    from surgellm_hf.data.encoding import encode_split, pair_task_names
    from surgellm_hf.inference import load_run_model
    from surgellm_hf.training.encoder_cache import EncoderStateCache, _row_keys, cache_first_token_states

    model, processor = load_run_model(pair_run)
    model.freeze_encoder()
    rows = [{"id": str(i), "premise": "cat dog mat", "hypothesis": h, "label": i % 2} for i, h in
            enumerate(["cat", "dog sun", "cat"])]  # fmt: skip
    _write_jsonl(tmp_path / "d" / "nli" / "train.jsonl", rows)
    data = load_folder(tmp_path / "d", tasks=["nli"], required=["train"], text_column="premise",
                       text_pair_column="hypothesis", label_names={"nli": ["c0", "c1"]})  # fmt: skip
    assert pair_task_names(data) == ["nli"]
    ds = encode_split(data, processor, "train")
    keys = _row_keys(ds)
    assert keys[0] != keys[1] and keys[0] == keys[2]
    collator = SurgeDataCollator(processor.tokenizer)
    cache = EncoderStateCache(tmp_path / "states", "fp")
    cached = cache_first_token_states(model, ds, collator, cache=cache)
    batch = collator([{k: r[k] for k in ("input_ids", "attention_mask", "token_type_ids")} for r in ds])
    with torch.no_grad():
        direct = model.surge.first_token_states(**batch).numpy()
    np.testing.assert_allclose(np.asarray(cached["first_token_state"]), direct, atol=1e-5)
    assert 1 in batch["token_type_ids"][0].tolist()  # the pair's second segment reached the encoder


def test_onnx_export_serves_pair_tasks_with_the_eager_predictions(pair_run, tmp_path, capsys):
    """A mixed pair + single-text run exports (parity checked on pairs at export time), and `surgellm predict`
    on the export gives the run folder's records for a JSONL of pairs and single texts, to ONNX precision."""
    from surgellm_hf.serving import OnnxSurgeClassifier, read_serving_config

    assert main(["export", str(pair_run), "--output", str(tmp_path / "onnx")]) == 0
    config = read_serving_config(tmp_path / "onnx")
    assert [t["text_pair"] for t in config["tasks"]] == [False, True]
    assert config["parity"]["max_abs_logit_diff"] <= 1e-4 and config["parity"]["same_predictions"]
    assert "token_type_ids" in config["inputs"]  # the pair's segments reach the graph
    rows = [
        {"text": "cat dog mat sun tree", "text_pair": "cat dog", "task": "nli"},
        {"text": "a superb film", "task": "sst"},
        {"text": "car sun", "text_pair": "tree tree car", "task": "nli"},
        {"text": "mat", "text_pair": "sun sun sun sun sun sun", "task": "nli"},
    ]
    _write_jsonl(tmp_path / "in.jsonl", rows)
    outputs = {}
    for name, model in (("eager", pair_run), ("onnx", tmp_path / "onnx")):
        capsys.readouterr()
        assert main(["predict", str(model), "--input", str(tmp_path / "in.jsonl"), "--no-progress"]) == 0
        outputs[name] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    for eager, onnx in zip(outputs["eager"], outputs["onnx"]):
        assert onnx["label"] == eager["label"] and onnx["task"] == eager["task"]
        np.testing.assert_allclose(list(onnx["scores"].values()), list(eager["scores"].values()), atol=1e-5)
    logits = _expected(pair_run, [r["text"] for r in rows], [r.get("text_pair") for r in rows],
                       [r["task"] for r in rows])  # fmt: skip
    runner = OnnxSurgeClassifier.from_pretrained(tmp_path / "onnx")
    got = runner.logits(
        [r["text"] for r in rows], [r["task"] for r in rows], [r.get("text_pair") for r in rows]
    )
    np.testing.assert_allclose(got[:, :2], logits[:, :2], atol=1e-4)
    with pytest.raises(ValueError, match=r"\['nli'\] take sentence pairs"):
        runner.predict(["cat"], task="nli")
