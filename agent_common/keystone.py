"""Keystone v3 sessions for the heat and zaqar collectors and the HEAT/ZAQAR signals.

keystoneauth1 is imported only here and only when a caller needs Keystone.  A
``KeystoneSession`` reuses its token until it nears expiry: in memory for as long as
the process lives and, given a cache directory, on disk (0600) across restarts and
re-execs.  A token the server no longer accepts (401) is replaced once, by
keystoneauth1's own re-authentication.

On the idle path of an agent with Keystone or CFN sources: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any, Callable, Optional, Tuple, TypeVar

from agent_common.atomic import atomic_write, ensure_dir
from agent_common.backoff import PatientTimeouts
from agent_common.documents import read_text
from agent_common.http import DEFAULT_TIMEOUT, Verify, new_session
from agent_common.logs import register_secret
from agent_common.record import FrozenRecord

LOG = logging.getLogger(__name__)
T = TypeVar("T")

#: A cached token this close to expiry is not reused (seconds); keystoneauth1 renews at the same margin.
STALE_DURATION_S = 120


class Credentials(FrozenRecord):
    """Who to authenticate as; immutable, as it keys the token cache."""

    auth_url: str
    user_id: str
    password: str
    project_id: str
    region_name: Optional[str] = None
    _repr_skip = frozenset({"password"})


def normalise_auth_url(auth_url: str) -> str:
    """SPEC §2.6.1: a ``/v2.0`` URL is treated as unversioned so discovery can pick v3."""
    return auth_url.replace("/v2.0", "/")


def token_cache_path(cache_dir: str, creds: Credentials) -> str:
    """One file per (auth URL, user, project), as the original's cache key (SPEC §2.6.2)."""
    key = hashlib.sha256(
        ("%s%s%s%s" % (creds.auth_url, creds.user_id, creds.project_id, "auth_ref")).encode()
    ).hexdigest()
    return os.path.join(cache_dir, "keystone-token-%s.json" % key[:32])


class KeystoneSession:
    """A keystoneauth1 Session authenticated by user id + project id + password (SPEC §2.5.3, §7.5).

    An unversioned auth URL goes through version discovery (generic plugin); a
    ``/v3`` URL is used directly, saving one request.  ``verify`` and ``timeout``
    apply to Keystone and to every request sent through ``session``.
    """

    def __init__(
        self,
        creds: Credentials,
        *,
        verify: Verify = True,
        timeout: float = DEFAULT_TIMEOUT,
        token_cache_dir: Optional[str] = None,
        token_cache_ttl: Optional[float] = None,
    ) -> None:
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import generic, v3

        register_secret(creds.password)
        self.creds = creds
        url = normalise_auth_url(creds.auth_url)
        plugin_cls = v3.Password if url.rstrip("/").endswith("/v3") else generic.Password
        self.auth = plugin_cls(
            auth_url=url,
            user_id=creds.user_id,
            password=creds.password,
            project_id=creds.project_id,
            reauthenticate=True,
        )
        self.timeout = timeout
        #: How long the next request to each server may take: ``timeout``, or longer after a time-out.
        self.patience = PatientTimeouts()
        self.cache_path = token_cache_path(token_cache_dir, creds) if token_cache_dir else None
        #: A cached token older than this (seconds since it was saved) is not reused ([keystone] cache_ttl).
        self.cache_ttl = token_cache_ttl
        if self.cache_path:
            self._restore(self.cache_path)
        # keystoneauth1 passes its own ``verify`` with every request, overriding the requests session's.
        self.session = ks_session.Session(auth=self.auth, session=new_session(verify), verify=verify,
                                          timeout=timeout)

    def _restore(self, path: str) -> None:
        state = read_text(path)
        if not state:
            return
        if self.cache_ttl is not None and time.time() - os.path.getmtime(path) > self.cache_ttl:
            return
        try:
            self.auth.set_auth_state(state)
            ref = self.auth.auth_ref
            if ref is not None and ref.will_expire_soon(STALE_DURATION_S):
                ref = None
        except (ValueError, KeyError, TypeError, AttributeError):
            LOG.warning("Ignoring unreadable keystone token cache %s", path)
            ref = None
        if ref is not None:
            register_secret(ref.auth_token)
        else:
            self.auth.invalidate()
            self.auth.auth_ref = None

    def token(self) -> str:
        """A valid token: the cached one while it lasts, else a new one (password sent).

        Keystone issues a token its client gave up on, so a token request is waited for up to
        300 s from the first try (``committed``, PatientTimeouts.call).
        """
        def get_token(limits: Tuple[float, float]) -> Optional[str]:
            # typed float, passed on to requests as it is, which takes (connect, read)
            self.session.timeout = limits  # type: ignore[assignment]
            try:
                return self.session.get_token()
            finally:
                self.session.timeout = self.timeout

        tok = self._patient_call(self.auth.auth_url, get_token, "Keystone at ", committed=True)
        assert tok is not None, "a session with an auth plugin returns a token or raises"
        register_secret(tok)
        return tok

    def request(self, method: str, url: str, committed: bool = False, **kwargs: Any) -> Any:
        """``method url`` with the token, never raising on a status, redirects not followed.

        A request that timed out makes the next one to the same server wait longer
        (PatientTimeouts); the log line that says so names the server by host and port.
        ``committed``: the server carries the request out whether or not it is still waited
        for (PatientTimeouts.call).
        """
        return self._patient_call(url, lambda limits: self.session.request(
            url, method, timeout=limits, raise_exc=False, redirect=False, log=False, **kwargs),
            committed=committed)

    def _patient_call(self, url: str, attempt: Callable[[Tuple[float, float]], T], label: str = "",
                      committed: bool = False) -> T:
        """``attempt((connect, read))`` on the terms of PatientTimeouts for the server of ``url``."""
        from keystoneauth1 import exceptions  # every time-out, connect or read, is this one

        return self.patience.call(url, self.timeout, attempt, (exceptions.ConnectTimeout,), label, committed)

    def endpoint(self, service_type: str, region_name: Optional[str] = None) -> str:
        """The public endpoint of ``service_type`` from the catalog (SPEC §2.5.3 step 2)."""
        from keystoneauth1 import exceptions

        self.token()  # the catalog comes with the token: ask for it on token()'s terms
        try:
            url = self.session.get_endpoint(service_type=service_type, interface="public",
                                            region_name=region_name)
        except exceptions.EndpointNotFound:
            url = None
        if not url:
            where = " in region %s" % region_name if region_name else ""
            raise LookupError("no public %s endpoint%s in the keystone catalog" % (service_type, where))
        return url

    def save(self) -> None:
        """Persist the current token (if there is a cache file and the token changed) for the next process."""
        if not self.cache_path or self.auth.auth_ref is None:
            return
        state = self.auth.get_auth_state()
        if not state:
            return
        register_secret(self.auth.auth_ref.auth_token)
        ensure_dir(os.path.dirname(self.cache_path), 0o700)
        if read_text(self.cache_path) != state:
            atomic_write(self.cache_path, state, 0o600, sync=False)  # losing it only costs one re-auth
