"""``backend=openai``: OpenAI's fine-tuning API through the official ``openai`` SDK.

Upload the prepared split (``/files``, or the Uploads API above ``upload_parts_above_mb``), create one
``/fine_tuning/jobs`` job (supervised or DPO), watch status, events and checkpoints, then evaluate the
tuned model through chat completions. The SDK retries 429, 5xx and dropped connections itself
(exponential backoff with jitter, ``backend.max_retries`` times) — except the job create, which is sent
once and, after a transient failure, looked up by its ``metadata.ftframe_run`` token before any retry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ftframe.api import Message
from ftframe.errors import ConfigError
from ftframe_providers.base import ProviderBackend, ProviderConfig
from ftframe_providers.cost import openai_default_epochs
from ftframe_providers.keys import ApiKey
from ftframe_providers.remote import JobEvent, ProviderError, RemoteJob, TransientError

OPENAI_PRICES = {
    # USD per 1M training tokens (openai.com/api/pricing, 2025); override with backend.prices.
    "gpt-4.1-2025-04-14": 25.0,
    "gpt-4.1-mini-2025-04-14": 5.0,
    "gpt-4.1-nano-2025-04-14": 1.5,
    "gpt-4o-2024-08-06": 25.0,
    "gpt-4o-mini-2024-07-18": 3.0,
    "gpt-3.5-turbo-0125": 8.0,
}
STATUS = {"validating_files": "queued", "queued": "queued", "running": "running", "paused": "running",
          "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled"}
MIME_JSONL = "text/jsonl"


@dataclass
class OpenAIConfig(ProviderConfig):
    no_equivalent: ClassVar[dict[str, str]] = {
        **ProviderConfig.no_equivalent,
        "lr": "OpenAI takes no learning rate, only backend.learning_rate_multiplier, a factor on the default it "
              "picks for the base model and batch size and does not publish, so no rule turns an lr into a "
              "multiplier; set backend.learning_rate_multiplier instead",
        "warmup_ratio": "OpenAI's fine-tuning API has no warmup option (its schedule is its own)",
    }

    model: str = "gpt-4.1-mini-2025-04-14"
    """OpenAI base model id to fine-tune (a dated snapshot, as the fine-tuning API lists them)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the key (``OPENAI_API_KEY_FILE`` may name a file instead)."""
    learning_rate_multiplier: float | None = None
    """Scales OpenAI's default learning rate; null: ``auto``."""
    beta: float | None = None
    """DPO only: weight of the penalty between policy and reference model (0 < beta <= 2); null: ``auto``."""
    seed: int | None = None
    """The job's seed; null: the run's ``seed``."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Key-value pairs attached to the job (``ftframe_run`` and ``ftframe_task`` are added)."""
    prices: dict[str, float] = field(default_factory=lambda: dict(OPENAI_PRICES))
    """USD per 1M training tokens per base model, for the estimate; override when prices change."""
    upload_parts_above_mb: float = 512.0
    """Files larger than this go through the Uploads API in parts (the Files API takes up to 512 MB)."""
    upload_part_mb: float = 64.0
    """Part size for the Uploads API."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta is not None and self.method != "dpo":
            raise ConfigError("backend.beta applies to method=dpo only; remove it or set backend.method=dpo.")
        if self.suffix is not None and not 1 <= len(self.suffix) <= 64:
            raise ConfigError(f"backend.suffix must have 1 to 64 characters, got {len(self.suffix)}.")
        if len(self.metadata) > 14:
            raise ConfigError("backend.metadata: OpenAI takes at most 16 keys, and ftframe adds 2; remove some.")


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and body.get("message"):
        param = f" (param: {body['param']})" if body.get("param") else ""
        return f"{body['message']}{param}"
    return str(getattr(exc, "message", None) or exc)


class OpenAIClient:
    """The fine-tuning and chat calls the backend makes, with errors mapped to :class:`ProviderError`."""

    provider = "OpenAI"

    def __init__(self, key: ApiKey, config: OpenAIConfig, seed: int | None = None):
        from openai import OpenAI

        self.key, self.config, self.seed = key, config, seed
        self.sdk = OpenAI(api_key=key.value, base_url=config.base_url, max_retries=config.max_retries,
                          timeout=config.timeout_seconds)

    @contextlib.contextmanager
    def calls(self, what: str) -> Iterator[None]:
        import openai

        try:
            yield
        except openai.AuthenticationError as exc:
            raise ProviderError(self.key.scrub(
                f"OpenAI rejected the API key from {self.key.source} while {what} (401: {_message(exc)}). Check "
                f"that the key is current and belongs to the project that should pay.")) from None
        except openai.PermissionDeniedError as exc:
            raise ProviderError(self.key.scrub(
                f"OpenAI refused {what} (403: {_message(exc)}). The key's project lacks access to this model or "
                f"to fine-tuning; check its permissions.")) from None
        except openai.NotFoundError as exc:
            raise ProviderError(self.key.scrub(
                f"OpenAI found nothing while {what} (404: {_message(exc)}). Check backend.job_id / backend.model "
                f"and that the key belongs to the organisation that owns them.")) from None
        except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
            code = getattr(exc, "status_code", None)
            raise TransientError(self.key.scrub(
                f"OpenAI did not answer while {what} ({code or 'connection'}: {_message(exc)}) after "
                f"{self.config.max_retries} retries; try again later.")) from None
        except openai.APIStatusError as exc:
            raise ProviderError(self.key.scrub(
                f"OpenAI refused {what} ({exc.status_code}: {_message(exc)}). Fix the request as the message "
                f"says (config key backend.*) and run again.")) from None

    # -------------------------------------------------------------------------- fine-tuning
    def upload(self, path: Path) -> str:
        size = path.stat().st_size
        with self.calls(f"uploading {path.name}"):
            if size > self.config.upload_parts_above_mb * 1024 * 1024:
                upload = self.sdk.uploads.upload_file_chunked(
                    file=path, mime_type=MIME_JSONL, purpose="fine-tune", bytes=size,
                    part_size=max(1, int(self.config.upload_part_mb * 1024 * 1024)))
                if upload.file is None:
                    raise ProviderError(f"OpenAI completed the upload of {path.name} ({upload.id}) without a file.")
                return upload.file.id
            with path.open("rb") as f:
                return self.sdk.files.create(file=(path.name, f), purpose="fine-tune").id

    def create_job(self, params: dict[str, Any]) -> RemoteJob:
        with self.calls("creating the fine-tuning job"):
            return self._job(self.sdk.with_options(max_retries=0).fine_tuning.jobs.create(**params))

    def find_job(self, params: dict[str, Any]) -> RemoteJob | None:
        token = params["metadata"]["ftframe_run"]
        with self.calls("looking for a job created by a failed-looking request"):
            page = self.sdk.fine_tuning.jobs.list(metadata={"ftframe_run": token}, limit=10)
        found = [j for j in page.data if j.training_file == params["training_file"]]
        return self._job(found[0]) if found else None

    def retrieve(self, job_id: str) -> RemoteJob:
        with self.calls(f"reading job {job_id}"):
            return self._job(self.sdk.fine_tuning.jobs.retrieve(job_id))

    def new_events(self, job_id: str, seen: set[str]) -> list[JobEvent]:
        with self.calls(f"reading the events of job {job_id}"):
            page = self.sdk.fine_tuning.jobs.list_events(job_id, limit=100)
        out = []
        for e in reversed(page.data):  # the API lists newest first
            if e.id in seen:
                continue
            seen.add(e.id)
            data = dict(e.data or {}) if isinstance(e.data, dict) else {}
            step = data.get("step") if e.type == "metrics" else None
            out.append(JobEvent(id=e.id, message=e.message, level=e.level, step=step,
                                total_steps=data.get("total_steps"), data=data))
        return out

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        with self.calls(f"listing the checkpoints of job {job_id}"):
            page = self.sdk.fine_tuning.jobs.checkpoints.list(job_id, limit=100)
        return [{"id": c.id, "step": c.step_number, "model": c.fine_tuned_model_checkpoint,
                 "metrics": c.metrics.model_dump(exclude_none=True) if c.metrics else {}} for c in page.data]

    def cancel(self, job_id: str) -> RemoteJob:
        with self.calls(f"cancelling job {job_id}"):
            return self._job(self.sdk.fine_tuning.jobs.cancel(job_id))

    def chat(self, model: str, messages: Sequence[Message], max_tokens: int) -> str:
        with self.calls(f"asking {model}"):
            extra = {"seed": self.seed} if self.seed is not None else {}
            res = self.sdk.chat.completions.create(model=model, messages=list(messages), temperature=0,
                                                   max_completion_tokens=max_tokens, **extra)
        return res.choices[0].message.content or ""

    # -------------------------------------------------------------------------- shapes
    @staticmethod
    def _job(job: Any) -> RemoteJob:
        error = None
        if job.error is not None and (job.error.message or job.error.code):
            error = f"{job.error.message or job.error.code}" + (f" (param: {job.error.param})" if job.error.param else "")
        epochs = None
        method = getattr(job, "method", None)
        hp = getattr(getattr(method, method.type, None), "hyperparameters", None) if method and method.type else None
        for source in (hp, job.hyperparameters):
            value = getattr(source, "n_epochs", None) if source is not None else None
            if isinstance(value, int):
                epochs = value
                break
        return RemoteJob(id=job.id, status=STATUS.get(job.status, "running"), raw_status=job.status,
                         model_id=job.fine_tuned_model, trained_tokens=job.trained_tokens, error=error,
                         epochs=epochs, created_at=job.created_at, finished_at=job.finished_at)


class OpenAIBackend(ProviderBackend):
    """Fine-tunes on OpenAI (supervised or DPO) and evaluates the tuned model through chat completions."""

    name = "openai"
    provider = "OpenAI"
    Config = OpenAIConfig

    def make_client(self, key: ApiKey) -> OpenAIClient:
        return OpenAIClient(key, self.config, seed=self.config.seed)

    def default_epochs(self, n_examples: int) -> tuple[int, str]:
        return openai_default_epochs(n_examples), "OpenAI auto"

    def job_params(self, job: Any, training_file: str, validation_file: str | None, run_token: str) -> dict[str, Any]:
        c = self.config
        hp: dict[str, Any] = {k: v for k, v in (("n_epochs", c.n_epochs), ("batch_size", c.batch_size),
                                                  ("learning_rate_multiplier", c.learning_rate_multiplier))
                              if v is not None}
        if c.method == "dpo" and c.beta is not None:
            hp["beta"] = c.beta
        seed = c.seed if c.seed is not None else int(job.seed)
        params: dict[str, Any] = {
            "model": c.model, "training_file": training_file,
            "method": {"type": c.method, c.method: {"hyperparameters": hp}},
            "seed": seed % 2_147_483_648,
            "metadata": {**{str(k): str(v) for k, v in c.metadata.items()}, "ftframe_run": run_token,
                         "ftframe_task": str(job.task.name)[:512]},
        }
        if validation_file:
            params["validation_file"] = validation_file
        if c.suffix:
            params["suffix"] = c.suffix
        return params
