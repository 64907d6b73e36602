"""MkDocs hook: reference tables generated from the code that defines them, so nothing is written twice.

A page holds a marker (an HTML comment) where a table belongs; at build time the marker is replaced by a table read
from the source of this checkout (``src/`` goes first on ``sys.path``):

- ``<!-- run-config-reference -->``: every `RunConfig` key (dataclass fields: name, type, default, ``metadata["help"]``);
- ``<!-- task-spec-reference -->``: every `TaskSpec` key (one task of a run's ``data.tasks`` section);
- ``<!-- folder-options-reference -->``: the options of a ``data: {folder: ...}`` section (`load_folder`'s keywords);
- ``<!-- lora-reference -->``: the ``lora:`` keys (`LORA_DEFAULTS`) and the default target modules per encoder family;
- ``<!-- variants-reference -->``: the variant table (`VARIANTS`);
- ``<!-- reuse-ignored-keys -->``: the keys that may differ when a run folder is resumed or reused;
- ``<!-- cli-reference -->``: ``surgellm <command> --help`` of every command (`build_parser`).

An unknown marker (an HTML comment holding only a hyphenated lower-case name) fails the build, so a typo cannot leave
a page silently without its table.
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

MARKER = re.compile(r"<!--\s*([a-z0-9]+(?:-[a-z0-9]+)+)\s*-->")
"""A marker: an HTML comment holding one hyphenated lower-case name and nothing else (prose comments never match)."""


def _code(text: str) -> str:
    """Inline code for a Markdown table cell: an HTML <code> element, so a `|` in it cannot split the cell (inside a
    Markdown code span the table extension would show the escaping backslash)."""
    return "<code>" + html.escape(str(text), quote=False).replace("|", "&#124;") + "</code>"


def _value(value: Any) -> str:
    """A default as it is written in a YAML run config."""
    if value is None:
        return _code("null")
    if isinstance(value, bool):
        return _code("true" if value else "false")
    if isinstance(value, tuple):
        value = list(value)
    return _code(value)


def _cell(text: str) -> str:
    """Help text for a Markdown table cell: `code spans` as <code>, the rest HTML-escaped, pipes escaped, one line."""
    parts = str(text).replace("\n", " ").split("`")
    return "".join(
        _code(part) if i % 2 else html.escape(part, quote=False).replace("|", "\\|")
        for i, part in enumerate(parts)
    )


def _type(annotation: Any) -> str:
    return _code(
        annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    )


def _field_default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return _value(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _value(f.default_factory())
    return "required"


def _annotation(cls: type, f: dataclasses.Field) -> Any:
    """A field's annotation as written in the source (a checked dataclass resolves `f.type` for its type check)."""
    for klass in cls.__mro__:
        written = klass.__dict__.get("__annotations__", {})
        if f.name in written:
            return written[f.name]
    return f.type


def _fields_table(cls: type) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        meaning = _cell(f.metadata.get("help", ""))
        rows.append(f"| `{f.name}` | {_type(_annotation(cls, f))} | {_field_default(f)} | {meaning} |")
    return "\n".join(rows)


def run_config_reference() -> str:
    from surgellm_hf.training.run_config import RunConfig

    return _fields_table(RunConfig)


def task_spec_reference() -> str:
    from surgellm_hf.data.task_spec import TaskSpec

    return _fields_table(TaskSpec)


def folder_options_reference() -> str:
    from surgellm_hf.data.loading import load_folder

    rows = ["| key | type | default |", "|---|---|---|"]
    for name, param in inspect.signature(load_folder).parameters.items():
        if name == "path":
            name = "folder"
        default = "required" if param.default is inspect.Parameter.empty else _value(param.default)
        rows.append(f"| `{name}` | {_type(param.annotation)} | {default} |")
    return "\n".join(rows)


def lora_reference() -> str:
    from surgellm_hf.lora import DEFAULT_LORA_TARGETS
    from surgellm_hf.training.run_config import LORA_DEFAULTS

    keys = ["| key | default |", "|---|---|"]
    keys += [
        f"| `lora.{k}` | {_value(v) if v is not None else 'the encoder family’s attention projections (below)'} |"
        for k, v in LORA_DEFAULTS.items()
    ]
    families = ["| encoder `model_type` | default `target_modules` |", "|---|---|"]
    families += [
        f"| `{family}` | {', '.join(f'`{m}`' for m in modules)} |"
        for family, modules in DEFAULT_LORA_TARGETS.items()
    ]
    return "\n".join(keys) + "\n\n" + "\n".join(families)


def variants_reference() -> str:
    from surgellm_hf.training.variants import VARIANTS

    rows = [
        "| variant | P (prefix) | G (gate) | E (extended training) | I (IWN) | normalization | epochs | learning rate |",
        "|---|:-:|:-:|:-:|:-:|---|---:|---:|",
    ]
    for v in VARIANTS.values():
        flags = [v.use_prefix, v.use_gate, v.extended_training, v.norm == "iwn"]
        marks = " | ".join("1" if flag else "0" for flag in flags)
        rows.append(f"| `{v.name}` | {marks} | `{v.norm}` | {v.epochs} | {v.learning_rate:g} |")
    return "\n".join(rows)


def reuse_ignored_keys() -> str:
    from surgellm_hf.training.run_config import REUSE_IGNORED_KEYS

    return ", ".join(f"`{k}`" for k in REUSE_IGNORED_KEYS)


def cli_reference() -> str:
    from surgellm_hf.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "110"  # argparse wraps at the terminal width; fix it so the page does not vary
    try:
        parser = build_parser()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parts = []
        for name, command in sub.choices.items():
            parts.append(f"### `surgellm {name}`\n\n```text\n{command.format_help().rstrip()}\n```")
        return "\n\n".join(parts)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


GENERATORS: dict[str, Callable[[], str]] = {
    "run-config-reference": run_config_reference,
    "task-spec-reference": task_spec_reference,
    "folder-options-reference": folder_options_reference,
    "lora-reference": lora_reference,
    "variants-reference": variants_reference,
    "reuse-ignored-keys": reuse_ignored_keys,
    "cli-reference": cli_reference,
}


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace each generator marker in a page by its generated Markdown."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: unknown generated-reference marker {match.group(0)!r}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)
