"""The remote-code file set: declared once (`REMOTE_CODE_MODULES`), closed under imports, only allowed dependencies,
exactly what `save_pretrained` writes, and enough for a process without surgellm_hf to load a saved model."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import torch
from transformers.dynamic_module_utils import get_relative_import_files

from surgellm_hf import Lexicon, SurgeForSequenceClassification, SurgeProcessor
from surgellm_hf.hub.remote_code import (
    OPTIONAL_PACKAGE_IMPORTS,
    REMOTE_CODE_DEPENDENCIES,
    REMOTE_CODE_MODULES,
    copy_remote_code,
    remote_code_files,
)
from tests._helpers import run_isolated

TEXTS = ["a gorgeous, witty film", "Furthermore, the results show a significant effect (p < 0.05)."]


def _imports(path: Path) -> tuple[set[str], set[str], set[str]]:
    """(relative module names, absolute top-level names, package names in string constants) used anywhere in a file."""
    relative, absolute, package_strings = set(), set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.level == 1 and node.module and "." not in node.module, (
                f"{path.name}: remote code imports siblings only as `from .x import y`"
            )
            relative.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            absolute.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            absolute.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"surgellm_hf(\.\w+)*", node.value):
                package_strings.add(node.value)  # e.g. a name handed to importlib.import_module
    return relative, absolute, package_strings


def test_remote_code_imports_only_siblings_stdlib_and_the_allowed_packages():
    allowed = set(sys.stdlib_module_names) | set(REMOTE_CODE_DEPENDENCIES)
    for name, path in zip(REMOTE_CODE_MODULES, remote_code_files()):
        relative, absolute, package_strings = _imports(path)
        assert relative <= set(REMOTE_CODE_MODULES), f"{name} imports non-remote siblings {relative}"
        assert absolute <= allowed, f"{name} imports {sorted(absolute - allowed)}"
        assert package_strings <= set(OPTIONAL_PACKAGE_IMPORTS.get(name, ())), (
            f"{name} names package modules {package_strings}; declare them in OPTIONAL_PACKAGE_IMPORTS"
        )


def test_the_declared_set_is_the_import_closure_of_the_auto_classes():
    """transformers copies each Auto class's module and its relative imports: together, exactly the declared set."""
    files = {path.stem: path for path in remote_code_files()}
    closure = {"modeling_surge", "processing_surge"}
    for entry in ("modeling_surge", "processing_surge"):
        closure |= {Path(f).stem for f in get_relative_import_files(str(files[entry]))}
    assert closure == set(REMOTE_CODE_MODULES)


def test_a_process_without_the_package_loads_a_saved_model_and_processor(tiny_bert_with_tokenizer, tmp_path):
    import numpy as np

    torch.manual_seed(0)
    tasks = {"reviews": 2, "register": 3}
    model = SurgeForSequenceClassification.from_encoder_pretrained(tiny_bert_with_tokenizer, tasks=tasks)
    processor = SurgeProcessor.from_encoder_pretrained(
        tiny_bert_with_tokenizer, lexicon=Lexicon.curated(), tasks=list(tasks), prefix="tokens"
    )
    processor.prepare_model(model)
    feats = np.random.RandomState(0).poisson(2.0, size=(24, model.config.num_features)).astype(np.float32)
    model.fit_feature_normalizer(feats, np.arange(24) % 2, np.repeat([0, 1], 12))
    model.eval()
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    assert copy_remote_code(folder) == []  # save_pretrained already wrote every declared file
    assert {p.stem for p in folder.glob("*.py")} == set(REMOTE_CODE_MODULES)
    with torch.no_grad():
        expected = model(**processor(TEXTS, task="register", return_tensors="pt", padding=True)).logits
    result = run_isolated(
        f"""
        import json, torch
        from transformers import AutoModelForSequenceClassification, AutoProcessor
        path = {str(folder)!r}
        model = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
        with torch.no_grad():
            logits = model(**processor({TEXTS!r}, task="register", return_tensors="pt", padding=True)).logits
        print(json.dumps({{"logits": logits.tolist(), "module": type(model).__module__}}))
        """,
        tmp_path,
    )
    assert result["module"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, rtol=1e-5, atol=1e-6)
