"""Fixtures of the end-to-end suite: one real control plane per session, one sandboxed VM per test.

The control plane is started once (tests/e2e/controlplane.py) and stopped by PID at the end; its setup
time and each scenario's time are printed in the terminal summary (and live, while it starts), so CI
logs show where the minutes went. ``-m "not e2e"`` skips the whole suite; OCA_E2E_REUSE=<state dir> runs it
against a plane already started by hand (``python tests/e2e/controlplane.py start --state-dir DIR``).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

from tests.e2e import controlplane
from tests.support.sandbox import assert_no_planted_secret
from tests.support.vm import HOST_PATHS, VM

TIMINGS: List[Tuple[str, float]] = []


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


def pytest_runtest_logreport(report):
    if report.when == "call" and "e2e" in report.keywords:
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        TIMINGS.append(("%s [%s]" % (report.nodeid.split("::", 1)[-1], outcome), report.duration))


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.section("e2e timings (real Keystone + Heat)")
    for name, seconds in TIMINGS:
        terminalreporter.write_line("%7.1f s  %s" % (seconds, name))


def _say(request, text: str) -> None:
    """Print now, even under output capture: CI shows progress while the control plane starts."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capman is None or reporter is None:
        print(text)
        return
    with capman.global_and_fixture_disabled():
        reporter.write_line(text)


@pytest.fixture(scope="session")
def control_plane(request, tmp_path_factory) -> Dict[str, Any]:
    reuse = os.environ.get("OCA_E2E_REUSE")
    if reuse:  # a developer's plane from `controlplane.py start --state-dir DIR`: use it, leave it running
        _say(request, "\ne2e: reusing the control plane in %s" % reuse)
        yield controlplane.ControlPlane(Path(reuse)).info()
        return
    started = time.monotonic()
    venv, venv_took = controlplane.ensure_venv()
    TIMINGS.append(("control plane virtualenv (%s)" % ("created" if venv_took else "cached"), venv_took))
    _say(request, "\ne2e: control plane virtualenv %s ready in %.1f s" % (venv, venv_took))
    plane = controlplane.ControlPlane(tmp_path_factory.mktemp("controlplane"), venv)
    t0 = time.monotonic()
    try:
        info = plane.start()
    except Exception:
        plane.stop()
        raise
    TIMINGS.append(("control plane start (rabbitmq, keystone, swift, zaqar, heat)", time.monotonic() - t0))
    TIMINGS.extend(("  of which %s" % step, seconds) for step, seconds in info.get("timings", {}).items())
    _say(request, "e2e: control plane started in %.1f s (setup + start %.1f s), state in %s"
         % (time.monotonic() - t0, time.monotonic() - started, plane.dir))
    yield info
    plane.stop()


@pytest.fixture(scope="session")
def heat(control_plane) -> controlplane.Heat:
    return controlplane.Heat(control_plane)


@pytest.fixture
def vm(tmp_path):
    absent = [p for p in HOST_PATHS if not os.path.lexists(p)]
    machine = VM(tmp_path / "vm")
    yield machine
    machine.stop()
    assert_no_planted_secret(machine.log(), "the agent log")
    created = [p for p in absent if os.path.lexists(p)]
    assert not created, "the sandboxed agent wrote to the host: %s" % created


# ------------------------------------------------------------------------------------------ templates

def deployment_template(
    *,
    transport: str,
    signal: str,
    group: str,
    config: Any,
    inputs: Optional[List[Dict[str, Any]]] = None,
    outputs: Optional[List[Dict[str, Any]]] = None,
    input_values: Optional[Dict[str, Any]] = None,
    actions: Optional[List[str]] = None,
    options: Optional[Dict[str, Any]] = None,
    config_type: str = "OS::Heat::SoftwareConfig",
) -> Dict[str, Any]:
    """DeployedServer + one config + one deployment; outputs expose the server's occ settings and results."""
    deployment: Dict[str, Any] = {
        "config": {"get_resource": "config"},
        "server": {"get_resource": "server"},
        "signal_transport": signal,
        "input_values": input_values or {},
    }
    if actions is not None:
        deployment["actions"] = actions
    template_outputs: Dict[str, Any] = {
        "os_collect_config": {"value": {"get_attr": ["server", "os_collect_config"]}},
    }
    for attr in ("deploy_stdout", "deploy_stderr", "deploy_status_code"):
        template_outputs[attr] = {"value": {"get_attr": ["deployment", attr]}}
    for out in outputs or []:
        template_outputs["out_" + out["name"]] = {"value": {"get_attr": ["deployment", out["name"]]}}
    config_props: Dict[str, Any] = {"group": group, "config": config, "inputs": inputs or [],
                                    "outputs": outputs or []}
    if options:
        config_props["options"] = options
    return {
        "heat_template_version": "2021-04-16",
        "resources": {
            "server": {"type": "OS::Heat::DeployedServer",
                       "properties": {"software_config_transport": transport}},
            "config": {"type": config_type, "properties": config_props},
            "deployment": {"type": "OS::Heat::SoftwareDeployment", "properties": deployment},
        },
        "outputs": template_outputs,
    }


def _query(url: Any) -> Optional[str]:
    """The signed part of a pre-signed or temp URL."""
    return url.split("?", 1)[1] if isinstance(url, str) and "?" in url else None


def outputs_of(stack: Dict[str, Any]) -> Dict[str, Any]:
    return {o["output_key"]: o.get("output_value") for o in stack.get("outputs", [])}


def wait_for_occ_settings(heat: controlplane.Heat, name: str, stack_id: str, timeout: float = 60) -> Dict:
    """The server's os_collect_config attribute, once the DeployedServer exists."""
    deadline = time.monotonic() + timeout
    while True:
        stack = heat.stack(name, stack_id)
        value = outputs_of(stack).get("os_collect_config")
        if value:
            return value
        if not stack["stack_status"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            raise AssertionError("no os_collect_config from the server: %s %s"
                                 % (stack["stack_status"], stack.get("stack_status_reason")))
        time.sleep(0.5)


def deployment_events(heat: controlplane.Heat, name: str, stack_id: str) -> List[str]:
    return ["%s %s: %s" % (e["resource_status"], e["logical_resource_id"], e.get("resource_status_reason"))
            for e in heat.events(name, stack_id) if e["logical_resource_id"] == "deployment"]


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
        try:
            md = self.heat.call("GET", "/stacks/%s/%s/resources/server/metadata"
                                % (self.name, self.stack_id))["metadata"] or {}
        except controlplane.ApiError:
            return
        for section in (md.get("os-collect-config") or {}).values():
            if isinstance(section, dict):
                self._secret(section.get("password"), section.get("secret_access_key"),
                             _query(section.get("metadata_url")))
        for dep in md.get("deployments") or []:
            for inp in dep.get("inputs") or []:
                if inp.get("name") == "deploy_password":
                    self._secret(inp.get("value"))
                elif inp.get("name") == "deploy_signal_id":
                    self._secret(_query(inp.get("value")))

    def _secret(self, *values: Any) -> None:
        self.secrets.update(v for v in values if isinstance(v, str) and len(v) >= 8)

    def assert_no_secret_in(self, text: str, where: str) -> None:
        leaked = [s[:4] + "..." for s in self.secrets if s in text]
        assert not leaked, "credentials Heat gave the server appear in %s (starting %s)" % (where, leaked)

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
