"""What the provider backends share: options, cost and budget, upload, one job (never two), watching,
and the chat predictor for evaluation. Each provider adds its client and its job parameters."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.prompt import Confirm
from rich.table import Table

from ftframe import console as ui
from ftframe.api import Backend, Example, Predictor, TrainedModel
from ftframe.config import one_of, portable
from ftframe.errors import ConfigError, DataError, FtframeError
from ftframe_providers import cost
from ftframe_providers.jsonl import write_training_file
from ftframe_providers.keys import ApiKey, refuse_config_key, resolve_key
from ftframe_providers.predictor import SCORE_UNSUPPORTED, ChatPredictor
from ftframe_providers.remote import ProviderClient, ProviderError, RemoteJob, TransientError
from ftframe_providers.retry import delays
from ftframe_providers.state import JobState
from ftframe_providers.watch import Watcher

METHODS = ("supervised", "dpo")


class BudgetExceeded(FtframeError):
    """The estimated cost is above ``backend.budget_usd`` and nobody confirmed it."""


@dataclass
class ProviderConfig:
    """Options every provider backend has (each provider adds its hyperparameters)."""

    synonyms: ClassVar[dict[str, str]] = {"epochs": "n_epochs", "num_epochs": "n_epochs",
                                          "num_train_epochs": "n_epochs", "per_device_train_batch_size": "batch_size"}
    portable: ClassVar[dict[str, str]] = {"epochs": "n_epochs", "batch_size": "batch_size"}
    """Portable ``train.*`` keys -> these options (``ftframe.config.portable``); each provider adds its own."""
    no_equivalent: ClassVar[dict[str, str]] = {
        "max_length": "the provider trains each example whole, up to its own limit for the base model, and "
                      "ftframe cuts nothing for it (backend.max_tokens_per_example is that limit for the cost "
                      "estimate)",
    }
    """Portable keys these options have no equivalent for -> why, and what comes closest."""

    model: str = ""
    """The provider's base model id to fine-tune (the ``model`` group is not used by provider backends)."""
    method: str = "supervised"
    """``supervised`` (chat examples) or ``dpo`` (preference pairs with chosen/rejected replies)."""
    n_epochs: int | None = None
    """Epochs; null: the provider's default (OpenAI ``auto``; see docs/providers.md for the rule)."""
    batch_size: int | None = None
    """Examples per batch; null: the provider's default."""
    suffix: str | None = None
    """Added to the tuned model's name (OpenAI: up to 64 characters)."""
    validation: bool = True
    """Upload the validation split as the job's validation file (when it is not empty)."""
    api_key_env: str = ""
    """Name of the environment variable holding the API key (``<name>_FILE`` may name a file instead)."""
    api_key: str | None = None
    """Refused when set: keys come only from the environment, because Hydra writes the config to disk."""
    base_url: str | None = None
    """API base URL; null: ``OPENAI_BASE_URL`` / ``TOGETHER_BASE_URL`` from the environment, else the
    provider's public endpoint (tests point it at a loopback server)."""
    budget_usd: float = 5.0
    """Above this estimated training cost, ask before uploading (or refuse without a terminal)."""
    yes: bool = False
    """Accept an estimate above ``budget_usd`` (or an unknown price) without asking."""
    prices: dict[str, float] = field(default_factory=dict)
    """USD per 1M training tokens per base model, for the estimate; override when prices change."""
    max_tokens_per_example: int = 65_536
    """Longest example the provider trains on; longer ones are billed (and cut) at this length."""
    job_id: str | None = None
    """Watch this existing job instead of uploading and creating a new one."""
    poll_seconds: float = 15.0
    """Seconds between status polls."""
    max_wait_hours: float | None = None
    """Stop watching (the job keeps running) after this long; null: wait until the job ends."""
    max_retries: int = 5
    """Retries of a request after a 429, a 5xx or a dropped connection (exponential backoff, jitter)."""
    retry_base_seconds: float = 1.0
    """First backoff delay of the retries this backend makes itself (doubles each time, with jitter)."""
    timeout_seconds: float = 120.0
    """Timeout of one HTTP request."""
    concurrency: int = 4
    """Chat requests in flight at once during evaluation."""

    def __post_init__(self) -> None:
        refuse_config_key(self.api_key, self.api_key_env)
        one_of("backend.method", self.method, METHODS)
        problems = []
        if not self.model:
            problems.append("backend.model: name the provider's base model to fine-tune.")
        for key in ("n_epochs", "batch_size"):
            value = getattr(self, key)
            if value is not None and value < 1:
                problems.append(f"backend.{key} must be at least 1 (or null for the provider's default), got {value}.")
        for key in ("budget_usd", "poll_seconds", "retry_base_seconds"):
            if getattr(self, key) < 0:
                problems.append(f"backend.{key} must not be negative, got {getattr(self, key)}.")
        if self.max_retries < 0 or self.concurrency < 1:
            problems.append("backend.max_retries must be >= 0 and backend.concurrency >= 1.")
        if problems:
            raise ConfigError(problems)


class ProviderBackend(Backend):
    kind = "remote"
    """Template of a provider backend: subclasses name the provider and build its client and job body."""

    provider: ClassVar[str] = ""

    # ------------------------------------------------------------------ provider specifics
    def make_client(self, key: ApiKey) -> ProviderClient:
        raise NotImplementedError

    def default_epochs(self, n_examples: int) -> tuple[int, str]:
        """Epochs the provider runs when ``n_epochs`` is null, and the rule's name."""
        raise NotImplementedError

    def job_params(self, job: Any, training_file: str, validation_file: str | None, run_token: str) -> dict[str, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------ the contract
    def estimate_cost(self, billed_tokens_per_epoch: int, n_examples: int) -> dict[str, Any]:
        """Estimated training cost: ``epochs``, ``billed_tokens``, ``usd`` (None without a price) and more."""
        if self.config.n_epochs is not None:
            epochs, rule = int(self.config.n_epochs), "backend.n_epochs"
        else:
            epochs, rule = self.default_epochs(n_examples)
        return cost.estimate(model=self.config.model, prices=self.config.prices, epochs=epochs, epochs_rule=rule,
                             billed_tokens_per_epoch=billed_tokens_per_epoch, n_examples=n_examples)

    default_exporters = ("model_card",)  # no local weights: nothing for adapter, merged or gguf to write

    @classmethod
    def config_problems(cls, config: Any) -> list[str]:
        ev = config.get("eval") or {}
        return [f"eval.{key}: " + SCORE_UNSUPPORTED.format(mode=ev.get(key), backend=cls.name)
                for key in ("mode", "val_mode") if ev.get(key) in ("score", "both")]

    def example_problems(self, examples: Sequence[Example]) -> list[str]:
        missing = [ex for ex in examples if not ex.is_preference] if self.config.method == "dpo" else []
        if not missing:
            return super().example_problems(examples)
        return [(f"backend.method=dpo needs preference pairs (a 'chosen' and a 'rejected' reply per prompt); "
                 f"{len(missing)} of {len(examples)} training examples have none (first: {missing[0].source}). "
                 f"Use preference data, or backend.method=supervised.")]

    def baseline(self, job: Any) -> Predictor:
        self._check_job(job)
        return self.predictor(self._client(), self.config.model, f"{self.config.model} (base)")

    def train(self, job: Any) -> TrainedModel:
        self._check_job(job)
        con = ui.get_console()
        not_applied = portable.not_applied(job.config, type(self.config))
        for value, why in not_applied.items():  # a task's portable value this provider has no option for
            con.print(f"[yellow]{value} is not applied at {self.provider}:[/] {why}.")
        client = self._client()
        state = JobState(job.run_dir)
        saved = state.load()
        estimate = None
        if self.config.job_id:
            job_id = str(self.config.job_id)
            con.print(f"watching the existing {self.provider} job {job_id} (backend.job_id; nothing uploaded)")
            state.save(provider=self.name, job_id=job_id, base_model=self.config.model)
        elif saved.get("job_id"):
            job_id = str(saved["job_id"])
            con.print(f"re-using the {self.provider} job {job_id} recorded in {state.path} (nothing uploaded)")
        else:
            job_id, estimate = self._start(job, client, state, saved, con)
        watcher = Watcher(client, con, provider=self.provider, poll_seconds=self.config.poll_seconds,
                          max_wait_seconds=None if self.config.max_wait_hours is None
                          else self.config.max_wait_hours * 3600)
        remote = watcher.watch(job_id)
        state.save(status=remote.status, fine_tuned_model=remote.model_id, trained_tokens=remote.trained_tokens)
        if remote.status != "succeeded" or not remote.model_id:
            why = remote.error or f"status {remote.raw_status}"
            raise ProviderError(f"{self.provider} fine-tuning job {job_id} ended without a model: {why}. "
                                f"Fix the cause and start a new run (a new job); details in the provider's console.")
        checkpoints = client.checkpoints(job_id)
        con.print(f"[green]✓[/] {self.provider} job {job_id} succeeded: [bold]{remote.model_id}[/]"
                  + (f" ({len(checkpoints)} checkpoints)" if checkpoints else ""))
        info = {"backend": self.name, "provider": self.provider, "base_model": self.config.model,
                "method": self.config.method, "job_id": job_id, "fine_tuned_model": remote.model_id,
                "status": remote.status, "trained_tokens": remote.trained_tokens, "epochs_run": remote.epochs,
                "steps": watcher.last_metrics.get("step"), "train_seconds": (round(remote.finished_at - remote.created_at, 1)
                                                 if remote.finished_at and remote.created_at else None),
                "tokens_per_second": None, "checkpoints": checkpoints, "cost_estimate": estimate,
                "not_applied": not_applied}
        predictor = self.predictor(client, remote.model_id, f"{remote.model_id} ({self.provider})")
        return TrainedModel(predictor=predictor, kind=self.kind, remote_id=remote.model_id, info=info)

    # ------------------------------------------------------------------ steps
    def predictor(self, client: ProviderClient, model: str, name: str) -> ChatPredictor:
        return ChatPredictor(lambda messages, n: client.chat(model, messages, n), name=name, backend=self.name,
                             concurrency=self.config.concurrency)

    def _client(self) -> ProviderClient:
        return self.make_client(resolve_key(self.config.api_key_env))

    def _check_job(self, job: Any) -> None:
        """Refuse before any request what :meth:`config_problems` and :meth:`example_problems` find (also
        for a job that did not go through ``ftframe validate``)."""
        found = self.config_problems(job.config)
        if found:
            raise ConfigError(found)
        found = self.example_problems(job.train)
        if found:
            raise DataError("\n".join(found))

    def _start(self, job: Any, client: ProviderClient, state: JobState, saved: dict[str, Any],
               con: Any) -> tuple[str, dict[str, Any]]:
        """Write and price the files, confirm the budget, upload, create the job and record its id."""
        folder = Path(job.run_dir) / "provider"
        train_path = write_training_file(folder / "train.jsonl", job.train, self.config.method)
        val_path = (write_training_file(folder / "validation.jsonl", job.val, self.config.method)
                    if self.config.validation and job.val else None)
        tokens = cost.billed_tokens_per_epoch(job.train, self.config.max_tokens_per_example)
        estimate = self.estimate_cost(tokens, len(job.train))
        self._confirm_budget(estimate, con)
        training_file = client.upload(train_path)
        validation_file = client.upload(val_path) if val_path else None
        con.print(f"uploaded {train_path.name} → {training_file}"
                  + (f", {val_path.name} → {validation_file}" if val_path else ""))
        token = saved.get("run_token") or uuid.uuid4().hex
        state.save(provider=self.name, base_model=self.config.model, run_token=token, training_file=training_file,
                   validation_file=validation_file, status="creating", cost_estimate=estimate)
        params = self.job_params(job, training_file, validation_file, token)
        remote = self._create_once(client, params)
        state.save(job_id=remote.id, status=remote.status, created=time.time())
        con.print(f"created {self.provider} job [bold]{remote.id}[/] (recorded in {state.path}; "
                  f"resume with backend.job_id={remote.id})")
        return remote.id, estimate

    def _create_once(self, client: ProviderClient, params: dict[str, Any]) -> RemoteJob:
        """Create the job; after a transient failure look for it before trying again, so that a request
        that did reach the provider never becomes a second paid job."""
        waits = delays(self.config.max_retries, base=self.config.retry_base_seconds)
        while True:
            try:
                return client.create_job(params)
            except TransientError as exc:
                found = client.find_job(params)
                if found is not None:
                    return found
                wait = next(waits, None)
                if wait is None:
                    raise ProviderError(f"{exc} Gave up creating the {self.provider} job after "
                                        f"{self.config.max_retries} retries; no job was created.") from None
                time.sleep(wait)

    def _confirm_budget(self, estimate: dict[str, Any], con: Any) -> None:
        table = Table(title=f"{self.provider} training cost estimate", title_justify="left")
        for column in ("base model", "examples", "tokens/epoch (est.)", "epochs", "billed tokens", "USD"):
            table.add_column(column, justify="left" if column == "base model" else "right")
        usd = estimate["usd"]
        table.add_row(estimate["model"], str(estimate["examples"]), f"{estimate['billed_tokens_per_epoch']:,}",
                      f"{estimate['epochs']} ({estimate['epochs_rule']})", f"{estimate['billed_tokens']:,}",
                      "unknown" if usd is None else f"{usd:.2f}")
        con.print(table)
        budget = float(self.config.budget_usd)
        if usd is not None and usd <= budget:
            return
        reason = (f"the estimated ${usd:.2f} is above backend.budget_usd=${budget:.2f}" if usd is not None else
                  f"backend.prices has no price for {estimate['model']!r}, so the cost cannot be checked against "
                  f"backend.budget_usd")
        if self.config.yes:
            con.print(f"[yellow]{reason}; going ahead because backend.yes=true[/]")
            return
        if sys.stdin.isatty() and Confirm.ask(f"{reason}. Upload the data and start the paid job?", default=False):
            return
        raise BudgetExceeded(f"Not starting the {self.provider} job: {reason}. Nothing was uploaded. Set "
                             f"backend.yes=true to accept the cost, or raise backend.budget_usd.")
