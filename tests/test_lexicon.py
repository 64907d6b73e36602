"""Lexicon: curated groups, JSON round trip, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from surgellm_hf.lexicon import LEXICON_FORMAT_VERSION, Lexicon


# ----------------------------------------------------------------------------- curated + JSON
def test_curated_lexicon_is_the_papers():
    lex = Lexicon.curated()
    assert lex.group_names == [
        "sst_pos",
        "sst_neg",
        "llm_stat",
        "llm_formal",
        "llm_list",
        "human_pers",
        "human_hedge",
        "human_emo",
        "retrieval",
        "prompt_cot",
    ]
    assert sum(len(e) for e in lex.groups.values()) == 88
    assert lex.n_groups == 10 and lex.num_features == 16 and len(lex.feature_names) == 16
    assert lex.feature_names[10:] == [
        "word_count",
        "mean_word_length",
        "sentence_count",
        "question_marks",
        "exclamation_marks",
        "has_digit",
    ]
    assert "terrible" in lex["sst_neg"] and "terrible" in lex["human_emo"]
    assert lex["llm_list"][-3:] == ["(1)", "(2)", "(3)"]


def test_json_round_trip(tmp_path):
    lex = Lexicon({"b": ["x*", "two words"], "a": ["(1)", "Ünïcödé"]}, name="mine", metadata={"seed": 3})
    path = tmp_path / "lex.json"
    lex.to_json(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["format"] == "surgellm-lexicon" and raw["format_version"] == LEXICON_FORMAT_VERSION
    assert [g["name"] for g in raw["groups"]] == ["b", "a"]  # column order kept
    back = Lexicon.from_json(path)
    assert back == lex and back.metadata == {"seed": 3} and back.name == "mine"
    texts = ["xyz two\nwords (1)", "ünïcödé"]
    np.testing.assert_array_equal(back.featurize(texts), lex.featurize(texts))
    assert Lexicon.from_dict(lex.to_dict()) == lex


def test_from_dict_accepts_a_plain_groups_object():
    lex = Lexicon.from_dict({"format": "surgellm-lexicon", "format_version": 1, "groups": {"g": ["a", "b"]}})
    assert lex.groups == {"g": ["a", "b"]} and lex.name == "custom"


def test_groups_as_pairs_and_views_are_copies():
    lex = Lexicon([("g1", ["a"]), ("g2", ["b", "c"])])
    groups = lex.groups
    groups["g1"].append("zzz")
    assert lex["g1"] == ["a"]
    assert list(lex) == ["g1", "g2"] and len(lex) == 2
    with pytest.raises(KeyError, match="no group 'nope'"):
        lex["nope"]


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "groups,exc,match",
    [
        ({"g": []}, ValueError, "group 'g' is empty"),
        ({"g": ["ok", 3]}, TypeError, r"group 'g', entry 1: entries must be strings, got int"),
        ({"g": ["ok", None]}, TypeError, "got NoneType"),
        ({"g": ["  "]}, ValueError, "entry is blank"),
        ({"g": "abc"}, TypeError, "entries must be a list of strings"),
        ({"": ["a"]}, ValueError, "non-blank strings"),
        ({"word_count": ["a"]}, ValueError, "clashes with a surface feature name"),
        ({"g": ["a*b"]}, ValueError, "may only end an entry"),
        ({"g": ["*"]}, ValueError, "word stem before the final"),
        ({"g": ["(*"]}, ValueError, "word stem before the final"),
        ({"g": ["Great", "great "]}, ValueError, "match the same text"),
        ({}, ValueError, "at least one group"),
        ([("g", ["a"]), ("g", ["b"])], ValueError, "two groups named 'g'"),
        ([("g", ["a"], 1)], TypeError, "must be a .name, entries. pair"),
        ("abc", TypeError, "must be a mapping"),
    ],
)
def test_invalid_lexicons_raise_clear_errors(groups, exc, match):
    with pytest.raises(exc, match=match):
        Lexicon(groups)


def test_invalid_metadata_and_name():
    with pytest.raises(TypeError, match="JSON-serialisable"):
        Lexicon({"g": ["a"]}, metadata={"x": object()})
    with pytest.raises(ValueError, match="name"):
        Lexicon({"g": ["a"]}, name=" ")


def _write(path, data):
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "content,exc,match",
    [
        ("{not json", ValueError, "is not valid JSON"),
        (
            {"format": "other", "format_version": 1, "groups": {"g": ["a"]}},
            ValueError,
            "not a SURGELLM lexicon",
        ),
        (
            {"format": "surgellm-lexicon", "format_version": 99, "groups": {"g": ["a"]}},
            ValueError,
            "unsupported lexicon format_version 99.*newer",
        ),
        (
            {"format": "surgellm-lexicon", "format_version": "1", "groups": {"g": ["a"]}},
            ValueError,
            "must be an integer",
        ),
        ({"format": "surgellm-lexicon", "format_version": 1}, ValueError, "no 'groups'"),
        (
            {"format": "surgellm-lexicon", "format_version": 1, "groups": [{"name": "g"}]},
            ValueError,
            "exactly 'name' and 'entries'",
        ),
        (
            {"format": "surgellm-lexicon", "format_version": 1, "groups": {"g": []}},
            ValueError,
            "group 'g' is empty",
        ),
        (
            '{"format": "surgellm-lexicon", "format_version": 1, "groups": {"g": ["a"], "g": ["b"]}}',
            ValueError,
            "repeats the key 'g'",
        ),
        ("[1, 2]", TypeError, "must be a JSON object"),
    ],
)
def test_bad_lexicon_files(tmp_path, content, exc, match):
    path = _write(tmp_path / "lex.json", content)
    with pytest.raises(exc, match=match) as info:
        Lexicon.from_json(path)
    assert "lex.json" in str(info.value)  # the error names the file


def test_unreadable_lexicon_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Lexicon.from_json(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="cannot read lexicon file"):
        Lexicon.from_json(tmp_path)  # a directory
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ValueError, match="cannot read lexicon file"):
        Lexicon.from_json(tmp_path / "latin1.json")
