"""SurgeProcessor: prefix styles, truncation, outputs per tokenizer family, save/load/push round trips, checks."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, AutoTokenizer
from transformers.processing_utils import ProcessorMixin

from surgellm_hf.lexicon import CURATED_GROUPS, Lexicon
from surgellm_hf.processing_surge import COUNT_BUCKETS, LINEAR_BUCKETS, SurgeProcessor, feature_bucket

TASKS = ["sst2", "hotpot"]
FAMILIES = ["bert", "distilbert", "roberta", "deberta-v2"]
TEXTS = ["Captivating! I think (1) it is great.", "", "Привет, мир! 42?", "results\nshow\tthat " * 3]
CAPTIVATING_TEXT_PREFIX = (
    "[TASK:sst2|F1:1|F2:0|F3:0|F4:0|F5:0|F6:0|F7:0|F8:0|F9:0|F10:0|F11:1|F12:12|F13:1|F14:0|F15:1|F16:0]"
)
# "Captivating!": sst_pos 1 -> B1; word count 1 -> B1; mean word length 12 (linear) -> B12; one sentence -> B1;
# one "!" -> B1; everything else 0 -> B0
CAPTIVATING_TOKENS = (
    ["[SURGE_TASK_sst2]", "[SURGE_F1_B1]"]
    + [f"[SURGE_F{j}_B0]" for j in range(2, 11)]
    + [
        "[SURGE_F11_B1]",
        "[SURGE_F12_B12]",
        "[SURGE_F13_B1]",
        "[SURGE_F14_B0]",
        "[SURGE_F15_B1]",
        "[SURGE_F16_B0]",
    ]
)
# what a saved processor folder holds: settings, lexicon, remote code (with its flat siblings), tokenizer
SAVED_FILES = {
    "processor_config.json",
    "lexicon.json",
    "processing_surge.py",
    "lexicon.py",
    "features.py",
    "tokenizer_config.json",
    "tokenizer.json",
}

# what SurgeProcessor adds to ProcessorMixin's processor_config.json (the settings of __init__, auto_map, class)
SURGE_CONFIG_KEYS = {
    "surge_processor_version",
    "prefix_buckets",
    "lexicon_file",
    "lexicon_name",
    "num_features",
    "feature_names",
}
OLD_LEXICON = Lexicon({"pos": ["great", "captivat*"], "list": ["(1)", "results show"]}, name="mine")
# processor_config.json exactly as SurgeProcessor.to_dict wrote it before ProcessorMixin did the saving
OLD_PROCESSOR_CONFIG = {
    "auto_map": {"AutoProcessor": "processing_surge.SurgeProcessor"},
    "default_task": "hotpot",
    "feature_names": [
        "pos",
        "list",
        "word_count",
        "mean_word_length",
        "sentence_count",
        "question_marks",
        "exclamation_marks",
        "has_digit",
    ],
    "lexicon_file": "lexicon.json",
    "lexicon_name": "mine",
    "max_length": 96,
    "num_features": 8,
    "prefix": "tokens",
    "prefix_buckets": "count:log2x10;linear:mean_word_lengthx16",
    "processor_class": "SurgeProcessor",
    "surge_processor_version": 1,
    "tasks": ["sst2", "hotpot"],
}


def _corpus() -> list[str]:
    words = sorted({w for es in CURATED_GROUPS.values() for e in es for w in e.replace("*", "").split()})
    base = [
        "the film was great and I think it is wonderful",
        "results show that data indicate a trend",
        "[TASK:sst2|F1:0|F12:4] (1) (2) multi-hop Captivating! 0123456789 ?!.",
        "Привет мир 电影 café",
        "long long text with many words to cut " * 3,
    ]
    return base * 20 + [" ".join(words[i : i + 9]) for i in range(0, len(words), 9)] * 5


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory, minilm_path) -> dict[str, Path]:
    """Tokenizers of four families: WordPiece with and without token_type_ids, byte-level BPE, Unigram."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import DebertaV2Tokenizer, DistilBertTokenizer, RobertaTokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    dirs = {"bert": minilm_path}
    DistilBertTokenizer(vocab=str(minilm_path / "vocab.txt")).save_pretrained(root / "distilbert")
    dirs["distilbert"] = root / "distilbert"

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(
        _corpus(),
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split()) for m in model["merges"]]
    RobertaTokenizer(vocab=model["vocab"], merges=merges).save_pretrained(root / "roberta")
    dirs["roberta"] = root / "roberta"

    uni = Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.train_from_iterator(
        _corpus(),
        trainers.UnigramTrainer(
            vocab_size=300,
            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            unk_token="[UNK]",
            show_progress=False,
        ),
    )
    vocab = [tuple(v) for v in json.loads(uni.to_str())["model"]["vocab"]]
    DebertaV2Tokenizer(vocab=vocab).save_pretrained(root / "deberta-v2")
    dirs["deberta-v2"] = root / "deberta-v2"
    return dirs


def make(tokenizer_dirs, family="bert", **kwargs) -> SurgeProcessor:
    kwargs.setdefault("tasks", TASKS)
    return SurgeProcessor.from_encoder_pretrained(tokenizer_dirs[family], **kwargs)


# ----------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prefix", ["text", "tokens", None])
def test_outputs_per_family(tokenizer_dirs, family, prefix):
    proc = make(tokenizer_dirs, family, prefix=prefix, max_length=256)
    out = proc(TEXTS, task=["sst2", "hotpot", "sst2", "hotpot"])
    expected_keys = {"input_ids", "attention_mask", "lexical_features", "task_ids"}
    if "token_type_ids" in proc.tokenizer.model_input_names:
        expected_keys.add("token_type_ids")
    assert set(out.keys()) == expected_keys
    assert ("token_type_ids" in out) == (family in ("bert", "deberta-v2"))
    assert out["task_ids"] == [0, 1, 0, 1]
    np.testing.assert_array_equal(
        np.array(out["lexical_features"], dtype=np.float32), Lexicon.curated().featurize(TEXTS)
    )  # raw features of the full text
    assert set(proc.model_input_names) == expected_keys


@pytest.mark.parametrize("family", FAMILIES)
def test_text_prefix_is_the_papers_string(tokenizer_dirs, family):
    proc = make(tokenizer_dirs, family, prefix="text", max_length=512)
    features = proc.lexicon.featurize(["Captivating!"])[0]
    assert proc.make_prefix(features, "sst2") == CAPTIVATING_TEXT_PREFIX
    out = proc("Captivating!", task="sst2")
    tok = AutoTokenizer.from_pretrained(tokenizer_dirs[family])
    assert out["input_ids"] == tok(CAPTIVATING_TEXT_PREFIX + " Captivating!")["input_ids"]
    n_prefix = len(tok(CAPTIVATING_TEXT_PREFIX, add_special_tokens=False)["input_ids"])
    assert proc.prefix_length("Captivating!", task="sst2") == n_prefix
    # the prefix tokens sit right after the first special token, exactly as tokenized alone
    assert (
        out["input_ids"][1 : 1 + n_prefix]
        == tok(CAPTIVATING_TEXT_PREFIX, add_special_tokens=False)["input_ids"]
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_tokens_prefix_costs_n_features_plus_one(tokenizer_dirs, family):
    base = len(AutoTokenizer.from_pretrained(tokenizer_dirs[family]))
    proc = make(tokenizer_dirs, family, prefix="tokens")
    assert len(proc.tokenizer) == base + len(TASKS) + 15 * COUNT_BUCKETS + LINEAR_BUCKETS
    out = proc("Captivating!", task="sst2")
    tokens = proc.tokenizer.convert_ids_to_tokens(out["input_ids"])
    assert tokens[1:18] == CAPTIVATING_TOKENS
    assert proc.prefix_length(["Captivating!", "a much longer text. " * 40]) == [17, 17]
    assert (
        proc.decode(out["input_ids"], skip_special_tokens=True)
        .strip()
        .lower()
        .replace(" ", "")
        .startswith("captivating")
    )


def test_feature_buckets():
    counts = {0: 0, 0.5: 0, 1: 1, 2: 2, 3: 2, 4: 3, 7: 3, 8: 4, 255: 8, 256: 9, 10_000: 9}
    for value, bucket in counts.items():
        assert feature_bucket(value) == bucket, value
    for value, bucket in {0: 0, 4.9: 4, 14.99: 14, 15: 15, 40: 15}.items():
        assert feature_bucket(value, linear=True) == bucket


# ----------------------------------------------------------------------------- truncation
LONG = ("The results show, step by step, that this sentence is long and keeps going. " * 40).strip()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prefix", ["text", "tokens"])
def test_whole_prefix_kept_under_truncation(tokenizer_dirs, family, prefix):
    proc = make(tokenizer_dirs, family, prefix=prefix)
    n_prefix = proc.prefix_length(LONG, task="hotpot")
    max_length = n_prefix + proc.tokenizer.num_special_tokens_to_add() + 7
    ids = proc(LONG, task="hotpot", max_length=max_length)["input_ids"]
    prefix_str = proc.make_prefix(proc.lexicon.featurize([LONG])[0], "hotpot")
    full = proc.tokenizer(prefix_str + " " + LONG)["input_ids"]  # untruncated reference
    assert len(full) > max_length
    assert len(ids) == max_length
    assert ids == full[: max_length - 1] + [full[-1]]  # only the text is cut: prefix, then its first tokens
    prefix_ids = proc.tokenizer(prefix_str, add_special_tokens=False)["input_ids"]
    assert ids[1 : 1 + n_prefix] == prefix_ids
    # default max_length 128
    assert len(proc(LONG, task="hotpot")["input_ids"]) == 128


@pytest.mark.parametrize("prefix", ["text", "tokens"])
def test_prefix_that_cannot_fit_is_an_error(tokenizer_dirs, prefix):
    proc = make(tokenizer_dirs, prefix=prefix, max_length=18)
    with pytest.raises(ValueError, match=f"the '{prefix}' prefix takes .* more than max_length=18") as err:
        proc(["hello"])
    needed = proc.prefix_length("hello", task=proc.default_task) + proc.tokenizer.num_special_tokens_to_add()
    assert f"raise max_length above {needed}" in str(err.value)
    # the compact prefix is suggested only where it is not the prefix already
    assert ("prefix_style: tokens" in str(err.value)) == (prefix == "text")
    if prefix == "tokens":  # 17 prefix tokens + [CLS] + [SEP] = 19 fits exactly, with no room for text
        out = proc(["hello world"], max_length=19)
        assert len(out["input_ids"][0]) == 19
    assert len(proc(["hello"], truncation=False)["input_ids"][0]) > 18  # no truncation, no check


def test_left_truncation_would_cut_the_prefix(tokenizer_dirs):
    proc = make(tokenizer_dirs, prefix="tokens")
    proc.tokenizer.truncation_side = "left"
    with pytest.raises(ValueError, match="truncation_side = 'right'"):
        proc(["hello"])


def test_no_prefix_truncates_plain_text(tokenizer_dirs):
    proc = make(tokenizer_dirs, prefix=None, max_length=20)
    tok = AutoTokenizer.from_pretrained(tokenizer_dirs["bert"])
    assert proc(LONG)["input_ids"] == tok(LONG, truncation=True, max_length=20)["input_ids"]
    assert proc.prefix_length(["a", "b"]) == [0, 0]


# ----------------------------------------------------------------------------- tensors, tasks, datasets
def test_return_tensors_and_single_text(tokenizer_dirs):
    proc = make(tokenizer_dirs, prefix="tokens")
    pt = proc(TEXTS, task="hotpot", return_tensors="pt", padding=True)
    assert pt["input_ids"].dtype == torch.int64 and pt["input_ids"].shape[0] == 4
    assert pt["lexical_features"].dtype == torch.float32 and tuple(pt["lexical_features"].shape) == (4, 16)
    assert pt["task_ids"].dtype == torch.int64 and pt["task_ids"].tolist() == [1, 1, 1, 1]
    single = proc("Captivating!")
    assert isinstance(single["input_ids"][0], int) and single["task_ids"] == 0  # default task: the first
    assert single["lexical_features"] == Lexicon.curated().featurize(["Captivating!"])[0].tolist()
    single_pt = proc("Captivating!", return_tensors="pt")
    assert tuple(single_pt["lexical_features"].shape) == (1, 16) and tuple(single_pt["task_ids"].shape) == (
        1,
    )
    npy = proc(TEXTS, return_tensors="np", padding=True)
    assert npy["lexical_features"].dtype == np.float32 and npy["task_ids"].dtype == np.int64


def test_task_forms_and_default_task(tokenizer_dirs):
    proc = make(tokenizer_dirs, prefix="text", default_task="hotpot", max_length=256)
    assert proc(["a", "b"])["task_ids"] == [1, 1]
    assert proc(["a", "b"], task=0)["task_ids"] == [0, 0]
    assert proc(["a", "b"], task=["hotpot", 0])["task_ids"] == [1, 0]
    assert (
        proc(["a"], task="sst2")["input_ids"] != proc(["a"], task="hotpot")["input_ids"]
    )  # task is in the prefix
    mapping = SurgeProcessor(AutoTokenizer.from_pretrained(tokenizer_dirs["bert"]), tasks={"x": 2, "y": 3})
    assert mapping.tasks == ["x", "y"] and mapping.default_task == "x"
    assert SurgeProcessor(AutoTokenizer.from_pretrained(tokenizer_dirs["bert"])).tasks == ["default"]


def test_datasets_map_batched(tokenizer_dirs):
    from datasets import Dataset

    proc = make(tokenizer_dirs, prefix="tokens")
    ds = Dataset.from_dict(
        {"text": TEXTS, "task": ["sst2", "hotpot", "hotpot", "sst2"], "label": [1, 0, 1, 0]}
    )
    mapped = ds.map(
        lambda b: proc(b["text"], task=b["task"]), batched=True, batch_size=3, remove_columns=["text", "task"]
    )
    direct = proc(TEXTS, task=["sst2", "hotpot", "hotpot", "sst2"])
    for key in direct:
        assert mapped[key] == direct[key], key
    assert mapped["label"] == [1, 0, 1, 0]


# ----------------------------------------------------------------------------- bad input
def test_bad_call_input_raises_clear_errors(tokenizer_dirs):
    proc = make(tokenizer_dirs, prefix="text", max_length=256)
    with pytest.raises(TypeError, match="needs `text`"):
        proc(None)
    with pytest.raises(TypeError, match=r"text\[1\] must be a string, got int"):
        proc(["ok", 5])
    with pytest.raises(ValueError, match=r"Unknown task 'imdb'; valid tasks are \['sst2', 'hotpot'\]"):
        proc(["ok"], task="imdb")
    with pytest.raises(ValueError, match="Unknown task id 2"):
        proc(["ok"], task=2)
    with pytest.raises(ValueError, match="task has 1 entries for 2 texts"):
        proc(["a", "b"], task=["sst2"])
    with pytest.raises(TypeError, match="A task must be a task name"):
        proc(["a"], task=[1.5])
    with pytest.raises(ValueError, match="return_tensors"):
        proc(["a"], return_tensors="tf")
    # sentence pairs only for the processor's pair_tasks (tests/test_sentence_pairs.py)
    with pytest.raises(ValueError, match=r"\['sst2'\] take a single text but text_pair is given in rows 0"):
        proc(["a"], text_pair=["b"])


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"tasks": []}, ValueError, "at least one task"),
        ({"tasks": ["a", "a"]}, ValueError, "unique"),
        ({"tasks": "sst2"}, TypeError, "list of task names"),
        ({"tasks": ["a", ""]}, ValueError, "non-blank"),
        ({"prefix": "prompt"}, ValueError, "prefix must be one of"),
        ({"max_length": 0}, ValueError, "max_length"),
        ({"default_task": "imdb"}, ValueError, "default_task 'imdb'"),
        ({"lexicon": ["a"]}, TypeError, "lexicon must be a Lexicon"),
    ],
)
def test_bad_construction_leaves_tokenizer_untouched(tokenizer_dirs, kwargs, exc, match):
    tok = AutoTokenizer.from_pretrained(tokenizer_dirs["bert"])
    n = len(tok)
    with pytest.raises(exc, match=match):
        SurgeProcessor(tok, **{"tasks": TASKS, "prefix": "tokens", **kwargs})
    assert len(tok) == n
    with pytest.raises(TypeError, match="tokenizer must be a transformers tokenizer"):
        SurgeProcessor("bert-base-uncased")


# ----------------------------------------------------------------------------- model checks
def test_check_model_names_every_mismatch(tokenizer_dirs):
    proc = make(tokenizer_dirs, prefix="text")
    good = SimpleNamespace(num_features=16, feature_names=Lexicon.curated().feature_names, task_names=TASKS)
    proc.check_model(good)
    proc.check_model(
        SimpleNamespace(
            config=SimpleNamespace(num_features=16, feature_names=None, tasks={"sst2": 2, "hotpot": 2})
        )
    )
    with pytest.raises(ValueError, match="takes 12 lexical features but the lexicon 'curated' gives 16"):
        proc.check_model(SimpleNamespace(num_features=12, task_names=TASKS))
    with pytest.raises(ValueError, match="tasks differ"):
        proc.check_model(SimpleNamespace(num_features=16, task_names=["hotpot", "sst2"]))
    with pytest.raises(ValueError, match="feature names differ"):
        proc.check_model(
            SimpleNamespace(num_features=16, feature_names=[f"f{i}" for i in range(16)], task_names=TASKS)
        )
    with pytest.raises(ValueError, match="not a SURGELLM model"):
        proc.check_model(SimpleNamespace(hidden_size=3))
    small = make(tokenizer_dirs, prefix="text", lexicon=Lexicon({"a": ["x"], "b": ["y"], "c": ["z"]}))
    with pytest.raises(ValueError, match="takes 16 lexical features but the lexicon 'custom' gives 9"):
        small.check_model(good)


def test_with_the_surge_model_prepare_check_forward(tokenizer_dirs, minilm_path):
    from surgellm_hf import SurgeForSequenceClassification

    lex = Lexicon.curated()
    proc = make(tokenizer_dirs, prefix="tokens", lexicon=lex)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        minilm_path, tasks={"sst2": 2, "hotpot": 2}, feature_names=lex.feature_names
    )
    with pytest.raises(ValueError, match="call processor.prepare_model"):
        proc.check_model(model)
    proc.prepare_model(model)
    proc.check_model(model)
    assert model.get_input_embeddings().num_embeddings == len(proc.tokenizer)
    batch = proc(TEXTS, task=["sst2", "hotpot", "sst2", "hotpot"], return_tensors="pt", padding=True)
    with warnings.catch_warnings():  # four texts leave some features constant within a task: fine here
        warnings.simplefilter("ignore", UserWarning)
        model.fit_feature_normalizer(batch["lexical_features"], torch.tensor([0, 1, 1, 0]), batch["task_ids"])
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (4, 2) and torch.isfinite(logits).all()


# ----------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("prefix", ["text", "tokens", None])
def test_save_load_round_trip(tokenizer_dirs, tmp_path, family, prefix):
    lex = Lexicon({"pos": ["great", "captivat*"], "list": ["(1)", "results show"]}, name="mine")
    proc = make(tokenizer_dirs, family, prefix=prefix, lexicon=lex, max_length=96, default_task="hotpot")
    expected = proc(TEXTS + [LONG], padding="max_length")
    proc.save_pretrained(tmp_path / "proc")
    files = set(os.listdir(tmp_path / "proc"))
    assert SAVED_FILES <= files
    assert Lexicon.from_json(tmp_path / "proc" / "lexicon.json") == lex
    config = json.loads((tmp_path / "proc" / "processor_config.json").read_text())
    assert config["auto_map"] == {"AutoProcessor": "processing_surge.SurgeProcessor"}
    assert (config["tasks"], config["prefix"], config["max_length"]) == (TASKS, prefix, 96)

    loaded = SurgeProcessor.from_pretrained(tmp_path / "proc")
    assert (loaded.tasks, loaded.prefix, loaded.max_length, loaded.default_task) == (
        TASKS,
        prefix,
        96,
        "hotpot",
    )
    assert loaded.lexicon == lex and len(loaded.tokenizer) == len(proc.tokenizer)
    assert dict(loaded(TEXTS + [LONG], padding="max_length")) == dict(expected)
    auto = AutoProcessor.from_pretrained(tmp_path / "proc", trust_remote_code=True)
    assert type(auto).__name__ == "SurgeProcessor"
    assert dict(auto(TEXTS + [LONG], padding="max_length")) == dict(expected)


def test_loaded_processor_overrides_and_errors(tokenizer_dirs, tmp_path):
    proc = make(tokenizer_dirs, prefix="tokens")
    proc.save_pretrained(tmp_path / "p")
    assert SurgeProcessor.from_pretrained(tmp_path / "p", max_length=64).max_length == 64
    with pytest.raises(TypeError, match="unexpected arguments \\['maxlen'\\]"):
        SurgeProcessor.from_pretrained(tmp_path / "p", maxlen=64)
    with pytest.raises(OSError, match="no processor_config.json"):
        SurgeProcessor.from_pretrained(tokenizer_dirs["distilbert"])
    # a lexicon.json that does not belong to processor_config.json
    Lexicon({"a": ["x"]}).to_json(tmp_path / "p" / "lexicon.json")
    with pytest.raises(ValueError, match="do not belong together"):
        SurgeProcessor.from_pretrained(tmp_path / "p")
    (tmp_path / "p" / "lexicon.json").unlink()
    with pytest.raises(OSError, match="no lexicon.json"):
        SurgeProcessor.from_pretrained(tmp_path / "p")


def test_saved_files_are_processor_mixins_plus_lexicon(tokenizer_dirs, tmp_path):
    proc = make(tokenizer_dirs, prefix="tokens", default_task="hotpot")
    ProcessorMixin.save_pretrained(proc, tmp_path / "mixin")  # the stock save alone
    files = proc.save_pretrained(tmp_path / "surge")
    mixin_files = set(os.listdir(tmp_path / "mixin"))
    assert set(os.listdir(tmp_path / "surge")) == mixin_files | {
        "lexicon.json"
    } and SAVED_FILES <= mixin_files | {"lexicon.json"}
    for name in mixin_files:  # byte for byte what ProcessorMixin writes
        assert (tmp_path / "surge" / name).read_bytes() == (tmp_path / "mixin" / name).read_bytes(), name
    assert [Path(f).name for f in files] == ["processor_config.json", "lexicon.json"]
    config = json.loads((tmp_path / "surge" / "processor_config.json").read_text())
    stock = ProcessorMixin.to_dict(
        proc
    )  # __init__ settings + auto_map + processor_class; lexicon is an object
    assert isinstance(stock.pop("lexicon"), Lexicon)
    # pair_tasks is written only when there are some (tests/test_sentence_pairs.py)
    assert stock.pop("pair_tasks") == []
    # so are long_text and soft_prefix_length (tests/test_long_text.py, tests/test_soft_prefix.py)
    assert stock.pop("long_text") == {} and stock.pop("soft_prefix_length") == 2
    assert set(config) == set(stock) | SURGE_CONFIG_KEYS
    assert {k: config[k] for k in stock} == stock
    assert config["tasks"] == ["sst2", "hotpot"]  # an ordered list, not alphabetical
    assert Lexicon.from_json(tmp_path / "surge" / "lexicon.json") == proc.lexicon


def test_processor_config_format_is_unchanged_and_old_folders_load(tokenizer_dirs, tmp_path):
    proc = make(tokenizer_dirs, prefix="tokens", lexicon=OLD_LEXICON, max_length=96, default_task="hotpot")
    proc.save_pretrained(tmp_path / "new")
    assert json.loads((tmp_path / "new" / "processor_config.json").read_text()) == OLD_PROCESSOR_CONFIG
    # a folder written the old way: tokenizer files, lexicon.json and the old processor_config.json, nothing else
    old = tmp_path / "old"
    proc.tokenizer.save_pretrained(old)
    OLD_LEXICON.to_json(old / "lexicon.json")
    (old / "processor_config.json").write_text(json.dumps(OLD_PROCESSOR_CONFIG, indent=2, sort_keys=True))
    loaded = SurgeProcessor.from_pretrained(old)
    assert (loaded.tasks, loaded.prefix, loaded.max_length, loaded.default_task) == (
        TASKS,
        "tokens",
        96,
        "hotpot",
    )
    assert loaded.lexicon == OLD_LEXICON
    assert dict(loaded(TEXTS + [LONG], task="sst2")) == dict(proc(TEXTS + [LONG], task="sst2"))


@pytest.mark.parametrize(
    "change,match",
    [
        ({"processor_class": "Wav2Vec2Processor"}, "describes 'Wav2Vec2Processor', not a SurgeProcessor"),
        ({"surge_processor_version": None}, "describes 'SurgeProcessor', not a SurgeProcessor"),
        ({"surge_processor_version": 2}, "config version 2; this code reads version 1"),
        ({"prefix_buckets": "count:log2x8"}, "uses prefix buckets 'count:log2x8'; this code makes"),
    ],
)
def test_foreign_or_incompatible_processor_config_is_refused(tokenizer_dirs, tmp_path, change, match):
    make(tokenizer_dirs, prefix="tokens").save_pretrained(tmp_path / "p")
    path = tmp_path / "p" / "processor_config.json"
    config = {k: v for k, v in {**json.loads(path.read_text()), **change}.items() if v is not None}
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match):
        SurgeProcessor.from_pretrained(tmp_path / "p")


def test_save_and_load_arguments(tokenizer_dirs, tmp_path):
    proc = make(tokenizer_dirs, prefix="text", max_length=160)
    proc.save_pretrained(tmp_path / "repo" / "proc")
    loaded = SurgeProcessor.from_pretrained(tmp_path / "repo", subfolder="proc", default_task="hotpot")
    assert (loaded.max_length, loaded.default_task) == (160, "hotpot")
    assert dict(loaded(TEXTS, task="sst2")) == dict(proc(TEXTS, task="sst2"))
    with pytest.raises(TypeError, match=r"unexpected arguments \['prefix'\]"):
        SurgeProcessor.from_pretrained(tmp_path / "repo" / "proc", prefix="tokens")
    with pytest.raises(TypeError, match=r"save_pretrained got unexpected arguments \['repo_id'\]"):
        proc.save_pretrained(tmp_path / "x", repo_id="tester/x")  # upload options only with push_to_hub=True
    with pytest.raises(TypeError, match=r"unexpected arguments \['privat'\]"):
        proc.save_pretrained(tmp_path / "x", push_to_hub=True, repo_id="tester/x", privat=True)
    assert not (tmp_path / "x").exists()  # refused before anything is written or uploaded
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        proc.save_pretrained(tmp_path / "file")


def test_push_to_hub_and_pull_round_trip(hub_server, tokenizer_dirs):  # noqa: F811
    tok_dir = str(tokenizer_dirs["roberta"])
    pushed = hub_server.run_python(
        f"""
        from surgellm_hf import Lexicon, SurgeProcessor
        proc = SurgeProcessor.from_encoder_pretrained({tok_dir!r}, tasks={TASKS!r}, prefix="tokens",
                                                      lexicon=Lexicon({{"g": ["great", "(1)"]}}), max_length=48)
        info = proc.push_to_hub("tester/surge-proc", commit_message="add processor")
        out = proc({TEXTS!r}, task="hotpot")
        again = SurgeProcessor.from_pretrained("tester/surge-proc")
        result({{"out": dict(out), "again": dict(again({TEXTS!r}, task="hotpot")), "url": str(info)}})
    """,
        surgellm=True,
    )
    assert pushed["again"] == pushed["out"]
    assert hub_server.hub.commits("tester/surge-proc") == ["initial commit", "add processor"]  # one commit
    files = set(hub_server.hub.files("tester/surge-proc"))
    assert SAVED_FILES <= files
    assert json.loads(hub_server.hub.read("tester/surge-proc", "lexicon.json"))["groups"][0]["entries"] == [
        "great",
        "(1)",
    ]
    pulled = hub_server.run_python(f"""
        from transformers import AutoProcessor
        p = AutoProcessor.from_pretrained("tester/surge-proc", trust_remote_code=True)
        result({{"out": dict(p({TEXTS!r}, task="hotpot")), "module": type(p).__module__,
                "feats": p.lexicon.featurize(["Great (1)!"]).tolist()}})
    """)  # a user without surgellm_hf: the processor and the features come from the repo's code
    assert pulled["out"] == pushed["out"]
    assert pulled["module"].startswith("transformers_modules.")
    # "Great (1)!": entries great and (1); words "Great", "(1)!" (mean 4.5); 1 sentence; no "?"; one "!"; a digit
    assert pulled["feats"] == [[2, 2, 4.5, 1, 0, 1, 1]]


def test_save_pretrained_push_to_hub_uploads_the_lexicon_too(hub_server, tokenizer_dirs):  # noqa: F811
    tok_dir = str(tokenizer_dirs["bert"])
    out = hub_server.run_python(
        f"""
        from pathlib import Path
        from surgellm_hf import Lexicon, SurgeProcessor
        proc = SurgeProcessor.from_encoder_pretrained({tok_dir!r}, tasks={TASKS!r}, prefix="tokens",
                                                      lexicon=Lexicon({{"g": ["great", "(1)"]}}), max_length=48)
        proc.save_pretrained(Path("saved"), push_to_hub=True, repo_id="tester/saved-proc", commit_message="save")
        proc.max_length = 64
        proc.save_pretrained("saved", push_to_hub=True, repo_id="tester/saved-proc", revision="dev",
                             commit_message="on dev")
        main = SurgeProcessor.from_pretrained("tester/saved-proc")
        dev = SurgeProcessor.from_pretrained("tester/saved-proc", revision="dev")
        result({{"main": main.max_length, "dev": dev.max_length, "out": dict(proc({TEXTS!r})),
                "again": dict(dev({TEXTS!r}))}})
    """,
        surgellm=True,
    )
    assert (out["main"], out["dev"]) == (48, 64) and out["again"] == out["out"]
    hub = hub_server.hub
    assert hub.commits("tester/saved-proc") == ["initial commit", "save"]
    assert SAVED_FILES <= set(hub.files("tester/saved-proc")) and SAVED_FILES <= set(
        hub.files("tester/saved-proc", revision="dev")
    )
    assert json.loads(hub.read("tester/saved-proc", "lexicon.json"))["groups"][0]["entries"] == [
        "great",
        "(1)",
    ]


def test_prefix_text_tokens_are_floored_raw_values(tokenizer_dirs):
    proc = make(tokenizer_dirs, prefix="text")
    feats = [0.0] * 11 + [4.99, 2.0, 0.0, 0.0, 1.0]
    assert proc.make_prefix(feats, 1).endswith("|F11:0|F12:4|F13:2|F14:0|F15:0|F16:1]")
    assert proc.make_prefix(feats, "hotpot").startswith("[TASK:hotpot|F1:0|")
    with pytest.raises(ValueError, match="expected 16 features, got 3"):
        proc.make_prefix([1, 2, 3])
