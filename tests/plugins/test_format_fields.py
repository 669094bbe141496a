"""data=fields: flat records (JSONL, JSON array, CSV/TSV, parquet, saved dataset) mapped to chat examples by
field names and a prompt template; rendering of lists and values; bad rows and bad options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftframe.commands import main
from ftframe.errors import ConfigError, DataError
from ftframe.testing import run_tiny, tiny_run_overrides

RESTAURANT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "restaurant8k"
TEMPLATE = "Requested slots: {requested_slots}\nText: {text}"
ROWS = [{"text": "table for 2 at 7pm", "requested_slots": ["people", "time"], "target": '{"people": "2", "time": "7pm"}'},
        {"text": "is there parking?", "requested_slots": [], "target": "{}"},
        {"text": "Friday please", "requested_slots": ["date"], "target": '{"date": "Friday"}'}]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTFRAME_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture()
def load(registry):
    def _load(path, **options):
        return registry.create("data_format", "fields", {"path": str(path), **options}).load()
    return _load


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def restaurant_test() -> Path:
    path = RESTAURANT / "restaurant8k_test_extraction.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


def test_restaurant8k_with_a_template_of_two_fields(load):
    path = restaurant_test()
    data = load(path, template=TEMPLATE, response="target", empty_list="none",
                system="Extract the requested booking slots as JSON.")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(data.examples) == len(records) == 3731 and not data.rejected
    for ex, rec in zip(data.examples[:400], records):
        slots = ", ".join(rec["requested_slots"]) or "none"
        assert ex.messages == [{"role": "system", "content": "Extract the requested booking slots as JSON."},
                               {"role": "user", "content": f"Requested slots: {slots}\nText: {rec['text']}"},
                               {"role": "assistant", "content": rec["target"]}]
    assert data.examples[5].source == f"{path}:6"
    assert any(not r["requested_slots"] for r in records[:400])  # the empty rendering was exercised


def test_one_prompt_field_and_every_file_type(load, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = [[{"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["target"]}] for r in ROWS]
    files = {"jsonl": jsonl(tmp_path / "d.jsonl", ROWS), "json": tmp_path / "d.json", "csv": tmp_path / "d.csv",
             "tsv": tmp_path / "d.tsv", "parquet": tmp_path / "d.parquet"}
    files["json"].write_text(json.dumps(ROWS, indent=1), encoding="utf-8")
    import csv

    for name, sep in (("csv", ","), ("tsv", "\t")):
        with files[name].open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=sep)
            w.writerow(["text", "target"])
            w.writerows([r["text"], r["target"]] for r in ROWS)
    pq.write_table(pa.Table.from_pylist(ROWS), files["parquet"])
    for name, path in files.items():
        data = load(path, prompt="text", response="target")
        assert [ex.messages for ex in data.examples] == expected, name
    sources = {name: load(path, prompt="text", response="target").examples[1].source for name, path in files.items()}
    assert sources == {"jsonl": f"{files['jsonl']}:2", "json": f"{files['json']}:record 2",
                       "csv": f"{files['csv']}:3", "tsv": f"{files['tsv']}:3", "parquet": f"{files['parquet']}:row 2"}


def test_saved_dataset_folder(load, tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(tmp_path / "ds")
    data = load(tmp_path / "ds", template=TEMPLATE, response="target", split="test")
    assert [ex.messages[0]["content"] for ex in data.examples] == ["Requested slots: people, time\nText: table for 2 at 7pm"]
    with pytest.raises(DataError, match=r"choose a split with data=fields data.split=NAME .*no split 'dev'"):
        load(tmp_path / "ds", prompt="text", response="target", split="dev")


def test_rendering_of_values(load, tmp_path):
    row = {"q": "where", "tags": ["a", "b", 3, True], "none": [], "meta": {"k": [1, 2]}, "n": 2.5, "ok": False,
           "objs": [{"x": 1}], "ans": {"city": "Köln"}}
    path = jsonl(tmp_path / "d.jsonl", [row])
    template = "{q}|{tags}|{none}|{meta}|{n}|{ok}|{objs}|{{literal}}"
    [ex] = load(path, template=template, response="ans").examples
    assert ex.messages[0]["content"] == 'where|a, b, 3, true||{"k": [1, 2]}|2.5|false|[{"x": 1}]|{literal}'
    assert ex.messages[1]["content"] == '{"city": "Köln"}'
    [ex] = load(path, template="{tags} / {none}", response="ans", list_separator=";", empty_list="(none)").examples
    assert ex.messages[0]["content"] == "a;b;3;true / (none)"
    [ex] = load(path, prompt="q", response="ans", system="Answer about {q}.").examples
    assert ex.messages[0] == {"role": "system", "content": "Answer about where."}


def test_a_field_missing_in_a_row_rejects_that_row_with_its_fields(load, tmp_path):
    rows = [ROWS[0], {"text": "no slots key", "target": "{}"}, ROWS[2], {"text": "null", "requested_slots": None,
            "target": "{}"}, [1, 2], '{"text": ', {"text": "x", "requested_slots": [], "target": "  "}]
    path = jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError, match=rf"{path}:2: missing field 'requested_slots' \(data.template\); this record "
                                        rf"has: text, target\. Fix it, or set data.on_error=skip"):
        load(path, template=TEMPLATE, response="target")
    data = load(path, template=TEMPLATE, response="target", on_error="skip")
    assert [ex.source for ex in data.examples] == [f"{path}:1", f"{path}:3"]
    reasons = {r.source.rsplit(":", 1)[1]: (r.kind, r.reason) for r in data.rejected}
    assert reasons["2"] == ("invalid", "missing field 'requested_slots' (data.template); this record has: text, target")
    assert reasons["4"] == ("invalid", "missing field 'requested_slots' (data.template); this record has: text, target")
    assert reasons["5"] == ("invalid", "expected a record with fields (a JSON object), got list")
    assert reasons["6"][0] == "malformed_json" and "Expecting value at column 10" in reasons["6"][1]
    assert reasons["7"] == ("invalid", "empty 'target' (data.response)")
    assert data.rejected[0].raw == {"text": "no slots key", "target": "{}"}  # kept for rejected.jsonl


def test_a_field_missing_in_every_row_is_one_error_listing_the_fields_seen(load, tmp_path):
    path = jsonl(tmp_path / "d.jsonl", ROWS)
    for options, key, field in (({"template": "{text} {requested_slot}", "response": "target"}, "data.template",
                                  "requested_slot"),
                                ({"prompt": "question", "response": "target"}, "data.prompt", "question"),
                                ({"prompt": "text", "response": "answer"}, "data.response", "answer"),
                                ({"prompt": "text", "response": "target", "system": "{sys}"}, "data.system", "sys")):
        with pytest.raises(ConfigError, match=rf"{key}: no record of {path} has the field '{field}'.*the records "
                                              rf"have: text, requested_slots, target\."):
            load(path, on_error="skip", **options)
    with pytest.raises(ConfigError, match="did you mean 'requested_slots'"):
        load(path, template="{text} {requested_slot}", response="target")
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("utterance,intent\nhi,greet\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="data.prompt: no record .* has the field 'text'.*have: utterance, intent"):
        load(csv_path, prompt="text", response="intent")


@pytest.mark.parametrize(("options", "message"), [
    ({"response": "target"}, r"data.prompt / data.template: set exactly one"),
    ({"prompt": "text", "template": "{text}", "response": "target"}, r"set exactly one.*\(both are set\)"),
    ({"template": "Slots: {requested_slots", "response": "target"}, r"data.template: expected '}' before end"),
    ({"template": "{text!r}", "response": "target"}, r"data.template: \{text!r\} is not a plain field name"),
    ({"template": "{text:>9}", "response": "target"}, r"data.template: \{text:>9\} is not a plain field name"),
    ({"template": "{row.text}", "response": "target"}, r"data.template: \{row.text\} is not a plain field name"),
    ({"template": "no fields", "response": "target"}, r"data.template: names no field in braces"),
    ({"prompt": "text", "response": "target", "system": "JSON like {"}, r"data.system: "),
    ({"prompt": "", "response": "target"}, r"data.prompt: must name a field"),
])
def test_bad_options_are_config_errors_naming_the_key(registry, options, message):
    with pytest.raises(ConfigError, match=message):
        registry.create("data_format", "fields", {"path": "x.jsonl", **options})


def test_data_check_and_validate_on_restaurant8k(tmp_path, tiny_model_dir, capsys):
    path = restaurant_test()
    small = tmp_path / "r.jsonl"
    small.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:60]), encoding="utf-8")
    model = ["model=hf_local", f"model.path={tiny_model_dir}", "task.type=generation", "metrics=[exact_match]",
             "task.primary_metric=exact_match"]
    # unknown flat records: detection says which fields there are and the line that maps them
    assert main(["data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(small), *model]) == 2
    err = capsys.readouterr().err
    assert "these records have the fields text, requested_slots, target" in err
    assert "data=fields data.prompt=text data.response=target" in err
    # ... and that line, followed literally, works
    code = main(["data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(small), *model,
                 "data=fields", "data.prompt=text", "data.response=target"])
    assert code == 0
    report = json.loads((tmp_path / "pf" / "preflight.json").read_text())
    assert report["format"] == "fields" and report["examples"] == 60 and report["format_errors"] == {}
    assert main(["data", "check", "--no-measure", "--out", str(tmp_path / "pf2"), str(small), *model, "data=fields",
                 f"data.template='{TEMPLATE}'", "data.response=target", f"split.files.test={small}"]) == 0
    report = json.loads((tmp_path / "pf2" / "preflight.json").read_text())
    assert report["splits"]["test"] == 60
    capsys.readouterr()
    assert main(["validate", "data=fields", f"data.path={small}", "data.prompt=text", "data.response=target",
                 *model]) == 0
    assert "data fields" in capsys.readouterr().out


def test_a_run_with_fields_split_file_and_golden_set(tmp_path, tiny_model_dir):
    rows = [{"text": f"book for {n} people", "requested_slots": ["people"], "target": json.dumps({"people": str(n)})}
            for n in range(2, 14)]
    train = jsonl(tmp_path / "train.jsonl", rows[:8])
    test = jsonl(tmp_path / "test.jsonl", rows[8:11])
    golden = jsonl(tmp_path / "golden.jsonl", rows[11:])
    overrides = ["data=fields", f"data.template='{TEMPLATE}'", "data.response=target", "task.type=generation",
                 "metrics=[exact_match]", "task.primary_metric=exact_match", "exporters=[]", f"split.files.test={test}",
                 f"eval.golden={golden}", *tiny_run_overrides(tiny_model_dir, train, **{
                     "backend.epochs": 1, "split.train": 0.75, "split.val": 0.25, "split.test": 0})]
    result = run_tiny(tmp_path / "run", overrides)
    assert result.ok
    saved = [json.loads(line) for line in (tmp_path / "run" / "data" / "test.jsonl").read_text().splitlines()]
    assert [r["messages"][0]["content"] for r in saved] == [f"Requested slots: people\nText: {r['text']}"
                                                            for r in rows[8:11]]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["golden"] == {"path": str(golden), "examples": 1}
