"""The one HTTP helper: every network call of every tool goes through here.

``HttpClient``, on urllib, carries every request that needs no Keystone, with a
timeout, TLS verification, retry with backoff and jitter, and conditional GET;
``new_session`` gives the requests session that keystoneauth1 drives for the
Keystone-authenticated paths.  Which stack serves what, and why: docs/architecture.md,
"HTTP: two stacks".

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import os
import time

from agent_common.backoff import Backoff, PatientTimeouts
from agent_common.record import Record

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    import ssl
    from typing import Any, Callable, Container, Dict, Mapping, Optional, Tuple, Union

    import requests

DEFAULT_TIMEOUT = 10.0
USER_AGENT = "os-config-agents"
#: Statuses worth trying again: the server may recover.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})

#: TLS verification: on/off, or a CA file or directory. At run time a placeholder: the name stays
#: importable (callers use it in annotations only) without importing typing.
if TYPE_CHECKING:  # pragma: no cover
    Verify = Union[bool, str]
else:
    Verify = object


class Validators(Record):
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


class ConditionalResult(Record):
    """Outcome of a conditional GET: ``body`` is None when the server said 304 Not Modified."""

    not_modified: bool
    body: Optional[bytes]
    validators: Validators
    response: Any = None
    _repr_skip = frozenset({"response"})


class HttpError(Exception):
    """A request that failed for good (after retries); the message names the URL without its query.

    ``retry_after`` is the server's ``Retry-After`` in seconds, if it sent one: the caller's
    next attempt waits at least that long (Backoff.next_delay).
    """

    def __init__(self, message: str, status: Optional[int] = None, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUS


class _TimedOut(HttpError):
    """A request the server did not answer in time: the next one to it waits longer (PatientTimeouts)."""


def retry_after(headers: Any, status: Optional[int] = None) -> Optional[float]:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or HTTP-date), or None.

    Only read on a status worth retrying (503, 429...; any when ``status`` is None): a
    redirect's Retry-After is not about this.  A date in the past or a value that does not
    parse means no wait beyond the usual backoff.
    """
    if status is not None and status not in RETRYABLE_STATUS:
        return None
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time()) or None


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


class HttpResponse(Record):
    """What callers read of a response: status, headers (case-insensitive), body."""

    status_code: int
    headers: Any
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content.decode("utf-8"))


def ssl_context(verify: Verify) -> "ssl.SSLContext":
    """TLS as configured: the system CAs, a CA file or directory, or (only when asked) no verification."""
    import ssl

    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


class HttpClient:
    """The policy every caller wants: timeout, TLS as configured, retries with jittered backoff, clear errors.

    Built on ``urllib.request`` (proxies from the environment, redirects followed);
    one connection per request, as the module docstring explains.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        verify: Verify = True,
        retries: int = 0,
        backoff: Optional[Backoff] = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout
        self.verify = verify
        self.retries = retries
        self.backoff = backoff or Backoff(initial=1.0, cap=30.0)
        self.sleep = sleep
        #: A server that timed out is given longer next time (PatientTimeouts).
        self.patience = PatientTimeouts()
        self._opener: Any = None
        self._opener_verify: Any = None

    def _open(self, req: Any, timeout: float) -> Any:
        import urllib.request

        if self._opener is None or self._opener_verify != self.verify:
            self._opener = urllib.request.build_opener(_lazy_tls_handler(self.verify))
            self._opener_verify = self.verify
        return self._opener.open(req, timeout=timeout)

    def send(self, method: str, url: str, *, params: Optional[Mapping[str, str]] = None,
             headers: Optional[Mapping[str, str]] = None, data: Union[bytes, str, None] = None,
             json_body: Any = None, timeout: Optional[float] = None) -> HttpResponse:
        """One attempt, no retry; any HTTP status is a response, a network failure raises HttpError."""
        import http.client
        import urllib.error
        import urllib.request
        from urllib.parse import urlencode

        if params:
            url = url + ("&" if "?" in url else "?") + urlencode(params)
        all_headers = {"User-Agent": USER_AGENT}
        all_headers.update(headers or {})
        if json_body is not None:
            data = json.dumps(json_body)
            all_headers.setdefault("Content-Type", "application/json")
        if isinstance(data, str):
            data = data.encode("utf-8")
        req = urllib.request.Request(url, data=data, headers=all_headers, method=method)

        def attempt(limits: Tuple[float, float]) -> HttpResponse:
            # urllib has one timeout for the connection and each read: no request sent here is
            # committed (PatientTimeouts.call), so the two limits are the same.
            try:
                try:
                    with self._open(req, limits[1]) as resp:
                        return HttpResponse(resp.status, resp.headers, resp.read(), resp.geturl())
                except urllib.error.HTTPError as exc:  # any non-2xx status: still a response to the caller
                    with exc:
                        return HttpResponse(exc.code, exc.headers, exc.read(), url)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                failed = _TimedOut if _timed_out(exc) else HttpError
                raise failed("%s %s failed: %s" % (method, strip_query(url), _reason(exc))) from None

        return self.patience.call(url, self.timeout if timeout is None else timeout, attempt, (_TimedOut,))

    def request(self, method: str, url: str, *, ok_statuses: Container[int] = range(200, 300),
                json: Any = None, **kwargs: Any) -> HttpResponse:
        """Send a request, retrying what may pass; raise HttpError naming the URL (no query) otherwise."""
        self.backoff.reset()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.send(method, url, json_body=json, **kwargs)
            except HttpError as exc:
                error = exc
            else:
                if response.status_code in ok_statuses:
                    return response
                error = HttpError(
                    "%s %s returned HTTP %d" % (method, strip_query(url), response.status_code),
                    response.status_code, retry_after(response.headers, response.status_code),
                )
            # A server that asks for a longer pause than our own backoff would allow is left to the
            # caller's schedule (the loop's, the outbox's), which does not hold this thread meanwhile.
            too_long = error.retry_after is not None and error.retry_after > self.backoff.cap
            if not error.retryable or attempt > self.retries or too_long:
                raise error
            self.sleep(self.backoff.next_delay(error.retry_after))

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

    def close(self) -> None:
        """Drop the opener (its TLS context); no connection outlives its request, so none is left to close."""
        self._opener = None


def _lazy_tls_handler(verify: Verify) -> Any:
    """An HTTPS handler that makes its TLS context (``verify`` applied) on its first https request.

    Loading the CA store costs about 1.8 MiB resident: an agent polling a plain
    http URL would otherwise carry it for life. A redirect from http to https
    still gets the configured verification.
    """
    import http.client
    import urllib.request

    class LazyTLSHandler(urllib.request.HTTPSHandler):
        context: Any = None

        def https_open(self, req: Any) -> Any:
            if self.context is None:
                self.context = ssl_context(verify)
            return self.do_open(http.client.HTTPSConnection, req, context=self.context)

    return LazyTLSHandler()


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason: the exception type and, for URLError, the underlying cause."""
    inner = getattr(exc, "reason", None)
    if isinstance(inner, BaseException):
        return "%s (%s)" % (type(exc).__name__, type(inner).__name__ if not str(inner) else inner)
    if _timed_out(exc) or "timed out" in str(exc):
        return "timed out"
    return type(exc).__name__


def _timed_out(exc: BaseException) -> bool:
    """True for a connect or read that ran out of time (socket.timeout is TimeoutError from Python 3.10)."""
    import socket

    return isinstance(exc, (TimeoutError, socket.timeout)) or isinstance(getattr(exc, "reason", None), socket.timeout)


_OK_OR_NOT_MODIFIED = frozenset(list(range(200, 300)) + [304])
