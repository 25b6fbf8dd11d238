"""A loopback Zaqar: the v2 HTTP API and the websocket API, over one shared message store.

HTTP (``messaging`` in the catalog; also ``/v1.1`` for posting, as the original notifier does):
queue create, message post (``Client-ID`` required), list (``echo``), pop
(``DELETE .../messages?pop=N``), delete by ids, claims (create, release, delete a
claimed message with its ``claim_id``).

Websocket (``messaging-websocket``): the JSON envelope
``{"action", "headers": {"Client-ID", "X-Project-ID"}, "body"}`` answered with
``{"request": ..., "body": ..., "headers": {"status": N}}``; ``authenticate`` with
``X-Auth-Token`` must come first; ``queue_create``, ``subscription_create``,
``message_post``, ``message_list``, ``message_delete_many`` (``pop`` or
``message_ids``).  A websocket subscription (no ``subscriber`` in the body) gets
every message posted to the queue pushed as a notification, as Zaqar does: the
message JSON plus ``queue_name`` and ``Message_Type: Notification``.

Every token is checked against the loopback Keystone; the project is the token's.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from tests.servers.base import LoopbackServer, Request, Response
from tests.servers.keystone import KeystoneServer

#: Zaqar's default ``max_messages_per_claim_or_pop``.
MAX_POP = 20


@dataclass
class Message:
    id: str
    body: Any
    ttl: int
    client_id: str
    created: float = field(default_factory=time.time)
    claim_id: Optional[str] = None
    claim_expires: float = 0.0

    def expired(self, now: float) -> bool:
        return now >= self.created + self.ttl

    def claimed(self, now: float) -> bool:
        return self.claim_id is not None and now < self.claim_expires

    def as_dict(self, queue: str, now: float) -> Dict[str, Any]:
        href = "/v2/queues/%s/messages/%s" % (queue, self.id)
        if self.claimed(now):
            href += "?claim_id=%s" % self.claim_id
        return {"id": self.id, "href": href, "ttl": self.ttl, "age": int(now - self.created), "body": self.body}


@dataclass
class Posted:
    """One message as a client posted it (what ZAQAR_SIGNAL sends)."""

    queue: str
    project: str
    message: Dict[str, Any]
    headers: Dict[str, str]
    api: str


@dataclass
class _WsClient:
    conn: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    project: Optional[str] = None
    deauth: Optional[threading.Timer] = None
    subscriptions: List[str] = field(default_factory=list)

    def send(self, doc: Any) -> None:
        with self.lock:
            self.conn.send(json.dumps(doc))


def csv_param(request: Request, name: str) -> List[str]:
    """A comma-separated query parameter as Zaqar's falcon reads it: split on literal commas, then decoded.

    An encoded comma (``%2C``, what an HTTP library makes of a comma in a parameter) stays inside one value:
    Zaqar then deletes no message of ``ids=a%2Cb`` and still answers 204.
    """
    for pair in urlsplit(request.raw_path).query.split("&"):
        key, _, value = pair.partition("=")
        if unquote(key) == name:
            return [unquote(v) for v in value.split(",")]
    return []


class ZaqarServer(LoopbackServer):
    """Zaqar v2 for any project Keystone scopes a token to."""

    def __init__(self, keystone: KeystoneServer) -> None:
        super().__init__()
        self.keystone = keystone
        self.queues: Dict[Tuple[str, str], List[Message]] = {}
        self.posted: List[Posted] = []
        #: Websocket frames received, as parsed JSON (to assert the protocol a client spoke).
        self.ws_requests: List[Dict[str, Any]] = []
        #: Statuses to answer the next message posts with, consumed one per post (to test retries).
        self.post_statuses: List[int] = []
        #: Seconds to hold back the answers to the next websocket frames of each action, one per frame, once
        #: the action is done (a pop's messages are gone by then): real Zaqar's websocket server past its
        #: capacity, as at 50 agents subscribing at once (bench/FLEET.md).
        self.ws_late_replies: Dict[str, List[float]] = {}
        #: How many of the next answers to each action are lost: the connection is closed in their place, once
        #: the action is done (a delete has deleted), as a connection that breaks before the answer arrives.
        self.ws_lost_replies: Dict[str, int] = {}
        self._store = threading.RLock()
        self._ws_clients: List[_WsClient] = []
        self._ws_server: Any = None
        q = r"/v2/queues/(?P<queue>[^/]+)"
        self.add_route("PUT", q + r"/?", self._http_queue_create)
        self.add_route("POST", r"/(?P<api>v2|v1\.1)/queues/(?P<queue>[^/]+)/messages/?", self._http_post)
        self.add_route("GET", q + r"/messages/?", self._http_list)
        self.add_route("DELETE", q + r"/messages/?", self._http_delete_many)
        self.add_route("DELETE", q + r"/messages/(?P<mid>[^/]+)", self._http_delete_one)
        self.add_route("POST", q + r"/claims/?", self._http_claim)
        self.add_route("DELETE", q + r"/claims/(?P<cid>[^/]+)", self._http_release)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, port: int = 0, ssl_context: Any = None) -> "ZaqarServer":
        """HTTP (HTTPS with ``ssl_context``) on ``port``; the websocket API (wss with it) on its own ephemeral port."""
        from websockets.sync.server import serve

        super().start(port, ssl_context)
        self._ws_server = serve(self._ws_handler, "127.0.0.1", 0, compression=None, ssl=ssl_context)
        threading.Thread(target=self._ws_server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._ws_server is not None:
            self._ws_server.shutdown()
            self._ws_server = None
        super().stop()

    @property
    def ws_url(self) -> str:
        scheme = "wss" if self._scheme == "https" else "ws"
        return "%s://127.0.0.1:%d" % (scheme, self._ws_server.socket.getsockname()[1])

    def register(self, region: str = "RegionOne") -> "ZaqarServer":
        """Publish ``messaging`` and ``messaging-websocket`` in the Keystone catalog."""
        self.keystone.add_endpoint("messaging", self.url, "zaqar", region)
        self.keystone.add_endpoint("messaging-websocket", self.ws_url, "zaqar-websocket", region)
        return self

    def drop_websockets(self) -> None:
        """Close every websocket connection (the client must reconnect and subscribe again)."""
        for client in list(self._ws_clients):
            self._disconnect(client, 1001, "going away")

    def _disconnect(self, client: "_WsClient", code: int, reason: str) -> None:
        """Forget the client at once (no more notifications), then close its socket."""
        if client in self._ws_clients:
            self._ws_clients.remove(client)
        client.conn.close(code, reason)

    @property
    def ws_connections(self) -> int:
        return len(self._ws_clients)

    # -- the store -----------------------------------------------------------------------------
    def _live(self, project: str, queue: str) -> List[Message]:
        now = time.time()
        with self._store:
            msgs = self.queues.setdefault((project, queue), [])
            msgs[:] = [m for m in msgs if not m.expired(now)]
            return msgs

    def post_message(self, project: str, queue: str, body: Any, ttl: int = 3600,
                     client_id: str = "heat-engine") -> str:
        """Post as another client would (Heat posting metadata); notifies websocket subscribers."""
        return self._post(project, queue, [{"body": body, "ttl": ttl}], client_id)[0]

    def messages(self, project: str, queue: str) -> List[Message]:
        """The live messages of a queue, oldest first."""
        with self._store:
            return list(self._live(project, queue))

    def _post(self, project: str, queue: str, messages: List[Dict[str, Any]], client_id: str) -> List[str]:
        ids = []
        with self._store:
            live = self._live(project, queue)
            for doc in messages:
                msg = Message(uuid.uuid4().hex, doc.get("body"), int(doc.get("ttl", 3600)), client_id)
                live.append(msg)
                ids.append(msg.id)
        for doc in messages:
            self._notify(project, queue, doc)
        return ids

    def _pop(self, project: str, queue: str, limit: int) -> List[Dict[str, Any]]:
        now = time.time()
        with self._store:
            live = self._live(project, queue)
            taken = [m for m in live if not m.claimed(now)][:limit]
            live[:] = [m for m in live if m not in taken]
        return [m.as_dict(queue, now) for m in taken]

    def _notify(self, project: str, queue: str, doc: Dict[str, Any]) -> None:
        note = dict(doc, queue_name=queue, Message_Type="Notification")
        for client in list(self._ws_clients):
            if client.project == project and queue in client.subscriptions:
                try:
                    client.send(note)
                except Exception:  # a closed socket: the client is gone
                    pass

    # -- HTTP ----------------------------------------------------------------------------------
    def _project(self, request: Request) -> Tuple[Optional[str], Optional[Response]]:
        issued = self.keystone.token_info(request.header("X-Auth-Token"))
        if issued is None:
            return None, Response(401, {"title": "Unauthorized", "description": "Invalid token"})
        if request.path.startswith("/v2/") and not request.header("X-Project-Id"):
            return None, Response(400, {"title": "Bad request", "description": "The header X-PROJECT-ID was missing"})
        return issued.project_id, None

    def _client(self, request: Request) -> Tuple[Optional[str], Optional[str], Optional[Response]]:
        """(project, Client-ID, None), or the refusal: a bad token, or no Client-ID where Zaqar wants one."""
        project, refused = self._project(request)
        client_id = request.header("Client-ID")
        if refused is None and not client_id:
            refused = Response(400, {"title": "Bad request", "description": "The Client-ID header is required."})
        return project, client_id, refused

    def _http_queue_create(self, request: Request, match: Any) -> Response:
        project, refused = self._project(request)
        if refused:
            return refused
        with self._store:
            existed = (project, match.group("queue")) in self.queues
            self._live(project, match.group("queue"))
        return Response(204 if existed else 201, b"")

    def _http_post(self, request: Request, match: Any) -> Response:
        project, client_id, refused = self._client(request)
        if refused:
            return refused
        try:
            messages = request.json()["messages"] if match.group("api") == "v2" else request.json()
            if isinstance(messages, dict):  # v1.1 also takes {"messages": [...]}
                messages = messages["messages"]
            assert isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages)
        except (ValueError, KeyError, TypeError, AssertionError):
            return Response(400, {"title": "Bad request", "description": "Expected {\"messages\": [...]}"})
        with self._store:
            status = self.post_statuses.pop(0) if self.post_statuses else 201
        if status != 201:
            return Response(status, {"title": "simulated", "description": "simulated failure"})
        queue = match.group("queue")
        with self._store:
            for doc in messages:
                self.posted.append(Posted(queue, project, doc, dict(request.headers), match.group("api")))
        ids = self._post(project, queue, messages, client_id)
        path = "/%s/queues/%s/messages" % (match.group("api"), queue)
        return Response(201, {"resources": [path + "/" + i for i in ids]}, {"Location": path + "?ids=" + ",".join(ids)})

    def _http_list(self, request: Request, match: Any) -> Response:
        project, client_id, refused = self._client(request)
        if refused:
            return refused
        echo = (request.q("echo") or "false").lower() == "true"
        limit = int(request.q("limit") or 10)
        now = time.time()
        queue = match.group("queue")
        with self._store:
            msgs = [m for m in self._live(project, queue)
                    if (echo or m.client_id != client_id) and not m.claimed(now)][:limit]
        return Response(200, {"messages": [m.as_dict(queue, now) for m in msgs], "links": []})

    def _http_delete_many(self, request: Request, match: Any) -> Response:
        project, refused = self._project(request)
        if refused:
            return refused
        queue = match.group("queue")
        if request.q("pop"):
            limit = int(request.q("pop") or 0)
            if not 0 < limit <= MAX_POP:
                return Response(400, {"title": "Bad request", "description": "pop must be 1..%d" % MAX_POP})
            return Response(200, {"messages": self._pop(project, queue, limit)})
        ids = csv_param(request, "ids")
        with self._store:
            live = self._live(project, queue)
            live[:] = [m for m in live if m.id not in ids]
        return Response(204, b"")

    def _http_delete_one(self, request: Request, match: Any) -> Response:
        project, refused = self._project(request)
        if refused:
            return refused
        now = time.time()
        with self._store:
            live = self._live(project, match.group("queue"))
            for m in live:
                if m.id == match.group("mid"):
                    if m.claimed(now) and request.q("claim_id") != m.claim_id:
                        return Response(403, {"title": "Forbidden", "description": "The message is claimed"})
                    live.remove(m)
                    break
        return Response(204, b"")

    def _http_claim(self, request: Request, match: Any) -> Response:
        project, refused = self._project(request)
        if refused:
            return refused
        try:
            spec = request.json() if request.body else {}
            ttl, grace = int(spec.get("ttl", 300)), int(spec.get("grace", 60))
        except (ValueError, TypeError, AttributeError):
            return Response(400, {"title": "Bad request", "description": "bad claim body"})
        limit = min(int(request.q("limit") or 10), MAX_POP)
        now = time.time()
        queue = match.group("queue")
        claim_id = uuid.uuid4().hex
        with self._store:
            free = [m for m in self._live(project, queue) if not m.claimed(now)][:limit]
            for m in free:
                m.claim_id, m.claim_expires = claim_id, now + ttl
                m.ttl = max(m.ttl, int(now - m.created) + ttl + grace)
            claimed = [m.as_dict(queue, now) for m in free]
        if not claimed:
            return Response(204, b"")
        return Response(201, {"messages": claimed},
                        {"Location": "/v2/queues/%s/claims/%s" % (queue, claim_id)})

    def _http_release(self, request: Request, match: Any) -> Response:
        project, refused = self._project(request)
        if refused:
            return refused
        with self._store:
            for m in self._live(project, match.group("queue")):
                if m.claim_id == match.group("cid"):
                    m.claim_id, m.claim_expires = None, 0.0
        return Response(204, b"")

    # -- websocket -----------------------------------------------------------------------------
    def _ws_handler(self, conn: Any) -> None:
        client = _WsClient(conn)
        self._ws_clients.append(client)
        try:
            for raw in conn:
                self._ws_message(client, raw)
        except Exception:  # the peer went away mid-frame
            pass
        finally:
            if client.deauth is not None:
                client.deauth.cancel()
            if client in self._ws_clients:
                self._ws_clients.remove(client)

    def _ws_message(self, client: _WsClient, raw: Any) -> None:
        try:
            payload = json.loads(raw)
            assert isinstance(payload, dict)
        except (ValueError, AssertionError):
            client.send({"request": {}, "body": {"error": "Can't decode text (JSON) request."},
                         "headers": {"status": 400}})
            return
        self.ws_requests.append(payload)
        action = payload.get("action")
        headers = payload.get("headers") or {}
        body = payload.get("body") or {}
        request = {"action": action, "body": body, "headers": headers, "api": "v2"}

        def reply(status: int, out: Any) -> None:
            if self.ws_lost_replies.get(action):
                self.ws_lost_replies[action] -= 1
                return self._disconnect(client, 1011, "internal error")
            late = self.ws_late_replies.get(action)
            if late:
                time.sleep(late.pop(0))
            client.send({"request": request, "body": out, "headers": {"status": status}})

        if not headers.get("Client-ID") or not headers.get("X-Project-ID"):
            return reply(400, {"error": "Missing header Client-ID or X-Project-ID"})
        if action == "authenticate":
            issued = self.keystone.token_info(headers.get("X-Auth-Token"))
            if issued is None:
                return reply(401, {"error": "Authentication failed."})
            client.project = issued.project_id
            # As Zaqar does: when the token expires, the connection is closed with 4003.
            if client.deauth is not None:
                client.deauth.cancel()
            client.deauth = threading.Timer(max(issued.expires_at.timestamp() - time.time(), 0),
                                            self._disconnect, (client, 4003, "Authentication expired."))
            client.deauth.daemon = True
            client.deauth.start()
            return reply(200, {"message": "Authentified."})
        if client.project is None:
            return reply(403, {"error": "Not authentified."})
        queue = body.get("queue_name")
        if not queue:
            return reply(400, {"error": "Missing queue_name"})
        return self._ws_action(client, action, queue, body, headers, reply)

    def _ws_action(self, client: _WsClient, action: str, queue: str, body: Dict[str, Any],
                   headers: Dict[str, Any], reply: Any) -> None:
        project = client.project
        if action == "queue_create":
            with self._store:
                existed = (project, queue) in self.queues
                self._live(project, queue)
            return reply(204 if existed else 201, "Queue %s created." % queue)
        if action == "subscription_create":
            if body.get("subscriber"):
                return reply(400, {"error": "only websocket subscriptions are served here"})
            client.subscriptions.append(queue)
            return reply(201, {"subscription_id": uuid.uuid4().hex, "message": "Subscription created."})
        if action == "message_post":
            messages = body.get("messages") or []
            with self._store:
                for doc in messages:
                    self.posted.append(Posted(queue, project, doc, dict(headers), "ws"))
            return reply(201, {"message_ids": self._post(project, queue, messages, headers["Client-ID"])})
        if action == "message_list":
            now = time.time()
            msgs = [m.as_dict(queue, now) for m in self.messages(project, queue) if not m.claimed(now)]
            return reply(200, {"messages": msgs[: int(body.get("limit", 10))]})
        if action == "message_delete_many":
            if body.get("pop"):
                return reply(200, {"messages": self._pop(project, queue, int(body["pop"]))})
            ids = body.get("message_ids") or []
            with self._store:
                live = self._live(project, queue)
                live[:] = [m for m in live if m.id not in ids]
            return reply(204, {})
        return reply(400, {"error": "Unsupported action %s" % action})
