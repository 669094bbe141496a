"""backend.head=classifier: a linear head over the labels on a causal LM, trained with the adapter."""

from __future__ import annotations

import json

import pytest
import torch
from ftframe_backends.classifier import ClassifierPredictor, classifier_objective, sequence_classifier
from transformers import AutoModelForCausalLM

from ftframe.api import Example
from ftframe.errors import ConfigError, DataError
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

LABELS = ["billing", "technical"]


def classifier_model(registry, tiny_model_dir, tiny_tokenizer):
    from peft import get_peft_model

    backend = registry.create("backend", "lora", {"head": "classifier", "r": 4, "alpha": 8})
    backend._labels = LABELS
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = sequence_classifier(base, len(LABELS), tiny_tokenizer.pad_token_id)
    return base, get_peft_model(model, backend.peft_config(model))


def test_head_shares_the_decoder_and_is_trained_whole(registry, tiny_model_dir, tiny_tokenizer):
    base, model = classifier_model(registry, tiny_model_dir, tiny_tokenizer)
    decoder = base.get_decoder()
    assert any(p is decoder.embed_tokens.weight for p in model.parameters())  # shared, not copied
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    head = [n for n in trained if ".score." in n]
    assert head and all("modules_to_save" in n for n in head)  # the whole head, not a LoRA on it
    assert not any("score" in n and "lora_" in n for n in trained)
    assert any("lora_A" in n for n in trained)
    head_w = next(p for n, p in model.named_parameters() if ".score." in n and p.requires_grad)
    assert head_w.dtype == torch.float32 and head_w.shape == (len(LABELS), base.config.hidden_size)


def test_encode_collate_and_loss(registry, tiny_model_dir, tiny_tokenizer):
    _, model = classifier_model(registry, tiny_model_dir, tiny_tokenizer)
    objective = classifier_objective(LABELS)
    examples = [Example([{"role": "user", "content": "app crash"}, {"role": "assistant", "content": "technical"}]),
                Example([{"role": "user", "content": "refund my invoice please now"},
                         {"role": "assistant", "content": "billing"}])]
    data = objective.encode(tiny_tokenizer, examples, 512)
    assert [x.label for x in data.items] == [1, 0]
    batch = objective.collate(data.items, tiny_tokenizer.pad_token_id)
    assert batch["labels"].tolist() == [1, 0] and batch["input_ids"].shape[0] == 2
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # right padding kept apart
    from ftframe.engine import TrainHyperparams

    module = objective(model, TrainHyperparams())
    loss, n, extra = module.compute_loss(batch, training=True)
    assert n == 2 and loss.ndim == 0 and torch.isfinite(loss) and "head_accuracy" in extra
    bad = [Example([{"role": "user", "content": "x"}, {"role": "assistant", "content": "other"}], source="f:3")]
    with pytest.raises(DataError, match="f:3.*'other'"):
        objective.encode(tiny_tokenizer, bad, 512)


def test_predictor_scores_labels_and_answers_with_one(registry, tiny_model_dir, tiny_tokenizer):
    _, model = classifier_model(registry, tiny_model_dir, tiny_tokenizer)
    predictor = ClassifierPredictor(model, tiny_tokenizer, LABELS, batch_size=2)
    prompts = [[{"role": "user", "content": t}] for t in ("app crash error", "invoice", "a much longer message here")]
    table = predictor.score(prompts, ["technical", "billing"])
    for row in table:  # log-probabilities over the whole label set
        assert abs(sum(torch.tensor(row).exp().tolist()) - 1.0) < 1e-4
    answers = predictor.generate(prompts, max_new_tokens=1)
    assert answers == [["technical", "billing"][max(range(2), key=row.__getitem__)] for row in table]
    # Padding does not change a prompt's answer: alone and in a batch give the same scores.
    alone = predictor.score(prompts[:1], LABELS)[0]
    assert torch.allclose(torch.tensor(alone), torch.tensor(predictor.score(prompts, LABELS)[0]), atol=1e-4)
    with pytest.raises(DataError, match="cannot score"):
        predictor.score(prompts, ["refund"])


def test_head_option_errors(registry):
    with pytest.raises(ConfigError, match="backend.head"):
        registry.create("backend", "lora", {"head": "cls"})
    with pytest.raises(ConfigError, match="label set"):
        classifier_objective([])


def test_run_with_the_classifier_head_learns_the_toy_task(tmp_path, tiny_model_dir):
    data = write_chat_jsonl(tmp_path / "data.jsonl", toy_classification_rows(12))
    result = run_tiny(tmp_path / "run", tiny_run_overrides(
        tiny_model_dir, data, **{"backend.head": "classifier", "eval.mode": "score", "exporters": "[adapter]",
                                 "backend.epochs": 6, "backend.lr": 2e-2, "backend.early_stopping_patience": "null"}))
    assert result.ok, result.error
    assert result.metrics["values"]["accuracy"] == 1.0
    train = json.loads((tmp_path / "run" / "metrics.json").read_text())["train"]
    assert train["monitor"] == "val/macro_f1" and train["best_score"] == 1.0  # in-loop validation via the head
    preds = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert all(p["predicted"] in LABELS and set(p["scores"]) == set(LABELS) for p in preds)
    # The adapter export carries the head and was verified by reloading (class logits equal).
    assert result.exports["adapter"]["verified"] is True
    adapter = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]
