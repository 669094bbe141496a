"""An OpenAI-compatible HTTP API for a tuned model: ``/v1/chat/completions`` (plain and streaming) and ``/v1/models``.

Built on Starlette (served by uvicorn in ``ftframe serve``). Errors have OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, so OpenAI clients raise their usual exceptions.

Concurrency: every request joins one batch that a single thread decodes (:mod:`ftframe.serving_loop`):
requests arriving while others decode join at the next step, share its forward pass, and leave when they end.
A bounded queue answers 429 with ``Retry-After`` when full; a per-request time limit answers 504; a client
that disconnects stops costing decoding steps; ``response_format`` (``json_object``, ``json_schema``)
constrains decoding as evaluation does (:mod:`ftframe.engine.constrain`). With ``tools``, an answer in tool-call syntax is returned as
OpenAI's ``message.tool_calls`` (``finish_reason`` ``tool_calls``), streamed as one ``delta.tool_calls``
chunk at the end (:mod:`ftframe.tool_calls` parses both).

Champion and challenger (``ftframe serve --shadow/--canary``, :class:`Challenger`): both decode in the same
loop, one batch each (:mod:`ftframe.serving_loop` lanes); where they are two adapters over one base model,
that base is held once. Routing is :class:`ftframe.lifecycle.variants.Router`'s. With a request log
(:class:`ftframe.lifecycle.request_log.RequestLogWriter`) every chat request — answered or refused — is one
line: the route, whose answer the client got, each variant's answer, status, latency and token counts; a
shadow answer is added when it ends, after the client already has its own.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ftframe.engine.chat import render
from ftframe.lifecycle.request_log import Answer, RequestRecord
from ftframe.tool_calls import CallStream, openai_tool_calls, parse_tool_calls

DISCONNECT_POLL = 0.25
"""Seconds between checks whether the client of a non-streaming request is still there."""
ROLES = ("system", "developer", "user", "assistant", "tool")
DEFAULT_MAX_TOKENS = 256


class ApiError(Exception):
    """An error answered as an OpenAI-style JSON body."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


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
    """OpenAI's ``tools``, rendered into the prompt by the chat template; with them (and ``tool_choice`` not
    ``none``) an answer in tool-call syntax is returned as ``message.tool_calls`` (:mod:`ftframe.tool_calls`)."""
    tool_choice: str = "auto"
    response_format: dict[str, Any] | None = None
    """OpenAI's ``response_format`` as sent (checked and compiled by :mod:`ftframe.engine.constrain`)."""
    user: str | None = None
    """OpenAI's ``user`` (or its successor ``safety_identifier``): canary routing is sticky per value."""


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
        if m.get("tool_calls") is not None:
            from ftframe.preflight.format_checks import tool_calls_problem

            problem = tool_calls_problem(m["tool_calls"])
            if problem:
                raise ApiError(400, f"messages[{i}].tool_calls: {problem}.", param=f"messages[{i}].tool_calls")
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
    tools, tool_choice = body.get("tools"), body.get("tool_choice") or "auto"
    if tools is not None:
        from ftframe.preflight.format_checks import tools_problem

        problem = "'tools' must be an array" if not isinstance(tools, list) else tools_problem(tools)
        if problem:
            raise ApiError(400, f"{problem}.", param="tools")
    if tool_choice not in ("auto", "none"):
        raise ApiError(400, f"'tool_choice' {tool_choice!r} is not supported: this server cannot force a call "
                       f"(use 'auto' or 'none').", param="tool_choice")
    user = body.get("user", body.get("safety_identifier"))
    if user is not None and not isinstance(user, str):
        raise ApiError(400, f"'user' must be a string, got {user!r}.", param="user")
    response_format = body.get("response_format")
    if response_format is not None:
        from ftframe.engine.constrain import ResponseFormatError, json_schema_of

        try:
            json_schema_of(response_format)
        except ResponseFormatError as exc:
            raise ApiError(400, str(exc), param=exc.param) from None
    return ChatRequest(messages=messages, max_tokens=max_tokens, temperature=_number(body, "temperature", 1.0, 0, 2),
                       top_p=_number(body, "top_p", 1.0, 0, 1), stop=stop, seed=seed, stream=stream,
                       include_usage=bool(isinstance(options, dict) and options.get("include_usage")), tools=tools or None,
                       tool_choice=tool_choice,
                       response_format=response_format, user=user or None)


@dataclass
class ServeOptions:
    """How ``ftframe serve`` batches and bounds requests (``ftframe serve --help`` names each flag)."""

    max_batch: int = 32
    """Requests decoded together in one batch."""
    max_queue: int = 64
    """Requests that may wait for a place in the batch; beyond that a request gets 429 with Retry-After."""
    request_timeout: float | None = 300.0
    """Seconds a request may take from arrival to its last token (None: no limit); past it, 504."""
    max_prompt_tokens: int | None = None
    """Longest prompt accepted, in tokens (None: the model's context length less ``max_tokens``)."""
    json_whitespace: str = "compact"
    """JSON layout under a ``response_format`` (``compact`` or ``flexible``): the run's ``eval.json_whitespace``,
    so a served answer is decoded as evaluation decoded it."""


@dataclass
class Challenger:
    """A model served beside the champion (``ftframe serve --shadow/--canary``; built by
    :func:`ftframe.lifecycle.variants.load_challenger`). It must share the champion's tokenizer."""

    model: Any
    """The challenger's model: the champion's own PEFT model where ``adapter`` is set, else a model of its own."""
    router: Any
    """A :class:`ftframe.lifecycle.variants.Router` (shadow, or canary with its share)."""
    source: str = ""
    """What the request log names it by (run dir or ``models:/NAME/VERSION``)."""
    adapter: str | None = None
    """The challenger's PEFT adapter name on the shared model (None: a model of its own)."""
    champion_adapter: str | None = None
    """The champion's adapter name on the shared model."""


@contextlib.contextmanager
def _shared_base_evaluating(model: Any, champion_adapter: str) -> Any:
    """:func:`ftframe.engine.predict.evaluating` for a PEFT model whose adapters take turns: fp32 and eval mode,
    but no adapter merged into the shared base weights (a merge would hold for one adapter only). Afterwards
    the champion's adapter is the active one again."""
    from ftframe.engine.predict import evaluating

    model.base_model.disable_adapter_layers()  # evaluating() merges nothing while adapters are disabled
    try:
        with evaluating(model, "fp32"):
            model.base_model.enable_adapter_layers()
            yield
    finally:
        model.base_model.enable_adapter_layers()
        model.set_adapter(champion_adapter, inference_mode=True)


class ModelServer:
    """Chat replies from one model (or a champion and a :class:`Challenger`), every concurrent request decoded
    in one batch per model (:mod:`ftframe.serving_loop`); each request logged to ``request_log`` when given."""

    def __init__(self, model: Any, tokenizer: Any, model_id: str, options: ServeOptions | None = None, *,
                 challenger: Challenger | None = None, request_log: Any = None, source: str = ""):
        from ftframe.engine.predict import LocalPredictor, evaluating
        from ftframe.serving_loop import DecodeLoop, Lane

        self.model, self.tokenizer, self.model_id = model, tokenizer, model_id
        self.options = options or ServeOptions()
        self.created = int(time.time())
        self.challenger, self.request_log, self.source = challenger, request_log, source
        self.predictor = LocalPredictor(model, tokenizer, batch_size=self.options.max_batch, precision="fp32")
        lanes = {"champion": Lane(self.predictor.decoder)}
        context: Any = lambda: evaluating(model, "fp32")
        self.context = getattr(model.config, "max_position_embeddings", None)
        if challenger is not None:
            other = LocalPredictor(challenger.model, tokenizer, batch_size=self.options.max_batch, precision="fp32")
            if challenger.adapter is not None:  # two adapters over one base: the loop switches between them
                if challenger.model is not model:
                    raise ValueError("a challenger adapter must be loaded on the champion's own model")
                champ, chall = challenger.champion_adapter or "default", challenger.adapter
                lanes = {"champion": Lane(self.predictor.decoder, lambda: model.set_adapter(champ, inference_mode=True)),
                         "challenger": Lane(other.decoder, lambda: model.set_adapter(chall, inference_mode=True))}
                context = lambda: _shared_base_evaluating(model, champ)
            else:
                lanes["challenger"] = Lane(other.decoder)

                @contextlib.contextmanager
                def context() -> Any:
                    with evaluating(model, "fp32"), evaluating(challenger.model, "fp32"):
                        yield

                theirs = getattr(challenger.model.config, "max_position_embeddings", None)
                self.context = min(x for x in (self.context, theirs) if x) if (self.context or theirs) else None
        self.loop = DecodeLoop(lanes=lanes, context=context, max_batch=self.options.max_batch,
                               max_queue=self.options.max_queue)
        self.pending: set[Any] = set()
        """Shadow answers and log lines still to come (asyncio tasks)."""

    @property
    def route(self) -> str:
        """The request log's ``route`` of this server: ``answer``, ``shadow`` or ``canary``."""
        return "answer" if self.challenger is None else self.challenger.router.mode

    def served_by(self, req: ChatRequest) -> str:
        """Whose answer the client of ``req`` gets: ``champion`` or ``challenger``."""
        return "champion" if self.challenger is None else self.challenger.router.served_by(req.user)

    def source_of(self, variant: str) -> str:
        if variant == "challenger" and self.challenger is not None:
            return self.challenger.source
        return self.source

    def start(self) -> None:
        self.loop.start()

    async def settle(self, timeout: float | None = None) -> None:
        """Wait for shadow answers still decoding and their log lines (at shutdown, before :meth:`close`)."""
        import asyncio

        if self.pending:
            await asyncio.wait(set(self.pending), timeout=timeout)

    def close(self) -> None:
        self.loop.drain()
        self.loop.stop()
        if self.request_log is not None:
            self.request_log.close()

    # ---------------------------------------------------------------------------------- requests
    def prompt_ids(self, req: ChatRequest) -> list[int]:
        """The prompt's tokens as training rendered them; a 400 when it is longer than allowed."""
        text = render(self.tokenizer, req.messages, generation_prompt=True, tools=req.tools)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        limit = self.options.max_prompt_tokens
        if limit is not None and len(ids) > limit:
            raise ApiError(400, f"The messages take {len(ids)} tokens; this server accepts prompts of up to "
                           f"{limit} tokens (ftframe serve --max-prompt-tokens).", param="messages",
                           code="context_length_exceeded")
        if self.context and len(ids) + req.max_tokens > self.context:
            raise ApiError(400, f"This model's maximum context length is {self.context} tokens; the messages take "
                           f"{len(ids)} and max_tokens asks for {req.max_tokens} more.", param="messages",
                           code="context_length_exceeded")
        return ids

    def job(self, req: ChatRequest, variant: str = "champion") -> Any:
        """The loop's :class:`ftframe.serving_loop.Job` for ``req`` (its grammar compiled, its sampling set),
        decoded by ``variant``'s model."""
        from ftframe.engine.constrain import ResponseFormatError
        from ftframe.engine.decoding import Sampling
        from ftframe.serving_loop import Job

        ids = self.prompt_ids(req)
        try:
            grammar = self.predictor.grammar(req.response_format, self.options.json_whitespace)
        except ResponseFormatError as exc:
            raise ApiError(400, str(exc), param=exc.param) from None
        sampling = Sampling(req.temperature, req.top_p, req.seed) if req.temperature > 0 else None
        return Job(ids, req.max_tokens, grammar=grammar, sampling=sampling, timeout=self.options.request_timeout,
                   lane=variant)

    async def submit(self, req: ChatRequest, variant: str = "champion") -> Any:
        """Queue ``req`` in the decode loop for ``variant``: its job, or an :class:`ApiError` (400 for a bad
        prompt or response format, 429 with ``Retry-After`` when the queue is full, 503 while shutting down)."""
        job = await run_in_threadpool(self.job, req, variant)
        self.enqueue(job)
        return job

    def enqueue(self, job: Any) -> None:
        import asyncio

        from ftframe.serving_loop import Draining, QueueFull

        job.loop = asyncio.get_running_loop()
        try:
            self.loop.submit(job)
        except QueueFull as exc:
            raise ApiError(429, f"The server is busy ({self.loop.max_queue} requests already wait); retry in "
                           f"{exc.retry_after} s.", type="rate_limit_error", code="server_busy",
                           headers={"Retry-After": str(exc.retry_after)}) from None
        except Draining:
            raise ApiError(503, "The server is shutting down and takes no new requests.", type="server_error",
                           code="shutting_down", headers={"Retry-After": "5"}) from None

    def shadow(self, req: ChatRequest, job: Any, started: float) -> Any:
        """In shadow mode, the challenger's run of the request the champion answers with ``job``: an asyncio
        task whose result is its :class:`Answer` (never served). ``None`` in other modes."""
        import asyncio
        import dataclasses

        from ftframe.serving_loop import Job

        if self.challenger is None or self.challenger.router.mode != "shadow":
            return None
        sampling = dataclasses.replace(job.sampling) if job.sampling is not None else None  # its own generator
        twin = Job(job.prompt, job.max_tokens, grammar=job.grammar, sampling=sampling, timeout=job.timeout,
                   lane="challenger")

        async def run() -> Answer:
            try:
                self.enqueue(twin)
            except ApiError as exc:  # e.g. the queue is full: the shadow is skipped, the client is not affected
                return self._answer("challenger", started, served=False, status=exc.status,
                                    error=exc.code or exc.type, prompt_tokens=len(twin.prompt))
            return await self.collect(twin, req, "challenger", started)

        return self._track(asyncio.create_task(run()))

    async def collect(self, job: Any, req: ChatRequest, variant: str, started: float) -> Answer:
        """Decode ``job`` to its end (not served): its :class:`Answer`, failures included."""
        from ftframe.serving_loop import Draining

        parts: list[str] = []
        try:
            async for piece, finish, p_tok, c_tok in self.answer(job, req):
                parts.append(piece)
                if finish is not None:
                    return self._answer(variant, started, served=False, prompt_tokens=p_tok, completion_tokens=c_tok,
                                        finish_reason=finish, text="".join(parts))
        except ApiError as exc:
            return self._answer(variant, started, served=False, status=exc.status, error=exc.code or exc.type,
                                prompt_tokens=len(job.prompt))
        except Draining:
            return self._answer(variant, started, served=False, status=503, error="shutting_down",
                                prompt_tokens=len(job.prompt))
        except Exception:  # noqa: BLE001 - a failed shadow answer is logged, never raised to a client
            return self._answer(variant, started, served=False, status=500, error="server_error",
                                prompt_tokens=len(job.prompt))
        return self._answer(variant, started, served=False, status=499, error="cancelled",
                            prompt_tokens=len(job.prompt))

    def _answer(self, variant: str, started: float, *, served: bool, status: int = 200, error: str | None = None,
                **fields: Any) -> Answer:
        return Answer(variant=variant, model=self.source_of(variant), served=served,
                      latency_ms=(time.monotonic() - started) * 1000, status=status, error=error, **fields)

    def _track(self, task: Any) -> Any:
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)
        return task

    def log(self, record: RequestRecord, shadow: Any = None) -> None:
        """Write ``record`` to the request log; with a ``shadow`` task, once its answer is there too."""
        if self.request_log is None:
            return
        if shadow is None:
            self.request_log.write(record)
            return
        import asyncio

        async def later() -> None:
            record.answers.append(await shadow)
            self.request_log.write(record)

        self._track(asyncio.ensure_future(later()))

    async def answer(self, job: Any, req: ChatRequest,
                     disconnected: Any = None) -> AsyncIterator[tuple[str, str | None, int, int]]:
        """Yield ``(text delta, None, 0, 0)`` as ``job``'s tokens arrive, then ``("", finish_reason,
        prompt_tokens, completion_tokens)``. ``disconnected()`` (an awaitable check) is polled while waiting:
        a client that went away stops costing decoding steps; so does this generator closed early (a stream
        whose reader left)."""
        import asyncio

        tokens: list[int] = []
        sent, text, finish = 0, "", None
        hold = max((len(s) for s in req.stop), default=1) - 1  # a stop string may still be forming
        ended = False
        checked = time.monotonic()
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(job.events.get(), DISCONNECT_POLL if disconnected else None)
                except TimeoutError:
                    kind = None
                if disconnected and time.monotonic() - checked >= DISCONNECT_POLL:
                    checked = time.monotonic()
                    if await disconnected():
                        return
                if kind is None:
                    continue
                if kind == "error":
                    ended = True
                    raise value
                if kind == "end":
                    ended = True
                    if value == "timeout":
                        raise ApiError(504, f"The request took longer than the server's limit of "
                                       f"{self.options.request_timeout:g} s (ftframe serve --request-timeout).",
                                       type="server_error", code="timeout")
                    finish = value
                    break
                tokens.append(value)
                text = self.tokenizer.decode(tokens, skip_special_tokens=True)
                cut, stopped = _cut_at_stop(text, req.stop)
                if stopped:
                    text, finish = cut, "stop"
                    break
                upto = len(text) - hold
                while upto > sent and text[upto - 1] == "\ufffd":  # an incomplete UTF-8 sequence: wait for more
                    upto -= 1
                if upto > sent:
                    yield text[sent:upto], None, 0, 0
                    sent = upto
        finally:
            if not ended:
                self.loop.cancel(job)
        if len(text) > sent:
            yield text[sent:], None, 0, 0
        yield "", "stop" if finish in ("stop", "cancelled") else "length", len(job.prompt), len(tokens)


@dataclass
class _Exchange:
    """One chat request on its way to the request log (see :meth:`done`)."""

    server: ModelServer
    started: float
    user: str | None = None
    messages: list[dict[str, Any]] | None = None
    request_id: str | None = None
    variant: str | None = None
    job: Any = None
    """The served variant's job, once it was queued (a model ran)."""
    shadow: Any = None
    logged: bool = False

    def done(self, status: int, error: str | None, *, text: str | None = None, finish: str | None = None,
             completion_tokens: int | None = None) -> None:
        """Log the request once (later calls are no-ops): the client got ``status``/``error``."""
        if self.logged:
            return
        self.logged = True
        answers = []
        if self.job is not None and self.variant is not None:
            answers.append(self.server._answer(self.variant, self.started, served=True, status=status, error=error,
                                               prompt_tokens=len(self.job.prompt),
                                               completion_tokens=completion_tokens, finish_reason=finish, text=text))
        record = RequestRecord(route=self.server.route, answers=answers, status=status, error=error, user=self.user,
                               messages=self.messages)
        if self.request_id:
            record.request_id = self.request_id
        self.server.log(record, self.shadow)


def calls_wanted(req: ChatRequest) -> bool:
    """Whether an answer in tool-call syntax is returned as ``tool_calls``: the request offers ``tools`` and
    does not say ``tool_choice: none``."""
    return bool(req.tools) and req.tool_choice != "none"


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
        ex = _Exchange(server, time.monotonic())
        try:
            return await answer_chat(request, ex)
        except ApiError as exc:
            ex.done(exc.status, exc.code or exc.type)
            raise
        except Exception:
            ex.done(500, "server_error")
            raise

    async def answer_chat(request: Request, ex: _Exchange) -> Response:
        _check_token(request, token)
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"The request body is not valid JSON ({exc}).") from exc
        except RecursionError:  # e.g. 100,000 nested '[': Python's parser gives up, the request is still bad
            raise ApiError(400, "The request body is nested too deeply to parse as JSON.") from None
        req = parse_chat_request(body, server.model_id)
        ex.user, ex.messages = req.user, req.messages
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        ex.request_id = cid
        variant = server.served_by(req)
        job = await server.submit(req, variant)
        ex.variant, ex.job = variant, job
        ex.shadow = server.shadow(req, job, ex.started)
        if not req.stream:
            parts, end = [], None
            async for piece, finish, p, c in server.answer(job, req, request.is_disconnected):
                parts.append(piece)
                if finish is not None:
                    end = (finish, p, c)
            finish, p_tok, c_tok = end or ("stop", len(job.prompt), 0)
            text = "".join(parts)
            if end is None:  # the client went away: nobody reads this answer
                ex.done(499, "client_closed", text=text)
            else:
                ex.done(200, None, text=text, finish=finish, completion_tokens=c_tok)
            message: dict[str, Any] = {"role": "assistant", "content": text}
            calls = parse_tool_calls(text).calls if calls_wanted(req) and finish == "stop" else []
            if calls:
                message = {"role": "assistant", "content": parse_tool_calls(text).content,
                           "tool_calls": openai_tool_calls(calls)}
                finish = "tool_calls"
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": created, "model": server.model_id,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok, "total_tokens": p_tok + c_tok}})

        def chunk(delta: dict[str, Any], finish: str | None) -> str:
            return "data: " + json.dumps({
                "id": cid, "object": "chat.completion.chunk", "created": created, "model": server.model_id,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}) + "\n\n"

        async def events() -> AsyncIterator[str]:
            # Starlette cancels this generator when the client disconnects; answer()'s cleanup then takes the
            # request out of the batch.
            parts: list[str] = []
            calls = CallStream() if calls_wanted(req) else None
            try:
                yield chunk({"role": "assistant", "content": ""}, None)
                async for piece, finish, p_tok, c_tok in server.answer(job, req):
                    if finish is None:
                        parts.append(piece)
                        content = calls.feed(piece) if calls is not None else piece
                        if content:
                            yield chunk({"content": content}, None)
                        continue
                    ex.done(200, None, text="".join(parts), finish=finish, completion_tokens=c_tok)
                    if calls is not None:
                        rest, found = calls.finish()
                        if found and finish != "stop":  # cut by max_tokens: the calls are text, as without tools
                            rest, found = calls.text[calls.sent:], []
                        if rest:
                            yield chunk({"content": rest}, None)
                        if found:
                            yield chunk({"tool_calls": [{"index": k, **call} for k, call in
                                                        enumerate(openai_tool_calls(found))]}, None)
                            finish = "tool_calls"
                    yield chunk({}, finish)
                    if req.include_usage:
                        yield "data: " + json.dumps({
                            "id": cid, "object": "chat.completion.chunk", "created": created,
                            "model": server.model_id, "choices": [],
                            "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok,
                                      "total_tokens": p_tok + c_tok}}) + "\n\n"
            except ApiError as exc:  # after the stream began: OpenAI's error event (the client raises it)
                ex.done(exc.status, exc.code or exc.type, text="".join(parts))
                yield "data: " + json.dumps(exc.body()) + "\n\n"
                return
            except Exception:
                ex.done(500, "server_error", text="".join(parts))
                raise
            finally:
                ex.done(499, "client_closed", text="".join(parts))  # a no-op once logged
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

    async def server_error(request: Request, exc: Exception) -> Response:
        # Anything unexpected still answers in OpenAI's shape (a client raises its InternalServerError).
        return ApiError(500, f"The server failed to answer: {type(exc).__name__}: {exc}", type="server_error").response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # uvicorn on SIGTERM stops accepting connections and waits for the open ones to finish before this
        # shutdown runs, so in-flight requests are decoded to their end.
        # Shadow answers have no connection to wait for: they are awaited here, up to the request time limit.
        server.start()
        try:
            yield
        finally:
            await server.settle(server.options.request_timeout)
            await run_in_threadpool(server.close)

    routes = [Route("/v1/models", models, methods=["GET"]), Route("/v1/models/{model:path}", model, methods=["GET"]),
              Route("/v1/chat/completions", chat, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={ApiError: api_error, HTTPException: http_error, Exception: server_error})
