"""Every hook in hookspecs.py is in docs/plugins/hooks.md with exactly its signature (datasette-style)."""

from __future__ import annotations

import inspect
import re

from ftframe import hookspecs

DOC = "docs/plugins/hooks.md"


def specs() -> dict[str, object]:
    return {name: fn for name, fn in vars(hookspecs).items() if name.startswith("ftframe_") and callable(fn)}


def signature(fn) -> str:
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{fn.__name__}({params}) -> {sig.return_annotation}"


def documented(repo_root) -> dict[str, str]:
    text = (repo_root / DOC).read_text(encoding="utf-8")
    return dict(re.findall(r"^### (ftframe_\w+)\n\n```python\n(.+?)\n```", text, flags=re.M))


def test_every_hook_is_documented_with_its_signature(repo_root):
    docs = documented(repo_root)
    missing = sorted(set(specs()) - set(docs))
    assert not missing, f"hooks missing from {DOC}: {missing}"
    for name, fn in specs().items():
        assert docs[name] == signature(fn), f"{DOC} documents {docs[name]!r}, hookspecs.py has {signature(fn)!r}"


def test_no_documented_hook_is_gone(repo_root):
    assert set(documented(repo_root)) <= set(specs())


def test_every_hook_has_a_docstring():
    assert all((fn.__doc__ or "").strip() for fn in specs().values())


def test_builtin_plugin_reference_is_up_to_date(repo_root, registry):
    """docs/plugins/builtin.md is generated from the Config schemas; regenerate it when they change:
    ftframe plugins --markdown --distribution ftframe > docs/plugins/builtin.md"""
    from ftframe.plugin_docs import markdown

    assert (repo_root / "docs/plugins/builtin.md").read_text(encoding="utf-8") == markdown(registry, "ftframe")


def test_every_builtin_option_is_described(registry):
    from ftframe.plugin_docs import options

    undocumented = [f"{kind}/{name}.{opt}" for kind, classes in registry.classes.items()
                    for name, cls in classes.items() for opt, _, _, desc in options(cls.Config) if not desc]
    assert not undocumented
