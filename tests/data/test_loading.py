"""Loading: local files and folders, column mapping, the Hub code path (through a local Hub-layout dataset
folder, offline), max_rows and holdouts, every bad-input case, a run's data section, and the real shared data."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from surgellm_hf.data import (
    MultiTaskData,
    TaskSpec,
    load_folder,
    load_run_data,
    load_tasks,
)
from tests._helpers import SHARED_DATA


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(n: int, prefix: str = "text", labels=(0, 1)) -> list[dict]:
    return [
        {"id": f"{prefix}-{i}", "text": f"{prefix} number {i}", "label": labels[i % len(labels)]}
        for i in range(n)
    ]


@pytest.fixture
def folder(tmp_path):
    """Three tasks in three formats: a (jsonl, with test), b (csv, mapped columns), c (parquet, 3 classes)."""
    _jsonl(tmp_path / "a" / "train.jsonl", _rows(10, "a"))
    _jsonl(tmp_path / "a" / "validation.jsonl", _rows(4, "a-val"))
    _jsonl(tmp_path / "a" / "test.jsonl", _rows(6, "a-test"))
    for split, n in (("train", 8), ("validation", 4)):
        lines = ["text,label"] + [f"b {split} {i},{i % 2}" for i in range(n)]
        (tmp_path / "b").mkdir(exist_ok=True)
        (tmp_path / "b" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    for split, n in (("train", 9), ("validation", 3)):
        (tmp_path / "c").mkdir(exist_ok=True)
        datasets.Dataset.from_dict(
            {"text": [f"c {split} {i}" for i in range(n)], "label": [i % 3 for i in range(n)]}
        ).to_parquet(str(tmp_path / "c" / f"{split}.parquet"))
    (tmp_path / "notes").mkdir()  # a folder without a train file is not a task
    return tmp_path


# ----------------------------------------------------------------------------------------------- loading


def test_load_folder_reads_jsonl_csv_parquet(folder):
    data = load_folder(folder)
    assert isinstance(data, MultiTaskData)
    assert data.task_names == ["a", "b", "c"]
    assert data.tasks_config() == {"a": 2, "b": 2, "c": 3}
    assert data.split_sizes() == {
        "a": {"train": 10, "validation": 4, "test": 6},
        "b": {"train": 8, "validation": 4},
        "c": {"train": 9, "validation": 3},
    }
    assert data.label_counts()["c"]["train"] == [3, 3, 3]
    for task in data:
        for ds in data[task].values():
            assert ds.column_names == ["id", "text", "label"]
            assert ds.features["label"].dtype == "int64" and ds.features["text"].dtype == "string"
    assert data["a"]["test"][0] == {"id": "a-test-0", "text": "a-test number 0", "label": 0}
    assert data["b"]["train"][3] == {"id": "b-train-3", "text": "b train 3", "label": 1}  # ids generated
    assert data.label_names["c"] == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert data.sources["b"]["validation"] == str(folder / "b" / "validation.csv")
    with pytest.raises(KeyError, match="unknown task 'zz'"):
        data["zz"]


def test_load_folder_task_order_and_label_names(folder):
    data = load_folder(folder, tasks=["c", "a"], label_names={"a": ["neg", "pos"]})
    assert data.task_names == ["c", "a"] and data.label_names["a"] == ["neg", "pos"]
    with pytest.raises(ValueError, match="unknown task"):
        load_folder(folder, tasks=["a"], label_names={"b": ["x", "y"]})
    with pytest.raises(TypeError, match="list of task folder names"):
        load_folder(folder, tasks="a")


def test_column_mapping_and_string_labels(tmp_path):
    (tmp_path / "reviews.csv").write_text(
        "review_id,sentence,polarity\nr1,good film,positive\nr2,bad film,negative\nr3,ok,positive\n"
    )
    spec = TaskSpec(
        "sent",
        str(tmp_path / "reviews.csv"),
        text_column="sentence",
        label_column="polarity",
        id_column="review_id",
        label_names=["negative", "positive"],
        required_splits=("train",),
    )
    data = load_tasks([spec])
    assert data["sent"]["train"]["label"] == [1, 0, 1]
    assert data["sent"]["train"]["id"] == ["r1", "r2", "r3"]
    assert data.label_names["sent"] == ["negative", "positive"]


def test_load_tasks_mapping_forms_and_explicit_split_paths(folder):
    data = load_tasks(
        {
            "first": str(folder / "a"),
            "second": {
                "source": str(folder / "b"),
                "splits": {"train": "train.csv", "validation": "validation.csv"},
            },
        }
    )
    assert data.task_names == ["first", "second"] and data.split_sizes()["second"] == {
        "train": 8,
        "validation": 4,
    }
    with pytest.raises(ValueError, match="duplicate task name"):
        load_tasks([TaskSpec("x", str(folder / "a")), TaskSpec("x", str(folder / "b"))])
    with pytest.raises(ValueError, match="unknown TaskSpec key"):
        load_tasks({"x": {"source": str(folder / "a"), "text_col": "t"}})


def test_classlabel_names_are_picked_up(tmp_path):
    feats = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    for split in ("train", "validation"):
        datasets.Dataset.from_dict({"text": ["x y", "z"], "label": [0, 1]}, features=feats).to_parquet(
            str(tmp_path / "t" / f"{split}.parquet")
        )
    assert load_folder(tmp_path).label_names["t"] == ["neg", "pos"]


def test_hub_code_path_with_config_split_slicing_and_hotpot_preprocess(tmp_path):
    """kind='hub' goes through datasets.load_dataset(id, config, split=...), here on a local Hub-layout repo."""
    repo = tmp_path / "hotpot_repo"
    (repo / "distractor").mkdir(parents=True)
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: distractor\n  data_files:\n  - split: train\n    path: distractor/train-*\n---\n"
    )
    levels = ["easy", "medium", "hard", "easy", "hard", "medium", "easy", "hard"]
    rows = {
        "id": [f"q{i}" for i in range(8)],
        "question": [f"Which  film {i}?" for i in range(8)],
        "level": levels,
        "supporting_facts": [{"title": ["Gold A", "Gold B"], "sent_id": [0, 1]}] * 8,
        "context": [
            {
                "title": ["Gold B", "Distractor", "Gold A"],
                "sentences": [["B one.", " B  two."], ["never shown."], [f"A {i}."]],
            }
            for i in range(8)
        ],
    }
    datasets.Dataset.from_dict(rows).to_parquet(str(repo / "distractor" / "train-00000-of-00001.parquet"))
    spec = TaskSpec(
        "hotpot",
        str(repo),
        kind="hub",
        config_name="distractor",
        splits={"train": "train[:6]", "validation": "train[6:]"},
        preprocess="hotpotqa_difficulty",
        label_names=["easy", "medium_or_hard"],
    )
    data = load_tasks([spec])
    train = data["hotpot"]["train"]
    assert train["label"] == [0, 1, 1, 0, 1, 1] and data["hotpot"]["validation"]["label"] == [0, 1]
    # gold paragraphs in context order, titles dropped, whitespace normalised
    assert train[0] == {"id": "hotpotqa-q0", "text": "[Q] Which film 0? [CTX] B one. B two. A 0.", "label": 0}
    assert data.sources["hotpot"]["train"].endswith("[distractor]:train[:6] (after preprocess)")


def test_hub_load_failure_names_the_dataset(tmp_path):
    (tmp_path / "empty_repo").mkdir()
    spec = TaskSpec("x", str(tmp_path / "empty_repo"), kind="hub", config_name="cfg")
    with pytest.raises(
        ValueError, match=r"task 'x': could not load Hub dataset .*empty_repo' \(config 'cfg'\)"
    ):
        load_tasks([spec])


def test_max_rows_holdout_and_subsample(folder, tmp_path_factory):
    big = tmp_path_factory.mktemp("big")
    _jsonl(big / "train.jsonl", _rows(100, "big", labels=(0, 0, 0, 1)))
    spec = TaskSpec("big", str(big), holdout={"validation": 0.2, "test": 0.1}, max_rows={"train": 40})
    data = load_tasks([spec])
    sizes = data.split_sizes()["big"]
    assert sizes == {"train": 40, "validation": 20, "test": 10}
    counts = data.label_counts()["big"]
    assert counts["validation"] == [15, 5] and counts["test"] == [8, 2] and counts["train"] == [30, 10]
    ids = {s: set(data["big"][s]["id"]) for s in sizes}
    assert (
        not (ids["train"] & ids["validation"])
        and not (ids["validation"] & ids["test"])
        and not (ids["train"] & ids["test"])
    )
    again = load_tasks([spec])
    assert again["big"]["validation"]["id"] == data["big"]["validation"]["id"]

    small = load_folder(folder).subsample(4, seed=1)
    assert small.split_sizes()["a"] == {"train": 4, "validation": 4, "test": 4}
    assert small.label_counts()["a"]["train"] == [2, 2]
    assert load_folder(folder).subsample({"train": 4})["a"]["validation"].num_rows == 4
    with pytest.raises(ValueError, match="positive integers"):
        small.subsample(0)


# ----------------------------------------------------------------------------------------------- bad input


def test_missing_train_file_names_the_expected_files(folder):
    (folder / "a" / "train.jsonl").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_folder(folder, tasks=["a"])
    assert str(folder / "a" / "train.jsonl") in str(err.value) and "missing train file" in str(err.value)


def test_missing_validation_is_an_error_missing_test_is_fine(folder):
    (folder / "b" / "validation.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing validation file.*b/validation\.jsonl"):
        load_folder(folder)
    assert load_folder(folder, required=("train",)).split_sizes()["b"] == {"train": 8}
    assert "test" not in load_folder(folder, tasks=["c"]).split_sizes()["c"]


def test_missing_paths(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        load_folder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="task folder not found"):
        load_folder(folder, tasks=["zz"])
    with pytest.raises(FileNotFoundError, match=r"file not found: .*nope\.jsonl"):
        load_tasks(
            [TaskSpec("a", str(folder / "a"), splits={"train": "train.jsonl", "validation": "nope.jsonl"})]
        )
    with pytest.raises(FileNotFoundError, match="source must be the folder"):
        load_tasks([TaskSpec("a", str(folder / "missing"), kind="local", splits={"train": "train.jsonl"})])
    with pytest.raises(FileNotFoundError, match="source not found"):
        load_tasks([TaskSpec("a", "./no/such/file.jsonl")])
    with pytest.raises(FileNotFoundError, match="no task folders"):
        load_folder(folder / "notes")


def test_missing_column_names_column_file_and_available_columns(folder):
    with pytest.raises(ValueError) as err:
        load_folder(folder, tasks=["a"], text_column="sentence")
    msg = str(err.value)
    assert "missing column(s) ['sentence']" in msg and str(folder / "a" / "train.jsonl") in msg
    assert "available columns: ['id', 'text', 'label']" in msg


def test_labels_not_integers(tmp_path):
    rows = _rows(6)
    rows[1]["label"], rows[4]["label"] = 1.5, None
    _jsonl(tmp_path / "t" / "train.jsonl", rows)
    _jsonl(tmp_path / "t" / "validation.jsonl", _rows(2))
    with pytest.raises(ValueError) as err:
        load_folder(tmp_path)
    msg = str(err.value)
    assert "2 label(s) are not integers (rows 1, 4" in msg and "split 'train'" in msg and "train.jsonl" in msg


def test_string_labels_without_or_outside_label_names(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\na,pos\nb,neg\nc,meh\n")
    with pytest.raises(ValueError, match=r"3 label\(s\) are not integers .*need label_names"):
        load_tasks([TaskSpec("t", str(tmp_path / "t.csv"), required_splits=("train",))])
    with pytest.raises(
        ValueError, match=r"1 label\(s\) are not among label_names \['neg', 'pos'\] \(rows 2;"
    ):
        load_tasks(
            [TaskSpec("t", str(tmp_path / "t.csv"), required_splits=("train",), label_names=["neg", "pos"])]
        )


def test_labels_out_of_range(tmp_path):
    _jsonl(tmp_path / "t" / "train.jsonl", _rows(6))
    bad = _rows(5)
    bad[0]["label"], bad[3]["label"] = 2, -1
    _jsonl(tmp_path / "t" / "validation.jsonl", bad)
    with pytest.raises(ValueError) as err:
        load_folder(tmp_path)
    msg = str(err.value)
    assert "split 'validation'" in msg and "2 label(s) outside the allowed range 0..1 (rows 0, 3;" in msg
    assert "validation.jsonl" in msg
    # an explicit num_labels widens the range (the -1 stays invalid)
    bad[3]["label"] = 1
    _jsonl(tmp_path / "t" / "validation.jsonl", bad)
    widened = load_tasks([TaskSpec("t", str(tmp_path / "t"), num_labels=3)])
    assert widened.num_labels["t"] == 3 and widened["t"]["validation"]["label"] == [2, 1, 0, 1, 0]


def test_num_labels_cannot_be_inferred_from_gappy_train_labels(tmp_path):
    _jsonl(tmp_path / "t" / "train.jsonl", _rows(6, labels=(0, 2)))
    _jsonl(tmp_path / "t" / "validation.jsonl", _rows(2, labels=(0, 2)))
    with pytest.raises(ValueError, match=r"classes \[1\] never occur.*pass num_labels"):
        load_folder(tmp_path)
    _jsonl(tmp_path / "t" / "train.jsonl", _rows(6, labels=(0,)))
    with pytest.raises(ValueError, match="cannot infer the number of classes"):
        load_folder(tmp_path)


def test_empty_texts_counted_with_rows_and_file(tmp_path):
    rows = _rows(12)
    for i, t in [(2, ""), (5, "   \n"), (7, None)]:
        rows[i]["text"] = t
    _jsonl(tmp_path / "t" / "train.jsonl", _rows(4))
    _jsonl(tmp_path / "t" / "validation.jsonl", rows)
    with pytest.raises(ValueError) as err:
        load_folder(tmp_path)
    msg = str(err.value)
    assert "split 'validation'" in msg and str(tmp_path / "t" / "validation.jsonl") in msg
    assert "3 empty, whitespace-only or missing text(s) in column 'text' (rows 2, 5, 7)" in msg


def test_all_problems_reported_together_and_non_string_texts(tmp_path):
    rows = _rows(4)
    rows[0]["text"], rows[1]["label"] = 17, "x"
    _jsonl(tmp_path / "t" / "train.jsonl", rows)
    _jsonl(tmp_path / "t" / "validation.jsonl", _rows(2))
    (tmp_path / "t" / "validation.jsonl").write_text(json.dumps({"id": "v", "text": "", "label": 0}) + "\n")
    with pytest.raises(ValueError) as err:
        load_folder(tmp_path)
    msg = str(err.value)
    assert msg.count("\n  - ") == 3  # every problem of every split, in one error
    assert "1 text(s) in column 'text' are not strings (rows 0; e.g. 17)" in msg
    assert "1 label(s) are not integers (rows 1; e.g. 'x')" in msg
    assert (
        "split 'validation'" in msg
        and "1 empty, whitespace-only or missing text(s) in column 'text' (rows 0)" in msg
    )


def test_file_level_problems(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "train.jsonl").write_text("")
    (tmp_path / "t" / "validation.jsonl").write_text(json.dumps({"text": "a", "label": 0}) + "\n")
    with pytest.raises(ValueError, match=r"file is empty: .*train\.jsonl"):
        load_folder(tmp_path)
    (tmp_path / "t" / "train.jsonl").write_text('{"text": "a", "label": 0}\n{"text": broken\n')
    with pytest.raises(ValueError, match=r"train\.jsonl, line 2, column 10: not valid JSON"):
        load_folder(tmp_path)
    (tmp_path / "t" / "train.csv").write_text("text,label\na,0\n")
    with pytest.raises(ValueError, match="ambiguous train data"):
        load_folder(tmp_path)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        load_tasks([TaskSpec("x", str(tmp_path), splits={"train": "x.txt"})])


def test_bad_load_tasks_arguments_and_missing_required_split_after_holdout(folder):
    with pytest.raises(TypeError, match="TaskSpec items"):
        load_tasks(["a"])
    with pytest.raises(ValueError, match="no tasks"):
        load_tasks([])
    with pytest.raises(ValueError, match="holds a TaskSpec named 'a'"):
        load_tasks({"b": TaskSpec("a", str(folder / "a"))})
    with pytest.raises(ValueError, match=r"missing required split\(s\) \['validation'\]"):
        load_tasks([TaskSpec("a", str(folder / "a" / "train.jsonl"))])
    with pytest.raises(ValueError, match="gives 0 rows"):
        load_tasks([TaskSpec("a", str(folder / "a" / "train.jsonl"), holdout={"validation": 0.01})])


# ----------------------------------------------------------------------------------------------- real data


def test_real_shared_data_counts_match_its_readme():
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"shared data folder not present at {SHARED_DATA}")
    data = load_folder(SHARED_DATA)
    assert data.task_names == ["D1", "D2", "D3", "D4"]
    assert data.tasks_config() == {"D1": 2, "D2": 2, "D3": 2, "D4": 2}
    # the README table: train (0/1) and validation (0/1)
    assert data.label_counts() == {
        "D1": {"train": [3054, 3845], "validation": [339, 428]},
        "D2": {"train": [70, 140], "validation": [15, 30]},
        "D3": {"train": [696, 696], "validation": [149, 149]},
        "D4": {"train": [1065, 1065], "validation": [228, 228]},
    }
    assert data["D2"]["train"][0]["text"].startswith("[Q] ")


def test_a_test_only_folder_loads_when_only_test_is_required(tmp_path):
    """Scoring a held-back folder: only <task>/test.jsonl; classes come from label names, not train."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "test.jsonl").write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n')
    data = load_folder(
        tmp_path, tasks=["t"], splits=["test"], required=["test"], label_names={"t": ["n", "p"]}
    )
    assert data.split_sizes() == {"t": {"test": 2}} and data.num_labels == {"t": 2}
    with pytest.raises(ValueError, match="without a train split the number of classes cannot be inferred"):
        load_folder(tmp_path, tasks=["t"], splits=["test"], required=["test"])


def test_load_run_data_draws_its_sample_with_its_seed():
    from tests._helpers import QUICKSTART_DATA

    section = {"folder": str(QUICKSTART_DATA), "max_rows": {"train": 10}}

    def ids(data, seed=0):
        return list(load_run_data(data, seed=seed)["reviews"]["train"]["id"])

    assert ids(section, 1) == ids(section, 1) != ids(section, 0)
    assert ids({**section, "seed": 1}) == ids(section, 1)  # the section's own seed key wins
    all_ids = [json.loads(line)["id"] for line in (QUICKSTART_DATA / "reviews" / "train.jsonl").open()]
    assert len(ids(section, 1)) == 10 and set(ids(section, 1)) <= set(all_ids)


def test_load_folder_with_a_relative_path(tmp_path, monkeypatch):
    """A relative data folder (as `surgellm evaluate --data data` passes it) is read once, not joined twice."""
    for split in ("train", "validation"):
        path = tmp_path / "data" / "t1" / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"text": f"text {i}", "label": i % 2}) + "\n" for i in range(6)))
    monkeypatch.chdir(tmp_path)
    loaded = load_folder("data")
    assert loaded.task_names == ["t1"]
    assert {s: len(ds) for s, ds in loaded["t1"].items()} == {"train": 6, "validation": 6}
    assert loaded["t1"]["train"]["text"] == [f"text {i}" for i in range(6)]
