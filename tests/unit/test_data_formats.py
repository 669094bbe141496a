"""The chat_jsonl data format: canonical examples with their source line, and clear errors for bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftframe.errors import DataError, FtframeError

GOOD = {"messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": "refund please"},
                     {"role": "assistant", "content": "billing"}]}
GOOD2 = {"messages": [{"role": "user", "content": "app crashes"}, {"role": "assistant", "content": "technical",
                                                                  "weight": 1}]}

BAD_ROWS = {
    "malformed JSON": ('{"messages": [', "malformed JSON"),
    "unknown role": (json.dumps({"messages": [{"role": "robot", "content": "hi"},
                                              {"role": "assistant", "content": "x"}]}), "unrecognised role 'robot'"),
    "empty reply": (json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "  "}]}), "empty assistant reply"),
    "missing messages": (json.dumps({}), "missing or empty 'messages'"),
    "no assistant": (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "no assistant message"),
    "bad weight": (json.dumps({"messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "x", "weight": 2}]}), "weight"),
    "unknown key": (json.dumps({"messages": GOOD["messages"], "extra": 1}), "unrecognised key"),
}


def load(registry, path, **options):
    return registry.create("data_format", "chat_jsonl", {"path": str(path), **options}).load()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_valid_file_loads_with_sources(registry, tmp_path):
    path = write_lines(tmp_path / "ok.jsonl", [json.dumps(GOOD), "", json.dumps(GOOD2, ensure_ascii=False)])
    data = load(registry, path)
    assert [ex.source for ex in data.examples] == [f"{path}:1", f"{path}:3"]  # blank lines keep numbering
    assert data.rejected == []
    assert data.files == [path]
    assert data.examples[0].messages == GOOD["messages"]
    assert data.examples[0].target == "billing"
    assert data.examples[0].prompt == GOOD["messages"][:2]


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_row_raises_naming_file_line_and_problem(registry, tmp_path, case):
    line, reason = BAD_ROWS[case]
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), line, json.dumps(GOOD2)])
    with pytest.raises(DataError) as err:
        load(registry, path)
    assert f"{path}:2" in str(err.value)
    assert reason in str(err.value)


def test_skip_keeps_good_rows_and_rejects_bad_ones_with_reasons(registry, tmp_path):
    lines = [json.dumps(GOOD)] + [line for line, _ in BAD_ROWS.values()] + [json.dumps(GOOD2)]
    path = write_lines(tmp_path / "mixed.jsonl", lines)
    data = load(registry, path, on_error="skip")
    assert [ex.source for ex in data.examples] == [f"{path}:1", f"{path}:{len(lines)}"]
    assert [r.source for r in data.rejected] == [f"{path}:{i}" for i in range(2, len(lines))]
    for rejected, (_, reason) in zip(data.rejected, BAD_ROWS.values()):
        assert reason in rejected.reason
    assert data.rejected[0].raw == '{"messages": ['  # the raw line is kept for rejected.jsonl


def test_missing_file(registry, tmp_path):
    with pytest.raises(DataError, match="not found"):
        load(registry, tmp_path / "nope.jsonl")


def test_non_utf8_file(registry, tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps({"messages": [{"role": "user", "content": "Kündigung"},
                                              {"role": "assistant", "content": "cancellation"}]},
                                ensure_ascii=False).encode("latin-1") + b"\n")
    with pytest.raises(DataError, match="UTF-8|utf-8"):
        load(registry, path)
    # the encoding option reads it
    assert load(registry, path, encoding="latin-1").examples[0].messages[0]["content"] == "Kündigung"


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_non_string_role_is_a_data_error(registry, tmp_path, on_error):
    bad = json.dumps({"messages": [{"role": ["user"], "content": "hi"}, {"role": "assistant", "content": "x"}]})
    path = write_lines(tmp_path / "role.jsonl", [bad, json.dumps(GOOD)])
    if on_error == "raise":
        with pytest.raises(DataError, match=f"{path}:1"):
            load(registry, path)
    else:
        data = load(registry, path, on_error="skip")
        assert len(data.examples) == 1 and data.rejected[0].source == f"{path}:1"


def test_unknown_encoding_is_a_friendly_error(registry, tmp_path):
    path = write_lines(tmp_path / "ok.jsonl", [json.dumps(GOOD)])
    with pytest.raises(FtframeError, match="encoding"):
        load(registry, path, encoding="utf-9")


def test_openai_cookbook_toy_file_loads_cleanly(registry, repo_root):
    path = repo_root.parent / "shared" / "datasets" / "openai_cookbook" / "toy_chat_fine_tuning.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    data = load(registry, path)
    assert data.rejected == []
    assert len(data.examples) == sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    assert all(ex.target for ex in data.examples)
