"""Loss masking: only assistant replies (and their end-of-turn token) are trained."""

from __future__ import annotations

import pytest

from ftframe.engine.chat import encode, prompt_ids

SYSTEM = {"role": "system", "content": "Classify."}
USER1 = {"role": "user", "content": "invoice charged twice"}
REPLY1 = {"role": "assistant", "content": "billing"}
USER2 = {"role": "user", "content": "app crash error 500"}
REPLY2 = {"role": "assistant", "content": "technical"}


def trained_text(tok, enc) -> str:
    return tok.decode([t for t in enc.labels if t != -100])


def trained_runs(enc) -> list[tuple[int, int]]:
    """Contiguous [start, end) runs of trained positions."""
    runs, start = [], None
    for i, lab in enumerate(enc.labels + [-100]):
        if lab != -100 and start is None:
            start = i
        elif lab == -100 and start is not None:
            runs.append((start, i))
            start = None
    return runs


def assert_aligned(enc) -> None:
    assert len(enc.labels) == len(enc.input_ids)
    assert all(lab in (-100, tid) for lab, tid in zip(enc.labels, enc.input_ids))


def test_only_the_reply_and_end_of_turn_are_trained(tiny_tokenizer):
    tok = tiny_tokenizer
    enc = encode(tok, [SYSTEM, USER1, REPLY1])
    assert_aligned(enc)
    assert trained_text(tok, enc) == "billing<|im_end|>"
    [(start, end)] = trained_runs(enc)
    # everything before the reply (system, user, and the assistant header) is masked
    assert tok.decode(enc.input_ids[:start]).endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "Classify." in tok.decode(enc.input_ids[:start])
    assert "invoice" in tok.decode(enc.input_ids[:start])
    # the separator after the end-of-turn token is not trained
    assert tok.decode(enc.input_ids[end:]) == "\n"
    assert enc.n_trained == end - start


def test_every_assistant_turn_is_trained(tiny_tokenizer):
    tok = tiny_tokenizer
    enc = encode(tok, [SYSTEM, USER1, REPLY1, USER2, REPLY2])
    assert_aligned(enc)
    runs = trained_runs(enc)
    assert [tok.decode(enc.input_ids[s:e]) for s, e in runs] == ["billing<|im_end|>", "technical<|im_end|>"]
    between = tok.decode(enc.input_ids[runs[0][1]:runs[1][0]])
    assert between == "\n<|im_start|>user\napp crash error 500<|im_end|>\n<|im_start|>assistant\n"


def test_weight_zero_turn_is_not_trained(tiny_tokenizer):
    tok = tiny_tokenizer
    enc = encode(tok, [SYSTEM, USER1, {**REPLY1, "weight": 0}, USER2, {**REPLY2, "weight": 1}])
    assert_aligned(enc)
    assert trained_text(tok, enc) == "technical<|im_end|>"
    # the weight key changes nothing about the rendered tokens
    assert enc.input_ids == encode(tok, [SYSTEM, USER1, REPLY1, USER2, REPLY2]).input_ids
    assert encode(tok, [USER1, {**REPLY1, "weight": 0}]).n_trained == 0


def test_max_length_truncates_ids_and_labels_together(tiny_tokenizer):
    tok = tiny_tokenizer
    full = encode(tok, [SYSTEM, USER1, REPLY1])
    [(start, _)] = trained_runs(full)
    cut = encode(tok, [SYSTEM, USER1, REPLY1], max_length=start + 1)
    assert cut.input_ids == full.input_ids[:start + 1]
    assert cut.labels == full.labels[:start + 1]
    assert cut.n_trained == 1
    assert encode(tok, [SYSTEM, USER1, REPLY1], max_length=start).n_trained == 0
    assert encode(tok, [SYSTEM, USER1, REPLY1], max_length=10_000).input_ids == full.input_ids


@pytest.mark.parametrize("conversation", [
    [USER1, REPLY1],
    [SYSTEM, USER1, REPLY1],
    [SYSTEM, USER1, REPLY1, USER2, REPLY2],
], ids=["user", "system", "multi-turn"])
def test_prompt_ids_are_the_prefix_training_saw(tiny_tokenizer, conversation):
    tok = tiny_tokenizer
    enc = encode(tok, conversation)
    prompt = prompt_ids(tok, conversation[:-1])
    assert enc.input_ids[:len(prompt)] == prompt
    # the last trained run starts exactly where the prompt ends
    assert trained_runs(enc)[-1][0] == len(prompt)


def test_truncation_is_flagged(tiny_tokenizer):
    from ftframe.engine.chat import encode

    msgs = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "billing"}]
    assert not encode(tiny_tokenizer, msgs).truncated
    cut = encode(tiny_tokenizer, msgs, max_length=10)
    assert cut.truncated and len(cut.input_ids) == 10
