"""Helpers for the dispatcher and signal tests: deployments as Heat builds them, and their signal inputs."""
from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from tests.conftest import BIN_DIR, PLANTED_SECRETS, assert_no_planted_secret
from tests.servers.cloud import Cloud, cloud  # noqa: F401  (fixture re-exported)

STACK = "web"
STACK_ID = "1e4c0000-stack"


def dep_id(n: int = 0) -> str:
    return str(uuid.UUID(int=0x5B0C2F0E7D3A4F559D590D5F1C3A0000 + n))


def deployment(n: int = 0, config: Any = "#!/bin/sh\necho hello\n", group: str = "script",
               inputs: Optional[List[Dict[str, Any]]] = None, outputs: Optional[List[str]] = None,
               signal: Optional[List[Dict[str, Any]]] = None, options: Optional[Dict[str, Any]] = None,
               action: str = "CREATE", name: Optional[str] = None) -> Dict[str, Any]:
    """A deployment object shaped as Heat sends it (SPEC §6.4)."""
    items = list(inputs or [])
    items += [
        {"name": "deploy_server_id", "type": "String", "value": "a1b2c3d4-server"},
        {"name": "deploy_action", "type": "String", "value": action},
        {"name": "deploy_stack_id", "type": "String", "value": "%s/%s" % (STACK, STACK_ID)},
        {"name": "deploy_resource_name", "type": "String", "value": "deploy_%d" % n},
    ]
    items += signal if signal is not None else [
        {"name": "deploy_signal_transport", "type": "String", "value": "NO_SIGNAL"}]
    return {
        "id": dep_id(n),
        "name": name or "%02d_deployment" % n,
        "group": group,
        "creation_time": "2024-03-05T09:12:44Z",
        "options": options or {},
        "config": config,
        "outputs": [{"name": o, "type": "String", "error_output": False} for o in (outputs or [])],
        "inputs": items,
    }


def cfn_inputs(servers: "Cloud", resource: str = "deploy_0") -> List[Dict[str, Any]]:
    url = servers.cfn.signed_signal_url(servers.access_key, STACK, STACK_ID, resource)
    return [
        {"name": "deploy_signal_transport", "type": "String", "value": "CFN_SIGNAL"},
        {"name": "deploy_signal_id", "type": "String", "value": url},
        {"name": "deploy_signal_verb", "type": "String", "value": "POST"},
    ]


def keystone_inputs(servers: "Cloud", transport: str, resource: str = "deploy_0") -> List[Dict[str, Any]]:
    """HEAT_SIGNAL / ZAQAR_SIGNAL inputs for the stack every test deployment names (STACK/STACK_ID)."""
    servers.heat.add_stack(STACK, STACK_ID)
    items = [
        {"name": "deploy_signal_transport", "type": "String", "value": transport},
        {"name": "deploy_auth_url", "type": "String", "value": servers.auth_url},
        {"name": "deploy_username", "type": "String", "value": "web-deploy-user"},
        {"name": "deploy_user_id", "type": "String", "value": servers.user_id},
        {"name": "deploy_password", "type": "String", "value": servers.password},
        {"name": "deploy_project_id", "type": "String", "value": servers.project_id},
        {"name": "deploy_region_name", "type": "String", "value": servers.region},
    ]
    if transport == "ZAQAR_SIGNAL":
        items.append({"name": "deploy_queue_id", "type": "String", "value": "signal-queue-%s" % resource})
    return items


@pytest.fixture
def hc(sandbox):
    """The environment every dispatcher test runs with: script hook dirs and a short signal retry bound."""
    sandbox.env.update(
        HEAT_SCRIPT_WORKING=str(sandbox.path("lib", "heat-config-script")),
        HEAT_SCRIPT_OUTPUTS=str(sandbox.path("run", "heat-config-script")),
        HEAT_CONFIG_SIGNAL_RETRY_S="3",
    )
    return sandbox


def write_deployments(sandbox, deployments: Any) -> Path:
    text = deployments if isinstance(deployments, str) else json.dumps(deployments)
    return sandbox.write("run/heat-config", text, 0o644)


def deployed(sandbox, *parts: str) -> Path:
    return sandbox.path("deployed", *parts)


def journal(sandbox, dep: str) -> Dict[str, Any]:
    return json.loads(deployed(sandbox, "journal", dep + ".json").read_text())


def assert_no_secret_on_disk_outside_state(sandbox) -> None:
    """Planted secrets may only be in 0600 files: the state dir and the deployments file (SPEC §12.10)."""
    for root, _, files in os.walk(sandbox.root):
        for name in files:
            path = os.path.join(root, name)
            try:
                text = Path(path).read_text(errors="replace")
            except OSError:
                continue
            if any(s in text for s in PLANTED_SECRETS):
                allowed = path.startswith(str(deployed(sandbox))) or path == str(sandbox.path("run", "heat-config"))
                assert allowed, "secret in %s" % path
                assert os.stat(path).st_mode & 0o077 == 0, "secret in a non-private file %s" % path


def wait_for(predicate, timeout=30.0, what="condition"):
    """Until ``predicate()`` is true; the test fails naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail("timed out waiting for %s" % what)


def start_dispatcher(sandbox, env=None) -> "subprocess.Popen":
    """The real ``heat-config`` in the background, for a test that kills it."""
    merged = dict(sandbox.env)
    merged.update(env or {})
    return subprocess.Popen([str(BIN_DIR / "heat-config")], env=merged, cwd=str(sandbox.root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_pid_from(path) -> None:
    """Stop what this test started: the script that wrote its pid leads its own process group."""
    try:
        os.killpg(int(path.read_text()), signals.SIGKILL)
    except (ProcessLookupError, ValueError, FileNotFoundError):
        pass


__all__ = ["assert_no_planted_secret", "PLANTED_SECRETS"]
