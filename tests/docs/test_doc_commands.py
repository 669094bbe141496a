"""Every command README.md and docs/ show a user is run here, or listed with why (tests/docs/doc_commands.toml).

How each kind runs, and the plan file's keys, are described at the top of doc_commands.toml.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from doc_commands import REPO_ROOT, DocCommand, DocSnippet, collect

PLAN_FILE = Path(__file__).with_name("doc_commands.toml")
PLAN: dict[str, dict] = tomllib.loads(PLAN_FILE.read_text(encoding="utf-8"))
SNIPPET_PLAN: dict[str, str] = PLAN.pop("snippets", {})
COMMANDS, SNIPPETS = collect()
BY_TEXT: dict[str, list[DocCommand]] = {}
for _c in COMMANDS:
    BY_TEXT.setdefault(_c.text, []).append(_c)
FAILURE_SHOWN = re.compile(r"^(error:|\d+ problem\(s\):)")
PLAN_KEYS = {"not_run", "files", "replace"}


def kind(argv: list[str]) -> str:
    if argv[:3] == ["python", "-m", "ftframe"]:
        return "job"
    return {"ftframe": "ftframe", "make": "make"}.get(argv[0], "script")


def shown_failure(text: str) -> list[str] | None:
    """The output the docs show for this command failing, or None when they show it succeeding."""
    for c in BY_TEXT[text]:
        if c.output and FAILURE_SHOWN.match(c.output[0]):
            return c.output
    return None


def squash(text: str) -> str:
    return " ".join(text.split())


def test_every_doc_command_is_run_or_listed():
    assert len(COMMANDS) >= 80, "the collector finds far fewer commands than the docs hold"
    problems = []
    for text, where in ((t, cs[0].where) for t, cs in BY_TEXT.items()):
        entry = PLAN.get(text, {})
        if kind(shlex.split(text)) in ("make", "script") and "not_run" not in entry:
            problems.append(f"{where}: `{text}` is neither run by the suite nor listed in {PLAN_FILE.name}")
    for text, entry in PLAN.items():
        if text not in BY_TEXT:
            problems.append(f"{PLAN_FILE.name}: `{text}` is in no doc any more: remove its entry")
        if unknown := sorted(set(entry) - PLAN_KEYS):
            problems.append(f"{PLAN_FILE.name}: `{text}`: unknown keys {unknown}")
        if "not_run" in entry and len(entry["not_run"]) < 20:
            problems.append(f"{PLAN_FILE.name}: `{text}`: not_run needs a reason")
    assert not problems, "\n".join(problems)


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A working directory laid out like the user's: a checkout folder with ``../shared`` beside it."""
    work = tmp_path / "checkout"
    work.mkdir()
    (tmp_path / "shared").symlink_to((REPO_ROOT.parent / "shared").resolve())
    (work / "plugins").symlink_to(REPO_ROOT / "plugins")
    monkeypatch.chdir(work)
    return work


def _place(entry: dict, work: Path, tiny_model: Path, run: Path, cleanup: list[Path]) -> None:
    for dest, source in entry.get("files", {}).items():
        if dest.startswith("conf/"):
            target = REPO_ROOT / dest
            assert not target.exists(), f"{target} exists: the test will not overwrite it"
            cleanup.append(target)
        else:
            target = work / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if source == "@tiny_model":
            target.symlink_to(tiny_model, target_is_directory=True)
        elif source == "@run":
            shutil.copytree(run, target, ignore=shutil.ignore_patterns("checkpoints"))
        elif source.startswith("@run/"):
            shutil.copy(run / source.removeprefix("@run/"), target)
        elif source.endswith(".yaml"):
            target.write_text((REPO_ROOT / source).read_text().replace("@tiny_model", str(tiny_model)))
        else:
            target.symlink_to((REPO_ROOT / source).resolve())


def _subparser(name: str) -> argparse.ArgumentParser:
    from ftframe.commands import parser

    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _check_options_exist(argv: list[str], where: str) -> None:
    """A command the suite does not run: its subcommand and every ``--option`` it names must exist."""
    if kind(argv) == "make":
        targets = re.findall(r"^([\w-]+):", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
        assert argv[1] in targets, f"{where}: Makefile has no target {argv[1]!r}"
    elif kind(argv) == "script":
        assert (REPO_ROOT / argv[1]).is_file(), f"{where}: {argv[1]} does not exist"
    elif kind(argv) == "ftframe":
        sub = _subparser(argv[1])
        named = {m for tok in argv[2:] for m in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", tok)}
        missing = sorted(o for o in named if o not in sub._option_string_actions)
        assert not missing, f"{where}: `ftframe {argv[1]}` has no option {', '.join(missing)}"


def _run(argv: list[str], registry, capsys) -> tuple[int, str]:
    from ftframe.errors import FtframeError

    if kind(argv) == "job" and "--cfg" in argv:
        out = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=300, check=False)
        return out.returncode, out.stdout + out.stderr
    if kind(argv) == "job":
        from ftframe.cli import precheck
        from ftframe.config.compose import task_choice

        try:
            precheck(task_choice(argv[3:]), registry)
            return 0, ""
        except FtframeError as exc:  # printed as the job prints it
            return exc.exit_code, f"error: {exc}"
    from ftframe.commands import main

    try:
        code = main(argv[1:])
    except SystemExit as exc:  # argparse: a usage error
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("text", sorted(BY_TEXT), ids=lambda t: BY_TEXT[t][0].where)
def test_doc_command(text, checkout, tiny_model_dir, finished_run_dir, registry, capsys):
    entry = PLAN.get(text, {})
    first = BY_TEXT[text][0]
    for word, value in entry.get("replace", {}).items():
        assert word in text, f"{PLAN_FILE.name}: `{text}` has no {word!r} to replace"
        text = text.replace(word, value.replace("@tiny_model", str(tiny_model_dir)))
    argv = shlex.split(text)
    if "not_run" in entry or first.is_synopsis:
        _check_options_exist(argv, first.where)
        return
    cleanup: list[Path] = []
    try:
        _place(entry, checkout, tiny_model_dir, finished_run_dir, cleanup)
        code, printed = _run(argv, registry, capsys)
    finally:
        for path in cleanup:
            path.unlink(missing_ok=True)
    shown = shown_failure(first.text)
    if shown is None:
        assert code == 0, f"{first.where}: `{first.text}` exited {code}:\n{printed}"
        if "--cfg" in argv:  # the composed config, printed as YAML
            assert re.search(r"^backend:\n", printed, re.MULTILINE) and re.search(r"^task:\n", printed, re.MULTILINE), printed
        return
    assert code != 0, f"{first.where}: the docs show `{first.text}` failing, but it exited 0:\n{printed}"
    assert squash("\n".join(shown)) in squash(printed), (
        f"{first.where}: the docs show\n" + "\n".join(shown) + f"\nbut `{first.text}` printed\n{printed}")


BY_FILE: dict[str, list[DocSnippet]] = {}
for _s in SNIPPETS:
    BY_FILE.setdefault(_s.file, []).append(_s)
MODULE_HEADER = re.compile(r"^# ([\w/]+\.py)\n")


def _listed(file: str, number: int) -> str | None:
    return SNIPPET_PLAN.get(f"{file}#{number}") or SNIPPET_PLAN.get(file)


def test_snippet_plan_names_real_blocks():
    stale = [k for k in SNIPPET_PLAN if k.split("#")[0] not in BY_FILE
             or ("#" in k and not 1 <= int(k.split("#")[1]) <= len(BY_FILE[k.split("#")[0]]))]
    assert not stale, f"{PLAN_FILE.name} [snippets] names blocks that no doc has: {stale}"
    assert all(len(reason) >= 20 for reason in SNIPPET_PLAN.values()), "every listed snippet needs a reason"


def _runnable(file: str) -> list[DocSnippet]:
    return [s for n, s in enumerate(BY_FILE[file], 1) if not _listed(file, n) and not MODULE_HEADER.match(s.code)]


@pytest.mark.parametrize("file", sorted(f for f in BY_FILE if _runnable(f)))
def test_doc_snippets(file, tmp_path, monkeypatch):
    """The file's snippets as a reader uses them: every doc's modules written out, then these run in order."""
    import inspect

    src = tmp_path / "src"
    for snippet in SNIPPETS:
        if (header := MODULE_HEADER.match(snippet.code)) is not None:
            compile(snippet.code, snippet.where, "exec")
            _write_module(src, header.group(1), snippet.code)
    monkeypatch.syspath_prepend(str(src))
    before = set(sys.modules)
    namespace: dict = {"__name__": f"doc_snippets_{Path(file).stem}"}
    try:
        for snippet in _runnable(file):
            exec(compile(snippet.code, snippet.where, "exec"), namespace)  # noqa: S102 — the docs' own code
        tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
        for name, func in tests:
            kwargs = {}
            if "tmp_path" in inspect.signature(func).parameters:
                kwargs["tmp_path"] = tmp_path / name
                kwargs["tmp_path"].mkdir()
            func(**kwargs)
    finally:
        for name in set(sys.modules) - before:  # the reader's modules (not what they imported) leave with the test
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if Path(origin).is_relative_to(src):
                del sys.modules[name]


def _write_module(src: Path, relpath: str, code: str) -> None:
    target = src / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    for parent in target.relative_to(src).parents:
        if parent != Path("."):
            (src / parent / "__init__.py").touch()
    target.write_text(code, encoding="utf-8")
