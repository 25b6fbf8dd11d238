"""Fault injection for the loopback servers: at random, a server goes down, answers 5xx, hangs or sends garbage.

``FaultInjector(seed, rate).attach(server)`` makes any ``LoopbackServer`` misbehave on a
share ``rate`` of its requests, each fault chosen (seeded, so a failure reproduces) among:

- ``down``: the connection is closed without an answer, and the server stays "down"
  (every request dropped) for a short outage window;
- ``5xx``: 500, 502, 503 or 504;
- ``hang_short``: the answer comes late, but within ``hang_short_s`` (below the client's timeout);
- ``hang_long``: no answer for ``hang_long_s`` (beyond the client's timeout), then the connection drops;
- ``garbage``: bytes that are not HTTP, then the connection drops;
- ``garbage_body``: ``200 OK`` with a body that is not what the protocol says, never valid JSON (GET
  only: a garbage 200 to a signal POST would make the agent believe a signal accepted that the server
  never recorded). Leave it out of ``kinds`` for a server whose answers are free text (EC2 metadata):
  there any body is a valid value.

``weights`` makes some kinds likelier than others (equal by default). ``fail_for(seconds, path)``
additionally breaks every request whose path matches, for a while, as an endpoint that is down
(counted as ``outage``): that is how a test makes one signal fail longer than a run's retries.

A fault is injected before the server's routes run, so a request that met one was never
processed: a signal counted by the server is a signal the agent was told was accepted.
``counts`` says how many of each kind were injected; ``enabled = False`` stops injecting.
"""
from __future__ import annotations

import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Dict, List, Mapping, Optional, Pattern, Sequence, Tuple

from tests.servers.base import LoopbackServer, Request

KINDS = ("down", "5xx", "hang_short", "hang_long", "garbage", "garbage_body")


class FaultInjector:
    """Breaks a share of one server's requests, seeded; see the module docstring for the kinds."""

    def __init__(self, seed: int, rate: float = 0.3, kinds: Sequence[str] = KINDS, *, hang_short_s: float = 0.3,
                 hang_long_s: float = 2.0, outage_s: float = 1.0,
                 weights: Optional[Mapping[str, float]] = None) -> None:
        self.random = random.Random(seed)
        self.rate = rate
        self.kinds = tuple(kinds)
        self.weights = [float((weights or {}).get(kind, 1.0)) for kind in self.kinds]
        self.hang_short_s = hang_short_s
        self.hang_long_s = hang_long_s
        self.outage_s = outage_s
        self.enabled = True
        self.counts: Dict[str, int] = {kind: 0 for kind in self.kinds}
        self._outage_until = 0.0
        #: fail_for() windows: (until, path pattern).
        self._windows: List[Tuple[float, Pattern[str]]] = []
        self._lock = threading.Lock()

    def attach(self, server: LoopbackServer) -> "FaultInjector":
        server.injector = self
        return self

    def fail_for(self, seconds: float, path_regex: str) -> None:
        """Break every request whose path matches ``path_regex`` for the next ``seconds`` (while ``enabled``):
        a 5xx or a dropped connection, counted as ``outage``."""
        with self._lock:
            self._windows.append((time.monotonic() + seconds, re.compile(path_regex)))

    def _in_window(self, request: Request) -> bool:
        now = time.monotonic()
        self._windows = [(until, pattern) for until, pattern in self._windows if until > now]
        return any(pattern.search(request.path) for _, pattern in self._windows)

    def _choose(self, request: Request) -> Optional[str]:
        with self._lock:
            if not self.enabled:
                return None
            if self._in_window(request):
                kind: Optional[str] = "outage"
            elif time.monotonic() < self._outage_until:
                kind = "down"
            elif self.random.random() >= self.rate:
                return None
            else:
                kind = self.random.choices(self.kinds, self.weights)[0]
                if kind == "garbage_body" and request.method != "GET":
                    kind = "5xx" if "5xx" in self.kinds else "down"
                if kind == "down":
                    self._outage_until = time.monotonic() + self.random.uniform(0.2, self.outage_s)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            return kind

    def __call__(self, request: Request, handler: BaseHTTPRequestHandler) -> bool:
        """The server's hook: True when this request was broken here (the routes must not run)."""
        kind = self._choose(request)
        if kind is None:
            return False
        if kind == "hang_short":
            time.sleep(self.random.uniform(0.05, self.hang_short_s))
            return False
        if kind == "outage":
            kind = self.random.choice(("5xx", "drop"))
        if kind == "5xx":
            body = b"injected fault"
            handler.send_response(self.random.choice((500, 502, 503, 504)))
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return True
        if kind == "garbage_body":
            # "<" can start no JSON document, so no draw (a lone digit, say) is ever a valid one
            body = b"<" + bytes(self.random.getrandbits(8) for _ in range(self.random.randint(0, 200)))
            handler.send_response(200)
            handler.send_header("Content-Type", self.random.choice(("application/json", "application/xml",
                                                                    "text/plain")))
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return True
        if kind == "hang_long":
            time.sleep(self.hang_long_s)
        elif kind == "garbage":
            handler.wfile.write(b"\x00\xffNOT HTTP\r\n" + bytes(self.random.getrandbits(8) for _ in range(64)))
        _drop(handler)
        return True


def _drop(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without an answer, as a server that died or reset it."""
    handler.close_connection = True
    try:
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
