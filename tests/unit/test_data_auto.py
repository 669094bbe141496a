"""data=auto: the ftframe_detect_data_format hook picks the format, and says what it picked."""

from __future__ import annotations

import pytest

from ftframe.config.validate import problems
from ftframe.engine.data_source import data_format
from ftframe.errors import DataError
from ftframe.testing import compose, toy_classification_rows, write_chat_jsonl


def test_detects_chat_jsonl_and_csv(tmp_path, pm, registry):
    jsonl = write_chat_jsonl(tmp_path / "d.jsonl", toy_classification_rows(2))
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\nhello,greet\n", encoding="utf-8")
    for path, expected in ((jsonl, "chat_jsonl"), (csv, "csv_labels")):
        cfg = compose(["data=auto", f"data.path={path}", "data.on_error=skip"], pm=pm)
        assert problems(cfg, registry) == []
        plugin, detected = data_format(cfg.data, registry, pm)
        assert detected == expected and plugin.name == expected
        assert plugin.config.on_error == "skip"
        assert plugin.load().examples


def test_unrecognised_file_is_reported_by_validate_and_at_load(tmp_path, pm, registry):
    odd = tmp_path / "notes.docx"
    odd.write_bytes(b"PK")
    cfg = compose(["data=auto", f"data.path={odd}"], pm=pm)
    [problem] = problems(cfg, registry)
    assert problem.startswith("data=auto:") and "no installed data format recognises" in problem
    with pytest.raises(DataError, match="data=<name>"):
        data_format(cfg.data, registry, pm)


def test_a_third_party_detector_can_claim_files(tmp_path, registry):
    import types

    from ftframe import hookimpl
    from ftframe.testing import plugin_manager

    claims = types.ModuleType("ftframe_claims_txt")
    claims.ftframe_detect_data_format = hookimpl(lambda path: "csv_labels" if path.suffix == ".txt" else None)
    pm = plugin_manager(claims)
    txt = tmp_path / "d.txt"
    txt.write_text("text,label\nhi,greet\n", encoding="utf-8")
    cfg = compose(["data=auto", f"data.path={txt}"], pm=pm)
    _, detected = data_format(cfg.data, registry, pm)
    assert detected == "csv_labels"


@pytest.mark.parametrize("name,expected", [("alpaca_en_demo.json", "alpaca"), ("identity.json", "alpaca"),
                                           ("glaive_toolcall_en_demo.json", "sharegpt")])
def test_detects_llamafactory_demo_files(name, expected, repo_root, pm, registry):
    path = repo_root.parent / "shared" / "datasets" / "llamafactory_data" / name
    if not path.is_file():
        pytest.skip("../shared/datasets is not beside the checkout")
    cfg = compose(["data=auto", f"data.path={path}"], pm=pm)
    plugin, detected = data_format(cfg.data, registry, pm)
    assert detected == expected
    assert plugin.load().examples
