"""The decode loop behind ``ftframe serve``: one thread decodes every request together (continuous batching).

Requests wait in a bounded queue; at every decoding step the loop admits waiting requests into the running
batch (their prompts are prefilled and their KV caches merged in, :class:`ftframe.engine.decoding.BatchDecoder`),
runs one step for all rows, and hands each request its new token. A request that ends (end token, grammar
complete, ``max_tokens``), is cancelled (its client went away, a stop string was seen) or passes its deadline
leaves the batch at once, so it stops costing steps. The model is held in fp32 and its adapter merged for
the loop's life (``ftframe.engine.predict.evaluating``), so a greedy answer is the one the request gets
alone and the one evaluation computes.

**Lanes.** A loop may hold several models, one *lane* each (``ftframe serve --shadow/--canary``: the champion
and a challenger): every lane has its own batch (:class:`BatchDecoder`, its own KV cache), and each round of
the loop steps every lane that has rows, after making its weights the active ones (``Lane.activate``: where
the two are named PEFT adapters over one base model, ``set_adapter``). One thread drives all of them, so
switching adapters never races a forward pass; a request's job names its lane. Mixing both adapters in one
forward pass (PEFT's ``adapter_names=`` per row) would save a pass per round but needs the decoder to carry a
per-row adapter through every call (prefill, shared prefixes, steps); not done.

Why our own loop rather than a serving framework: vLLM and TGI need a GPU build; LitServe batches whole
requests (a batch waits for its slowest answer and nothing joins mid-way). The HTTP side stays Starlette.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ftframe.engine.constrain import Grammar
from ftframe.engine.decoding import BatchDecoder, Row, Sampling

MAIN = "main"
"""The lane of a loop over one model."""


class QueueFull(Exception):
    """The loop's queue of waiting requests is full; ``retry_after`` estimates when to retry (seconds)."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


class Draining(Exception):
    """The server is shutting down and takes no new requests."""


@dataclass(eq=False)
class Job:
    """One request in the loop. Events reach ``events`` (an asyncio queue of the caller's event loop):
    ``("token", id)`` per generated token, then ``("end", finish_reason)`` or ``("error", exception)``."""

    prompt: list[int]
    max_tokens: int
    grammar: Grammar | None = None
    sampling: Sampling | None = None
    timeout: float | None = None
    """Seconds from submission after which the request ends with ``finish_reason`` ``timeout``."""
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    loop: asyncio.AbstractEventLoop | None = None
    submitted: float = field(default_factory=time.monotonic)
    row: Row | None = None
    lane: str = MAIN
    """Which model of the loop decodes it (:class:`Lane`)."""

    def emit(self, kind: str, value: Any) -> None:
        if self.loop is None:
            self.events.put_nowait((kind, value))
        else:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))


@dataclass
class Lane:
    """One model of a loop: how to build its decoder, and what makes its weights the active ones before it
    runs (``None``: nothing to switch, e.g. a model of its own)."""

    make_decoder: Callable[[], BatchDecoder]
    activate: Callable[[], None] | None = None


class DecodeLoop:
    """A thread that decodes every submitted :class:`Job` in one batch per lane (see the module docstring).

    ``make_decoder`` builds the :class:`BatchDecoder` of a loop over one model; ``lanes`` instead names
    several (a job's ``lane`` picks one). ``context`` is entered in the loop thread for its whole life (the
    predictors' fp32 / merged-adapter evaluation context). ``max_batch`` rows of each lane decode together;
    up to ``max_queue`` more wait (all lanes together), and further requests get :class:`QueueFull`.
    """

    def __init__(self, make_decoder: Callable[[], BatchDecoder] | None = None, *, context: Callable[[], Any],
                 max_batch: int = 32, max_queue: int = 64, lanes: dict[str, Lane] | None = None):
        if (make_decoder is None) == (lanes is None):
            raise ValueError("give make_decoder (one model) or lanes (several), not both")
        self.lanes = lanes if lanes is not None else {MAIN: Lane(make_decoder)}  # type: ignore[arg-type]
        self.context = context
        self.max_batch, self.max_queue = max_batch, max_queue
        self.waiting: collections.deque[Job] = collections.deque()
        self.cancelled: set[int] = set()
        self.cond = threading.Condition()
        self.live: dict[int, Job] = {}
        self.stopping = False
        self.draining = False
        self.thread: threading.Thread | None = None
        self.recent: collections.deque[float] = collections.deque(maxlen=50)
        """Seconds the last requests took from submission to their end (for ``Retry-After``)."""
        self.stats = {"steps": 0, "admitted": 0, "completed": 0, "cancelled": 0, "timed_out": 0, "rejected": 0}
        self.lane_steps: collections.Counter[str] = collections.Counter()
        """Decoding steps per lane (``stats["steps"]`` counts them all)."""

    # ---------------------------------------------------------------------------------- callers
    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="ftframe-decode", daemon=True)
            self.thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; raises :class:`QueueFull` or :class:`Draining` instead of waiting."""
        if job.lane not in self.lanes:
            raise ValueError(f"job for lane {job.lane!r}; this loop has {', '.join(self.lanes)}")
        with self.cond:
            if self.draining or self.stopping:
                raise Draining()
            if len(self.waiting) >= self.max_queue:
                self.stats["rejected"] += 1
                raise QueueFull(self._retry_after())
            self.waiting.append(job)
            self.cond.notify()

    def cancel(self, job: Job) -> None:
        """Stop decoding ``job`` (its client went away or saw its stop string); a no-op once it ended."""
        with self.cond:
            if job in self.waiting:
                self.waiting.remove(job)
                self.stats["cancelled"] += 1
                job.emit("end", "cancelled")
            else:
                self.cancelled.add(id(job))
            self.cond.notify()

    def drain(self) -> None:
        """Refuse new requests; those already submitted are decoded to their end."""
        with self.cond:
            self.draining = True
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        if self.thread is not None:
            self.thread.join()

    @property
    def busy(self) -> int:
        """Requests decoding or waiting."""
        with self.cond:
            return len(self.live) + len(self.waiting)

    def _retry_after(self) -> int:
        per_request = sorted(self.recent)[len(self.recent) // 2] if self.recent else 1.0
        rounds = (len(self.waiting) + len(self.live)) / max(1, self.max_batch)
        return max(1, round(per_request * rounds))

    # ------------------------------------------------------------------------------------- loop
    def _run(self) -> None:
        decoders = {name: lane.make_decoder() for name, lane in self.lanes.items()}
        active: str | None = None
        with self.context():
            while True:
                with self.cond:
                    while not self.stopping and not self.waiting and not self.live and not self.cancelled:
                        self.cond.wait()
                    if self.stopping:
                        break
                    cancelled, self.cancelled = self.cancelled, set()
                    admit = self._admit(decoders)
                for name, decoder in decoders.items():
                    mine = admit.get(name, [])
                    if not mine and not len(decoder) and not cancelled:
                        continue
                    lane = self.lanes[name]
                    try:
                        if lane.activate is not None and active != name:
                            active = None  # a switch that fails half-way is redone
                            lane.activate()
                            active = name
                        self._one_step(decoder, mine, cancelled, name)
                    except Exception as exc:  # noqa: BLE001 - every request in the batch is told, the loop goes on
                        for job in [j for j in self.live.values() if j.lane == name] + mine:
                            job.emit("error", exc)
                            self.live.pop(id(job), None)
                        decoders[name] = lane.make_decoder()
        for job in list(self.live.values()) + list(self.waiting):
            job.emit("error", Draining())

    def _admit(self, decoders: dict[str, BatchDecoder]) -> dict[str, list[Job]]:
        """Waiting jobs that join their lane's batch now, in order of arrival (called holding the lock)."""
        room = {name: self.max_batch - len(decoder) for name, decoder in decoders.items()}
        admit: dict[str, list[Job]] = {}
        kept: collections.deque[Job] = collections.deque()
        for job in self.waiting:
            decoder = decoders[job.lane]
            if room[job.lane] > 0 and (not len(decoder) or decoder.can_join):
                admit.setdefault(job.lane, []).append(job)
                room[job.lane] -= 1
            else:
                kept.append(job)
        self.waiting = kept
        return admit

    def _one_step(self, decoder: BatchDecoder, admit: list[Job], cancelled: set[int], lane: str = MAIN) -> None:
        now = time.monotonic()
        mine = {k for k, j in self.live.items() if j.lane == lane}
        late = {k for k in mine if (j := self.live[k]).timeout is not None and now - j.submitted > j.timeout}
        for key in (cancelled | late) & mine:
            job = self.live.pop(key)
            decoder.cancel({key})
            self.stats["timed_out" if key in late else "cancelled"] += 1
            job.emit("end", "timeout" if key in late else "cancelled")
        if admit:
            rows = []
            for job in admit:
                job.row = Row(job.prompt, job.max_tokens, key=id(job), grammar=job.grammar, sampling=job.sampling)
                rows.append(job.row)
                self.live[id(job)] = job
            self.stats["admitted"] += len(admit)
            for row in decoder.add(rows):
                self._finish(self.live.pop(row.key), row.finish or "length")
        if not len(decoder):
            return
        before = {row.key: len(row.tokens) for row in decoder.rows}
        rows = list(decoder.rows)
        decoder.step()
        self.stats["steps"] += 1
        self.lane_steps[lane] += 1
        for row in rows:
            job = self.live.get(row.key)
            if job is None:
                continue
            for token in row.tokens[before[row.key]:]:
                job.emit("token", token)
            if row.finish:
                self._finish(self.live.pop(row.key), row.finish)

    def _finish(self, job: Job, finish: str) -> None:
        self.stats["completed"] += 1
        self.recent.append(time.monotonic() - job.submitted)
        job.emit("end", finish)
