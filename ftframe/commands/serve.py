"""``ftframe serve RUN_DIR|models:/NAME@ALIAS [--port 8000] [--token TOKEN]``: an OpenAI-compatible server.

Serves ``/v1/chat/completions`` (streaming and not, ``response_format`` included) and ``/v1/models`` for a
finished run's model, concurrent requests decoded in one batch (see :mod:`ftframe.serving`). Binds to loopback unless told otherwise; with a token (``--token`` or
``FTFRAME_SERVE_TOKEN``) every request needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

TOKEN_ENV = "FTFRAME_SERVE_TOKEN"


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ftframe.engine.saved_run import RunDirError, load_saved_run
    from ftframe.engine.verify import generates_text
    from ftframe.serving import ModelServer, ServeOptions, create_app

    token = args.token or os.environ.get(TOKEN_ENV) or None
    from ftframe.lifecycle.registry import resolve_run_dir

    saved = load_saved_run(resolve_run_dir(args.run_dir, registry_uri=args.registry))  # models:/NAME@alias too
    if not generates_text(saved.model):
        raise RunDirError(f"{saved.run_dir}: this run's model has no LM head to generate text with (e.g. it "
                          f"was trained with a classification head). Get its answers with "
                          f"`ftframe predict {saved.run_dir} --input FILE` or `ftframe eval`.")
    model_id = args.model_id or str(saved.config.task.name)
    options = ServeOptions(max_batch=args.max_batch, max_queue=args.max_queue,
                           request_timeout=args.request_timeout or None, max_prompt_tokens=args.max_prompt_tokens,
                           json_whitespace=str(saved.config.eval.get("json_whitespace", "compact")))
    app = create_app(ModelServer(saved.model, saved.tokenizer, model_id, options), token=token)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not token:
        print(f"warning: serving on {args.host} without a token: anyone who can reach it can use the model "
              f"(set --token or {TOKEN_ENV}).", file=sys.stderr)
    print(f"serving '{model_id}' from {saved.run_dir} at http://{args.host}:{args.port}/v1"
          + (" (bearer token required)" if token else ""), file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


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
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)
