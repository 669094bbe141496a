"""LocalPredictor: exact label scores (KV-cache reuse, candidate tries in one pass), batch-invariant greedy
generation (a shared prompt prefix run once, ended rows leaving the batch) equal to transformers' own."""

from __future__ import annotations

import pytest
import torch

from ftframe.engine import decoding as decoding_module
from ftframe.engine import predict as predict_module
from ftframe.engine.chat import encode, prompt_ids
from ftframe.engine.decoding import Row, decode_all, shared_prefix_len
from ftframe.engine.predict import CandidateTree, LocalPredictor

PROMPTS = [
    [{"role": "user", "content": "invoice"}],
    [{"role": "system", "content": "Classify."},
     {"role": "user", "content": "my app crash error 500 after the update yesterday, please help"}],
    [{"role": "user", "content": "Ich möchte mein Abo kündigen."}],
    [{"role": "user", "content": "where is my parcel"}],
    [{"role": "user", "content": "x"}],
]
CANDIDATES = ["billing", "technical support", "a", "privacy"]
SYSTEM = {"role": "system", "content": "You are a banking support assistant. Reply with the intent label only."}
SAME_SYSTEM = [[SYSTEM, {"role": "user", "content": text}] for text in
               ("card not arrived", "why was I charged twice for one payment at the shop yesterday", "pin?",
                "how do I top up by bank transfer", "x")]
"""Prompts that begin alike (a test set's system prompt): batches of them run the common prefix once."""


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    m.eval()
    return m


def reference_score(model, tok, prompt, candidate) -> float:
    """Sum of log-probs of the reply tokens (those training trains) from one unpadded full forward pass."""
    enc = encode(tok, list(prompt) + [{"role": "assistant", "content": candidate}])
    ids = torch.tensor([enc.input_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    positions = [k for k, lab in enumerate(enc.labels) if lab != -100]
    assert positions, "nothing trained in the reference"
    return float(sum(logp[k - 1, enc.input_ids[k]] for k in positions))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_score_equals_full_forward_log_likelihood(model, tiny_tokenizer, batch_size):
    got = torch.tensor(LocalPredictor(model, tiny_tokenizer, batch_size=batch_size).score(PROMPTS, CANDIDATES))
    ref = torch.tensor([[reference_score(model, tiny_tokenizer, p, c) for c in CANDIDATES] for p in PROMPTS])
    assert got.shape == (len(PROMPTS), len(CANDIDATES))
    assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()
    assert (got < 0).all()


# Candidates that begin alike share trie nodes; "card" is a prefix of the others' text.
SHARED_CANDIDATES = ["card arrival", "card delivery estimate", "card", "cash withdrawal", "card arrival"]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_candidates_with_shared_prefixes_score_exactly(tiny_model_dir, tiny_tokenizer, attention, batch_size):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention).eval()
    got = torch.tensor(LocalPredictor(model, tiny_tokenizer, batch_size=batch_size).score(PROMPTS, SHARED_CANDIDATES))
    ref = torch.tensor([[reference_score(model, tiny_tokenizer, p, c) for c in SHARED_CANDIDATES] for p in PROMPTS])
    assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()
    assert torch.equal(got[:, 0], got[:, 4])  # the same candidate twice: the same nodes, the same score


def test_score_in_passes_of_one_row_when_the_logits_would_not_fit(model, tiny_tokenizer, monkeypatch):
    whole = torch.tensor(LocalPredictor(model, tiny_tokenizer, batch_size=5).score(PROMPTS, SHARED_CANDIDATES))
    monkeypatch.setattr(predict_module, "SCORE_LOGITS_BYTES", 1)
    seen = []
    split = LocalPredictor(model, tiny_tokenizer, batch_size=5).score(PROMPTS, SHARED_CANDIDATES, progress=seen.append)
    assert seen == [1] * len(PROMPTS)
    assert torch.allclose(torch.tensor(split), whole, atol=1e-4)


def test_loglik_of_one_reply_per_prompt_equals_the_full_forward(model, tiny_tokenizer):
    replies = ["billing", "technical support for the app", "a", "card delivery", "x y z"]
    got = LocalPredictor(model, tiny_tokenizer, batch_size=3).loglik(PROMPTS, replies)
    for (ll, n), prompt, reply in zip(got, PROMPTS, replies):
        assert ll == pytest.approx(reference_score(model, tiny_tokenizer, prompt, reply), abs=1e-4)
        trained = encode(tiny_tokenizer, list(prompt) + [{"role": "assistant", "content": reply}]).labels
        assert n == sum(label != -100 for label in trained)  # the reply's tokens, as training counts them


def test_candidate_tree_shares_prefixes_and_each_node_sees_its_ancestors():
    tree = CandidateTree([[5, 6, 7], [5, 6, 8, 9], [5], [4, 6]])
    # nodes: [5], [5,6], [5,6,8], [4]; the candidates' last tokens need none
    assert tree.tokens == [5, 6, 8, 4] and tree.depth == [1, 2, 3, 1]
    assert tree.lengths == [3, 4, 1, 2]
    assert tree.ancestors.tolist() == [[True, False, False, False], [True, True, False, False],
                                       [True, True, True, False], [False, False, False, True]]
    steps = tree.steps.tolist()
    assert [s for s in steps if s[0] == 1] == [[1, -1, 5], [1, 0, 6], [1, 1, 8], [1, 2, 9]]
    assert [s for s in steps if s[0] == 2] == [[2, -1, 5]]


def test_shared_prefix_leaves_a_token_of_every_row():
    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the first row keeps its last token
    assert shared_prefix_len([[1, 2, 3]]) == 0  # one row: nothing to share
    assert shared_prefix_len([[7, 2], [8, 2]]) == 0


def test_score_reports_progress(model, tiny_tokenizer):
    seen = []
    LocalPredictor(model, tiny_tokenizer, batch_size=2).score(PROMPTS, CANDIDATES[:2], progress=seen.append)
    assert sum(seen) == len(PROMPTS)


def test_batched_generation_equals_one_at_a_time(model, tiny_tokenizer):
    lengths = {len(prompt_ids(tiny_tokenizer, p)) for p in PROMPTS}
    assert len(lengths) == len(PROMPTS)  # every row of a batch is padded differently
    one = LocalPredictor(model, tiny_tokenizer, batch_size=1).generate(PROMPTS, max_new_tokens=6)
    four = LocalPredictor(model, tiny_tokenizer, batch_size=4).generate(PROMPTS, max_new_tokens=6)
    assert len(four) == len(PROMPTS)
    assert four == one
    assert any(answer for answer in one)  # something was generated


def test_a_shared_prompt_prefix_runs_once_and_changes_no_answer(model, tiny_tokenizer, monkeypatch):
    predictor = LocalPredictor(model, tiny_tokenizer, batch_size=5)
    rows = predictor._encode_prompts(SAME_SYSTEM)
    assert shared_prefix_len(rows) >= decoding_module.MIN_SHARED_PREFIX  # the chat template's opening
    shapes, heads = [], []
    hook = model.get_decoder().register_forward_pre_hook(
        lambda m, args, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    head = model.get_output_embeddings().register_forward_hook(lambda m, args, out: heads.append(out.shape[:2]))
    try:
        with torch.no_grad():
            mask, cache, logits = predictor._prompt_pass(rows)
        shared = shared_prefix_len(rows)
        assert shapes == [(1, shared), (len(rows), max(map(len, rows)) - shared)]  # the prefix once, then the rest
        assert heads == [(len(rows), 1)]  # the LM head runs for each row's last position only, not the prefix
        assert cache.get_seq_length() == mask.shape[1] and mask.sum(1).tolist() == [len(r) for r in rows]
        assert logits.shape[0] == len(rows)
        shared_answers = predictor.generate(SAME_SYSTEM, max_new_tokens=6)
        shared_scores = predictor.score(SAME_SYSTEM, SHARED_CANDIDATES)
        monkeypatch.setattr(decoding_module, "MIN_SHARED_PREFIX", 10**6)
        shapes.clear()
        with torch.no_grad():
            predictor._prompt_pass(rows)
        assert shapes == [(len(rows), max(map(len, rows)))]
    finally:
        hook.remove()
        head.remove()
    assert predictor.generate(SAME_SYSTEM, max_new_tokens=6) == shared_answers and any(shared_answers)
    unshared = predictor.score(SAME_SYSTEM, SHARED_CANDIDATES)
    assert torch.allclose(torch.tensor(unshared), torch.tensor(shared_scores), atol=1e-4)
    ref = [[reference_score(model, tiny_tokenizer, p, c) for c in SHARED_CANDIDATES] for p in SAME_SYSTEM]
    assert torch.allclose(torch.tensor(shared_scores), torch.tensor(ref), atol=1e-4)


def test_a_model_without_a_separate_decoder_runs_its_prefix_for_one_position_only(model, tiny_tokenizer,
                                                                                   monkeypatch):
    predictor = LocalPredictor(model, tiny_tokenizer, batch_size=5)
    rows = predictor._encode_prompts(SAME_SYSTEM)
    with torch.no_grad():
        _, _, expected = predictor._prompt_pass(rows)
    monkeypatch.setattr(model, "get_decoder", lambda: model)  # what transformers returns when there is none
    heads = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, args, out: heads.append(out.shape[:2]))
    try:
        with torch.no_grad():
            _, _, logits = predictor._prompt_pass(rows)
    finally:
        hook.remove()
    assert heads == [(1, 1), (len(rows), 1)]  # the prefix's head for one position, not all of them
    assert torch.allclose(logits, expected, atol=1e-5)


class EndsAt:
    """The tokenizer, with another end token (one the tiny random model does produce)."""

    def __init__(self, tokenizer, eos_token_id: int):
        self._tokenizer, self.eos_token_id = tokenizer, eos_token_id

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        return self._tokenizer(*args, **kwargs)


def hf_greedy(model, tokenizer, prompt, max_new_tokens: int, eos: int) -> list[int]:
    ids = torch.tensor([prompt_ids(tokenizer, prompt)])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                         do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
    tokens = out[0, ids.shape[1]:].tolist()
    return tokens[:tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.mark.parametrize("prompts", [PROMPTS, SAME_SYSTEM], ids=["mixed", "same-system"])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_greedy_answers_equal_transformers_generate(model, tiny_tokenizer, batch_size, prompts, monkeypatch):
    """The reference is transformers' ``generate`` on each unpadded prompt. The end token is one the model
    produces, so rows end at different steps and leave the batch while others go on."""
    free = [hf_greedy(model, tiny_tokenizer, p, 8, tiny_tokenizer.eos_token_id) for p in prompts]
    eos = free[0][2]
    tokenizer = EndsAt(tiny_tokenizer, eos)
    monkeypatch.setattr(model.generation_config, "eos_token_id", eos)
    want = [hf_greedy(model, tiny_tokenizer, p, 8, eos) for p in prompts]
    assert len({len(w) for w in want}) > 1 and min(len(w) for w in want) < 8  # rows end apart
    predictor = LocalPredictor(model, tokenizer, batch_size=batch_size)
    rows = [Row(ids, 8) for ids in predictor._encode_prompts(prompts)]
    decode_all(predictor.decoder(), rows, batch_size=batch_size)
    assert [r.tokens for r in rows] == want
    texts = predictor.generate(prompts, max_new_tokens=8)
    assert texts == [tiny_tokenizer.decode(w, skip_special_tokens=True).strip() for w in want]
    assert predictor.generate(prompts[:2], max_new_tokens=0) == ["", ""]


def test_generation_restores_training_mode(model, tiny_tokenizer):
    model.train()
    try:
        LocalPredictor(model, tiny_tokenizer).generate(PROMPTS[:2], max_new_tokens=2)
        assert model.training
    finally:
        model.eval()


def test_head_guard_keeps_results_and_is_idempotent(tiny_model_dir):
    """guard_head_input only changes the memory layout of the head input, not the logits (beyond rounding)."""
    import torch
    from transformers import AutoModelForCausalLM

    from ftframe.engine.predict import guard_head_input

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ids = torch.randint(5, 300, (3, 11))
    with torch.no_grad():
        before = model(input_ids=ids, logits_to_keep=1).logits
        guard_head_input(model)
        guard_head_input(model)
        after = model(input_ids=ids, logits_to_keep=1).logits
    assert torch.allclose(before, after, atol=1e-5, rtol=1e-5)
    assert len(model.get_output_embeddings()._forward_pre_hooks) == 1


@pytest.fixture
def bf16_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()


def test_fp32_evaluation_of_a_bf16_model_is_batch_invariant_and_restores_the_dtype(bf16_model, tiny_tokenizer):
    before = {n: p.detach().clone() for n, p in bf16_model.named_parameters()}
    one = LocalPredictor(bf16_model, tiny_tokenizer, batch_size=1).generate(PROMPTS, max_new_tokens=6)
    four = LocalPredictor(bf16_model, tiny_tokenizer, batch_size=4).generate(PROMPTS, max_new_tokens=6)
    assert four == one and any(one)  # auto generates in fp32
    scores1 = LocalPredictor(bf16_model, tiny_tokenizer, batch_size=1, precision="fp32").score(PROMPTS, CANDIDATES)
    scores3 = LocalPredictor(bf16_model, tiny_tokenizer, batch_size=3, precision="fp32").score(PROMPTS, CANDIDATES)
    assert torch.allclose(torch.tensor(scores1), torch.tensor(scores3), atol=1e-4)
    for name, p in bf16_model.named_parameters():  # back in bf16, bit for bit
        assert p.dtype == torch.bfloat16 and torch.equal(p, before[name]), name


def test_evaluating_upcasts_only_for_the_duration_and_leaves_quantised_models_alone(bf16_model):
    from ftframe.engine.predict import evaluating

    bf16_model.train()
    with evaluating(bf16_model, "fp32"):
        assert {p.dtype for p in bf16_model.parameters()} == {torch.float32} and not bf16_model.training
    assert {p.dtype for p in bf16_model.parameters()} == {torch.bfloat16} and bf16_model.training
    with evaluating(bf16_model, "model"):
        assert {p.dtype for p in bf16_model.parameters()} == {torch.bfloat16}
    quantised = torch.nn.Module()
    quantised.packed = torch.nn.Parameter(torch.zeros(4, dtype=torch.uint8), requires_grad=False)
    quantised.norm = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    with evaluating(quantised, "fp32"):
        assert quantised.norm.dtype == torch.bfloat16  # kernels of quantised layers expect their dtypes
    with pytest.raises(RuntimeError), evaluating(bf16_model, "fp32"):
        raise RuntimeError("a failing evaluation")
    assert {p.dtype for p in bf16_model.parameters()} == {torch.bfloat16}  # restored on errors too


def test_evaluation_merges_a_peft_adapter_for_the_duration_and_restores_it_bit_for_bit(
        bf16_model, tiny_tokenizer, tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftframe.engine.predict import evaluating

    model = get_peft_model(bf16_model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"),
                           autocast_adapter_dtype=True)
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)  # a trained-looking adapter (B starts at zero)
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(5, 300, (2, 9))
    layers = [m for m in model.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]
    # What the unmerged adapter computes in fp32: the reference for the merged weights.
    with torch.no_grad():
        unmerged = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                  LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
        unmerged.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
        reference = unmerged.eval()(input_ids=ids).logits
    with evaluating(model, "fp32"), torch.no_grad():
        assert layers and all(m.merged for m in layers)
        merged = model(input_ids=ids).logits
    assert torch.allclose(merged, reference, atol=1e-4)
    assert not any(m.merged for m in layers) and model.training
    for name, p in model.named_parameters():
        assert p.dtype == before[name].dtype and torch.equal(p, before[name]), name
    with evaluating(model, "model"), torch.no_grad():  # merged in bf16, put back from a copy
        assert all(m.merged for m in layers)
        merged_bf16 = model(input_ids=ids).logits
    assert not any(m.merged for m in layers) and model.training
    for name, p in model.named_parameters():
        assert p.dtype == before[name].dtype and torch.equal(p, before[name]), name
    with torch.no_grad():  # the unmerged adapter on the bf16 weights: equal within bf16 rounding
        unmerged_bf16 = model.eval()(input_ids=ids).logits
    model.train()
    assert (merged_bf16.float() - unmerged_bf16.float()).abs().max() < 0.05 * unmerged_bf16.float().abs().max()
    one = LocalPredictor(model, tiny_tokenizer, batch_size=1).generate(PROMPTS, max_new_tokens=6)
    assert LocalPredictor(model, tiny_tokenizer, batch_size=4).generate(PROMPTS, max_new_tokens=6) == one


def test_an_adapter_on_fp32_weights_is_merged_from_a_copy_unless_memory_or_its_state_forbids(
        tiny_model_dir, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftframe.engine.predict import evaluating

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    layers = [m for m in model.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]
    assert layers
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(5, 300, (2, 9))
    with torch.no_grad():
        unmerged = model.eval()(input_ids=ids).logits
    with evaluating(model, "fp32"), torch.no_grad():
        assert all(m.merged for m in layers)
        assert torch.allclose(model(input_ids=ids).logits, unmerged, atol=1e-5)
    for name, p in model.named_parameters():  # not unmerged by arithmetic (inexact in fp32): from the copy
        assert torch.equal(p, before[name]), name
    with model.disable_adapter(), evaluating(model, "fp32"):  # the base model is asked for: nothing merged
        assert not any(m.merged for m in layers)
    copy = sum(p.numel() * 4 for m in layers for p in m.get_base_layer().parameters(recurse=False))
    monkeypatch.setattr("ftframe.engine.memory.available_memory", lambda device: 2 * copy - 1)
    with evaluating(model, "fp32"):  # no room for the copy: evaluated unmerged
        assert not any(m.merged for m in layers)
    monkeypatch.setattr("ftframe.engine.memory.available_memory", lambda device: 2 * copy)
    with pytest.raises(RuntimeError), evaluating(model, "fp32"):
        assert all(m.merged for m in layers)
        raise RuntimeError("a failing evaluation")
    assert not any(m.merged for m in layers)  # put back on errors too
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    last = layers[-1]
    monkeypatch.setattr(last, "merge", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("cannot merge")))
    with pytest.raises(RuntimeError, match="cannot merge"), evaluating(model, "fp32"):
        pass
    assert not any(m.merged for m in layers)  # a merge that failed half-way is undone...
    for name, p in model.named_parameters():  # ...and the weights it had changed are put back
        assert torch.equal(p, before[name]), name
    monkeypatch.undo()
    model.merge_adapter()
    merged_weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    with evaluating(model, "fp32"):  # already merged (e.g. by the caller): left as it is
        assert all(m.merged for m in layers)
    assert all(m.merged for m in layers)
    for name, p in model.named_parameters():
        assert torch.equal(p, merged_weights[name]), name


def test_fp32_evaluation_falls_back_to_the_weights_dtype_when_the_upcast_would_not_fit(bf16_model, monkeypatch):
    from ftframe.engine.predict import evaluating

    needed = sum(p.numel() * 2 for p in bf16_model.parameters())
    monkeypatch.setattr("ftframe.engine.memory.available_memory", lambda device: 2 * needed - 1)
    with pytest.warns(RuntimeWarning, match=r"upcasting them to fp32 needs .* eval\.precision=model"), \
            evaluating(bf16_model, "fp32"):
        assert {p.dtype for p in bf16_model.parameters()} == {torch.bfloat16}
    monkeypatch.setattr("ftframe.engine.memory.available_memory", lambda device: 2 * needed)
    with evaluating(bf16_model, "fp32"):  # just enough: upcast
        assert {p.dtype for p in bf16_model.parameters()} == {torch.float32}


def test_an_adapter_is_merged_in_bf16_when_the_fp32_upcast_does_not_fit_but_its_copy_does(bf16_model, monkeypatch):
    from peft import LoraConfig, get_peft_model

    from ftframe.engine.predict import evaluating

    model = get_peft_model(bf16_model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"),
                           autocast_adapter_dtype=True)
    layers = [m for m in model.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    upcast = sum(p.numel() * 2 for p in model.parameters() if p.dtype == torch.bfloat16)
    copy = sum(p.numel() * 2 for m in layers for p in m.get_base_layer().parameters(recurse=False))
    assert layers and 2 * copy < 2 * upcast - 1
    monkeypatch.setattr("ftframe.engine.memory.available_memory", lambda device: 2 * upcast - 1)
    with pytest.warns(RuntimeWarning, match="upcasting them to fp32"), evaluating(model, "fp32"):
        assert all(m.merged and m.get_base_layer().weight.dtype == torch.bfloat16 for m in layers)  # not upcast
    assert not any(m.merged for m in layers)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


def test_an_unknown_eval_precision_is_refused_by_name(registry, tmp_path):
    from ftframe.config.compose import compose
    from ftframe.config.validate import problems

    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n')
    cfg = compose(["data=chat_jsonl", f"data.path={data}", "eval.precision=bf16"], registry=registry)
    assert any(p.startswith("eval.precision: 'bf16' is not one of auto, fp32, model") for p in problems(cfg, registry))


@pytest.mark.parametrize("precision,generate_dtype,score_dtype", [
    ("auto", torch.float32, torch.bfloat16), ("fp32", torch.float32, torch.float32),
    ("model", torch.bfloat16, torch.bfloat16)])
def test_each_precision_computes_in_its_dtype(bf16_model, tiny_tokenizer, precision, generate_dtype, score_dtype):
    seen: list[torch.dtype] = []  # the first decoder layer's weight dtype at every forward call
    layer = bf16_model.get_decoder().layers[0].mlp.up_proj
    hook = layer.register_forward_pre_hook(lambda module, args: seen.append(module.weight.dtype))
    try:
        predictor = LocalPredictor(bf16_model, tiny_tokenizer, precision=precision)
        predictor.generate(PROMPTS[:2], max_new_tokens=2)
        assert seen and set(seen) == {generate_dtype}
        seen.clear()
        predictor.score(PROMPTS[:2], CANDIDATES[:2])
        assert seen and set(seen) == {score_dtype}
    finally:
        hook.remove()



@pytest.mark.slow  # flex attention compiles its kernels (~40 s on the CPU)
def test_a_kernel_without_custom_masks_scores_on_sdpa_and_keeps_its_kernel(tiny_model_dir, tiny_tokenizer):
    """flex attention (like flash attention) takes no 4-D tensor mask: the candidate pass runs on sdpa
    (without the switch the process crashes in the flex kernel)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="flex_attention").eval()
    got = torch.tensor(LocalPredictor(model, tiny_tokenizer, batch_size=3).score(PROMPTS, SHARED_CANDIDATES))
    assert model.config._attn_implementation == "flex_attention"  # given back
    # the reference runs on sdpa, as the candidate pass does: flex attention's own CPU kernel differs from
    # sdpa by up to ~0.3 in these sums (not the same each run): the kernel's numerics, not the scoring's
    sdpa = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    ref = torch.tensor([[reference_score(sdpa, tiny_tokenizer, p, c) for c in SHARED_CANDIDATES] for p in PROMPTS])
    assert torch.allclose(got, ref, atol=1e-4), (got - ref).abs().max()
