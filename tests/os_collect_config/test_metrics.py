"""os-collect-config's metrics file (SPEC §12.15), parsed with the real Prometheus parser."""
from __future__ import annotations

import os

from tests.support.prometheus import read_metrics, value
from tests.support.sandbox import PLANTED_SECRETS

P = "os_config_agents_"


def test_metrics_after_every_poll_count_polls_failures_changes_and_command_runs(occ, sandbox, swift):
    metrics = sandbox.path("metrics", "occ.prom")
    swift.fail_with = 503
    url = swift.temp_url("heat", "server1") + "&planted=" + PLANTED_SECRETS[2]  # a secret in the URL
    occ.write_local("x", {"v": 1})
    first = occ("--one-time", "-c", "true", "--metrics-file", str(metrics), "--request-metadata-url", url,
                "request", "local")
    assert first.returncode == 0, first.stderr
    samples, types = read_metrics(metrics)
    assert types[P + "collector_polls"] == "counter" and types[P + "command_runs"] == "counter"
    assert value(samples, P + "collector_polls_total", collector="local") == 1
    assert value(samples, P + "collector_failures_total", collector="local") == 0
    assert value(samples, P + "collector_changes_total", collector="local") == 1
    assert value(samples, P + "collector_polls_total", collector="request") == 1
    assert value(samples, P + "collector_failures_total", collector="request") == 1
    assert (P + "collector_last_success_timestamp_seconds", frozenset({("collector", "request")})) not in samples
    assert value(samples, P + "command_runs_total") == 1 and value(samples, P + "command_failures_total") == 0
    assert oct(metrics.stat().st_mode & 0o777) == "0o644"
    assert (occ.cachedir / ".agent-state" / "os-collect-config.metrics.json").is_file()  # the counts, kept

    # The environment names the file too; the counts go on from the last run's.
    occ.write_local("x", {"v": 2})
    second = occ("--one-time", "-c", "false", "local", env={"OS_CONFIG_AGENTS_METRICS_FILE": str(metrics)})
    assert second.returncode != 0
    samples, _ = read_metrics(metrics)
    assert value(samples, P + "collector_polls_total", collector="local") == 2
    assert value(samples, P + "collector_changes_total", collector="local") == 2
    assert value(samples, P + "command_runs_total") == 2 and value(samples, P + "command_failures_total") == 1
    last = value(samples, P + "collector_last_success_timestamp_seconds", collector="local")
    assert abs(last - os.path.getmtime(metrics)) < 60


def test_no_metrics_file_unless_asked(occ, sandbox):
    occ.write_local("x", {"v": 1})
    assert occ("--one-time", "-c", "true", "local").returncode == 0
    assert not any(name.endswith(".prom") for _, _, names in os.walk(sandbox.root) for name in names)
    assert not (occ.cachedir / ".agent-state" / "os-collect-config.metrics.json").exists()
