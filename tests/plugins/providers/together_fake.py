"""A loopback server speaking Together AI's fine-tuning and chat API (``/v1/files/upload``,
``/v1/fine-tunes``...), built from the OpenAPI blocks of Together's public API reference
(``together_openapi_subset.yaml`` beside this file). Request bodies and JSON answers are validated
against it; problems are answered 400 (or recorded, for off-spec answers) in ``violations``.

A job advances one state per status poll: ``pending`` -> ``queued`` -> ``running`` (events with
``step``/``total_steps``) -> ``completed`` (``model_output_name``, checkpoints) or ``error`` for a job
created while ``fail_jobs`` is set. The tuned model answers like the OpenAI fake's (nearest neighbour).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loopback import LoopbackServer, Reply, Request
from openai_fake import words
from openapi_check import OpenApi

SPEC = Path(__file__).with_name("together_openapi_subset.yaml")
STEPS = 3
MESSAGE = {"type": "object", "required": ["role", "content"],
           "properties": {"role": {"enum": ["system", "user", "assistant", "tool"]}, "content": {"type": "string"}}}
LINE = {  # Together's conversational and preference training-data formats
    "sft": {"type": "object", "required": ["messages"],
            "properties": {"messages": {"type": "array", "minItems": 1, "items": MESSAGE}}},
    "dpo": {"type": "object", "required": ["input", "preferred_output", "non_preferred_output"],
            "properties": {"input": {"type": "object", "required": ["messages"],
                                     "properties": {"messages": {"type": "array", "items": MESSAGE}}},
                           "preferred_output": {"type": "array", "minItems": 1, "items": MESSAGE},
                           "non_preferred_output": {"type": "array", "minItems": 1, "items": MESSAGE}}},
}


def now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeTogether(LoopbackServer):
    def __init__(self, api_key: str):
        super().__init__()
        self.api_key = api_key
        self.api = OpenApi.load(SPEC)
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.fail_jobs = False
        self.failing: set[str] = set()
        self.line_errors: list[str] = []
        self.chat_models: list[str] = []

    def error_body(self, status: int, message: str | None = None) -> Any:
        return {"error": {"message": message or {429: "Rate limit exceeded", 503: "Service overloaded"}.get(
            status, "Internal server error"), "type": "invalid_request_error" if status < 500 else "server_error",
            "param": None, "code": None}}

    def bad(self, message: str, status: int = 400) -> Reply:
        self.violations.append(message)
        return Reply(status, self.error_body(status, message))

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"error": {"message": "Invalid API key provided. You can find your API key at "
                                         "https://api.together.xyz/settings/api-keys.",
                                         "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
        path = request.path.removeprefix("/v1")
        if request.method == "POST" and path == "/chat/completions":
            return self.chat(request)
        found = self.api.operation(request.method, path)
        if found is None:
            return self.bad(f"{request.method} {path}: not in Together's API reference", 404)
        template, op = found
        if request.method == "POST" and (request.form or request.json is not None):
            ctype = "multipart/form-data" if request.form else "application/json"
            schema = self.api.request_schema(op, ctype)
            instance = {k: (v if isinstance(v, str) else "<binary>") for k, v in request.form.items()} \
                if request.form else request.json
            problems = self.api.errors(schema, instance) if schema else []
            if problems:
                return self.bad(f"{request.method} {template}: request off-spec: {problems}")
        ident = path.split("/")[2] if template.startswith("/fine-tunes/") else None
        handler = {("POST", "/files/upload"): self.upload, ("POST", "/fine-tunes"): self.create,
                   ("GET", "/fine-tunes"): self.list_jobs, ("GET", "/fine-tunes/{id}"): self.get,
                   ("POST", "/fine-tunes/{id}/cancel"): self.cancel, ("GET", "/fine-tunes/{id}/events"): self.events,
                   ("GET", "/fine-tunes/{id}/checkpoints"): self.checkpoints}[(request.method, template)]
        with self.lock:
            if ident is not None and ident not in self.jobs:
                return Reply(404, self.error_body(404, f"fine-tune job {ident} not found"))
            status, body = handler(request, ident) if ident else handler(request)
        schema = self.api.response_schema(op, status)
        for problem in self.api.errors(schema, body) if schema else []:
            self.violations.append(f"fake answered off-spec ({template}): {problem}")
        return Reply(status, body)

    # ------------------------------------------------------------------ files and jobs
    def upload(self, request: Request) -> tuple[int, Any]:
        _name, data = request.form["file"]
        fid = f"file-{uuid.uuid4()}"
        self.files[fid] = {"id": fid, "object": "file", "created_at": int(time.time()),
                           "filename": request.form["file_name"], "bytes": len(data), "purpose": request.form["purpose"],
                           "Processed": True, "FileType": request.form.get("file_type", "jsonl")}
        self.contents[fid] = data
        return 200, self.files[fid]

    def create(self, request: Request) -> tuple[int, Any]:
        body = request.json
        for key in ("training_file", "validation_file"):
            if body.get(key) is not None and body[key] not in self.files:
                return 400, self.error_body(400, f"{key} {body[key]} does not exist")
        jid = f"ft-{uuid.uuid4()}"
        job = {"id": jid, "status": "pending", "created_at": now(), "updated_at": now(), "events": [],
               "user_id": "user_ftframe", "model": body["model"], "training_file": body["training_file"],
               **{k: body[k] for k in ("validation_file", "n_epochs", "n_evals", "n_checkpoints", "learning_rate",
                                       "warmup_ratio", "suffix", "training_type", "training_method") if k in body}}
        if isinstance(body.get("batch_size"), int):
            job["batch_size"] = body["batch_size"]
        self.jobs[jid] = job
        if self.fail_jobs:
            self.failing.add(jid)
        self._event(job, "job_pending", "Fine tune request created")
        return 200, job

    def _event(self, job: dict[str, Any], kind: str, message: str, level: str = "info", step: int = 0) -> None:
        job["events"].append({"object": "fine-tune-event", "created_at": now(), "level": level, "message": message,
                              "type": kind, "param_count": 8_030_261_248, "token_count": 0,
                              "total_steps": STEPS if step else 0, "wandb_url": "", "step": step,
                              "checkpoint_path": "", "model_path": "", "training_offset": 0,
                              "hash": uuid.uuid4().hex})

    def _lines_ok(self, job: dict[str, Any]) -> bool:
        method = (job.get("training_method") or {}).get("method", "sft")
        for fid in filter(None, (job["training_file"], job.get("validation_file"))):
            for n, line in enumerate(self.contents[fid].decode("utf-8").splitlines(), start=1):
                self.line_errors += [f"{fid} line {n}: {p}" for p in self.api.errors(LINE[method], json.loads(line))]
        return not self.line_errors

    def get(self, request: Request, jid: str) -> tuple[int, Any]:
        job = self.jobs[jid]
        status = job["status"]
        if status == "pending":
            job["status"] = "queued" if self._lines_ok(job) else "error"
            if job["status"] == "error":
                self._event(job, "job_error", f"Invalid training file: {self.line_errors[0]}", "error")
        elif status == "queued":
            job["status"] = "running"
            self._event(job, "training_start", "Training started")
        elif status == "running":
            step = sum(1 for e in job["events"] if e["type"] == "epoch_complete") + 1
            self._event(job, "epoch_complete", f"Epoch completed, at step {step}", step=step)
            if jid in self.failing:
                job["status"] = "error"
                self._event(job, "job_error", "Training failed: CUDA out of memory. Try a smaller batch_size.",
                            "error")
            elif step >= STEPS:
                job.update(status="completed", token_count=4321, total_price=12,
                           model_output_name=f"ftframe_user/{job['model'].split('/')[-1]}-{job.get('suffix', 'ft')}-"
                                             f"{jid[-6:]}")
                self._event(job, "job_complete", "Job finished")
        job["updated_at"] = now()
        return 200, job

    def list_jobs(self, request: Request) -> tuple[int, Any]:
        return 200, {"data": list(self.jobs.values())}

    def cancel(self, request: Request, jid: str) -> tuple[int, Any]:
        self.jobs[jid]["status"] = "cancelled"
        self._event(self.jobs[jid], "cancel_requested", "Job cancelled by the user")
        return 200, self.jobs[jid]

    def events(self, request: Request, jid: str) -> tuple[int, Any]:
        return 200, {"data": self.jobs[jid]["events"]}

    def checkpoints(self, request: Request, jid: str) -> tuple[int, Any]:
        job = self.jobs[jid]
        done = job["status"] == "completed"
        return 200, {"data": [{"step": STEPS, "created_at": job["updated_at"], "path": f"s3://ft/{jid}/final",
                               "checkpoint_type": "final"}] if done else []}

    # ------------------------------------------------------------------ chat
    def chat(self, request: Request) -> Reply:
        body = request.json or {}
        schema = {"type": "object", "required": ["model", "messages"], "properties": {
            "model": {"type": "string"}, "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
            "max_tokens": {"type": "integer", "minimum": 1}, "temperature": {"type": "number"}}}
        problems = self.api.errors(schema, body)
        if problems:
            return self.bad(f"POST /chat/completions: request off-spec: {problems}")
        model = body["model"]
        self.chat_models.append(model)
        with self.lock:
            job = next((j for j in self.jobs.values() if j.get("model_output_name") == model), None)
        if job is None and model.startswith("ftframe_user/"):
            return Reply(404, self.error_body(404, f"Unable to access model {model}."))
        answer = "I am not sure."
        if job is not None:
            query, best = words(" ".join(m["content"] for m in body["messages"] if m["role"] == "user")), -1
            for line in self.contents[job["training_file"]].decode("utf-8").splitlines():
                rec = json.loads(line)
                convo = rec.get("messages") or rec["input"]["messages"]
                reply = rec.get("preferred_output", convo)[-1]["content"]
                score = len(query & words(" ".join(m["content"] for m in convo if m["role"] == "user")))
                if score > best:
                    best, answer = score, reply
        return Reply(200, {"id": uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
                           "model": model, "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                                        "message": {"role": "assistant", "content": answer}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})
