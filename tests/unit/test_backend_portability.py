"""One task, any backend: every shipped task with every registered backend composes and validates, or is
refused with the backend's reason; the portable ``train`` section maps to each backend's own options; a
value the chosen backend cannot honour is an error when the user gave it; backend-only options apply only
with their backend."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from ftframe.config import portable
from ftframe.config.compose import config_dir
from ftframe.config.validate import problems
from ftframe.engine.data_source import load_data
from ftframe.errors import ConfigError, DataError
from ftframe.testing import compose, run_tiny, toy_classification_rows, write_chat_jsonl

CONF = config_dir()
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "training.md"
BANKING77 = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "banking77"
USER_INPUTS = {  # tasks that take the user's data (no data of their own): real data for the check
    "banking77": [f"data.path={BANKING77 / 'train.csv'}", f"split.files.test={BANKING77 / 'test.csv'}"],
}


def task_overrides(task: str) -> list[str]:
    inputs = USER_INPUTS.get(task, [])
    missing = [o for o in inputs if not Path(o.split("=", 1)[1]).exists()]
    if missing:
        pytest.skip(f"inputs of task {task} not available: {missing}")
    return [f"+task={task}", *inputs]


def outcome(task: str, backend: str, registry, pm) -> tuple[str, list[str]]:
    """``validates``, ``refused by validate`` (the backend's config_problems) or ``refused at the data
    stage`` (its example_problems on the task's data), with the messages; anything else fails the test."""
    overrides = [*task_overrides(task), f"backend={backend}"]
    cfg = compose(overrides, pm=pm)  # a composition error (an unknown key, ...) fails here
    if not Path(str(cfg.data.path)).exists():  # e.g. a task on ../shared's datasets, not beside this checkout
        pytest.skip(f"the data of task {task} is not here: {cfg.data.path}")
    cls = registry.classes["backend"][backend]
    found = problems(cfg, registry, overrides)
    declared = [str(p) for p in cls.config_problems(cfg)]
    assert found == declared, f"{task} x {backend}: problems the backend does not declare as refusals: {found}"
    if found:
        return "refused by validate", found
    examples = load_data(cfg.data, registry, pm)[0].examples
    found = registry.create("backend", backend, cfg.backend).example_problems(examples)
    return ("refused at the data stage", found) if found else ("validates", [])


def docs_table() -> dict[str, dict[str, str]]:
    """The task x backend table of docs/training.md: task -> backend -> cell."""
    text = DOCS.read_text()
    header = re.search(r"^\| task \\ backend \|(.+)\|$", text, re.MULTILINE)
    assert header, "docs/training.md has no '| task \\ backend | ...' table"
    backends = [c.strip(" `") for c in header.group(1).split("|")]
    rows = {}
    for line in text[header.end():].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = dict(zip(backends, cells[1:], strict=True))
    return rows


@pytest.mark.parametrize("task", TASKS)
def test_every_task_with_every_backend_validates_or_is_refused_with_a_reason(task, registry, pm):
    table = docs_table()
    row = {}
    for backend in registry.names("backend"):
        result, messages = outcome(task, backend, registry, pm)
        row[backend] = result
        if result != "validates":
            assert messages and all(backend in m or "backend" in m for m in messages), messages
    documented = table.get(task)
    assert documented is not None, (f"add task {task} to the task x backend table of docs/training.md: "
                                    f"| `{task}` | " + " | ".join(row.get(b, "?") for b in table["triage"]) + " |")
    for backend, cell in documented.items():
        assert backend in row, f"docs/training.md lists backend {backend}, which is not installed"
        assert cell.startswith(row[backend]), f"docs/training.md says {task} x {backend}: {cell!r}; it {row[backend]}"


def test_the_shipped_local_lora_recipes_are_the_measured_ones(pm):
    """`make run` (triage) and the BANKING77 recipe train with exactly the hyperparameters they were
    measured with (docs/benchmarks.md) now that the task files state them portably."""
    triage = OmegaConf.to_container(compose(["+task=triage"], pm=pm).backend, resolve=True)
    assert {k: triage[k] for k in ("name", "epochs", "batch_size", "lr", "last_layers", "head", "r", "alpha",
                                   "max_length", "warmup_ratio", "early_stopping_patience")} == {
        "name": "lora", "epochs": 1, "batch_size": 8, "lr": 2e-3, "last_layers": 12, "head": "lm", "r": 16,
        "alpha": 32, "max_length": 512, "warmup_ratio": 0.1, "early_stopping_patience": 2}
    cfg = compose(["+task=banking77", "data.path=x.csv"], pm=pm)
    banking = OmegaConf.to_container(cfg.backend, resolve=True)
    assert {k: banking[k] for k in ("epochs", "batch_size", "lr", "last_layers", "head", "early_stopping_patience")} == {
        "epochs": 8, "batch_size": 16, "lr": 1.24e-3, "last_layers": None, "head": "classifier",
        "early_stopping_patience": 3}


PORTABLE_VALUES = {"epochs": 2, "batch_size": 3, "lr": 0.0007, "max_length": 96, "warmup_ratio": 0.05}


def test_portable_values_reach_each_backends_own_option_or_are_refused_naming_why(registry, pm):
    for backend in registry.names("backend"):
        config_cls = registry.classes["backend"][backend].Config
        own, none = portable.mapping(config_cls), portable.no_equivalent(config_cls)
        overrides = [f"backend={backend}", *(f"train.{k}={v}" for k, v in PORTABLE_VALUES.items())]
        cfg = compose(overrides, pm=pm)
        found_all = problems(cfg, registry, overrides)
        for key, value in PORTABLE_VALUES.items():
            found = [p for p in found_all if p.startswith(f"train.{key}")]
            if key in own:
                assert OmegaConf.to_container(cfg.backend, resolve=True)[own[key]] == value, (backend, key)
                assert found == [], found
            else:
                why = none.get(key, "its options have none")
                assert found == [f"train.{key}={value}: backend={backend} has no equivalent: {why}."], found


def test_openai_refuses_an_explicit_lr_naming_the_multiplier_and_takes_the_task_s_in_silence(registry, pm):
    overrides = ["+task=triage", "backend=openai", "train.lr=1e-4"]
    (msg,) = problems(compose(overrides, pm=pm), registry, overrides)
    assert msg.startswith("train.lr=0.0001: backend=openai has no equivalent") and "backend.learning_rate_multiplier" in msg
    # The same value set by a task (not on the command line) is no error: the task was written for any
    # backend; the run reports it as not applied.
    cfg = compose(overrides, pm=pm)
    assert problems(cfg, registry, ["+task=triage", "backend=openai"]) == []
    assert list(portable.not_applied(cfg, registry.classes["backend"]["openai"].Config)) == ["train.lr=0.0001"]
    # Together has an absolute learning rate: the portable one reaches it.
    together = compose(["+task=triage", "backend=together", "train.lr=1e-4", "train.epochs=3"], pm=pm)
    body = OmegaConf.to_container(together.backend, resolve=True)
    assert (body["learning_rate"], body["n_epochs"], body["batch_size"]) == (1e-4, 3, 8)


def test_a_backends_own_key_still_works_and_wins_but_not_silently_over_an_explicit_portable_one(registry, pm):
    assert compose(["+task=triage", "backend.epochs=3"], pm=pm).backend.epochs == 3  # the old spelling
    overrides = ["+task=triage", "train.epochs=2", "backend.epochs=3"]
    assert problems(compose(overrides, pm=pm), registry, overrides) == [(
        "train.epochs=2 does not apply: backend.epochs=3 is set too (by the task or the command line) and wins; "
        "set only one of them.")]
    overrides = ["backend=openai", "train.epochs=0"]
    assert "train.epochs (backend.n_epochs) must be at least 1" in " ".join(problems(compose(overrides, pm=pm), registry, overrides))


def test_a_key_of_another_backend_says_where_it_belongs(pm):
    with pytest.raises(ConfigError) as err:
        compose(["+task=triage", "backend=full", "backend.last_layers=3"], pm=pm)
    assert "'last_layers' is an option of backend dpo, ipo, kto, lora, orpo, qlora, simpo only" in str(err.value)
    with pytest.raises(ConfigError) as err:
        compose(["backend=openai", "backend.epochs=3"], pm=pm)
    assert "did you mean 'n_epochs'?" in str(err.value) and "The portable train.epochs sets it" in str(err.value)
    with pytest.raises(ConfigError) as err:
        compose(["backend=openai", "backend.lr=3"], pm=pm)
    assert "no equivalent of train.lr" in str(err.value) and "learning_rate_multiplier" in str(err.value)


def test_backend_only_options_apply_only_with_their_backend(pm):
    lora = compose(["+task=triage"], pm=pm)
    assert lora.backend.last_layers == 12 and lora.eval.mode == "score"
    assert compose(["+task=triage", "backend=qlora"], pm=pm).backend.last_layers == 12  # the same adapter layout
    full = compose(["+task=triage", "backend=full"], pm=pm)
    assert "last_layers" not in full.backend and full.backend.lr == 1e-4 and full.eval.mode == "score"
    openai = compose(["+task=triage", "backend=openai"], pm=pm)
    assert openai.eval.mode == "generate" and openai.train.lr is None  # chat endpoints cannot score labels
    # The command line still wins over a task's options for one backend.
    assert compose(["+task=triage", "backend=full", "train.lr=3e-5"], pm=pm).backend.lr == 3e-5
    assert compose(["+task=triage", "backend=openai", "eval.mode=score"], pm=pm).eval.mode == "score"


def test_each_backend_gets_exporters_it_can_export_unless_chosen(pm):
    assert list(compose(["+task=triage"], pm=pm).exporters) == ["adapter", "model_card"]
    assert list(compose(["+task=triage", "backend=full"], pm=pm).exporters) == ["merged", "model_card"]
    assert list(compose(["+task=triage", "backend=together"], pm=pm).exporters) == ["model_card"]
    assert list(compose(["backend=full", "exporters=[gguf]"], pm=pm).exporters) == ["gguf"]


def test_the_cli_applies_a_tasks_options_for_the_chosen_backend_with_plus_task_or_task():
    for task in ("+task=triage", "task=triage"):
        proc = subprocess.run([sys.executable, "-m", "ftframe", task, "backend=full", "--cfg", "job", "--resolve"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        cfg = yaml.safe_load(proc.stdout)
        assert (cfg["backend"]["lr"], cfg["task"]["name"], list(cfg["exporters"])) == (1e-4, "triage", ["merged", "model_card"])


def test_task_files_keep_backend_options_out_of_the_portable_part(registry):
    """The layout every task file follows (docs/configuration.md): conf/task/NAME.yaml has no ``backend:``
    section (it would reach every backend); conf/task_backend/NAME/BACKEND.yaml sets no option of BACKEND
    that a portable key maps to (it would silently win over the user's ``train.*``)."""
    for path in sorted((CONF / "task").glob("*.yaml")):
        assert "backend" not in (yaml.safe_load(path.read_text()) or {}), f"{path}: move backend: to train: / task_backend/"
    specs = sorted((CONF / "task_backend").glob("*/*.yaml"))
    assert {p.parent.name for p in specs} <= set(TASKS) and specs
    for path in specs:
        assert path.stem in registry.names("backend"), f"{path}: no backend named {path.stem!r}"
        body = yaml.safe_load(path.read_text()) or {}
        mapped = set(portable.mapping(registry.classes["backend"][path.stem].Config).values())
        assert not mapped & set(body.get("backend") or {}), f"{path}: set train.* instead of backend.{mapped & set(body['backend'])}"


def test_every_portable_key_is_a_field_of_train_and_mapped_or_explained(registry):
    keys = {f.name for f in dataclasses.fields(portable.TrainConfig)}
    assert set(portable.PORTABLE_KEYS) == keys
    for backend in registry.names("backend"):
        cls = registry.classes["backend"][backend].Config
        if registry.classes["backend"][backend].__module__.startswith(("ftframe_backends", "ftframe_providers")):
            assert set(portable.mapping(cls)) | set(portable.no_equivalent(cls)) == keys, backend


def test_a_sweep_over_backends_checks_every_cell_before_the_first_runs(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "ftframe", "-m", "+task=triage", "backend=lora,openai", "train.lr=1e-4",
                           f"hydra.sweep.dir={sweep}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "cell backend=openai: train.lr=0.0001: backend=openai has no equivalent" in proc.stderr
    assert "Traceback" not in proc.stderr and not sweep.exists()  # the lora cell did not start either


def no_weights_plugin():
    """A model source (the tiny model's folder, for the preflight's tokenizer) whose weights must not load."""
    from ftframe_models.hf_local import HfLocal

    import ftframe

    class NoWeights(HfLocal):
        name = "no_weights"

        def load(self, *, dtype=None):
            raise AssertionError("the model's weights were loaded")

    class Plugin:
        @ftframe.hookimpl
        def ftframe_model_sources(self):
            return [NoWeights]

    return Plugin()


def test_dpo_on_data_without_preference_pairs_stops_before_any_weights_load(tmp_path, tiny_model_dir):
    data = write_chat_jsonl(tmp_path / "tickets.jsonl", toy_classification_rows(4), system="Classify.")
    overrides = ["model=no_weights", f"model.path={tiny_model_dir}", f"data.path={data}", "backend=dpo",
                 "train.epochs=1", "trainer.enable_progress_bar=false"]
    with pytest.raises(DataError, match=r"backend=dpo needs preference pairs .*; \d+ of \d+ training examples have none"):
        run_tiny(tmp_path / "run", overrides, plugins=[no_weights_plugin()])


def test_ftframe_validate_checks_the_command_lines_portable_values():
    proc = subprocess.run([sys.executable, "-m", "ftframe.commands", "validate", "+task=triage", "backend=openai",
                           "train.lr=1e-4"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "train.lr=0.0001: backend=openai has no equivalent" in proc.stderr, proc.stderr
    ok = subprocess.run([sys.executable, "-m", "ftframe.commands", "validate", "+task=triage", "backend=together",
                         "train.lr=1e-4", "--print"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "learning_rate: 0.0001" in ok.stdout, ok.stderr
