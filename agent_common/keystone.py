"""Keystone v3 sessions for the heat and zaqar collectors and the HEAT/ZAQAR signals.

keystoneauth1 is imported only here and only when a caller needs Keystone, so the
tools that never talk to Keystone start fast.  The token is cached (0600, in a
directory the caller owns) and reused until it nears expiry, instead of sending
the password on every poll as the original does (SPEC §5.9.11).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

from agent_common.atomic import atomic_write, ensure_dir, read_text
from agent_common.http import Verify, new_session
from agent_common.logs import register_secret

LOG = logging.getLogger(__name__)

#: A cached token this close to expiry is not reused (seconds).
STALE_DURATION_S = 120


@dataclass(frozen=True)
class Credentials:
    auth_url: str
    user_id: str
    password: str
    project_id: str
    region_name: Optional[str] = None


def normalise_auth_url(auth_url: str) -> str:
    """SPEC §2.6.1: a ``/v2.0`` URL is treated as unversioned so discovery can pick v3."""
    return auth_url.replace("/v2.0", "/")


def _cache_file(cache_dir: str, creds: Credentials) -> str:
    key = hashlib.sha256(
        ("%s%s%s%s" % (creds.auth_url, creds.user_id, creds.project_id, "auth_ref")).encode()
    ).hexdigest()
    return os.path.join(cache_dir, "keystone-token-%s.json" % key[:32])


def make_session(
    creds: Credentials,
    *,
    verify: Verify = True,
    timeout: float = 10.0,
    token_cache_dir: Optional[str] = None,
) -> Any:
    """A keystoneauth1 Session authenticated with a user id + project id + password (SPEC §2.5.3).

    An unversioned auth URL goes through version discovery (generic plugin); a
    ``/v3`` URL is used directly, saving one request.
    """
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import generic, v3

    register_secret(creds.password)
    url = normalise_auth_url(creds.auth_url)
    plugin_cls = v3.Password if url.rstrip("/").endswith("/v3") else generic.Password
    auth = plugin_cls(
        auth_url=url,
        user_id=creds.user_id,
        password=creds.password,
        project_id=creds.project_id,
        reauthenticate=True,
    )
    cache_path = _cache_file(token_cache_dir, creds) if token_cache_dir else None
    if cache_path:
        _restore_token(auth, cache_path)
    session = ks_session.Session(auth=auth, session=new_session(verify), timeout=timeout)
    session._oca_token_cache = cache_path  # remembered for save_token()
    return session


def _restore_token(auth: Any, cache_path: str) -> None:
    state = read_text(cache_path)
    if not state:
        return
    try:
        auth.set_auth_state(state)
    except (ValueError, KeyError, TypeError):
        LOG.warning("Ignoring unreadable keystone token cache %s", cache_path)
        return
    ref = auth.auth_ref
    if ref is None or ref.will_expire_soon(STALE_DURATION_S):
        auth.invalidate()
    else:
        register_secret(ref.auth_token)


def save_token(session: Any) -> None:
    """Persist the session's token (if it has a cache file) so the next poll reuses it."""
    path = getattr(session, "_oca_token_cache", None)
    if not path:
        return
    state = session.auth.get_auth_state()
    if not state:
        return
    if session.auth.auth_ref is not None:
        register_secret(session.auth.auth_ref.auth_token)
    ensure_dir(os.path.dirname(path), 0o700)
    previous = read_text(path)
    if previous != state:
        atomic_write(path, state, 0o600)


def endpoint(session: Any, service_type: str, region_name: Optional[str] = None) -> str:
    """The public endpoint of ``service_type`` from the catalog (SPEC §2.5.3 step 2)."""
    url = session.get_endpoint(service_type=service_type, interface="public", region_name=region_name)
    if not url:
        raise LookupError("no public %s endpoint in the keystone catalog" % service_type)
    return url


def token(session: Any) -> str:
    tok = session.get_token()
    register_secret(tok)
    return tok
