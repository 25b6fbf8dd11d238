"""Exponential backoff with full jitter, shared by polling, signal retry and HTTP retry.

Jitter keeps a fleet of VMs that lost their metadata server at the same moment from
all coming back at the same moment.  "Full" jitter draws each delay from [0, ceiling]
(not [ceiling/2, ceiling]): a fleet that failed together then comes back spread over
the whole window, so its peak is the steady rate, not twice it (issue 16).  A server
that says when to come back (``Retry-After``) is obeyed: the delay is at least that,
plus the jitter, so the fleet it told the same instant does not return at that instant.
A server too slow to answer in time is given longer (``PatientTimeouts``).

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import logging
import random

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Dict, Optional, Tuple, Type, TypeVar

    T = TypeVar("T")

LOG = logging.getLogger(__name__)

#: A ``Retry-After`` longer than this (seconds) is cut to it: a misconfigured proxy must not park agents for days.
RETRY_AFTER_CAP_S = 900.0
#: Beyond this many doublings every delay is the cap anyway (2 ** 64 times any initial delay in use).
MAX_EXPONENT = 64
#: The longest a request may wait (seconds) after the ones before it to the same server timed out.
PATIENT_TIMEOUT_CAP_S = 120.0
#: How long a committed request (PatientTimeouts.call) waits for its answer: a queue of a few hundred
#: tokens on one Keystone worker (about 1 s each on the bench's plane), yet not for ever on a hung server.
COMMITTED_WAIT_S = 300.0


class Backoff:
    """Delays that double from ``initial`` up to ``cap``; each drawn uniformly from [0, delay] (full jitter)."""

    def __init__(self, initial: float = 1.0, cap: float = 300.0, factor: float = 2.0,
                 rng: Optional[random.Random] = None) -> None:
        if initial <= 0 or cap < initial:
            raise ValueError("backoff needs 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.failures = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The un-jittered delay for the current failure count.

        The exponent is bounded: the count grows by one per failure for as long as a
        source stays down (and is saved across restarts), and ``2.0 ** 1024`` overflows a
        float, which after about 1,025 failures in a row raised instead of waiting.
        """
        exponent = min(max(self.failures - 1, 0), MAX_EXPONENT)
        return min(self.cap, self.initial * (self.factor ** exponent))

    def next_delay(self, at_least: Optional[float] = None) -> float:
        """Record one more failure and return how long to wait before the next try.

        ``at_least`` is the server's ``Retry-After`` (seconds, capped at RETRY_AFTER_CAP_S):
        the jittered delay is added to it, never replaced by it.
        """
        self.failures += 1
        jitter = self._rng.uniform(0, self.ceiling())
        if at_least is not None and at_least > 0:
            return min(at_least, RETRY_AFTER_CAP_S) + jitter
        return jitter

    def reset(self) -> None:
        self.failures = 0


class PatientTimeouts:
    """The timeout of the next request to each server: the configured one, doubled after each that timed out.

    A server still does the work of a request its client gave up on.  A fleet that
    retries on the same short timeout against a server past its capacity (200 agents
    starting at once, a heat-api back from a restart: bench/FLEET.md) keeps adding work
    nobody waits for, and then no request is answered in time at all.  Waiting twice as
    long each time, up to PATIENT_TIMEOUT_CAP_S, lets that queue drain; the server's
    first answer brings the configured timeout back.  A request the server finishes anyway
    waits longer still, from the first try (``committed``).  A server is a URL's host and port.
    """

    def __init__(self, cap: float = PATIENT_TIMEOUT_CAP_S, committed_wait: float = COMMITTED_WAIT_S) -> None:
        self.cap = cap
        self.committed_wait = committed_wait
        #: The timeout of each server that last timed out, by ``host:port``.
        self.stretched: Dict[str, float] = {}

    def call(self, url: str, configured: float, attempt: "Callable[[Tuple[float, float]], T]",
             timeout_errors: "Tuple[Type[BaseException], ...]", label: str = "", committed: bool = False) -> "T":
        """``attempt((connect, read))``: how long to wait for the connection, then for the answer.

        ``timeout_errors`` are what ``attempt`` raises when either time is up.  ``label`` goes
        before the server's ``host:port`` in the log line (``"Keystone at "``).

        ``committed`` marks a request the server carries out to the end whether or not its
        client still waits: a Keystone token, a Zaqar claim, a websocket authentication.  Giving
        up on one and asking again only doubles the work of a server already behind (200
        agents starting at once gave up three token requests each, bench/FLEET.md), so its
        answer is waited for up to ``committed_wait`` from the first try, where the originals
        wait without limit.  A connection the server has not accepted costs it nothing, so that
        wait stays the usual one.
        """
        from urllib.parse import urlsplit

        server = urlsplit(url).netloc.rpartition("@")[2]  # no user or password in the key or the log
        connect = max(configured, self.stretched.get(server, 0.0))
        read = max(self.committed_wait, configured) if committed else connect
        try:
            result = attempt((connect, read))
        except timeout_errors:
            self.stretched[server] = min(connect * 2, max(self.cap, configured))
            within = "%g s" % read if read == connect else "%g s to connect or %g s to answer" % (connect, read)
            LOG.info("%s%s gave no answer within %s; the next request to it waits up to %g s.",
                     label, server, within, self.stretched[server])
            raise
        self.stretched.pop(server, None)
        return result
