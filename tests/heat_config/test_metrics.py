"""heat-config's metrics file (SPEC §12.15), parsed with the real Prometheus parser."""
from __future__ import annotations

from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import write_deployments
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
