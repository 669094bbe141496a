"""The gguf exporter judged by llama.cpp (llama-cpp-python): quantised types, files llama.cpp refuses,
the pre-tokenizer name, and the Ollama Modelfile (parsed, its template rendered against ftframe's)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from ftframe_exporters.ollama_modelfile import go_template, measure_layout, render_go_template

from ftframe.api import ExportContext
from ftframe.config import ConfigError
from ftframe.engine.export import saved_export_context
from ftframe.engine.saved_run import load_saved_run
from ftframe.engine.verify_options import VerificationFailed


@pytest.fixture(scope="module")
def ctx(finished_run_copy) -> ExportContext:
    return saved_export_context(load_saved_run(finished_run_copy("gguf_llama_cpp")))


def export(registry, ctx, tmp_path, **options):
    ctx = ExportContext(**{**ctx.__dict__, "run_dir": tmp_path})
    return registry.create("exporter", "gguf", options).export(ctx)


@pytest.mark.parametrize(("kind", "qtype"), [("q8_0", "Q8_0"), ("q4_k_m", None)])
def test_quantised_file_loads_in_llama_cpp_with_agreement_and_perplexity(tmp_path, registry, ctx, kind, qtype):
    import gguf

    # the tiny random model's rows (32 wide) fit no k-quant block, so llama.cpp falls back per tensor
    res = export(registry, ctx, tmp_path, type=kind, max_ppl_increase=0.5)
    path = tmp_path / f"model-{kind}.gguf"
    v = res.details["verification"]
    assert res.verified is True and path.is_file() and res.details["bytes"] == path.stat().st_size
    assert v["loads"] is True and v["tokenizer"] == "identical" and v["chat_template"] == "identical"
    assert 0.0 <= v["greedy_agreement"] <= 1.0 and v["greedy_tokens"] == 4 * 16
    assert v["ppl_examples"] > 0 and v["ppl_ftframe"] > 1 and v["ppl_increase"] <= 0.5
    assert v["max_ppl_increase"] == 0.5 and v["logits_rtol"] is None
    reader = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert types["blk.0.ffn_up.weight"] not in ("F32", "F16")  # quantised by llama.cpp
    if qtype:
        assert types["blk.0.attn_q.weight"] == qtype
    f32 = export(registry, ctx, tmp_path / "f32", type="f32", modelfile=False)
    assert res.details["bytes"] < 0.5 * f32.details["bytes"]


def test_perplexity_over_the_stated_bound_fails_and_leaves_nothing(tmp_path, registry, ctx):
    with pytest.raises(VerificationFailed, match=r"perplexity on \d+ test examples rises .* more than the allowed 0%"):
        export(registry, ctx, tmp_path, type="q4_0", max_ppl_increase=0.0)
    assert list(tmp_path.iterdir()) == []


def test_a_file_llama_cpp_refuses_is_a_failed_export(tmp_path, registry, ctx, monkeypatch):
    """The old exporter's ``tokenizer.ggml.pre = gpt2``: llama.cpp says why, and no file is left."""
    import ftframe_exporters.gguf_writer as writer

    real = writer.build_vocab

    def old_name(*args, **kwargs):
        vocab = real(*args, **kwargs)
        vocab.pre = "gpt2"
        return vocab

    monkeypatch.setattr(writer, "build_vocab", old_name)
    with pytest.raises(VerificationFailed, match="llama.cpp refuses to load the file .*unknown pre-tokenizer type: 'gpt2'"):
        export(registry, ctx, tmp_path, type="f16")
    assert list(tmp_path.iterdir()) == []


def test_pre_tokenizer_names_follow_llama_cpp():
    from ftframe_exporters.gguf_writer import LLAMA3_SPLIT, pre_from_structure

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert pre_from_structure(byte_level) == "gpt-2"
    digits = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, byte_level]}
    assert pre_from_structure(digits) == "smollm"
    llama3 = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated"},
        {**byte_level, "use_regex": False}]}
    assert pre_from_structure(llama3) == "llama-bpe"
    assert pre_from_structure({"type": "Whitespace"}) is None
    assert pre_from_structure({**byte_level, "add_prefix_space": True}) is None


def test_bad_type_and_bound_name_the_key(registry):
    with pytest.raises(ConfigError, match="exporters.gguf.type: 'q4' is not one of"):
        registry.create("exporter", "gguf", {"type": "q4"})
    with pytest.raises(ConfigError, match="exporters.gguf.max_ppl_increase"):
        registry.create("exporter", "gguf", {"type": "q8_0", "max_ppl_increase": -1})


# ----------------------------------------------------------------------------- the Ollama Modelfile
def parse_modelfile(text: str) -> dict[str, list[str]]:
    """Ollama's Modelfile grammar as far as the exporter writes it: ``COMMAND value`` lines, values in
    ``\"\"\"...\"\"\"`` (multi-line), ``"..."`` or bare; PARAMETER values are ``name value``."""
    out: dict[str, list[str]] = {}
    for m in re.finditer(r'^(\w+) (?:"""(.*?)"""|([^\n]*))$', text, re.MULTILINE | re.DOTALL):
        command, value = m.group(1).upper(), m.group(2) if m.group(2) is not None else m.group(3)
        out.setdefault(command, []).append(value)
    return out


def test_modelfile_template_renders_ftframe_prompts(tmp_path, registry, ctx):
    from ftframe.engine.chat import render

    res = export(registry, ctx, tmp_path, type="q8_0", max_ppl_increase=0.5)
    text = (tmp_path / "model-q8_0.Modelfile").read_text(encoding="utf-8")
    assert res.paths[1] == str(tmp_path / "model-q8_0.Modelfile")
    mf = parse_modelfile(text)
    assert mf["FROM"] == ["./model-q8_0.gguf"] and (tmp_path / mf["FROM"][0]).is_file()
    params = [shlex.split(p) for p in mf["PARAMETER"]]
    assert ["stop", "<|im_end|>"] in params and ["temperature", "0"] in params and ["repeat_penalty", "1"] in params
    assert "SYSTEM" not in mf  # the tiny model's ChatML template adds no default system prompt
    tok = ctx.trained.tokenizer
    conversation = [{"role": "system", "content": "Classify."}, {"role": "user", "content": "Meine Rechnung?"},
                    {"role": "assistant", "content": "billing"}, {"role": "user", "content": "Und {{ das }}?"}]
    (template,) = mf["TEMPLATE"]
    assert render_go_template(template, conversation) == render(tok, conversation, generation_prompt=True)
    for p in ctx.predictions[:3]:
        assert render_go_template(template, p.prompt) == render(tok, p.prompt, generation_prompt=True)


SMOLLM_LIKE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
               "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
               "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
PER_ROLE = ("{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>{{ m['content'] }}<</SYS>>\n"
            "{% elif m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]{% else %} {{ m['content'] }}</s>"
            "{% endif %}{% endfor %}")


def jinja(template: str):
    from jinja2 import Environment

    compiled = Environment().from_string(template)
    return lambda messages, generation_prompt: compiled.render(messages=messages, add_generation_prompt=generation_prompt)


def test_default_system_prompt_becomes_SYSTEM_and_ollama_prepends_it():
    from ftframe_exporters.ollama_modelfile import check_template, ollama_messages

    render = jinja(SMOLLM_LIKE)
    layout = measure_layout(render)
    assert layout.default_system == "You are a helpful AI assistant"
    template = go_template(layout)
    conv = [{"role": "user", "content": "Hi"}]
    assert render_go_template(template, ollama_messages(conv, layout.default_system)) == render(conv, True)
    assert check_template(template, layout.default_system, render, [conv]) == 1


def test_per_role_wrappers_get_an_if_chain():
    render = jinja(PER_ROLE)
    layout = measure_layout(render)
    template = go_template(layout)
    assert '{{ if eq .Role "system" }}' in template and layout.default_system is None
    conv = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"},
            {"role": "user", "content": "V"}]
    assert render_go_template(template, conv) == render(conv, True)


def test_a_template_that_is_no_per_message_wrapper_is_refused():
    from ftframe.errors import FtframeError

    merged = "{{ messages | map(attribute='content') | join(' / ') }}"
    with pytest.raises(FtframeError, match="modelfile=false"):
        measure_layout(jinja(merged))


def test_go_template_subset_semantics():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert render_go_template("x  {{- range .Messages }}[{{ .Content }}]{{ end -}}  \n y", msgs) == "x[a][b]y"
    chain = '{{ range .Messages }}{{ if eq .Role "user" }}U{{ else if eq .Role "x" }}X{{ else }}O{{ end }}{{ end }}'
    assert render_go_template(chain, msgs) == "UO"
    assert render_go_template('{{ "{{" }} .Role', []) == "{{ .Role"
    with pytest.raises(ValueError, match="unsupported action"):
        render_go_template("{{ .System }}", msgs)
    with pytest.raises(ValueError, match="missing"):
        render_go_template("{{ range .Messages }}", msgs)


def test_modelfile_text_quotes_values(tmp_path):
    from ftframe_exporters.ollama_modelfile import modelfile_text

    text = modelfile_text("m.gguf", "T", default_system='say "hi"', stops=['a"b'], parameters={"num_ctx": 8})
    mf = parse_modelfile(text)
    assert mf["SYSTEM"] == ['say "hi"'] and shlex.split(mf["PARAMETER"][0]) == ["stop", 'a"b']
    assert Path(mf["FROM"][0]).name == "m.gguf"
