"""The heat collector (SPEC §2.5): a server's resource metadata from the Heat orchestration API.

Every request has a timeout (``timeout``), TLS can be pointed at a CA bundle
(``ca-file``) or, explicitly, switched off (``insecure``), and the Keystone token
is reused until it nears expiry.  Heat sends no validators for resource metadata,
so each poll is one GET; a bare stack name is looked up once and the ``name/id``
kept under ``<cachedir>/.agent-state``.

On the idle path of an agent with Keystone or CFN sources: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

from typing import Any, List, Optional
from urllib.parse import quote, urlsplit

from agent_common.http import retry_after
from agent_common.logs import describe_error
from os_collect_config.collectors.base import Collected, Option, Unavailable
from os_collect_config.collectors.keystone_auth import CREDENTIAL_OPTIONS, REQUIRED_CREDENTIALS, KeystoneCollector
from os_collect_config.merge import explode


class HeatCollector(KeystoneCollector):
    name = "heat"
    options = CREDENTIAL_OPTIONS + (
        Option("stack-id", help="ID of the stack this deployment belongs to"),
        Option("resource-name", help="Name of resource in the stack to be polled"),
        Option("region-name", help="Region Name for extracting Heat endpoint"),
        # Ours (SPEC §5.9.11): the original had no timeout and no TLS options.
        Option("timeout", type="float", default=10.0,
               help="Seconds to wait for Keystone and Heat to connect and answer (new)."),
        Option("ca-file", help="CA bundle to verify Keystone's and Heat's TLS certificates (new; default: "
                               "the system CAs)."),
        Option("insecure", type="bool", default=False,
               help="Do not verify TLS certificates (new; not recommended)."),
    )
    tls_off_setting = "[heat] insecure = true"

    def __init__(self, conf, ctx) -> None:
        super().__init__(conf, ctx)
        self.request_timeout = float(conf.get("timeout") or 10.0)
        #: ``name/id`` once a bare stack name has been looked up (it never changes for a stack; saved too).
        self._stack_path: Optional[str] = None

    def tls_off(self) -> bool:
        return bool(self.conf.get("insecure"))

    def collect(self) -> List[Collected]:
        self.require(*REQUIRED_CREDENTIALS, "stack_id", "resource_name")
        try:
            metadata = self._fetch()
        except Unavailable:
            raise
        except Exception as exc:  # keystone, network, TLS, a body that is not what Heat sends
            raise Unavailable("heat metadata could not be fetched: %s" % describe_error(exc)) from exc
        finally:
            self.remember_token()
        return explode(metadata, self.ctx.deployment_keys, self.name)

    def _fetch(self) -> Any:
        base = self.endpoint("orchestration").rstrip("/")
        url = "%s/stacks/%s/resources/%s/metadata" % (
            base, self._stack(base), quote(self.conf["resource_name"], safe=""))
        response = self.keystone().request("GET", url)
        if response.status_code == 404 and self._stack_path is not None:
            self._stack_path = None  # a stack re-created under the same name: look it up again next poll
            if not self.ctx.print_mode:
                self.ctx.state(self.name).save("stack", None)
        if response.status_code != 200:
            raise Unavailable("GET %s returned HTTP %d" % (url, response.status_code),
                              retry_after(response.headers, response.status_code))
        body = response.json()
        if not isinstance(body, dict) or "metadata" not in body:
            raise Unavailable("GET %s: the reply has no \"metadata\" member" % url)
        return body["metadata"]

    def _stack(self, base: str) -> str:
        """``stack_id`` as ``name/id``: a bare name is resolved once through Heat's redirect (SPEC §2.5.3)."""
        stack_id = self.conf["stack_id"]
        if "/" in stack_id:
            return stack_id
        if self._stack_path is None:
            saved = self.ctx.state(self.name).load("stack")
            if isinstance(saved, dict) and saved.get("name") == stack_id and saved.get("base") == base:
                self._stack_path = saved.get("path")
        if self._stack_path is None:
            url = "%s/stacks/%s" % (base, quote(stack_id, safe=""))
            response = self.keystone().request("GET", url)
            location = response.headers.get("Location")
            if response.status_code not in (301, 302, 303, 307) or not location:
                raise Unavailable("GET %s returned HTTP %d, not the redirect to the stack"
                                  % (url, response.status_code))
            path = urlsplit(location).path
            marker = "/stacks/"
            if marker not in path:
                raise Unavailable("stack lookup redirected to an unexpected place: %s" % path)
            self._stack_path = path.split(marker, 1)[1].strip("/")
            if not self.ctx.print_mode:
                self.ctx.state(self.name).save("stack", {"name": stack_id, "base": base, "path": self._stack_path})
        return self._stack_path

