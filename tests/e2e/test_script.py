"""Group `script` deployments carried by our agents to a real Heat, over the CFN and the Heat API paths."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.stacks import deployment_events, deployment_template, outputs_of

TRANSPORTS = [
    pytest.param("POLL_SERVER_HEAT", "HEAT_SIGNAL", "heat", id="heat"),
    pytest.param("POLL_SERVER_CFN", "CFN_SIGNAL", "cfn", id="cfn"),
]
#: The same, plus metadata and signals through a real Swift (temp URLs) and a real Zaqar (queues).
ALL_TRANSPORTS = TRANSPORTS + [
    pytest.param("POLL_TEMP_URL", "TEMP_URL_SIGNAL", "request", id="swift-temp-url"),
    pytest.param("ZAQAR_MESSAGE", "ZAQAR_SIGNAL", "zaqar", id="zaqar"),
]

GREETER = """#!/bin/sh
set -e
echo "greeting is $greeting, action $deploy_action"
echo "to stderr" >&2
printf '%s from the-vm' "$greeting" > "$heat_outputs_path.result"
echo "$deploy_action $greeting" >> "$LOG_FILE"
"""


def greeter(transport: str, signal: str, greeting: str, log_file: str, actions=None):
    return deployment_template(
        transport=transport, signal=signal, group="script", config=GREETER,
        inputs=[{"name": "greeting"}, {"name": "LOG_FILE"}], outputs=[{"name": "result"}],
        input_values={"greeting": greeting, "LOG_FILE": log_file}, actions=actions)


@pytest.mark.parametrize("transport, signal, collector", ALL_TRANSPORTS)
def test_script_deployment_completes_with_outputs(deployer, vm, transport, signal, collector):
    settings = deployer.create(greeter(transport, signal, "hello", str(vm.base / "runs.log")))

    # the agent was configured exactly from what Heat gave the server
    assert settings["collectors"] == [collector, "local"]
    assert "[%s]" % collector in deployer.rendered_conf
    stack = deployer.wait()

    assert stack["stack_status"] == "CREATE_COMPLETE", deployer.explain(stack)
    out = outputs_of(stack)
    assert out["out_result"] == "hello from the-vm"
    assert out["deploy_status_code"] == 0
    assert "greeting is hello, action CREATE" in out["deploy_stdout"]
    assert "to stderr" in out["deploy_stderr"]
    assert (vm.base / "runs.log").read_text() == "CREATE hello\n"
    events = deployment_events(deployer.heat, deployer.name, deployer.stack_id)
    assert any(e.startswith("CREATE_COMPLETE") for e in events), events


@pytest.mark.parametrize("transport, signal, collector", TRANSPORTS)
def test_failing_script_fails_the_stack_with_our_stderr(deployer, transport, signal, collector):
    failing = deployment_template(
        transport=transport, signal=signal, group="script",
        config="#!/bin/sh\necho 'half done'\necho 'e2e-failure: disk on fire' >&2\nexit 3\n")
    deployer.create(failing)
    stack = deployer.wait()

    assert stack["stack_status"] == "CREATE_FAILED", deployer.explain(stack)
    events = deployment_events(deployer.heat, deployer.name, deployer.stack_id)
    failed = [e for e in events if e.startswith("CREATE_FAILED")]
    assert failed and "Deployment exited with non-zero status code: 3" in failed[-1], events
    out = outputs_of(stack)
    assert out["deploy_status_code"] == 3
    assert "e2e-failure: disk on fire" in out["deploy_stderr"]
    assert "half done" in out["deploy_stdout"]


@pytest.mark.parametrize("transport, signal, collector", TRANSPORTS)
def test_update_reruns_with_new_input_and_delete_action_runs(deployer, vm, transport, signal, collector):
    log_file = str(vm.base / "runs.log")
    actions = ["CREATE", "UPDATE", "DELETE"]
    deployer.create(greeter(transport, signal, "first", log_file, actions))
    stack = deployer.wait()
    assert stack["stack_status"] == "CREATE_COMPLETE", deployer.explain(stack)

    deployer.update(greeter(transport, signal, "second", log_file, actions))
    stack = deployer.wait()
    assert stack["stack_status"] == "UPDATE_COMPLETE", deployer.explain(stack)
    assert outputs_of(stack)["out_result"] == "second from the-vm"
    assert (vm.base / "runs.log").read_text() == "CREATE first\nUPDATE second\n"

    stack = deployer.delete()
    assert stack["stack_status"] == "DELETE_COMPLETE", deployer.explain(stack)
    assert (vm.base / "runs.log").read_text() == "CREATE first\nUPDATE second\nDELETE second\n"


def test_agent_killed_while_script_runs_never_leaves_heat_waiting(deployer, vm):
    """SIGKILL the whole agent mid-hook, restart it: Heat hears about it (§12.3), it does not time out."""
    started = vm.base / "hook-started"
    slow = deployment_template(
        transport="POLL_SERVER_HEAT", signal="HEAT_SIGNAL", group="script",
        inputs=[{"name": "MARK"}], input_values={"MARK": str(started)},
        config="#!/bin/sh\necho run >> \"$MARK\"\nsleep 600\necho finished\n")
    deployer.create(slow)
    vm.wait_for_file(started, 120)
    vm.kill()
    assert vm.descendants() == []
    vm.start()
    stack = deployer.wait(timeout=180)

    assert stack["stack_status"] == "CREATE_FAILED", deployer.explain(stack)
    assert started.read_text() == "run\n", "the interrupted hook must not be run a second time"
    out = outputs_of(stack)
    assert out["deploy_status_code"] not in (0, "0", None)
    assert re.search(r"interrupted|stopped while", out["deploy_stderr"] or ""), json.dumps(out)


def test_zaqar_websocket_mode_gets_metadata_and_updates_from_the_real_websocket_transport(
        deployer, vm, control_plane):
    """``use_websockets = true`` (SPEC §2.10.5, §5.9.12): Zaqar's own websocket server, not the HTTP API.

    The first metadata is popped right after subscribing; the update's can only come as a notification
    (Heat posts it over HTTP, the WSGI server's notifier calls the websocket server's webhook, which
    pushes it down our socket), as websocket mode never polls the HTTP API."""
    log_file = str(vm.base / "runs.log")
    actions = ["CREATE", "UPDATE"]
    settings = deployer.create(greeter("ZAQAR_MESSAGE", "ZAQAR_SIGNAL", "hello", log_file, actions),
                               image_settings={"zaqar": {"use_websockets": True}})
    assert settings["collectors"] == ["zaqar", "local"]
    assert re.search(r"(?m)^use_websockets = true$", deployer.rendered_conf, re.I), deployer.rendered_conf
    stack = deployer.wait()
    assert stack["stack_status"] == "CREATE_COMPLETE", deployer.explain(stack)
    assert outputs_of(stack)["out_result"] == "hello from the-vm"

    deployer.update(greeter("ZAQAR_MESSAGE", "ZAQAR_SIGNAL", "second", log_file, actions))
    stack = deployer.wait()
    assert stack["stack_status"] == "UPDATE_COMPLETE", deployer.explain(stack)
    assert outputs_of(stack)["out_result"] == "second from the-vm"
    assert (vm.base / "runs.log").read_text() == "CREATE hello\nUPDATE second\n"

    # the websocket server itself saw our agent authenticate, subscribe to this server's queue and read it
    queue = json.dumps(settings["zaqar"]["queue_id"])
    ws_log = (Path(control_plane["state_dir"]) / "logs" / "zaqar-websocket.log").read_text(errors="replace")
    served = re.findall(r'Response: API v2 txt, (\d+)\. Request: action "(\w+)", body (.*)\.$', ws_log, re.M)
    assert ("200", "authenticate") in [(status, action) for status, action, _ in served], ws_log[-4000:]
    for action, status in (("subscription_create", "201"), ("message_list", "200")):
        assert any(a == action and s == status and queue in body for s, a, body in served), ws_log[-4000:]
    agent_log = vm.log()
    assert "Subscribed to zaqar queue %s over the websocket %s" % (
        settings["zaqar"]["queue_id"], control_plane["zaqar_websocket_url"]) in agent_log, agent_log[-6000:]
    assert "Zaqar websocket notification received" in agent_log, agent_log[-6000:]
