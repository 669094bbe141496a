"""Config mistakes become one friendly ConfigError naming the full key (and a suggestion), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftframe.config.validate import problems, validate
from ftframe.errors import ConfigError
from ftframe.testing import compose, write_chat_jsonl


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_chat_jsonl(tmp_path_factory.mktemp("cfg") / "d.jsonl", [("hi", "a"), ("ho", "b")])


def compose_error(pm, overrides) -> str:
    with pytest.raises(ConfigError) as err:
        compose(overrides, pm=pm)
    return str(err.value)


# ------------------------------------------------------------------------------- composition
def test_defaults_compose(pm, registry, data_file):
    cfg = compose([f"data.path={data_file}"], pm=pm)
    assert cfg.backend.name == "lora" and cfg.data.name == "chat_jsonl" and cfg.model.name == "smollm2"
    assert set(cfg.metrics) == {"macro_f1", "accuracy"}
    assert problems(cfg, registry) == []


def test_unknown_plugin_key_names_full_key(pm):
    msg = compose_error(pm, ["backend.rnak=3", "data.path=x"])
    # 'rnak' is far from 'r' but close to 'rank', one of LoraConfig.synonyms
    assert msg == ("Invalid configuration: Unknown config key 'backend.rnak' (did you mean 'r'? 'rank' is called "
                   "'r' here).")
    msg = compose_error(pm, ["backend.zzz=3", "data.path=x"])
    assert "backend.zzz" in msg and "Valid keys here" in msg and " r," in msg  # no guess: the keys are listed


def test_a_key_into_an_empty_mapping_says_to_add_it_with_plus(pm, data_file):
    """A free-form dict option (the preference metric's judge_options) is empty: Hydra adds keys only with +."""
    base = [f"data.path={data_file}", "metrics=[macro_f1,preference]"]
    msg = compose_error(pm, [*base, "metrics.preference.judge_options={model: hf_local}"])
    assert "'metrics.preference.judge_options' is empty: add a key to it with a leading +" in msg
    assert "'+metrics.preference.judge_options={...}'" in msg
    cfg = compose([*base, "+metrics.preference.judge_options={model: hf_local}"], pm=pm)
    assert cfg.metrics.preference.judge_options.model == "hf_local"


def test_every_unknown_key_and_wrong_type_is_reported_at_once(pm):
    """The example of docs/configuration.md: Hydra stops at the first mistake, ftframe reports each."""
    with pytest.raises(ConfigError) as err:
        compose(["+task=triage", "backend.rnak=3", "backend.lr=abc", "data.pth=x", "backend.learning_rate=1e-3",
                 "metrics=[macro_f1,acuracy]", "sed=1"], pm=pm)
    found = err.value.problems
    assert found[:4] + found[5:] == [
        "Unknown config key 'backend.rnak' (did you mean 'r'? 'rank' is called 'r' here).",
        "Wrong type for 'backend.lr': Value 'abc' of type 'str' could not be converted to Float.",
        "Unknown config key 'data.pth' (did you mean 'path'?).",
        "Unknown config key 'backend.learning_rate' (did you mean 'lr'? 'learning_rate' is called 'lr' here). "
        "The portable train.lr sets it for every backend.",
        "Unknown config key 'sed' (did you mean 'seed'?).",
    ]
    assert found[4].startswith("Unknown option 'acuracy' for config group 'metrics' (did you mean 'accuracy'?).")
    assert str(err.value).startswith("Invalid configuration:\n  - Unknown config key 'backend.rnak'")


def test_unknown_top_level_key_suggests_seed(pm):
    msg = compose_error(pm, ["sed=1"])
    assert "'sed'" in msg and "did you mean 'seed'" in msg


def test_unknown_group_option_suggests_lora(pm):
    msg = compose_error(pm, ["backend=lroa"])
    assert "lroa" in msg and "did you mean 'lora'" in msg


def test_wrong_type_names_key(pm):
    msg = compose_error(pm, ["backend.r=abc"])
    assert "backend.r" in msg and "abc" in msg
    msg = compose_error(pm, ["backend.packing=maybe"])
    assert "backend.packing" in msg and "not a valid bool" in msg


def test_unknown_metric_suggests_accuracy(pm):
    msg = compose_error(pm, ["metrics=[macro_f1,acuracy]"])
    assert "acuracy" in msg and "did you mean 'accuracy'" in msg


def test_gate_needs_plus_to_add_a_threshold(pm, data_file):
    # gate is an (empty by default) dict[str, float]: Hydra adds new keys with '+'.
    assert compose([f"data.path={data_file}", "+gate.macro_f1=0.5"], pm=pm).gate == {"macro_f1": 0.5}
    assert "gate.macro_f1" in compose_error(pm, [f"data.path={data_file}", "gate.macro_f1=0.5"])
    assert "gate.macro_f1" in compose_error(pm, [f"data.path={data_file}", "+gate.macro_f1=high"])


# -------------------------------------------------------------------------------- validation
def test_missing_data_path_is_reported(pm, registry):
    cfg = compose([], pm=pm)
    found = problems(cfg, registry)
    assert len(found) == 1 and "data.path" in found[0]
    with pytest.raises(ConfigError, match="data.path"):
        validate(cfg, registry)


def test_all_cross_field_problems_are_collected_at_once(pm, registry, tmp_path):
    missing = tmp_path / "nope.jsonl"
    cfg = compose([f"data.path={missing}", "split.train=0.5", "+gate.acuracy=0.5", "task.primary_metric=f1"],
                  pm=pm)
    found = problems(cfg, registry)
    assert len(found) >= 4, found
    text = "\n".join(found)
    assert "data.path" in text and str(missing) in text
    assert "split" in text and "0.5" in text
    assert "gate.acuracy" in text and "did you mean 'accuracy'" in text
    assert "task.primary_metric" in text
    with pytest.raises(ConfigError) as err:
        validate(cfg, registry)
    assert err.value.problems == found
    assert all(p in str(err.value) for p in found)


def test_on_error_choices(pm, registry, data_file):
    cfg = compose([f"data.path={data_file}", "data.on_error=skip"], pm=pm)
    assert problems(cfg, registry) == []
    assert registry.create("data_format", "chat_jsonl", cfg.data).config.on_error == "skip"

    # a str field: composition accepts any string, the plugin's Config check rejects it with its key
    cfg = compose([f"data.path={data_file}", "data.on_error=maybe"], pm=pm)
    found = problems(cfg, registry)
    assert len(found) == 1 and "data.on_error" in found[0] and "maybe" in found[0]
    with pytest.raises(ConfigError, match="data.on_error"):
        validate(cfg, registry)
    with pytest.raises(ConfigError, match=r"data\.on_error.*'maybe'.*raise, skip"):
        registry.create("data_format", "chat_jsonl", {"path": str(data_file), "on_error": "maybe"})


def test_backend_choice_checks_name_their_key(registry):
    with pytest.raises(ConfigError, match="backend.scheduler"):
        registry.create("backend", "lora", {"scheduler": "cosin"})
    with pytest.raises(ConfigError, match="backend.lr"):
        registry.create("backend", "lora", {"lr": "fast"})


def test_triage_task_composes_and_validates(pm, registry, repo_root):
    cfg = compose(["+task=triage"], pm=pm)
    assert cfg.task.name == "triage"
    assert set(cfg.metrics) == {"macro_f1", "accuracy"}
    assert cfg.gate.macro_f1 == 0.6
    data = Path(cfg.data.path)  # resolved through ${package_file:ftframe_datasets,...}
    assert data.resolve() == (repo_root / "plugins/ftframe_datasets/triage/tickets.jsonl").resolve()
    assert data.is_file()
    assert problems(cfg, registry) == []


# ------------------------------------------------------------------------------------------ CLI
@pytest.mark.parametrize("override, expected", [
    ("backend.rnak=3", "backend.rnak"),
    ("sed=1", "did you mean 'seed'"),
])
def test_cli_prints_one_friendly_error(repo_root, tmp_path, override, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTFRAME_")}
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "ftframe", "+task=triage", override, f"hydra.run.dir={run_dir}"],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()  # stopped before Hydra started the job


@pytest.mark.parametrize(("overrides", "bad"), [
    (["backend=full", "exporters=[adapter,model_card]"], "exporters.adapter: backend 'full' produces a 'full'"),
    (["backend=openai", "backend.model=gpt-4o-mini-2024-07-18", "eval.mode=generate", "exporters=[merged]"],
     "exporters.merged: backend 'openai' produces a 'remote'"),
])
def test_exporter_that_cannot_handle_the_backend_is_refused_before_training(pm, registry, data_file, overrides, bad):
    found = problems(compose([f"data.path={data_file}", *overrides], pm=pm), registry)
    match = [p for p in found if p.startswith(bad)]
    assert match, found
    refused = bad.split(":")[0].split(".")[1]
    suggestion = match[0].split("Use exporters=[")[1]
    assert refused not in suggestion and "model_card" in suggestion


def test_gguf_export_of_a_classification_head_is_refused_before_training(pm, registry, data_file):
    found = problems(compose([f"data.path={data_file}", "backend.head=classifier", "exporters=[adapter,gguf]"],
                             pm=pm), registry)
    assert [p for p in found if p.startswith("exporters.")] == [
        ("exporters.gguf: backend.head=classifier trains a classification head, which GGUF (a causal-LM format) "
         "has no place for. Remove gguf from exporters; adapter and merged keep the head.")]


def test_exporters_matching_the_backend_pass(pm, registry, data_file):
    for overrides in (["backend=full", "exporters=[merged,gguf,model_card]"], ["exporters=[adapter,merged]"],
                      ["backend.head=classifier", "exporters=[adapter,merged,model_card]"]):
        found = problems(compose([f"data.path={data_file}", *overrides], pm=pm), registry)
        assert not [p for p in found if p.startswith("exporters.")], found


def test_a_slurm_request_needs_the_trainers_device_count():
    from ftframe.config.resolvers import slurm_gpus_per_node, slurm_tasks_per_node

    assert slurm_tasks_per_node(4) == 4 and slurm_tasks_per_node([0, 1]) == 2
    assert slurm_gpus_per_node("gpu", 4) == 4 and slurm_gpus_per_node("cpu", 2) is None
    with pytest.raises(ConfigError, match=r"trainer.devices='auto' .* set trainer.devices to a number"):
        slurm_tasks_per_node("auto")
