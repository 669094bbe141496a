"""What every provider client offers the backend, in provider-neutral shapes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ftframe.api import Message
from ftframe.errors import FtframeError

TERMINAL = ("succeeded", "failed", "cancelled")


class ProviderError(FtframeError):
    """The provider refused a request or a job failed; the message says what the provider said and what
    to do (it never contains the API key)."""


class TransientError(ProviderError):
    """A failure that may go away (429, 5xx, a reset connection) after the client's own retries ran out."""


@dataclass
class RemoteJob:
    id: str
    status: str
    """Normalised: ``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
    raw_status: str
    model_id: str | None = None
    """The tuned model's id for inference, once the job succeeded."""
    trained_tokens: int | None = None
    error: str | None = None
    epochs: int | None = None
    created_at: float | None = None
    finished_at: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass
class JobEvent:
    id: str
    message: str
    level: str = "info"
    when: str = ""
    step: int | None = None
    total_steps: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


class ProviderClient(Protocol):
    """One provider's fine-tuning and chat API, errors mapped to :class:`ProviderError`."""

    def upload(self, path: Path) -> str:
        """Upload a training file (purpose fine-tune); returns its file id."""
        ...

    def create_job(self, params: dict[str, Any]) -> RemoteJob:
        """Create the job once, without retrying (a retry could create a second, paid job)."""
        ...

    def find_job(self, params: dict[str, Any]) -> RemoteJob | None:
        """The job that ``create_job(params)`` made, if a failed-looking create did reach the provider."""
        ...

    def retrieve(self, job_id: str) -> RemoteJob: ...

    def new_events(self, job_id: str, seen: set[str]) -> list[JobEvent]:
        """Events not in ``seen`` (added to it), oldest first."""
        ...

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]: ...

    def cancel(self, job_id: str) -> RemoteJob: ...

    def chat(self, model: str, messages: Sequence[Message], max_tokens: int) -> str:
        """One greedy chat completion."""
        ...
