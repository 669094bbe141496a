"""Collect the shell commands and Python snippets that README.md and docs/**/*.md show a user.

A *command* is a line in a fenced block without a language (or ``bash``/``sh``/``console``) that starts
with ``python -m ftframe``, ``ftframe``, ``make`` or ``python scripts/`` (a leading ``$ `` is dropped;
``\\`` continues it on the next line). When the block writes ``$ `` before its commands, the lines up to
the next ``$ `` are the output the docs show for it. A *snippet* is a fenced ``python`` block.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = ("", "bash", "sh", "console", "shell")
COMMAND_START = re.compile(r"^(python -m ftframe(\s|$)|ftframe(\s|$)|make\s|python scripts/\S)")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]+(\.\.\.)?$|^\[|^\|$|\.\.\.$")
"""Tokens that mark a synopsis (``ftframe eval RUN_DIR [--out DIR]``) rather than a command to run."""


@dataclass
class DocCommand:
    file: str  # relative to the repo root
    line: int
    text: str  # the command as a user types it (continuations joined, comment dropped)
    output: list[str] = field(default_factory=list)  # what the docs show it printing ("$ " blocks only)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text)

    @property
    def is_synopsis(self) -> bool:
        return any(PLACEHOLDER.search(tok) for tok in self.argv)


@dataclass
class DocSnippet:
    file: str
    line: int  # the line of the opening fence
    code: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def doc_files(root: Path = REPO_ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _blocks(path: Path):
    """Yield ``(language, first line number, lines)`` for each fenced block of a Markdown file."""
    lang, start, lines = None, 0, []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = line.strip()
        if fence.startswith("```"):
            if lang is None:
                lang, start, lines = fence[3:].strip().lower(), number, []
            else:
                yield lang, start, lines
                lang = None
        elif lang is not None:
            lines.append(line)


def _strip_comment(text: str) -> str:
    """The command without a trailing ``# comment``: a ``#`` that starts a word outside quotes (shell rules)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.rstrip()


def collect(root: Path = REPO_ROOT) -> tuple[list[DocCommand], list[DocSnippet]]:
    commands: list[DocCommand] = []
    snippets: list[DocSnippet] = []
    for path in doc_files(root):
        rel = path.relative_to(root).as_posix()
        for lang, start, lines in _blocks(path):
            if lang == "python":
                snippets.append(DocSnippet(rel, start, "\n".join(lines) + "\n"))
                continue
            if lang not in SHELL_LANGS:
                continue
            dollar = any(ln.lstrip().startswith("$ ") for ln in lines)
            current: DocCommand | None = None
            i = 0
            while i < len(lines):
                raw = lines[i].strip()
                number = start + 1 + i
                is_prompt = raw.startswith("$ ")
                body = raw[2:].strip() if is_prompt else raw
                if (is_prompt or not dollar) and COMMAND_START.match(body):
                    while body.endswith("\\") and i + 1 < len(lines):
                        i += 1
                        body = body[:-1].rstrip() + " " + lines[i].strip()
                    current = DocCommand(rel, number, _strip_comment(body))
                    commands.append(current)
                elif dollar and is_prompt:
                    current = None  # another program's command: its output is not ours
                elif dollar and current is not None and raw:
                    current.output.append(raw)
                i += 1
    return commands, snippets
