"""The running agent delivers heat-config signals left pending, between polls (SPEC §12.4).

A dispatcher run whose signal endpoint was down leaves the signal in the outbox.
Nothing in the metadata changes afterwards, so only the agent's own between-polls
retry can get the result to Heat before the stack times out.
"""
import re
import time
from typing import List

from os_collect_config.loop import SIGNAL_RETRY_FIRST_S
from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import journal, write_deployments
from tests.support.sandbox import assert_no_planted_secret
from tests.support.wait import wait_for


def signal_posts(servers) -> int:
    return sum(1 for r in list(servers.cfn.requests) if r.method == "POST")


def attempt_times(servers, agent, after: int, count: int, timeout: float) -> List[float]:
    """When each of the next ``count`` signal POSTs (beyond the first ``after``) reached the server.

    Fails at once, with the agent's log, if the agent exits meanwhile."""
    times: List[float] = []
    deadline = time.monotonic() + timeout
    while len(times) < count:
        assert agent.proc.poll() is None, "the agent exited (%s):\n%s" % (
            agent.proc.returncode, "\n".join(agent.lines()[-30:]))
        assert time.monotonic() < deadline, "only %d signal attempts within %ss" % (len(times), timeout)
        seen = signal_posts(servers) - after
        times.extend([time.monotonic()] * (seen - len(times)))
        time.sleep(0.02)
    return times[:count]


def test_pending_signal_is_delivered_by_the_running_agent(run_tool, hc, cloud, occ, running):
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    cloud.cfn.fail_with = 503
    assert run_tool("heat-config", env={"HEAT_CONFIG_SIGNAL_RETRY_S": "0"}).returncode == 0
    assert journal(hc, dep_id(0))["signal"] == "pending"
    cloud.cfn.fail_with = None
    cloud.cfn.clear()

    occ.write_local("settings.json", {"a": 1})
    agent = running(occ, "--command", "true", "--min-polling-interval", "1", "--polling-interval", "2", "local")
    wait_for(lambda: journal(hc, dep_id(0))["signal"] == "sent", 30, "the pending signal to be sent")
    delivered_at = agent.count("Sleeping")
    # A few more polls, each of which would retry a signal still (wrongly) pending: nothing is sent twice.
    wait_for(lambda: agent.count("Sleeping") >= delivered_at + 3, 20, "three more polls")
    assert len(cloud.cfn.signals) == 1
    assert signal_posts(cloud) == 1
    assert cloud.cfn.signals[0].body["deploy_status_code"] == 0
    assert agent.count("Pending heat-config signals delivered.") == 1
    assert "Traceback" not in agent.stop()
    assert_no_planted_secret("\n".join(agent.lines()), "the agent's log")


def test_failed_signal_retries_back_off_and_the_agent_keeps_running(run_tool, hc, cloud, occ, running):
    """Issue 12 defect 1: the first failed retry killed the agent (SourceHealth.failed() without a reason)."""
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    cloud.cfn.fail_with = 503
    hc.env["HEAT_CONFIG_SIGNAL_RETRY_S"] = "1"
    assert run_tool("heat-config").returncode == 0
    assert journal(hc, dep_id(0))["signal"] == "pending"
    before = signal_posts(cloud)

    occ.write_local("settings.json", {"a": 1})
    agent = running(occ, "--polling-interval", "1", "--command", "true", "local")
    times = attempt_times(cloud, agent, before, 3, timeout=60)
    wait_for(lambda: agent.count("heat-config signals still pending") >= 3, 20, "the third failure logged")
    assert agent.proc.poll() is None, "\n".join(agent.lines()[-30:])
    failures = [line for line in agent.lines() if "heat-config signals still pending" in line]
    assert all("not yet accepted by their endpoints" in line for line in failures)
    delays = [float(re.search(r"next try in ([0-9.]+) s", line).group(1)) for line in failures]
    # Full-jitter backoff from the first retry delay: each delay drawn from [0, ceiling], the ceiling doubling.
    ceilings = [SIGNAL_RETRY_FIRST_S * 2 ** i for i in range(3)]
    assert all(0 <= d <= top + 0.05 for d, top in zip(delays, ceilings)), (delays, ceilings)
    # The attempts are spaced by those delays, not by the 1 s polls. Each delay counts from the start of
    # its attempt's delivery run, whose start-up time (a loaded machine stretches it) shifts when its POST
    # arrives: hence the margin, which an agent retrying at every poll (~2 s for two gaps) cannot meet.
    span = times[2] - times[0]
    assert span >= 0.6 * (delays[0] + delays[1]), "3 attempts in %.1f s despite delays %s" % (span, delays[:2])

    cloud.cfn.fail_with = None
    wait_for(lambda: journal(hc, dep_id(0))["signal"] == "sent", 60, "the signal sent once the endpoint answers")
    wait_for(lambda: agent.count("Pending heat-config signals delivered."), 10, "the delivery logged")
    delivered_at = agent.count("Sleeping")
    wait_for(lambda: agent.count("Sleeping") >= delivered_at + 3, 20, "three more polls")
    assert len(cloud.cfn.signals) == 1
    assert cloud.cfn.signals[0].body["deploy_status_code"] == 0
    assert agent.proc.poll() is None
    err = agent.stop()
    assert "Traceback" not in err, err
    assert_no_planted_secret("\n".join(agent.lines()) + err, "the agent's log")
