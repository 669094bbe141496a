"""Preference methods beyond DPO: IPO, SimPO, ORPO (pairs) and KTO (labelled replies). Each loss against the
paper's formula on hand-computed values; each method makes the tiny model prefer the chosen replies
(measured on the exported adapter with plain PEFT, against the base); the reference-free methods never run
a reference; KTO data is read, and what cannot train on what is refused with the reason."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from ftframe_backends.preference_losses import ipo_loss, kto_loss, orpo_loss, simpo_loss
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from ftframe import hookimpl
from ftframe.api import Example
from ftframe.engine import collate, encode, pad_id, sequence_logprobs
from ftframe.errors import ConfigError, DataError
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "llamafactory_data"


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --------------------------------------------------------------------------------- the losses by hand
def test_ipo_loss_is_the_squared_distance_to_the_target_margin():
    # h = (pc - pr) - (rc - rr) = (-1 + 3) - 0 = 2 = 1/(2 tau) at tau = 0.25: no loss left
    loss, _ = ipo_loss(t(-1.0), t(-3.0), t(-2.0), t(-2.0), tau=0.25)
    assert loss.item() == pytest.approx(0.0)
    loss, _ = ipo_loss(t(-1.0, -2.0), t(-3.0, -1.0), t(-2.0, -2.0), t(-2.0, -2.0), tau=0.5)
    assert loss.item() == pytest.approx(((2 - 1) ** 2 + (-1 - 1) ** 2) / 2)  # margins 2 and -1, target 1


def test_simpo_loss_is_reference_free_with_a_margin():
    loss, stats = simpo_loss(t(-0.5), t(-1.5), beta=2.0, gamma=1.0)
    assert loss.item() == pytest.approx(-math.log(sigmoid(2.0 * 1.0 - 1.0)))  # 0.31326...
    assert stats["reward_margin"].item() == pytest.approx(2.0)  # beta * (avg_c - avg_r)
    smoothed, _ = simpo_loss(t(-0.5), t(-1.5), beta=2.0, gamma=1.0, label_smoothing=0.1)
    assert smoothed.item() == pytest.approx(-0.9 * math.log(sigmoid(1.0)) - 0.1 * math.log(sigmoid(-1.0)))


def test_orpo_loss_is_nll_minus_lambda_log_sigmoid_of_the_log_odds_ratio():
    # P(chosen) = 0.5: odds 1; P(rejected) = 0.2: odds 0.25; log odds ratio = log 4
    loss, stats = orpo_loss(t(math.log(0.5)), t(math.log(0.2)), t(1.0)[0], lam=0.1)
    assert loss.item() == pytest.approx(1.0 - 0.1 * math.log(sigmoid(math.log(4))))  # 1 - 0.1 log 0.8
    assert stats["log_odds_chosen"].item() == pytest.approx(math.log(4))


def test_kto_loss_uses_the_clamped_kl_as_reference_point():
    policy, reference, desirable = t(-1.0, -2.0), t(-2.0, -1.0), torch.tensor([True, False])  # rewards 1, -1
    loss, stats = kto_loss(policy, reference, desirable, t(0.5)[0], beta=0.1, desirable_weight=1.0,
                           undesirable_weight=2.0)
    expected = ((1 - sigmoid(0.1 * (1 - 0.5))) + 2.0 * (1 - sigmoid(0.1 * (0.5 + 1)))) / 2
    assert loss.item() == pytest.approx(expected)
    assert stats["reward_accuracy"].item() == 1.0  # 1 > z and -1 < z
    negative_kl, stats = kto_loss(policy, reference, desirable, t(-3.0)[0], beta=0.1)
    assert stats["kl"].item() == 0.0  # z = max(0, KL)
    assert negative_kl.item() == pytest.approx(((1 - sigmoid(0.1)) + (1 - sigmoid(0.1))) / 2)


# ------------------------------------------------------------------------------------ learning on runs
def rows() -> list[tuple[str, str, str]]:
    return [(user, label, "technical" if label == "billing" else "billing") for user, label in toy_classification_rows(8)]


def prompt(user: str) -> list[dict]:
    return [{"role": "system", "content": "Classify."}, {"role": "user", "content": user}]


@pytest.fixture(scope="module")
def pair_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps({"messages": prompt(u), "chosen": {"role": "assistant", "content": good},
                                        "rejected": {"role": "assistant", "content": bad}}) + "\n"
                            for u, good, bad in rows()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def kto_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kto") / "kto.jsonl"
    # One reply per prompt (as in LLaMA-Factory's KTO demo): every other one desirable.
    lines = [json.dumps({"messages": [*prompt(u), {"role": "assistant", "content": bad if i % 2 else good}],
                         "label": not i % 2}) + "\n" for i, (u, good, bad) in enumerate(rows())]
    path.write_text("".join(lines), encoding="utf-8")
    return path


class ReferenceCalls:
    """Counts how often training switches the adapter off (= runs the reference model)."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def ftframe_lightning_callbacks(self, config):
        import lightning as L

        counter = self

        class Count(L.Callback):
            def on_fit_start(self, trainer, pl_module):
                original = pl_module.model.disable_adapter

                def counted():
                    counter.calls += 1
                    return original()
                pl_module.model.disable_adapter = counted

        return [Count()]


def margins(model, tokenizer, pairs: list[tuple[str, str, str]]) -> torch.Tensor:
    """Per-token average log-probability of the chosen minus the rejected reply, per prompt."""
    items = [encode(tokenizer, [*prompt(u), {"role": "assistant", "content": reply}])
             for u, good, bad in pairs for reply in (good, bad)]
    with torch.no_grad():
        logp = sequence_logprobs(model, collate(items, pad_id(tokenizer)), fast_head=False, average=True)
    return logp[0::2] - logp[1::2]


def train(tmp_path, model_dir, data, backend, **extra):
    counter = ReferenceCalls()
    result = run_tiny(tmp_path / "run", tiny_run_overrides(model_dir, data, **{
        "backend": backend, "eval.baseline": False, "backend.epochs": 6, "backend.lr": 0.02,
        "backend.early_stopping_patience": "null", "task.type": "generation", "metrics": "[exact_match]",
        "task.primary_metric": "exact_match", "exporters": "[adapter]", **extra}), plugins=[counter])
    assert result.status == "succeeded", result.error
    assert result.exports["adapter"]["verified"] is True
    return result, counter.calls


@pytest.mark.parametrize(("backend", "options", "uses_reference"), [
    ("ipo", {"backend.beta": 0.5}, True),
    ("simpo", {}, False),
    ("orpo", {"backend.beta": 0.5}, False),
    ("kto", {"backend.beta": 0.5}, True),
])
def test_each_method_makes_the_model_prefer_the_chosen_replies(tmp_path, tiny_model_dir, pair_path, kto_path,
                                                                backend, options, uses_reference):
    result, reference_calls = train(tmp_path, tiny_model_dir, kto_path if backend == "kto" else pair_path, backend,
                                    **options)
    assert (reference_calls > 0) is uses_reference  # SimPO and ORPO never switch the adapter off
    assert result.metrics["train"]["monitor"] == "val/loss"
    # Measured with plain transformers + PEFT on the exported adapter, against the untouched base.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    before = margins(base, tokenizer, rows())
    tuned = PeftModel.from_pretrained(base, tmp_path / "run" / "adapter").eval()
    after = margins(tuned, tokenizer, rows())
    gain = after - before  # the chosen reply's per-token log-probability margin, tuned minus base, per prompt
    assert gain.mean() > 0.5 and (gain > 0).float().mean() >= 0.9, gain
    if backend == "ipo":  # IPO pulls the margin over the reference to 1/(2 tau) = 1, and no further
        assert gain.mean().item() == pytest.approx(1.0, abs=0.3)


# ---------------------------------------------------------------------------------------- KTO data
def test_llamafactory_kto_demo_loads_with_its_labels():
    from ftframe_formats.chat_jsonl import ChatJsonl, ChatJsonlConfig

    loaded = ChatJsonl(ChatJsonlConfig(path=str(SHARED / "kto_en_demo.json"))).load()
    assert len(loaded.examples) == 300 and not loaded.rejected
    assert sum(ex.desirable is True for ex in loaded.examples) == 150
    undesirable = next(ex for ex in loaded.examples if ex.desirable is False)
    assert undesirable.target is None  # an undesirable reply is no gold answer
    assert undesirable.to_record()["label"] is False
    assert Example.from_record(undesirable.to_record()).desirable is False


def test_bad_labels_are_rejected_with_their_reason(tmp_path):
    from ftframe_formats.chat_jsonl import ChatJsonl, ChatJsonlConfig

    good = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"messages": good, "label": True},
        {"messages": good, "label": "yes"},
        {"messages": [*good, {"role": "user", "content": "and?"}], "label": False},
        {"messages": good, "label": True, "chosen": good[1], "rejected": good[1]},
    ]) + "\n", encoding="utf-8")
    loaded = ChatJsonl(ChatJsonlConfig(path=str(path), on_error="skip")).load()
    assert len(loaded.examples) == 1
    reasons = {r.source.rsplit(":", 1)[1]: r.reason for r in loaded.rejected}
    assert "'label' must be true (a desirable reply) or false" in reasons["2"]
    assert "it is a 'user' message" in reasons["3"]
    assert "unrecognised key(s) ['label']" in reasons["4"]
    with pytest.raises(DataError, match=rf"{path}:2: 'label' must be true"):
        ChatJsonl(ChatJsonlConfig(path=str(path))).load()


def test_each_backend_refuses_the_data_it_cannot_train_on(tmp_path, tiny_model_dir, pair_path, kto_path):
    with pytest.raises(DataError, match=r"backend=kto needs every training reply labelled .* \(these are preference "
                                        r"pairs: use backend=dpo"):
        run_tiny(tmp_path / "a", tiny_run_overrides(tiny_model_dir, pair_path, backend="kto"))
    with pytest.raises(DataError, match=r"backend=orpo needs preference pairs .* use backend=kto\)"):
        run_tiny(tmp_path / "b", tiny_run_overrides(tiny_model_dir, kto_path, backend="orpo"))
    with pytest.raises(DataError, match=r"backend=lora learns every reply, but \d+ of \d+ training examples carry a "
                                        r"KTO 'label' \(\d+ undesirable"):
        run_tiny(tmp_path / "c", tiny_run_overrides(tiny_model_dir, kto_path))


@pytest.mark.parametrize(("backend", "options", "message"), [
    ("ipo", {"beta": 0}, "backend.beta for ipo must be positive"),
    ("ipo", {"label_smoothing": 0.1}, "backend.label_smoothing has no meaning for ipo"),
    ("orpo", {"label_smoothing": 0.1}, "backend.label_smoothing has no meaning for orpo"),
    ("simpo", {"gamma": -1}, "backend.gamma for simpo must not be negative"),
    ("simpo", {"label_smoothing": 0.5}, "backend.label_smoothing for simpo is the share of flipped"),
    ("kto", {"undesirable_weight": 0}, "backend.undesirable_weight for kto must be positive"),
    ("orpo", {"gamma": 1}, "gamma"),  # an option of another method
])
def test_method_options_are_checked(registry, backend, options, message):
    with pytest.raises(ConfigError, match=message):
        registry.create("backend", backend, options)


def test_sharegpt_records_with_a_kto_tag_keep_it(tmp_path):
    from ftframe_formats.sharegpt import ShareGPT, ShareGPTConfig

    turns = [{"from": "human", "value": "Name a prime."}, {"from": "gpt", "value": "8"}]
    path = tmp_path / "kto_sharegpt.json"
    path.write_text(json.dumps([{"conversations": turns, "label": False}, {"conversations": turns, "label": 1},
                                {"conversations": turns[:1] + turns + turns[:1], "label": True},
                                {"conversations": turns}]), encoding="utf-8")
    loaded = ShareGPT(ShareGPTConfig(path=str(path), on_error="skip")).load()
    assert [ex.desirable for ex in loaded.examples] == [False, None]
    reasons = [r.reason for r in loaded.rejected]
    assert "'label' must be true (a desirable reply) or false" in reasons[0]
    assert "'label' judges the last turn, which must be a 'gpt' reply" in reasons[1]
