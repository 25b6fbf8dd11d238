"""A small threaded HTTP server with routes and a record of every request.

Protocol servers (keystone, heat, cfn, ...) subclass or compose ``LoopbackServer``
and add routes; tests read ``server.requests`` to assert what the agents sent.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Pattern, Tuple, Union
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes
    raw_path: str = ""

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def q(self, name: str) -> Optional[str]:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int = 200
    body: Union[bytes, str, Any] = b""
    headers: Dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        self.headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode("utf-8")


Handler = Callable[[Request, "re.Match[str]"], Response]


class LoopbackServer:
    """HTTP on 127.0.0.1:<ephemeral>; routes are (method, regex on the path) → handler."""

    def __init__(self) -> None:
        self.routes: List[Tuple[str, Pattern[str], Handler]] = []
        self.requests: List[Request] = []
        self.bytes_sent = 0
        self.lock = threading.Lock()
        #: When set, every request is answered with this status (to simulate an outage).
        self.fail_with: Optional[int] = None
        #: Seconds to wait before answering (to simulate a slow server).
        self.delay_s: float = 0.0
        #: When set (tests/servers/faults.py), called with each recorded request and its handler before the
        #: routes; it returns True when it answered (or broke) the request itself.
        self.injector: Optional[Callable[[Request, BaseHTTPRequestHandler], bool]] = None
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._scheme = "http"

    # -- routes -----------------------------------------------------------------------------
    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append((method.upper(), re.compile("^" + pattern + "$"), handler))
            return handler

        return register

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        self.route(method, pattern)(handler)

    def dispatch(self, request: Request) -> Response:
        import time

        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail_with is not None:
            return Response(self.fail_with, b"simulated failure")
        for method, pattern, handler in self.routes:
            if method != request.method:
                continue
            match = pattern.match(request.path)
            if match:
                return handler(request, match)
        return Response(404, b"not found")

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return "%s://127.0.0.1:%d" % (self._scheme, self.port)

    def start(self, port: int = 0, ssl_context: Any = None) -> "LoopbackServer":
        """Serve on ``port`` (0: ephemeral); with an ``ssl.SSLContext``, serve HTTPS."""
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                    raw_path=self.path,
                )
                with server.lock:
                    server.requests.append(request)
                if server.injector is not None and server.injector(request, self):
                    return
                try:
                    response = server.dispatch(request)
                except Exception as exc:  # a bug in a test server should show, not hang
                    response = Response(500, ("server error: %r" % exc).encode())
                has_body = response.status not in (204, 304)
                payload = response.encoded() if has_body and self.command != "HEAD" else b""
                # Counted before the client can see the response, so a test that clears the
                # counters after its request returned never catches a late count.
                with server.lock:
                    server.bytes_sent += len(payload)
                self.send_response(response.status)
                for key, value in response.headers.items():
                    self.send_header(key, value)
                if has_body:
                    self.send_header("Content-Length", str(len(response.encoded())))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- assertions helpers -----------------------------------------------------------------
    def received(self, method: Optional[str] = None, path_regex: Optional[str] = None) -> List[Request]:
        with self.lock:
            reqs = list(self.requests)
        return [
            r for r in reqs
            if (method is None or r.method == method) and (path_regex is None or re.search(path_regex, r.path))
        ]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bytes_sent = 0
