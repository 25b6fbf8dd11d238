"""boot-config rendered by a real Heat: the environments and templates are valid, and the user-data the
real Heat makes from them is, part for part, what tests/boot_config's renderer makes (so the tests that
run that rendered user-data in a Debian root run what a server would get).

The request is what python-heatclient sends for ``openstack stack create -e <env> -t <template>``:
the environment's registry target and every ``get_file`` become absolute file URLs whose contents go in
``files``.
"""
from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml

from tests.boot_config.conftest import BOOT_CONFIG, required_params
from tests.e2e import controlplane
from tests.e2e.stacks import boot_config_stack_request
from tests.boot_config.heat_userdata import parts, render

def _meaning(part: str) -> Any:
    """A script part as its text; a cloud-config part as the data cloud-init reads (YAML layout may differ)."""
    if part.startswith("#cloud-config\n"):
        return ("cloud-config", yaml.safe_load(part))
    return part


@pytest.mark.parametrize("env_name", ["debian_pip_env.yaml", "container_agent_env.yaml"])
def test_real_heat_renders_the_user_data_our_renderer_renders(heat, env_name):
    env_file = BOOT_CONFIG / env_name
    template = env_file.parent / yaml.safe_load(env_file.read_text())["resource_registry"]["Heat::InstallConfigAgent"]
    params = required_params(template)
    request = boot_config_stack_request(env_file, params)
    name = "bootcfg-%s" % uuid.uuid4().hex[:8]
    stack_id = heat.create_stack(name, timeout_mins=5, **request)
    try:
        stack = heat.wait(name, stack_id, timeout=120)
        assert stack["stack_status"] == "CREATE_COMPLETE", stack.get("stack_status_reason")
        outputs = {o["output_key"]: o["output_value"] for o in stack["outputs"]}
        # The output is the id of the MultipartMime's software config, which Nova's user_data gets.
        user_data = heat.call("GET", "/software_configs/%s" % outputs["config"])["software_config"]["config"]
        assert [_meaning(p) for p in parts(user_data)] == [_meaning(p) for p in parts(render(template, params))]
        defaults = yaml.safe_load(env_file.read_text()).get("parameter_defaults", {})
        assert outputs["image"] == defaults.get("image", "none")
    finally:
        heat.delete_stack(name, stack_id)


def assert_heat_refuses_for_agent_package(heat, request, prefix):
    """Heat refuses the stack, while validating it or when creating it, and says agent_package is why."""
    name = "%s-%s" % (prefix, uuid.uuid4().hex[:8])
    try:
        stack_id = heat.create_stack(name, timeout_mins=5, **request)
    except controlplane.ApiError as exc:  # refused while validating the request
        assert "agent_package" in exc.body
        return
    try:
        stack = heat.wait(name, stack_id, timeout=120)
        assert stack["stack_status"] == "CREATE_FAILED"
        assert "agent_package" in stack["stack_status_reason"]
    finally:
        heat.delete_stack(name, stack_id)


def test_real_heat_refuses_a_stack_without_agent_package(heat):
    """os-config-agents is not on PyPI, so the pip installer has no default: the stack is refused."""
    assert_heat_refuses_for_agent_package(heat, boot_config_stack_request(BOOT_CONFIG / "debian_pip_env.yaml"),
                                          "bootcfg-nopkg")


def test_real_heat_refuses_an_agent_package_that_could_break_out_of_the_script(heat):
    request = boot_config_stack_request(BOOT_CONFIG / "debian_pip_env.yaml")
    request["environment"]["parameter_defaults"]["agent_package"] = "os-config-agents'; reboot; '"
    assert_heat_refuses_for_agent_package(heat, request, "bootcfg-bad")
