"""Transformations: PII redaction, deduplication, split files, and over-long examples (drop / chunk)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ftframe_formats.csv_labels import CsvLabels, CsvLabelsConfig

from ftframe.api import Example
from ftframe.engine.chat import encode
from ftframe.errors import ConfigError
from ftframe.transforms.examples import dedup, redact_examples, sample
from ftframe.transforms.long_examples import chunk, handle_too_long, n_tokens
from ftframe.transforms.pii import iban_ok, luhn_ok, redact
from ftframe.transforms.split_files import make_splits

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


@pytest.mark.parametrize("text,expected,counts", [
    ("write to max.mustermann@example.de now", "write to [EMAIL] now", {"[EMAIL]": 1}),
    ("card 4111 1111 1111 1111 please", "card [CREDIT_CARD] please", {"[CREDIT_CARD]": 1}),
    ("card 4111-1111-1111-1112 fails Luhn", "card 4111-1111-1111-1112 fails Luhn", {}),
    ("IBAN DE89 3704 0044 0532 0130 00.", "IBAN [IBAN].", {"[IBAN]": 1}),
    ("IBAN DE89 3704 0044 0532 0130 01 has a bad checksum", "IBAN DE89 3704 0044 0532 0130 01 has a bad checksum", {}),
    ("from 192.168.1.20 and 2001:db8::ff00:42:8329", "from [IP] and [IP]", {"[IP]": 2}),
    ("not an IP: 999.1.1.1", "not an IP: 999.1.1.1", {}),
    ("ruf an: +49 30 1234567 oder 030 12345678", "ruf an: [PHONE] oder [PHONE]", {"[PHONE]": 2}),
    ("US (555) 123-4567 or 555-123-4567", "US [PHONE] or [PHONE]", {"[PHONE]": 2}),
    ("order 123456789 on 2024-01-15, ticket 15.01.2024", "order 123456789 on 2024-01-15, ticket 15.01.2024", {}),
])
def test_pii_redaction(text, expected, counts):
    out, found = redact(text)
    assert out == expected and dict(found) == counts


def test_validators():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


def test_redact_examples_counts_and_leaves_the_input_alone():
    ex = Example([{"role": "user", "content": "mail a@b.de, call +49 30 1234567"},
                  {"role": "assistant", "content": "ok", "tool_calls": [
                      {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"to": "x@y.org"}'}}]}],
                 source="s:1")
    [out], info = redact_examples([ex], ["all"])
    assert out.messages[0]["content"] == "mail [EMAIL], call [PHONE]"
    assert out.messages[1]["tool_calls"][0]["function"]["arguments"] == '{"to": "[EMAIL]"}'
    assert info["replaced"] == {"[EMAIL]": 2, "[PHONE]": 1} and info["examples_changed"] == 1
    assert ex.messages[0]["content"].startswith("mail a@b.de")
    _, only_email = redact_examples([ex], ["email"])
    assert only_email["replaced"] == {"[EMAIL]": 2}


def test_dedup_keeps_first_copy_and_names_it():
    a = Example([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], source="f:1")
    b = Example([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], source="f:7")
    c = Example([{"role": "user", "content": "x"}, {"role": "assistant", "content": "z"}], source="f:8")
    kept, dropped = dedup([a, b, c])
    assert [k.source for k in kept] == ["f:1", "f:8"]
    assert dropped[0].source == "f:7" and "duplicate of f:1" in dropped[0].reason and dropped[0].kind == "duplicate"


def _conversation(turns: int) -> Example:
    msgs = [{"role": "system", "content": "Answer briefly."}]
    for i in range(turns):
        msgs += [{"role": "user", "content": f"question number {i} about the invoice"},
                 {"role": "assistant", "content": f"answer {i} billing"}]
    return Example(msgs, source="c:1")


def test_chunk_trains_every_reply_once_within_max_length(tiny_tokenizer):
    ex = _conversation(6)
    whole = n_tokens(tiny_tokenizer, ex)
    limit = whole // 2
    parts = chunk(tiny_tokenizer, ex, limit, overlap=1)
    assert len(parts) >= 2
    trained = []
    for i, part in enumerate(parts):
        assert part.messages[0] == ex.messages[0]  # the system prompt starts every chunk
        assert n_tokens(tiny_tokenizer, part) <= limit
        assert part.source == f"c:1 (chunk {i + 1}/{len(parts)})"
        replies = [m["content"] for m in part.messages if m["role"] == "assistant" and m.get("weight", 1) != 0]
        trained += replies
        # the loss mask follows: weight-0 context replies carry no trained tokens
        enc = encode(tiny_tokenizer, part.messages)
        decoded = tiny_tokenizer.decode([t for t in enc.labels if t != -100])
        assert all(r in decoded for r in replies)
        context = [m["content"] for m in part.messages if m.get("weight") == 0]
        assert all(c not in decoded for c in context)
        if i:
            assert context, "later chunks carry the previous exchange as context"
    assert trained == [f"answer {i} billing" for i in range(6)]


def test_handle_too_long_drop_and_truncate(tiny_tokenizer):
    short, long = _conversation(1), _conversation(8)
    limit = n_tokens(tiny_tokenizer, short) + 5
    kept, dropped, info = handle_too_long(tiny_tokenizer, [short, long], limit, "drop")
    assert kept == [short] and dropped[0].source == "c:1" and dropped[0].kind == "too_long"
    assert f"backend.max_length={limit}" in dropped[0].reason and info["dropped"] == 1
    kept, dropped, info = handle_too_long(tiny_tokenizer, [short, long], limit, "truncate")
    assert kept == [short, long] and not dropped and info["over"] == 1
    # one exchange alone too long cannot be chunked: it stays whole and is counted
    single = Example([{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}], source="s:1")
    kept, _, info = handle_too_long(tiny_tokenizer, [single], 20, "chunk")
    assert kept[0].messages == single.messages and info["still_truncated"] == 1


def test_split_files_banking77(tmp_path):
    train_csv, test_csv = SHARED / "banking77" / "train.csv", SHARED / "banking77" / "test.csv"
    if not test_csv.exists():
        pytest.skip("BANKING77 is not available")
    head = tmp_path / "train.csv"
    head.write_text("\n".join(train_csv.read_text(encoding="utf-8").splitlines()[:81]) + "\n", encoding="utf-8")

    def load(path: str, key: str = "data.path"):
        return CsvLabels(CsvLabelsConfig(path=path, label_column="category")).load()

    examples = load(str(head)).examples
    splits, rejected, files, info = make_splits(examples, shares={"train": 0.7, "val": 0.1, "test": 0.2},
                                                files={"test": str(test_csv)}, seed=0, stratify=False, load=load)
    assert len(splits["test"]) == 3080 and files == [test_csv] and not rejected
    assert len(splits["train"]) + len(splits["val"]) == 80
    assert len(splits["val"]) == round(80 * 0.1 / 0.8)
    assert info["shares_of_data_path"] == pytest.approx({"train": 0.875, "val": 0.125})
    with pytest.raises(ConfigError, match="data.path would go unused"):
        make_splits(examples, shares={"train": 0.7, "val": 0.1, "test": 0.2}, seed=0, stratify=False, load=load,
                    files={"train": str(head), "val": str(head), "test": str(test_csv)})


def test_sample_draws_n_in_file_order_reproducibly_and_a_bad_size_is_refused():
    from ftframe.testing import compose
    from ftframe.transforms.checks import problems

    examples = [Example([{"role": "user", "content": str(i)}], source=f"f:{i}") for i in range(50)]
    first = sample(examples, 10, seed=3)
    assert len(first) == 10 and first == sample(examples, 10, seed=3)
    assert [ex.source for ex in first] == sorted((ex.source for ex in first), key=lambda s: int(s[2:]))
    assert first != sample(examples, 10, seed=4)
    assert sample(examples, 80, seed=0) == examples
    bad = problems(compose(["transforms.sample=0"]))
    assert any("transforms.sample must be at least 1" in p for p in bad)
