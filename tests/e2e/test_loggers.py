"""Experiment trackers through Lightning loggers (``logger=...``): each writes its files below the run dir."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ftframe.testing import run_tiny, tiny_run_overrides, toy_classification_rows, write_chat_jsonl


@pytest.fixture(scope="module")
def overrides(tmp_path_factory, tiny_model_dir) -> list[str]:
    data = write_chat_jsonl(tmp_path_factory.mktemp("data") / "toy.jsonl", toy_classification_rows(6),
                            system="Classify.")
    return tiny_run_overrides(tiny_model_dir, data, **{"backend.epochs": 2, "eval.baseline": "false",
                                                       "trainer.log_every_n_steps": 1})


def test_csv(tmp_path, overrides):
    run = run_tiny(tmp_path / "run", [*overrides, "logger=csv"])
    with (run.run_dir / "logs" / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("train/loss_step") for r in rows) and any(r.get("val/loss") for r in rows)


def test_tensorboard(tmp_path, overrides):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = run_tiny(tmp_path / "run", [*overrides, "logger=tensorboard"])
    [events] = (run.run_dir / "logs" / "tensorboard").glob("events.out.tfevents.*")
    acc = EventAccumulator(str(events))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss_step" in tags and "val/loss" in tags
    assert len(acc.Scalars("val/loss")) == 2  # one per epoch


def test_mlflow_local_store(tmp_path, overrides, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = run_tiny(tmp_path / "run", [*overrides, "logger=mlflow"])
    store = run.run_dir / "mlflow" / "mlflow.db"
    assert store.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("ftframe")
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.info.status == "FINISHED"
    assert "val/loss" in logged.data.metrics and "train/loss_step" in logged.data.metrics
    assert len(client.get_metric_history(logged.info.run_id, "val/loss")) == 2
    assert logged.data.params["backend/r"] == "4" and logged.data.params["task/name"] == "tiny"  # the run config
    assert Path(experiment.artifact_location.removeprefix("file://")).is_relative_to(run.run_dir.resolve())


def test_no_logger_trains_and_writes_no_logs(tmp_path, overrides):
    run = run_tiny(tmp_path / "run", [*overrides, "~logger"])
    assert run.ok and run.metrics["train"]["steps"] > 0
    assert not (run.run_dir / "logs").exists()


def _is_loopback(host: object) -> bool:
    import ipaddress

    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:  # a host name other than localhost
        return False


@pytest.fixture
def no_network(monkeypatch):
    """Every connect and name lookup of this process to anything but loopback fails and is recorded."""
    import socket

    attempts: list[str] = []
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):  # type: ignore[index]
            attempts.append(f"connect {address}")
            raise OSError(f"test: network access to {address} refused")

    def guarded_connect(sock, address):
        check(sock, address)
        return connect(sock, address)

    def guarded_connect_ex(sock, address):
        check(sock, address)
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host if not isinstance(host, bytes) else host.decode()):
            attempts.append(f"getaddrinfo {host}")
            raise socket.gaierror(f"test: name lookup of {host} refused")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


@pytest.fixture
def recording_server():
    """A loopback HTTP server that records every request and answers 503. The W&B test makes it W&B's API
    address and every process's HTTP(S) proxy, so a request from wandb's service process (``wandb-core``, a
    separate program that the socket guard cannot see) to any host would show here."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _record(self):
            seen.append(f"{self.command} {self.path}")
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_CONNECT = _record

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def test_wandb_offline_run_holds_metrics_and_config_without_network(tmp_path, overrides, monkeypatch, no_network,
                                                                     recording_server):
    import json
    import subprocess
    import sys

    url, requests = recording_server
    home = tmp_path / "wandb-home"
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false",
           "WANDB_DIR": home, "WANDB_CACHE_DIR": home / "cache", "WANDB_CONFIG_DIR": home / "config",
           "WANDB_DATA_DIR": home / "data", "WANDB_BASE_URL": url,
           **{k: url for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}}
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    for key in ("WANDB_API_KEY", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(key, raising=False)

    import socket

    with pytest.raises(OSError):  # the guard itself: an outside address is refused and recorded
        socket.create_connection(("192.0.2.1", 443), timeout=1)
    assert no_network == ["getaddrinfo 192.0.2.1"]
    no_network.clear()

    run = run_tiny(tmp_path / "run", [*overrides, "logger=wandb"])
    assert run.ok
    [offline] = (run.run_dir / "wandb").glob("offline-run-*")

    def inspect(*args: str) -> str:  # wandb's own reader of the run's .wandb transaction log
        out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", *args, str(offline)],
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout

    summary = json.loads(inspect("--summary", "--json"))
    assert summary["state"] == "finished" and summary["exit_code"] == 0 and summary["project"] == "ftframe"
    config = json.loads((run.run_dir / "manifest.json").read_text())["config"]
    assert set(summary["config"]) >= {"backend", "data", "model", "task", "train", "seed"}
    assert summary["config"]["backend"] == config["backend"] and summary["config"]["task"] == config["task"]
    records = [json.loads(line) for line in inspect("--json").splitlines()]
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["train/loss_step"] for h in history if "train/loss_step" in h]  # one per step
    assert len([h for h in history if "val/loss" in h]) == 2  # one per epoch
    assert summary["summary"]["val/loss"] == [h["val/loss"] for h in history if "val/loss" in h][-1]

    assert no_network == [] and requests == []
