"""The `ftframe` console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def ftframe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftframe.commands", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_plugins_json_lists_first_party_plugins():
    out = ftframe("plugins", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["ftframe_backends"]["provides"] == {"backend": ["dpo", "full", "ipo", "kto", "lora", "orpo", "qlora", "simpo"]}
    assert rows["ftframe_metrics"]["distribution"] == "ftframe"
    assert set(rows["ftframe_metrics"]["provides"]["metrics"]) >= {"macro_f1", "accuracy"}


def test_blocked_plugin_is_shown_as_blocked():
    out = ftframe("plugins", "--json", env={"FTFRAME_DISABLE_PLUGINS": "ftframe_exporters"})
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["ftframe_exporters"]["blocked"] is True
    assert rows["ftframe_exporters"]["provides"] == {}
    table = ftframe("plugins", env={"FTFRAME_DISABLE_PLUGINS": "ftframe_exporters", "COLUMNS": "200"})
    assert "blocked" in table.stdout and "ftframe_exporters" in table.stdout


def test_unknown_command_is_a_usage_error():
    out = ftframe("plugns")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
