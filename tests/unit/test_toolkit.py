"""The backend toolkit: the engine names plugins may use are exported from ``ftframe.engine`` and documented
in docs/plugins/writing.md, and the first-party plugins import the engine through that door only."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from ftframe import engine

REPO = Path(__file__).resolve().parents[2]
PLUGIN_FILES = sorted((REPO / "plugins").glob("ftframe_*/**/*.py"))


def engine_imports(path: Path) -> list[str]:
    """``module:line`` of every import of an ``ftframe.engine`` submodule in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        modules = ([node.module or ""] if isinstance(node, ast.ImportFrom) else
                   [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        found += [f"{m}:{node.lineno}" for m in modules if m.startswith("ftframe.engine.")]
    return sorted(found, key=lambda f: int(f.rsplit(":", 1)[1]))


def test_the_scan_sees_imports_of_engine_submodules(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ftframe.engine import encode\ndef f():\n    from ftframe.engine.chat import render\n"
                   "import ftframe.engine.verify\n", encoding="utf-8")
    assert engine_imports(bad) == ["ftframe.engine.chat:3", "ftframe.engine.verify:4"]


def test_first_party_plugins_use_only_the_toolkit():
    assert len(PLUGIN_FILES) > 40
    offending = {str(p.relative_to(REPO)): engine_imports(p) for p in PLUGIN_FILES if engine_imports(p)}
    assert offending == {}, "import these names from ftframe.engine (add them to its _MODULES if missing)"


def test_all_lists_exactly_the_lazy_names():
    assert sorted(engine.__all__) == sorted(engine._HOME)


@pytest.mark.parametrize("name", engine.__all__)
def test_every_toolkit_name_resolves_to_its_module_and_is_documented(name):
    value = getattr(engine, name)
    home = importlib.import_module(engine._HOME[name])
    assert getattr(home, name) is value
    assert re.search(rf"`{name}[`(]", (REPO / "docs" / "plugins" / "writing.md").read_text(encoding="utf-8"))


def test_an_unknown_toolkit_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'encode_everything'"):
        engine.encode_everything  # noqa: B018


def test_one_loader_for_a_model_folder(tiny_model_dir, tmp_path):
    """Model sources and saved runs load a folder through ``load_pretrained``: a folder without a chat
    template is refused by both, naming the folder."""
    import shutil

    from ftframe.errors import ConfigError

    model, tokenizer = engine.load_pretrained(Path(tiny_model_dir), dtype="bf16")
    assert str(model.dtype) == "torch.bfloat16" and not model.training and tokenizer.pad_token is not None
    bare = tmp_path / "bare"
    shutil.copytree(tiny_model_dir, bare)
    for name in ("chat_template.jinja", "tokenizer_config.json"):
        path = bare / name
        if name == "tokenizer_config.json" and path.is_file():
            import json

            config = json.loads(path.read_text(encoding="utf-8"))
            config.pop("chat_template", None)
            path.write_text(json.dumps(config), encoding="utf-8")
        elif path.is_file():
            path.unlink()
    with pytest.raises(ConfigError, match=f"{bare}: the tokenizer has no chat template"):
        engine.load_pretrained(bare)
    with pytest.raises(ConfigError, match="model dtype 'fp8' is not one of"):
        engine.torch_dtype("fp8")
