"""One way to import lazily (`surgellm_hf._lazy.lazy_exports`): every lazy table matches its ``TYPE_CHECKING``
imports and resolves; without torch the package, the processor, the ONNX runner and the CLI's help still import (and
import no torch); ``import surgellm_hf`` imports neither transformers nor torch, and the Auto classes know SURGELLM
whichever side is imported first."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

from tests._serving_utils import LOADED_TORCH, run_fresh_python

SRC = Path(__file__).resolve().parents[1] / "src"
TEXTS = ["A gorgeous, witty film!", "I think, maybe, the results show that the method works."]


def _lazy_modules() -> list[tuple[str, Path]]:
    """(dotted name, file) of every module of the package that calls `lazy_exports`."""
    out = []
    for path in sorted((SRC / "surgellm_hf").rglob("*.py")):
        if "lazy_exports(" in path.read_text(encoding="utf-8") and path.name != "_lazy.py":
            parts = path.relative_to(SRC).with_suffix("").parts
            out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def _type_checking_imports(tree: ast.Module, package: str) -> dict[str, str]:
    """{name: absolute module} of the ``from X import name`` statements under ``if TYPE_CHECKING:``."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom), ast.dump(stmt)
                module = importlib.util.resolve_name("." * stmt.level + (stmt.module or ""), package)
                found.update({alias.name: module for alias in stmt.names})
    return found


def test_the_lazy_hand_written_getattr_is_gone():
    """Every module-level `__getattr__` of the package is the one `lazy_exports` makes."""
    for path in sorted((SRC / "surgellm_hf").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert "__getattr__" not in defined, path


@pytest.mark.parametrize("name,path", _lazy_modules(), ids=lambda v: str(v).rpartition("src/")[2])
def test_lazy_table_matches_type_checking_imports_and_resolves(name, path):
    module = importlib.import_module(name)
    package = module.__package__
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typed = _type_checking_imports(tree, package)
    table = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("lazy_exports", "_lazy_exports"):
            arg = node.args[1]
            table = ast.literal_eval(arg) if isinstance(arg, ast.Dict) else getattr(module, arg.id)
    assert table, f"{name}: no lazy table found"
    expected = {
        n: importlib.util.resolve_name(t if t.startswith(".") else f".{t}", package) for n, t in table.items()
    }
    assert typed == expected
    for attr, owner in expected.items():
        assert getattr(module, attr) is getattr(importlib.import_module(owner), attr)
    assert set(table) <= set(dir(module))
    with pytest.raises(AttributeError, match=f"module '{name}' has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_package_processor_runner_and_cli_help_need_no_torch(tiny_bert_with_tokenizer, tmp_path):
    """A process where torch cannot be imported: the imports work, a saved processor encodes as in this process,
    the CLI prints its help, a model class is a clear ImportError, and no torch module is loaded."""
    from surgellm_hf import SurgeProcessor

    processor = SurgeProcessor.from_encoder_pretrained(
        tiny_bert_with_tokenizer, tasks=["a", "b"], prefix="text"
    )
    processor.save_pretrained(tmp_path / "processor")
    expected = processor(TEXTS, task=["a", "b"])
    code = f"""
import contextlib, io, json
import surgellm_hf
import surgellm_hf.serving
from surgellm_hf.serving.runtime import OnnxSurgeClassifier
from surgellm_hf.processing_surge import SurgeProcessor
from surgellm_hf.cli import main
from transformers import AutoConfig

enc = SurgeProcessor.from_pretrained({str(tmp_path / "processor")!r})({TEXTS!r}, task=["a", "b"])
help_text = io.StringIO()
with contextlib.redirect_stdout(help_text), contextlib.suppress(SystemExit):
    main(["--help"])
try:
    surgellm_hf.SurgeModel
    model_error = None
except ImportError as err:
    model_error = str(err)
registered = type(AutoConfig.for_model("surge")) is surgellm_hf.SurgeConfig
print(json.dumps({{
    "input_ids": enc["input_ids"], "features": [list(map(float, f)) for f in enc["lexical_features"]],
    "task_ids": list(map(int, enc["task_ids"])), "runner": OnnxSurgeClassifier.__name__,
    "help": help_text.getvalue(), "model_error": model_error, "registered": registered,
    "torch": {LOADED_TORCH},
}}))
"""
    out = run_fresh_python(code, tmp_path, torch=False)
    assert out["torch"] == []
    assert out["input_ids"] == expected["input_ids"]
    np.testing.assert_array_equal(
        np.asarray(out["features"], np.float32), np.asarray(expected["lexical_features"])
    )
    assert out["task_ids"] == [0, 1]
    assert out["runner"] == "OnnxSurgeClassifier"
    assert out["help"].startswith("usage: surgellm") and "predict" in out["help"]
    assert "torch" in out["model_error"]
    assert out["registered"] is True  # the configuration needs no torch: AutoConfig knows it without torch


_CHECK_REGISTERED = """
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
config_class = type(AutoConfig.for_model("surge"))
print(json.dumps({
    "config": config_class is surgellm_hf.SurgeConfig,
    "model": AutoModel._model_mapping[config_class] is surgellm_hf.SurgeModel,
    "classifier": AutoModelForSequenceClassification._model_mapping[config_class]
    is surgellm_hf.SurgeForSequenceClassification,
}))
"""


@pytest.mark.parametrize(
    "first",
    [
        "import surgellm_hf",
        "from transformers import AutoModelForSequenceClassification\nimport surgellm_hf",
        "import surgellm_hf\nfrom transformers import pipeline",  # transformers.pipelines imports modeling_auto
        "import surgellm_hf\nfrom transformers import Trainer",
        "import surgellm_hf\nimport surgellm_hf.modeling_surge",  # it imports the Auto module while initialising
        "import surgellm_hf\nfrom surgellm_hf import SurgeConfig",
        "import surgellm_hf\nfrom peft import get_peft_model",
    ],
)
def test_auto_classes_know_surgellm_whichever_side_is_imported_first(first, tmp_path):
    """The Auto classes resolve SURGELLM's config and models after any import order (the registration hooks wait
    until both transformers' Auto module and ours have finished importing)."""
    code = f"import json\n{first}\n{_CHECK_REGISTERED}"
    assert run_fresh_python(code, tmp_path) == {"config": True, "model": True, "classifier": True}


def test_import_and_cli_help_load_neither_transformers_nor_torch(tmp_path):
    """With torch installed, ``import surgellm_hf`` and ``surgellm --help`` import neither torch nor transformers
    (what keeps the CLI's help fast); the registration happens when the Auto classes are imported."""
    code = """
import contextlib, io, json, sys
import surgellm_hf
from surgellm_hf.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers"})
print(json.dumps({"loaded": loaded}))
"""
    assert run_fresh_python(code, tmp_path) == {"loaded": []}
