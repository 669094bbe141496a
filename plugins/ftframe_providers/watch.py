"""Watch a provider job until it ends: status and new events on the console, a progress bar over the
training steps, and Ctrl-C asking whether to cancel the (paid) job, detach from it, or keep watching."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.prompt import Prompt

from ftframe import console as ui
from ftframe_providers.remote import JobEvent, ProviderClient, ProviderError, RemoteJob

CHOICES = ("cancel", "detach", "watch")


def ask_on_interrupt(job_id: str, provider: str) -> str:
    """Ask on a terminal what Ctrl-C should do; without one, detach (never cancel paid work unasked)."""
    if not sys.stdin.isatty():
        return "detach"
    return Prompt.ask(f"\nInterrupted. [bold]cancel[/] the {provider} job {job_id} (stops billing, loses the "
                      f"run), [bold]detach[/] (the job keeps running) or keep [bold]watching[/]?",
                      choices=list(CHOICES), default="detach")


def _event_line(event: JobEvent) -> str:
    colour = {"error": "red", "warn": "yellow", "warning": "yellow"}.get(event.level, "dim")
    return f"[{colour}]{event.when}[/] {event.message}" if event.when else f"[{colour}]{event.message}[/]"


class Watcher:
    """Polls ``client`` every ``poll_seconds``; returns the job once it succeeded, failed or was cancelled."""

    def __init__(self, client: ProviderClient, console: Console, *, provider: str, poll_seconds: float,
                 max_wait_seconds: float | None, ask: Callable[[str, str], str] | None = None):
        self.client, self.console, self.provider = client, console, provider
        self.poll_seconds, self.max_wait_seconds, self.ask = poll_seconds, max_wait_seconds, ask
        self.seen: set[str] = set()
        self.last_metrics: dict[str, Any] = {}

    def watch(self, job_id: str) -> RemoteJob:
        started = time.monotonic()
        while True:
            try:
                return self._poll_until_done(job_id, started)
            except KeyboardInterrupt:
                choice = (self.ask or ask_on_interrupt)(job_id, self.provider)
                if choice == "watch":
                    continue
                if choice == "cancel":
                    job = self.client.cancel(job_id)
                    self.console.print(f"[yellow]cancel requested for {self.provider} job {job_id} "
                                       f"(status {job.raw_status})[/]")
                else:
                    self.console.print(f"[yellow]detached; the {self.provider} job {job_id} keeps running.[/] "
                                       f"Watch it again with backend.job_id={job_id}")
                raise

    def _poll_until_done(self, job_id: str, started: float) -> RemoteJob:
        with ui.live_progress(self.console, f"{self.provider} job {job_id}") as update:
            while True:
                job = self.client.retrieve(job_id)
                for event in self.client.new_events(job_id, self.seen):
                    self.console.print(_event_line(event))
                    if event.step is not None:
                        self.last_metrics = {**event.data, "step": event.step, "total_steps": event.total_steps}
                step, total = self.last_metrics.get("step"), self.last_metrics.get("total_steps")
                loss = self.last_metrics.get("train_loss")
                update(description=f"{self.provider} {job_id}: {job.raw_status}"
                       + (f", loss {loss:.4f}" if isinstance(loss, (int, float)) else ""),
                       total=total, completed=step or 0)
                if job.terminal:
                    if job.status == "succeeded" and total:
                        update(completed=total)
                    return job
                if self.max_wait_seconds is not None and time.monotonic() - started > self.max_wait_seconds:
                    raise ProviderError(f"{self.provider} job {job_id} is still {job.raw_status} after "
                                        f"backend.max_wait_hours; it keeps running. Watch it again with "
                                        f"backend.job_id={job_id}.")
                time.sleep(self.poll_seconds)
