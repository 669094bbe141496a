"""``ftframe serve RUN_DIR|models:/NAME@ALIAS [--port 8000] [--token TOKEN]``: an OpenAI-compatible server.

Serves ``/v1/chat/completions`` (streaming and not, ``response_format`` included) and ``/v1/models`` for a
finished run's model, concurrent requests decoded in one batch (see :mod:`ftframe.serving`). Binds to loopback unless told otherwise; with a token (``--token`` or
``FTFRAME_SERVE_TOKEN``) every request needs ``Authorization: Bearer <token>``.

A challenger beside the champion: ``--shadow CHALLENGER`` (the champion answers, the challenger decodes the
same request in the background) or ``--canary CHALLENGER --canary-share 0.1`` (that share of requests is
answered by the challenger, sticky per ``user``). ``--request-log FILE`` writes one JSON line per request
(default with a challenger: ``outputs/serve/requests.jsonl``); ``--log-content`` adds the prompts and answers,
PII-redacted. See docs/lifecycle.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

TOKEN_ENV = "FTFRAME_SERVE_TOKEN"


DEFAULT_LOG = "outputs/serve/requests.jsonl"


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ftframe.engine.saved_run import RunDirError, load_saved_run
    from ftframe.engine.verify import generates_text
    from ftframe.lifecycle import LifecycleError
    from ftframe.lifecycle.registry import resolve_run_dir
    from ftframe.lifecycle.variants import served_name
    from ftframe.serving import ModelServer, ServeOptions, create_app

    token = args.token or os.environ.get(TOKEN_ENV) or None
    spec, mode = (args.shadow, "shadow") if args.shadow else (args.canary, "canary") if args.canary else (None, None)
    if args.canary_share is not None and mode != "canary":
        raise LifecycleError("--canary-share needs --canary CHALLENGER (the run that answers that share).")
    saved = load_saved_run(resolve_run_dir(args.run_dir, registry_uri=args.registry))  # models:/NAME@alias too
    if not generates_text(saved.model):
        raise RunDirError(f"{saved.run_dir}: this run's model has no LM head to generate text with (e.g. it "
                          f"was trained with a classification head). Get its answers with "
                          f"`ftframe predict {saved.run_dir} --input FILE` or `ftframe eval`.")
    model_id = args.model_id or str(saved.config.task.name)
    options = ServeOptions(max_batch=args.max_batch, max_queue=args.max_queue,
                           request_timeout=args.request_timeout or None, max_prompt_tokens=args.max_prompt_tokens,
                           json_whitespace=str(saved.config.eval.get("json_whitespace", "compact")))
    source = served_name(args.run_dir, saved.run_dir, registry_uri=args.registry)
    challenger, lines = None, [f"serving '{model_id}' from {source}"]
    if spec is not None:
        challenger, line = open_challenger(saved, spec, mode, args.canary_share, registry=args.registry)
        lines.append(line)
    log_path = args.request_log or (DEFAULT_LOG if challenger is not None else None)
    request_log = None
    if log_path:
        from ftframe.lifecycle.request_log import RequestLogWriter

        kinds = [] if args.log_redact == "none" else [k for k in args.log_redact.split(",") if k] or None
        request_log = RequestLogWriter(log_path, content=args.log_content, redact=kinds,
                                       max_bytes=int(args.log_max_mb * 2**20), backups=args.log_backups)
        lines.append(f"request log: {log_path} (" + ("prompts and answers kept, PII-redacted" if args.log_content
                                                      else "no content: --log-content keeps prompts and answers") + ")")
    server = ModelServer(saved.model, saved.tokenizer, model_id, options, challenger=challenger,
                         request_log=request_log, source=source)
    app = create_app(server, token=token)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        print(f"warning: serving on {args.host} without a token: anyone who can reach it can use the model "
              f"(set --token or {TOKEN_ENV}).", file=sys.stderr)
    lines[0] += f" at http://{args.host}:{args.port}/v1" + (" (bearer token required)" if token else "")
    print("\n".join(lines), file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def open_challenger(saved: Any, spec: str, mode: str, share: float | None, *,
                    registry: str | None = None) -> tuple[Any, str]:
    """The :class:`ftframe.serving.Challenger` for ``spec`` beside the loaded champion ``saved``, and a line
    saying how it is served."""
    from ftframe.lifecycle.variants import Router, load_challenger, served_name
    from ftframe.serving import Challenger

    router = Router(mode, 0.1 if share is None else share)  # checks the share before anything is loaded
    loaded = load_challenger(saved, spec, registry_uri=registry)
    source = served_name(spec, loaded.run_dir, registry_uri=registry)
    how = ("a second adapter on the champion's base model (one copy of the base)" if loaded.shared_base else
           "a model of its own (not an adapter on the champion's base)")
    challenger = Challenger(model=loaded.model, router=router, source=source, adapter=loaded.adapter,
                            champion_adapter=loaded.champion_adapter)
    return challenger, f"challenger {source}: {how}; {router.describe()}"


def _share(value: str) -> float:
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1 (a share of requests), got {value!r}")
    return share


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return int(value)


def _not_negative(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number (0 or more), got {value!r}")
    return int(value)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve a finished run's model with an OpenAI-compatible API")
    p.add_argument("run_dir", help="the folder a job wrote (holds config.yaml and manifest.json), or "
                   "models:/NAME@ALIAS of the model registry (ftframe promote)")
    p.add_argument("--registry", metavar="URI", help="the MLflow registry of a models:/ URI (default: "
                   "$MLFLOW_TRACKING_URI, else sqlite:///outputs/registry/mlflow.db)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV}, else none)")
    p.add_argument("--model-id", help="the model name clients send (default: the run's task name)")
    p.add_argument("--max-batch", type=_positive, default=32,
                   help="requests decoded together in one batch (default 32)")
    p.add_argument("--max-queue", type=_not_negative, default=64,
                   help="requests that may wait for a place in the batch; more get 429 + Retry-After (default 64)")
    p.add_argument("--request-timeout", type=float, default=300.0,
                   help="seconds a request may take before it is answered 504 (default 300; 0: no limit)")
    p.add_argument("--max-prompt-tokens", type=_positive, default=None,
                   help="longest prompt accepted, in tokens (default: the model's context length)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--shadow", metavar="CHALLENGER", help="also run CHALLENGER (run dir or models:/ URI) on "
                     "every request in the background; clients get the champion's answer, the log gets both")
    who.add_argument("--canary", metavar="CHALLENGER", help="answer a share of the requests (--canary-share) "
                     "with CHALLENGER; sticky per request 'user'")
    p.add_argument("--canary-share", type=_share, default=None, metavar="S",
                   help="share of requests the --canary challenger answers, 0 to 1 (default 0.1)")
    p.add_argument("--request-log", metavar="FILE", help="write one JSON line per request (rotated); default "
                   f"with --shadow/--canary: {DEFAULT_LOG}, else none")
    p.add_argument("--log-content", action="store_true", help="keep prompts, answers and the raw 'user' in the "
                   "request log, PII-redacted (default: counts, timings and codes only)")
    p.add_argument("--log-redact", default="", metavar="KINDS", help="PII kinds replaced in logged content, "
                   "comma-separated from email,iban,credit_card,ip,phone (default: all), or 'none'")
    p.add_argument("--log-max-mb", type=float, default=64.0, help="rotate the request log at this size (default 64)")
    p.add_argument("--log-backups", type=_positive, default=10, help="rotated request-log files kept (default 10)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)
