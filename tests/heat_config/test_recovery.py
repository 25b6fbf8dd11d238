"""No deployment left hanging, no signal lost (SPEC §11.1–§11.6, §12.3–§12.5).

Each test breaks something for real: kill -9 of the dispatcher mid-hook or
mid-signal, a stopped signal server, 5xx replies, slow replies, a hung hook.
"""
from __future__ import annotations

import json
import time

from tests.servers.cfn import CfnServer
from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import deployed, journal, kill_pid_from, start_dispatcher, write_deployments
from tests.support.wait import wait_for


def test_kill_9_mid_hook_signals_failed_once_and_never_reruns(run_tool, hc, cloud):
    runs = hc.path("runs")
    hook_pid = hc.path("hook.pid")
    script = "#!/bin/sh\necho $$ > %s\necho run >> %s\nsleep 60\n" % (hook_pid, runs)
    write_deployments(hc, [deployment(0, config=script, signal=cfn_inputs(cloud)),
                           deployment(1, config="#!/bin/sh\necho second\n", signal=cfn_inputs(cloud, "deploy_1"))])
    proc = start_dispatcher(hc)
    try:
        wait_for(lambda: runs.exists(), timeout=30, what="the hook to start")
        assert journal(hc, dep_id(0))["step"] == "running"
        status = run_tool("heat-config", ["status", "--json"])
        assert json.loads(status.stdout)["deployments"][0]["state"] == "running"
        proc.kill()
        proc.wait()
    finally:
        kill_pid_from(hook_pid)
    status = run_tool("heat-config", ["status", "--json"])
    assert json.loads(status.stdout)["deployments"][0]["state"] == "interrupted"
    assert cloud.cfn.signals == []

    result = run_tool("heat-config")
    assert result.returncode == 0
    assert "was interrupted while its hook ran" in result.stderr
    bodies = {s.arn.rsplit("/", 1)[-1]: s.body for s in cloud.cfn.signals}
    assert bodies["deploy_0"]["deploy_status_code"] != 0
    assert "stopped while this deployment's hook was running" in bodies["deploy_0"]["deploy_stderr"]
    assert bodies["deploy_1"]["deploy_stdout"] == "second\n"  # the rest goes on
    assert runs.read_text() == "run\n"  # not run again

    run_tool("heat-config")
    assert len(cloud.cfn.signals) == 2  # signalled exactly once each
    rows = {r["id"]: r for r in json.loads(run_tool("heat-config", ["status", "--json"]).stdout)["deployments"]}
    assert rows[dep_id(0)]["state"] == "failed" and rows[dep_id(0)]["signal"] == "sent"
    assert rows[dep_id(1)]["state"] == "succeeded"


def test_kill_9_after_finish_before_signal_then_signalled_exactly_once(run_tool, hc, cloud):
    """The notifier program is slow; the dispatcher dies while it runs; the outbox delivers on restart."""
    notifier_pid = hc.path("notifier.pid")
    slow = hc.write("bin/slow-notify", "#!/bin/sh\necho $$ > %s\nsleep 60\n" % notifier_pid, 0o755)
    write_deployments(hc, [deployment(0, config="#!/bin/sh\necho finished-output\n", signal=cfn_inputs(cloud))])
    proc = start_dispatcher(hc, env={"HEAT_CONFIG_NOTIFY": str(slow)})
    try:
        wait_for(lambda: notifier_pid.exists(), timeout=30, what="the notifier to start")
        proc.kill()
        proc.wait()
    finally:
        kill_pid_from(notifier_pid)
    record = journal(hc, dep_id(0))
    assert record["step"] == "finished" and record["signal"] == "pending"

    run_tool("heat-config")  # no HEAT_CONFIG_NOTIFY: in-process delivery of the same payload
    assert [s.body for s in cloud.cfn.signals] == [
        {"deploy_stdout": "finished-output\n", "deploy_stderr": "", "deploy_status_code": 0}]
    run_tool("heat-config")
    assert len(cloud.cfn.signals) == 1


def test_signal_server_down_then_back_delivers_from_the_outbox(run_tool, hc):
    cfn = CfnServer({"AKIA-1": "secret-key-for-test"}, "proj").start()
    port = cfn.port
    url = cfn.signed_signal_url("AKIA-1", "web", "1e4c0000-stack", "deploy_0")
    inputs = [{"name": "deploy_signal_id", "type": "String", "value": url},
              {"name": "deploy_signal_verb", "type": "String", "value": "POST"}]
    cfn.stop()
    write_deployments(hc, [deployment(0, signal=inputs)])
    start = time.monotonic()
    result = run_tool("heat-config", env={"HEAT_CONFIG_SIGNAL_RETRY_S": "2"})
    assert result.returncode == 0
    assert time.monotonic() - start < 20  # bounded: the agent does not hang on a dead endpoint
    assert "still pending" in result.stderr
    assert journal(hc, dep_id(0))["signal"] == "pending"
    assert deployed(hc, "journal", dep_id(0) + ".open").exists()  # what the next run must read
    wait = run_tool("heat-config", ["status", "--wait", "--timeout", "1"])
    assert wait.returncode == 2

    back = CfnServer({"AKIA-1": "secret-key-for-test"}, "proj").start(port)
    try:
        result = run_tool("heat-config", ["dispatch", "--signals-only"])
        assert result.returncode == 0
        assert [s.body["deploy_stdout"] for s in back.signals] == ["hello\n"]
        assert run_tool("heat-config", ["status", "--wait", "--timeout", "5"]).returncode == 0
        assert not deployed(hc, "journal", dep_id(0) + ".open").exists()
        run_tool("heat-config")
        assert len(back.signals) == 1
    finally:
        back.stop()


def test_5xx_then_success_within_one_run(run_tool, hc, cloud):
    cloud.cfn.signal_statuses = [500, 503]
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    result = run_tool("heat-config", env={"HEAT_CONFIG_SIGNAL_RETRY_S": "30"})
    assert result.returncode == 0
    assert len(cloud.cfn.received("POST")) == 3
    assert len(cloud.cfn.signals) == 1
    assert journal(hc, dep_id(0))["attempts"] == 3


def test_4xx_is_recorded_reported_and_not_retried(run_tool, hc, cloud):
    inputs = cfn_inputs(cloud)
    inputs[1]["value"] = inputs[1]["value"].replace("AWSAccessKeyId=", "AWSAccessKeyId=unknown")
    write_deployments(hc, [deployment(0, signal=inputs)])
    run_tool("heat-config")
    run_tool("heat-config")
    assert len(cloud.cfn.received("POST")) == 1
    (row,) = json.loads(run_tool("heat-config", ["status", "--json"]).stdout)["deployments"]
    assert row["signal"] == "refused" and "403" in row["error"]
    assert run_tool("heat-config", ["status", "--wait", "--timeout", "5"]).returncode == 0


def test_slow_signal_endpoint_times_out_and_is_retried(run_tool, hc, cloud):
    cloud.cfn.delay_s = 3
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    start = time.monotonic()
    result = run_tool("heat-config", env={"HEAT_CONFIG_SIGNAL_TIMEOUT_S": "0.5", "HEAT_CONFIG_SIGNAL_RETRY_S": "1"})
    assert result.returncode == 0
    assert time.monotonic() - start < 15
    assert journal(hc, dep_id(0))["signal"] == "pending"
    assert "time" in journal(hc, dep_id(0))["signal_error"].lower()  # timed out / ReadTimeout
    cloud.cfn.delay_s = 0
    run_tool("heat-config")
    assert journal(hc, dep_id(0))["signal"] == "sent"


def test_hung_hook_times_out_and_later_deployments_run(run_tool, hc, cloud):
    """SPEC §11.3/§12.5: one hung hook blocked everything in the original."""
    write_deployments(hc, [
        deployment(0, config="#!/bin/sh\necho before\nsleep 600\n", options={"timeout": 1},
                   signal=cfn_inputs(cloud)),
        deployment(1, config="#!/bin/sh\necho next\n", signal=cfn_inputs(cloud, "deploy_1")),
    ])
    start = time.monotonic()
    assert run_tool("heat-config").returncode == 0
    assert time.monotonic() - start < 20
    bodies = {s.arn.rsplit("/", 1)[-1]: s.body for s in cloud.cfn.signals}
    assert bodies["deploy_0"]["deploy_status_code"] == 124
    assert bodies["deploy_0"]["deploy_stderr"].splitlines()[-1] == "timed out after 1 seconds"
    assert bodies["deploy_1"]["deploy_stdout"] == "next\n"


def test_executable_hook_timeout_from_environment(run_tool, hc):
    hc.write("hooks/hang", "#!/bin/sh\nsleep 600\n", 0o755)
    write_deployments(hc, [deployment(0, group="hang")])
    assert run_tool("heat-config", env={"HEAT_CONFIG_HOOK_TIMEOUT": "1"}).returncode == 0
    data = json.loads(deployed(hc, dep_id(0) + ".notify.json").read_text())
    assert data["deploy_status_code"] == 124 and data["deploy_stderr"].endswith("timed out after 1 seconds\n")


def test_received_but_never_started_runs_on_the_next_run(run_tool, hc, cloud):
    """State a kill between "received" and "running" leaves: marker written, hook never started → it runs."""
    runs = hc.path("runs")
    dep = deployment(0, config="#!/bin/sh\necho run >> %s\n" % runs, signal=cfn_inputs(cloud))
    write_deployments(hc, [dep])
    deployed(hc, dep["id"] + ".json").write_text(json.dumps(dep))
    deployed(hc, "journal").mkdir()
    deployed(hc, "journal", dep["id"] + ".json").write_text(json.dumps(
        {"id": dep["id"], "name": dep["name"], "group": "script", "step": "received", "signal": "none"}))
    deployed(hc, "journal", dep["id"] + ".open").write_text("")
    assert run_tool("heat-config").returncode == 0
    assert runs.read_text() == "run\n"
    assert len(cloud.cfn.signals) == 1 and cloud.cfn.signals[0].body["deploy_status_code"] == 0
