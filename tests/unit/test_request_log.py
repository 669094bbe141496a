"""The request log: its schema, the content policy (off by default, PII-redacted when on), rotation, reading."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from ftframe.lifecycle import LifecycleError
from ftframe.lifecycle.request_log import (
    SCHEMA,
    Answer,
    RequestLogWriter,
    RequestRecord,
    hash_user,
    log_files,
    read_request_log,
)

PROMPT = [{"role": "system", "content": "Classify."},
          {"role": "user", "content": [{"type": "text", "text": "Mail me at jane.doe@example.com or +49 30 1234567"}]}]


def shadow(i: int = 0, **kw) -> RequestRecord:
    return RequestRecord(route="shadow", user="jane.doe@example.com", messages=PROMPT, request_id=f"req-{i:05d}", answers=[
        Answer("champion", "models:/triage@champion (v1)", True, 120.0 + i, prompt_tokens=30, completion_tokens=2,
               finish_reason="stop", text="billing"),
        Answer("challenger", "models:/triage@challenger (v2)", False, 150.0, prompt_tokens=30, completion_tokens=3,
               finish_reason="stop", text="Write to jane.doe@example.com")], **kw)


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_content_is_off_by_default(tmp_path):
    with RequestLogWriter(tmp_path / "requests.jsonl") as log:
        log.write(shadow())
    (rec,) = lines(tmp_path / "requests.jsonl")
    assert rec["schema"] == SCHEMA and rec["route"] == "shadow" and rec["variant"] == "champion"
    assert rec["latency_ms"] == 120.0 and rec["prompt_tokens"] == 30 and rec["completion_tokens"] == 2
    assert rec["status"] == 200 and rec["error"] is None
    assert "messages" not in rec and all("text" not in a for a in rec["answers"])
    assert rec["user"] == hash_user("jane.doe@example.com") and "example.com" not in json.dumps(rec)
    assert [a["served"] for a in rec["answers"]] == [True, False]
    assert datetime.fromisoformat(rec["timestamp"]).tzinfo is not None


def test_opt_in_content_is_pii_redacted(tmp_path):
    with RequestLogWriter(tmp_path / "requests.jsonl", content=True) as log:
        log.write(shadow())
    (rec,) = lines(tmp_path / "requests.jsonl")
    assert rec["messages"] == [{"role": "system", "content": "Classify."},
                               {"role": "user", "content": "Mail me at [EMAIL] or [PHONE]"}]
    assert rec["answers"][1]["text"] == "Write to [EMAIL]" and rec["user"] == "[EMAIL]"
    assert rec["redacted"] == {"[EMAIL]": 3, "[PHONE]": 1}
    assert "jane.doe" not in json.dumps(rec)


def test_redaction_kinds_can_be_chosen(tmp_path):
    with RequestLogWriter(tmp_path / "r.jsonl", content=True, redact=["phone"]) as log:
        log.write(shadow())
    assert lines(tmp_path / "r.jsonl")[0]["messages"][1]["content"] == "Mail me at jane.doe@example.com or [PHONE]"
    with pytest.raises(LifecycleError, match="unknown PII kinds"):
        RequestLogWriter(tmp_path / "r.jsonl", redact=["names"])


def test_rotation_keeps_the_newest_records_in_order(tmp_path):
    path = tmp_path / "requests.jsonl"
    with RequestLogWriter(path, max_bytes=4096, backups=3) as log:
        for i in range(200):
            log.write(shadow(i))
    files = log_files(path)
    assert [f.name for f in files] == ["requests.jsonl.3", "requests.jsonl.2", "requests.jsonl.1", "requests.jsonl"]
    assert all(f.stat().st_size <= 4096 for f in files)
    log = read_request_log(path)
    ids = [int(r.request_id.split("-")[1]) for r in log.records]
    assert ids == list(range(200 - len(ids), 200)) and 10 < len(ids) < 200  # the oldest were rotated out
    assert log.problems == []


def test_many_threads_write_whole_lines(tmp_path):
    path = tmp_path / "requests.jsonl"
    log = RequestLogWriter(path, content=True)

    def work(t: int) -> None:
        for i in range(50):
            log.write(shadow(t * 1000 + i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(read_request_log(path).records) == 400 and log.failures == 0


def test_reader_keeps_bad_lines_as_problems(tmp_path):
    path = tmp_path / "requests.jsonl"
    with RequestLogWriter(path) as log:
        log.write(shadow(1))
    with path.open("a", encoding="utf-8") as f:
        f.write('{"schema": "other/1", "route": "answer"}\n')
        f.write('{"schema": "ftframe.request_log/1", "route": "sideways", "timestamp": "2026-01-01T00:00:00+00:00"}\n')
        f.write('{"schema": "ftframe.request_l')  # a line cut by a crash
    log = read_request_log(path)
    assert len(log.records) == 1 and len(log.problems) == 3
    assert log.problems[0].startswith(f"{path}:2: schema is 'other/1'")
    assert "route 'sideways'" in log.problems[1] and log.problems[2].startswith(f"{path}:4: not JSON")


def test_unusable_logs_are_clear_errors(tmp_path):
    with pytest.raises(LifecycleError, match="no request log there"):
        read_request_log(tmp_path / "missing.jsonl")
    (tmp_path / "other.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(LifecycleError, match="no readable request-log record"):
        read_request_log(tmp_path / "other.jsonl")
    with pytest.raises(LifecycleError, match="route 'both'"):
        RequestLogWriter(tmp_path / "r.jsonl").write(RequestRecord(route="both"))


def test_since_keeps_the_recent_records(tmp_path):
    path = tmp_path / "requests.jsonl"
    old = (datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="milliseconds")
    with RequestLogWriter(path) as log:
        log.write(shadow(1, timestamp=old))
        log.write(shadow(2))
        log.write(RequestRecord(route="answer", status=400, error="invalid_request_error"))
    recent = read_request_log(path, since=datetime.now(UTC) - timedelta(hours=1)).records
    assert [r.request_id for r in recent][:1] == ["req-00002"] and len(recent) == 2
    assert recent[1].variant is None and recent[1].status == 400
