"""Fixtures of the end-to-end suite: one sandboxed VM per test, driven through the real control plane.

The control plane itself is the session fixture of tests/e2e/plane_fixtures.py, shared with tests/vm.
``-m "not e2e"`` skips the whole suite.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Set

import pytest

from tests.e2e import controlplane
from tests.e2e.stacks import assert_no_secret_in, deployment_events, outputs_of, server_secrets, wait_for_occ_settings
from tests.support.sandbox import assert_no_planted_secret
from tests.support.vm import HOST_PATHS, VM



def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def vm(tmp_path):
    absent = [p for p in HOST_PATHS if not os.path.lexists(p)]
    machine = VM(tmp_path / "vm")
    yield machine
    machine.stop()
    assert_no_planted_secret(machine.log(), "the agent log")
    created = [p for p in absent if os.path.lexists(p)]
    assert not created, "the sandboxed agent wrote to the host: %s" % created


class Deployer:
    """Create a stack, boot a VM from its server's os_collect_config, run the agent, wait for Heat."""

    def __init__(self, heat: controlplane.Heat, vm: VM):
        self.heat = heat
        self.vm = vm
        self.name = "e2e-%d" % (time.time() * 1000)
        self.stack_id = ""
        self.rendered_conf = ""
        self.secrets: Set[str] = set()

    def create(self, template: Dict[str, Any], start_agent: bool = True,
               image_settings: Optional[Dict[str, Dict]] = None) -> Dict[str, Any]:
        self.stack_id = self.heat.create_stack(self.name, template, timeout_mins=10)
        settings = wait_for_occ_settings(self.heat, self.name, self.stack_id)
        self.rendered_conf = self.vm.boot(settings, image_settings)
        if start_agent:
            self.vm.start()
        return settings

    def collect_secrets(self) -> None:
        """Remember the credentials Heat handed this server (SPEC §12.10: none may reach a log)."""
        self.secrets.update(server_secrets(self.heat, self.name, self.stack_id))

    def assert_no_secret_in(self, text: str, where: str) -> None:
        assert_no_secret_in(self.secrets, text, where)

    def wait(self, timeout: float = 180) -> Dict[str, Any]:
        self.collect_secrets()
        stack = self.heat.wait(self.name, self.stack_id, timeout)
        if stack["stack_status"].endswith("IN_PROGRESS"):
            raise AssertionError("stack still %s after %ss; agent log tail:\n%s"
                                 % (stack["stack_status"], timeout, self.vm.log()[-6000:]))
        return stack

    def update(self, template: Dict[str, Any]) -> None:
        self.heat.update_stack(self.name, self.stack_id, template)
        time.sleep(1)

    def delete(self, timeout: float = 180) -> Dict[str, Any]:
        for _ in range(3):
            self.heat.delete_stack(self.name, self.stack_id)
            time.sleep(1)
            stack = self.wait(timeout)
            # the same Heat quirk as create_stack's, on the way out: delete again, as an operator would
            if stack["stack_status"] != "DELETE_FAILED" or "trust" not in (stack["stack_status_reason"] or ""):
                break
        return stack

    def explain(self, stack: Dict[str, Any]) -> str:
        """Everything needed to understand a failed scenario from the CI log alone."""
        out = outputs_of(stack)
        return "%s: %s\nevents:\n%s\ndeploy_status_code: %s\ndeploy_stdout:\n%s\ndeploy_stderr:\n%s\n" \
            "agent log tail:\n%s" % (
                stack["stack_status"], stack.get("stack_status_reason"),
                "\n".join(deployment_events(self.heat, self.name, self.stack_id)),
                out.get("deploy_status_code"), out.get("deploy_stdout"), out.get("deploy_stderr"),
                self.vm.log()[-6000:])


@pytest.fixture
def deployer(heat, vm):
    d = Deployer(heat, vm)
    yield d
    if d.stack_id:  # delete while the agent still runs (a DELETE action needs it), then stop the agent
        try:
            d.delete(timeout=90)
        except (controlplane.ApiError, AssertionError, OSError):
            pass
        vm.stop()
        d.assert_no_secret_in(vm.log(), "the agent log")
