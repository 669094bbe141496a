"""Input paths checked before anything reads them: existence, kind (file or folder), readability, emptiness.

One message per problem, used by ``ftframe validate``, ``ftframe data check`` and the run alike (data files,
split files, golden sets, model folders, run dirs), so each command says the same thing about the same path.
:func:`os_error_message` turns an ``OSError`` met while reading into the same words, so no input path ever
ends in a traceback.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

KINDS = ("file", "folder", "any")
"""What a path must name: a ``file``, a ``folder``, or ``any`` of the two."""

HEAD_BYTES = 1 << 16
"""How much of a file is read to tell that it is readable and not empty."""
MAX_FOLDER_FILES = 2000
"""A folder's files are opened one by one up to this many (model, dataset and export folders hold a few)."""


def user_name() -> str:
    """The name of the user this process runs as (its numeric id where it has no name)."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid()) if hasattr(os, "geteuid") else "this user"


def _not_found(path: Path, key: str, kind: str) -> str:
    noun = {"file": "file not found", "folder": "folder not found"}.get(kind, "not found")
    return f"{path}: {noun}. Check {key} (relative paths start at {Path.cwd()})."


def _denied(path: Path, key: str, what: str = "this file") -> str:
    return (f"{path}: permission denied: user {user_name()} may not read {what}. Check its permissions "
            f"(ls -l {path}), or point {key} at a copy this user can read.")


def os_error_message(exc: OSError, key: str, path: str | os.PathLike | None = None) -> str:
    """What an ``OSError`` met while reading an input means, in the words of :func:`input_problem`."""
    where = Path(exc.filename if exc.filename is not None else (path or "?"))
    if exc.errno == errno.ENOENT:
        return _not_found(where, key, "any")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return _denied(where, key, "this folder" if _is_dir(where) else "this file")
    if exc.errno == errno.EISDIR:
        return f"{where}: is a folder, not a file. Point {key} at a file."
    return f"{where}: cannot be read ({exc.strerror or exc}). Check {key}."


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


def _file_problem(path: Path, key: str, *, records: bool, size: int) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        return os_error_message(exc, key, path)
    if records and size <= len(head) and not head.removeprefix(b"\xef\xbb\xbf").strip():
        blank = " (only blank lines)" if size else ""
        return f"{path}: empty file{blank}; {key} must hold at least one record."
    return None


def _folder_problem(path: Path, key: str) -> str | None:
    """The first file or subfolder of ``path`` this process may not read, as a message; None when all can be."""
    errors: list[OSError] = []
    seen = 0
    for root, _dirs, files in os.walk(path, onerror=errors.append):
        if errors:
            break
        for name in files:
            seen += 1
            if seen > MAX_FOLDER_FILES:
                return None
            file = Path(root) / name
            try:
                with open(file, "rb"):
                    pass
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM):
                    return _denied(file, key, f"this file of {path}")
                if exc.errno != errno.ENOENT:  # a dangling link is the reader's business
                    return os_error_message(exc, key, file)
    if errors:
        exc = errors[0]
        folder = Path(exc.filename or path)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return _denied(folder, key, "this folder" if folder == path else f"this folder of {path}")
        return os_error_message(exc, key, folder)
    return None


def input_problem(path: str | os.PathLike, key: str, kind: str = "file", *, records: bool = False,
                  deep: bool = True, folder_hint: str = "", file_hint: str = "") -> str | None:
    """Why ``path`` (set by config key or argument ``key``) cannot be read as a ``kind``, or None.

    ``records``: the file must hold something (an empty or blank file is a problem). ``deep``: every file
    below a folder must be readable (else only the folder itself). The hints finish the sentence "Point KEY
    at a file/folder" when the path has the other kind.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    p = Path(path)
    try:
        st = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        return _not_found(p, key, kind)
    except PermissionError:
        return _denied(p, key, "a folder on this path")
    except OSError as exc:
        return os_error_message(exc, key, p)
    if stat.S_ISDIR(st.st_mode):
        if kind == "file":
            return f"{p}: is a folder, not a file. Point {key} at a file{folder_hint}."
        if deep:
            return _folder_problem(p, key)
        try:
            with os.scandir(p):
                return None
        except OSError as exc:
            return os_error_message(exc, key, p)
    if kind == "folder":
        return f"{p}: is a file, not a folder. Point {key} at a folder{file_hint}."
    return _file_problem(p, key, records=records, size=st.st_size)


def config_input_problems(cfg: Any, registry: Any) -> list[str]:
    """Every input path of a composed run config that cannot be read as it will be: ``data.path`` (by the
    chosen format, or detected for ``data=auto``), ``split.files.*`` and ``eval.golden`` (read with the
    ``data`` format), and ``model.path``. Loads nothing (a file's first bytes at most)."""
    from ftframe.engine.data_source import data_path_problem

    out: list[str] = []
    data = cfg.get("data")
    name = data.get("name") if data is not None else None
    inputs = [("data.path", data)] if name is not None else []
    split_files = (cfg.get("split") or {}).get("files") or {}
    golden = (cfg.get("eval") or {}).get("golden")
    inputs += [(f"split.files.{split}", {"name": name, "path": path}) for split, path in split_files.items() if path]
    inputs += [("eval.golden", {"name": name, "path": golden})] if golden else []
    for key, node in inputs:
        problem = data_path_problem(node, registry, key) if name is not None else None
        if problem:
            out.append(problem)
    model = cfg.get("model") or {}
    model_path = model.get("path") if "path" in model and not _missing(model, "path") else None
    if model_path:
        cls = registry.classes["model_source"].get(str(model.get("name")))
        problem = input_problem(str(model_path), "model.path", getattr(cls, "path_kind", "any"))
        if problem:
            out.append(problem)
    return out


def _missing(node: Any, key: str) -> bool:
    from omegaconf import DictConfig, OmegaConf

    return isinstance(node, DictConfig) and OmegaConf.is_missing(node, key)
