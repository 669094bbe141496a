"""A FastAPI app served by uvicorn in a thread on a free loopback port, for the serve tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def uvicorn_on_loopback(app: Any) -> Iterator[tuple[str, Any, threading.Thread]]:
    """``(base_url, uvicorn server, its thread)`` while ``app`` serves; leaving stops the server (a graceful
    shutdown: in-flight requests are finished first) and waits for its thread."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1", srv, thread
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
