"""Every YAML file shipped in conf/ composes and validates (all groups, recursively), and `ftframe validate`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ftframe.config.compose import config_dir
from ftframe.config.validate import problems
from ftframe.testing import compose

CONF = config_dir()
YAMLS = sorted(p.relative_to(CONF) for p in CONF.rglob("*.yaml") if p.name != "config.yaml")


BANKING77 = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "banking77"
USER_DATA = {  # recipes that take the user's data paths (no data of their own)
    "banking77": [f"data.path={BANKING77 / 'train.csv'}", f"split.files.test={BANKING77 / 'test.csv'}"],
}


def overrides_for(rel: Path) -> list[str]:
    group, option = rel.parent.as_posix(), rel.stem
    if group == "task" and option in USER_DATA:
        if not BANKING77.is_dir():
            pytest.skip(f"{BANKING77} is not available")
        return [f"+task={option}", *USER_DATA[option]]
    if group.startswith("task_backend/"):  # a task's options for one backend: that task with that backend
        return [*overrides_for(Path(f"task/{group.split('/')[1]}.yaml")), f"backend={option}"]
    if group == "sweep" and option.startswith("banking77"):  # a search for that recipe
        return [*overrides_for(Path("task/banking77.yaml")), f"+sweep={option}"]
    if group in ("task", "sweep"):  # added with +, not in the defaults list
        return ["+task=triage", f"+{group}={option}"] if group == "sweep" else [f"+task={option}"]
    if group.startswith("hydra/"):  # launcher configs: the option name as Hydra spells groups
        return ["+task=triage", f"{group}={option}"]
    return ["+task=triage", f"{group.replace('/', '.')}={option}"]


def test_there_are_yaml_files_to_check():
    assert Path("task/triage.yaml") in YAMLS


@pytest.mark.parametrize("rel", YAMLS, ids=str)
def test_yaml_composes_and_validates(rel, pm, registry):
    cfg = compose(overrides_for(rel), pm=pm)
    assert problems(cfg, registry) == []


def validate_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftframe.commands", "validate", *args], capture_output=True,
                          text=True, timeout=120)


def test_validate_command_reports_every_problem_at_once():
    ok = validate_cli("+task=triage")
    assert ok.returncode == 0 and ok.stdout.startswith("OK: task triage"), ok.stderr
    bad = validate_cli("+task=triage", "split.test=0.5", "+gate.acc=0.3", "data.path=missing.jsonl")
    assert bad.returncode == 2
    assert "3 problem(s)" in bad.stderr
    for needle in ("data.path", "gate.acc", "split"):
        assert needle in bad.stderr
    typo = validate_cli("+task=triage", "backend.rnak=1")
    assert typo.returncode == 2 and "backend.rnak" in typo.stderr and "Traceback" not in typo.stderr
