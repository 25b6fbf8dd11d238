"""The running agent delivers heat-config signals left pending, between polls (SPEC §12.4).

A dispatcher run whose signal endpoint was down leaves the signal in the outbox.
Nothing in the metadata changes afterwards, so only the agent's own between-polls
retry can get the result to Heat before the stack times out.
"""
import json
import subprocess
import time

from tests.conftest import BIN_DIR, assert_no_planted_secret
from tests.heat_config.conftest import cfn_inputs, cloud, dep_id, deployment, hc, journal, write_deployments  # noqa: F401


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_pending_signal_is_delivered_by_the_running_agent(run_tool, hc, cloud, tmp_path):
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    cloud.cfn.fail_with = 503
    assert run_tool("heat-config", env={"HEAT_CONFIG_SIGNAL_RETRY_S": "0"}).returncode == 0
    assert journal(hc, dep_id(0))["signal"] == "pending"
    cloud.cfn.fail_with = None
    cloud.cfn.clear()

    local = hc.path("local-data")
    local.mkdir(mode=0o700)
    (local / "settings.json").write_text(json.dumps({"a": 1}))
    log = tmp_path / "occ.log"
    with open(log, "w") as out:
        agent = subprocess.Popen(
            [str(BIN_DIR / "os-collect-config"), "--command", "true", "--cachedir", str(hc.path("cache")),
             "--backup-cachedir", str(hc.path("backup")), "--min-polling-interval", "1", "--polling-interval", "2",
             "--local-path", str(local), "local"],
            env=hc.env, stdout=out, stderr=subprocess.STDOUT)
        try:
            delivered = wait_for(lambda: journal(hc, dep_id(0))["signal"] == "sent", 30)
            time.sleep(3)  # a few more polls: nothing is sent twice
        finally:
            agent.terminate()
            agent.wait(timeout=10)
    text = log.read_text()
    assert delivered, text
    assert len(cloud.cfn.signals) == 1
    assert cloud.cfn.signals[0].body["deploy_status_code"] == 0
    assert "Pending heat-config signals delivered." in text
    assert_no_planted_secret(text, "the agent's log")

