"""The embedded SmolLM2-135M-Instruct (bf16 base + a LoRA adapter, as the triage task trains it) exported
to GGUF f16 and loaded by llama.cpp: its metadata taken from the model's source GGUF (pre-tokenizer
``smollm``), its answers and logits verified against the in-memory model (slow: ~1-2 minutes)."""

from __future__ import annotations

import json

import pytest
import torch

from ftframe.api import ExportContext, Prediction, TrainedModel
from ftframe.engine.predict import LocalPredictor

pytestmark = pytest.mark.slow


def test_gguf_f16_of_the_embedded_model_matches(tmp_path, registry, repo_root):
    from peft import LoraConfig, get_peft_model

    loaded = registry.create("model_source", "smollm2", {}).load(dtype="bf16")
    torch.manual_seed(0)
    model = get_peft_model(loaded.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"],
                                                    init_lora_weights=False, task_type="CAUSAL_LM"),
                           autocast_adapter_dtype=True)
    rows = [json.loads(line) for line in
            (repo_root / "plugins/ftframe_datasets/triage/tickets.jsonl").read_text(encoding="utf-8").splitlines()[:3]]
    preds = [Prediction(i, r["messages"][:-1], r["messages"][-1]["content"], "") for i, r in enumerate(rows)]
    trained = TrainedModel(predictor=LocalPredictor(model, loaded.tokenizer), model=model, tokenizer=loaded.tokenizer)
    ctx = ExportContext(run_dir=tmp_path, trained=trained, config={"task": {"name": "triage"}, "model": {"name": "smollm2"}}, metrics={},
                        baseline_metrics=None, gate={}, data={}, predictions=preds, manifest={})
    res = registry.create("exporter", "gguf", {"type": "f16", "verify_prompts": 3, "verify_tokens": 8}).export(ctx)
    v = res.details["verification"]
    print(json.dumps(v))
    assert res.verified is True and v["reference_precision"] == "bf16" and v["max_rel_logit_diff"] <= 5e-3
    assert v["runtime"].startswith("llama.cpp") and v["tokenizer"] == "identical" and v["chat_template"] == "identical"
    assert res.details["tokenizer_pre"] == "smollm" and res.details["metadata"]["metadata"] == "source GGUF"
    assert (tmp_path / "model-f16.Modelfile").is_file()
    assert (tmp_path / "model-f16.gguf").stat().st_size > 200e6
