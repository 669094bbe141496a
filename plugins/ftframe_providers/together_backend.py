"""``backend=together``: Together AI's fine-tuning API (``/files/upload``, ``/fine-tunes``), over HTTP.

Its shape differs from OpenAI's — LoRA or full training as ``training_type``, ``training_method`` sft or
dpo, an absolute ``learning_rate``, ISO timestamps, events without ids, the tuned model named by
``model_output_name`` — behind the same backend contract. Plain ``httpx2`` (already installed with the
``openai`` SDK) rather than Together's SDK, which would pull a second HTTP stack and a CLI framework.
Requests are retried here (429, 5xx, dropped connections; bounded exponential backoff with jitter,
honouring ``Retry-After``), except the job create, which is looked up by its training file before any retry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from ftframe.api import Message
from ftframe.config import one_of
from ftframe.errors import ConfigError
from ftframe_providers.base import ProviderBackend, ProviderConfig
from ftframe_providers.keys import ApiKey
from ftframe_providers.remote import JobEvent, ProviderError, RemoteJob, TransientError
from ftframe_providers.retry import delays, retry_after

TOGETHER_URL = "https://api.together.xyz/v1"
TOGETHER_PRICES = {
    # USD per 1M training tokens for LoRA SFT by model size (together.ai/pricing, 2025: up to 16B 0.48,
    # 17-69B 1.50, 70-100B 2.90); full fine-tuning and DPO cost more: set backend.prices for them.
    "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference": 0.48,
    "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference": 2.90,
    "Qwen/Qwen2.5-7B-Instruct": 0.48,
    "Qwen/Qwen2.5-14B-Instruct": 0.48,
    "Qwen/Qwen2.5-72B-Instruct": 2.90,
}
STATUS = {"pending": "queued", "queued": "queued", "running": "running", "compressing": "running",
          "uploading": "running", "cancel_requested": "running", "cancelled": "cancelled", "error": "failed",
          "completed": "succeeded"}
METHOD = {"supervised": "sft", "dpo": "dpo"}


@dataclass
class TogetherConfig(ProviderConfig):
    synonyms: ClassVar[dict[str, str]] = {**ProviderConfig.synonyms, "lr": "learning_rate", "r": "lora_r",
                                          "rank": "lora_r", "alpha": "lora_alpha", "dropout": "lora_dropout"}
    portable: ClassVar[dict[str, str]] = {**ProviderConfig.portable, "lr": "learning_rate",
                                          "warmup_ratio": "warmup_ratio"}

    model: str = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    """Together base model id to fine-tune."""
    api_key_env: str = "TOGETHER_API_KEY"
    """Environment variable holding the key (``TOGETHER_API_KEY_FILE`` may name a file instead)."""
    learning_rate: float = 1e-5
    """Peak learning rate (absolute, unlike OpenAI's multiplier)."""
    lora: bool = True
    """LoRA adapters (Together's default); false: full fine-tuning."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA alpha."""
    lora_dropout: float = 0.0
    """LoRA dropout."""
    lora_trainable_modules: str = "all-linear"
    """Modules that get adapters."""
    n_checkpoints: int = 1
    """Checkpoints saved during training."""
    n_evals: int | None = None
    """Evaluations on the validation file during training; null: 1 with a validation file, else 0."""
    warmup_ratio: float = 0.0
    """Share of steps with a linear learning-rate warm-up."""
    train_on_inputs: str = "auto"
    """SFT only: also train on user/prompt tokens (``true``/``false``/``auto``)."""
    beta: float | None = None
    """DPO only: ``dpo_beta``; null: Together's default (0.1)."""
    prices: dict[str, float] = field(default_factory=lambda: dict(TOGETHER_PRICES))
    """USD per 1M training tokens per base model, for the estimate; override when prices change."""

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("backend.train_on_inputs", self.train_on_inputs, ("auto", "true", "false"))
        if self.beta is not None and self.method != "dpo":
            raise ConfigError("backend.beta applies to method=dpo only; remove it or set backend.method=dpo.")
        if self.learning_rate <= 0 or self.lora_r < 1 or self.n_checkpoints < 1:
            raise ConfigError("backend.learning_rate must be > 0, backend.lora_r and backend.n_checkpoints >= 1.")


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


class TogetherClient:
    """Together's fine-tuning and chat endpoints, errors mapped to :class:`ProviderError`."""

    provider = "Together AI"

    def __init__(self, key: ApiKey, config: TogetherConfig):
        import httpx2

        self.key, self.config = key, config
        # TOGETHER_BASE_URL as Together's own SDK reads it (and the openai SDK reads OPENAI_BASE_URL).
        url = config.base_url or os.environ.get("TOGETHER_BASE_URL") or TOGETHER_URL
        self.http = httpx2.Client(base_url=url.rstrip("/") + "/",
                                  headers={"Authorization": f"Bearer {key.value}"}, timeout=config.timeout_seconds)

    def _message(self, response: Any) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:500] or response.reason_phrase
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and error.get("message"):
            return error["message"] + (f" (param: {error['param']})" if error.get("param") else "")
        return str(body)[:500]

    def _fail(self, status: int, message: str, what: str) -> ProviderError:
        if status == 401:
            text = (f"Together AI rejected the API key from {self.key.source} while {what} (401: {message}). "
                    f"Check that the key is current.")
        elif status == 404:
            text = f"Together AI found nothing while {what} (404: {message}). Check backend.job_id / backend.model."
        else:
            text = (f"Together AI refused {what} ({status}: {message}). Fix the request as the message says "
                    f"(config key backend.*) and run again.")
        return ProviderError(self.key.scrub(text))

    def request(self, method: str, path: str, *, what: str, retries: int | None = None, upload: Path | None = None,
                **kwargs: Any) -> dict[str, Any]:
        import httpx2

        waits = delays(self.config.max_retries if retries is None else retries, base=self.config.retry_base_seconds)
        while True:
            response = None
            try:
                if upload is not None:  # reopened per attempt, so a retry sends the whole file again
                    with upload.open("rb") as f:
                        response = self.http.request(method, path, files={"file": (upload.name, f)}, **kwargs)
                else:
                    response = self.http.request(method, path, **kwargs)
            except httpx2.TransportError as exc:
                failure: ProviderError = TransientError(self.key.scrub(
                    f"Together AI did not answer while {what} ({type(exc).__name__}: {exc}); try again later."))
            else:
                if response.status_code < 400:
                    return response.json()
                message = self._message(response)
                if response.status_code != 429 and response.status_code < 500:
                    raise self._fail(response.status_code, message, what)
                failure = TransientError(self.key.scrub(
                    f"Together AI did not answer while {what} ({response.status_code}: {message}); try again later."))
            wait = next(waits, None)
            if wait is None:
                raise failure
            hinted = retry_after(response.headers) if response is not None else None
            time.sleep(min(60.0, hinted) if hinted is not None else wait)

    # -------------------------------------------------------------------------- fine-tuning
    def upload(self, path: Path) -> str:
        res = self.request("POST", "files/upload", what=f"uploading {path.name}", upload=path,
                           data={"purpose": "fine-tune", "file_name": path.name, "file_type": "jsonl"})
        return str(res["id"])

    def create_job(self, params: dict[str, Any]) -> RemoteJob:
        return self._job(self.request("POST", "fine-tunes", what="creating the fine-tuning job", retries=0,
                                      json=params))

    def find_job(self, params: dict[str, Any]) -> RemoteJob | None:
        res = self.request("GET", "fine-tunes", what="looking for a job created by a failed-looking request")
        mine = [j for j in res.get("data") or [] if j.get("training_file") == params["training_file"]]
        return self._job(max(mine, key=lambda j: j.get("created_at") or "")) if mine else None

    def retrieve(self, job_id: str) -> RemoteJob:
        return self._job(self.request("GET", f"fine-tunes/{job_id}", what=f"reading job {job_id}"))

    def new_events(self, job_id: str, seen: set[str]) -> list[JobEvent]:
        res = self.request("GET", f"fine-tunes/{job_id}/events", what=f"reading the events of job {job_id}")
        out = []
        for e in res.get("data") or []:  # oldest first; events carry no id, so key them by their content
            key = e.get("hash") or f"{e.get('created_at')}|{e.get('type')}|{e.get('message')}"
            if key in seen:
                continue
            seen.add(key)
            level = str(e.get("level") or "info").replace("legacy_i", "").replace("legacy_", "")
            step = e.get("step") if e.get("total_steps") else None
            out.append(JobEvent(id=key, message=str(e.get("message") or e.get("type")), level=level,
                                when=str(e.get("created_at") or ""), step=step, total_steps=e.get("total_steps"),
                                data={}))
        return out

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        res = self.request("GET", f"fine-tunes/{job_id}/checkpoints", what=f"listing the checkpoints of job {job_id}")
        return [{"step": c.get("step"), "path": c.get("path"), "type": c.get("checkpoint_type")}
                for c in res.get("data") or []]

    def cancel(self, job_id: str) -> RemoteJob:
        return self._job(self.request("POST", f"fine-tunes/{job_id}/cancel", what=f"cancelling job {job_id}"))

    def chat(self, model: str, messages: Sequence[Message], max_tokens: int) -> str:
        res = self.request("POST", "chat/completions", what=f"asking {model}",
                           json={"model": model, "messages": list(messages), "max_tokens": max_tokens,
                                 "temperature": 0})
        return (res["choices"][0]["message"].get("content") or "") if res.get("choices") else ""

    @staticmethod
    def _job(body: dict[str, Any]) -> RemoteJob:
        raw = str(body.get("status"))
        errors = [e.get("message") for e in body.get("events") or []
                  if e.get("type") == "job_error" or e.get("level") in ("error", "legacy_ierror")]
        return RemoteJob(id=str(body["id"]), status=STATUS.get(raw, "running"), raw_status=raw,
                         model_id=body.get("model_output_name") if raw == "completed" else None,
                         trained_tokens=body.get("token_count"), error=errors[-1] if errors else None,
                         epochs=body.get("n_epochs"), created_at=_timestamp(body.get("created_at")),
                         finished_at=_timestamp(body.get("updated_at")) if raw in ("completed", "error", "cancelled")
                         else None)


class TogetherBackend(ProviderBackend):
    """Fine-tunes on Together AI (LoRA or full; SFT or DPO) and evaluates through its chat completions."""

    name = "together"
    provider = "Together AI"
    Config = TogetherConfig

    def make_client(self, key: ApiKey) -> TogetherClient:
        return TogetherClient(key, self.config)

    def default_epochs(self, n_examples: int) -> tuple[int, str]:
        return 1, "Together default"

    def job_params(self, job: Any, training_file: str, validation_file: str | None, run_token: str) -> dict[str, Any]:
        c = self.config
        method: dict[str, Any] = {"method": METHOD[c.method]}
        if c.method == "dpo":
            if c.beta is not None:
                method["dpo_beta"] = c.beta
        else:
            method["train_on_inputs"] = {"true": True, "false": False}.get(c.train_on_inputs, "auto")
        params: dict[str, Any] = {
            "model": c.model, "training_file": training_file, "n_epochs": c.n_epochs or 1,
            "learning_rate": c.learning_rate, "n_checkpoints": c.n_checkpoints, "warmup_ratio": c.warmup_ratio,
            "batch_size": c.batch_size if c.batch_size is not None else "max", "training_method": method,
            "training_type": ({"type": "Lora", "lora_r": c.lora_r, "lora_alpha": c.lora_alpha,
                               "lora_dropout": c.lora_dropout, "lora_trainable_modules": c.lora_trainable_modules}
                              if c.lora else {"type": "Full"}),
        }
        if validation_file:
            params["validation_file"] = validation_file
        params["n_evals"] = c.n_evals if c.n_evals is not None else (1 if validation_file else 0)
        if c.suffix:
            params["suffix"] = c.suffix
        return params
