"""Reference documentation of plugins, generated from their ``Config`` schemas (so it cannot drift).

An option's description is the string literal written under its field, as in::

    @dataclass
    class MyConfig:
        path: str = MISSING
        \"\"\"The .jsonl file.\"\"\"
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from typing import Any

from omegaconf import MISSING

from ftframe.plugins import GROUP_OF_KIND, Registry


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring written right under it, for ``cls`` and its dataclass bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = field.default_factory()  # type: ignore[misc]
    else:
        return "required"
    return "required" if value == MISSING else f"`{value!r}`"


def options(cls: type) -> list[tuple[str, str, str, str]]:
    """``(name, type, default, description)`` for each option of a plugin ``Config`` dataclass."""
    docs = field_docs(cls)
    return [(f.name, str(f.type), _default(f), docs.get(f.name, "")) for f in dataclasses.fields(cls)]


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell: a ``|`` (also in code spans, per GFM) is escaped."""
    return text.replace("|", "\\|")


def markdown(registry: Registry, distribution: str | None = None) -> str:
    """The plugin reference: one section per kind, one table of options per plugin."""
    lines = ["# Built-in plugins", "",
             "Generated from each plugin's `Config` schema by `ftframe plugins --markdown`; a test keeps",
             "this file in step with the code. Set an option with `<group>.<option>=value`.", ""]
    for kind, by_name in registry.classes.items():
        names = [n for n in sorted(by_name) if distribution is None
                 or registry.owner[(kind, n)].split(" (")[-1].startswith(distribution)]
        if not names:
            continue
        group = GROUP_OF_KIND[kind]
        lines += [f"## {kind.replace('_', ' ')}s (`{group}`)", ""]
        for name in names:
            cls: Any = by_name[name]
            doc = " ".join((cls.__doc__ or "").split())
            lines += [f"### `{name}`", "", doc, "", "| option | type | default | description |",
                      "|---|---|---|---|"]
            rows = [[_cell(x) for x in row] for row in options(cls.Config)]
            lines += [f"| `{o}` | `{t}` | {d} | {desc} |" for o, t, d, desc in rows] or ["| — | | | |"]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
