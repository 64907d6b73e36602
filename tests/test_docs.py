"""The documentation: the generated references cover what the code defines, and the README and the code's citations
point at pages and anchors that exist (CI also builds the site with `mkdocs build --strict`, which checks the links
between pages; these checks run without MkDocs installed)."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
TEST_COMMAND = 'pip install torch==2.13.0 && pip install -e ".[dev]" && python -m pytest -q tests'


def _hook():
    spec = importlib.util.spec_from_file_location(
        "docs_reference_hook", DOCS / "hooks" / "run_config_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slug(text: str) -> str:
    """Python-Markdown's toc slug of a heading (what `toc` gives a heading without an explicit id)."""
    text = re.sub(r"<[^>]+>|`", "", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    """Ids of a page's headings after the hook has generated its tables: explicit `{#id}` or the toc slug."""
    text = _hook().on_page_markdown(
        page.read_text(encoding="utf-8"), page=SimpleNamespace(file=SimpleNamespace(src_path=page.name))
    )
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        explicit = re.search(r"\{\s*#([\w-]+)\s*\}\s*$", heading)
        anchors.add(explicit.group(1) if explicit else _slug(heading))
    return anchors


def test_readme_is_short_and_ci_runs_its_test_command():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert TEST_COMMAND in readme.splitlines()
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines()
    assert ci.index("mkdocs build --strict") < ci.index(TEST_COMMAND)  # the docs fail fast, before the tests


def test_run_config_reference_has_one_row_per_key_with_its_default_and_help():
    from surgellm_hf.training.run_config import RunConfig

    table = _hook().run_config_reference().splitlines()
    rows = {re.match(r"\| `(\w+)` \|", row).group(1): row for row in table[2:]}
    fields = dataclasses.fields(RunConfig)
    assert list(rows) == [f.name for f in fields]
    for f in fields:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", rows[f.name])[1:-1]]
        assert len(cells) == 4, rows[f.name]
        if f.default is dataclasses.MISSING:
            assert cells[2] == "required"
        else:
            shown = (
                "null"
                if f.default is None
                else str(f.default).lower()
                if isinstance(f.default, bool)
                else str(f.default)
            )
            assert cells[2] == f"<code>{shown}</code>"
        words = re.findall(r"[a-z]{4,}", f.metadata["help"].lower())
        assert words and all(w in cells[3].lower() for w in words), f.name


def test_every_marker_in_the_docs_has_a_generator_and_an_unknown_one_fails():
    hook = _hook()
    used = {m for page in DOCS.rglob("*.md") for m in hook.MARKER.findall(page.read_text(encoding="utf-8"))}
    assert used == set(hook.GENERATORS)  # every generator is used somewhere, every marker is known
    page = SimpleNamespace(file=SimpleNamespace(src_path="x.md"))
    with pytest.raises(ValueError, match="run-config-refernce"):
        hook.on_page_markdown("<!-- run-config-refernce -->", page=page)


def _cited_doc_links() -> list[tuple[str, str, str]]:
    """(where, page, anchor) for every `docs/<page>.md[#anchor]` in the README, the code, tests and examples."""
    files = [REPO / "README.md", REPO / "benchmarks" / "README.md", REPO / "setup.cfg", REPO / "mkdocs.yml"]
    for folder in ("src", "tests", "examples", "benchmarks"):
        files += [p for p in (REPO / folder).rglob("*") if p.suffix in (".py", ".yaml", ".yml", ".md")]
    links = []
    for path in files:
        if path == Path(__file__) or not path.is_file():
            continue
        for match in re.finditer(r"\bdocs/([\w/-]+\.md)(?:#([\w-]+))?", path.read_text(encoding="utf-8")):
            links.append((str(path.relative_to(REPO)), match.group(1), match.group(2) or ""))
    return links


def test_the_readme_and_the_code_cite_pages_and_anchors_that_exist():
    links = _cited_doc_links()
    assert any(where == "README.md" for where, _, _ in links)
    anchors: dict[str, set[str]] = {}
    broken = []
    for where, page, anchor in links:
        path = DOCS / page
        if not path.is_file():
            broken.append(f"{where}: docs/{page} does not exist")
            continue
        if anchor and anchor not in anchors.setdefault(page, _anchors(path)):
            broken.append(f"{where}: docs/{page} has no anchor #{anchor}")
    assert not broken, "\n".join(broken)


def test_the_anchor_check_finds_explicit_ids_generated_headings_and_slugs():
    assert {"pitfall-1", "pitfall-17", "testing"} <= _anchors(DOCS / "architecture.md")
    assert "surgellm-predict" in _anchors(DOCS / "cli.md")  # a heading the hook generates
    assert _slug("What a run folder holds") == "what-a-run-folder-holds"
    assert "no-such-anchor" not in _anchors(DOCS / "method.md")


def test_no_file_cites_documents_outside_the_repository():
    """The method and design notes live in docs/: no source, test, benchmark or example cites the old shared
    notes (METHOD.md, ARCHITECTURE.md) or a path outside the checkout; the package names no ../shared path at all."""
    pattern = re.compile(r"METHOD(\.md)?\s*§|METHOD\.md|ARCHITECTURE(\.md)?\b|\.\./shared/docs")
    offenders = []
    for folder in ("src", "tests", "benchmarks", "examples"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix not in (".py", ".yaml", ".yml", ".md", ".jinja") or path == Path(__file__):
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line) or (folder == "src" and "../shared" in line):  # the package: no path
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)
