"""Cost estimates (OpenAI's default-epochs rule from the cookbook) and API-key handling, without a server."""

from __future__ import annotations

import pytest
from ftframe_providers.cost import billed_tokens_per_epoch, openai_default_epochs
from ftframe_providers.keys import ApiKey, MissingKey, resolve_key
from ftframe_providers.openai_backend import OpenAIBackend, OpenAIConfig
from ftframe_providers.together_backend import TogetherBackend, TogetherConfig

from ftframe.api import Example
from ftframe.errors import ConfigError


@pytest.mark.parametrize(("n", "epochs"), [(1, 25), (5, 20), (8, 12), (34, 3), (100, 3), (8_333, 3), (8_334, 2),
                                           (30_000, 1)])
def test_openai_default_epochs_follow_the_cookbook(n, epochs):
    assert openai_default_epochs(n) == epochs


def test_estimate_cost_signature_and_keys():
    backend = OpenAIBackend(OpenAIConfig(model="gpt-4o-mini-2024-07-18"))
    est = backend.estimate_cost(billed_tokens_per_epoch=4306, n_examples=5)
    assert est["epochs"] == 20 and est["billed_tokens"] == 86_120  # the cookbook notebook's own numbers
    assert est["usd"] == pytest.approx(86_120 * 3.0 / 1e6, abs=1e-4)
    fixed = OpenAIBackend(OpenAIConfig(n_epochs=2)).estimate_cost(1000, 5)
    assert fixed["epochs"] == 2 and fixed["epochs_rule"] == "backend.n_epochs"
    assert OpenAIBackend(OpenAIConfig(model="gpt-x")).estimate_cost(1000, 5)["usd"] is None
    together = TogetherBackend(TogetherConfig()).estimate_cost(1_000_000, 10)
    assert together["epochs"] == 1 and together["usd"] == pytest.approx(0.48)


def test_billed_tokens_count_overheads_and_cap():
    ex = Example(messages=[{"role": "user", "content": "a" * 40}, {"role": "assistant", "content": "b" * 8}])
    # every field value counts, as in the cookbook: the role names too ("user" 1, "assistant" 3 at 4 bytes/token)
    assert billed_tokens_per_epoch([ex], 10_000) == 3 + (3 + 1 + 10) + (3 + 3 + 2)
    assert billed_tokens_per_epoch([ex, ex], 5) == 10


def test_key_resolution_and_scrubbing(tmp_path, monkeypatch):
    monkeypatch.delenv("FT_TEST_KEY", raising=False)
    monkeypatch.delenv("FT_TEST_KEY_FILE", raising=False)
    with pytest.raises(MissingKey, match="FT_TEST_KEY_FILE"):
        resolve_key("FT_TEST_KEY")
    monkeypatch.setenv("FT_TEST_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(MissingKey, match="cannot be read"):
        resolve_key("FT_TEST_KEY")
    monkeypatch.setenv("FT_TEST_KEY", "sk-abcdefghijklmnop")
    key = resolve_key("FT_TEST_KEY")
    assert key.source == "$FT_TEST_KEY" and "sk-abc" not in repr(key)
    assert key.scrub("got sk-abcdefghijklmnop and sk-ab*********mnop.") == "got [redacted] and [redacted]"
    assert ApiKey("tgp_v1_x" * 3, "$X").scrub("nothing here") == "nothing here"


def test_config_key_is_refused_without_echo():
    with pytest.raises(ConfigError) as err:
        OpenAIConfig(api_key="sk-should-not-appear")
    assert "sk-should-not-appear" not in str(err.value) and "OPENAI_API_KEY" in str(err.value)
