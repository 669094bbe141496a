"""Missing and non-UTF-8 files give the same clear error in every file-reading format: file, line, what to do."""

from __future__ import annotations

import pytest

from ftframe.errors import DataError

FORMATS = {
    "chat_jsonl": '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}\n',
    "alpaca": '[{"instruction": "hi", "output": "ok"},\n {"instruction": "K\u00fcndigung", "output": "ok"}]\n',
    "sharegpt": '{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]}\n',
    "csv_labels": "text,label\nhi,greet\nK\u00fcndigung,cancel\n",
    "openai_dpo": '{"input": {"messages": [{"role": "user", "content": "hi"}]}, "preferred_output": '
                  '[{"role": "assistant", "content": "ok"}], "non_preferred_output": [{"role": "assistant", '
                  '"content": "no"}]}\n',
    "sharegpt_dpo": '[{"conversations": [{"from": "human", "value": "hi"}], "chosen": {"from": "gpt", "value": "ok"},'
                    '\n "rejected": {"from": "gpt", "value": "K\u00fcndigung"}}]\n',
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_missing_file(registry, tmp_path, name):
    path = tmp_path / "absent.json"
    with pytest.raises(DataError, match=rf"{path}: file not found\. Check data\.path"):
        registry.create("data_format", name, {"path": str(path)}).load()


@pytest.mark.parametrize("name", list(FORMATS))
def test_non_utf8_file_names_line_and_fix(registry, tmp_path, name):
    text = FORMATS[name]
    if "\u00fc" not in text:
        text += text.replace("hi", "K\u00fcndigung")
    path = tmp_path / "latin1.txt"
    path.write_bytes(text.encode("latin-1"))
    line = text[: text.index("\u00fc")].count("\n") + 1
    with pytest.raises(DataError, match=rf"{path}:{line}: not valid utf-8 text .*data\.encoding=latin-1"):
        registry.create("data_format", name, {"path": str(path)}).load()
    assert registry.create("data_format", name, {"path": str(path), "encoding": "latin-1"}).load().examples
