"""BatchDecoder: rows joining a running batch, leaving it, sampling, and schema-constrained decoding (llguidance)."""

from __future__ import annotations

import json

import pytest
import torch

from ftframe.engine.constrain import ResponseFormatError, compile_response_format, response_format_for_schema
from ftframe.engine.decoding import Row, Sampling, decode_all
from ftframe.engine.predict import LocalPredictor

PROMPTS = [
    [{"role": "user", "content": "invoice"}],
    [{"role": "system", "content": "Classify."}, {"role": "user", "content": "my app crash error 500 after the update"}],
    [{"role": "user", "content": "Ich möchte mein Abo kündigen."}],
    [{"role": "user", "content": "where is my parcel"}],
    [{"role": "user", "content": "x"}],
    [{"role": "system", "content": "Classify."}, {"role": "user", "content": "please delete my data"}],
]
SCHEMA = {"type": "object", "required": ["intent", "language"], "additionalProperties": False,
          "properties": {"intent": {"enum": ["refund", "delivery_status", "login_problem"]},
                         "language": {"enum": ["de", "en"]},
                         "order_id": {"type": "string", "pattern": "^[A-Z]-[0-9]{3}$"}}}


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


@pytest.fixture(scope="module")
def predictor(model, tiny_tokenizer):
    return LocalPredictor(model, tiny_tokenizer, batch_size=4, precision="fp32")


def alone(predictor, ids, n, **row):
    r = Row(ids, n, **row)
    decode_all(predictor.decoder(), [r], batch_size=1)
    return r


def test_rows_joining_a_running_batch_get_the_tokens_they_get_alone(predictor):
    encoded = predictor._encode_prompts(PROMPTS)
    want = [alone(predictor, ids, 12).tokens for ids in encoded]
    decoder = predictor.decoder()
    rows = [Row(ids, 12, key=i) for i, ids in enumerate(encoded)]
    decoder.add(rows[:2])
    for _ in range(3):
        decoder.step()
    decoder.add(rows[2:4])  # join mid-flight: other lengths, the cache is realigned
    for _ in range(2):
        decoder.step()
    decoder.add(rows[4:])
    assert len(decoder) == 6
    while len(decoder):
        decoder.step()
    assert [r.tokens for r in rows] == want
    assert all(r.finish in ("stop", "length") for r in rows)
    assert decoder.cache is None and decoder.mask is None  # nothing held once every row left


def test_a_cancelled_row_leaves_and_the_others_are_unchanged(predictor):
    encoded = predictor._encode_prompts(PROMPTS[:3])
    want = [alone(predictor, ids, 10).tokens for ids in encoded]
    decoder = predictor.decoder()
    rows = [Row(ids, 10, key=i) for i, ids in enumerate(encoded)]
    decoder.add(rows)
    decoder.step()
    gone = decoder.cancel({1})
    assert gone == [rows[1]] and rows[1].finish == "cancelled" and len(rows[1].tokens) == 1
    while len(decoder):
        decoder.step()
    assert rows[0].tokens == want[0] and rows[2].tokens == want[2]


def test_refilling_batches_give_one_by_one_answers(predictor, model, tiny_tokenizer):
    one = LocalPredictor(model, tiny_tokenizer, batch_size=1).generate(PROMPTS, max_new_tokens=9)
    assert predictor.generate(PROMPTS, max_new_tokens=9) == one  # batch 4: rows refill as others end


def test_sampling_is_reproducible_with_a_seed_whatever_the_batch(predictor):
    ids = predictor._encode_prompts(PROMPTS[:1])[0]
    first = alone(predictor, ids, 8, sampling=Sampling(1.0, 0.9, seed=7)).tokens
    decoder = predictor.decoder()
    rows = [Row(ids, 8, sampling=Sampling(1.0, 0.9, seed=7))] + [Row(i, 8) for i in predictor._encode_prompts(PROMPTS[1:])]
    decode_all(decoder, rows, batch_size=6)
    assert rows[0].tokens == first
    other = alone(predictor, ids, 8, sampling=Sampling(1.0, 0.9, seed=8)).tokens
    greedy = alone(predictor, ids, 8).tokens
    assert other != first or greedy != first  # a sampled answer is not always the greedy one


def test_the_tiny_model_writes_no_json_unconstrained_but_schema_valid_json_under_the_schema(predictor):
    from jsonschema import validate

    free = predictor.generate(PROMPTS, max_new_tokens=40)
    assert not any(_is_json(a) for a in free)  # random weights: garbage, so the constraint is what fixes it
    answers = predictor.generate(PROMPTS, max_new_tokens=80, response_format=response_format_for_schema(SCHEMA))
    for answer in answers:
        validate(json.loads(answer), SCHEMA)
        assert answer.startswith('{"intent": "')  # the compact layout: json.dumps' separators
    flexible = predictor.generate(PROMPTS[:2], max_new_tokens=80, response_format={"type": "json_object"},
                                  json_whitespace="flexible")
    assert all(isinstance(json.loads(a), dict) for a in flexible)


def test_a_constrained_row_in_a_batch_leaves_the_free_rows_alone(predictor):
    encoded = predictor._encode_prompts(PROMPTS[:3])
    want = [alone(predictor, ids, 10).tokens for ids in encoded]
    grammar = predictor.grammar({"type": "json_object"})
    rows = [Row(encoded[0], 10), Row(encoded[1], 60, grammar=grammar), Row(encoded[2], 10)]
    decode_all(predictor.decoder(), rows, batch_size=3)
    assert rows[0].tokens == want[0] and rows[2].tokens == want[2]
    assert rows[1].finish == "stop" and isinstance(json.loads(predictor.tokenizer.decode(rows[1].tokens)), dict)


@pytest.mark.parametrize(("response_format", "param", "message"), [
    ({"type": "xml"}, "response_format.type", "must be one of text, json_object, json_schema"),
    ({"type": "json_schema"}, "response_format.json_schema", "must be an object"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 12}}},
     "response_format.json_schema.schema", "not a valid JSON schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {}, "required": ["a"], "additionalProperties": False}}},
     "response_format.json_schema.schema", "cannot be used for decoding"),
    ("json", "response_format", "must be an object"),
])
def test_bad_response_formats_name_the_part(tiny_tokenizer, response_format, param, message):
    with pytest.raises(ResponseFormatError, match=message) as info:
        compile_response_format(response_format, tiny_tokenizer, len(tiny_tokenizer))
    assert info.value.param == param


def test_text_or_no_format_compiles_to_nothing(tiny_tokenizer):
    assert compile_response_format(None, tiny_tokenizer, len(tiny_tokenizer)) is None
    assert compile_response_format({"type": "text"}, tiny_tokenizer, len(tiny_tokenizer)) is None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_zero_new_tokens_and_an_empty_decoder(predictor):
    decoder = predictor.decoder()
    assert decoder.step() == []
    done = decoder.add([Row([1, 2, 3], 0)])
    assert done[0].finish == "length" and len(decoder) == 0
    assert torch.is_grad_enabled()  # decoding under no_grad does not leak the mode


@pytest.mark.parametrize("lengths", [[5], [10, 10, 10], [45, 300, 46, 120, 47, 305, 118], list(range(1, 60, 7))])
def test_prefill_groups_cover_every_prompt_and_bound_the_padding(lengths):
    from ftframe.engine.decoding import MAX_PREFILL_PADDING, prefill_groups

    groups = prefill_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        padded = len(g) * max(lengths[i] for i in g)
        assert padded <= (1 + MAX_PREFILL_PADDING) * sum(lengths[i] for i in g)
    if len(set(lengths)) == 1:
        assert len(groups) == 1  # equal lengths: one pass
    assert prefill_groups([45, 300, 46]) == [[0, 2], [1]]


def test_a_cache_that_cannot_be_concatenated_is_refused(predictor):
    """Rows joining a batch whose cache has sliding-window layers would be merged wrongly: refused instead."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicSlidingWindowLayer

    encoded = predictor._encode_prompts(PROMPTS[:2])
    decoder = predictor.decoder()
    decoder.add([Row(encoded[0], 4, key=0)])
    sliding = DynamicCache()
    sliding.layers = [DynamicSlidingWindowLayer(sliding_window=4) for _ in decoder.cache.layers]
    assert decoder.can_join  # the running batch itself is plain
    with pytest.raises(RuntimeError, match="cannot be concatenated"):
        decoder._merge([(decoder.mask, sliding, decoder.logits, decoder.next_pos)])
    decoder.cache = sliding
    assert not decoder.can_join
    with pytest.raises(RuntimeError, match="cannot take new rows"):
        decoder.add([Row(encoded[1], 4, key=1)])


# ------------------------------------------------------------------------------------- extractive
MESSAGE = "Hallo, Bestellung K-12345: der Toaster Pro kam kaputt an, bitte an anna@example.com antworten."
EXTRACT = {"type": "object", "required": ["intent"], "additionalProperties": False,
           "properties": {"intent": {"enum": ["refund", "damaged_item"]},
                          "order_id": {"type": "string", "pattern": "^[A-Z]-[0-9]{5}$"},
                          "product": {"type": "string", "maxLength": 12},
                          "email": {"type": "string", "maxLength": 24}}}
FIELDS = ("order_id", "product", "email")


def _accepts(tokenizer, grammar, answer: str) -> bool:
    matcher = grammar.matcher()
    return bool(matcher.consume_tokens(tokenizer.encode(answer, add_special_tokens=False))) and matcher.is_accepting()


def _copier(tokenizer, schema=EXTRACT, fields=FIELDS):
    from ftframe.engine.constrain import ExtractiveGrammar

    compiled = compile_response_format(response_format_for_schema(schema), tokenizer, len(tokenizer))
    return ExtractiveGrammar(compiled.ll_tokenizer, compiled.schema, fields)


@pytest.mark.parametrize(("answer", "accepted"), [
    ('{"intent": "damaged_item", "order_id": "K-12345", "product": "Toaster Pro", "email": "anna@example.com"}', True),
    ('{"intent": "damaged_item"}', True),                       # optional properties may be left out
    ('{"intent": "refund", "email": "anna@example.com"}', True),  # ... in any combination, in schema order
    ('{"intent": "damaged_item", "product": "Toaster"}', True),    # a shorter span of the message
    ('{"intent": "damaged_item", "product": "Toaster Max"}', False),  # not in the message
    ('{"intent": "damaged_item", "order_id": "K-99999"}', False),     # matches the pattern, not in the message
    ('{"intent": "damaged_item", "order_id": "Bestellung"}', False),  # in the message, not the pattern
    ('{"intent": "damaged_item", "product": "Toaster Pro kam"}', False),  # over maxLength 12
    ('{"intent": "damaged_item", "email": "anna@example.com", "product": "Toaster Pro"}', False),  # order
    ('{"order_id": "K-12345"}', False),                          # the required property is missing
    ('{"intent": "fraud"}', False),                              # the enum still holds
])
def test_extractive_values_are_spans_of_the_message_under_the_schema(tiny_tokenizer, answer, accepted):
    assert _accepts(tiny_tokenizer, _copier(tiny_tokenizer).for_source(MESSAGE), answer) is accepted


def test_a_quote_in_the_message_is_never_copied_unescaped(tiny_tokenizer):
    grammar = _copier(tiny_tokenizer).for_source('the "Toaster Pro", order K-12345')
    assert _accepts(tiny_tokenizer, grammar, '{"intent": "refund", "product": "Toaster Pro"}')
    assert not _accepts(tiny_tokenizer, grammar, '{"intent": "refund", "product": "\\"Toaster Pro"}')


def test_a_property_with_nothing_to_copy_cannot_be_opened(tiny_tokenizer):
    """No order number in the message: the key is never written (it would have no value to finish with)."""
    grammar = _copier(tiny_tokenizer).for_source("Der Toaster Pro kam kaputt an.")
    assert _accepts(tiny_tokenizer, grammar, '{"intent": "damaged_item", "product": "Toaster Pro"}')
    matcher = grammar.matcher()
    assert not matcher.consume_tokens(tiny_tokenizer.encode('{"intent": "refund", "order_id": "',
                                                            add_special_tokens=False))
    required = {**EXTRACT, "required": ["intent", "order_id"]}  # a required one keeps its plain schema
    assert _accepts(tiny_tokenizer, _copier(tiny_tokenizer, required).for_source("kaputt"),
                    '{"intent": "refund", "order_id": "K-99999"}')


def test_every_gold_answer_of_the_shipped_extraction_set_is_a_copy_the_grammar_allows(tiny_tokenizer):
    from importlib.resources import files

    from omegaconf import OmegaConf

    from ftframe.config.compose import config_dir

    task = OmegaConf.load(config_dir() / "task" / "extraction.yaml")
    copier = _copier(tiny_tokenizer, OmegaConf.to_container(task.task.output_schema), tuple(task.eval.extractive))
    rows = [json.loads(line) for line in (files("ftframe_datasets") / "extraction/messages.jsonl").open()]
    refused = [r["messages"][-1]["content"] for r in rows
               if not _accepts(tiny_tokenizer, copier.for_source(r["messages"][1]["content"]), r["messages"][-1]["content"])]
    assert refused == [] and len(rows) == 400


def test_the_tiny_model_under_the_extractive_grammar_copies_from_each_prompt(predictor):
    from jsonschema import validate

    prompts = [[{"role": "user", "content": MESSAGE}], [{"role": "user", "content": "Bestellung Z-55555, Toaster Pro"}]]
    # free-form values (the same schema without the copy constraint) are invented by the random model
    free = [json.loads(a) for a in predictor.generate(prompts, max_new_tokens=200,
                                                      response_format=response_format_for_schema(EXTRACT))]
    copied = [json.loads(a) for a in predictor.generate(prompts, max_new_tokens=80, extractive=FIELDS,
                                                        response_format=response_format_for_schema(EXTRACT))]
    def invented(answers):
        return [v for a, p in zip(answers, prompts) for k, v in a.items() if k in FIELDS and v not in p[0]["content"]]
    assert invented(free) and not invented(copied)
    for answer in copied:
        validate(answer, EXTRACT)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"extractive": ["intent"]}, "'intent' must be a plain string property"),
    ({"extractive": ["sku"]}, "'sku' is not a property of task.output_schema"),
    ({"extractive": ["product"], "response_format": "json_object"}, "use json_schema"),
    ({"extractive": ["product"], "json_whitespace": "flexible"}, "set eval.json_whitespace=compact"),
])
def test_bad_extractive_settings_are_config_problems(overrides, message):
    from omegaconf import OmegaConf

    from ftframe.config.validate import response_format_problems

    cfg = OmegaConf.create({"task": {"output_schema": EXTRACT}, "eval": {"response_format": "auto", **overrides}})
    assert any(message in p for p in response_format_problems(cfg))


def test_extractive_without_a_schema_is_a_config_problem():
    from omegaconf import OmegaConf

    from ftframe.config.validate import response_format_problems

    cfg = OmegaConf.create({"task": {}, "eval": {"extractive": ["product"]}})
    assert any("the task has no output_schema" in p for p in response_format_problems(cfg))


def test_a_predictor_that_cannot_copy_is_told_so_rather_than_decoding_freely():
    from ftframe.api import Example, TaskInfo
    from ftframe.engine.evaluate import predict
    from ftframe.errors import ConfigError

    class SchemaOnly:  # a predictor that constrains to a schema but takes no extractive argument
        name = "schema-only"

        def generate(self, prompts, *, max_new_tokens, progress=None, response_format=None, json_whitespace="compact"):
            return ["{}"] * len(prompts)

    examples = [Example(messages=[{"role": "user", "content": MESSAGE}, {"role": "assistant", "content": "{}"}])]
    task = TaskInfo(name="t", type="generation", labels=[], output_schema=EXTRACT)
    with pytest.raises(ConfigError, match="cannot copy values from the prompt"):
        predict(SchemaOnly(), examples, task, mode="generate", max_new_tokens=8,
                response_format=response_format_for_schema(EXTRACT), extractive=FIELDS)
