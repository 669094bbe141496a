"""Bad input paths as a new user makes them (issue 23): a folder, an empty file, a missing path, a Latin-1 CSV,
a file the process may not read (run as a non-root user, or as root without capabilities), for data files,
split files, golden sets, model folders and run dirs. ``ftframe validate``, ``ftframe data check`` and the run
(``python -m ftframe``) print the same message, and no input ends in a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ftframe.commands import main
from ftframe.errors import ConfigError, DataError
from ftframe.testing import compose, run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

GOOD = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}\n'


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTFRAME_CACHE_DIR", str(tmp_path / "cache"))


def hydra_run(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``python -m ftframe ARGS`` in this process: ``(exit status, stderr)``."""
    from hydra.core.global_hydra import GlobalHydra

    from ftframe.cli import main as cli_main

    monkeypatch.setattr(sys, "argv", ["ftframe", *args])
    capsys.readouterr()
    try:
        cli_main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        GlobalHydra.instance().clear()
    return code, capsys.readouterr().err


def command(capsys, *argv: str) -> tuple[int, str]:
    """``ftframe ARGV`` in this process: ``(exit status, stderr)``."""
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def three_ways(monkeypatch, capsys, tmp_path, overrides: list[str], path: Path) -> list[str]:
    """stderr of ``validate``, ``data check`` and the run for one input; each must fail with exit status 2."""
    outputs = []
    for code, err in (command(capsys, "validate", *overrides),
                      command(capsys, "data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(path),
                              *[o for o in overrides if not o.startswith("data.path=")]),
                      hydra_run(monkeypatch, capsys, *overrides, f"hydra.run.dir={tmp_path / 'run'}")):
        assert code == 2, err
        assert "Traceback" not in err
        outputs.append(err)
    return outputs


# --------------------------------------------------------------------------------- a folder as data.path
def test_a_folder_as_data_path_is_named_a_folder_by_every_command(monkeypatch, capsys, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text(GOOD, encoding="utf-8")
    message = (f"{folder}: is a folder, not a file. Point data.path at a file, or choose a format that reads folders "
               f"(data=fields, data=hf_dataset).")
    for err in three_ways(monkeypatch, capsys, tmp_path, ["data=chat_jsonl", f"data.path={folder}"], folder):
        assert message in err
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        run_tiny(tmp_path / "r", ["data=chat_jsonl", f"data.path={folder}"])
    # data=auto: no format reads a plain folder
    code, err = command(capsys, "data", "check", "--no-measure", str(folder))
    assert code == 2 and f"data=auto: {folder}: no installed data format reads this folder" in err


# ------------------------------------------------------------------------------ an empty file, explicit format
@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_file_is_refused_before_training(monkeypatch, capsys, tmp_path, content):
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content, encoding="utf-8")
    blank = " (only blank lines)" if content else ""
    message = f"{empty}: empty file{blank}; data.path must hold at least one record."
    for err in three_ways(monkeypatch, capsys, tmp_path, ["data=chat_jsonl", f"data.path={empty}"], empty):
        assert message in err


def test_a_file_without_records_is_refused_by_data_check_and_the_run(capsys, tmp_path, tiny_model_dir):
    array = tmp_path / "none.json"
    array.write_text("[]\n", encoding="utf-8")
    header = tmp_path / "header.csv"
    header.write_text("text,label\n", encoding="utf-8")
    model = ["model=hf_local", f"model.path={tiny_model_dir}"]
    for path, fmt in ((array, "alpaca"), (header, "csv_labels")):
        message = f"{path}: no records in it; data.path must hold at least one record."
        code, err = command(capsys, "data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(path),
                            f"data={fmt}", *model)
        assert code == 2 and message in err
        with pytest.raises(DataError, match=message.replace(".", r"\.")):
            run_tiny(tmp_path / "r", [f"data={fmt}", *tiny_run_overrides(tiny_model_dir, path)])


def test_split_file_and_golden_set_problems_name_their_key(capsys, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(GOOD * 4, encoding="utf-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    code, err = command(capsys, "validate", f"data.path={good}", f"split.files.test={tmp_path}",
                        f"eval.golden={empty}", f"split.files.val={tmp_path / 'nope.jsonl'}")
    assert code == 2
    assert f"{tmp_path}: is a folder, not a file. Point split.files.test at a file" in err
    assert f"{empty}: empty file; eval.golden must hold at least one record." in err
    assert f"{tmp_path / 'nope.jsonl'}: file not found. Check split.files.val (relative paths start at" in err
    code, err = command(capsys, "data", "check", "--no-measure", str(good), f"split.files.test={empty}")
    assert code == 2 and f"{empty}: empty file; split.files.test must hold at least one record." in err


def test_model_folder_problems_name_model_path(capsys, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(GOOD * 4, encoding="utf-8")
    for path, message in ((tmp_path / "absent", "folder not found. Check model.path"),
                          (good, "is a file, not a folder. Point model.path at a folder")):
        code, err = command(capsys, "validate", f"data.path={good}", "model=hf_local", f"model.path={path}")
        assert code == 2 and f"{path}: {message}" in err
        code, err = command(capsys, "data", "check", "--no-measure", str(good), "model=hf_local", f"model.path={path}")
        assert code == 2 and f"{path}: {message}" in err


# ------------------------------------------------------------------------------- a missing path, data=auto
def test_a_missing_path_with_automatic_detection_is_not_found(capsys, tmp_path):
    missing = tmp_path / "nope.jsonl"
    message = f"{missing}: not found. Check data.path (relative paths start at {Path.cwd()})."
    code, err = command(capsys, "data", "check", "--no-measure", str(missing))
    assert code == 2 and message in err and "recognises" not in err
    code, err = command(capsys, "validate", "data=auto", f"data.path={missing}")
    assert code == 2 and message in err


# ------------------------------------------------------------------ a Latin-1 CSV: the hint, followed literally
def test_the_encoding_hint_works_when_followed_literally(capsys, tmp_path, tiny_model_dir, pm, registry):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nKündigung bitte,cancel\nRechnung doppelt,billing\n".encode("latin-1"))
    model = ["model=hf_local", f"model.path={tiny_model_dir}"]
    code, err = command(capsys, "data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(path), *model)
    assert code == 2 and f"{path}:2: not valid utf-8 text" in err and "data.encoding=latin-1" in err
    code, err = command(capsys, "data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(path), *model,
                        "data.encoding=latin-1")
    assert code == 0, err
    report = json.loads((tmp_path / "pf" / "preflight.json").read_text())
    assert report["format"] == "csv_labels" and report["examples"] == 2
    # the same key under data=auto in a run's config
    from ftframe.engine.data_source import load_data

    cfg = compose(["data=auto", f"data.path={path}", "data.encoding=latin-1"], pm=pm)
    loaded, detected = load_data(cfg.data, registry, pm)
    assert detected == "csv_labels" and loaded.examples[0].messages[0]["content"] == "Kündigung bitte"
    assert command(capsys, "validate", "data=auto", f"data.path={path}", "data.encoding=latin-1")[0] == 0


def test_a_format_option_under_automatic_detection_uses_the_detected_format(capsys, tmp_path, tiny_model_dir):
    path = tmp_path / "intents.csv"
    path.write_text("utterance,intent\nwhere is my card,card_arrival\nreset my pin,pin\n", encoding="utf-8")
    code, err = command(capsys, "data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(path),
                        "model=hf_local", f"model.path={tiny_model_dir}")
    assert code == 2 and "data=csv_labels data.text_column=COLUMN" in err
    code, err = command(capsys, "data", "check", "--no-measure", "--out", str(tmp_path / "pf"), str(path),
                        "model=hf_local", f"model.path={tiny_model_dir}", "data.text_column=utterance",
                        "data.label_column=intent")
    assert code == 0, err


# ----------------------------------------------------------------------- JSON wording: no doubled "at at"
def test_json_errors_read_well(capsys, tmp_path, tiny_model_dir):
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + '{"messages": "unterminated\n', encoding="utf-8")
    code, err = command(capsys, "data", "check", "--json", "--no-measure", "--out", str(tmp_path / "pf"), str(path),
                        "model=hf_local", f"model.path={tiny_model_dir}")
    assert code == 1
    reason = json.loads((tmp_path / "pf" / "preflight.json").read_text())["format_errors"]["malformed_json"]["where"][0]
    assert reason["source"] == f"{path}:2"
    assert "Unterminated string starting at column 14" in reason["reason"] and "at at" not in reason["reason"]
    array = tmp_path / "bad.json"
    array.write_text('[{"instruction": "hi", "output": "ok"},\n {"instruction": }]', encoding="utf-8")
    code, err = command(capsys, "data", "check", "--no-measure", str(array))
    assert code == 2 and f"{array}:2: malformed JSON (Expecting value at column 18)" in err


# ------------------------------------------------------------------------------- the estimate after truncation
@pytest.mark.parametrize("policy", ["truncate", "drop", "chunk"])
def test_the_time_estimate_counts_tokens_as_training_sees_them(tiny_tokenizer, policy):
    from ftframe.api import Example
    from ftframe.preflight.report import build_report, estimate
    from ftframe.preflight.tokens import count_tokens

    short = [Example(messages=[{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "ok"}],
                     source=f"d:{i}") for i in range(3)]
    huge = Example(messages=[{"role": "user", "content": "word " * 20_000}, {"role": "assistant", "content": "ok"}],
                   source="d:4")
    limit = 64
    counts = [c.total for c in count_tokens(tiny_tokenizer, [*short, huge], limit)]
    report = build_report(splits={"train": [*short, huge]}, rejected=[], tokenizer=tiny_tokenizer, max_length=limit,
                          too_long=policy)
    est = estimate(report, epochs=2, throughput={"tokens_per_second": 100.0, "source": "recorded"}, cost=None)
    total = sum(counts)
    kept = {"truncate": sum(counts[:3]) + limit, "drop": sum(counts[:3]), "chunk": total}[policy]
    assert est["train_tokens_per_epoch"] == kept
    assert est["local"]["seconds"] == round(2 * kept / 100.0, 1)
    if policy != "chunk":
        assert est["train_tokens_before_too_long"] == total > kept * 10


# ===================================================================== permission denied, as a non-root user
DRIVER = r'''
import contextlib, io, json, sys, traceback
from ftframe.preflight.input_paths import user_name

def call(argv, hydra):
    out, err = io.StringIO(), io.StringIO()
    crash = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if hydra:
                from hydra.core.global_hydra import GlobalHydra
                from ftframe.cli import main
                sys.argv = ["ftframe", *argv]
                try:
                    main()
                    code = 0
                finally:
                    GlobalHydra.instance().clear()
            else:
                from ftframe.commands import main
                code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            code, crash = None, traceback.format_exc()
    return {"code": code, "err": err.getvalue(), "crash": crash}

cases = json.loads(sys.argv[1])
print(json.dumps({"user": user_name(), "results": {name: call(argv, hydra) for name, (argv, hydra) in cases.items()}}))
'''


def unprivileged() -> tuple[list[str], str]:
    """A command prefix under which file permissions apply: nothing for a non-root user; for root, the user
    nobody (where nobody can run this Python) or else root with every capability dropped."""
    if os.geteuid() != 0:
        return [], "a non-root user"
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and setpriv (util-linux) is not installed to drop to an unprivileged user")
    nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*nobody, sys.executable, "-c", "import ftframe.commands"], capture_output=True,
                           env={**os.environ, "HOME": tempfile.gettempdir()}, check=False)
    if probe.returncode == 0:
        return nobody, "user nobody"
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all"], "root without capabilities"


@pytest.fixture(scope="module")
def locked(tmp_path_factory, tiny_model_dir):
    """A world-readable work folder holding inputs this process may not read (mode 000), and good ones."""
    work = Path(tempfile.mkdtemp(prefix="ftframe-perm-"))
    work.chmod(0o755)
    good = write_chat_jsonl(work / "good.jsonl", toy_classification_rows(4))
    secret = work / "secret.jsonl"
    secret.write_text(GOOD, encoding="utf-8")
    model = work / "model"
    shutil.copytree(tiny_model_dir, model)
    locked_model = work / "locked_model"
    shutil.copytree(tiny_model_dir, locked_model)
    run_dir = work / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("seed: 0\n", encoding="utf-8")
    (run_dir / "manifest.json").write_text('{"status": "succeeded"}', encoding="utf-8")
    locked_run = work / "locked_run"
    shutil.copytree(run_dir, locked_run)
    from datasets import Dataset

    Dataset.from_list([{"text": "hi", "label": "greet"}]).save_to_disk(work / "ds")
    arrow = next((work / "ds").glob("*.arrow"))
    for path in [*work.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for path in (secret, locked_model / "config.json", run_dir / "manifest.json", arrow):
        path.chmod(0)
    locked_run.chmod(0)
    prefix, who = unprivileged()
    probe = subprocess.run([*prefix, sys.executable, "-c", f"open({str(secret)!r})"], capture_output=True, check=False)
    if probe.returncode == 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.skip(f"as {who} this process can still read a mode-000 file (capabilities?)")
    yield {"work": work, "good": good, "secret": secret, "model": model, "locked_model": locked_model,
           "run": run_dir, "locked_run": locked_run, "ds": work / "ds", "arrow": arrow, "prefix": prefix}
    locked_run.chmod(0o755)
    shutil.rmtree(work, ignore_errors=True)


def test_unreadable_inputs_get_a_clear_message_and_no_traceback(locked):
    w = locked
    model = ["model=hf_local", f"model.path={w['model']}"]
    check = ["data", "check", "--no-measure", "--out", str(w["work"] / "pf")]
    secret, run, locked_run = str(w["secret"]), str(w["run"]), str(w["locked_run"])
    cases = {
        "check": ([*check, secret, "data=chat_jsonl", *model], False),
        "check_auto": ([*check, secret, *model], False),
        "validate": (["validate", "data=chat_jsonl", f"data.path={secret}", *model], False),
        "run": (["data=chat_jsonl", f"data.path={secret}", *model, f"hydra.run.dir={w['work'] / 'out'}"], True),
        "split_file": (["validate", f"data.path={w['good']}", f"split.files.test={secret}", *model], False),
        "split_file_check": ([*check, str(w["good"]), f"split.files.test={secret}", *model], False),
        "golden": (["validate", f"data.path={w['good']}", f"eval.golden={secret}", *model], False),
        "model_file": (["validate", f"data.path={w['good']}", "model=hf_local", f"model.path={w['locked_model']}"], False),
        "model_file_check": ([*check, str(w["good"]), "model=hf_local", f"model.path={w['locked_model']}"], False),
        "dataset_file": ([*check, str(w["ds"]), *model], False),
        "eval_locked": (["eval", locked_run], False),
        "predict_locked": (["predict", locked_run, "--input", str(w["good"])], False),
        "serve_locked": (["serve", locked_run], False),
        "export_locked": (["export", locked_run, "exporters=[merged]"], False),
        "eval_manifest": (["eval", run], False),
        "predict_manifest": (["predict", run, "--input", str(w["good"])], False),
        "serve_manifest": (["serve", run], False),
        "export_manifest": (["export", run, "exporters=[merged]"], False),
        "predict_input": (["predict", run, "--input", secret], False),
    }
    env = {**os.environ, "HOME": str(w["work"]), "FTFRAME_CACHE_DIR": str(w["work"] / "cache"),
           "HF_HOME": str(w["work"] / "hf")}
    out = subprocess.run([*w["prefix"], sys.executable, "-c", DRIVER, json.dumps(cases)], capture_output=True,
                         text=True, cwd=w["work"], env=env, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    user, results = reply["user"], reply["results"]
    for name, result in results.items():
        assert result["crash"] is None, f"{name}: {result['crash']}"
        assert result["code"] == 2, f"{name}: {result}"
        assert "Traceback" not in result["err"]

    def denied(path: object, what: str = "this file") -> str:
        return f"{path}: permission denied: user {user} may not read {what}."

    data_message = denied(secret)
    for name in ("check", "check_auto", "validate", "run"):  # the same message from each
        assert data_message in results[name]["err"], name
        assert "point data.path at a copy this user can read" in results[name]["err"]
    for name in ("split_file", "split_file_check"):
        assert data_message in results[name]["err"] and "split.files.test" in results[name]["err"]
    assert data_message in results["golden"]["err"] and "eval.golden" in results["golden"]["err"]
    for name in ("model_file", "model_file_check"):
        assert denied(w["locked_model"] / "config.json", f"this file of {w['locked_model']}") in results[name]["err"]
    assert denied(w["arrow"], f"this file of {w['ds']}") in results["dataset_file"]["err"]
    for name in ("eval_locked", "predict_locked", "serve_locked", "export_locked"):
        assert denied(locked_run, "this folder") in results[name]["err"], name
    for name in ("eval_manifest", "predict_manifest", "serve_manifest", "export_manifest"):
        assert denied(w["run"] / "manifest.json") in results[name]["err"], name
    assert denied(secret) in results["predict_input"]["err"] and "--input" in results["predict_input"]["err"]
