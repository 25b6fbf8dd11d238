"""Demo step: software deployments through the ansible and docker-compose hooks, signalled to Heat.

The real os-refresh-config scripts run in a sandbox: the docker-compose companion
(``50-heat-config-docker-compose``), then the dispatcher (``heat-config``), which
runs each deployment's hook and signals its result to a loopback Heat over
HEAT_SIGNAL.  The compose deployment is added only where a container engine can
run (the tests' private dockerd: root and Debian's docker.io); ansible needs
ansible-core (``pip install .[ansible]``; ``scripts/setup`` installs it), and
without it the hook reports a failed deployment rather than a silent success.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMPOSE_COMPANION = (REPO / "elements" / "heat-config-docker-compose" / "os-refresh-config" / "configure.d"
                     / "50-heat-config-docker-compose")
STACK, STACK_ID = "shop", "5e1d0000-demo-stack"

PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: write the shop's motd
      copy:
        dest: "{{ motd_path }}"
        content: "Welcome to {{ shop_name }} (port {{ port }})\\n"
    - name: tell Heat the url
      copy:
        dest: "{{ heat_outputs_path }}.url"
        content: "http://localhost:{{ port }}/"
"""


def say(text: str = "") -> None:
    print(text, flush=True)


def _signal_inputs(cloud: Any, resource: str) -> List[Dict[str, Any]]:
    return [
        {"name": "deploy_server_id", "type": "String", "value": "server1"},
        {"name": "deploy_action", "type": "String", "value": "CREATE"},
        {"name": "deploy_stack_id", "type": "String", "value": "%s/%s" % (STACK, STACK_ID)},
        {"name": "deploy_resource_name", "type": "String", "value": resource},
        {"name": "deploy_signal_transport", "type": "String", "value": "HEAT_SIGNAL"},
        {"name": "deploy_auth_url", "type": "String", "value": cloud.auth_url},
        {"name": "deploy_username", "type": "String", "value": "shop-deploy-user"},
        {"name": "deploy_user_id", "type": "String", "value": cloud.user_id},
        {"name": "deploy_password", "type": "String", "value": cloud.password},
        {"name": "deploy_project_id", "type": "String", "value": cloud.project_id},
        {"name": "deploy_region_name", "type": "String", "value": cloud.region},
    ]


def _deployment(n: int, name: str, group: str, config: Any, cloud: Any, inputs: List[Dict[str, Any]] = (),
                outputs: List[str] = ()) -> Dict[str, Any]:
    return {
        "id": "5b0c2f0e-7d3a-4f55-9d59-0d5f1c3a9e%02d" % n, "name": name, "group": group,
        "creation_time": "2024-03-05T09:12:44Z", "options": {}, "config": config,
        "outputs": [{"name": o, "type": "String", "error_output": False} for o in outputs],
        "inputs": list(inputs) + _signal_inputs(cloud, "deploy_" + name),
    }


def _engine() -> Optional[Any]:
    """The tests' private container engine, or None (with the reason said) where it cannot run."""
    from tests.docker_engine import EngineUnavailable, start_engine

    if not shutil.which("docker-compose"):
        say("    (no docker-compose here: the compose deployment is left out)")
        return None
    try:
        return start_engine()
    except EngineUnavailable as exc:
        say("    (no container engine here, so no compose deployment: %s)" % str(exc).splitlines()[0])
        return None


def step_hook_deployments(d: Any) -> None:
    """Software deployments through the ansible and docker-compose hooks."""
    from tests.servers.cloud import start_cloud

    root: Path = d.root / "hooks-demo"
    for sub in ("run", "lib", "deployed"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cloud = start_cloud()
    cloud.heat.add_stack(STACK, STACK_ID)
    engine = None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HEAT_"))}
    env.update(
        PATH="%s:%s" % (BIN, os.environ.get("PATH", "/usr/bin:/bin")), HOME=str(root),
        HEAT_SHELL_CONFIG=str(root / "run" / "heat-config"), HEAT_CONFIG_DEPLOYED=str(root / "deployed"),
        HEAT_CONFIG_DEPLOYED_OLD=str(root / "run" / "deployed-old"),
        HEAT_ANSIBLE_WORKING=str(root / "lib" / "ansible"), HEAT_ANSIBLE_OUTPUTS=str(root / "run" / "ansible"),
        HEAT_DOCKER_COMPOSE_WORKING=str(root / "lib" / "compose"),
        ANSIBLE_NOCOLOR="1", ANSIBLE_PYTHON_INTERPRETER=sys.executable,  # not whatever a pyenv shim finds
    )
    try:
        motd = root / "motd"
        deployments = [_deployment(1, "motd", "ansible", PLAYBOOK, cloud, outputs=["url"], inputs=[
            {"name": "motd_path", "type": "String", "value": str(motd)},
            {"name": "shop_name", "type": "String", "value": "Demo Shop"},
            {"name": "port", "type": "Number", "value": 8080}])]
        say("Heat asks for an ansible deployment (a playbook, inputs as variables, an output back)")
        engine = _engine()
        if engine:
            env["DOCKER_HOST"] = engine.host
            web = {"image": engine.base_image, "init": True, "env_file": "web.env",
                   "command": ["sh", "-c", "echo serving $$SHOP; exec sleep 3600"]}  # $$: not compose-interpolated
            if engine.compose_network_mode:
                web["network_mode"] = engine.compose_network_mode
            deployments.append(_deployment(2, "web", "docker-compose", {"version": "2.2", "services": {"web": web}},
                                           cloud, inputs=[{"name": "env_files", "type": "String", "value": json.dumps(
                                               [{"file_name": "web.env", "content": "SHOP=demo\n"}])}]))
            say("and a docker-compose deployment (one service, its env file from an input), on a private dockerd")
        (root / "run" / "heat-config").write_text(json.dumps(deployments))
        if engine:
            subprocess.run([str(COMPOSE_COMPANION)], env=env, capture_output=True, timeout=300, check=True)
            say("    50-heat-config-docker-compose wrote %s" % os.path.relpath(
                root / "lib" / "compose" / "web" / "docker-compose.yml", d.root))
        proc = subprocess.run([str(BIN / "heat-config")], env=env, capture_output=True, text=True, timeout=600)
        say("    heat-config (55-heat-config) exited %d" % proc.returncode)
        for signal in cloud.heat.signals:
            body = signal.body
            extra = {k: v for k, v in body.items() if not k.startswith("deploy_")}
            say("    Heat received the signal of %s: deploy_status_code %s%s" % (
                signal.resource, body.get("deploy_status_code"), ", outputs %s" % extra if extra else ""))
            if body.get("deploy_status_code"):
                say("      deploy_stderr ends: %s" % body.get("deploy_stderr", "").strip().splitlines()[-1:])
        if motd.exists():
            say("    the playbook wrote %s: %s" % (motd.name, motd.read_text().strip()))
        if engine:
            running = engine.docker("ps", "--format", "{{.Names}}: {{.Status}}").stdout.decode().strip()
            logs = engine.docker("logs", "web_web_1", check=False).stdout.decode().strip()
            say("    containers now: %s; its log says: %s" % (running, logs))
            (root / "run" / "heat-config").write_text(json.dumps(deployments[:1]))
            subprocess.run([str(COMPOSE_COMPANION)], env=env, capture_output=True, timeout=300, check=True)
            left = engine.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode().split()
            say("    the compose deployment leaves the metadata: the companion takes the project down "
                "(containers left: %s)" % (", ".join(left) or "none"))
    finally:
        if engine:
            engine.stop()
        cloud.stop()
