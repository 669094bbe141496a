"""A loopback HTTP server in a thread (stdlib ``http.server``) with the plumbing the fakes share:
JSON and multipart bodies, per-route failure injection, and a record of every request."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)
    """Multipart fields: text values as ``str``, files as ``(filename, bytes)``."""


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body)
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        out[name] = (filename, payload) if filename is not None else payload.decode("utf-8")
    return out


class LoopbackServer:
    """Subclasses implement ``handle(request) -> Reply``; failures queued with :meth:`inject` come first."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.injected: dict[str, list[tuple[int, bool]]] = {}
        self.lock = threading.RLock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        chunk = self.rfile.read(size)
                        self.rfile.readline()
                        if size == 0:
                            return b"".join(chunks)
                        chunks.append(chunk)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self) -> None:
                url = urlsplit(self.path)
                body = self._body()
                request = Request(self.command, url.path, dict(parse_qsl(url.query)),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                ctype = self.headers.get("Content-Type", "")
                try:
                    if ctype.startswith("application/json") and body:
                        request.json = json.loads(body)
                    elif ctype.startswith("multipart/form-data"):
                        request.form = parse_multipart(ctype, body)
                except Exception as exc:  # noqa: BLE001 - a malformed body is the client's bug
                    server.violations.append(f"{self.command} {url.path}: unparseable body ({exc})")
                with server.lock:
                    server.requests.append(request)
                reply = server._dispatch(request)
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> LoopbackServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def inject(self, route: str, statuses: list[int], *, after_effect: bool = False) -> None:
        """Answer the next requests to ``route`` ("POST /fine_tuning/jobs") with these statuses; with
        ``after_effect`` the request is carried out first (a reply lost on the way back)."""
        self.injected.setdefault(route, []).extend((s, after_effect) for s in statuses)

    def calls(self, method: str, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def _dispatch(self, request: Request) -> Reply:
        route = self.route_of(request)
        with self.lock:
            queue = self.injected.get(route) or []
            failure = queue.pop(0) if queue else None
        if failure is not None:
            status, after_effect = failure
            if after_effect:
                self.handle(request)
            return Reply(status, self.error_body(status), {"retry-after-ms": "1", "retry-after": "0"})
        try:
            return self.handle(request)
        except Exception as exc:  # noqa: BLE001 - reported to the test, answered as a server error
            self.violations.append(f"{request.method} {request.path}: fake server crashed: {exc!r}")
            return Reply(500, self.error_body(500))

    api: Any = None
    """The fake's OpenAPI document (``OpenApi``); routes are named by its path templates."""

    def route_of(self, request: Request) -> str:
        """``METHOD /template`` (e.g. ``GET /fine_tuning/jobs/{fine_tuning_job_id}``), for failure injection."""
        path = request.path.removeprefix("/v1")
        found = self.api.operation(request.method, path) if self.api is not None else None
        return f"{request.method} {found[0] if found else path}"

    def error_body(self, status: int, message: str | None = None) -> Any:
        raise NotImplementedError

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError
