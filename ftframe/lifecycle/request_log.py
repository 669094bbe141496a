"""The request log: one JSON line per request a server answered or refused, written with rotation.

Schema ``ftframe.request_log/1`` (docs/lifecycle.md#the-request-log shows a line)::

    schema        "ftframe.request_log/1"
    id            the request's id (the chat completion id where one was made)
    timestamp     ISO 8601, UTC, milliseconds
    route         "answer" (one model), "shadow" (the champion answers, the challenger runs on the same
                  request in the background) or "canary" (a share of requests is answered by the challenger)
    variant       which variant's answer the client got: "champion", "challenger", or null (refused before
                  any model ran, e.g. a malformed request)
    user          the request's ``user`` field: as sent (PII-redacted) with content logging on, else a
                  SHA-256 prefix ("sha256:<16 hex>") so that requests of one user still group
    status        the HTTP status the client got; error: its OpenAI error code (null on success)
    latency_ms, prompt_tokens, completion_tokens
                  of the answer the client got (copied from the served entry of ``answers``)
    messages      the prompt conversation, ``[{"role", "content"}]`` — only with content logging on, PII
                  replaced by typed placeholders (:mod:`ftframe.transforms.pii`); ``redacted`` counts them
    answers       one entry per variant that ran: variant, model (the run dir or ``models:/`` URI it was
                  loaded from), served (bool), status, error, latency_ms, prompt_tokens, completion_tokens,
                  finish_reason, and ``text`` (the answer; only with content logging on, PII-redacted)

Content (prompts, answers, the raw ``user``) is off by default and opt-in (``content=True``).

The writer is :class:`logging.handlers.RotatingFileHandler` (size-based rotation to ``LOG.1`` …
``LOG.N``, thread-safe), used without a named logger so that nothing global is registered; the reader
reads the rotated files oldest first and keeps every unreadable line as a problem naming ``file:line``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import logging.handlers
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from ftframe.lifecycle import LifecycleError

SCHEMA = "ftframe.request_log/1"
ROUTES = ("answer", "shadow", "canary")
VARIANTS = ("champion", "challenger")
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_BACKUPS = 10


def now_ms() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def hash_user(user: str) -> str:
    """A stable pseudonym of a ``user`` value (requests of one user still group; the value is not kept)."""
    return "sha256:" + hashlib.sha256(user.encode("utf-8")).hexdigest()[:16]


def message_text(content: Any) -> str:
    """A message's content as text: a string, or OpenAI's list of ``{"type": "text", "text"}`` parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def plain_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """``[{"role", "content"}]`` with text contents: the shape the log keeps and prompts are matched in."""
    return [{"role": str(m.get("role", "")), "content": message_text(m.get("content"))} for m in messages]


@dataclass
class Answer:
    """What one variant did with a request."""

    variant: str
    model: str
    """Where the variant was loaded from: a run dir or a ``models:/NAME@alias`` URI (with its version)."""
    served: bool
    """Whether this answer went to the client (a shadow answer did not)."""
    latency_ms: float
    status: int = 200
    error: str | None = None
    """OpenAI error code (``context_length_exceeded``, ``server_error``...), null on success."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    text: str | None = None
    """The answer; kept only with content logging on."""

    def to_json(self) -> dict[str, Any]:
        out = {"variant": self.variant, "model": self.model, "served": self.served, "status": self.status,
               "error": self.error, "latency_ms": round(float(self.latency_ms), 3),
               "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
               "finish_reason": self.finish_reason}
        if self.text is not None:
            out["text"] = self.text
        return out

    @property
    def ok(self) -> bool:
        return self.status < 400 and self.error is None


@dataclass
class RequestRecord:
    """One request: how it was routed, what each variant answered, what the client got."""

    route: str
    answers: list[Answer] = field(default_factory=list)
    status: int = 200
    error: str | None = None
    user: str | None = None
    messages: list[dict[str, Any]] | None = None
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4().hex[:24]}")
    timestamp: str = field(default_factory=now_ms)
    redacted: dict[str, int] | None = None
    """PII placeholders put into this record's content, by kind (set by the writer)."""
    where: str = ""
    """``file:line`` the record was read from (empty for a record being written)."""

    @property
    def served(self) -> Answer | None:
        return next((a for a in self.answers if a.served), None)

    @property
    def variant(self) -> str | None:
        served = self.served
        return served.variant if served else None

    def answer(self, variant: str) -> Answer | None:
        return next((a for a in self.answers if a.variant == variant), None)

    @property
    def time(self) -> datetime:
        return datetime.fromisoformat(self.timestamp)

    def to_json(self) -> dict[str, Any]:
        served = self.served
        out: dict[str, Any] = {
            "schema": SCHEMA, "id": self.request_id, "timestamp": self.timestamp, "route": self.route,
            "variant": self.variant, "user": self.user, "status": self.status, "error": self.error,
            "latency_ms": round(float(served.latency_ms), 3) if served else None,
            "prompt_tokens": served.prompt_tokens if served else None,
            "completion_tokens": served.completion_tokens if served else None}
        if self.messages is not None:
            out["messages"] = self.messages
            out["redacted"] = self.redacted or {}
        out["answers"] = [a.to_json() for a in self.answers]
        return out

    @classmethod
    def from_json(cls, raw: Any, where: str = "") -> RequestRecord:
        """A record read back; a :class:`ValueError` or :class:`TypeError` says what is wrong with ``raw``."""
        if not isinstance(raw, dict):
            raise TypeError("not a JSON object")
        if raw.get("schema") != SCHEMA:
            raise ValueError(f"schema is {raw.get('schema')!r}, expected {SCHEMA!r}")
        route = raw.get("route")
        if route not in ROUTES:
            raise ValueError(f"route {route!r} is not one of {', '.join(ROUTES)}")
        try:
            datetime.fromisoformat(str(raw.get("timestamp")))
        except ValueError:
            raise ValueError(f"timestamp {raw.get('timestamp')!r} is not ISO 8601") from None
        answers = []
        for i, a in enumerate(raw.get("answers") or []):
            if not isinstance(a, dict) or a.get("variant") not in VARIANTS:
                raise ValueError(f"answers[{i}].variant must be one of {', '.join(VARIANTS)}")
            if not isinstance(a.get("latency_ms"), int | float):
                raise TypeError(f"answers[{i}].latency_ms must be a number")
            answers.append(Answer(variant=a["variant"], model=str(a.get("model") or ""), served=bool(a.get("served")),
                                  latency_ms=float(a["latency_ms"]), status=int(a.get("status") or 200),
                                  error=a.get("error"), prompt_tokens=a.get("prompt_tokens"),
                                  completion_tokens=a.get("completion_tokens"), finish_reason=a.get("finish_reason"),
                                  text=a.get("text")))
        if sum(a.served for a in answers) > 1:
            raise ValueError("more than one answer is marked served")
        messages = raw.get("messages")
        if messages is not None and not (isinstance(messages, list) and all(isinstance(m, dict) for m in messages)):
            raise ValueError("messages must be a list of {role, content} objects")
        return cls(route=route, answers=answers, status=int(raw.get("status") or 200), error=raw.get("error"),
                   user=raw.get("user"), messages=messages, request_id=str(raw.get("id") or ""),
                   timestamp=str(raw["timestamp"]), redacted=raw.get("redacted"), where=where)


class _Handler(logging.handlers.RotatingFileHandler):
    """Counts write failures instead of only printing them (a request is not failed by its log line)."""

    failures = 0
    last_failure: str | None = None

    def handleError(self, record: logging.LogRecord) -> None:
        import sys

        self.failures += 1
        self.last_failure = str(sys.exc_info()[1])


class RequestLogWriter:
    """Appends :class:`RequestRecord` lines to ``path``, rotating at ``max_bytes`` into ``backups`` files.

    ``content``: keep prompts, answers and the raw ``user`` (PII-redacted with ``redact``, the kinds of
    :func:`ftframe.transforms.pii.redact`); off by default, when only counts, timings and codes are kept.
    Safe to call from many threads (the handler's lock). :attr:`failures` counts lines that could not be
    written (e.g. a full disk), :attr:`last_failure` says why.
    """

    def __init__(self, path: str | Path, *, content: bool = False, redact: Sequence[str] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, backups: int = DEFAULT_BACKUPS):
        from ftframe.transforms.pii import KINDS

        if max_bytes < 1024 or backups < 1:
            raise LifecycleError(f"request log {path}: max_bytes must be at least 1024 and backups at least 1 "
                                 f"(got {max_bytes}, {backups}); rotation needs both.")
        self.path = Path(path)
        self.content = content
        self.kinds = tuple(KINDS if redact is None else redact)
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise LifecycleError(f"request log: unknown PII kinds {unknown}; choose from {', '.join(KINDS)}.")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LifecycleError(f"request log {self.path}: cannot create its folder ({exc.strerror}).") from None
        self._handler = _Handler(self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    @property
    def failures(self) -> int:
        return self._handler.failures

    @property
    def last_failure(self) -> str | None:
        return self._handler.last_failure

    def _redact(self, text: str, counts: Counter[str]) -> str:
        from ftframe.transforms.pii import redact

        clean, found = redact(text, self.kinds)
        counts.update(found)
        return clean

    def prepare(self, record: RequestRecord) -> dict[str, Any]:
        """The JSON object written for ``record``, after the content policy (kept and redacted, or dropped)."""
        if record.route not in ROUTES:
            raise LifecycleError(f"request log: route {record.route!r} is not one of {', '.join(ROUTES)}.")
        for a in record.answers:
            if a.variant not in VARIANTS:
                raise LifecycleError(f"request log: variant {a.variant!r} is not one of {', '.join(VARIANTS)}.")
        counts: Counter[str] = Counter()
        answers = []
        for a in record.answers:
            text = self._redact(a.text, counts) if self.content and a.text is not None else None
            answers.append(Answer(**{**a.__dict__, "text": text}))
        user = record.user
        if user is not None:
            user = self._redact(user, counts) if self.content else hash_user(user)
        messages = None
        if self.content and record.messages is not None:
            messages = [{"role": m["role"], "content": self._redact(m["content"], counts)}
                        for m in plain_messages(record.messages)]
        out = RequestRecord(route=record.route, answers=answers, status=record.status, error=record.error,
                            user=user, messages=messages, request_id=record.request_id,
                            timestamp=record.timestamp, redacted=dict(counts) if messages is not None else None)
        return out.to_json()

    def write(self, record: RequestRecord) -> dict[str, Any]:
        """Append ``record`` (see :meth:`prepare`); returns what was written."""
        line = self.prepare(record)
        self._handler.handle(logging.makeLogRecord({"msg": json.dumps(line, ensure_ascii=False), "args": None,
                                                    "levelno": logging.INFO, "levelname": "INFO"}))
        return line

    def close(self) -> None:
        self._handler.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def log_files(path: str | Path) -> list[Path]:
    """``path`` and its rotated backups, oldest first (``LOG.N`` … ``LOG.1``, ``LOG``)."""
    path = Path(path)
    backups = []
    for p in path.parent.glob(f"{path.name}.*") if path.parent.is_dir() else []:
        m = re.fullmatch(re.escape(path.name) + r"\.(\d+)", p.name)
        if m:
            backups.append((int(m.group(1)), p))
    return [p for _, p in sorted(backups, reverse=True)] + ([path] if path.is_file() else [])


@dataclass
class RequestLog:
    """A log read back: its records in the order written, and the lines that could not be read."""

    records: list[RequestRecord]
    problems: list[str]
    files: list[Path]


def read_request_log(path: str | Path, *, since: datetime | None = None) -> RequestLog:
    """Every record of ``path`` and its rotated files (optionally only those at or after ``since``).

    A missing log, or one without a single readable record, is a :class:`LifecycleError`; single bad lines
    (a line cut by a crash, another program's output) are returned as ``problems`` naming ``file:line``.
    """
    files = log_files(path)
    if not files:
        raise LifecycleError(f"{path}: no request log there (nor rotated files {Path(path).name}.1 ...). Point "
                             f"at the file the server writes (ftframe serve --request-log FILE).")
    records: list[RequestRecord] = []
    problems: list[str] = []
    for f in files:
        try:
            lines = f.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise LifecycleError(f"{f}: cannot read the request log ({exc}).") from None
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{f}:{n}"
            try:
                rec = RequestRecord.from_json(json.loads(line), where)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: not JSON ({exc.msg})")
                continue
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}: {exc}")
                continue
            if since is None or rec.time >= since:
                records.append(rec)
    if not records and problems:
        raise LifecycleError(f"{path}: no readable request-log record ({len(problems)} unreadable lines; first: "
                             f"{problems[0]}). Is this a log written by ftframe serve?")
    return RequestLog(records=records, problems=problems, files=files)
