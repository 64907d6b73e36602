"""The package layout: no import cycles among the modules of src/surgellm_hf, counting imports anywhere in a file
(module level or inside functions) and `importlib.import_module` calls with a literal name."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "surgellm_hf"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / PACKAGE


def _modules(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its __init__.py)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name `module` imports, anywhere in its file, relative imports resolved."""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return names


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a name resolves to the longest module it names)."""
    modules = _modules(package_dir)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name not in (module, PACKAGE):  # the top-level package: entered by every import
                targets.add(name)
        graph[module] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles_in_the_package():
    graph = import_graph()
    assert len(graph) > 20 and f"{PACKAGE}.training.run" in graph
    assert import_cycles(graph) == []


def test_the_checker_counts_function_level_and_importlib_imports(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import f\n")
    (package / "a.py").write_text("def f():\n    from .sub.b import g\n    return g\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text(
        "import importlib\n\ndef g():\n    return importlib.import_module('surgellm_hf.a')\n"
    )
    graph = import_graph(package)
    assert graph[f"{PACKAGE}.a"] == {f"{PACKAGE}.sub.b"} and graph[f"{PACKAGE}.sub.b"] == {f"{PACKAGE}.a"}
    assert import_cycles(graph) == [[f"{PACKAGE}.a", f"{PACKAGE}.sub.b"]]


def test_the_model_and_the_data_flow_point_one_way():
    """text -> processor -> model -> outputs; data -> trainer -> run folder -> report/card -> Hub."""
    graph = import_graph()

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for w in graph[todo.pop()] - seen:
                seen.add(w)
                todo.append(w)
        return seen

    upstream_of = {
        "modeling_surge": ("processing_surge", "training", "evaluation", "hub", "data", "inference", "cli"),
        "processing_surge": ("modeling_surge", "training", "evaluation", "hub", "data", "inference", "cli"),
        "data": ("training", "evaluation", "hub", "inference", "cli"),
        "evaluation": ("training", "hub", "inference", "cli"),
        "training": ("hub", "inference", "cli"),
        "hub": ("cli",),
    }
    for module, downstream in upstream_of.items():
        starts = [m for m in graph if m == f"{PACKAGE}.{module}" or m.startswith(f"{PACKAGE}.{module}.")]
        reached = set().union(*(reaches(m) for m in starts))
        wrong = sorted(
            m for m in reached for d in downstream if m == f"{PACKAGE}.{d}" or m.startswith(f"{PACKAGE}.{d}.")
        )
        assert not wrong, f"{module} imports {wrong}, which come later in the data flow"


def test_the_classification_model_class_stays_lean():
    """`SurgeForSequenceClassification` holds the forward passes and heads only (issue 21: under ~250 lines); the
    freeze / save / PEFT helpers, label checks, losses and problem types live in their own modules."""
    tree = ast.parse((PACKAGE_DIR / "modeling_surge.py").read_text(encoding="utf-8"))
    (cls,) = [
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SurgeForSequenceClassification"
    ]
    assert cls.end_lineno - cls.lineno + 1 <= 250
