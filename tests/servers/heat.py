"""A loopback Heat orchestration API: stack lookup, resource metadata and resource signals.

Only what the agents use, on the real paths and with the real shapes:

* ``GET /v1/<project>/stacks/<name>`` answers 302 with ``Location: .../stacks/<name>/<id>``;
* ``GET /v1/<project>/stacks/<name>/<id>/resources/<res>/metadata`` answers ``{"metadata": ...}``;
* ``POST /v1/<project>/stacks/<name>/<id>/resources/<res>/signal`` records the JSON body (HEAT_SIGNAL).

Every call needs an ``X-Auth-Token`` that the loopback Keystone issued for the project.
Like real Heat, the metadata call sends no ETag / Last-Modified and ignores conditional headers.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional
from urllib.parse import unquote

from tests.servers.base import LoopbackServer, Request, Response
from tests.servers.keystone import KeystoneServer


def _not_found(what: str) -> Response:
    return Response(404, {"code": 404, "error": {"message": "The %s could not be found." % what,
                                                 "type": "EntityNotFound"}, "title": "Not Found"})


@dataclass
class Signal:
    stack_name: str
    stack_id: str
    resource: str
    body: Any
    headers: Dict[str, str]


class HeatServer(LoopbackServer):
    """Heat API v1 for one project; ``endpoint`` is what the Keystone catalog publishes as ``orchestration``."""

    def __init__(self, keystone: KeystoneServer, project_id: str) -> None:
        super().__init__()
        self.keystone = keystone
        self.project_id = project_id
        self.stacks: Dict[str, str] = {}
        self.metadata: Dict[tuple, Any] = {}
        self.signals: List[Signal] = []
        #: Statuses to answer the next signals with, consumed one per signal (to test retries).
        self.signal_statuses: List[int] = []
        self._signal_lock = threading.Lock()
        base = r"/v1/(?P<project>[^/]+)/stacks/(?P<name>[^/]+)"
        self.add_route("GET", base + r"/?", self._lookup)
        self.add_route("GET", base + r"/(?P<id>[^/]+)/resources/(?P<res>[^/]+)/metadata/?", self._metadata)
        self.add_route("POST", base + r"/(?P<id>[^/]+)/resources/(?P<res>[^/]+)/signal/?", self._signal)

    @property
    def endpoint(self) -> str:
        return "%s/v1/%s" % (self.url, self.project_id)

    def add_stack(self, name: str, stack_id: Optional[str] = None) -> str:
        self.stacks[name] = stack_id or str(uuid.uuid4())
        return self.stacks[name]

    def set_metadata(self, stack_name: str, resource: str, metadata: Any) -> None:
        if stack_name not in self.stacks:
            self.add_stack(stack_name)
        self.metadata[(stack_name, resource)] = metadata

    def register(self, region: str = "RegionOne") -> "HeatServer":
        """Publish this server as the ``orchestration`` endpoint in the Keystone catalog."""
        self.keystone.add_endpoint("orchestration", self.endpoint, "heat", region)
        return self

    # -- handlers ------------------------------------------------------------------------------
    def _auth(self, request: Request, match: Any) -> Optional[Response]:
        if match.group("project") != self.project_id:
            return _not_found("project")
        return self.keystone.check(request, self.project_id)

    def _stack(self, match: Any) -> Optional[str]:
        name = unquote(match.group("name"))
        stack_id = self.stacks.get(name)
        if stack_id is None or stack_id != unquote(match.group("id")):
            return None
        return name

    def _lookup(self, request: Request, match: Any) -> Response:
        refused = self._auth(request, match)
        if refused:
            return refused
        name = unquote(match.group("name"))
        if name not in self.stacks:
            return _not_found("Stack (%s)" % name)
        location = "%s/stacks/%s/%s" % (self.endpoint, match.group("name"), self.stacks[name])
        return Response(302, b"", {"Location": location})

    def _metadata(self, request: Request, match: Any) -> Response:
        refused = self._auth(request, match)
        if refused:
            return refused
        name = self._stack(match)
        key = (name, unquote(match.group("res")))
        if name is None or key not in self.metadata:
            return _not_found("Resource (%s)" % key[1])
        return Response(200, {"metadata": self.metadata[key]})

    def _signal(self, request: Request, match: Any) -> Response:
        refused = self._auth(request, match)
        if refused:
            return refused
        name = self._stack(match)
        if name is None:
            return _not_found("Stack")
        with self._signal_lock:
            status = self.signal_statuses.pop(0) if self.signal_statuses else 200
        if status != 200:
            return Response(status, {"error": "simulated"})
        body = request.json() if request.body else None
        with self._signal_lock:
            self.signals.append(Signal(name, match.group("id"), unquote(match.group("res")), body,
                                       dict(request.headers)))
        return Response(200, b"", {"Content-Type": "application/json"})
