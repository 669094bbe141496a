"""The config path imports no engine stack: composing, validating and printing configs, listing plugins and
reading a run dir leave torch, transformers, Lightning and peft unimported (checked structurally, in fresh
subprocesses), so config commands stay instant. Timings are measured by scripts/bench_config_commands.py.

A plugin module that imports torch at module level fails here: plugin classes and their ``Config``
schemas must import light (docs/plugins/writing.md, "Light imports").
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "lightning", "peft", "torchmetrics")
REPO = Path(__file__).resolve().parents[2]
TASKS = sorted(p.stem for p in (REPO / "conf" / "task").glob("*.yaml"))

CHECK = f"""
import sys
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env_code = "import os\nfor k in [k for k in os.environ if k.startswith('FTFRAME_')]: del os.environ[k]\n"
    return subprocess.run([sys.executable, "-c", env_code + code + CHECK], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def heavy_of(out: subprocess.CompletedProcess) -> list[str]:
    line = next((ln for ln in out.stderr.splitlines() if ln.startswith("HEAVY=")), None)
    assert line is not None, out.stdout[-2000:] + out.stderr[-3000:]
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def test_composing_and_validating_every_shipped_task_imports_no_torch(tmp_path):
    assert {"triage", "extraction", "banking77"} <= set(TASKS)
    csv = tmp_path / "intents.csv"
    csv.write_text("text,category\nmy card is lost,lost_card\nwhere is my money,transfer\n", encoding="utf-8")
    extra = {"banking77": [f"data.path={csv}", f"split.files.test={csv}"]}
    code = f"""
from ftframe.config.compose import compose
from ftframe.config.validate import problems
from ftframe.plugins import Registry, get_plugin_manager

registry = Registry(get_plugin_manager())
for task in {TASKS!r}:
    cfg = compose(["+task=" + task, *{extra!r}.get(task, [])], registry=registry)
    print(task, problems(cfg, registry))
"""
    out = run_python(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert heavy_of(out) == [], "the config path imported the engine stack; `python -X importtime` shows who"
    for task in TASKS:
        assert any(line.startswith(f"{task} ") for line in out.stdout.splitlines()), out.stdout


@pytest.mark.parametrize("argv", [
    ["plugins"], ["plugins", "--json"], ["plugins", "--markdown"], ["validate", "+task=triage", "--print"],
    ["validate", "+task=triage", "backend.rnak=3"], ["--help"],
])
def test_console_commands_import_no_torch(tmp_path, argv):
    code = f"""
from ftframe.commands import main
try:
    code = main({argv!r})
except SystemExit as exc:
    code = exc.code
print("EXIT", code)
"""
    out = run_python(code, tmp_path)
    assert heavy_of(out) == []
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [["+task=triage", "--cfg", "job"], ["+task=triage", "--help"],
                                  ["+task=triage", "--info", "defaults"], ["+task=triage", "backend.lr=abc"]])
def test_hydra_app_without_a_job_imports_no_torch(tmp_path, args):
    code = f"""
import sys
sys.argv = ["ftframe", *{args!r}]
from ftframe.cli import main
try:
    main()
except SystemExit:
    pass
"""
    out = run_python(code, tmp_path)
    assert heavy_of(out) == []
    assert "Traceback" not in out.stderr


def test_reading_a_run_dir_and_the_contract_import_no_torch(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("task:\n  name: t\n", encoding="utf-8")
    (run / "manifest.json").write_text(json.dumps({"status": "succeeded", "seed": 0}), encoding="utf-8")
    code = f"""
import ftframe.api, ftframe.manifest, ftframe.engine
from ftframe.engine import TrainHyperparams
from ftframe.engine.saved_run import read_run_dir
_, config, manifest = read_run_dir({str(run)!r})
assert config.task.name == "t" and manifest["status"] == "succeeded"
"""
    out = run_python(code, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert heavy_of(out) == []


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_contract_module_imports_no_engine_and_takes_part_in_no_import_circle():
    """``ftframe.api`` is what plugins and the engine both import: it may import only ``ftframe.errors`` and
    ``ftframe.tool_calls`` (which import nothing of ftframe), anywhere in it, so no import circle runs through it."""
    api = {m for m in _imports(REPO / "ftframe" / "api.py") if m.split(".")[0] in ("ftframe", *HEAVY)}
    assert api <= {"ftframe.errors", "ftframe.tool_calls"}, api
    for leaf in ("errors.py", "tool_calls.py"):
        assert not {m for m in _imports(REPO / "ftframe" / leaf) if m.split(".")[0] in ("ftframe", *HEAVY)}, leaf
