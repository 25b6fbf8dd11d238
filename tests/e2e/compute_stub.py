#!/usr/bin/env python3
"""The one Nova call Heat makes for an OS::Heat::DeployedServer, answered on 127.0.0.1.

Why it exists: when a SoftwareDeployment with a DELETE action is deleted, Heat 27 asks Nova whether the
deployment's server still exists (``GET /v2.1/servers/<id>``) before it waits for the agent's DELETE
signal, even when the server is a DeployedServer that Nova never knew. Without a compute endpoint that
call fails (EndpointNotFound) and the stack cannot be deleted. Nova itself cannot run here, so this
speaks the wire format of that one call (and the version documents) and reports every server ACTIVE:
a DeployedServer exists exactly as long as its stack resource, which is what Heat is asking about.

    python compute_stub.py PORT
"""
from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = {"id": "v2.1", "status": "CURRENT", "version": "2.1", "min_version": "2.1",
           "updated": "2013-07-23T11:33:21Z", "links": []}
SERVER = re.compile(r"^/v2\.1(?:/[0-9a-f]{32})?/servers/([^/?]+)$")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0].rstrip("/")
        match = SERVER.match(path)
        if match:
            self._send(200, {"server": {"id": match.group(1), "name": "deployed-server", "status": "ACTIVE",
                                        "links": [], "metadata": {}}})
        elif path in ("", "/v2.1") or re.match(r"^/v2\.1/[0-9a-f]{32}$", path):
            self._send(200, {"version": VERSION} if path else {"versions": [VERSION]})
        else:
            self._send(404, {"itemNotFound": {"code": 404, "message": "not served by the compute stub"}})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-OpenStack-Nova-API-Version", "2.1")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("compute-stub: %s\n" % (fmt % args))


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
