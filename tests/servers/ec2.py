"""The EC2 metadata service as Nova's serves it: directory listings, leaf values, conditional GET.

A tree is a nested dict under ``/<version>/meta-data/``.  A key holding ``=`` is shown
as is in its listing (``0=mykey``) but reached by the part before it (``0/``), as EC2
shows public keys.  Tests change the tree with ``set`` and switch validators off with
``conditional = False`` (then every GET is a full 200, as some servers do).
"""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional

from tests.servers.base import LoopbackServer, Request, Response
from tests.servers.conditional import conditional_response, etag_of, now


class Ec2Server(LoopbackServer):
    def __init__(self, tree: Dict[str, Any], version: str = "latest") -> None:
        super().__init__()
        self.tree = tree
        self.version = version
        self.conditional = True
        #: Put blank lines in listings (some servers do; the original crashed on them).
        self.blank_lines = False
        self.modified: Dict[str, float] = {}
        self._mtime = now()
        self._lock = threading.Lock()
        self.add_route("GET", r"/%s/meta-data(/.*)?" % version, self._get)

    @property
    def metadata_url(self) -> str:
        return "%s/%s/meta-data" % (self.url, self.version)

    def set(self, path: str, value: Any) -> None:
        """Replace the node at ``a/b/c`` (creating parents)."""
        with self._lock:
            parts = [p for p in path.split("/") if p]
            node = self.tree
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
            self._mtime = now() + 1  # strictly later than anything served before

    def _lookup(self, parts: List[str]) -> Optional[Any]:
        node: Any = self.tree
        for part in parts:
            if not isinstance(node, dict):
                return None
            match = [k for k in node if k == part or k.split("=", 1)[0] == part]
            if not match:
                return None
            node = node[match[0]]
        return node

    def _get(self, request: Request, match: Any) -> Response:
        rest = match.group(1) or "/"
        parts = [p for p in rest.split("/") if p]
        with self._lock:
            node = self._lookup(parts)
            mtime = self._mtime
        if node is None:
            return Response(404, b"Not Found", {"Content-Type": "text/plain"})
        if isinstance(node, dict):
            if not rest.endswith("/"):
                return Response(404, b"Not Found", {"Content-Type": "text/plain"})
            lines = [k + ("/" if isinstance(v, dict) and "=" not in k else "") for k, v in node.items()]
            sep = "\n\n" if self.blank_lines else "\n"
            body = (sep.join(lines) + ("\n" if self.blank_lines else "")).encode()
        else:
            body = str(node).encode()
        if not self.conditional:
            return Response(200, body, {"Content-Type": "text/plain"})
        return conditional_response(request, body, etag=etag_of(body), last_modified=mtime,
                                    content_type="text/plain")
