"""The one HTTP helper: every network call of every tool goes through here.

It gives each caller a ``requests`` session with a timeout on every request, TLS
verification on unless the configuration says otherwise, retry with backoff and
jitter for failures that may pass (connection errors, time-outs, 429, 5xx), and
conditional GET (ETag / Last-Modified) so an idle poll costs one small request.
``requests`` is imported lazily: a tool that only reads local files never pays for it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Union

from agent_common.backoff import Backoff

if TYPE_CHECKING:  # pragma: no cover
    import requests

DEFAULT_TIMEOUT = 10.0
USER_AGENT = "os-config-agents"
#: Statuses worth trying again: the server may recover.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

Verify = Union[bool, str]


@dataclass
class Validators:
    """The validators of the last good response, sent back to ask "has it changed?"."""

    etag: Optional[str] = None
    last_modified: Optional[str] = None

    def headers(self) -> Dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out

    def to_dict(self) -> Dict[str, Optional[str]]:
        return {"etag": self.etag, "last_modified": self.last_modified}

    @classmethod
    def from_dict(cls, data: Any) -> "Validators":
        if not isinstance(data, dict):
            return cls()
        etag, lm = data.get("etag"), data.get("last_modified")
        return cls(etag if isinstance(etag, str) else None, lm if isinstance(lm, str) else None)

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass
class ConditionalResult:
    """Outcome of a conditional GET: ``body`` is None when the server said 304 Not Modified."""

    not_modified: bool
    body: Optional[bytes]
    validators: Validators
    response: Any = field(repr=False, default=None)


class HttpError(Exception):
    """A request that failed for good (after retries); the message names the URL without its query."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUS


def strip_query(url: str) -> str:
    """The URL without its query string: signed URLs carry their secret there."""
    return url.split("?", 1)[0]


def new_session(verify: Verify = True, cert: Optional[str] = None) -> "requests.Session":
    """A requests session with our User-Agent and TLS settings (``verify`` may be a CA bundle path)."""
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.verify = verify
    if cert:
        session.cert = cert
    return session


class HttpClient:
    """A session plus the policy every caller wants: timeout, retries with jittered backoff, clear errors."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify: Verify = True,
        retries: int = 0,
        backoff: Optional[Backoff] = None,
        sleep: Callable[[float], None] = time.sleep,
        session: Optional["requests.Session"] = None,
    ) -> None:
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff or Backoff(initial=1.0, cap=30.0)
        self.sleep = sleep
        self.session = session or new_session(verify)

    def request(self, method: str, url: str, *, ok_statuses=range(200, 300), **kwargs: Any) -> "requests.Response":
        """Send one request, retrying what may pass; raise HttpError naming the URL (no query) otherwise."""
        import requests

        kwargs.setdefault("timeout", self.timeout)
        # Passed explicitly: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``session.verify``
        # (a CA file or False) whenever the request itself says nothing.
        kwargs.setdefault("verify", self.session.verify)
        self.backoff.reset()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.RequestException as exc:
                error = HttpError("%s %s failed: %s" % (method, strip_query(url), type(exc).__name__))
            else:
                if response.status_code in ok_statuses:
                    return response
                error = HttpError(
                    "%s %s returned HTTP %d" % (method, strip_query(url), response.status_code),
                    response.status_code,
                )
            if not error.retryable or attempt > self.retries:
                raise error
            self.sleep(self.backoff.next_delay())

    def conditional_get(self, url: str, validators: Optional[Validators] = None, **kwargs: Any) -> ConditionalResult:
        """GET ``url`` sending the last validators; a 304 costs no body and means "unchanged"."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if validators:
            headers.update(validators.headers())
        response = self.request("GET", url, headers=headers, ok_statuses=_OK_OR_NOT_MODIFIED, **kwargs)
        if response.status_code == 304:
            return ConditionalResult(True, None, validators or Validators(), response)
        fresh = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
        return ConditionalResult(False, response.content, fresh, response)


_OK_OR_NOT_MODIFIED = frozenset(list(range(200, 300)) + [304])
