"""csv_labels: text/label columns from CSV or TSV, on real BANKING77 data and on bad files."""

from __future__ import annotations

import csv

import pytest

from ftframe.errors import ConfigError, DataError


@pytest.fixture()
def load(registry):
    def _load(**options):
        return registry.create("data_format", "csv_labels", options).load()
    return _load


def test_banking77_train_csv(load, repo_root):
    path = repo_root.parent / "shared" / "datasets" / "banking77" / "train.csv"
    if not path.is_file():
        pytest.skip("../shared/datasets is not beside the checkout")
    data = load(path=str(path), label_column="category", system="Reply with the intent label only.")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(data.examples) == len(rows) and not data.rejected
    first = data.examples[0]
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant"]
    assert first.messages[1]["content"] == rows[0]["text"].strip()
    assert first.target == rows[0]["category"] and first.source.endswith("train.csv:2")
    assert len({ex.target for ex in data.examples}) == 77


def test_tsv_by_suffix_and_no_system(load, tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("label\ttext\nbilling\tcharged twice, refund please\n", encoding="utf-8")
    [ex] = load(path=str(path)).examples
    assert ex.messages == [{"role": "user", "content": "charged twice, refund please"},
                           {"role": "assistant", "content": "billing"}]


def test_wrong_column_names_the_header_and_suggests(load, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,category\nhello,greet\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no column 'label'.*data.label_column.*text, category"):
        load(path=str(path))
    with pytest.raises(DataError, match="did you mean 'category'"):
        load(path=str(path), label_column="categroy")


def test_bad_rows_raise_with_line_or_are_rejected_with_reasons(load, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\nok one,a\n,b\ntoo,many,fields\nok two,\nok three,c\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d.csv:3: empty 'text'"):
        load(path=str(path))
    data = load(path=str(path), on_error="skip")
    assert [ex.target for ex in data.examples] == ["a", "c"]
    assert [(r.source.rsplit(":", 1)[1], r.reason) for r in data.rejected] == [
        ("3", "empty 'text'"), ("4", "3 fields where the header has 2"), ("5", "empty 'label'")]


def test_missing_empty_and_undecodable_files(load, tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load(path=str(tmp_path / "nope.csv"))
    (tmp_path / "empty.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty file"):
        load(path=str(tmp_path / "empty.csv"))
    (tmp_path / "latin.csv").write_bytes("text,label\nGrüße,x\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8"):
        load(path=str(tmp_path / "latin.csv"))
    assert load(path=str(tmp_path / "latin.csv"), encoding="latin-1").examples[0].messages[0]["content"] == "Grüße"
    with pytest.raises(ConfigError, match="data.on_error"):
        load(path=str(tmp_path / "latin.csv"), on_error="ignore")
