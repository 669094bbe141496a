"""Plugin mistakes a third party makes from the docs, each as a real tiny distribution on a temporary path.

Each package is a ``*.dist-info`` folder (``METADATA`` + ``entry_points.txt``, as pip writes them) beside
its module, put on ``PYTHONPATH`` of the ``ftframe`` processes: registered through the ``ftframe``
entry-point group exactly like an installed plugin. ``ftframe plugins`` must keep answering (listing the
healthy plugins, the broken one with its reason), and a job must refuse to start while one is broken.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import ftframe
from ftframe import testing
from ftframe.errors import PluginError
from ftframe.plugins import Registry, get_plugin_manager

GOOD = '''
from ftframe import hookimpl
from ftframe.api import Metric, MetricResult


class Shout(Metric):
    name = "shout"

    def compute(self, predictions, task):
        return MetricResult({"shout": 1.0})


@hookimpl
def ftframe_metrics():
    return [Shout]
'''
TYPO = '''
from ftframe import hookimpl


@hookimpl
def ftframe_metric():
    return []
'''
BAD_ARGUMENT = '''
from ftframe import hookimpl


@hookimpl
def ftframe_run_finished(cfg, result):
    print(result.status)
'''
NO_HOOKIMPL = '''
def ftframe_metrics():
    return []
'''
IMPORT_FAILS = '''
import ftframe
import acme_not_installed_anywhere
'''
RAISES = '''
from ftframe import hookimpl


@hookimpl
def ftframe_metrics():
    raise RuntimeError("boom")
'''


def install(site: Path, name: str, source: str, version: str = "0.1.0") -> Path:
    """A distribution ``name`` (``-`` for ``_``) whose module ``name`` is the ``ftframe`` entry point ``name``."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[ftframe]\n{name} = {name}\n")
    module = site / f"{name}.py"
    module.write_text(textwrap.dedent(source).lstrip())
    return module


def line_of(module: Path, text: str) -> int:
    return next(i for i, line in enumerate(module.read_text().splitlines(), start=1) if text in line)


def run(site: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FTFRAME_")}
    full = {**clean, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **(env or {})}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full, timeout=300,
                          cwd=cwd or site)


def listed(site: Path, **kw) -> dict[str, dict]:
    out = run(site, "-m", "ftframe.commands", "plugins", "--json", **kw)
    assert out.returncode == 0, out.stderr
    return {r["name"]: r for r in json.loads(out.stdout)}


@pytest.fixture
def site(tmp_path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "acme_good", GOOD)
    return site


def assert_refused(out: subprocess.CompletedProcess, *parts: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "PluginValidationError" not in out.stderr
    assert out.stderr.startswith("error: "), out.stderr
    for part in parts:
        assert part in out.stderr, (part, out.stderr)


# ------------------------------------------------------------------------------------------ mistakes
def test_misspelled_hook_is_named_with_the_real_one_and_jobs_refuse(site, tmp_path):
    module = install(site, "acme_typo", TYPO, version="0.3.1")
    where = f"{module}:{line_of(module, '@hookimpl')}"

    rows = listed(site)
    assert rows["acme_typo"]["status"] == "broken"
    assert where in rows["acme_typo"]["problem"] and "ftframe_metric()" in rows["acme_typo"]["problem"]
    assert "did you mean 'ftframe_metrics'" in rows["acme_typo"]["problem"]
    assert rows["acme_good"]["status"] == "loaded" and rows["acme_good"]["provides"] == {"metrics": ["shout"]}
    assert rows["ftframe_metrics"]["status"] == "loaded" and "macro_f1" in rows["ftframe_metrics"]["provides"]["metrics"]

    table = run(site, "-m", "ftframe.commands", "plugins", env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "acme_good" in table.stdout and "broken" in table.stdout and where in table.stdout
    assert "FTFRAME_DISABLE_PLUGINS=acme_typo" in table.stderr

    parts = ("'acme_typo' (acme-typo 0.3.1)", where, "ftframe_metric()", "did you mean 'ftframe_metrics'",
             "FTFRAME_DISABLE_PLUGINS=acme_typo")
    assert_refused(run(site, "-m", "ftframe.commands", "validate", "+task=triage"), *parts)
    run_dir = tmp_path / "run"
    assert_refused(run(site, "-m", "ftframe", "+task=triage", f"hydra.run.dir={run_dir}"), *parts)
    assert not run_dir.exists()  # refused before Hydra started the job

    ok = run(site, "-m", "ftframe.commands", "validate", "+task=triage", env={"FTFRAME_DISABLE_PLUGINS": "acme_typo"})
    assert ok.returncode == 0 and ok.stdout.startswith("OK: task triage"), ok.stderr


def test_argument_the_hook_does_not_pass_is_named_with_the_valid_ones(site):
    module = install(site, "acme_args", BAD_ARGUMENT)
    where = f"{module}:{line_of(module, '@hookimpl')}"
    assert_refused(run(site, "-m", "ftframe.commands", "validate", "+task=triage"),
                   "'acme_args' (acme-args 0.1.0)", where, "ftframe_run_finished(cfg, result)", "takes 'cfg'",
                   "did you mean 'config'", "passes only config, result", "FTFRAME_DISABLE_PLUGINS=acme_args")
    rows = listed(site)
    assert rows["acme_args"]["status"] == "broken" and "ftframe_run_finished(cfg, result)" in rows["acme_args"]["problem"]
    assert rows["acme_good"]["status"] == "loaded"


def test_module_without_any_hookimpl_gets_a_warning(site):
    module = install(site, "acme_nohook", NO_HOOKIMPL)
    out = run(site, "-m", "ftframe.commands", "plugins", "--json")
    assert out.returncode == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["acme_nohook"]["status"] == "no hooks" and rows["acme_nohook"]["provides"] == {}
    warning = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warning) == 1 and "'acme_nohook' (acme-nohook 0.1.0)" in warning[0] and str(module) in warning[0]
    assert "implements no ftframe hook" in warning[0] and "@ftframe.hookimpl" in warning[0]
    ok = run(site, "-m", "ftframe.commands", "validate", "+task=triage")  # a warning, not a refusal
    assert ok.returncode == 0 and "implements no ftframe hook" in ok.stderr, ok.stderr


def test_plugin_that_fails_to_import_is_listed_as_broken(site):
    module = install(site, "acme_crash", IMPORT_FAILS)
    rows = listed(site)
    problem = rows["acme_crash"]["problem"]
    assert rows["acme_crash"]["status"] == "broken" and f"{module}:2" in problem and "ModuleNotFoundError" in problem
    assert_refused(run(site, "-m", "ftframe.commands", "validate", "+task=triage"), "'acme_crash' (acme-crash 0.1.0)",
                   "acme_not_installed_anywhere", "FTFRAME_DISABLE_PLUGINS=acme_crash")


def test_registry_hook_that_raises_is_listed_as_broken(site):
    install(site, "acme_raises", RAISES)
    rows = listed(site)
    assert rows["acme_raises"]["status"] == "broken"
    assert rows["acme_raises"]["problem"] == "raised in ftframe_metrics(): RuntimeError: boom"
    assert rows["acme_good"]["provides"] == {"metrics": ["shout"]}
    assert_refused(run(site, "-m", "ftframe.commands", "validate", "+task=triage"), "acme_raises", "boom")


def test_several_broken_plugins_are_all_named_at_once(site):
    install(site, "acme_typo", TYPO)
    install(site, "acme_args", BAD_ARGUMENT)
    assert_refused(run(site, "-m", "ftframe.commands", "validate", "+task=triage"), "2 plugins are broken",
                   "FTFRAME_DISABLE_PLUGINS=acme_typo", "FTFRAME_DISABLE_PLUGINS=acme_args")


# -------------------------------------------------------------------------------------- in process
def test_in_process_plugin_mistakes_are_plugin_errors():
    typo = types.ModuleType("acme_inproc_typo")
    typo.ftframe_exporter = ftframe.hookimpl(lambda: [])
    pm = get_plugin_manager([typo])  # loading records it; it is not registered
    assert "acme_inproc_typo" not in [pm.get_name(p) for p in pm.get_plugins()]
    with pytest.raises(PluginError, match=r"ftframe_exporter\(\) is not an ftframe hook \(did you mean 'ftframe_exporters'"):
        Registry(pm)
    with pytest.raises(PluginError, match="acme_inproc_typo"):
        testing.compose(["data.path=x"], plugins=[typo])
    assert "macro_f1" in Registry(pm, allow_broken=True).names("metric")  # the others still load


# ---------------------------------------------------------------------------- ftframe.testing (issue 3)
def test_testing_helpers_take_an_installed_plugin_module(site, monkeypatch):
    """docs/plugins/testing.md passes the plugin module; once installed it is also an entry point."""
    monkeypatch.syspath_prepend(str(site))
    import acme_good  # the installed plugin's own module, as its tests import it

    cfg = testing.compose(["data.path=x", "metrics=[macro_f1,shout]"], plugins=[acme_good])
    assert set(cfg.metrics) == {"macro_f1", "shout"}
    pm = testing.plugin_manager(acme_good)
    assert pm.get_name(acme_good) == "acme_good"  # registered once, under its entry-point name
    alone = Registry(testing.plugin_manager(acme_good, entry_points=False))
    assert alone.names("metric") == ["shout"] and alone.names("backend") == []


# ------------------------------------------------------------------------------ plugins --markdown
def test_markdown_reference_escapes_pipes_in_option_cells():
    from dataclasses import dataclass

    from ftframe.api import Metric
    from ftframe.plugin_docs import markdown

    @dataclass
    class PipeConfig:
        mode: str | None = "a|b"
        """Either ``a|b`` or ``c``."""

    class Pipe(Metric):
        name = "pipe_metric"
        Config = PipeConfig

    mod = types.ModuleType("acme_pipe")
    mod.ftframe_metrics = ftframe.hookimpl(lambda: [Pipe])
    text = markdown(Registry(get_plugin_manager([mod], entry_points=False)))
    row = next(line for line in text.splitlines() if line.startswith("| `mode`"))
    assert row == "| `mode` | `str \\| None` | `'a\\|b'` | Either ``a\\|b`` or ``c``. |"
    assert row.replace("\\|", "").count("|") == 5  # four cells, whatever the option text holds
