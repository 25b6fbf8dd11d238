"""Demo step: the whole pipeline on one server, set up the way Heat and boot-config set one up.

A loopback Keystone and Heat API (tests/servers/cloud.py) hold the stack and the
metadata of its server: the bundled example's script and ansible deployments
(demo/example/pipeline/), and a docker-compose one where a container engine can
start, all signalled back over HEAT_SIGNAL.  The server is a sandbox directory
laid out from elements/ as a built image is (tests/support/vm.py's VM).  Its first
boot renders /etc/os-collect-config.conf from cfn-init-data, as boot-config's
configure part does; then os-collect-config runs as its service would: it polls
Heat, runs os-refresh-config, whose 20-os-apply-config renders the deployments
file and whose 55-heat-config runs each deployment's hook and signals Heat.
``heat-config status --wait`` returns once every deployment is signalled.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from tests.support.deployments import STACK, STACK_ID, deployment, keystone_inputs
from tests.support.vm import VM
from tests.support.wait import wait_for_process

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).resolve().parent / "example" / "pipeline"
SERVER = "server1"


def say(text: str = "") -> None:
    print(text, flush=True)


def _engine() -> Optional[Any]:
    """The tests' private container engine, or None (with the reason said) where it cannot run."""
    from tests.support.docker_engine import EngineUnavailable, start_engine

    if not shutil.which("docker-compose"):
        say("    (no docker-compose here: the docker-compose deployment is left out)")
        return None
    try:
        return start_engine()
    except EngineUnavailable as exc:
        say("    (no container engine here, so no docker-compose deployment: %s)" % str(exc).splitlines()[0])
        return None


class Server(VM):
    """The sandboxed server, pointed at the demo's container engine when there is one."""

    def __init__(self, base: Path, engine: Optional[Any]) -> None:
        super().__init__(base, polling_interval=2)
        self.engine = engine

    @property
    def env(self) -> Dict[str, str]:
        env = super().env
        env["ANSIBLE_NOCOLOR"] = "1"
        if self.engine:
            env["DOCKER_HOST"] = self.engine.host
        return env


def _deployments(cloud: Any, server: Server, engine: Optional[Any]) -> List[Dict[str, Any]]:
    """The bundled example as Heat puts it in the server's metadata, each signalled over HEAT_SIGNAL."""
    shop = {"name": "shop_name", "type": "String", "value": "Demo Shop"}

    def heat_deployment(n: int, name: str, group: str, config: Any, inputs: List[Dict[str, Any]],
                        outputs: List[str] = ()) -> Dict[str, Any]:
        return deployment(n, config, group, inputs=inputs, outputs=list(outputs), name=name,
                          signal=keystone_inputs(cloud, "HEAT_SIGNAL", "deploy_%d" % n))

    deployments = [
        heat_deployment(10, "10_install_web", "script", (EXAMPLE / "10_install_web.sh").read_text(),
                        [shop, {"name": "package", "type": "String", "value": "nginx"},
                         {"name": "www_root", "type": "String", "value": str(server.root / "srv" / "www")}], ["url"]),
        heat_deployment(20, "20_motd", "ansible", (EXAMPLE / "20_motd.yml").read_text(),
                        [shop, {"name": "port", "type": "Number", "value": 8080},
                         {"name": "motd_path", "type": "String", "value": str(server.root / "etc" / "motd")}],
                        ["motd"]),
    ]
    if engine:
        compose = (EXAMPLE / "30_web.yml").read_text().replace("image: IMAGE", "image: " + engine.base_image)
        if engine.compose_network_mode:
            compose += "    network_mode: %s\n" % engine.compose_network_mode
        env_files = json.dumps([{"file_name": "web.env", "content": "SHOP=Demo Shop\n"}])
        deployments.append(heat_deployment(30, "30_web", "docker-compose", compose,
                                           [{"name": "env_files", "type": "String", "value": env_files}]))
    return deployments


def _heat_section(cloud: Any) -> Dict[str, Any]:
    """What Heat gives a POLL_SERVER_HEAT server under ``os-collect-config`` (SPEC §7.10).

    Heat lists ``ec2`` first; it is left out here, as no EC2 metadata service is on loopback.
    """
    return {"collectors": ["heat", "local"],
            "heat": {"auth_url": cloud.auth_url, "user_id": cloud.user_id, "password": cloud.password,
                     "project_id": cloud.project_id, "stack_id": "%s/%s" % (STACK, STACK_ID),
                     "resource_name": SERVER, "region_name": cloud.region}}


def _metadata_polls(cloud: Any) -> int:
    return sum(1 for r in cloud.heat.requests if r.method == "GET" and r.path.endswith("/metadata"))


def _wait_for_deployments(path: Path, server: Server, timeout: float = 60) -> Path:
    """Until os-apply-config has rendered the deployments the agent collected (the boot pass had none)."""
    def rendered() -> bool:
        try:
            return bool(json.loads(path.read_text() or "[]"))
        except (OSError, ValueError):
            return False

    wait_for_process(rendered, server.proc, timeout, "the agent to render the deployments", server.log)
    return path


def step_whole_pipeline(d: Any) -> None:
    """The whole pipeline: Heat → os-collect-config → os-refresh-config → os-apply-config and heat-config → hooks → Heat."""
    from tests.servers.cloud import start_cloud

    started = time.monotonic()
    cloud = start_cloud()
    engine = _engine()
    server = Server(d.root / SERVER, engine)
    try:
        deployments = _deployments(cloud, server, engine)
        occ = _heat_section(cloud)
        cloud.heat.set_metadata(STACK, SERVER, {"deployments": deployments, "os-collect-config": occ})
        say("A loopback Keystone and Heat (%s) hold stack %s; %s's metadata has %d deployments: %s"
            % (cloud.heat.url, STACK, SERVER, len(deployments),
               ", ".join("%s (%s)" % (x["name"], x["group"]) for x in deployments)))
        say("%s is laid out from elements/ as an image is: %s"
            % (SERVER, ", ".join(sorted(p.name for p in (server.base / "orc" / "configure.d").iterdir()))))

        rendered = server.boot(occ)
        sections = re.findall(r"^\[(\w+)\]", rendered, re.M)
        collectors = re.findall(r"^collectors = (\S+)", rendered, re.M)
        say("First boot: os-collect-config --one-time read cfn-init-data; os-apply-config rendered")
        say("    /etc/os-collect-config.conf (mode %04o): collectors %s, sections %s (credentials not shown)"
            % (server.occ_conf.stat().st_mode & 0o777, ", ".join(collectors), ", ".join(sections)))

        server.start()
        say("The agent runs: it polls Heat, sees the deployments, runs os-refresh-config; heat-config runs the hooks.")
        rendered_at = _wait_for_deployments(Path(server.env["HEAT_SHELL_CONFIG"]), server)
        say("    20-os-apply-config rendered the deployments file /var/run/heat-config/heat-config (mode %04o)"
            % (rendered_at.stat().st_mode & 0o777))
        say("heat-config status --wait (returns once every deployment is finished and signalled):")
        status = subprocess.run([str(BIN / "heat-config"), "status", "--wait", "--timeout", "120"],
                                env=server.env, capture_output=True, text=True, timeout=180)
        for line in status.stdout.splitlines():
            say("    " + line)
        say("    (exit %d: %s)" % (status.returncode, {0: "all succeeded", 1: "one failed", 2: "time-out"}.get(
            status.returncode, status.stderr.strip())))
        names = {i["value"]: x["name"] for x in deployments for i in x["inputs"] if i["name"] == "deploy_resource_name"}
        for signal in cloud.heat.signals:
            body = signal.body or {}
            outputs = {k: v for k, v in body.items() if not k.startswith("deploy_")}
            say("    Heat received the signal of %s (%s): deploy_status_code %s%s" % (
                signal.resource, names.get(signal.resource, "?"), body.get("deploy_status_code"),
                ", outputs %s" % outputs if outputs else ""))
        motd = server.root / "etc" / "motd"
        if motd.exists():
            say("    the playbook wrote /etc/motd: %s" % motd.read_text().strip())
        if engine:
            logs = engine.docker("logs", "30_web_web_1", check=False).stdout.decode().strip()
            say("    the compose service runs on the engine; its log says: %s" % (logs or "(nothing yet)"))

        polls = _metadata_polls(cloud)
        signals = len(cloud.heat.signals)
        time.sleep(4)
        say("Nothing new: the agent polled Heat %d more time(s) and signalled %d more deployment(s)."
            % (_metadata_polls(cloud) - polls, len(cloud.heat.signals) - signals))
        say("    (%.1f s from an empty server to every deployment signalled)" % (time.monotonic() - started))
    finally:
        server.stop()
        if engine:
            engine.stop()
        cloud.stop()
