"""Shared fixtures: one tiny random model per session, a plugin manager, a clean plugin environment."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The tiny model is far faster on one thread (2-core CI boxes thrash with two)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch):
    """No test inherits plugin switches from the calling shell."""
    monkeypatch.delenv("FTFRAME_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("FTFRAME_TRACE_PLUGINS", raising=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + BPE tokenizer with a ChatML template (an ``hf_local`` model folder)."""
    from ftframe.testing import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def pm():
    """The installed plugins only (built with a clean environment)."""
    from ftframe.plugins import get_plugin_manager

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("FTFRAME_DISABLE_PLUGINS", raising=False)
        mp.delenv("FTFRAME_TRACE_PLUGINS", raising=False)
        return get_plugin_manager()


@pytest.fixture(scope="session")
def registry(pm):
    from ftframe.plugins import Registry

    return Registry(pm)


@pytest.fixture(scope="session")
def finished_run_dir(tmp_path_factory, tiny_model_dir) -> Path:
    """One finished tiny run (toy classification, adapter exported), trained once per session.

    Tests that write into a run dir (exports, tampering) take a copy: see :func:`finished_run_copy`.
    """
    import torch

    from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

    tmp = tmp_path_factory.mktemp("finished")
    data = write_chat_jsonl(tmp / "toy.jsonl", toy_classification_rows(8), system="Classify.")
    torch.manual_seed(0)
    result = run_tiny(tmp / "run", tiny_run_overrides(tiny_model_dir, data, **{"eval.baseline": False}))
    assert result.ok, result.error
    return result.run_dir



@pytest.fixture(scope="session")
def finished_run_copy(finished_run_dir, tmp_path_factory):
    """``copy(name) -> Path``: a private copy of :func:`finished_run_dir` (without its checkpoints)."""
    import shutil

    def copy(name: str) -> Path:
        return Path(shutil.copytree(finished_run_dir, tmp_path_factory.mktemp(name) / "run",
                                    ignore=shutil.ignore_patterns("checkpoints")))

    return copy
