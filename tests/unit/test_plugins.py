"""The plugin manager and the Registry: first-party plugins, third-party plugins, and misbehaving ones."""

from __future__ import annotations

import importlib.metadata as md
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import ftframe
from ftframe.api import Metric, MetricResult, Prediction, TaskInfo
from ftframe.errors import ConfigError, PluginError
from ftframe.plugins import Registry, get_plugin_manager
from ftframe.testing import compose


# ------------------------------------------------------------------------------ a third-party plugin
@dataclass
class MyMetricConfig:
    threshold: float = 0.5


class MyMetric(Metric):
    name = "my_metric"
    Config = MyMetricConfig

    def compute(self, predictions, task):
        hits = sum(1 for p in predictions if p.predicted == p.gold)
        return MetricResult({"my_metric": float(hits >= self.config.threshold * len(predictions))})


class MyMetricPlugin:
    """A plugin object (class instance) as a third party would register it in-process."""

    @ftframe.hookimpl
    def ftframe_metrics(self):
        return [MyMetric]


def entry_point_name(module: str) -> str:
    """The ``ftframe`` entry-point name under which ``module`` is installed (e.g. ``metrics``)."""
    names = {ep.name for ep in md.entry_points(group="ftframe") if ep.value == module}
    assert len(names) == 1, f"{module} is not (uniquely) registered in the ftframe entry-point group: {names}"
    return names.pop()


def module_plugin(name: str, hook: str, returns=None, raises: Exception | None = None) -> types.ModuleType:
    """A module-like plugin with one registry hook implementation."""
    mod = types.ModuleType(name)

    def impl():
        if raises is not None:
            raise raises
        return returns

    setattr(mod, hook, ftframe.hookimpl(impl))
    return mod


# ----------------------------------------------------------------------------------- first party
def test_first_party_plugins_are_loaded_from_entry_points(registry):
    assert "lora" in registry.names("backend")
    assert "chat_jsonl" in registry.names("data_format")
    assert {"macro_f1", "accuracy"} <= set(registry.names("metric"))
    assert {"adapter", "model_card"} <= set(registry.names("exporter"))
    assert {"smollm2", "hf_local"} <= set(registry.names("model_source"))


def test_plugin_infos_name_distribution_and_what_each_provides(pm, registry):
    info = pm.ftframe_infos[entry_point_name("ftframe_metrics.plugin")]
    assert info.distribution == "ftframe"
    assert info.module == "ftframe_metrics.plugin"
    assert not info.blocked
    assert set(info.provides["metric"]) >= {"macro_f1", "accuracy"}
    assert "lora" in pm.ftframe_infos[entry_point_name("ftframe_backends.plugin")].provides["backend"]


def test_detect_data_format_hook(pm, tmp_path):
    chat = tmp_path / "train.jsonl"
    chat.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    assert pm.hook.ftframe_detect_data_format(path=chat) == "chat_jsonl"
    assert pm.hook.ftframe_detect_data_format(path=Path("x/train.csv")) == "csv_labels"
    assert pm.hook.ftframe_detect_data_format(path=Path("x/missing.jsonl")) is None
    assert pm.hook.ftframe_detect_data_format(path=Path("x/notes.docx")) is None


def test_unknown_plugin_name_suggests_the_closest(registry):
    with pytest.raises(PluginError, match="did you mean 'macro_f1'"):
        registry.get("metric", "macro_f2")


# ----------------------------------------------------------------------------------- third party
def test_third_party_plugin_object_is_found_and_usable():
    pm = get_plugin_manager([MyMetricPlugin()])
    reg = Registry(pm)
    assert "my_metric" in reg.names("metric")
    assert "macro_f1" in reg.names("metric")  # entry points still loaded
    metric = reg.create("metric", "my_metric", {"threshold": 1.0})
    preds = [Prediction(0, [], "a", "a"), Prediction(1, [], "b", "a")]
    assert metric.compute(preds, TaskInfo("t", "classification", ["a", "b"])).values == {"my_metric": 0.0}


def test_third_party_metric_composes_into_the_run_config():
    plugin = MyMetricPlugin()
    cfg = compose(["metrics=[macro_f1,my_metric]", "data.path=x"], plugins=[plugin])
    assert set(cfg.metrics) == {"macro_f1", "my_metric"}
    assert cfg.metrics.my_metric.threshold == 0.5

    cfg = compose(["metrics=[my_metric]", "metrics.my_metric.threshold=0.9", "data.path=x"], plugins=[plugin])
    assert cfg.metrics.my_metric.threshold == 0.9
    with pytest.raises(ConfigError, match="metrics.my_metric.threshold"):
        compose(["metrics=[my_metric]", "metrics.my_metric.threshold=high", "data.path=x"], plugins=[plugin])


def test_module_like_plugin_is_found():
    mod = module_plugin("acme_metrics", "ftframe_metrics", returns=[MyMetric])
    reg = Registry(get_plugin_manager([mod], entry_points=False))
    assert reg.names("metric") == ["my_metric"]
    assert reg.names("backend") == []


# ------------------------------------------------------------------------------------ misbehaving
def test_two_plugins_claiming_one_name_are_refused_naming_both():
    one = module_plugin("acme_one", "ftframe_metrics", returns=[MyMetric])
    two = module_plugin("acme_two", "ftframe_metrics", returns=[MyMetric])
    with pytest.raises(PluginError) as err:
        Registry(get_plugin_manager([one, two], entry_points=False))
    msg = str(err.value)
    assert "my_metric" in msg and "acme_one" in msg and "acme_two" in msg


def test_third_party_shadowing_a_first_party_name_is_refused():
    class FakeF1(MyMetric):
        name = "macro_f1"

    shadow = module_plugin("acme_shadow", "ftframe_metrics", returns=[FakeF1])
    with pytest.raises(PluginError) as err:
        Registry(get_plugin_manager([shadow]))
    msg = str(err.value)
    assert "macro_f1" in msg and "acme_shadow" in msg and entry_point_name("ftframe_metrics.plugin") in msg


def test_plugin_returning_a_non_plugin_class_is_named():
    bad = module_plugin("acme_bad", "ftframe_metrics", returns=[dict])
    with pytest.raises(PluginError, match=r"acme_bad.*ftframe_metrics.*Metric"):
        Registry(get_plugin_manager([bad], entry_points=False))


def test_plugin_class_without_name_is_named():
    class Nameless(Metric):
        pass

    bad = module_plugin("acme_nameless", "ftframe_metrics", returns=[Nameless])
    with pytest.raises(PluginError, match=r"acme_nameless.*Nameless.*name"):
        Registry(get_plugin_manager([bad], entry_points=False))


def test_plugin_raising_in_its_hook_is_named():
    bad = module_plugin("acme_raises", "ftframe_backends", raises=RuntimeError("boom"))
    with pytest.raises(PluginError, match=r"acme_raises.*ftframe_backends.*RuntimeError: boom"):
        Registry(get_plugin_manager([bad], entry_points=False))


def test_plugin_returning_a_bare_class_instead_of_a_list_is_named():
    bad = module_plugin("acme_bare", "ftframe_metrics", returns=MyMetric)
    with pytest.raises(PluginError, match="acme_bare"):
        Registry(get_plugin_manager([bad], entry_points=False))


# --------------------------------------------------------------------------------- environment
def test_disabled_entry_point_is_blocked(monkeypatch):
    metrics, exporters = entry_point_name("ftframe_metrics.plugin"), entry_point_name("ftframe_exporters.plugin")
    monkeypatch.setenv("FTFRAME_DISABLE_PLUGINS", f"{metrics}, {exporters}")
    pm = get_plugin_manager()
    reg = Registry(pm)
    assert pm.ftframe_infos[metrics].blocked is True
    assert pm.ftframe_infos[exporters].blocked is True
    assert "macro_f1" not in reg.names("metric")
    assert reg.names("exporter") == []
    assert "lora" in reg.names("backend")  # others unaffected


def test_trace_prints_hook_calls_to_stderr(monkeypatch, capsys):
    monkeypatch.setenv("FTFRAME_TRACE_PLUGINS", "1")
    pm = get_plugin_manager()
    Registry(pm)
    pm.hook.ftframe_detect_data_format(path=Path("a.jsonl"))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("[ftframe trace]")]
    assert any("ftframe_metrics()" in line and "MacroF1" in line for line in lines)
    assert any("ftframe_detect_data_format" in line for line in lines)


def test_no_trace_output_by_default(capsys):
    pm = get_plugin_manager()
    Registry(pm)
    pm.hook.ftframe_detect_data_format(path=Path("a.jsonl"))
    assert "[ftframe trace]" not in capsys.readouterr().err


def test_each_call_returns_a_new_independent_manager():
    plain = get_plugin_manager()
    extended = get_plugin_manager([MyMetricPlugin()])
    again = get_plugin_manager()
    assert plain is not extended and plain is not again
    assert plain.ftframe_infos is not again.ftframe_infos
    assert "my_metric" in Registry(extended).names("metric")
    assert "my_metric" not in Registry(plain).names("metric")
    assert "my_metric" not in Registry(again).names("metric")
    assert "MyMetricPlugin" not in again.ftframe_infos


# ------------------------------------------------------------------------------------ observer hooks
def test_observer_with_a_subset_of_arguments_and_one_that_raises(tmp_path, tiny_model_dir):
    """Hooks evolve by adding arguments: an implementation taking fewer keeps working; a raising one is named."""
    from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl

    seen = []
    subset = types.ModuleType("ftframe_subset_observer")
    subset.ftframe_run_finished = ftframe.hookimpl(lambda result: seen.append(result.status))
    data = write_chat_jsonl(tmp_path / "d.jsonl", toy_classification_rows(6), system="Classify.")
    overrides = tiny_run_overrides(tiny_model_dir, data, **{"backend.epochs": 1, "eval.baseline": False,
                                                             "exporters": "[]"})
    assert run_tiny(tmp_path / "ok", overrides, plugins=[subset]).status == "succeeded"
    assert seen == ["succeeded"]

    def boom(config, result):
        raise RuntimeError("observer broke")

    broken = types.ModuleType("ftframe_broken_observer")
    broken.ftframe_run_finished = ftframe.hookimpl(boom)
    with pytest.raises(PluginError, match=r"ftframe_broken_observer.*ftframe_run_finished.*observer broke"):
        run_tiny(tmp_path / "broken", overrides, plugins=[broken])


class OldStyleFormatPlugin:
    """A plugin still implementing the deprecated ``ftframe_formats`` name."""

    @ftframe.hookimpl
    def ftframe_formats(self):
        from ftframe_formats.chat_jsonl import ChatJsonl

        class LegacyFormat(ChatJsonl):
            name = "legacy_jsonl"

        return [LegacyFormat]


def test_deprecated_hook_warns_naming_the_replacement_and_keeps_working():
    with pytest.warns(DeprecationWarning, match="rename your implementation to ftframe_data_formats") as rec:
        pm = get_plugin_manager([OldStyleFormatPlugin()])
    assert any(Path(w.filename).name == Path(__file__).name for w in rec)  # points at the plugin's code
    reg = Registry(pm)
    assert "legacy_jsonl" in reg.names("data_format")
    assert reg.owner[("data_format", "legacy_jsonl")].startswith("OldStyleFormatPlugin")


def test_current_hooks_register_without_deprecation_warnings(recwarn):
    Registry(get_plugin_manager([MyMetricPlugin()]))
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning) and "ftframe" in str(w.message)]
