"""A minimal Docker Engine API client: the few read-only calls the container hooks need.

List images, list containers and read a container's log tail are three GETs on
the Engine API, made with the standard library over ``DOCKER_HOST`` (``unix://``
or ``tcp://``): no docker-py, no import cost, and it speaks to any engine version
(requests are unversioned, so the engine answers with its own API).
"""
from __future__ import annotations

import http.client
import json
import socket
import struct
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import quote, urlencode

DEFAULT_HOST = "unix:///var/run/docker.sock"


class EngineError(Exception):
    """The engine could not be reached or refused a request; the message says which and why."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Engine:
    """The engine at ``docker_host`` (``$DOCKER_HOST`` syntax); every request has a timeout."""

    def __init__(self, docker_host: Optional[str] = None, timeout: float = 30.0) -> None:
        self.host = docker_host or DEFAULT_HOST
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.host.startswith("unix://"):
            return _UnixConnection(self.host[len("unix://"):], self.timeout)
        if self.host.startswith("tcp://"):
            return http.client.HTTPConnection(self.host[len("tcp://"):].rstrip("/"), timeout=self.timeout)
        raise EngineError("DOCKER_HOST=%s: only unix:// and tcp:// are supported" % self.host)

    def _get(self, path: str, query: Optional[Mapping[str, str]] = None) -> bytes:
        url = path + ("?" + urlencode(query) if query else "")
        conn = self._connection()
        try:
            conn.request("GET", url, headers={"Host": "docker"})
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            raise EngineError("cannot reach the container engine at %s: %s" % (self.host, exc)) from None
        finally:
            conn.close()
        if response.status != 200:
            raise EngineError("engine answered %d to GET %s: %s" % (
                response.status, path, body[:200].decode("utf-8", "replace").strip()))
        return body

    def _json(self, path: str, query: Optional[Mapping[str, str]] = None) -> Any:
        try:
            return json.loads(self._get(path, query))
        except ValueError as exc:
            raise EngineError("engine sent invalid JSON for %s: %s" % (path, exc)) from None

    def images(self) -> List[Dict[str, Any]]:
        return self._json("/images/json")

    def containers(self, all: bool = False, labels: Optional[Mapping[str, str]] = None) -> List[Dict[str, Any]]:
        """Containers (running only unless ``all``), optionally those carrying every ``label=value`` given."""
        query = {"all": "1" if all else "0"}
        if labels:
            query["filters"] = json.dumps({"label": ["%s=%s" % kv for kv in sorted(labels.items())]})
        return self._json("/containers/json", query)

    def log_tails(self, container: str, lines: int = 20, scan: int = 1000) -> Dict[str, str]:
        """The last ``lines`` lines the container wrote on stdout and on stderr: ``{"stdout": ..., "stderr": ...}``.

        The engine logs the two streams in arrival order and applies ``tail`` before
        filtering by stream, so the last error line can sit behind later-copied
        output: the last ``scan`` entries are read and split here.
        """
        raw = self._get("/containers/%s/logs" % quote(container, safe=""),
                        {"stdout": "1", "stderr": "1", "tail": str(scan)})
        streams = demux(raw)
        return {name: "".join(data.decode("utf-8", "replace").splitlines(True)[-lines:])
                for name, data in streams.items()}


def demux(raw: bytes) -> Dict[str, bytes]:
    """Split a log stream into stdout and stderr: frames of an 8-byte header (stream, 0, 0, 0, size).

    A container with a TTY sends one raw stream, returned as stdout.
    """
    out = {"stdout": bytearray(), "stderr": bytearray()}
    pos = 0
    while pos + 8 <= len(raw):
        kind, size = raw[pos], struct.unpack(">I", raw[pos + 4:pos + 8])[0]
        if kind not in (0, 1, 2) or raw[pos + 1:pos + 4] != b"\0\0\0":
            return {"stdout": raw, "stderr": b""}
        out["stderr" if kind == 2 else "stdout"] += raw[pos + 8:pos + 8 + size]
        pos += 8 + size
    if pos != len(raw):
        return {"stdout": raw, "stderr": b""}
    return {k: bytes(v) for k, v in out.items()}
