"""backend.head=classifier: a linear head over the labels on a causal LM, trained with the adapter."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from ftframe_backends.classifier import (
    HEAD_NAME,
    ClassifierPredictor,
    classifier_objective,
    imprint_head,
    sequence_classifier,
)
from transformers import AutoModelForCausalLM

from ftframe.api import Example, LoadedModel, TaskInfo
from ftframe.engine.saved_run import RunDirError, load_saved_run
from ftframe.errors import ConfigError, DataError
from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

LABELS = ["billing", "technical"]


def classifier_model(registry, tiny_model_dir, tiny_tokenizer):
    from peft import get_peft_model

    backend = registry.create("backend", "lora", {"head": "classifier", "r": 4, "alpha": 8})
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = sequence_classifier(base, LABELS, tiny_tokenizer.pad_token_id)
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


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("classifier_run")
    data = write_chat_jsonl(tmp / "data.jsonl", toy_classification_rows(12))
    result = run_tiny(tmp / "run", tiny_run_overrides(
        tiny_model_dir, data, **{"backend.head": "classifier", "eval.mode": "score", "exporters": "[adapter,merged,model_card]",
                                 "backend.epochs": 6, "backend.lr": 2e-2, "backend.early_stopping_patience": "null"}))
    return result, tmp / "run"


def test_run_with_the_classifier_head_learns_the_toy_task(classifier_run):
    result, run = classifier_run
    assert result.ok, result.error
    assert result.metrics["values"]["accuracy"] == 1.0
    train = json.loads((run / "metrics.json").read_text())["train"]
    assert train["monitor"] == "val/macro_f1" and train["best_score"] == 1.0  # in-loop validation via the head
    assert train["packed_batches"] == 0  # the head reads each row's last token: padded batches
    preds = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert all(p["predicted"] in LABELS and set(p["scores"]) == set(LABELS) for p in preds)
    # The adapter export carries the head and was verified by reloading (class logits equal).
    assert result.exports["adapter"]["verified"] is True
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS" and "score" in adapter["modules_to_save"]


def test_saved_classifier_run_loads_with_its_head(classifier_run):
    """ftframe eval/predict/serve of a head=classifier run use the trained head, not the LM head."""
    _, run = classifier_run
    saved = load_saved_run(run)
    predictor = saved.predictor()
    assert isinstance(predictor, ClassifierPredictor) and sorted(predictor.labels) == LABELS
    recorded = saved.predictions()
    table = predictor.score([ex.prompt for ex in saved.split("test")], list(recorded[0].scores))
    for row, pred in zip(table, recorded, strict=True):
        assert row == pytest.approx(list(pred.scores.values()), abs=0.05)  # bf16 base: batch-shape rounding
        assert list(pred.scores)[max(range(len(row)), key=row.__getitem__)] == pred.predicted


def test_merged_export_keeps_the_class_head_and_its_label_names(classifier_run):
    """The merged weights reload as a sequence classifier (verified against the run's model by class
    logits), name the labels in their config, and ``ftframe eval``'s loader answers through the head."""
    from transformers import AutoModelForSequenceClassification

    result, run = classifier_run
    assert result.exports["merged"]["verified"] is True
    config = json.loads((run / "merged" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert config["id2label"] == {"0": "billing", "1": "technical"}  # the task's labels, in the head's order
    card = (run / "MODEL_CARD.md").read_text()  # how to use it: no serving or GGUF for a class head
    assert "exporters=[merged]" in card and "ftframe serve" not in card and "exporters=[merged,gguf]" not in card
    model = AutoModelForSequenceClassification.from_pretrained(run / "merged")  # plain transformers, no peft
    assert model.score.weight.shape[0] == len(LABELS)
    saved = load_saved_run(run, prefer="merged")
    assert saved.weights == "merged" and not hasattr(saved.model, "peft_config")
    predictor = saved.predictor()
    assert isinstance(predictor, ClassifierPredictor) and predictor.labels == LABELS
    recorded = saved.predictions()
    table = predictor.score([ex.prompt for ex in saved.split("test")], list(recorded[0].scores))
    for row, pred in zip(table, recorded, strict=True):
        assert row == pytest.approx(list(pred.scores.values()), rel=0.02, abs=0.05)  # fp32 here, bf16 in the run
        assert list(pred.scores)[max(range(len(row)), key=row.__getitem__)] == pred.predicted


def test_exporting_a_classifier_run_to_gguf_later_is_refused_before_loading(classifier_run, monkeypatch):
    from ftframe.engine import export

    _, run = classifier_run

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the exporters were checked")

    monkeypatch.setattr(export, "load_saved_run", no_loading)
    with pytest.raises(ConfigError, match=r"exporters\.gguf: backend\.head=classifier .* GGUF"):
        export.export_saved_run(run, ["exporters=[gguf]"])


def test_merged_weights_with_other_label_names_are_refused(classifier_run, tmp_path):
    _, run = classifier_run
    copy = tmp_path / "swapped"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints"))
    config = json.loads((copy / "merged" / "config.json").read_text())
    config["id2label"] = {"0": "technical", "1": "billing"}
    (copy / "merged" / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunDirError, match=r"class head's labels \['technical', 'billing'\].*differ"):
        load_saved_run(copy, prefer="merged")


def test_saved_classifier_run_without_a_label_set_is_refused(classifier_run, tmp_path):
    _, run = classifier_run
    copy = tmp_path / "nolabels"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints"))
    metrics = json.loads((copy / "metrics.json").read_text())
    del metrics["data"]["labels"]
    (copy / "metrics.json").write_text(json.dumps(metrics))
    assert load_saved_run(run).task.labels  # the original records them
    with pytest.raises(ConfigError, match="label set"):
        load_saved_run(copy)


def _cli(command: str, *args: str):
    return subprocess.run([sys.executable, "-m", "ftframe.commands", command, *args],
                          capture_output=True, text=True, timeout=600, check=False)


def _eval_cli(*args: str):
    return _cli("eval", *args)


def test_predict_and_serve_of_a_classifier_run(classifier_run, tmp_path):
    _, run = classifier_run
    inputs = write_chat_jsonl(tmp_path / "in.jsonl", [("invoice 99 charged twice please refund", "billing"),
                                                        ("app crash error 77 after update", "technical")])
    proc = _cli("predict", str(run), "--input", str(inputs), "--output", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["predicted"] for r in rows] == ["billing", "technical"]  # the trained head answers
    proc = _cli("serve", str(run), "--port", "0")
    assert proc.returncode == 2 and "no LM head to generate text with" in proc.stderr + proc.stdout


def test_eval_ensemble_of_runs(classifier_run, tmp_path):
    """Two members identical to one run: the ensemble's averaged log-probabilities are the run's own."""
    _, run = classifier_run
    twin = tmp_path / "twin"
    shutil.copytree(run, twin, ignore=shutil.ignore_patterns("checkpoints"))
    out = tmp_path / "ens"
    proc = _eval_cli(str(run), str(twin), "eval.mode=generate", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "eval.mode=generate becomes score" in proc.stdout
    evaluated = json.loads((out / "manifest.json").read_text())["evaluated"]
    assert evaluated["ensemble"] == [str(run), str(twin)]
    single = tmp_path / "single"
    assert _eval_cli(str(run), "--out", str(single)).returncode == 0
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    alone = [json.loads(x) for x in (single / "predictions.jsonl").read_text().splitlines()]
    assert [r["predicted"] for r in rows] == [r["predicted"] for r in alone]
    for r, a in zip(rows, alone, strict=True):
        assert list(r["scores"].values()) == pytest.approx(list(a["scores"].values()), abs=1e-5)


def test_ensemble_refuses_mismatched_members(classifier_run, finished_run_copy, tmp_path):
    _, run = classifier_run
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("checkpoints"))
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["data"]["labels"] = ["billing", "shipping"]
    (other / "metrics.json").write_text(json.dumps(metrics))
    from ftframe.engine.ensemble import ensemble_labels

    with pytest.raises(RunDirError, match=f"{other}: its labels differ.*'shipping'"):
        ensemble_labels([run, other])
    lm_run = finished_run_copy("ensemble_lm")  # the same toy labels, answered by the LM head
    assert ensemble_labels([run, lm_run]) == json.loads((run / "metrics.json").read_text())["data"]["labels"]
    config = (lm_run / "config.yaml").read_text()
    (lm_run / "config.yaml").write_text(config.replace("type: classification", "type: generation", 1))
    with pytest.raises(RunDirError, match=f"{lm_run}: .*'generation'.*Ensemble classification runs only"):
        ensemble_labels([run, lm_run])
    proc = _eval_cli(str(run), str(tmp_path / "missing_run"))
    assert proc.returncode == 2 and "missing_run: neither a finished run dir" in proc.stderr + proc.stdout


def test_imprinted_head_starts_from_the_class_means(registry, tiny_model_dir, tiny_tokenizer):
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    labels = ["billing", "technical", "unused"]
    model = sequence_classifier(base, labels, tiny_tokenizer.pad_token_id)
    random_row = getattr(model, HEAD_NAME).weight[2].clone()
    rows = toy_classification_rows(3)
    examples = [Example([{"role": "user", "content": t}, {"role": "assistant", "content": y}]) for t, y in rows]
    items = classifier_objective(labels).encode(tiny_tokenizer, examples, 512).items
    assert imprint_head(model, items, tiny_tokenizer.pad_token_id, batch_size=4) == 2
    w = getattr(model, HEAD_NAME).weight.detach()
    assert torch.equal(w[2], random_row)  # a label without examples keeps its random row
    target = model.config.initializer_range * model.config.hidden_size ** 0.5
    assert torch.allclose(w[:2].norm(dim=-1), torch.full((2,), target), rtol=1e-4)
    with torch.no_grad():
        states = [model.model(input_ids=torch.tensor([it.input_ids])).last_hidden_state[0, -1] for it in items]
    states = torch.stack(states)
    mean_state = states.mean(0)
    assert torch.allclose(w[:2] @ mean_state, torch.zeros(2), atol=1e-4)  # the shared direction is out
    by_label = [states[[i for i, it in enumerate(items) if it.label == k]].mean(0) for k in range(2)]
    centred = torch.stack(by_label) - torch.stack(by_label).mean(0)
    assert torch.nn.functional.cosine_similarity(w[0], centred[0], dim=0) > 0.5  # row 0 points to class 0
    logits = model(input_ids=torch.tensor([items[0].input_ids])).logits[0]
    assert logits[:2].argmax().item() == items[0].label  # the head already classifies its own example


def test_backend_imprints_the_head_when_asked(registry, tiny_model_dir, tiny_tokenizer):
    rows = toy_classification_rows(2)
    examples = [Example([{"role": "user", "content": t}, {"role": "assistant", "content": y}]) for t, y in rows]
    job = SimpleNamespace(task=TaskInfo(name="toy", type="classification", labels=LABELS), train=examples)
    heads = {}
    for init in ("random", "imprint"):
        torch.manual_seed(0)
        backend = registry.create("backend", "lora", {"head": "classifier", "head_init": init, "r": 4, "alpha": 8,
                                                      "precision": "fp32"})
        backend.objective(job)
        loaded = LoadedModel(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tiny_tokenizer, "tiny")
        model = backend.prepare(loaded)
        heads[init] = next(p for n, p in model.named_parameters() if ".score." in n and p.requires_grad).detach()
    target = loaded.model.config.initializer_range * heads["imprint"].shape[1] ** 0.5
    assert torch.allclose(heads["imprint"].norm(dim=-1), torch.full((2,), target), rtol=1e-4)
    assert not torch.allclose(heads["imprint"], heads["random"])
    with pytest.raises(ConfigError, match="backend.head_init=imprint .*needs backend.head=classifier"):
        registry.create("backend", "lora", {"head_init": "imprint"})
    with pytest.raises(ConfigError, match="backend.head_init"):
        registry.create("backend", "lora", {"head": "classifier", "head_init": "names"})
