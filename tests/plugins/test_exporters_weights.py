"""Weight exporters (adapter, merged, gguf): each artefact reloads, matches the in-memory model, and a
tampered artefact fails verification without being left in place; exports made later from a run dir."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ftframe.api import ExportContext
from ftframe.config import ConfigError
from ftframe.engine.export import export_saved_run, parse_exporter_overrides, saved_export_context
from ftframe.engine.saved_run import load_saved_run
from ftframe.engine.verify import VerificationFailed


@pytest.fixture(scope="module")
def run_dir(finished_run_copy) -> Path:
    return finished_run_copy("exports")


@pytest.fixture(scope="module")
def ctx(run_dir) -> ExportContext:
    return saved_export_context(load_saved_run(run_dir))


def exporter(registry, name: str, **options):
    return registry.create("exporter", name, options)


def prompt_ids(tok, ctx: ExportContext) -> list[torch.Tensor]:
    from ftframe.engine.chat import render

    return [torch.tensor([tok(render(tok, p.prompt, generation_prompt=True), add_special_tokens=False)["input_ids"]])
            for p in ctx.predictions[:3]]


def test_adapter_is_verified_exactly(run_dir):
    entry = json.loads((run_dir / "manifest.json").read_text())["exports"]["adapter"]
    assert entry["verified"] is True
    v = entry["verification"]
    assert v["precision"] == "exact" and v["max_abs_logit_diff"] == 0.0 and v["prompts"] == 4
    assert v["greedy_tokens_matched"] > 0 and v["greedy_near_ties"] == 0


def test_merged_loads_without_peft_and_matches(tmp_path, registry, ctx):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ctx = ExportContext(**{**ctx.__dict__, "run_dir": tmp_path})
    res = exporter(registry, "merged").export(ctx)
    out = tmp_path / "merged"
    assert res.verified is True and res.paths == [str(out)]
    assert res.details["verification"]["max_rel_logit_diff"] <= 1e-4
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").is_file()
    assert (out / "chat_template.jinja").is_file() or "chat_template" in (out / "tokenizer_config.json").read_text()
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM" and tok.chat_template
    reference = ctx.trained.model
    with torch.no_grad():
        for ids in prompt_ids(tok, ctx):
            ref = reference(input_ids=ids).logits.float()
            got = model(input_ids=ids).logits
            assert (ref - got).abs().max() <= 0.05 * ref.abs().max()  # bf16-held reference vs fp32 merge
    assert not list(tmp_path.glob(".merged.*"))  # no temp folder left behind


@pytest.mark.parametrize("kind", ["f32", "f16"])
def test_gguf_is_verified_by_llama_cpp_and_loads_in_transformers(tmp_path, registry, ctx, kind):
    import gguf
    from transformers import AutoModelForCausalLM

    ctx = ExportContext(**{**ctx.__dict__, "run_dir": tmp_path})
    res = exporter(registry, "gguf", type=kind).export(ctx)
    path = tmp_path / f"model-{kind}.gguf"
    assert res.verified is True and res.paths == [str(path), str(tmp_path / f"model-{kind}.Modelfile")]
    v = res.details["verification"]
    assert v["runtime"].startswith("llama.cpp") and v["tokenizer"] == "identical"
    assert v["max_rel_logit_diff"] <= (1e-4 if kind == "f32" else 5e-3)
    assert v["greedy_tokens_matched"] + v["greedy_near_ties"] > 0 and v["chat_completion_matches"] == v["prompts"]
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    assert "output.weight" not in tensors  # tied embeddings
    want = gguf.GGMLQuantizationType.F32 if kind == "f32" else gguf.GGMLQuantizationType.F16
    assert tensors["blk.0.attn_q.weight"].tensor_type == want
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert reader.fields["tokenizer.ggml.pre"].contents() == "gpt-2"  # llama.cpp's name; 'gpt2' it refuses
    model = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32)
    assert model.config.num_key_value_heads == 2 and model.config.num_attention_heads == 4


def tamper_gguf(src: Path, dest: Path, tensor: str, scale: float) -> None:
    """Copy ``src`` to ``dest`` with one tensor multiplied by ``scale`` (same metadata)."""
    import gguf

    reader = gguf.GGUFReader(src)
    raw = bytearray(src.read_bytes())
    t = next(t for t in reader.tensors if t.name == tensor)
    data = np.frombuffer(raw, dtype=t.data.dtype, count=t.data.size, offset=int(t.data_offset)).copy()
    raw[int(t.data_offset): int(t.data_offset) + data.nbytes] = (data * scale).astype(data.dtype).tobytes()
    dest.write_bytes(bytes(raw))


def test_tampered_gguf_fails_llama_cpp_verification(tmp_path, registry, ctx):
    from ftframe_exporters.gguf_llama_cpp import LlamaCpp, compare

    ctx = ExportContext(**{**ctx.__dict__, "run_dir": tmp_path})
    exporter(registry, "gguf", type="f32", modelfile=False).export(ctx)
    bad = tmp_path / "bad.gguf"
    tamper_gguf(tmp_path / "model-f32.gguf", bad, "blk.1.ffn_down.weight", 1.05)
    runtime = LlamaCpp.load(bad, n_ctx=512, threads=1, what="tampered gguf")
    prompts = [p.prompt for p in ctx.predictions[:2]]
    reference = copy.deepcopy(ctx.trained.model).float()
    try:
        with pytest.raises(VerificationFailed, match="tampered gguf: llama.cpp's (logits differ|greedy answer)"):
            compare(runtime, reference, ctx.trained.tokenizer, prompts, [], exact=True, rtol=1e-4,
                    max_new_tokens=4, max_ppl_increase=0.001, what="tampered gguf")
    finally:
        runtime.close()


def test_mismatch_fails_the_export_and_leaves_no_artefact(tmp_path, registry, ctx, monkeypatch):
    """A merged export whose saved weights are corrupted on the way fails, and nothing is left at merged/."""
    import ftframe_exporters.merged as merged_mod

    real = merged_mod.merged_copy

    def corrupted(model):
        clone = real(model)
        with torch.no_grad():
            clone.model.layers[0].mlp.up_proj.weight.mul_(1.01)
        return clone

    monkeypatch.setattr(merged_mod, "merged_copy", corrupted)
    ctx = ExportContext(**{**ctx.__dict__, "run_dir": tmp_path})
    with pytest.raises(VerificationFailed, match="merged export .* logits differ"):
        exporter(registry, "merged").export(ctx)
    assert not (tmp_path / "merged").exists()
    assert list(tmp_path.iterdir()) == []


def test_tokenizer_mismatch_fails(registry, ctx, tiny_model_dir):
    from ftframe.engine.saved_run import load_pretrained
    from ftframe.engine.verify import verify_reload

    model, tok = load_pretrained(Path(tiny_model_dir))
    tok.chat_template = tok.chat_template.replace("<|im_start|>", "<|im_start|> ")
    with pytest.raises(VerificationFailed, match="tokenizer or chat template"):
        verify_reload(ctx.trained.model, ctx.trained.tokenizer, model, tok, [ctx.predictions[0].prompt],
                      precision="fp32", max_new_tokens=2, what="x")


def test_export_later_records_in_the_manifest(run_dir):
    done = export_saved_run(run_dir, ["exporters=[merged,gguf]", "exporters.gguf.type=f32"])
    assert set(done) == {"merged", "gguf"}
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["exports"]["merged"]["verified"] is True and m["exports"]["gguf"]["type"] == "f32"
    assert m["exports"]["gguf"]["exported"] and m["exports"]["adapter"]["verified"] is True
    assert (run_dir / "model-f32.gguf").is_file() and (run_dir / "merged" / "config.json").is_file()
    saved = load_saved_run(run_dir, prefer="merged")  # the merged export is usable on its own
    assert saved.weights == "merged" and type(saved.model).__name__ == "LlamaForCausalLM"


def test_export_overrides_are_checked():
    assert parse_exporter_overrides(["exporters=[merged]", "exporters.merged.dtype=fp16"], {}) == {
        "merged": {"dtype": "fp16"}}
    assert parse_exporter_overrides(["exporters=[adapter]"], {"adapter": {"dirname": "a"}}) == {
        "adapter": {"dirname": "a"}}
    with pytest.raises(ConfigError, match="name the exporters"):
        parse_exporter_overrides([], {})
    with pytest.raises(ConfigError, match="only exporters"):
        parse_exporter_overrides(["seed=1"], {})
    with pytest.raises(ConfigError, match="'gguf' is not in exporters"):
        parse_exporter_overrides(["exporters=[merged]", "exporters.gguf.type=f16"], {})


def test_bad_exporter_options_name_the_key(registry):
    with pytest.raises(ConfigError, match="exporters.gguf.type"):
        exporter(registry, "gguf", type="q4")


def test_model_card_lists_the_most_confidently_wrong_first_and_how_to_use(tmp_path, registry, ctx):
    from ftframe.api import Prediction

    preds = [Prediction(0, [{"role": "user", "content": "slightly wrong"}], "billing", "technical",
                        scores={"billing": -1.0, "technical": -0.9}),
             Prediction(1, [{"role": "user", "content": "right"}], "billing", "billing",
                        scores={"billing": -0.1, "technical": -3.0}),
             Prediction(2, [{"role": "user", "content": "badly wrong"}], "billing", "technical",
                        scores={"billing": -5.0, "technical": -0.2})]
    card_ctx = ExportContext(**{**ctx.__dict__, "run_dir": tmp_path, "predictions": preds})
    exporter(registry, "model_card").export(card_ctx)
    card = (tmp_path / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "2 of 3 test answers were wrong (most confidently wrong first)" in card
    assert card.index("badly wrong") < card.index("slightly wrong")
    assert "| right |" not in card
    for section in ("## Intended use", "## Data", "SHA-256", "## Evaluation", "Gate:", "## Use", "ftframe serve",
                    "## Reproduce", "Resolved configuration"):
        assert section in card
