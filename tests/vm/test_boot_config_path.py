"""The boot-config path (issue 13's scenario 5): a plain cloud image gets the agents from Heat's user-data.

The image has cloud-init and python3 and nothing of ours. The real Heat renders boot-config's
``debian_pip_env.yaml`` (its pip index pointed at the test's wheelhouse), and Heat's own
``build_userdata`` (run in the control plane's virtualenv) wraps it with the server's metadata into the
user-data Nova would put on the config drive. cloud-init runs it: the agents are installed from the
index, configured from the cfn-init-data part and started, and the deployment reaches CREATE_COMPLETE.
"""
from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from tests.boot_config.conftest import BOOT_CONFIG
from tests.e2e.stacks import boot_config_stack_request, deployment_template, outputs_of, wait_for_occ_settings
from tests.support.terminal import say
from tests.vm.guest import nova_config_drive
from tests.vm.wheelhouse import IndexServer, build_wheelhouse

BOOT_TIMEOUT_S = 400
#: cloud-init, a virtualenv and a pip install of the agents, all under software emulation.
DEPLOY_TIMEOUT_S = 1200
#: Heat's own assembly of a SOFTWARE_CONFIG server's user-data (stdin: {"metadata", "userdata"}).
BUILD_USERDATA = """
import json, sys
from heat.engine.clients.os.nova import NovaClientPlugin
request = json.load(sys.stdin)
sys.stdout.write(NovaClientPlugin.build_userdata(None, request["metadata"], request["userdata"], None,
                                                 "SOFTWARE_CONFIG"))
"""


@pytest.fixture(scope="module")
def package_index(vm_images, tmp_path_factory) -> Iterator[IndexServer]:
    simple = build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"), vm_images.agents_wheel())
    server = IndexServer(simple.parent)
    yield server
    server.stop()


def heat_user_data(control_plane: Dict[str, Any], userdata: str, metadata: Dict[str, Any]) -> str:
    python = Path(control_plane["venv"]) / "bin" / "python"
    built = subprocess.run([str(python), "-c", BUILD_USERDATA], input=json.dumps(
        {"metadata": metadata, "userdata": userdata}), capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-4000:]
    return built.stdout


def rendered_boot_config(heat, index_url: str) -> str:
    """The user-data the real Heat renders from boot_config/debian_pip_env.yaml, the index set to ours
    (which serves the wheel of this checkout: agent_package names it as a requirement)."""
    name = "bootcfg-vm-%s" % uuid.uuid4().hex[:8]
    stack_id = heat.create_stack(name, timeout_mins=5, **boot_config_stack_request(
        BOOT_CONFIG / "debian_pip_env.yaml", {"pip_index_url": index_url, "agent_package": "os-config-agents"}))
    try:
        stack = heat.wait(name, stack_id, timeout=120)
        assert stack["stack_status"] == "CREATE_COMPLETE", stack.get("stack_status_reason")
        config_id = outputs_of(stack)["config"]
        return heat.call("GET", "/software_configs/%s" % config_id)["software_config"]["config"]
    finally:
        heat.delete_stack(name, stack_id)


def test_boot_config_installs_the_agents_and_the_deployment_completes(
        heat, control_plane, make_guest, forward_ports, package_index, tmp_path, request):
    boot_config = rendered_boot_config(heat, package_index.url)
    name = "vm-bootcfg-%d" % (time.time() * 1000)
    stack_id = heat.create_stack(name, deployment_template(
        transport="POLL_SERVER_HEAT", signal="HEAT_SIGNAL", group="script", outputs=[{"name": "result"}],
        config='#!/bin/sh\nset -e\nprintf "installed by boot-config" > "$heat_outputs_path.result"\n'),
        timeout_mins=30)
    try:
        settings = wait_for_occ_settings(heat, name, stack_id)
        user_data = heat_user_data(control_plane, boot_config, {"os-collect-config": settings})
        ports = list(forward_ports) + [package_index.port]
        guest = make_guest("boot-config", name, nova_config_drive(tmp_path / "config-2.iso", name, ports,
                                                                  user_data=user_data), ports)
        powered_on = guest.power_on()
        guest.wait_booted(BOOT_TIMEOUT_S)
        stack = heat.wait(name, stack_id, DEPLOY_TIMEOUT_S, poll=2)
        took = time.monotonic() - powered_on
        cloud_init = guest.sh("cloud-init status --long || true; tail -n 40 /var/log/cloud-init-output.log")
        assert stack["stack_status"] == "CREATE_COMPLETE", "%s: %s\ncloud-init:\n%s" % (
            stack["stack_status"], stack.get("stack_status_reason"), cloud_init)
        say(request, "vm: power-on -> CREATE_COMPLETE %.0f s (boot-config path: cloud-init, pip from the "
               "test's index, the agent started)" % took)
        assert outputs_of(stack)["out_result"] == "installed by boot-config"
        assert guest.sh("systemctl is-active os-collect-config").strip() == "active"
        assert guest.sh("readlink -f /usr/local/bin/os-collect-config").strip().startswith(
            "/opt/stack/venvs/os-config-agents/")
    finally:
        heat.delete_stack(name, stack_id)
