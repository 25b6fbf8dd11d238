"""The zaqar collector (SPEC §2.10): metadata Heat posts as messages on a Zaqar queue.

Heat posts the server's whole metadata as a new message on every change, so the
newest message is the current metadata.  The collector keeps that body as its
value until a newer message arrives: in memory, and under ``<cachedir>/.agent-state``
(0600) across restarts.

In HTTP mode a message is *claimed*, its body saved, and only then deleted, and
every poll returns the saved body, so a poll after a failed command still sees the
change.  In websocket mode a background thread keeps one authenticated, subscribed
connection, stores each notification and wakes the agent's loop at once; on
(re)connecting it reads everything queued, batch by batch, saving each batch's newest
body before deleting that batch, so an older body never comes back over the newest
and an answer lost on the way (the client gave up waiting) loses no message.  TLS is
verified unless ``ssl_certificate_validation = false`` is given.  Print mode consumes
nothing: claims are released, the websocket lists without deleting.

On the idle path of an agent with Keystone or CFN sources: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, quote, urlsplit

from agent_common.backoff import Backoff, PatientTimeouts
from agent_common.http import retry_after
from agent_common.logs import describe_error
from os_collect_config.collectors.base import Collected, Option, Unavailable
from os_collect_config.collectors.keystone_auth import CREDENTIAL_OPTIONS, REQUIRED_CREDENTIALS, KeystoneCollector
from os_collect_config.merge import explode

LOG = logging.getLogger(__name__)

#: Zaqar's default ``max_messages_per_claim_or_pop``.
BATCH = 20
#: Batches read on (re)connecting: Heat's messages live an hour, far fewer than this are ever queued.
MAX_BATCHES = 50
#: A claim only has to outlive saving the body and one DELETE.
CLAIM = {"ttl": 60, "grace": 60}
#: As the original asks; the connection is renewed before the subscription lapses.
SUBSCRIPTION_TTL_S = 10000
#: How often the websocket thread looks up from ``recv`` to see whether it should stop.
RECV_TICK_S = 1.0


def newest(messages: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The most recently posted message (smallest age; the later one of equals, Zaqar lists oldest first)."""
    best = messages[0]
    for msg in messages[1:]:
        if msg.get("age", 0) <= best.get("age", 0):
            best = msg
    return best


def claim_id_of(location: Optional[str], messages: List[Dict[str, Any]]) -> str:
    """The claim's id: the last segment of the claim's ``Location``, else the ``claim_id`` in a message href."""
    if location and "/claims/" in location:
        return location.rstrip("/").rsplit("/", 1)[-1]
    for msg in messages:
        found = parse_qs(urlsplit(msg.get("href", "")).query).get("claim_id")
        if found:
            return found[0]
    raise Unavailable("the claim reply names no claim id")


class ZaqarCollector(KeystoneCollector):
    name = "zaqar"
    options = CREDENTIAL_OPTIONS + (
        Option("queue-id", help="ID of the queue to be checked"),
        Option("use-websockets", type="bool", default=False,
               help="Use the websocket transport to connect to Zaqar."),
        Option("region-name", help="Region Name for extracting Zaqar endpoint"),
        Option("ssl-certificate-validation", type="bool", default=None,
               help="Verify Zaqar's TLS certificate. Verified unless set to false explicitly "
                    "(the original did not verify by default)."),
        Option("ca-file", help="CA Cert file for connect to Zaqar (default: the system CAs)"),
    )
    tls_off_setting = "[zaqar] ssl_certificate_validation = false"

    def __init__(self, conf, ctx) -> None:
        super().__init__(conf, ctx)
        self.client_id = str(uuid.uuid4())
        self._lock = threading.Lock()
        self._latest: Optional[Dict[str, Any]] = None
        self._listener: Optional["_WebsocketListener"] = None
        self._said_empty = False

    # -- settings ------------------------------------------------------------------------------
    def tls_off(self) -> bool:
        """Only an explicit ``false`` turns verification off; unset means verify (see the module docstring)."""
        return self.conf.get("ssl_certificate_validation") is False

    def collect(self) -> List[Collected]:
        self.require(*REQUIRED_CREDENTIALS, "queue_id")
        if self.conf.get("use_websockets"):
            self._poll_websocket()
        else:
            self._poll_http()
        body = self._latest_body()
        if body is None:
            # An idle queue is not an outage: no warning every poll, no backoff delaying the first message.
            if not self._said_empty:
                LOG.info("No metadata message has arrived on zaqar queue %s yet.", self.conf["queue_id"])
                self._said_empty = True
            return []
        return explode(body["body"], self.ctx.deployment_keys, self.name)

    # -- the latest body -----------------------------------------------------------------------
    def _latest_body(self) -> Optional[Dict[str, Any]]:
        with self._lock:
            if self._latest is None:
                stored = self.ctx.state(self.name).load("latest")
                if isinstance(stored, dict) and "body" in stored and stored.get("queue") == self.conf["queue_id"]:
                    self._latest = stored
            return self._latest

    def deliver(self, body: Any, wake: bool = False) -> None:
        """Keep ``body`` as the current metadata (saved before the message may be deleted).

        ``wake`` (from the websocket thread, between polls) makes the loop poll now when the body changed.
        """
        record = {"queue": self.conf["queue_id"], "body": body, "received": time.time()}
        with self._lock:
            changed = self._latest is None or self._latest.get("body") != body
            self._latest = record
            if not self.ctx.print_mode:
                self.ctx.state(self.name).save("latest", record)
        if wake and changed:
            self.ctx.wake(self.name)

    # -- HTTP mode -----------------------------------------------------------------------------
    def _poll_http(self) -> None:
        try:
            self._drain_queue()
        except Unavailable:
            raise
        except Exception as exc:
            raise Unavailable("zaqar queue %s: %s" % (self.conf["queue_id"], describe_error(exc))) from exc
        finally:
            self.remember_token()

    def _drain_queue(self) -> None:
        """Claim what is queued, keep the newest body, then delete (or in print mode release) the claim."""
        base = "%s/v2/queues/%s" % (self.endpoint("messaging").rstrip("/"), quote(self.conf["queue_id"], safe=""))
        keystone = self.keystone()
        headers = {"Client-ID": self.client_id, "X-Project-Id": self.conf["project_id"]}
        for _ in range(10):  # at most 200 messages per poll; the rest wait for the next one
            # A claim given up on still hides its messages for CLAIM's ttl: wait for the answer (committed).
            resp = keystone.request("POST", base + "/claims?limit=%d" % BATCH, committed=True, json=CLAIM,
                                    headers=headers)
            if resp.status_code == 204:
                return
            if resp.status_code != 201:
                raise Unavailable("claiming messages on queue %s returned HTTP %d"
                                  % (self.conf["queue_id"], resp.status_code),
                                  retry_after(resp.headers, resp.status_code))
            messages = resp.json().get("messages") or []
            if not messages:
                return
            self.deliver(newest(messages)["body"])
            claim_id = claim_id_of(resp.headers.get("Location"), messages)
            if self.ctx.print_mode:
                keystone.request("DELETE", base + "/claims/" + quote(claim_id, safe=""), headers=headers)
                return
            # Literal commas: Zaqar splits ``ids`` before decoding it, so the %2C that ``params=`` would
            # make of them is one unknown id, and Zaqar answers 204 having deleted nothing.
            ids = ",".join(quote(m["id"], safe="") for m in messages)
            done = keystone.request("DELETE", "%s/messages?ids=%s&claim_ids=%s" % (
                base, ids, quote(claim_id, safe="")), headers=headers)
            if done.status_code not in (200, 204):
                LOG.warning("Deleting %d claimed message(s) from queue %s returned HTTP %d; they will be "
                            "read again when the claim expires", len(messages), self.conf["queue_id"],
                            done.status_code)
                return
            if len(messages) < BATCH:
                return

    # -- websocket mode ------------------------------------------------------------------------
    def _poll_websocket(self) -> None:
        if self._listener is None:
            self._listener = _WebsocketListener(self)
            self._listener.start()
            # Wait for the first connection attempt (bounded), so --one-time and --print see queued messages.
            self._listener.first_attempt.wait(self.request_timeout + 5)
        if self._latest_body() is None and self._listener.error:
            raise Unavailable("zaqar websocket: %s" % self._listener.error)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


class _ServerClosed(Exception):
    """The server ended an established connection."""


class _WebsocketListener(threading.Thread):
    """One persistent, subscribed websocket connection; reconnects with backoff; never blocks the poll."""

    def __init__(self, collector: ZaqarCollector) -> None:
        super().__init__(name="zaqar-websocket", daemon=True)
        self.collector = collector
        self.first_attempt = threading.Event()
        self.error: Optional[str] = None
        self._stop_event = threading.Event()
        self._ws: Any = None
        self._backoff = Backoff(initial=1.0, cap=60.0)
        #: A body read from the queue was saved, and the loop not yet woken for it (_take_queued).
        self._read_unannounced = False
        #: Zaqar's websocket server validates one token at a time: a subscription waits for it (committed).
        self._patience = PatientTimeouts()

    def stop(self) -> None:
        self._stop_event.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:  # already closed by the peer
                pass
        self.join(timeout=RECV_TICK_S + 2)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._session()
            except _ServerClosed:
                # Routine: Zaqar closes the socket when the token expires (4003) or on restart.
                LOG.info("Zaqar closed the websocket for queue %s; reconnecting.", self.collector.conf["queue_id"])
            except Exception as exc:
                if self._stop_event.is_set():
                    return
                self.error = describe_error(exc)
                LOG.warning("Zaqar websocket for queue %s: %s", self.collector.conf["queue_id"], self.error)
            finally:
                self._close()
                self.first_attempt.set()
            self._stop_event.wait(self._backoff.next_delay())

    def _close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # already closed
                pass

    def _sslopt(self) -> Dict[str, Any]:
        verify = self.collector.verify()
        if verify is False:
            return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
        if isinstance(verify, str):
            return {"ca_certs": verify}
        return {}

    def _request(self, action: str, body: Dict[str, Any], extra: Optional[Dict[str, str]] = None) -> Any:
        headers = {"Client-ID": self.collector.client_id, "X-Project-ID": self.collector.conf["project_id"]}
        headers.update(extra or {})
        self._ws.send(json.dumps({"action": action, "headers": headers, "body": body}))
        while True:  # notifications may arrive before the answer
            doc = json.loads(self._ws.recv())
            if isinstance(doc, dict) and "request" in doc and "headers" in doc:
                status = int(doc["headers"].get("status", 500))
                if status >= 400:
                    raise RuntimeError("%s returned status %d" % (action, status))
                return doc.get("body")
            self._notification(doc)

    def _notification(self, doc: Any) -> None:
        if isinstance(doc, dict) and "body" in doc:
            LOG.debug("Zaqar websocket notification received")
            self.collector.deliver(doc["body"], wake=True)

    def _session(self) -> None:
        import websocket

        collector = self.collector
        keystone = collector.keystone()
        token = keystone.token()
        url = collector.endpoint("messaging-websocket")
        collector.remember_token()
        queue = collector.conf["queue_id"]
        self._patience.call(url, collector.request_timeout, lambda limits: self._subscribe(
            url, token, limits), (websocket.WebSocketTimeoutException, socket.timeout), "Zaqar's websocket at ",
            committed=True)
        LOG.info("Subscribed to zaqar queue %s over the websocket %s", queue, url)
        self.error = None
        self._backoff.reset()
        self.first_attempt.set()
        self._listen(time.monotonic() + SUBSCRIPTION_TTL_S - 600)

    def _subscribe(self, url: str, token: str, limits: Tuple[float, float]) -> None:
        """Connect, authenticate and subscribe; deliver what was queued since the last connection.

        ``limits``: the waits for the connection (with its opening handshake) and for each
        answer.  Zaqar validates each authentication to the end, one connection at a time,
        whether or not its client still waits, so the answers get the committed wait
        (PatientTimeouts.call); a handshake given up on costs it next to nothing.
        """
        import websocket

        queue = self.collector.conf["queue_id"]
        connect, answer = limits
        self._ws = websocket.create_connection(url, timeout=connect, sslopt=self._sslopt())
        self._ws.settimeout(answer)
        self._request("authenticate", {}, {"X-Auth-Token": token})
        self._request("queue_create", {"queue_name": queue})
        self._request("subscription_create", {"queue_name": queue, "ttl": SUBSCRIPTION_TTL_S})
        self._take_queued(queue)

    def _take_queued(self, queue: str) -> None:
        """Deliver everything queued, batch by batch (print mode: one batch, nothing deleted).

        Zaqar's notifier leaves notified messages on the queue, so after a reconnect it holds all that
        was posted since the last read, oldest first; one batch alone would put an old body back.  Each
        batch is listed, its newest body saved, and only then deleted by id: a pop deletes before it
        answers, and 50 agents subscribing at once made Zaqar answer pops after their clients had given
        up, so those servers' metadata was gone (bench/FLEET.md).

        The loop is woken once the queue is read to its end (woken between batches it would run an
        older body first), by the next session when this one breaks after saving a body: that
        session may find the queue empty, the delete having been done, its answer lost."""
        collector = self.collector
        for _ in range(1 if collector.ctx.print_mode else MAX_BATCHES):
            found = self._request("message_list", {"queue_name": queue, "limit": BATCH})
            batch = (found or {}).get("messages") or []
            if not batch:
                break
            collector.deliver(newest(batch)["body"])
            self._read_unannounced = True
            if not collector.ctx.print_mode:
                self._request("message_delete_many", {"queue_name": queue,
                                                      "message_ids": [msg["id"] for msg in batch]})
            if len(batch) < BATCH:
                break
        if self._read_unannounced:
            self._read_unannounced = False
            collector.ctx.wake(collector.name)

    def _listen(self, renew_at: float) -> None:
        import websocket

        self._ws.settimeout(RECV_TICK_S)
        while not self._stop_event.is_set() and time.monotonic() < renew_at:
            try:
                frame = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except websocket.WebSocketConnectionClosedException:
                raise _ServerClosed() from None
            if not frame:
                raise _ServerClosed()
            self._notification(json.loads(frame))
