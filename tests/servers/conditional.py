"""Conditional GET as HTTP servers do it (RFC 9110 §13): ETag / Last-Modified, 304 Not Modified.

Shared by the EC2 and Swift loopback servers so agents can be tested on the
validators they send and on the bytes they save.
"""
from __future__ import annotations

import hashlib
import time
from email.utils import formatdate, parsedate_to_datetime
from typing import Dict, Optional

from tests.servers.base import Request, Response


def etag_of(body: bytes) -> str:
    return hashlib.md5(body).hexdigest()


def http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    tags = [t.strip() for t in header.split(",")]
    return any(t.strip('"').replace("W/", "", 1).strip('"') == etag for t in tags)


def not_modified(request: Request, etag: Optional[str], last_modified: Optional[float]) -> bool:
    """Whether the validators the client sent match: If-None-Match wins over If-Modified-Since."""
    inm = request.header("If-None-Match")
    if inm is not None:
        return etag is not None and _etag_matches(inm, etag)
    ims = request.header("If-Modified-Since")
    if ims and last_modified is not None:
        try:
            since = parsedate_to_datetime(ims).timestamp()
        except (TypeError, ValueError):
            return False
        return int(last_modified) <= since
    return False


def conditional_response(request: Request, body: bytes, *, etag: Optional[str], last_modified: Optional[float],
                         content_type: str = "application/json") -> Response:
    """200 with the validators, or 304 with them when the client's copy is current."""
    headers: Dict[str, str] = {"Content-Type": content_type}
    if etag is not None:
        headers["ETag"] = '"%s"' % etag
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    if not_modified(request, etag, last_modified):
        return Response(304, b"", headers)
    return Response(200, body, headers)


def now() -> float:
    return time.time()
