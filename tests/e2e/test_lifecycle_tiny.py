"""Two real runs on the tiny model through the lifecycle: compare (saved predictions, and a golden file through
the ``ftframe eval`` machinery), promote into a real MLflow registry, load ``models:/NAME@champion`` back."""

from __future__ import annotations

import json

import pytest
import torch

from ftframe.commands import main
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("lifecycle")
    data = write_chat_jsonl(tmp / "toy.jsonl", toy_classification_rows(12), system="Classify.")
    runs = []
    for name, seed in (("A", 0), ("B", 1)):  # another seed, the same split (split.seed fixed)
        torch.manual_seed(seed)
        result = run_tiny(tmp / name, tiny_run_overrides(tiny_model_dir, data, seed=seed, **{
            "split.seed": 0, "eval.mode": "score", "eval.baseline": "false", "exporters": "[adapter]"}))
        assert result.ok, result.error
        runs.append(result.run_dir)
    golden = write_chat_jsonl(tmp / "golden.jsonl", [("invoice 99 charged twice please refund", "billing"),
                                                     ("app crash error 99 after update", "technical")] * 3,
                              system="Classify.")
    return runs[0], runs[1], golden, tmp


def test_compare_two_tiny_runs(two_runs):
    a, b, golden, tmp = two_runs
    out = tmp / "cmp"
    code = main(["compare", str(a), str(b), "--out", str(out), "--resamples", "200"])
    comp = json.loads((out / "comparison.json").read_text())
    assert code == (0 if comp["accepted"] else 1)
    saved = [json.loads(x) for x in (a / "predictions.jsonl").read_text().splitlines()]
    assert comp["examples"] == len(saved) and comp["a"]["predictions"] == "saved predictions.jsonl"
    head = next(d for d in comp["deltas"] if d["name"] == "macro_f1")
    assert head["ci_low"] <= head["delta"] <= head["ci_high"]
    # the golden file is evaluated by both runs' models (ftframe eval RUN data=FILE)
    out = tmp / "cmp_golden"
    main(["compare", str(a), str(b), "--data", str(golden), "--out", str(out), "--resamples", "200"])
    comp = json.loads((out / "comparison.json").read_text())
    assert comp["examples"] == 6 and comp["b"]["predictions"] == f"evaluated on {golden}"
    assert len((out / "eval_A" / "predictions.jsonl").read_text().splitlines()) == 6


def test_promote_and_load_the_champion_back(two_runs, monkeypatch):
    from ftframe.engine.saved_run import load_saved_run
    from ftframe.lifecycle.registry import open_client, resolve_run_dir

    a, b, _, tmp = two_runs
    monkeypatch.setenv("FTFRAME_CACHE_DIR", str(tmp / "cache"))
    store = f"sqlite:///{tmp / 'registry' / 'mlflow.db'}"
    assert main(["promote", str(a), "--name", "tiny", "--registry", store]) == 0
    assert main(["promote", str(b), "--name", "tiny", "--registry", store]) == 0
    client = open_client(store)
    assert int(client.get_model_version_by_alias("tiny", "champion").version) == 2
    served = load_saved_run(resolve_run_dir("models:/tiny@champion", registry_uri=store))  # as ftframe serve does
    original = load_saved_run(b)
    prompts = [json.loads(x)["input"] for x in (b / "predictions.jsonl").read_text().splitlines()]
    labels = original.task.labels
    assert served.predictor().score(prompts, labels) == original.predictor().score(prompts, labels)
    assert main(["promote", "--name", "tiny", "--rollback", "--registry", store]) == 0
    assert int(client.get_model_version_by_alias("tiny", "champion").version) == 1
