"""What the heat and zaqar collectors share: Keystone credentials, one session per process, the token cache.

Both authenticate with the user id, password and project id Heat writes into their
section.  The session lives as long as the collector, so its token is reused poll
after poll; it is also saved under ``<cachedir>/.agent-state``, or ``[keystone]
cache_dir`` when set, so a restarted or re-executed agent, or a ``--one-time`` run,
reuses it too, for at most ``[keystone] cache_ttl`` seconds.  Print mode reads that
cache but never writes it.

On the idle path of an agent with Keystone or CFN sources: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import logging
from typing import Optional

from agent_common.http import Verify
from agent_common.keystone import Credentials, KeystoneSession
from os_collect_config.collectors.base import Collector, Option

LOG = logging.getLogger(__name__)

#: The credential options both collectors declare first, spelled as the original.
CREDENTIAL_OPTIONS = (
    Option("user-id", help="User ID for API authentication"),
    Option("password", secret=True, help="Password for API authentication"),
    Option("project-id", help="ID of project for API authentication"),
    Option("auth-url", type="url", help="URL for API authentication"),
)
#: The settings without which the collector is "not configured", in the original's order.
REQUIRED_CREDENTIALS = ("auth_url", "password", "project_id", "user_id")


class KeystoneCollector(Collector):
    """Base of the collectors that reach their service through the Keystone catalog."""

    #: Seconds each request (Keystone's included) may take.
    request_timeout: float = 10.0

    def __init__(self, conf, ctx) -> None:
        super().__init__(conf, ctx)
        self._keystone: Optional[KeystoneSession] = None
        self._warned_insecure = False

    #: The setting that turned verification off, for the warning.
    tls_off_setting = ""

    def tls_off(self) -> bool:
        """True when the user switched TLS verification off explicitly."""
        raise NotImplementedError

    def verify(self) -> Verify:
        """TLS verification for Keystone and the service: False, the ``ca_file`` bundle, or the system CAs."""
        if self.tls_off():
            if not self._warned_insecure:
                LOG.warning("TLS certificates of Keystone and %s are not verified (%s)",
                            self.name, self.tls_off_setting)
                self._warned_insecure = True
            return False
        return self.conf.get("ca_file") or True

    def keystone(self) -> KeystoneSession:
        if self._keystone is None:
            creds = Credentials(self.conf["auth_url"], self.conf["user_id"], self.conf["password"],
                                self.conf["project_id"], self.conf.get("region_name") or None)
            keystone_conf = self.ctx.groups.get("keystone", {})
            cache_dir = keystone_conf.get("cache_dir") or self.ctx.state(self.name).directory
            ttl = keystone_conf.get("cache_ttl")
            self._keystone = KeystoneSession(creds, verify=self.verify(), timeout=self.request_timeout,
                                             token_cache_dir=cache_dir,
                                             token_cache_ttl=float(ttl) if ttl is not None else None)
        return self._keystone

    def endpoint(self, service_type: str) -> str:
        return self.keystone().endpoint(service_type, self.conf.get("region_name") or None)

    def remember_token(self) -> None:
        """Save the token for the next process (never in print mode, which writes nothing)."""
        if self._keystone is not None and not self.ctx.print_mode:
            self._keystone.save()
