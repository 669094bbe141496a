"""A loopback server speaking the OpenAI fine-tuning, files, uploads and chat-completions API.

Every request body is validated against the OpenAPI subset in ``shared/datasets/openai_openapi/``
(``fine_tuning_files_subset.yaml``; the training-file lines against the chat / preference input schemas
of the ``_498c71d`` file), and every JSON answer against the response schema of its operation. Problems
are answered as the real API would (400 with an error object) and recorded in ``violations``.

Jobs advance one state per status poll: ``validating_files`` (the training file is checked line by line
here, as the real service does) -> ``running`` (metrics events, one per step) -> ``succeeded`` (the
model id, three checkpoints) or ``failed`` for a job created while ``fail_jobs`` is set.

The tuned model answers a chat request with the reply of the training example whose user message shares
the most words with the request's (a nearest-neighbour "model"); base models answer "I am not sure."
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from loopback import LoopbackServer, Reply, Request
from openapi_check import OpenApi

SHARED = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "openai_openapi"
API_SPEC = SHARED / "fine_tuning_files_subset.yaml"
INPUT_SPEC = SHARED / "fine_tuning_files_subset_498c71d.yaml"
STEPS = 4


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


class FakeOpenAI(LoopbackServer):
    def __init__(self, api_key: str):
        super().__init__()
        self.api_key = api_key
        self.api = OpenApi.load(API_SPEC)
        self.inputs = OpenApi.load(INPUT_SPEC)
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.checkpoints: dict[str, list[dict[str, Any]]] = {}
        self.polls: dict[str, int] = {}
        self.fail_jobs = False
        self.line_errors: list[str] = []
        self.chat_models: list[str] = []

    # ------------------------------------------------------------------ plumbing
    def error_body(self, status: int, message: str | None = None, param: str | None = None,
                   code: str | None = None) -> Any:
        default = {429: "Rate limit reached for requests", 500: "The server had an error while processing your "
                   "request. Sorry about that!"}.get(status, "error")
        return {"error": {"message": message or default, "type": "invalid_request_error" if status < 500
                          else "server_error", "param": param, "code": code}}

    def reply(self, op: dict[str, Any] | None, body: Any, status: int = 200) -> Reply:
        schema = self.api.response_schema(op, status) if op else None
        if schema is not None:
            for problem in self.api.errors(schema, body):
                self.violations.append(f"fake answered off-spec: {problem}")
        return Reply(status, body)

    def bad(self, message: str, param: str | None = None) -> Reply:
        self.violations.append(message)
        return Reply(400, self.error_body(400, message, param))

    def handle(self, request: Request) -> Reply:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            given = auth.removeprefix("Bearer ")
            masked = given[:3] + "*" * max(0, len(given) - 7) + given[-4:] if len(given) > 8 else "***"
            return Reply(401, self.error_body(401, f"Incorrect API key provided: {masked}. You can find your API "
                                              f"key at https://platform.openai.com/account/api-keys.",
                                              code="invalid_api_key"))
        path = request.path.removeprefix("/v1")
        if request.method == "POST" and path == "/chat/completions":
            return self.chat(request)
        found = self.api.operation(request.method, path)
        if found is None:
            return self.bad(f"{request.method} {path}: no such operation in the OpenAPI document")
        template, op = found
        if request.method == "POST":
            ctype = "multipart/form-data" if request.form else "application/json"
            schema = self.api.request_schema(op, ctype)
            if schema is not None:
                instance = {k: (v if isinstance(v, str) else "<binary>") for k, v in request.form.items()} \
                    if request.form else request.json
                problems = self.api.errors(schema, instance)
                if problems:
                    return self.bad(f"{request.method} {template}: request off-spec: {problems}")
        handler = {
            ("POST", "/files"): self.create_file,
            ("POST", "/uploads"): self.create_upload,
            ("POST", "/uploads/{upload_id}/parts"): self.add_part,
            ("POST", "/uploads/{upload_id}/complete"): self.complete_upload,
            ("POST", "/fine_tuning/jobs"): self.create_job,
            ("GET", "/fine_tuning/jobs"): self.list_jobs,
            ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}"): self.get_job,
            ("POST", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel"): self.cancel_job,
            ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events"): self.list_events,
            ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"): self.list_checkpoints,
        }.get((request.method, template))
        if handler is None:
            return self.bad(f"{request.method} {template} is not implemented by the fake")
        ident = path.split("/")[2] if template.startswith("/uploads/") else path.split("/")[3] \
            if template.startswith("/fine_tuning/jobs/") else None
        with self.lock:
            status, body = handler(request, ident) if ident else handler(request)
        return self.reply(op, body, status)

    # ------------------------------------------------------------------ files
    def _file(self, name: str, data: bytes, purpose: str) -> dict[str, Any]:
        fid = f"file-{uuid.uuid4().hex[:24]}"
        obj = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()), "filename": name,
               "purpose": purpose, "status": "processed"}
        self.files[fid], self.contents[fid] = obj, data
        return obj

    def create_file(self, request: Request) -> tuple[int, Any]:
        name, data = request.form["file"]
        return 200, self._file(name, data, request.form["purpose"])

    def create_upload(self, request: Request) -> tuple[int, Any]:
        uid = f"upload_{uuid.uuid4().hex[:20]}"
        body = request.json
        obj = {"id": uid, "object": "upload", "bytes": body["bytes"], "created_at": int(time.time()),
               "filename": body["filename"], "purpose": body["purpose"], "status": "pending",
               "expires_at": int(time.time()) + 3600}
        self.uploads[uid] = obj
        return 200, obj

    def add_part(self, request: Request, uid: str) -> tuple[int, Any]:
        if uid not in self.uploads:
            return 404, self.error_body(404, f"No upload with id {uid}")
        pid = f"part_{uuid.uuid4().hex[:20]}"
        self.parts[pid] = request.form["data"][1]
        return 200, {"id": pid, "object": "upload.part", "created_at": int(time.time()), "upload_id": uid}

    def complete_upload(self, request: Request, uid: str) -> tuple[int, Any]:
        upload = self.uploads[uid]
        data = b"".join(self.parts[p] for p in request.json["part_ids"])
        if len(data) != upload["bytes"]:
            return 400, self.error_body(400, f"Upload {uid} has {len(data)} bytes, {upload['bytes']} were declared")
        upload.update(status="completed", file=self._file(upload["filename"], data, upload["purpose"]))
        return 200, upload

    # ------------------------------------------------------------------ jobs
    def create_job(self, request: Request) -> tuple[int, Any]:
        body = request.json
        for key in ("training_file", "validation_file"):
            fid = body.get(key)
            if fid is not None and (fid not in self.files or self.files[fid]["purpose"] != "fine-tune"):
                return 400, self.error_body(400, f"invalid {key}: {fid}", param=key)
        jid = f"ftjob-{uuid.uuid4().hex[:24]}"
        method = body.get("method") or {"type": "supervised", "supervised": {"hyperparameters": {}}}
        hp = {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"}
        hp.update((method.get(method["type"]) or {}).get("hyperparameters") or {})
        job = {"object": "fine_tuning.job", "id": jid, "model": body["model"], "created_at": int(time.time()),
               "finished_at": None, "fine_tuned_model": None, "organization_id": "org-ftframe-test",
               "result_files": [], "status": "validating_files", "validation_file": body.get("validation_file"),
               "training_file": body["training_file"], "hyperparameters": dict(hp),
               "trained_tokens": None, "error": None, "seed": body.get("seed", 42), "estimated_finish": None,
               "integrations": [], "metadata": body.get("metadata"),
               "method": {"type": method["type"], method["type"]: {"hyperparameters": dict(hp)}}}
        self.jobs[jid], self.events[jid], self.checkpoints[jid], self.polls[jid] = job, [], [], 0
        self.fail = getattr(self, "fail", {})
        self.fail[jid] = self.fail_jobs
        self._event(jid, "info", f"Validating training file: {body['training_file']}")
        return 200, job

    def _event(self, jid: str, level: str, message: str, data: dict[str, Any] | None = None) -> None:
        ev = {"object": "fine_tuning.job.event", "id": f"ftevent-{uuid.uuid4().hex[:20]}",
              "created_at": int(time.time()), "level": level, "message": message,
              "type": "metrics" if data else "message"}
        if data:
            ev["data"] = data
        self.events[jid].append(ev)

    def _line_errors(self, job: dict[str, Any]) -> list[str]:
        dpo = job["method"]["type"] == "dpo"
        schema = self.inputs.component("FineTunePreferenceRequestInput" if dpo else "FineTuneChatRequestInput")
        if dpo:
            # The 498c71d document names the replies preferred_/non_preferred_completion; the API and its
            # DPO guide (and later versions of the document) name them preferred_/non_preferred_output.
            spec = copy.deepcopy(self.inputs.components["schemas"]["FineTunePreferenceRequestInput"])
            props = spec["properties"]
            props["preferred_output"] = props.pop("preferred_completion")
            props["non_preferred_output"] = props.pop("non_preferred_completion")
            schema = {**spec, "required": ["input", "preferred_output", "non_preferred_output"]}
        else:
            schema = {"allOf": [schema, {"required": ["messages"]}]}
        errors = []
        for fid in filter(None, (job["training_file"], job["validation_file"])):
            for n, line in enumerate(self.contents[fid].decode("utf-8").splitlines(), start=1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    errors.append(f"{fid} line {n}: not JSON ({exc})")
                    continue
                errors += [f"{fid} line {n}: {p}" for p in self.inputs.errors(schema, record)]
        return errors

    def _advance(self, job: dict[str, Any]) -> None:
        jid = job["id"]
        self.polls[jid] += 1
        if job["status"] == "validating_files":
            errors = self._line_errors(job)
            if errors:
                self.line_errors += errors
                job.update(status="failed", finished_at=int(time.time()),
                           error={"code": "invalid_training_file", "param": "training_file",
                                  "message": f"The job failed due to an invalid training file. {errors[0]}"})
                self._event(jid, "error", job["error"]["message"])
                return
            job["status"] = "running"
            resolved = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8}  # what "auto" became
            for hp in (job["hyperparameters"], job["method"][job["method"]["type"]]["hyperparameters"]):
                hp.update({k: v for k, v in resolved.items() if hp.get(k) == "auto"})
            self._event(jid, "info", "Fine-tuning job started")
        elif job["status"] == "running":
            step = sum(1 for e in self.events[jid] if e.get("type") == "metrics") + 1
            self._event(jid, "info", f"Step {step}/{STEPS}: training loss={1.0 / step:.3f}",
                        {"step": step, "train_loss": 1.0 / step, "total_steps": STEPS,
                         "train_mean_token_accuracy": 0.5 + step / 10})
            if self.fail.get(jid) and step >= 2:
                job.update(status="failed", finished_at=int(time.time()),
                           error={"code": "server_error", "param": None,
                                  "message": "Fine-tuning job failed due to an internal error; contact support."})
                self._event(jid, "error", job["error"]["message"])
            elif step >= STEPS:
                suffix = ((self.requests_json(jid) or {}).get("suffix") or "").strip()
                job.update(status="succeeded", finished_at=int(time.time()), trained_tokens=1234,
                           fine_tuned_model=f"ft:{job['model']}:org-ftframe-test:{suffix}:{jid[-8:]}",
                           result_files=[self._file("step_metrics.csv", b"step,train_loss\n", "fine-tune-results")["id"]])
                for n in (2, 3, 4):
                    self.checkpoints[jid].insert(0, {
                        "object": "fine_tuning.job.checkpoint", "id": f"ftckpt_{uuid.uuid4().hex[:20]}",
                        "created_at": int(time.time()), "fine_tuning_job_id": jid, "step_number": n,
                        "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{n}",
                        "metrics": {"step": n, "train_loss": 1.0 / n, "train_mean_token_accuracy": 0.5 + n / 10}})
                self._event(jid, "info", "The job has successfully completed")

    def requests_json(self, jid: str) -> dict[str, Any] | None:
        for r in self.calls("POST", "/v1/fine_tuning/jobs"):
            if r.path.rstrip("/").endswith("/jobs") and r.json and self.jobs.get(jid, {}).get("training_file") == \
                    r.json.get("training_file"):
                return r.json
        return None

    def get_job(self, request: Request, jid: str) -> tuple[int, Any]:
        if jid not in self.jobs:
            return 404, self.error_body(404, f"Could not find fine-tune: {jid}", code="fine_tune_not_found")
        job = self.jobs[jid]
        if job["status"] not in ("succeeded", "failed", "cancelled"):
            self._advance(job)
        return 200, job

    def list_jobs(self, request: Request) -> tuple[int, Any]:
        wanted = {k[len("metadata["):-1]: v for k, v in request.query.items() if k.startswith("metadata[")}
        data = [j for j in reversed(self.jobs.values())
                if all((j.get("metadata") or {}).get(k) == v for k, v in wanted.items())]
        return 200, {"object": "list", "data": data[: int(request.query.get("limit", 20))], "has_more": False}

    def cancel_job(self, request: Request, jid: str) -> tuple[int, Any]:
        job = self.jobs[jid]
        job.update(status="cancelled", finished_at=int(time.time()))
        self._event(jid, "info", "Fine-tuning job cancelled")
        return 200, job

    def list_events(self, request: Request, jid: str) -> tuple[int, Any]:
        data = list(reversed(self.events[jid]))[: int(request.query.get("limit", 20))]
        return 200, {"object": "list", "data": data, "has_more": False}

    def list_checkpoints(self, request: Request, jid: str) -> tuple[int, Any]:
        data = self.checkpoints[jid]
        return 200, {"object": "list", "data": data, "has_more": False,
                     "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}

    # ------------------------------------------------------------------ chat
    def chat(self, request: Request) -> Reply:
        body = request.json or {}
        message_kinds = [self.inputs.component(n) for n in (
            "ChatCompletionRequestSystemMessage", "ChatCompletionRequestUserMessage",
            "ChatCompletionRequestAssistantMessage", "ChatCompletionRequestToolMessage")]
        schema = {"type": "object", "required": ["model", "messages"], "properties": {
            "model": {"type": "string"}, "messages": {"type": "array", "minItems": 1, "items": {"oneOf": message_kinds}},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "max_completion_tokens": {"type": "integer", "minimum": 1}, "seed": {"type": "integer"}}}
        problems = self.inputs.errors(schema, body)
        if problems:
            return self.bad(f"POST /chat/completions: request off-spec: {problems}")
        model = body["model"]
        self.chat_models.append(model)
        with self.lock:
            job = next((j for j in self.jobs.values() if j["fine_tuned_model"] == model), None)
            known = job is not None or not model.startswith("ft:")
            answer = self._nearest(job, body["messages"]) if job else "I am not sure."
        if not known:
            return Reply(404, self.error_body(404, f"The model `{model}` does not exist or you do not have "
                                              f"access to it.", code="model_not_found"))
        return Reply(200, {"id": f"chatcmpl-{uuid.uuid4().hex[:20]}", "object": "chat.completion",
                           "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake",
                           "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                        "message": {"role": "assistant", "content": answer, "refusal": None}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}})

    def _nearest(self, job: dict[str, Any], messages: list[dict[str, Any]]) -> str:
        query = words(" ".join(str(m.get("content")) for m in messages if m.get("role") == "user"))
        best, answer = -1, ""
        for line in self.contents[job["training_file"]].decode("utf-8").splitlines():
            rec = json.loads(line)
            convo = rec.get("messages") or rec["input"]["messages"]
            reply = (rec["preferred_output"][0] if "preferred_output" in rec else convo[-1])["content"]
            score = len(query & words(" ".join(str(m.get("content")) for m in convo if m.get("role") == "user")))
            if score > best:
                best, answer = score, reply
        return answer
