"""Soak: the running agent under random faults of every source and of the signal endpoint (issue 12).

The real os-collect-config polls all seven collectors every 0.2 s while their loopback servers (and
Keystone) go down, answer 5xx, hang shorter and longer than the client time-out, or send garbage,
on ~30 % of requests (tests/servers/faults.py, seeded by FAULTS_SEED). Meanwhile new script
deployments arrive in Heat's metadata; os-refresh-config runs os-apply-config and heat-config,
whose CFN signals go to the same faulty heat-api-cfn. Then the faults stop and one more
deployment arrives. Asserted:

- the agent never exits and logs no traceback;
- every deployment's hook ran exactly once, and heat-api-cfn accepted exactly one signal for each;
- open fds grow by at most FD_GROWTH and RSS by at most RSS_GROWTH_KIB between the sample taken
  after warm-up and the one at the end (a leak per poll would cross both over hundreds of polls);
- no planted secret or signed-URL signature in the log, nor in a file outside the 0600 state.

``FAULTS_SOAK_SECONDS`` (scripts/fuzz --soak-seconds) sets how long the faults last (default 75).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from tests.faults.agent import Agent, Servers, proc_figures
from tests.faults.conftest import SEED, TRACEBACK, scan_tree_for_secrets, secret_hits, wait_for
from tests.conftest import PLANTED_SECRETS

pytestmark = pytest.mark.faults

SOAK_SECONDS = float(os.environ.get("FAULTS_SOAK_SECONDS") or 75)
FAULT_RATE = 0.3
#: A new deployment arrives this often while the faults last.
DEPLOY_EVERY_S = 8.0
FD_GROWTH = 4
RSS_GROWTH_KIB = 12 * 1024
#: Under faults a poll may take this long on average (hangs, command runs) and the loop still counts as alive.
MIN_POLL_S = 3.0


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers(SEED, FAULT_RATE)
    yield s
    s.stop()


@pytest.fixture
def agent(tmp_path: Path, servers: Servers) -> Iterator[Agent]:
    a = Agent(tmp_path / "vm", servers)
    yield a
    a.stop()


def alive(agent: Agent) -> bool:
    assert agent.proc is not None and agent.proc.poll() is None, \
        "the agent exited (%s):\n%s" % (agent.proc and agent.proc.returncode, agent.log()[-4000:])
    return True


def test_agent_survives_random_faults_and_delivers_every_signal(agent: Agent, servers: Servers, figures):
    agent.add_deployment()
    agent.start()
    # Warm-up without faults: every collector answered once and the first deployment is signalled.
    wait_for(lambda: alive(agent) and agent.signals_by_resource().get("deploy_0"), 60, "the first signal")
    start = proc_figures(agent.proc.pid)
    polls_before = agent.polls()

    servers.faults(True)
    deadline = time.monotonic() + SOAK_SECONDS
    next_deploy = time.monotonic() + DEPLOY_EVERY_S / 2
    while time.monotonic() < deadline:
        alive(agent)
        if time.monotonic() >= next_deploy:
            agent.add_deployment()
            next_deploy += DEPLOY_EVERY_S
        time.sleep(0.1)
    servers.faults(False)
    agent.add_deployment()  # a change: the dispatcher retries the outbox before running it

    expected = set(agent.resources())
    wait_for(lambda: alive(agent) and set(agent.signals_by_resource()) >= expected, 120,
             "a signal for every deployment (got %s)" % agent.signals_by_resource())
    end = proc_figures(agent.proc.pid)
    polls = agent.polls() - polls_before
    runs = agent.hook_runs()
    log = agent.log()
    result: Dict[str, Any] = {
        "seconds_of_faults": SOAK_SECONDS, "polls_under_faults": polls, "collectors": 7,
        "faults_injected": servers.fault_counts(), "faults_by_server": {n: i.counts for n, i in
                                                                        servers.injectors.items()},
        "exits": 0 if agent.proc.poll() is None else 1, "deployments": len(expected),
        "signals_accepted": sum(agent.signals_by_resource().values()),
        "signals_lost": len(expected - set(agent.signals_by_resource())),
        "signals_repeated": sum(n - 1 for n in agent.signals_by_resource().values()),
        "hook_runs": len(runs), "double_runs": len(runs) - len(set(runs)),
        "fd_start": start["fds"], "fd_end": end["fds"],
        "rss_kib_start": start["rss_kib"], "rss_kib_end": end["rss_kib"],
        "fd_bound": FD_GROWTH, "rss_bound_kib": RSS_GROWTH_KIB,
        "tracebacks_in_log": log.count(TRACEBACK),
        "requests_by_server": {n: len(s.requests) for n, s in servers.by_name.items()},
    }
    figures["soak"] = result
    Path(agent.base, "soak-figures.json").write_text(json.dumps(result, indent=2))

    assert result["signals_repeated"] == 0, agent.signals_by_resource()
    assert result["double_runs"] == 0, runs
    assert sorted(set(runs)) == sorted(expected), runs
    assert result["tracebacks_in_log"] == 0, log[log.index(TRACEBACK) - 500:][:4000]
    assert end["fds"] - start["fds"] <= FD_GROWTH, result
    assert end["rss_kib"] - start["rss_kib"] <= RSS_GROWTH_KIB, result
    # A poll waits out its sources' hangs (2 s each) and the command runs (a few s per change): a stalled
    # loop would be far below one poll per MIN_POLL_S.
    assert polls >= SOAK_SECONDS / MIN_POLL_S, "the agent stalled: %d polls in %.0f s" % (polls, SOAK_SECONDS)
    secrets = list(PLANTED_SECRETS) + agent.signal_secrets()
    assert not secret_hits(log, secrets), "secret in the agent's log: %s" % secret_hits(log, secrets)
    leaks = scan_tree_for_secrets(agent.base, secrets, agent.private_paths())
    assert not leaks, leaks
