"""Signal transports (SPEC §7) and the durable outbox that retries them.

Each transport is one class with ``send(data)``; ``routes`` chooses a deployment's
transports from its inputs as the original notifier does, and the bytes on the
wire are the original's.  One attempt has a timeout and ends sent, refused for
good (a 4xx other than 408/429, refused credentials: ``SignalFailed`` not
retryable) or pending (connection error, time-out, 408, 429, 5xx: retryable).
The ``Outbox`` keeps pending signals in the journal and retries them with
exponential backoff and jitter, bounded per run, across restarts.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional
from urllib.parse import quote, urlsplit

from agent_common import keystone, proc
from agent_common.backoff import COMMITTED_WAIT_S, Backoff
from agent_common.deployment_contract import input_values
from agent_common.http import HttpClient, HttpError, strip_query
from heat_config.deployment import load_file
from heat_config.journal import (
    SIGNAL_NONE,
    SIGNAL_PENDING,
    SIGNAL_REFUSED,
    SIGNAL_SENT,
    SIGNALLED,
    Journal,
    JournalRecord,
    now,
)

LOG = logging.getLogger("heat-config")

#: Heat's request body limit is 1 MiB; the original trims to this many serialised characters (§7.4).
MAX_SIGNAL_CHARS = 950000
#: Seconds one request may take; overridable like the retry bound.
REQUEST_TIMEOUT_S = 20.0
REQUEST_TIMEOUT_ENV = "HEAT_CONFIG_SIGNAL_TIMEOUT_S"
#: Seconds one run spends retrying one signal (SPEC §12.13.6); overridable for tests and slow sites.
RETRY_BUDGET_S = 60.0
RETRY_BUDGET_ENV = "HEAT_CONFIG_SIGNAL_RETRY_S"
#: Backoff between attempts: first retry within 2 s, capped at 5 minutes.
BACKOFF_INITIAL_S, BACKOFF_CAP_S = 2.0, 300.0
#: Zaqar message lifetime, as the original (§7.6).
ZAQAR_TTL_S = 600


# -- outcomes -----------------------------------------------------------------------------------
class SignalFailed(Exception):
    """One attempt failed; ``retryable`` says whether trying again may help. The message holds no secret.

    ``retry_after`` is the endpoint's ``Retry-After`` (seconds): the next try waits at least that.
    """

    def __init__(self, message: str, retryable: bool, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def _from_http_error(exc: HttpError) -> SignalFailed:
    return SignalFailed(str(exc), exc.retryable, exc.retry_after)


def _request(client: HttpClient, method: str, url: str, **kwargs: Any) -> None:
    """One request through the shared HTTP client; any failure becomes a SignalFailed naming no secret."""
    try:
        client.request(method, url, **kwargs)
    except HttpError as exc:
        raise _from_http_error(exc) from None


# -- payload ------------------------------------------------------------------------------------
def serialise(data: Any) -> str:
    """The body as the original sends it: ASCII-escaped JSON, default separators."""
    return json.dumps(data, ensure_ascii=True)


def _cut_note(count: int) -> str:
    return "[... %d characters cut to fit the signal ...]\n" % count


def fit(data: Any, limit: int = MAX_SIGNAL_CHARS) -> str:
    """The serialised signal, trimmed to ``limit`` characters as §7.4 intends (SPEC §11.7, §11.8, §12.11).

    ``deploy_stdout`` and ``deploy_stderr`` lose characters from their start in
    proportion to their size, and say so; if that is not enough, the other string
    values are cut the same way, largest first; if even that is not enough (huge
    non-string outputs), only the deploy_* keys are sent, with a line saying so.
    """
    body = serialise(data)
    if len(body) <= limit or not isinstance(data, dict):
        return body
    body = _trim(data, limit)
    if len(body) <= limit:
        return body
    note = "heat-config: outputs dropped, the signal was larger than %d characters\n" % limit
    kept = {k: v for k, v in data.items() if k.startswith("deploy_")}
    kept["deploy_stderr"] = "%s%s" % (kept.get("deploy_stderr") or "", note)
    body = _trim(kept, limit)
    if len(body) <= limit:
        return body
    return serialise({"deploy_stdout": "", "deploy_stderr": note, "deploy_status_code": 1})


def _trim(data: Dict[str, Any], limit: int) -> str:
    original = dict(data)
    data = dict(data)
    cuts: Dict[str, int] = {}
    first = [k for k in ("deploy_stdout", "deploy_stderr") if isinstance(data.get(k), str)]
    others = sorted((k for k, v in data.items() if isinstance(v, str) and k not in first),
                    key=lambda k: -len(serialise(data[k])))
    body = serialise(data)
    for group in (first, *[[k] for k in others]):
        for _ in range(8):
            excess = len(body) - limit
            if excess <= 0:
                return body
            sizes = {k: len(serialise(data[k])) for k in group if len(original[k]) - cuts.get(k, 0) > 200}
            total = sum(sizes.values())
            if not total:
                break
            for key, size in sizes.items():
                chars_per_serialised = len(data[key]) / size
                cuts[key] = min(len(original[key]),
                                cuts.get(key, 0) + int(excess * size / total * chars_per_serialised) + 100)
                data[key] = _cut_note(cuts[key]) + original[key][cuts[key]:]
            body = serialise(data)
    return body


# -- transports ---------------------------------------------------------------------------------
#: The only URL schemes a signal may use: anything else (``file:``, ``ftp:``) would be opened by urllib.
SIGNAL_SCHEMES = ("http", "https")


def url_problem(name: str, value: Any) -> Optional[str]:
    """Why input ``name`` cannot be the URL a signal goes to, or None (issue 12 defect 7).

    Checked when a deployment arrives, before its hook runs, so that a deployment
    whose result could never be reported is refused up front instead of failing
    in every later run.  The answer never quotes the value: a signed URL's query
    is a secret (SPEC §12.10).
    """
    if not isinstance(value, str) or not value.strip():
        return "input %s is empty" % name
    try:
        parts = urlsplit(value)
        usable = parts.scheme.lower() in SIGNAL_SCHEMES and bool(parts.hostname)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        usable = False
    return None if usable else "input %s is not an http or https URL with a host" % name


class Transport:
    """One way to reach Heat. ``send`` makes one attempt and raises SignalFailed when it did not land."""

    name = "NO_SIGNAL"
    #: The HTTP client ``send`` uses; None for a transport made only to be named or checked (``routes``).
    client: Optional[HttpClient] = None

    def http(self) -> HttpClient:
        """The client to send with; a transport made without one cannot send."""
        if self.client is None:
            raise RuntimeError("%s was made without an HTTP client: it can be named and checked, not sent" % self.name)
        return self.client

    def problem(self) -> Optional[str]:
        """Why this transport can never deliver (an unusable URL), or None."""
        return None

    def check(self) -> None:
        """Refuse for good, before any request, what ``problem`` says can never be delivered."""
        problem = self.problem()
        if problem:
            raise SignalFailed(problem, False)

    def send(self, data: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class UrlSignal(Transport):
    """A pre-signed URL, used as given (never re-encoded): CFN POST or Swift temp URL PUT (§7.2, §7.3)."""

    def __init__(self, url: str, verb: str, client: Optional[HttpClient]) -> None:
        self.url = url
        self.verb = "PUT" if verb == "PUT" else "POST"
        self.name = "TEMP_URL_SIGNAL" if self.verb == "PUT" else "CFN_SIGNAL"
        self.client = client

    def problem(self) -> Optional[str]:
        return url_problem("deploy_signal_id", self.url)

    def send(self, data: Any) -> None:
        self.check()
        LOG.debug("Signalling %s via %s", strip_query(self.url), self.verb)
        _request(self.http(), self.verb, self.url, data=fit(data).encode("ascii"),
                 headers={"content-type": "application/json"})


#: Keystone sessions of this process, by credentials: retries reuse the token instead of re-authenticating.
_SESSIONS: Dict[Any, Any] = {}


class KeystoneSignal(Transport):
    """Base of the transports that authenticate with the deployment's stack-user credentials (§7.5, §7.6)."""

    service_type = ""

    def __init__(self, inputs: Mapping[str, Any], client: Optional[HttpClient]) -> None:
        self.inputs = inputs
        self.client = client

    def problem(self) -> Optional[str]:
        return url_problem("deploy_auth_url", self.inputs.get("deploy_auth_url"))

    def _token_and_endpoint(self) -> "tuple[str, str]":
        self.check()
        creds = keystone.Credentials(
            auth_url=str(self.inputs.get("deploy_auth_url") or ""),
            user_id=str(self.inputs.get("deploy_user_id") or ""),
            password=str(self.inputs.get("deploy_password") or ""),
            project_id=str(self.inputs.get("deploy_project_id") or ""),
            region_name=self.inputs.get("deploy_region_name") or None,
        )
        try:
            from keystoneauth1 import exceptions as ks_exc
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise SignalFailed("keystoneauth1 is not installed: %s" % exc, False) from None
        try:
            session = _SESSIONS.get(creds)
            if session is None:
                session = _SESSIONS[creds] = keystone.KeystoneSession(creds, timeout=self.http().timeout)
            token = session.token()
            url = session.endpoint(self.service_type, creds.region_name)
        except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.RequestTimeout,
                ks_exc.DiscoveryFailure) as exc:
            raise SignalFailed("keystone at %s unreachable: %s" % (strip_query(creds.auth_url),
                                                                   type(exc).__name__), True) from None
        except ks_exc.HttpError as exc:
            status = getattr(exc, "http_status", None) or 0
            retry = status in (408, 429) or status >= 500
            raise SignalFailed("keystone at %s refused: HTTP %s" % (strip_query(creds.auth_url), status),
                               retry, getattr(exc, "retry_after", None) or None) from None
        except (ks_exc.EndpointNotFound, ks_exc.EmptyCatalog, LookupError) as exc:
            raise SignalFailed("no public %s endpoint in the catalog: %s" % (self.service_type,
                                                                          type(exc).__name__), False) from None
        except ks_exc.ClientException as exc:
            raise SignalFailed("keystone error: %s" % type(exc).__name__, True) from None
        return token, url.rstrip("/")


class HeatSignal(KeystoneSignal):
    """POST <orchestration>/stacks/<name/id>/resources/<resource>/signal with X-Auth-Token (§7.5)."""

    name = "HEAT_SIGNAL"
    service_type = "orchestration"

    def send(self, data: Any) -> None:
        token, endpoint = self._token_and_endpoint()
        url = "%s/stacks/%s/resources/%s/signal" % (
            endpoint, self.inputs.get("deploy_stack_id"), quote(str(self.inputs.get("deploy_resource_name")), ""))
        LOG.debug("Signalling %s", url)
        _request(self.http(), "POST", url, data=fit(data).encode("ascii"),
                 headers={"X-Auth-Token": token, "Content-Type": "application/json"})


class ZaqarSignal(KeystoneSignal):
    """Post ``{"body": data, "ttl": 600}`` to the deployment's queue over Zaqar's v2 HTTP API (§7.6, §11.9)."""

    name = "ZAQAR_SIGNAL"
    service_type = "messaging"

    def send(self, data: Any) -> None:
        token, endpoint = self._token_and_endpoint()
        base = endpoint if endpoint.endswith("/v2") else endpoint + "/v2"
        url = "%s/queues/%s/messages" % (base, quote(str(self.inputs.get("deploy_queue_id")), ""))
        body = '{"messages": [{"body": %s, "ttl": %d}]}' % (fit(data), ZAQAR_TTL_S)
        LOG.debug("Signalling queue %s", self.inputs.get("deploy_queue_id"))
        _request(self.http(), "POST", url, data=body.encode("ascii"), headers={
            "X-Auth-Token": token,
            "X-Project-Id": str(self.inputs.get("deploy_project_id")),
            "Client-ID": str(uuid.uuid4()),
            "Content-Type": "application/json",
        })


def routes(inputs: Mapping[str, Any], client: Optional[HttpClient] = None) -> List[Transport]:
    """The transports the original notifier would use for these inputs (§7.1); [] means NO_SIGNAL.

    Without a client the transports can only be named, not sent.
    """
    found: List[Transport] = []
    if "deploy_signal_id" in inputs:
        found.append(UrlSignal(str(inputs["deploy_signal_id"]), str(inputs.get("deploy_signal_verb") or "POST"),
                               client))
    if "deploy_queue_id" in inputs:
        found.append(ZaqarSignal(inputs, client))
    elif "deploy_auth_url" in inputs:
        found.append(HeatSignal(inputs, client))
    return found


def route_name(inputs: Mapping[str, Any]) -> str:
    return "+".join(t.name for t in routes(inputs)) or "NO_SIGNAL"


def route_problem(inputs: Mapping[str, Any]) -> Optional[str]:
    """Why one of the routes these inputs choose can never deliver, or None when all of them may."""
    for transport in routes(inputs):
        problem = transport.problem()
        if problem:
            return problem
    return None


def _env_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(environ.get(name) or default)
    except ValueError:
        value = default
    return max(value, 0.0)


def retry_budget(environ: Mapping[str, str]) -> float:
    """Seconds one run (or one heat-config-notify) spends retrying one signal (SPEC §12.13.6)."""
    return _env_seconds(environ, RETRY_BUDGET_ENV, RETRY_BUDGET_S)


def request_timeout(environ: Mapping[str, str]) -> float:
    return _env_seconds(environ, REQUEST_TIMEOUT_ENV, REQUEST_TIMEOUT_S) or REQUEST_TIMEOUT_S


def attempt_limit(environ: Mapping[str, str]) -> float:
    """The longest one delivery attempt takes: a token request waited for to its end (it is
    committed, agent_common/backoff.py PatientTimeouts.call), then the signal request itself."""
    timeout = request_timeout(environ)
    return max(COMMITTED_WAIT_S, timeout) + timeout


def client_for(environ: Mapping[str, str]) -> HttpClient:
    """The HTTP client signals use: one attempt per call (the outbox does the retrying), with a timeout."""
    return HttpClient(timeout=request_timeout(environ))


# -- senders ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    """The outcome of one delivery attempt of one deployment's signal."""

    state: str  # SIGNAL_SENT, SIGNAL_REFUSED or SIGNAL_PENDING
    error: str = ""
    #: The endpoint's Retry-After (seconds) when it sent one.
    retry_after: Optional[float] = None


class InProcessSender:
    """Delivers with the transports above, in this process (HEAT_CONFIG_NOTIFY unset, §12.2)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self._client: Optional[HttpClient] = None

    def deliver(self, deployment_file: str, inputs: Mapping[str, Any], data: Any) -> Attempt:
        if not routes(inputs):
            return Attempt(SIGNAL_SENT)
        if self._client is None:
            self._client = client_for(self.environ)
        for transport in routes(inputs, client=self._client):
            try:
                transport.send(data)
            except SignalFailed as exc:
                return Attempt(SIGNAL_PENDING if exc.retryable else SIGNAL_REFUSED, str(exc), exc.retry_after)
        return Attempt(SIGNAL_SENT)


class ProgramSender:
    """Runs the notifier program as the original dispatcher does (§6.6 step 11, §12.2).

    Exit 0 means accepted (or refused for good, which our notifier records in the
    journal); any other exit leaves the signal pending.
    """

    def __init__(self, program: str, journal: Journal, environ: Mapping[str, str]) -> None:
        self.program = program
        self.journal = journal
        self.environ = dict(environ)

    def deliver(self, deployment_file: str, inputs: Mapping[str, Any], data: Any) -> Attempt:
        LOG.debug("Running %s %s", self.program, deployment_file)
        try:
            result = proc.run([self.program, deployment_file], env=self.environ,
                              stdin_data=json.dumps(data).encode("utf-8", "replace"),
                              timeout=retry_budget(self.environ) + attempt_limit(self.environ))
        except OSError as exc:
            return Attempt(SIGNAL_PENDING, "cannot run %s: %s" % (self.program, exc.strerror))
        out = result.stdout.decode("utf-8", "replace").strip()
        err = result.stderr.decode("utf-8", "replace").strip()
        if out:
            LOG.info("%s", out)
        if result.returncode != 0:
            LOG.error("Error running %s. [%s]\n%s", self.program, result.returncode, err)
            return Attempt(SIGNAL_PENDING, "%s exited %s" % (os.path.basename(self.program), result.returncode))
        if err:
            LOG.debug("%s", err)
        dep_id = os.path.basename(deployment_file)[: -len(".json")]
        recorded = self.journal.load(dep_id)
        if recorded is not None and recorded.signal == SIGNAL_REFUSED:
            return Attempt(SIGNAL_REFUSED, recorded.signal_error)
        return Attempt(SIGNAL_SENT)


# -- the outbox ---------------------------------------------------------------------------------
def _signals_pending(records: Iterable[JournalRecord]) -> Dict[str, JournalRecord]:
    return {r.id: r for r in records if r.signal == SIGNAL_PENDING}


class Outbox:
    """Pending signals, kept in the journal, retried with backoff and jitter until accepted or refused.

    The journal is the durable copy; the outbox keeps the pending records of this
    run in memory too, so checking for due retries between deployments costs
    nothing however many deployments the journal holds.
    """

    def __init__(self, journal: Journal, sender: Any, *, budget_s: float = RETRY_BUDGET_S,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.journal = journal
        self.sender = sender
        self.budget_s = budget_s
        self.sleep = sleep
        self.clock = clock
        self._pending: Optional[Dict[str, JournalRecord]] = None
        #: id → (monotonic deadline of this run's retries, backoff state).
        self._tries: Dict[str, "tuple[float, Backoff]"] = {}
        #: This run's delivery attempts by outcome (the metrics count them, SPEC §12.15).
        self.results: Dict[str, int] = {}

    def load(self, records: Iterable[JournalRecord]) -> None:
        """Start from these records (the caller already read the journal) instead of reading it again."""
        self._pending = _signals_pending(records)

    @property
    def pending(self) -> Dict[str, JournalRecord]:
        """id → record of every signal still to deliver (read from the journal once per run)."""
        if self._pending is None:
            self._pending = _signals_pending(self.journal.records())
        return self._pending

    def deployment_file(self, dep_id: str) -> str:
        return os.path.join(self.journal.deployed_dir, dep_id + ".json")

    def attempt(self, record: JournalRecord, inputs: Optional[Mapping[str, Any]] = None) -> JournalRecord:
        """One delivery attempt now; the outcome is recorded before returning."""
        deadline, backoff = self._tries.setdefault(
            record.id, (self.clock() + self.budget_s, Backoff(BACKOFF_INITIAL_S, BACKOFF_CAP_S)))
        outcome = self._deliver(record, inputs)
        record.attempts += 1
        record.signal = outcome.state
        record.signal_error = outcome.error
        record.log_attempt(outcome.state, outcome.error)
        self.results[outcome.state] = self.results.get(outcome.state, 0) + 1
        if outcome.state == SIGNAL_PENDING:
            delay = backoff.next_delay(outcome.retry_after)
            record.next_try_at = now() + delay
            self.pending[record.id] = record
            LOG.warning("Signal for %s not delivered (attempt %d): %s; retrying in %.1f s",
                        record.id, record.attempts, outcome.error, delay)
        else:
            self.pending.pop(record.id, None)
            record.next_try_at = None
            record.step = SIGNALLED
            if outcome.state == SIGNAL_REFUSED:
                LOG.error("Signal for %s refused for good: %s", record.id, outcome.error)
            else:
                LOG.info("Signalled %s%s", record.id,
                         "" if record.transport != "NO_SIGNAL" else " (no signal transport)")
        self.journal.save(record)
        return record

    def _deliver(self, record: JournalRecord, inputs: Optional[Mapping[str, Any]]) -> Attempt:
        """One delivery; an error of ours becomes this record's pending outcome, so one bad record can
        never stop the signals of the others (issue 12 defect 7)."""
        try:
            if inputs is None:
                inputs = input_values(load_file(self.deployment_file(record.id)))
            return self.sender.deliver(self.deployment_file(record.id), inputs, record.signal_data or {})
        except Exception as exc:
            return Attempt(SIGNAL_PENDING, "heat-config could not send it: %s: %s" % (type(exc).__name__, exc))

    def _due(self, record: JournalRecord) -> bool:
        return record.next_try_at is None or record.next_try_at <= now()

    def _in_budget(self, record: JournalRecord) -> bool:
        tries = self._tries.get(record.id)
        return tries is None or self.clock() < tries[0]

    def retry_due(self) -> None:
        """Attempt every pending signal whose backoff has passed (between deployments; never waits)."""
        for record in list(self.pending.values()):
            if self._due(record) and self._in_budget(record):
                self.attempt(record)

    def retry_all(self) -> None:
        """One attempt for every pending signal, due or not: a new run is a new chance (§12.4)."""
        for record in list(self.pending.values()):
            self.attempt(record)

    def drain(self) -> int:
        """Retry pending signals until each is delivered or spent this run's budget; returns how many remain."""
        while True:
            waiting = [r for r in self.pending.values() if self._in_budget(r)]
            if not waiting:
                return len(self.pending)
            pause = min(r.next_try_at or 0.0 for r in waiting) - now()
            deadlines = [self._tries[r.id][0] for r in waiting if r.id in self._tries]
            if deadlines:
                pause = min(pause, min(deadlines) - self.clock())
            if pause > 0:
                self.sleep(pause)
            self.retry_due()


def mark_finished(journal: Journal, record: JournalRecord, data: Dict[str, Any], inputs: Mapping[str, Any],
                  signal_via_program: bool) -> None:
    """Record the result and the signal still to send (durable: this is what a crash recovers from).

    The record stays flagged open even when there is nothing to send: the caller
    writes the notify file next, then closes the record (``Journal.close``).
    """
    record.signal_data = data
    record.transport = route_name(inputs)
    problem = route_problem(inputs)
    if problem:  # never attempted, not even through a notifier program: it could only fail, or open a file
        record.signal, record.signal_error, record.step = SIGNAL_REFUSED, problem, SIGNALLED
    elif record.transport != "NO_SIGNAL" or signal_via_program:
        record.signal = SIGNAL_PENDING  # with a notifier program the original always runs it (§7.7)
    else:
        record.signal = SIGNAL_NONE
    journal.save(record, keep_open=True)


__all__ = [
    "SIGNAL_NONE", "Attempt", "HeatSignal", "InProcessSender", "Outbox", "ProgramSender", "SignalFailed",
    "Transport", "UrlSignal", "ZaqarSignal", "fit", "mark_finished", "route_name", "routes", "serialise",
]
