"""`surgellm_hf.problem_types`: the one torch-free home of the problem types. Its scoring is checked against hand
computations (math module, per element), its names against every old home, and it imports without torch, also as
the sibling of an endpoint repo's ``surgellm_runtime.py``."""

from __future__ import annotations

import ast
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from surgellm_hf import problem_types as pt

SRC = Path(__file__).resolve().parents[1] / "src" / "surgellm_hf"
TASKS = {"mood": 3, "topics": 2, "score": 1}
TYPES = {"mood": "single_label", "topics": "multi_label", "score": "regression"}
# padded [rows, max_num_labels] logits; row i belongs to TASK_IDS[i]; padding is a large negative number
LOGITS = np.array(
    [
        [1.0, 2.0, 3.0],  # mood
        [0.5, -1.0, -1e9],  # topics
        [2.5, -1e9, -1e9],  # score
        [-2.0, 0.0, 4.0],  # mood
        [-0.2, 3.0, -1e9],  # topics
    ]
)
TASK_IDS = np.array([0, 1, 2, 0, 1])


def _softmax_by_hand(row):
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def _sigmoid_by_hand(v):
    return 1.0 / (1.0 + math.exp(-v))


def test_softmax_and_sigmoid_match_hand_computations_in_the_given_dtype():
    got = pt.softmax(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(got, [_softmax_by_hand([1, 2, 3]), _softmax_by_hand([0, 0, 1])], rtol=1e-12)
    np.testing.assert_allclose(
        pt.sigmoid(np.array([0.0, 2.0, -3.0])), [0.5, _sigmoid_by_hand(2), _sigmoid_by_hand(-3)]
    )
    # the pipeline scores float32 logits in float32; the ONNX runner's public softmax is float64
    assert pt.task_probabilities(np.array([1.0, 2.0], dtype=np.float32), 2).dtype == np.float32
    from surgellm_hf.serving.runtime import softmax

    assert softmax(np.array([1.0, 2.0], dtype=np.float32)).dtype == np.float64


def test_task_probabilities_uses_only_the_tasks_own_columns():
    row = np.array([0.3, -0.7, 1e4])  # the third column is another task's padding width
    np.testing.assert_allclose(pt.task_probabilities(row, 2, "single_label"), _softmax_by_hand([0.3, -0.7]))
    np.testing.assert_allclose(
        pt.task_probabilities(row, 2, "multi_label"), [_sigmoid_by_hand(0.3), _sigmoid_by_hand(-0.7)]
    )
    assert pt.task_probabilities(row, 1, "regression").tolist() == [0.3]


def test_split_by_task_scores_each_type_by_hand():
    out = pt.split_by_task(LOGITS, TASK_IDS, TASKS, TYPES, {"topics": [0.5, 0.9]}, temperatures={"mood": 2.0})
    assert out["mood"]["index"].tolist() == [0, 3]
    expected = [_softmax_by_hand([v / 2.0 for v in LOGITS[i, :3]]) for i in (0, 3)]  # logits / T
    np.testing.assert_allclose(out["mood"]["score"], expected, rtol=1e-12)
    assert out["mood"]["y_pred"].tolist() == [2, 2]
    # multi-label: per-label sigmoid, each label against its own threshold
    sig = [[_sigmoid_by_hand(v) for v in LOGITS[i, :2]] for i in (1, 4)]
    np.testing.assert_allclose(out["topics"]["score"], sig, rtol=1e-12)
    by_hand = [[int(s >= t) for s, t in zip(row, (0.5, 0.9))] for row in sig]
    assert out["topics"]["y_pred"].tolist() == by_hand == [[1, 0], [0, 1]]
    # regression: the raw value, no temperature
    assert out["score"]["score"].tolist() == out["score"]["y_pred"].tolist() == [2.5]


def test_prediction_records_layout_per_type():
    by_task = pt.split_by_task(LOGITS, TASK_IDS, TASKS, TYPES)
    names = {"mood": ["sad", "calm", "glad"], "topics": ["art", "war"], "score": ["value"]}
    records = pt.prediction_records(by_task, len(LOGITS), names, TYPES)
    assert records[0]["label"] == 2 and records[0]["label_name"] == "glad"
    assert records[0]["scores"] == pytest.approx(dict(zip(names["mood"], _softmax_by_hand([1, 2, 3]))))
    assert records[1]["label"] == [0] and records[1]["label_name"] == [
        "art"
    ]  # sigmoid(0.5) >= 0.5 > sigmoid(-1)
    assert records[2] == {
        "task": "score",
        "label": None,
        "label_name": None,
        "value": 2.5,
        "scores": {"value": 2.5},
    }
    with pytest.raises(ValueError, match=r"rows \[5\] have no task"):
        pt.prediction_records(by_task, len(LOGITS) + 1, names, TYPES)


def test_primary_score_and_the_label_matrix_layout():
    assert pt.primary_score({"macro_f1": 0.25, "accuracy": 0.9}) == 0.25
    assert pt.primary_score({"pearson": 0.5, "spearman": float("nan"), "rmse": 1.0}) == 0.25  # NaN counts 0
    with pytest.raises(ValueError, match="neither 'macro_f1'"):
        pt.primary_score({"rmse": 1.0})
    # class ids / targets in column 0, multi-hot rows from column 0, ragged rows padded with 0
    assert pt.label_matrix([2, [1, 0, 1], 0.5]).tolist() == [[2, 0, 0], [1, 0, 1], [0.5, 0, 0]]
    assert pt.label_matrix(np.array([3, 1])).tolist() == [[3.0], [1.0]]


def test_one_set_of_names_everywhere():
    from surgellm_hf import configuration_surge, losses_surge, normalization, pipeline_surge
    from surgellm_hf.evaluation import metrics
    from surgellm_hf.serving import runtime

    assert [pt.ProblemType.of(k) for k in pt.PROBLEM_TYPES] == [0, 1, 2] == list(pt.ProblemType)
    assert configuration_surge.PROBLEM_TYPES is runtime.PROBLEM_TYPES is pt.PROBLEM_TYPES
    assert configuration_surge.HF_PROBLEM_TYPES is pt.HF_PROBLEM_TYPES
    assert pipeline_surge.task_probabilities is runtime.task_probabilities is pt.task_probabilities
    assert runtime.split_by_task is pt.split_by_task and runtime.prediction_records is pt.prediction_records
    assert metrics.primary_score is pt.primary_score and metrics.METRICS is pt.METRICS
    assert metrics.TYPE_METRICS is pt.TYPE_METRICS and normalization.label_matrix is pt.label_matrix
    assert losses_surge.ProblemType is pt.ProblemType


def _package_imports(path: Path) -> set[str]:
    """The surgellm_hf modules a file imports anywhere in it (relative imports resolved to dotted names)."""
    parts = ["surgellm_hf", *path.relative_to(SRC).with_suffix("").parts[:-1]]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level + 1] if node.level else []
            names.add(".".join([*base, node.module] if node.module else base))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_evaluation_and_training_do_not_import_serving():
    for folder in ("evaluation", "training"):
        for path in sorted((SRC / folder).glob("*.py")):
            assert not [n for n in _package_imports(path) if n.startswith("surgellm_hf.serving")], path
    assert "surgellm_hf.problem_types" in _package_imports(SRC / "evaluation" / "predictions.py")
    assert "surgellm_hf.serving.runtime" in _package_imports(
        SRC / "inference.py"
    )  # the check sees such imports


_NO_TORCH = """
import importlib.abc, importlib.util, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch.") or name.split(".")[0] == "surgellm_hf":
            raise ImportError(f"{name} is not importable here")
        return None

sys.meta_path.insert(0, NoTorch())
spec = importlib.util.spec_from_file_location(MODULE, PATH)
module = importlib.util.module_from_spec(spec)
sys.modules[MODULE] = module
spec.loader.exec_module(module)
out = module.split_by_task([[1.0, 2.0]], [0], {"t": 2})["t"]["score"].tolist()
print(json.dumps({"score": out, "file": module.split_by_task.__code__.co_filename,
                  "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def _run_without_torch(module: str, path: Path, cwd: Path) -> dict:
    code = f"MODULE, PATH = {module!r}, {str(path)!r}\n" + _NO_TORCH
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_problem_types_imports_without_torch(tmp_path):
    out = _run_without_torch("problem_types", SRC / "problem_types.py", tmp_path)
    assert out["torch"] == [] and out["score"] == [pytest.approx(_softmax_by_hand([1.0, 2.0]))]


def test_an_endpoint_runtime_loads_the_problem_types_beside_it(tmp_path):
    """An endpoint repo as a Hub cache snapshot holds it: runtime.py as surgellm_runtime.py next to the remote
    code's problem_types.py, each a link to a blob named by its hash."""
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc123"
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    for source, name, blob in [
        (SRC / "serving" / "runtime.py", "surgellm_runtime.py", "1f2e"),
        (SRC / "problem_types.py", "problem_types.py", "9a8b"),
    ]:
        shutil.copyfile(source, blobs / blob)
        (snapshot / name).symlink_to(blobs / blob)
    out = _run_without_torch("surgellm_runtime", snapshot / "surgellm_runtime.py", tmp_path)
    assert out["torch"] == [] and out["file"] == str(snapshot / "problem_types.py")
    assert out["score"] == [pytest.approx(_softmax_by_hand([1.0, 2.0]))]


# -- the SURGELLM modules' own save and load; the one encoder-weight loader ------------------------------------------
def _model(encoder_dir):
    import torch

    from surgellm_hf import SurgeForSequenceClassification

    torch.manual_seed(0)
    model = SurgeForSequenceClassification.from_encoder_pretrained(
        str(encoder_dir), tasks={"a": 2, "b": 3}, norm="none"
    )
    with torch.no_grad():  # differ from a fresh init
        model.heads[1][-1].bias.add_(0.5)
    return model.freeze_encoder()


def test_surge_modules_save_and_load_and_the_old_names(tiny_bert_dir, tmp_path):
    import torch

    from surgellm_hf import SurgeForSequenceClassification

    model = _model(tiny_bert_dir)
    model.save_surge_modules(tmp_path / "new")
    with pytest.warns(FutureWarning, match="`save_adapter` is deprecated, use `save_surge_modules`"):
        model.save_adapter(tmp_path / "old")
    for name in (
        "surge_adapter.safetensors",
        "surge_adapter_config.json",
    ):  # the same files under either name
        assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "old" / name).read_bytes()
    with pytest.warns(FutureWarning, match="`adapter_state_dict` is deprecated"):
        assert model.adapter_state_dict().keys() == model.surge_modules_state_dict().keys()
    expected = model.state_dict()
    torch.manual_seed(1)
    loaded = SurgeForSequenceClassification.from_surge_modules(tmp_path / "old")
    with pytest.warns(FutureWarning, match="`from_adapter` is deprecated, use `from_surge_modules`"):
        again = SurgeForSequenceClassification.from_adapter(tmp_path / "new")
    for other in (loaded, again):
        state = other.state_dict()
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[k], expected[k]) for k in expected)


def test_load_encoder_weights_keeps_the_added_token_rows(tiny_bert_dir):
    import torch
    from transformers import AutoModel

    from surgellm_hf.modeling_surge_modules import load_encoder_weights

    model = _model(tiny_bert_dir)
    pretrained = AutoModel.from_pretrained(tiny_bert_dir).state_dict()
    vocab = pretrained["embeddings.word_embeddings.weight"].shape[0]
    model.resize_token_embeddings(vocab + 3)
    encoder = model.surge.encoder
    with torch.no_grad():
        for p in encoder.parameters():
            p.fill_(7.0)
    load_encoder_weights(encoder, str(tiny_bert_dir), "tiny")
    own = encoder.state_dict()
    rows = own["embeddings.word_embeddings.weight"]
    assert torch.equal(rows[:vocab], pretrained["embeddings.word_embeddings.weight"])
    assert torch.equal(rows[vocab:], torch.full_like(rows[vocab:], 7.0))  # the added prefix-token rows kept
    shared = [
        k for k in pretrained if not k.startswith("pooler.") and k != "embeddings.word_embeddings.weight"
    ]
    assert shared and all(torch.equal(own[k], pretrained[k]) for k in shared)
    with pytest.raises(ValueError, match="Encoder weights of 'tiny' do not fit the wrapped encoder"):
        encoder.extra = torch.nn.Linear(2, 2)  # a weight no pretrained encoder has
        load_encoder_weights(encoder, str(tiny_bert_dir), "tiny")


# -- the registry: a fourth type is one entry; no other module branches on a type's name ------------------------------
def _expected_rank(score: np.ndarray, threshold) -> tuple[np.ndarray, np.ndarray]:
    """The toy ordinal decision: the class nearest the expected rank (not the argmax)."""
    return score, np.rint(score @ np.arange(score.shape[1])).astype(np.int64)


def ordinal_scores(matrix, pred, num_labels, problem_type, threshold, task) -> dict[str, float]:
    """The toy type's metrics: mean absolute rank error and exact-class rate."""
    y, p = matrix[:, 0], np.asarray(pred["y_pred"], dtype=np.float64)
    return {"mae": float(np.mean(np.abs(y - p))), "exact": float(np.mean(y == p)), "n": len(y)}


def _ordinal_type():
    import dataclasses

    return dataclasses.replace(
        pt.info("single_label"),
        name="ordinal",
        code=3,
        title="Ordinal",
        min_labels=3,
        logged_metrics=("mae",),
        card_metrics=("accuracy", "macro_f1"),
        primary_metrics=("exact",),
        task_scores=f"{__name__}:ordinal_scores",
        decide=_expected_rank,
    )


@pytest.fixture
def ordinal(monkeypatch):
    """A toy fourth problem type, registered for one test through the registry only."""
    monkeypatch.setitem(pt.PROBLEM_TYPE_INFO, "ordinal", _ordinal_type())
    return "ordinal"


# grade: ordinal (3 ranks); score: regression. Grade row 0 has probabilities [0.45, 0.10, 0.45]: argmax 0, expected
# rank 0.10 + 0.90 = 1.0; row 3 [0.7, 0.2, 0.1]: expected rank 0.4 -> 0
TOY_TASKS = {"grade": 3, "score": 1}
TOY_TYPES = {"grade": "ordinal", "score": "regression"}
TOY_LOGITS = np.array(
    [
        np.log([0.45, 0.10, 0.45]),
        [1.5, -1e9, -1e9],
        [0.5, -1e9, -1e9],
        np.log([0.7, 0.2, 0.1]),
        [2.0, -1e9, -1e9],
    ]
)
TOY_TASK_IDS = np.array([0, 1, 1, 0, 1])
TOY_LABELS = np.array([1.0, 2.0, 0.0, 2.0, 1.0])  # grade ranks 1, 2; score targets 2, 0, 1


def test_a_fourth_type_scores_predicts_and_evaluates_from_its_registry_entry(ordinal):
    from transformers import EvalPrediction

    from surgellm_hf.evaluation.predictions import evaluate_predictions
    from surgellm_hf.training.trainer import build_compute_metrics

    by_task = pt.split_by_task(TOY_LOGITS, TOY_TASK_IDS, TOY_TASKS, TOY_TYPES)
    np.testing.assert_allclose(by_task["grade"]["score"], [[0.45, 0.10, 0.45], [0.7, 0.2, 0.1]], rtol=1e-12)
    assert by_task["grade"]["y_pred"].tolist() == [1, 0]  # its own decision, not the argmax [0, 0]
    # softmax scores, so a temperature applies: logits / 2 -> probabilities proportional to sqrt(p)
    warm = pt.split_by_task(TOY_LOGITS, TOY_TASK_IDS, TOY_TASKS, TOY_TYPES, temperatures={"grade": 2.0})
    roots = np.sqrt([0.7, 0.2, 0.1])
    np.testing.assert_allclose(warm["grade"]["score"][1], roots / roots.sum(), rtol=1e-12)
    records = pt.prediction_records(
        by_task, 5, {"grade": ["low", "mid", "high"], "score": ["value"]}, TOY_TYPES
    )
    assert records[0] == {
        "task": "grade",
        "label": 1,
        "label_name": "mid",
        "scores": pytest.approx({"low": 0.45, "mid": 0.10, "high": 0.45}),
    }
    assert records[1]["value"] == 1.5 and records[3]["label_name"] == "low"

    pred = {"logits": TOY_LOGITS, "labels": TOY_LABELS, "task_ids": TOY_TASK_IDS}
    metrics, rows = evaluate_predictions(pred, TOY_TASKS, problem_types=TOY_TYPES)
    # ranks [1, 2] predicted [1, 0]: |errors| 0 and 2
    assert metrics["grade"] == {"mae": 1.0, "exact": 0.5, "n": 2}
    assert rows["grade"]["y_true"].tolist() == [1, 2] and rows["grade"]["y_pred"].tolist() == [1, 0]
    assert set(metrics["score"]) >= {"pearson", "spearman", "rmse"}
    logged = build_compute_metrics(TOY_TASKS, TOY_TYPES)(
        EvalPrediction(predictions=TOY_LOGITS, label_ids=(TOY_LABELS, TOY_TASK_IDS))
    )
    assert logged["grade_mae"] == 1.0 and "grade_exact" not in logged  # only its logged_metrics
    # the primary score is its primary_metrics' (exact 0.5), averaged with the regression task's correlations
    regression = (metrics["score"]["pearson"] + metrics["score"]["spearman"]) / 2
    assert logged["avg_macro_f1"] == pytest.approx((0.5 + regression) / 2)


def test_a_fourth_type_passes_config_calibration_weights_iwn_explanations_and_the_card(ordinal):
    from surgellm_hf import SurgeConfig
    from surgellm_hf.calibration import calibration_scores, fit_calibration
    from surgellm_hf.explaining_surge import feature_contributions
    from surgellm_hf.hub.model_card import SurgeModelCardData, TaskCardInfo
    from surgellm_hf.normalization import fit_normalizer
    from surgellm_hf.training.class_weights import class_weights_applied, resolve_class_weights

    config = SurgeConfig(
        tasks=[["grade", 3], ["score", 1]], task_problem_types=TOY_TYPES, task_temperatures={"grade": 1.5}
    )
    assert config.task_problem_types == TOY_TYPES and config.problem_type == "single_label_classification"
    # transformers' name alone still means the first type registered under it
    assert SurgeConfig(tasks={"a": 3}, problem_type="single_label_classification").problem_type_of("a") == (
        "single_label"
    )
    with pytest.raises(ValueError, match=r"Ordinal task 'grade' needs >= 3 labels, got 2\."):
        SurgeConfig(tasks=[["grade", 2]], task_problem_types={"grade": "ordinal"})
    with pytest.raises(ValueError, match=r"task\(s\) \['grade'\] that are not multi-label tasks"):
        SurgeConfig(
            tasks=[["grade", 3]], task_problem_types={"grade": "ordinal"}, task_thresholds={"grade": 0.4}
        )

    pred = {"logits": TOY_LOGITS, "labels": TOY_LABELS, "task_ids": TOY_TASK_IDS}
    temperatures, thresholds = fit_calibration(pred, config)
    assert list(temperatures) == ["grade"] and thresholds == {}  # a class task; the regression task has none
    assert set(calibration_scores(pred, config, temperatures, {})["grade"]) == {"ece", "brier", "nll"}

    weights = resolve_class_weights("balanced", TOY_TASKS, {"grade": [0, 2, 2, 1]}, problem_types=TOY_TYPES)
    assert weights == {"grade": [4 / 3, 4 / 3, 2 / 3]}  # n / (K * n_c), like a single-label task
    assert class_weights_applied(weights, TOY_TYPES, list(TOY_TASKS)) == {
        "grade": "class weight",
        "score": "none (regression)",
    }

    # IWN's classes of the toy type are its class ids: the mean of the per-class means
    features = np.array([[0.0], [2.0], [10.0], [5.0]])
    mean, _ = fit_normalizer(
        features, [0, 0, 2, 1], [0, 0, 0, 0], 1, problem_types=["ordinal"], num_labels=[3]
    )
    assert mean[0, 0] == pytest.approx((1.0 + 10.0 + 5.0) / 3)

    # explanations measure the logit of the label the type decides (rank 1), not of the argmax (0)
    counterfactual = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    got = feature_contributions(TOY_LOGITS[0], counterfactual, 3, "ordinal")
    np.testing.assert_allclose(got, [np.log(0.10), np.log(0.10) - 1.0])

    card = SurgeModelCardData(
        model_name="org/toy",
        tasks=[
            TaskCardInfo(
                name="grade", num_labels=3, label_names=["low", "mid", "high"], problem_type="ordinal"
            ),
            TaskCardInfo(name="score", num_labels=1, label_names=["value"], problem_type="regression"),
        ],
        default_task="grade",
        metrics={
            "test": {"grade": {"macro_f1": 0.5, "accuracy": 0.75}, "score": {"pearson": 0.2, "spearman": 0.4}}
        },
        label_counts={"grade": {"train": [1, 2, 1]}, "score": {"train": [4]}},
    )
    index = [(r.dataset_name, r.metric_type, r.metric_value) for r in card.eval_results()]
    assert index == [
        ("grade", "accuracy", 0.75),  # its card_metrics, in their order
        ("grade", "f1", 0.5),
        ("score", "pearsonr", 0.2),
        ("score", "spearmanr", 0.4),
    ]
    cells = {row["task"]: row["classes"] for row in card.template_variables()["data_rows"]}
    assert cells == {"`grade`": "low 1, mid 2, high 1", "`score`": "–"}


def test_the_evaluate_module_scores_the_registered_types():
    """The self-contained `evaluate` module cannot import the package; its own list must follow the registry."""
    from surgellm_hf.evaluation.surgellm_multitask import surgellm_multitask

    assert surgellm_multitask.PROBLEM_TYPES == pt.type_names()


# Where a type's name may appear in code: its home, the loss, the data parsing, and the self-contained evaluate
# module (checked against the registry above).
NAME_HOMES = ("problem_types.py", "losses_surge.py", "data/", "evaluation/surgellm_multitask/")
NAME_CONSTANTS = {"SINGLE_LABEL", "MULTI_LABEL", "REGRESSION"}


def _type_name_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) of every type name in code: a string equal to a type's name, or a name constant."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in pt.PROBLEM_TYPES:
            hits.append((node.lineno, repr(node.value)))
        elif isinstance(node, ast.Name) and node.id in NAME_CONSTANTS:
            hits.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute) and node.attr in NAME_CONSTANTS:
            hits.append((node.lineno, node.attr))
        elif isinstance(node, ast.alias) and node.name in NAME_CONSTANTS:
            hits.append((node.lineno, f"import {node.name}"))
    return sorted(hits)


def test_no_module_but_the_types_home_branches_on_a_type_name():
    assert _type_name_uses('if kind == "multi_label":\n    pass\n') == [(1, "'multi_label'")]
    assert _type_name_uses("from .problem_types import REGRESSION\nx = pt.SINGLE_LABEL\n") == [
        (1, "import REGRESSION"),
        (2, "SINGLE_LABEL"),
    ]
    assert _type_name_uses('"""A multi_label task: see single_label."""\n') == []  # prose is not a branch
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if not rel.startswith(NAME_HOMES):
            found += [
                f"{rel}:{line}: {what}" for line, what in _type_name_uses(path.read_text(encoding="utf-8"))
            ]
    assert not found, "read `problem_types.info(kind)` fields instead of comparing type names:\n" + "\n".join(
        found
    )
