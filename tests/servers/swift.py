"""Swift objects behind temp URLs, with the real signature check and conditional GET.

A temp URL is ``<url>/v1/AUTH_<acct>/<container>/<object>?temp_url_sig=S&temp_url_expires=E``
where S is the hex HMAC-SHA1, keyed with the account's Temp-URL-Key, of
``"<METHOD>\\n<E>\\n<path>"`` (Swift's tempurl middleware).  GET (and HEAD) answer
with ETag / Last-Modified and 304 for a current client copy; PUT stores the object
(Heat's TEMP_URL_SIGNAL lands here) and keeps it readable by tests in ``objects``.
"""
from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from hashlib import sha1
from typing import Any, Dict, List, Optional

from tests.servers.base import LoopbackServer, Request, Response
from tests.servers.conditional import conditional_response, etag_of, now

ACCOUNT = "AUTH_loopback"


@dataclass
class SwiftObject:
    body: bytes
    etag: str
    last_modified: float
    content_type: str = "application/octet-stream"


def signature(key: str, method: str, expires: int, path: str) -> str:
    return hmac.new(key.encode(), ("%s\n%d\n%s" % (method, expires, path)).encode(), sha1).hexdigest()


class SwiftServer(LoopbackServer):
    def __init__(self, temp_url_key: str = "loopback-temp-url-key") -> None:
        super().__init__()
        self.temp_url_key = temp_url_key
        self.objects: Dict[str, SwiftObject] = {}
        self.puts: List[Request] = []
        self._lock = threading.Lock()
        pattern = r"/v1/(?P<acct>[^/]+)/(?P<container>[^/]+)/(?P<obj>.+)"
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            self.add_route(method, pattern, self._handle)

    def object_path(self, container: str, obj: str) -> str:
        return "/v1/%s/%s/%s" % (ACCOUNT, container, obj)

    def temp_url(self, container: str, obj: str, method: str = "GET", ttl: int = 3600,
                 expires: Optional[int] = None) -> str:
        path = self.object_path(container, obj)
        exp = int(time.time()) + ttl if expires is None else expires
        return "%s%s?temp_url_sig=%s&temp_url_expires=%d" % (
            self.url, path, signature(self.temp_url_key, method, exp, path), exp)

    def put_object(self, container: str, obj: str, body: Any, content_type: str = "application/json") -> None:
        """Store an object as the operator (or Heat) would, bumping Last-Modified."""
        data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else _json(body)
        with self._lock:
            previous = self.objects.get(self.object_path(container, obj))
            stamp = max(now(), previous.last_modified + 1 if previous else 0)
            self.objects[self.object_path(container, obj)] = SwiftObject(data, etag_of(data), stamp, content_type)

    def get_object(self, container: str, obj: str) -> Optional[bytes]:
        with self._lock:
            found = self.objects.get(self.object_path(container, obj))
        return found.body if found else None

    def _authorised(self, request: Request) -> bool:
        sig, exp = request.q("temp_url_sig"), request.q("temp_url_expires")
        if not sig or not exp or not exp.isdigit() or int(exp) < time.time():
            return False
        method = "GET" if request.method == "HEAD" else request.method
        return hmac.compare_digest(sig, signature(self.temp_url_key, method, int(exp), request.path))

    def _handle(self, request: Request, match: Any) -> Response:
        if not self._authorised(request):
            return Response(401, b"<html><h1>Unauthorized</h1></html>", {"Content-Type": "text/html"})
        if request.method == "PUT":
            with self._lock:
                self.puts.append(request)
            self.put_object_raw(request.path, request.body, request.header("Content-Type") or "")
            return Response(201, b"", {"ETag": etag_of(request.body)})
        if request.method == "DELETE":
            with self._lock:
                gone = self.objects.pop(request.path, None)
            return Response(204 if gone else 404, b"")
        with self._lock:
            found = self.objects.get(request.path)
        if found is None:
            return Response(404, b"<html><h1>Not Found</h1></html>", {"Content-Type": "text/html"})
        return conditional_response(request, found.body, etag=found.etag, last_modified=found.last_modified,
                                    content_type=found.content_type)

    def put_object_raw(self, path: str, body: bytes, content_type: str) -> None:
        with self._lock:
            self.objects[path] = SwiftObject(body, etag_of(body), now(), content_type or "application/octet-stream")


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()
