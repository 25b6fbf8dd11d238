"""heat-config's metrics file (SPEC §12.15), parsed with the real Prometheus parser."""
from __future__ import annotations

from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import deployed, write_deployments
from tests.support.prometheus import read_metrics, value
from tests.support.sandbox import PLANTED_SECRETS

P = "os_config_agents_"


def labels(n: int, name: str) -> dict:
    return {"id": dep_id(n), "name": name, "group": "script"}


def test_metrics_after_every_run_by_state_duration_status_and_signals(run_tool, hc, cloud):
    metrics = hc.path("metrics", "agent.prom")
    password = [{"name": "deploy_password", "type": "String", "value": PLANTED_SECRETS[0]}]
    write_deployments(hc, [
        deployment(0, config="#!/bin/sh\necho ok\n", signal=cfn_inputs(cloud)),
        deployment(1, config="#!/bin/sh\necho \"no $deploy_password\" >&2\nexit 3\n", signal=password),
        deployment(2, group="nosuch"),
    ])
    result = run_tool("heat-config", ["--metrics-file", str(metrics)])
    assert result.returncode == 0, result.stderr
    samples, types = read_metrics(metrics)
    assert types[P + "deployments"] == "gauge" and types[P + "signal_attempts"] == "counter"
    assert value(samples, P + "deployments", state="succeeded") == 1
    assert value(samples, P + "deployments", state="failed") == 2
    assert value(samples, P + "deployments", state="pending") == 0
    assert value(samples, P + "deployment_status_code", **labels(0, "00_deployment")) == 0
    assert value(samples, P + "deployment_status_code", **labels(1, "01_deployment")) == 3
    assert value(samples, P + "deployment_duration_seconds", **labels(0, "00_deployment")) >= 0
    assert value(samples, P + "signals_pending") == 0
    assert value(samples, P + "signal_attempts_total", result="sent") == 1
    assert value(samples, P + "signal_attempts_total", result="refused") == 0

    # A signal Heat refuses for good, on a later run named by the environment: the counter goes on.
    cloud.cfn.fail_with = 403
    write_deployments(hc, [deployment(3, signal=cfn_inputs(cloud, "deploy_3"))])
    result = run_tool("heat-config", env={"OS_CONFIG_AGENTS_METRICS_FILE": str(metrics)})
    assert result.returncode == 0, result.stderr
    samples, _ = read_metrics(metrics)
    assert value(samples, P + "signal_attempts_total", result="sent") == 1
    assert value(samples, P + "signal_attempts_total", result="refused") == 1
    assert value(samples, P + "deployments", state="succeeded") == 1  # only current deployments count
    assert (P + "deployment_status_code", frozenset(labels(0, "00_deployment").items())) not in samples


def test_one_file_for_the_agent_and_the_dispatcher_keeps_both(run_tool, hc, sandbox):
    """OS_CONFIG_AGENTS_METRICS_FILE set for the whole agent reaches heat-config too: each tool replaces
    only its own families."""
    metrics = hc.path("agent.prom")
    local = sandbox.path("lib", "local-data")
    local.mkdir(parents=True)
    (local / "x").write_text('{"v": 1}')
    env = {"OS_CONFIG_AGENTS_METRICS_FILE": str(metrics)}
    write_deployments(hc, [deployment(0)])
    occ = run_tool("os-collect-config", ["--one-time", "--cachedir", str(sandbox.path("cache")),
                                         "--backup-cachedir", str(sandbox.path("backup")),
                                         "--local-path", str(local), "-c", "heat-config", "local"], env=env)
    assert occ.returncode == 0, occ.stderr
    samples, _ = read_metrics(metrics)
    assert value(samples, P + "command_runs_total") == 1
    assert value(samples, P + "deployments", state="succeeded") == 1
    assert run_tool("heat-config", env=env).returncode == 0
    samples, _ = read_metrics(metrics)
    assert value(samples, P + "command_runs_total") == 1 and value(samples, P + "deployments", state="succeeded") == 1


def test_a_metrics_file_that_cannot_be_written_is_a_warning_and_the_run_goes_on(run_tool, hc):
    """The metrics are for the operator: a bad path costs a log line, never the deployments or their exit status."""
    metrics = hc.path("metrics-dir.prom")
    metrics.mkdir()  # a directory where the file should be: reading it back fails with EISDIR
    write_deployments(hc, [deployment(0)])
    result = run_tool("heat-config", ["--metrics-file", str(metrics)])
    assert result.returncode == 0, result.stderr
    assert "Cannot write the metrics file %s: Is a directory" % metrics in result.stderr
    assert deployed(hc, "%s.json" % dep_id(0)).exists()  # the deployment ran all the same


def test_damaged_signal_totals_start_again_from_zero(run_tool, hc, cloud):
    metrics = hc.path("agent.prom")
    totals = deployed(hc, "journal", ".signal-attempts")
    totals.parent.mkdir(parents=True, exist_ok=True)
    totals.write_text('{"sent": "lots", "pending": [')  # half-written by some other hand
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    result = run_tool("heat-config", ["--metrics-file", str(metrics)])
    assert result.returncode == 0, result.stderr
    samples, _ = read_metrics(metrics)
    assert value(samples, P + "signal_attempts_total", result="sent") == 1
    assert value(samples, P + "signal_attempts_total", result="pending") == 0
