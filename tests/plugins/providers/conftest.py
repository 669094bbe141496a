"""Fixtures for the provider backends: loopback servers that speak the providers' APIs, API keys in the
environment only, and a small learnable dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the fakes beside this file

from openai_fake import API_SPEC, FakeOpenAI

OPENAI_KEY = "sk-ftframe-test-0123456789abcdefSECRET"
TOGETHER_KEY = "tgp_v1_ftframe-test-9876543210SECRET"


@pytest.fixture
def openai_server(monkeypatch):
    if not API_SPEC.exists():
        pytest.skip("../shared/datasets/openai_openapi is not beside the checkout")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.delenv("OPENAI_API_KEY_FILE", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    server = FakeOpenAI(OPENAI_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def together_server(monkeypatch):
    from together_fake import FakeTogether

    monkeypatch.setenv("TOGETHER_API_KEY", TOGETHER_KEY)
    monkeypatch.delenv("TOGETHER_API_KEY_FILE", raising=False)
    monkeypatch.delenv("TOGETHER_BASE_URL", raising=False)
    server = FakeTogether(TOGETHER_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def chat_data(tmp_path) -> Path:
    from ftframe.testing import toy_classification_rows, write_chat_jsonl

    return write_chat_jsonl(tmp_path / "tickets.jsonl", toy_classification_rows(8),
                            system="Answer with the ticket's category.")
