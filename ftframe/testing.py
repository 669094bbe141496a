"""Helpers for tests — ours and third-party plugins': plugin managers, composed configs, a tiny model.

Nothing here downloads anything: the tiny tokenizer is trained in-process and the tiny Llama model is
randomly initialised from a fixed seed, so a whole pipeline runs in seconds on a CPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ftframe.plugins import Registry, get_plugin_manager

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QWEN_TOOLS_TEMPLATE = (
    # Qwen2.5-Instruct's tool layout: tools as JSON lines inside <tools></tools> in the system turn, each call as
    # <tool_call>{"name", "arguments"}</tool_call> in the assistant turn, tool results as <tool_response> blocks
    # in a user turn (consecutive results share one).
    "{%- set default_system = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' %}"
    "{%- set first_system = messages and messages[0]['role'] == 'system' %}"
    "{%- if tools %}"
    "{{- '<|im_start|>system\n' + (messages[0]['content'] if first_system else default_system) }}"
    "{{- '\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n'"
    " + 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}"
    "{%- for tool in tools %}{{- '\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within '"
    " + '<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": '"
    " + '<args-json-object>}\n</tool_call><|im_end|>\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\n' + (messages[0]['content'] if first_system else default_system) + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' or (message['role'] == 'system' and not loop.first)"
    " or (message['role'] == 'assistant' and not message.get('tool_calls')) %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant' }}{%- if message['content'] %}{{- '\n' + message['content'] }}{%- endif %}"
    "{%- for call in message['tool_calls'] %}{%- set fn = call['function'] if call['function'] is defined else call %}"
    "{{- '\n<tool_call>\n{\"name\": \"' + fn['name'] + '\", \"arguments\": ' + (fn['arguments'] | tojson)"
    " + '}\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\n<tool_response>\n' + message['content'] + '\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
"""A Qwen2.5-style chat template that renders ``tools``, assistant ``tool_calls`` and ``tool`` results
(``tiny_model(path, chat_template=QWEN_TOOLS_TEMPLATE)``): written after Qwen2.5-Instruct's template, so tool
calling is tested without a download."""
_CORPUS = [
    "The quick brown fox jumps over the lazy dog.", "Bitte helfen Sie mir, meine Rechnung ist falsch.",
    "My parcel has not arrived yet, where is it?", "Ich möchte mein Abo kündigen.",
    "I cannot log in to my account since yesterday.", "Die App stürzt ständig ab, Fehler 500.",
    "Please delete all my personal data under GDPR.", "billing technical account shipping cancellation privacy",
    "system user assistant tool", "0123456789 !?.,:;-_()[]{}\"'@/ ",
]


def plugin_manager(*plugins: Any, entry_points: bool = True) -> Any:
    """A fresh plugin manager with the installed plugins plus ``plugins`` (modules or objects).

    A module that is also an installed entry point (the plugin under test, ``pip install -e``-ed) is
    registered once. ``entry_points=False``: ``plugins`` only, no installed plugin (ftframe's own
    included)."""
    return get_plugin_manager(plugins, entry_points=entry_points)


def compose(overrides: Sequence[str] = (), *, plugins: Iterable[Any] = (), pm: Any = None) -> DictConfig:
    """The run config for ``overrides`` (as on the command line), with ``plugins`` registered too."""
    from ftframe.config.compose import compose as _compose

    pm = pm or plugin_manager(*plugins)
    return _compose(overrides, registry=Registry(pm))


def tiny_tokenizer(path: str | Path, *, chat_template: str = CHATML_TEMPLATE) -> Path:
    """Write a small byte-level BPE tokenizer with a ChatML chat template (or ``chat_template``) to ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    path = Path(path)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = chat_template
    fast.save_pretrained(path)
    return path


def tiny_model(path: str | Path, *, seed: int = 0, hidden_size: int = 32, layers: int = 2,
               chat_template: str = CHATML_TEMPLATE) -> Path:
    """Write a tiny random Llama causal LM and its tokenizer to ``path`` (an ``hf_local`` model folder);
    ``chat_template=QWEN_TOOLS_TEMPLATE`` gives it a tools-aware template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tiny_tokenizer(path, chat_template=chat_template)
    tok = AutoTokenizer.from_pretrained(path)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True, initializer_range=0.3, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


def write_chat_jsonl(path: str | Path, rows: Iterable[tuple[str, str]], system: str | None = None) -> Path:
    """Write ``(user text, assistant reply)`` pairs as chat JSONL (handy for classification fixtures)."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for user, reply in rows:
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": user}, {"role": "assistant", "content": reply}]
            f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")
    return path


def toy_classification_rows(n_per_label: int = 12) -> list[tuple[str, str]]:
    """A small, learnable two-label dataset: the label is signalled by a keyword in the text."""
    rows = []
    for i in range(n_per_label):
        rows.append((f"invoice {i} charged twice please refund", "billing"))
        rows.append((f"app crash error {i} after update", "technical"))
    return rows


def tiny_run_overrides(model_dir: str | Path, data_path: str | Path, **extra: Any) -> list[str]:
    """Overrides for a seconds-long end-to-end run on the tiny model."""
    base = {
        "model": "hf_local", "model.path": str(model_dir), "data.path": str(data_path), "task.name": "tiny",
        "backend.epochs": 2, "backend.batch_size": 4, "backend.lr": 5e-3, "backend.r": 4, "backend.alpha": 8,
        "eval.max_new_tokens": 4, "trainer.enable_progress_bar": False, "split.train": 0.5, "split.val": 0.25,
        "split.test": 0.25,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def run_tiny(run_dir: str | Path, overrides: Sequence[str], *, plugins: Iterable[Any] = ()) -> Any:
    """Compose ``overrides`` and run the whole pipeline into ``run_dir``; returns the ``RunResult``."""
    from ftframe.engine.run import run

    pm = plugin_manager(*plugins)
    cfg = compose(overrides, pm=pm)
    return run(cfg, run_dir, pm=pm)


def write_run_dir(path: str | Path, rows: Sequence[tuple[str, str, str]], *, task: str = "tiny",
                  labels: Sequence[str] | None = None, metrics: Sequence[str] = ("macro_f1", "accuracy"),
                  gate: dict[str, float] | None = None, system: str | None = "Classify.",
                  tokenizer: str = "tiny-tokenizer", status: str = "succeeded") -> Path:
    """A finished classification run dir built from ``(user text, gold, predicted)`` rows, without training:
    ``config.yaml``, ``manifest.json``, ``metrics.json``, ``predictions.jsonl``, ``data/test.jsonl`` and
    ``data/train.jsonl`` (the test rows with their gold answers), and an ``adapter/`` folder whose files are
    placeholders (``tokenizer.json`` holds ``tokenizer``); the first of ``metrics`` is the primary one. For tests of what reads run dirs (comparison,
    registry, monitoring) with predictions the test controls; loading its weights fails."""
    from omegaconf import OmegaConf

    from ftframe.api import Example, Prediction, TaskInfo
    from ftframe.engine.evaluate import score_predictions
    from ftframe.io import write_json, write_jsonl, write_text

    path = Path(path)
    labels = list(labels or sorted({g for _, g, _ in rows}))
    pm = plugin_manager()
    cfg = compose([f"data.path={path / 'data' / 'train.jsonl'}", f"task.name={task}", "task.type=classification",
                   f"task.labels=[{','.join(labels)}]", f"metrics=[{','.join(metrics)}]",
                   f"task.primary_metric={metrics[0]}",
                   *(f"+gate.{k}={v}" for k, v in (gate or {}).items())], pm=pm)
    head = [{"role": "system", "content": system}] if system else []
    examples = [Example(messages=[*head, {"role": "user", "content": u}, {"role": "assistant", "content": g}],
                        source=f"{path / 'data' / 'test.jsonl'}:{i}") for i, (u, g, _) in enumerate(rows, start=1)]
    preds = [Prediction(i, ex.prompt, ex.target, p, ex.source) for i, (ex, (_, _, p)) in enumerate(zip(examples, rows))]
    registry = Registry(pm)
    scores = score_predictions(preds, {m: registry.create("metric", m, cfg.metrics[m]) for m in metrics},
                               TaskInfo(task, "classification", labels))
    from ftframe.engine.run import apply_gate

    gate_result = apply_gate(dict(cfg.gate), scores["values"])
    write_text(path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_jsonl(path / "data" / "test.jsonl", [ex.to_record() for ex in examples])
    write_jsonl(path / "data" / "train.jsonl", [ex.to_record() for ex in examples])
    write_jsonl(path / "predictions.jsonl", [p.to_record() for p in preds])
    write_json(path / "metrics.json", {"test": scores, "data": {"labels": labels}})
    write_text(path / "adapter" / "adapter_config.json", "{}\n")
    write_text(path / "adapter" / "tokenizer.json", json.dumps({"placeholder": tokenizer}) + "\n")
    write_json(path / "manifest.json", {"status": status, "gate": gate_result, "seed": 0,
                                        "exports": {"adapter": {"paths": [str(path / "adapter")], "verified": True}}})
    return path
