"""``ftframe data check`` / ``data show`` on real files, and the preflight stage of a run (leakage, skip, drop)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftframe.commands import main
from ftframe.errors import DataError
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTFRAME_CACHE_DIR", str(tmp_path / "cache"))


def tiny(model_dir: Path) -> list[str]:
    return ["model=hf_local", f"model.path={model_dir}"]


def test_check_cookbook_toy_set(tmp_path, tiny_model_dir, capsys):
    path = shared("openai_cookbook", "toy_chat_fine_tuning.jsonl")
    out = tmp_path / "pf"
    code = main(["data", "check", "--out", str(out), "--no-measure", str(path), *tiny(tiny_model_dir),
                 "task.type=generation"])
    assert code == 0
    report = json.loads((out / "preflight.json").read_text())
    assert report["format"] == "chat_jsonl" and report["examples"] == 5 and report["format_errors"] == {}
    assert (out / "preflight_tokens.png").read_bytes()[:4] == b"\x89PNG"
    assert "local" not in report["estimate"]  # nothing recorded, measuring switched off
    text = capsys.readouterr().out
    assert "format: no errors" in text and "tokens per example" in text


def test_check_reports_every_bad_row_and_fails(tmp_path, tiny_model_dir, capsys):
    good = shared("openai_cookbook", "toy_chat_fine_tuning.jsonl").read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(good + ['{"messages": [', json.dumps({"messages": [{"role": "robot", "content": "x"}]})])
                   + "\n", encoding="utf-8")
    code = main(["data", "check", "--json", "--no-measure", "--out", str(tmp_path / "pf"), str(bad),
                 *tiny(tiny_model_dir), "task.type=generation"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["format_errors"]["malformed_json"]["where"][0]["source"] == f"{bad}:6"
    assert report["format_errors"]["unrecognized_role"]["where"][0]["source"] == f"{bad}:7"


def test_check_measures_throughput_and_warns_on_leakage(tmp_path, tiny_model_dir, capsys):
    rows = toy_classification_rows(6)
    data = write_chat_jsonl(tmp_path / "d.jsonl", rows + rows[:4])
    code = main(["data", "check", "--out", str(tmp_path / "pf"), str(data), *tiny(tiny_model_dir),
                 "split.train=0.5", "split.val=0", "split.test=0.5"])
    assert code == 0  # leakage is a warning in check
    report = json.loads((tmp_path / "pf" / "preflight.json").read_text())
    assert report["leakage"]["exact"] >= 1 and report["leakage"]["level"] == "warning"
    assert report["duplicates"]["groups"] == 4
    assert report["estimate"]["local"]["source"].startswith("measured")
    est = report["estimate"]
    assert est["local"]["seconds"] == round(est["epochs"] * est["train_tokens_per_epoch"]
                                            / est["local"]["tokens_per_second"], 1)


def test_check_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_show_marks_trained_tokens_and_checks_the_template(tmp_path, tiny_model_dir, capsys):
    data = write_chat_jsonl(tmp_path / "d.jsonl", [("app crash please help", "technical")])
    assert main(["data", "show", "--index", "0", str(data), *tiny(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "technical" in out and "1 trained" not in out and "trained" in out
    assert "inference prompt (add_generation_prompt) = the training text" in out
    assert main(["data", "show", "--index", "5", str(data), *tiny(tiny_model_dir)]) == 2
    assert "has 1 usable examples" in capsys.readouterr().err


def test_show_fails_when_inference_template_differs(tmp_path, tiny_model_dir, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    cfg_path = model / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    # The generation prompt adds a space the training rendering does not have: a classic template bug.
    cfg["chat_template"] = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
                            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant \n' }}{% endif %}")
    cfg_path.write_text(json.dumps(cfg))
    for name in ("chat_template.jinja",):
        (model / name).unlink(missing_ok=True)
    data = write_chat_jsonl(tmp_path / "d.jsonl", [("hi", "billing")])
    assert main(["data", "show", str(data), "model=hf_local", f"model.path={model}"]) == 1
    assert "training and inference templates differ" in capsys.readouterr().out


def test_show_preference_pair(tiny_model_dir, capsys):
    path = shared("llamafactory_data", "dpo_en_demo.json")
    assert main(["data", "show", "--index", "3", str(path), *tiny(tiny_model_dir), "backend.max_length=100000"]) == 0
    out = capsys.readouterr().out
    assert "chosen:" in out and "rejected:" in out


# ------------------------------------------------------------------------------ the run's stage
def test_run_stops_on_leakage_unless_allowed(tmp_path, tiny_model_dir):
    rows = toy_classification_rows(6)
    data = write_chat_jsonl(tmp_path / "d.jsonl", rows + rows)
    with pytest.raises(DataError, match="train/test leakage.*data_checks.allow_leakage=true"):
        run_tiny(tmp_path / "run", tiny_run_overrides(tiny_model_dir, data))
    report = json.loads((tmp_path / "run" / "preflight.json").read_text())
    assert report["leakage"]["level"] == "error" and report["leakage"]["exact"] > 0
    assert (tmp_path / "run" / "preflight_tokens.png").is_file()
    assert not (tmp_path / "run" / "metrics.json").exists()  # stopped before training


def test_run_with_skip_dedup_and_drop_keeps_every_rejected_row(tmp_path, tiny_model_dir, capsys):
    rows = toy_classification_rows(8)
    data = write_chat_jsonl(tmp_path / "d.jsonl", rows)
    lines = data.read_text(encoding="utf-8").splitlines()
    long = json.dumps({"messages": [{"role": "user", "content": "refund " * 200}, {"role": "assistant",
                                                                                    "content": "billing"}]})
    lines += ['{"messages": [', json.dumps({"messages": [{"role": "user", "content": "x"},
                                                        {"role": "assistant", "content": " "}]}),
              lines[0], long]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    overrides = tiny_run_overrides(tiny_model_dir, data, **{
        "data.on_error": "skip", "transforms.dedup": "true", "transforms.too_long": "drop",
        "transforms.redact_pii": "[all]", "backend.max_length": 64, "backend.epochs": 1, "eval.baseline": "false",
        "split.train": 0.6, "split.val": 0.0, "split.test": 0.4, "split.stratify": "false"})
    result = run_tiny(tmp_path / "run", overrides)
    assert result.ok, result.error
    rejected = [json.loads(line) for line in (tmp_path / "run" / "rejected.jsonl").read_text().splitlines()]
    kinds = {r["kind"] for r in rejected}
    assert {"malformed_json", "empty_assistant_message", "duplicate"} <= kinds
    n = len(lines)
    sources = {r["source"] for r in rejected}
    assert {f"{data}:{n - 3}", f"{data}:{n - 2}", f"{data}:{n - 1}"} <= sources
    long_rows = [r for r in rejected if r["source"] == f"{data}:{n}"]
    if long_rows:  # drawn into training: dropped with its reason
        assert long_rows[0]["kind"] == "too_long" and "backend.max_length=64" in long_rows[0]["reason"]
    else:  # drawn into the test split, which is evaluated, not trained: kept
        assert "refund refund" in (tmp_path / "run" / "data" / "test.jsonl").read_text()
    assert all(r["reason"] for r in rejected)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["transforms"]["dedup"] == {"removed": 1}
    assert manifest["transforms"]["too_long"]["policy"] == "drop"
    assert manifest["metrics"]["data"]["rejected"] == len(rejected)
    out = capsys.readouterr().out
    assert f"{len(rejected)} input rows rejected" in out


def test_check_with_a_task_reads_the_file_with_the_tasks_format(tmp_path, tiny_model_dir):
    """``+task=restaurant8k`` chooses data=fields and its options (template, response): ``data check FILE
    +task=restaurant8k`` reads FILE with them instead of detecting a format that knows none of them."""
    path = shared("restaurant8k", "restaurant8k_train_extraction.jsonl")
    out = tmp_path / "pf"
    code = main(["data", "check", "--out", str(out), "--no-measure", str(path), "+task=restaurant8k",
                 *tiny(tiny_model_dir), "transforms.sample=200", "split.files.test=null"])
    assert code == 0
    report = json.loads((out / "preflight.json").read_text())
    assert report["format"] == "fields" and report["rejected"] == 0
    assert report["examples"] == 200 and report["transforms"]["sample"] == {"kept": 200, "of": 8198, "seed": 0}
