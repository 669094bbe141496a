"""Preference formats (OpenAI DPO JSONL, ShareGPT DPO), KTO files among them, and saved HF datasets / parquet files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from ftframe_formats.hf_dataset import HfDataset, HfDatasetConfig
from ftframe_formats.preference import OpenAIDpo, OpenAIDpoConfig, ShareGPTDpo, ShareGPTDpoConfig

from ftframe.engine.data_source import detect
from ftframe.errors import DataError
from ftframe.preflight.format_checks import record_errors

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def spec_dpo_example() -> dict:
    """The DPO line from OpenAI's own OpenAPI spec (FineTunePreferenceRequestInput, @498c71d)."""
    spec = yaml.safe_load(shared("openai_openapi", "fine_tuning_files_subset_498c71d.yaml").read_text())
    return json.loads(spec["components"]["schemas"]["FineTunePreferenceRequestInput"]["x-oaiMeta"]["example"])


# ------------------------------------------------------------------------------------ ShareGPT DPO
@pytest.mark.parametrize("name", ["dpo_en_demo.json", "dpo_zh_demo.json"])
def test_llamafactory_dpo_files_load_as_pairs(name):
    path = shared("llamafactory_data", name)
    records = json.loads(path.read_text(encoding="utf-8"))
    data = ShareGPTDpo(ShareGPTDpoConfig(path=str(path))).load()
    assert not data.rejected and len(data.examples) == len(records) == 300
    for rec, ex in zip(records, data.examples):
        assert ex.is_preference
        assert [m["content"] for m in ex.messages] == [t["value"] for t in rec["conversations"]]
        assert ex.chosen == {"role": "assistant", "content": rec["chosen"]["value"]}
        assert ex.rejected == {"role": "assistant", "content": rec["rejected"]["value"]}
        assert ex.prompt == ex.messages and ex.target == rec["chosen"]["value"]
        assert record_errors(ex.to_record()) == []
    assert data.examples[4].source == f"{path}:record 5"


def test_sharegpt_dpo_bad_records(tmp_path):
    good = {"conversations": [{"from": "human", "value": "hi"}], "chosen": {"from": "gpt", "value": "hello"},
            "rejected": {"from": "gpt", "value": "go away"}}
    bad = [
        {**good, "chosen": None},
        {**good, "rejected": {"from": "human", "value": "x"}},
        {**good, "rejected": good["chosen"]},
        {**good, "chosen": {"from": "gpt", "value": " "}},
        {**good, "conversations": [{"from": "robot", "value": "hi"}]},
    ]
    path = tmp_path / "dpo.json"
    path.write_text(json.dumps([good, *bad]), encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}:record 2: missing 'chosen'"):
        ShareGPTDpo(ShareGPTDpoConfig(path=str(path))).load()
    data = ShareGPTDpo(ShareGPTDpoConfig(path=str(path), on_error="skip")).load()
    assert len(data.examples) == 1
    reasons = [r.reason for r in data.rejected]
    assert "missing 'chosen'" in reasons[0]
    assert "must be 'gpt'" in reasons[1]
    assert "identical" in reasons[2]
    assert "'chosen': empty assistant reply" in reasons[3]
    assert "unknown role tag 'robot'" in reasons[4]


# ------------------------------------------------------------------------------------------- KTO
def test_kto_file_is_detected_as_labelled_chat_and_refused_by_the_pair_formats(tmp_path):
    """LLaMA-Factory's KTO demo is read as labelled replies (tests/unit/test_preference_methods.py trains on
    such data); the pair formats reject its rows with the reason and the format to use."""
    path = shared("llamafactory_data", "kto_en_demo.json")
    from ftframe.testing import plugin_manager

    assert detect(plugin_manager(), str(path)) == "chat_jsonl"
    loaded = ShareGPTDpo(ShareGPTDpoConfig(path=str(path), messages_key="messages", role_key="role",
                                           content_key="content", user_tag="user", assistant_tag="assistant",
                                           on_error="skip")).load()
    assert not loaded.examples and len(loaded.rejected) == 300
    assert "this is a KTO example" in loaded.rejected[0].reason and "data=sharegpt" in loaded.rejected[0].reason

    lines = _jsonl(tmp_path / "kto.jsonl", json.loads(path.read_text(encoding="utf-8"))[:3])
    with pytest.raises(DataError, match=rf"{lines}:1: this is a KTO example .* read it with data=chat_jsonl"):
        OpenAIDpo(OpenAIDpoConfig(path=str(lines))).load()


# ------------------------------------------------------------------------------------ OpenAI DPO
def test_openai_spec_example_loads_in_both_key_spellings(tmp_path):
    spec = spec_dpo_example()
    assert "preferred_completion" in spec  # the spec's own spelling
    docs = {"input": spec["input"], "preferred_output": spec["preferred_completion"],
            "non_preferred_output": spec["non_preferred_completion"]}
    multi = {"input": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                                    {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"}]},
             "preferred_output": [{"role": "assistant", "content": "6"}],
             "non_preferred_output": [{"role": "assistant", "content": "Six, obviously."}]}
    path = _jsonl(tmp_path / "dpo.jsonl", [spec, docs, multi])
    data = OpenAIDpo(OpenAIDpoConfig(path=str(path))).load()
    assert [ex.source for ex in data.examples] == [f"{path}:{i}" for i in (1, 2, 3)]
    first = data.examples[0]
    assert first.messages == spec["input"]["messages"]
    assert first.chosen == spec["preferred_completion"][0] and first.rejected == spec["non_preferred_completion"][0]
    assert data.examples[1].to_record() == first.to_record()
    # a multi-turn prompt stays whole: the earlier assistant turn is context, the chosen reply the target
    assert data.examples[2].prompt == multi["input"]["messages"] and data.examples[2].target == "6"


def test_openai_dpo_bad_lines_are_typed_and_located(tmp_path):
    good = {"input": {"messages": [{"role": "user", "content": "hi"}]},
            "preferred_output": [{"role": "assistant", "content": "hello"}],
            "non_preferred_output": [{"role": "assistant", "content": "bye"}]}
    cases = [
        ('{"input": ', "malformed_json"),
        ({**good, "preferred_output": []}, "invalid_preference"),
        ({k: v for k, v in good.items() if k != "non_preferred_output"}, "invalid_preference"),
        ({**good, "input": {"messages": [{"role": "robot", "content": "hi"}]}}, "unrecognized_role"),
        ({**good, "input": {"messages": []}}, "missing_messages_list"),
        ({**good, "preferred_output": [{"role": "user", "content": "x"}]}, "invalid_preference"),
        ({**good, "non_preferred_output": good["preferred_output"]}, "invalid_preference"),
        ({**good, "extra": 1}, "unrecognized_key"),
    ]
    path = _jsonl(tmp_path / "bad.jsonl", [good] + [row for row, _ in cases])
    with pytest.raises(DataError, match=rf"{path}:2: malformed JSON"):
        OpenAIDpo(OpenAIDpoConfig(path=str(path))).load()
    data = OpenAIDpo(OpenAIDpoConfig(path=str(path), on_error="skip")).load()
    assert len(data.examples) == 1
    assert [(r.source, r.kind) for r in data.rejected] == [(f"{path}:{i}", kind)
                                                           for i, (_, kind) in enumerate(cases, start=2)]


# -------------------------------------------------------------------------- HF datasets / parquet
CHAT = [{"messages": [{"role": "user", "content": "refund please"}, {"role": "assistant", "content": "billing"}]},
        {"messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": "app crash"},
                      {"role": "assistant", "content": "technical", "weight": 1}]}]


def test_saved_dataset_folder_with_messages(tmp_path):
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "ds"
    DatasetDict({"train": Dataset.from_list(CHAT), "test": Dataset.from_list(CHAT[:1])}).save_to_disk(str(folder))
    data = HfDataset(HfDatasetConfig(path=str(folder))).load()
    # arrow fills absent struct fields (weight) with null; they are dropped again
    assert [ex.messages for ex in data.examples] == [c["messages"] for c in CHAT]
    assert data.examples[1].source == f"{folder}[train]:row 2"
    assert data.files and all(p.is_file() for p in data.files)
    test = HfDataset(HfDatasetConfig(path=str(folder), split="test")).load()
    assert len(test.examples) == 1
    with pytest.raises(DataError, match="no split 'tset'.*did you mean 'test'"):
        HfDataset(HfDatasetConfig(path=str(folder), split="tset")).load()


def test_parquet_layouts_and_column_mapping(tmp_path):
    from datasets import Dataset

    rows = [{"instruction": "Say hi", "input": "", "output": "hi"}, {"instruction": "Add", "input": "1+1", "output": "2"}]
    alpaca = tmp_path / "alpaca.parquet"
    Dataset.from_list(rows).to_parquet(str(alpaca))
    data = HfDataset(HfDatasetConfig(path=str(alpaca))).load()
    assert data.examples[1].messages == [{"role": "user", "content": "Add\n\n1+1"}, {"role": "assistant", "content": "2"}]

    intents = tmp_path / "intents.parquet"
    Dataset.from_list([{"utterance": "card lost", "intent": "lost_card"}]).to_parquet(str(intents))
    mapped = HfDataset(HfDatasetConfig(path=str(intents), columns={"text": "utterance", "label": "intent"})).load()
    assert mapped.examples[0].messages[-1] == {"role": "assistant", "content": "lost_card"}
    with pytest.raises(DataError, match="cannot tell the column layout.*data.layout"):
        HfDataset(HfDatasetConfig(path=str(intents))).load()
    with pytest.raises(DataError, match="no column 'utterence'.*did you mean 'utterance'"):
        HfDataset(HfDatasetConfig(path=str(intents), columns={"text": "utterence", "label": "intent"})).load()


def test_parquet_preference_layouts(tmp_path):
    from datasets import Dataset

    path = shared("llamafactory_data", "dpo_en_demo.json")
    records = json.loads(path.read_text(encoding="utf-8"))[:5]
    sgpt = tmp_path / "dpo.parquet"
    Dataset.from_list(records).to_parquet(str(sgpt))
    data = HfDataset(HfDatasetConfig(path=str(sgpt))).load()
    assert [ex.chosen["content"] for ex in data.examples] == [r["chosen"]["value"] for r in records]

    trl = tmp_path / "trl.parquet"
    Dataset.from_list([{"prompt": "2+2?", "chosen": "4", "rejected": "5"},
                       {"prompt": "2+2?", "chosen": "4", "rejected": "4"}]).to_parquet(str(trl))
    data = HfDataset(HfDatasetConfig(path=str(trl), on_error="skip")).load()
    assert data.examples[0].messages == [{"role": "user", "content": "2+2?"}]
    assert data.examples[0].rejected == {"role": "assistant", "content": "5"}
    assert data.rejected[0].source == f"{trl}:row 2" and "identical" in data.rejected[0].reason


def test_auto_detects_new_formats(tmp_path):
    from datasets import Dataset

    from ftframe.testing import plugin_manager

    pm = plugin_manager()
    Dataset.from_list(CHAT).save_to_disk(str(tmp_path / "saved"))
    Dataset.from_list(CHAT).to_parquet(str(tmp_path / "d.parquet"))
    dpo = _jsonl(tmp_path / "dpo.jsonl", [{"input": {"messages": CHAT[0]["messages"][:1]},
                                          "preferred_output": [CHAT[0]["messages"][1]],
                                          "non_preferred_output": [{"role": "assistant", "content": "no"}]}])
    assert detect(pm, str(tmp_path / "saved")) == "hf_dataset"
    assert detect(pm, str(tmp_path / "d.parquet")) == "hf_dataset"
    assert detect(pm, str(dpo)) == "openai_dpo"
    assert detect(pm, str(shared("llamafactory_data", "dpo_en_demo.json"))) == "sharegpt_dpo"
