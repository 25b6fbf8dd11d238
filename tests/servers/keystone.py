"""A loopback Keystone v3: version discovery, password auth scoped to a project, token validation.

It issues real-looking tokens with an expiry and a catalog whose endpoints point
at the other loopback servers (heat, heat-api-cfn, zaqar, swift), so the agents'
keystoneauth1 code runs unchanged.  It counts password authentications so a test
can assert that a token is reused, and ``token_ttl`` makes short-lived tokens for
re-authentication tests.  The other servers call ``token_info()`` to check the
``X-Auth-Token`` they receive.
"""
from __future__ import annotations

import datetime
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from tests.servers.base import LoopbackServer, Request, Response

DEFAULT_REGION = "RegionOne"


def _iso(ts: datetime.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _unauthorized(message: str = "The request you have made requires authentication.") -> Response:
    return Response(
        401,
        {"error": {"code": 401, "message": message, "title": "Unauthorized"}},
        {"WWW-Authenticate": 'Keystone uri="http://127.0.0.1"'},
    )


@dataclass
class Endpoint:
    service_type: str
    name: str
    url: str
    region: str = DEFAULT_REGION
    interface: str = "public"


@dataclass
class IssuedToken:
    value: str
    user_id: str
    project_id: str
    expires_at: datetime.datetime
    body: Dict[str, Any]

    @property
    def expired(self) -> bool:
        return _now() >= self.expires_at


class KeystoneServer(LoopbackServer):
    """Keystone v3 identity API on 127.0.0.1.

    ``users`` maps user id → password; every user may scope to every project in ``projects``.
    """

    def __init__(self, users: Optional[Dict[str, str]] = None, projects: Optional[List[str]] = None,
                 token_ttl: float = 3600.0) -> None:
        super().__init__()
        self.users: Dict[str, str] = dict(users or {})
        self.projects: List[str] = list(projects or [])
        #: Lifetime of the next tokens issued, in seconds.
        self.token_ttl = token_ttl
        self.endpoints: List[Endpoint] = []
        self.tokens: Dict[str, IssuedToken] = {}
        #: Successful password authentications (POST /v3/auth/tokens answered 201).
        self.auth_count = 0
        #: Refused authentications (wrong password, unknown user or project).
        self.auth_failures = 0
        self._counter_lock = threading.Lock()
        self.add_route("GET", r"/?", self._versions)
        self.add_route("GET", r"/v3/?", self._version)
        self.add_route("POST", r"/v3/auth/tokens/?", self._issue)
        self.add_route("GET", r"/v3/auth/tokens/?", self._validate)
        self.add_route("HEAD", r"/v3/auth/tokens/?", self._validate)

    # -- configuration ------------------------------------------------------------------------
    def add_user(self, user_id: str, password: str) -> None:
        self.users[user_id] = password

    def add_project(self, project_id: str) -> None:
        if project_id not in self.projects:
            self.projects.append(project_id)

    def add_endpoint(self, service_type: str, url: str, name: Optional[str] = None,
                     region: str = DEFAULT_REGION, interface: str = "public") -> None:
        """Publish ``url`` in the catalog of every token issued from now on."""
        self.endpoints.append(Endpoint(service_type, name or service_type, url, region, interface))

    def replace_endpoint(self, service_type: str, url: str, name: Optional[str] = None,
                         region: str = DEFAULT_REGION) -> None:
        """Publish ``url`` as the only ``service_type`` endpoint (to move a service, e.g. behind TLS)."""
        self.endpoints = [e for e in self.endpoints if e.service_type != service_type]
        self.add_endpoint(service_type, url, name, region)

    @property
    def v3_url(self) -> str:
        return self.url + "/v3"

    # -- used by the other loopback servers ----------------------------------------------------
    def token_info(self, token: Optional[str]) -> Optional[IssuedToken]:
        """The issued token if ``token`` is one of ours and still valid, else None."""
        if not token:
            return None
        issued = self.tokens.get(token)
        if issued is None or issued.expired:
            return None
        return issued

    def check(self, request: Request, project_id: Optional[str] = None) -> Optional[Response]:
        """None when the request carries a valid token (for ``project_id`` if given), else the 401 to return."""
        issued = self.token_info(request.header("X-Auth-Token"))
        if issued is None:
            return _unauthorized()
        if project_id is not None and issued.project_id != project_id:
            return Response(403, {"error": {"code": 403, "message": "wrong project", "title": "Forbidden"}})
        return None

    def expire_all_tokens(self) -> None:
        """Make every issued token invalid now (as a Keystone restart with new fernet keys would)."""
        self.tokens.clear()

    # -- handlers ------------------------------------------------------------------------------
    def _version_doc(self) -> Dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": self.url + "/v3/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }

    def _versions(self, request: Request, match: Any) -> Response:
        return Response(300, {"versions": {"values": [self._version_doc()]}})

    def _version(self, request: Request, match: Any) -> Response:
        return Response(200, {"version": self._version_doc()})

    def _catalog(self) -> List[Dict[str, Any]]:
        services: Dict[str, Dict[str, Any]] = {}
        for ep in self.endpoints:
            svc = services.setdefault(ep.service_type, {
                "id": uuid.uuid4().hex, "type": ep.service_type, "name": ep.name, "endpoints": [],
            })
            svc["endpoints"].append({
                "id": uuid.uuid4().hex, "interface": ep.interface, "region": ep.region,
                "region_id": ep.region, "url": ep.url,
            })
        return list(services.values())

    def _issue(self, request: Request, match: Any) -> Response:
        try:
            auth = request.json()["auth"]
            methods = auth["identity"]["methods"]
            user = auth["identity"]["password"]["user"]
            user_id, password = user["id"], user["password"]
            project_id = auth["scope"]["project"]["id"]
        except (ValueError, KeyError, TypeError):
            return Response(400, {"error": {"code": 400, "message": "Expecting password auth by user id, "
                                            "scoped to a project id", "title": "Bad Request"}})
        if methods != ["password"] or self.users.get(user_id) != password or project_id not in self.projects:
            with self._counter_lock:
                self.auth_failures += 1
            return _unauthorized()
        issued_at = _now()
        expires = issued_at + datetime.timedelta(seconds=self.token_ttl)
        value = "tok-" + uuid.uuid4().hex
        body = {
            "token": {
                "methods": ["password"],
                "user": {"id": user_id, "name": user_id, "domain": {"id": "default", "name": "Default"},
                         "password_expires_at": None},
                "project": {"id": project_id, "name": project_id, "domain": {"id": "default", "name": "Default"}},
                "roles": [{"id": "r1", "name": "member"}],
                "issued_at": _iso(issued_at),
                "expires_at": _iso(expires),
                "audit_ids": [uuid.uuid4().hex[:22]],
                "catalog": self._catalog(),
                "is_domain": False,
            }
        }
        with self._counter_lock:
            self.auth_count += 1
            self.tokens[value] = IssuedToken(value, user_id, project_id, expires, body)
        return Response(201, body, {"X-Subject-Token": value})

    def _validate(self, request: Request, match: Any) -> Response:
        if self.token_info(request.header("X-Auth-Token")) is None:
            return _unauthorized()
        subject = self.token_info(request.header("X-Subject-Token"))
        if subject is None:
            return Response(404, {"error": {"code": 404, "message": "Could not find token", "title": "Not Found"}})
        return Response(200, subject.body, {"X-Subject-Token": subject.value})
