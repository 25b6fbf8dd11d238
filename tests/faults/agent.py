"""One sandboxed server running the real pipeline against loopback servers with every collector configured.

The server is tests/support/vm.py's VM (laid out from elements/ as an image is: os-refresh-config
runs 20-os-apply-config and 55-heat-config), but os-collect-config reads a config file of ours
that names every collector's loopback server (heat and zaqar through Keystone, cfn, ec2, request
through a Swift temp URL, heat_local and local from files), and polls every ``interval`` seconds.
Deployments are script deployments, signalled over CFN_SIGNAL to the loopback heat-api-cfn; each
hook appends its deployment id to ``hooks.log``, so a double run shows.

``minimal=True`` keeps of the image only what carries deployments: os-refresh-config with just
20-os-apply-config and 55-heat-config, and os-apply-config with just the deployments file's
template. The command is still the real os-refresh-config → os-apply-config → heat-config, but a
change costs about a second instead of several, which lets the soak poll thousands of times.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

from tests.os_collect_config.keystone_sources import write_config
from tests.servers.cloud import Cloud, start_cloud
from tests.servers.ec2 import Ec2Server
from tests.servers.faults import FaultInjector, KINDS
from tests.servers.swift import SwiftServer
from tests.support.deployments import STACK, STACK_ID, deployment
from tests.support.sandbox import BIN_DIR, PLANTED_SECRETS, Sandbox
from tests.support.vm import ELEMENTS, PHASES, VM

COLLECTORS = ("heat", "cfn", "ec2", "request", "zaqar", "heat_local", "local")
QUEUE = "server1-queue"
#: Collectors' and signals' request time-out; a "long" hang outlasts it, a "short" one does not.
CLIENT_TIMEOUT_S = 2.0
#: Servers whose answers are free text: there any 200 body is a valid value, so no ``garbage_body``.
TEXT_SERVERS = ("ec2",)
#: What the minimal pipeline keeps of the heat-config element: the deployments file and its two scripts.
DEPLOYMENTS_ELEMENT = ELEMENTS / "heat-config"
MINIMAL_SCRIPTS = ("20-os-apply-config", "55-heat-config")


class Servers:
    """The loopback cloud plus EC2 and Swift, each with a (disabled until started) fault injector.

    ``options`` go to every FaultInjector (hang lengths, ``weights``...)."""

    def __init__(self, seed: int, rate: float, **options: Any) -> None:
        self.cloud: Cloud = start_cloud()
        self.ec2 = Ec2Server({"local-ipv4": "10.0.0.5", "hostname": "vm1"}).start()
        self.swift = SwiftServer().start()
        self.by_name = {"keystone": self.cloud.keystone, "heat": self.cloud.heat, "cfn": self.cloud.cfn,
                        "zaqar": self.cloud.zaqar, "ec2": self.ec2, "swift": self.swift}
        options = dict({"hang_short_s": CLIENT_TIMEOUT_S / 4, "hang_long_s": CLIENT_TIMEOUT_S + 1.5}, **options)
        text_kinds = tuple(k for k in KINDS if k != "garbage_body")
        self.injectors = {name: FaultInjector(seed + n, rate, text_kinds if name in TEXT_SERVERS else KINDS,
                                              **options).attach(server)
                          for n, (name, server) in enumerate(sorted(self.by_name.items()))}
        self.faults(False)
        self.cloud.heat.add_stack(STACK, STACK_ID)
        self.cloud.heat.set_metadata(STACK, "server1", {"deployments": []})
        self.cloud.cfn.set_metadata("mystack", "server1", {"cfn-key": "cfn-value"})
        self.cloud.zaqar.post_message(self.cloud.project_id, QUEUE, {"zaqar-key": "zaqar-value"})
        self.swift.put_object("heat", "server1", {"request-key": "request-value"})

    def faults(self, on: bool) -> None:
        for injector in self.injectors.values():
            injector.enabled = on

    def fault_counts(self) -> Dict[str, int]:
        total: Dict[str, int] = {}
        for injector in self.injectors.values():
            for kind, n in injector.counts.items():
                total[kind] = total.get(kind, 0) + n
        return total

    def request_counts(self) -> Dict[str, int]:
        return {name: len(server.requests) for name, server in self.by_name.items()}

    def stop(self) -> None:
        self.faults(False)
        self.cloud.stop()
        self.ec2.stop()
        self.swift.stop()


class Agent(VM):
    """The VM with os-collect-config configured for every collector of ``servers``."""

    def __init__(self, base: Path, servers: Servers, interval: float = 0.2, first_n: int = 0,
                 minimal: bool = False, signal_retry_s: float = 3.0) -> None:
        super().__init__(base, polling_interval=interval)
        if minimal:
            self._keep_only_deployments()
        self.servers = servers
        #: How long one dispatcher run retries a signal (HEAT_CONFIG_SIGNAL_RETRY_S).
        self.signal_retry_s = signal_retry_s
        #: Deployment numbers start here: agents sharing one set of servers keep their signals apart.
        self.first_n = first_n
        self.hooks_log = base / "hooks.log"
        self.deployments: List[Dict[str, Any]] = []
        c = servers.cloud
        self.request_url = servers.swift.temp_url("heat", "server1")
        keystone = {"auth_url": c.auth_url, "user_id": c.user_id, "password": c.password,
                    "project_id": c.project_id}
        self.config = write_config(Sandbox(base), {
            "heat": dict(keystone, stack_id=STACK, resource_name="server1", timeout=CLIENT_TIMEOUT_S),
            "zaqar": dict(keystone, queue_id=QUEUE),
            "cfn": {"metadata_url": c.cfn.metadata_url, "access_key_id": c.access_key,
                    "secret_access_key": c.secret_key, "stack_name": "mystack", "path": "server1.Metadata",
                    "timeout": CLIENT_TIMEOUT_S},
            "ec2": {"metadata_url": servers.ec2.metadata_url, "timeout": CLIENT_TIMEOUT_S},
            "request": {"metadata_url": self.request_url, "timeout": CLIENT_TIMEOUT_S},
        })
        (base / "cfn-init-data").write_text(json.dumps({"heat-local-key": "heat-local-value"}))
        (base / "local-data" / "local.json").write_text(json.dumps({"local-key": "local-value"}))

    def _keep_only_deployments(self) -> None:
        """The minimal pipeline (module docstring): the image's other scripts and templates go."""
        for rel in ("orc", "templates"):
            shutil.rmtree(self.base / rel)
        for phase in PHASES:
            (self.base / "orc" / phase).mkdir(parents=True)
        for script in MINIMAL_SCRIPTS:
            shutil.copy2(DEPLOYMENTS_ELEMENT / "os-refresh-config" / "configure.d" / script,
                         self.base / "orc" / "configure.d" / script)
        shutil.copytree(DEPLOYMENTS_ELEMENT / "os-apply-config", self.base / "templates")

    @property
    def env(self) -> Dict[str, str]:
        env = super().env
        env.update(HEAT_CONFIG_SIGNAL_TIMEOUT_S=str(CLIENT_TIMEOUT_S),
                   HEAT_CONFIG_SIGNAL_RETRY_S="%g" % self.signal_retry_s)
        return env

    def argv(self, *extra: str) -> List[str]:
        return [str(BIN_DIR / "os-collect-config"), "--config-file", str(self.config), "--command",
                "os-refresh-config", "--cachedir", str(self.base / "cache"),
                "--backup-cachedir", str(self.base / "backup"), "--heat_local-path", str(self.base / "cfn-init-data"),
                "--local-path", str(self.base / "local-data"), "--polling-interval", str(self.polling_interval),
                "--min-polling-interval", str(self.polling_interval), "--debug", *extra, *COLLECTORS]

    def start(self) -> None:
        log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.argv(), env=self.env, cwd=str(self.base), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    # -- deployments ---------------------------------------------------------------------------------
    def add_deployment(self, hook_body: str = "") -> Dict[str, Any]:
        """A new script deployment in Heat's metadata, signalled over CFN_SIGNAL; it logs its run."""
        n = self.first_n + len(self.deployments)
        cfn = self.servers.cloud.cfn
        url = cfn.signed_signal_url(self.servers.cloud.access_key, STACK, STACK_ID, self.next_resource)
        signal = [{"name": "deploy_signal_transport", "type": "String", "value": "CFN_SIGNAL"},
                  {"name": "deploy_signal_id", "type": "String", "value": url},
                  {"name": "deploy_signal_verb", "type": "String", "value": "POST"}]
        dep = deployment(n, config="#!/bin/sh\necho %s >> %s\n%s" % ("deploy_%d" % n, self.hooks_log, hook_body),
                         signal=signal, inputs=[{"name": "deploy_password", "type": "String",
                                                 "value": PLANTED_SECRETS[0]}])
        self.deployments.append(dep)
        self.servers.cloud.heat.set_metadata(STACK, "server1", {"deployments": list(self.deployments)})
        return dep

    def signal_secrets(self) -> List[str]:
        """The signed URLs' signatures: query strings of signed URLs are secrets too (SPEC §12.10)."""
        found = [parse_qs(urlsplit(self.request_url).query)["temp_url_sig"][0]]
        for dep in self.deployments:
            url = [i["value"] for i in dep["inputs"] if i["name"] == "deploy_signal_id"][0]
            found.append(parse_qs(urlsplit(url).query)["Signature"][0])
        return found

    def hook_runs(self) -> List[str]:
        return self.hooks_log.read_text().split() if self.hooks_log.exists() else []

    def resources(self) -> List[str]:
        return ["deploy_%d" % (self.first_n + n) for n in range(len(self.deployments))]

    def signals_by_resource(self) -> Dict[str, int]:
        """Signals heat-api-cfn accepted for this agent's deployments, by resource."""
        mine = set(self.resources())
        counts: Dict[str, int] = {}
        for sig in self.servers.cloud.cfn.signals:
            resource = sig.arn.rsplit("/", 1)[-1]
            if resource in mine:
                counts[resource] = counts.get(resource, 0) + 1
        return counts

    @property
    def next_resource(self) -> str:
        """The resource the next add_deployment() signals."""
        return "deploy_%d" % (self.first_n + len(self.deployments))

    def log_count(self, regex: str) -> int:
        """Lines of the agent's log matching ``regex``."""
        return len(re.findall(regex, self.log(), re.MULTILINE))

    def polls(self) -> int:
        """The agent's polls (each asks every collector that is not backing off): one "Sleeping" line each."""
        return self.log_count(r"Sleeping [0-9.]+ seconds")

    def private_paths(self):
        """Where secrets may rest (0600/0700): os-collect-config's cache and config, the dispatcher's state
        and deployments file."""
        roots = [self.base / "cache", self.base / "backup", self.base / "lib" / "deployed"]
        files = [self.config, self.root / "var/run/heat-config/heat-config"]
        return lambda path: path in files or any(r in path.parents for r in roots)


def proc_figures(pid: int) -> Optional[Dict[str, int]]:
    """Open file descriptors and resident memory (KiB) of ``pid``, or None when it is gone."""
    try:
        fds = len(os.listdir("/proc/%d/fd" % pid))
        status = Path("/proc/%d/status" % pid).read_text()
    except OSError:
        return None
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    return {"fds": fds, "rss_kib": rss}
