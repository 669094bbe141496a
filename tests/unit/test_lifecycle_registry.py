"""``ftframe promote`` and ``models:/`` URIs on MLflow's real Model Registry (a local SQLite store, no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")

from ftframe.commands import main
from ftframe.engine.saved_run import read_run_dir
from ftframe.lifecycle import LifecycleError
from ftframe.lifecycle.compat import check_same_tokenizer, tokenizer_fingerprint
from ftframe.lifecycle.registry import Created, open_client, resolve_model_uri, resolve_run_dir
from ftframe.testing import write_run_dir

LABELS = ["billing", "shipping", "technical"]
N = 60
FAST = ["--resamples", "200"]


def rows(correct: set[int], prefix: str = "ticket") -> list[tuple[str, str, str]]:
    return [(f"{prefix} {i} about {LABELS[i % 3]}", LABELS[i % 3], LABELS[i % 3] if i in correct else LABELS[(i + 1) % 3])
            for i in range(N)]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite registry for the module (creating its tables takes seconds); tests use their own names."""
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def client(store):
    return open_client(store)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTFRAME_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return {"half": write_run_dir(tmp / "half", rows(set(range(0, N, 2))), gate={"macro_f1": 0.3}),
            "better": write_run_dir(tmp / "better", rows(set(range(0, N, 2)) | set(range(1, 49, 2))),
                                    gate={"macro_f1": 0.3}),
            "worse": write_run_dir(tmp / "worse", rows(set(range(0, 24, 2))), gate={"macro_f1": 0.2}),
            "failed": write_run_dir(tmp / "failed", rows(set(range(10))), gate={"macro_f1": 0.9}, status="gate_failed")}


def versions(client, name: str) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))


def champion(client, name: str) -> int:
    return int(client.get_model_version_by_alias(name, "champion").version)


def promote(store, run, name, *extra) -> int:
    return main(["promote", str(run), "--name", name, "--registry", store, *extra])


def test_promote_registers_the_run_and_moves_the_alias(store, client, runs, capsys):
    assert promote(store, runs["half"], "first") == 0
    assert versions(client, "first") == [1] and champion(client, "first") == 1
    mv = client.get_model_version("first", "1")
    assert mv.tags["ftframe.task"] == "tiny" and mv.tags["ftframe.macro_f1"] == "0.5000"
    assert mv.tags["ftframe.weights"] == "adapter" and mv.tags["ftframe.run_dir"] == str(runs["half"].resolve())
    run = client.get_run(mv.run_id)
    assert run.data.metrics["test/macro_f1"] == pytest.approx(0.5) and run.data.params["task"] == "tiny"
    assert run.info.status == "FINISHED"
    resolved = resolve_model_uri("models:/first@champion", registry_uri=store)
    assert resolved.version == 1
    run_dir, config, manifest = read_run_dir(resolved.run_dir)  # a run dir like any other
    assert config.task.name == "tiny" and manifest == json.loads((runs["half"] / "manifest.json").read_text())
    for name in ("adapter/adapter_config.json", "predictions.jsonl", "data/test.jsonl", "metrics.json", "config.yaml"):
        assert (run_dir / name).is_file(), name
    assert resolve_run_dir("models:/first/1", registry_uri=store) == str(resolved.run_dir)
    assert "serve it: ftframe serve models:/first@champion" in " ".join(capsys.readouterr().out.split())


def test_compare_gates_promotion_and_rollback_moves_the_alias_back(store, client, runs, capsys):
    assert promote(store, runs["half"], "flow") == 0
    assert promote(store, runs["better"], "flow", "--compare", *FAST) == 0
    assert versions(client, "flow") == [1, 2] and champion(client, "flow") == 2
    v2 = client.get_model_version("flow", "2")
    assert v2.tags["ftframe.previous.champion"] == "1" and v2.tags["ftframe.compared_with"].startswith("v1: macro_f1 Δ +0.4")
    capsys.readouterr()
    # a worse challenger is refused: no version, the alias stays
    assert promote(store, runs["worse"], "flow", "--compare", *FAST) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "Not promoting" in err and "significantly worse on macro_f1" in err and "champion still points at version 2" in err
    assert versions(client, "flow") == [1, 2] and champion(client, "flow") == 2
    # rolling back is moving the alias back
    assert main(["promote", "--name", "flow", "--rollback", "--registry", store]) == 0
    assert champion(client, "flow") == 1
    assert main(["promote", "--name", "flow", "--rollback", "--registry", store]) == 2
    assert "no earlier version to roll back to" in capsys.readouterr().err
    assert main(["promote", "--name", "flow", "--to-version", "2", "--registry", store]) == 0
    assert champion(client, "flow") == 2
    assert main(["promote", "--name", "flow", "--rollback", "--registry", store]) == 0 and champion(client, "flow") == 1
    assert main(["promote", "--name", "flow", "--list", "--registry", store]) == 0
    listed = capsys.readouterr().out.splitlines()
    v2 = next(line for line in listed if line.strip().startswith("2 "))
    assert "champion" not in v2 and "macro_f1 0.9000" in v2
    assert "champion" in next(line for line in listed if line.strip().startswith("1 "))
    # a challenger registered under its own alias is moved to champion only if it may replace it
    assert promote(store, runs["worse"], "flow", "--alias", "challenger") == 0
    assert int(client.get_model_version_by_alias("flow", "challenger").version) == 3 and champion(client, "flow") == 1
    capsys.readouterr()
    assert main(["promote", "--name", "flow", "--to-version", "3", "--compare", "--registry", store, *FAST]) == 1
    assert "Not moving flow@champion to version 3" in " ".join(capsys.readouterr().err.split())
    assert champion(client, "flow") == 1


def test_refused_promotions_change_nothing(store, client, runs, capsys):
    assert promote(store, runs["failed"], "refused") == 1
    assert "failed its gate (macro_f1 = " in capsys.readouterr().err
    assert client.search_registered_models(filter_string="name='refused'") == []
    assert promote(store, runs["half"], "again") == 0
    assert promote(store, runs["half"], "again") == 2  # the same run twice
    assert "already registered as again version 1" in capsys.readouterr().err
    assert versions(client, "again") == [1]


def test_a_failure_after_the_run_was_created_undoes_everything(tmp_path, runs, capsys):
    """The artifact folder cannot be made (a file is in its place): the MLflow run and the new registered
    model are deleted again, nothing is left registered."""
    store = f"sqlite:///{tmp_path / 'reg' / 'mlflow.db'}"
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "artifacts").write_text("in the way\n")
    assert promote(store, runs["half"], "broken") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Promoting" in err and "failed" in err and "undone: MLflow run" in err and "registered model broken" in err
    c = open_client(store)
    assert c.search_registered_models() == []
    assert [r.info.lifecycle_stage for r in c.search_runs([c.get_experiment_by_name("ftframe-registry").experiment_id],
                                                          run_view_type=3)] == ["deleted"]


def test_undo_deletes_a_created_version(client):
    client.create_registered_model("undo-me")
    mv = client.create_model_version("undo-me", "file:///nowhere/run")
    created = Created(client=client, name="undo-me", model=True, version=str(mv.version))
    assert created.undo() == ["version 1", "registered model undo-me"]
    assert client.search_registered_models(filter_string="name='undo-me'") == []


@pytest.mark.parametrize(("uri", "message"), [
    ("models:/nothing@champion", "No registered model 'nothing'"),
    ("models:/first@staging", "has no alias 'staging' (aliases: champion → v1)"),
    ("models:/first/9", "has no version 9"),
    ("models:/first", "expected models:/NAME@ALIAS"),
])
def test_unknown_names_aliases_and_versions(store, client, runs, uri, message):
    if not client.search_registered_models(filter_string="name='first'"):
        main(["promote", str(runs["half"]), "--name", "first", "--registry", store])
    with pytest.raises(LifecycleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_model_uri(uri, registry_uri=store)


def test_unreachable_registry_is_a_clear_error(runs, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert promote("http://127.0.0.1:9", runs["half"], "x") == 2
    err = capsys.readouterr().err
    assert "registry http://127.0.0.1:9 is unreachable" in err and "Traceback" not in err


def test_bad_names_and_aliases_are_refused_before_anything(store, runs, capsys):
    assert main(["promote", str(runs["half"]), "--name", "a/b", "--registry", store]) == 2
    assert "--name 'a/b'" in capsys.readouterr().err
    assert main(["promote", str(runs["half"]), "--name", "ok", "--alias", "latest", "--registry", store]) == 2
    assert "--alias 'latest'" in capsys.readouterr().err


def test_tokenizer_fingerprints(tmp_path):
    a = write_run_dir(tmp_path / "a", rows(set()), tokenizer="t1")
    b = write_run_dir(tmp_path / "b", rows(set()), tokenizer="t1")
    c = write_run_dir(tmp_path / "c", rows(set()), tokenizer="t2")
    assert tokenizer_fingerprint(a) == tokenizer_fingerprint(b) == check_same_tokenizer(a, b)
    with pytest.raises(LifecycleError, match="another tokenizer or chat template"):
        check_same_tokenizer(a, c)
    (c / "adapter" / "tokenizer.json").unlink()
    with pytest.raises(LifecycleError, match="no tokenizer saved"):
        check_same_tokenizer(a, Path(c))
