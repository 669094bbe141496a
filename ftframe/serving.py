"""An OpenAI-compatible HTTP API for a tuned model: ``/v1/chat/completions`` (plain and streaming) and ``/v1/models``.

Built on Starlette (served by uvicorn in ``ftframe serve``). Errors have OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, so OpenAI clients raise their usual exceptions.

Concurrency: one model, one :class:`threading.Lock`. Each request generates in a worker thread (the event
loop stays free to accept and queue requests) and holds the lock for its whole generation, so requests
are answered one at a time, in the order they get the lock; nothing is shared between them but the model.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ftframe.engine.chat import pad_id, render

ROLES = ("system", "developer", "user", "assistant", "tool")
DEFAULT_MAX_TOKENS = 256


class ApiError(Exception):
    """An error answered as an OpenAI-style JSON body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}}, status_code=self.status)


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float
    top_p: float
    stop: list[str]
    seed: int | None
    stream: bool
    include_usage: bool
    tools: list[dict[str, Any]] | None = None


def _content(value: Any, i: int) -> str:
    """A message's content: a string, or OpenAI's list of ``{"type": "text", "text": ...}`` parts."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts.",
                   param=f"messages[{i}].content")


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ApiError(400, f"'{key}' must be a number between {low:g} and {high:g}, got {value!r}.", param=key)
    return float(value)


def parse_chat_request(body: Any, model_id: str) -> ChatRequest:
    """Validate a ``/v1/chat/completions`` body; :class:`ApiError` (400/404) names the offending parameter."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    if "model" not in body:
        raise ApiError(400, "Missing required parameter: 'model'.", param="model")
    if body["model"] != model_id:
        raise ApiError(404, f"The model '{body['model']}' does not exist; this server serves '{model_id}'.",
                       param="model", code="model_not_found")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "'messages' must be a non-empty array of messages.", param="messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"messages[{i}].role must be one of {', '.join(ROLES)}.", param=f"messages[{i}].role")
        messages.append({**{k: v for k, v in m.items() if k != "content"}, "content": _content(m.get("content"), i)})
    n = body.get("n", 1)
    if n != 1:
        raise ApiError(400, f"'n' must be 1 (one choice per request), got {n!r}.", param="n")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, f"'max_tokens' must be a positive integer, got {max_tokens!r}.", param="max_tokens")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise ApiError(400, "'stop' must be a string or an array of up to 4 non-empty strings.", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ApiError(400, f"'seed' must be an integer, got {seed!r}.", param="seed")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be a boolean, got {stream!r}.", param="stream")
    options = body.get("stream_options") or {}
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ApiError(400, "'tools' must be an array.", param="tools")
    return ChatRequest(messages=messages, max_tokens=max_tokens, temperature=_number(body, "temperature", 1.0, 0, 2),
                       top_p=_number(body, "top_p", 1.0, 0, 1), stop=stop, seed=seed, stream=stream,
                       include_usage=bool(isinstance(options, dict) and options.get("include_usage")), tools=tools)


@dataclass
class ModelServer:
    """Generates chat replies with one model; a lock makes it safe to call from many threads."""

    model: Any
    tokenizer: Any
    model_id: str
    created: int = field(default_factory=lambda: int(time.time()))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.model.eval()

    def _inputs(self, req: ChatRequest) -> Any:
        import torch

        text = render(self.tokenizer, req.messages, generation_prompt=True, tools=req.tools)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit and len(ids) + req.max_tokens > limit:
            raise ApiError(400, f"This model's maximum context length is {limit} tokens; the messages take "
                           f"{len(ids)} and max_tokens asks for {req.max_tokens} more.", param="messages",
                           code="context_length_exceeded")
        device = next(self.model.parameters()).device
        return torch.tensor([ids], device=device)

    def _generate_kwargs(self, req: ChatRequest, ids: Any) -> dict[str, Any]:
        import torch

        tok = self.tokenizer
        sample = req.temperature > 0
        kwargs: dict[str, Any] = {
            "input_ids": ids, "attention_mask": torch.ones_like(ids), "max_new_tokens": req.max_tokens,
            "do_sample": sample, "temperature": req.temperature if sample else None,
            "top_p": req.top_p if sample else None, "top_k": None,
            "pad_token_id": pad_id(tok),
            "eos_token_id": tok.eos_token_id,
        }
        if req.stop:
            kwargs.update(stop_strings=req.stop, tokenizer=tok)
        if req.seed is not None:
            torch.manual_seed(req.seed)
        return kwargs

    def complete(self, req: ChatRequest) -> tuple[str, str, int, int]:
        """``(text, finish_reason, prompt_tokens, completion_tokens)`` for a non-streaming request."""
        import torch

        ids = self._inputs(req)
        with self.lock, torch.no_grad():
            out = self.model.generate(**self._generate_kwargs(req, ids))
        new = out[0, ids.shape[1]:].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        text, stopped = _cut_at_stop(text, req.stop)
        ended = bool(new) and new[-1] == self.tokenizer.eos_token_id
        finish = "stop" if stopped or ended or len(new) < req.max_tokens else "length"
        return text, finish, int(ids.shape[1]), len(new)

    def stream(self, req: ChatRequest) -> Iterator[tuple[str, str | None, int, int]]:
        """Yield ``(text delta, finish_reason or None, prompt_tokens, completion_tokens)`` as tokens arrive."""
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        ids = self._inputs(req)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel = threading.Event()  # set when the client goes away: generation stops at the next token
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with torch.no_grad():
                    result["out"] = self.model.generate(**self._generate_kwargs(req, ids), streamer=streamer,
                                                        stopping_criteria=StoppingCriteriaList([_cancelled(cancel)]))
            except Exception as exc:  # noqa: BLE001 - re-raised by the reading thread below
                result["error"] = exc
                streamer.end()

        with self.lock:
            thread = threading.Thread(target=work, daemon=True)
            thread.start()
            text, sent, stopped = "", 0, False
            hold = max((len(s) for s in req.stop), default=1) - 1  # a stop string may still be forming
            try:
                for piece in streamer:
                    text += piece
                    cut, stopped = _cut_at_stop(text, req.stop)
                    upto = len(cut) if stopped else max(sent, len(text) - hold)
                    if upto > sent:
                        yield text[sent:upto], None, 0, 0
                        sent = upto
                    if stopped:
                        break
            finally:  # also when the reader stops early: the model is not released while it still runs
                cancel.set()
                thread.join()
        if "error" in result:
            raise result["error"]
        if not stopped and len(text) > sent:
            yield text[sent:], None, 0, 0
        new = result["out"][0, ids.shape[1]:].tolist()
        ended = bool(new) and new[-1] == self.tokenizer.eos_token_id
        finish = "stop" if stopped or ended or len(new) < req.max_tokens else "length"
        yield "", finish, int(ids.shape[1]), len(new)


def _cancelled(event: threading.Event) -> Any:
    """A generation stopping criterion that fires once ``event`` is set."""
    import torch
    from transformers import StoppingCriteria

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return Cancelled()


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    hits = [text.index(s) for s in stops if s in text]
    return (text[: min(hits)], True) if hits else (text, False)


def _check_token(request: Request, token: str | None) -> None:
    if not token:
        return
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        what = "Incorrect API key provided." if given else "You didn't provide an API key (Authorization: Bearer)."
        raise ApiError(401, what, code="invalid_api_key")


def create_app(server: ModelServer, *, token: str | None = None) -> Starlette:
    """The Starlette app serving ``server``; with ``token`` every ``/v1`` request needs ``Bearer <token>``."""

    def model_card() -> dict[str, Any]:
        return {"id": server.model_id, "object": "model", "created": server.created, "owned_by": "ftframe"}

    async def models(request: Request) -> Response:
        _check_token(request, token)
        return JSONResponse({"object": "list", "data": [model_card()]})

    async def model(request: Request) -> Response:
        _check_token(request, token)
        if request.path_params["model"] != server.model_id:
            raise ApiError(404, f"The model '{request.path_params['model']}' does not exist.", param="model",
                           code="model_not_found")
        return JSONResponse(model_card())

    async def chat(request: Request) -> Response:
        _check_token(request, token)
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"The request body is not valid JSON ({exc}).") from exc
        req = parse_chat_request(body, server.model_id)
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not req.stream:
            text, finish, p_tok, c_tok = await run_in_threadpool(server.complete, req)
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": server.model_id,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                             "finish_reason": finish}],
                "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok}})
        await run_in_threadpool(server._inputs, req)  # a too-long prompt is a 400 before the stream starts

        def chunk(delta: dict[str, Any], finish: str | None) -> str:
            return "data: " + json.dumps({
                "id": cid, "object": "chat.completion.chunk", "created": created, "model": server.model_id,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}) + "\n\n"

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""}, None)
            async for piece, finish, p_tok, c_tok in iterate_in_threadpool(server.stream(req)):
                if finish is None:
                    yield chunk({"content": piece}, None)
                    continue
                yield chunk({}, finish)
                if req.include_usage:
                    yield "data: " + json.dumps({
                        "id": cid, "object": "chat.completion.chunk", "created": created, "model": server.model_id,
                        "choices": [], "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok,
                                                 "total_tokens": p_tok + c_tok}}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "Unknown request URL", 405: "Method not allowed"}.get(exc.status_code, exc.detail)
        return ApiError(exc.status_code, f"{kind}: {request.method} {request.url.path}.",
                        code="unknown_url" if exc.status_code == 404 else None).response()

    routes = [Route("/v1/models", models, methods=["GET"]), Route("/v1/models/{model:path}", model, methods=["GET"]),
              Route("/v1/chat/completions", chat, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={ApiError: api_error, HTTPException: http_error})
