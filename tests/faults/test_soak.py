"""Soak: the running agent under random faults of every source, of Keystone and of the signal endpoint (issue 12).

The real os-collect-config polls all seven collectors every 0.05 s for FAULTS_SOAK_SECONDS (150 by
default) while their loopback servers go down, answer 5xx, hang (mostly shorter than the client
time-out, sometimes longer) or send garbage, on a share of requests (tests/servers/faults.py, seeded
by FAULTS_SEED). Those are faults a collector must reject: the source keeps its last good data, so
the metadata does not change and no command runs. What changes is Heat's metadata: a new script
deployment every few seconds (DEPLOY_GAPS_S), which the real os-refresh-config → os-apply-config →
heat-config (the minimal pipeline of tests/faults/agent.py) runs and signals over CFN_SIGNAL to the
same faulty heat-api-cfn. Besides:

- Keystone issues tokens that keystoneauth1 renews after TOKEN_LIFE_S, and revokes them all every
  REVOKE_EVERY_S, so the heat and zaqar collectors re-authenticate many times, some of those
  requests failing;
- every other deployment's signal endpoint is down for SIGNAL_OUTAGE_S, so the dispatcher run's one
  attempt (HEAT_CONFIG_SIGNAL_RETRY_S=0) fails and leaves the signal pending; the running agent's own
  between-polls retry (os_collect_config/loop.py retry_pending_signals: right after that run, then
  2.5 to 5 s later) delivers it before the next deployment's dispatcher run could. Random faults of
  the signal requests leave more signals pending, for the agent's retry or the next dispatcher run.

Then the faults stop, every token is revoked, and one more deployment arrives. Asserted:

- the agent never exits and logs no traceback; it made at least POLLS_PER_S polls per second of soak
  (a poll is one pass of the loop, asking every collector that is not backing off);
- every deployment's hook ran exactly once, and heat-api-cfn accepted exactly one signal for each;
- every command run ran a new deployment's hook: no injected fault was taken for new data (a run may
  bring two deployments, when Heat's faults outlasted the gap between them);
- the agent's signal retry delivered pending signals at least once; Keystone answered many
  re-authentications, some of them faulted, and the last deployment came after a revocation;
- open fds grow by at most FD_GROWTH and RSS by at most RSS_GROWTH_KIB between the sample taken
  after warm-up and the one at the end (a leak per poll would cross both over a thousand polls);
- no planted secret or signed-URL signature in the log, nor in a file outside the 0600 state.

Polls, requests and faults by kind and server are in the figures (pytest's terminal summary).
"""
from __future__ import annotations

import json
import os
import random
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from agent_common.keystone import STALE_DURATION_S
from tests.faults.agent import Agent, CLIENT_TIMEOUT_S, Servers, proc_figures
from tests.faults.conftest import SEED, TRACEBACK, scan_tree_for_secrets, secret_hits
from tests.support.sandbox import PLANTED_SECRETS
from tests.support.wait import wait_for

pytestmark = pytest.mark.faults

SOAK_SECONDS = float(os.environ.get("FAULTS_SOAK_SECONDS") or 150)
INTERVAL_S = 0.05
#: Share of requests faulted; hangs are mostly short (below the client time-out), a long one is rare.
FAULT_RATE = 0.1
FAULT_WEIGHTS = {"hang_long": 0.1}
HANG_SHORT_S, HANG_LONG_S = CLIENT_TIMEOUT_S / 8, CLIENT_TIMEOUT_S + 0.5
#: Keystone is asked far less often than the others (once per token), so more of its requests fail.
KEYSTONE_FAULT_RATE = 0.3
#: A token lives this long before keystoneauth1 renews it (it renews STALE_DURATION_S before expiry).
TOKEN_LIFE_S = 5
REVOKE_EVERY_S = 30.0
#: Seconds before each new deployment, in turn: the one after a signal outage comes after the agent's retries
#: of that signal (right after the command, then 2.5 to 5 s later: loop.SIGNAL_RETRY_FIRST_S with jitter).
DEPLOY_GAPS_S = (4.0, 8.0)
#: Longer than a change takes to reach the dispatcher's attempt (about 1 s), and over before the loop's second
#: retry (at the latest 5 s after the first, itself right after the command) and the next deployment.
SIGNAL_OUTAGE_S = (2.0, 3.5)
#: One attempt per dispatcher run: with any budget under BACKOFF_INITIAL_S (2 s) a run would only wait.
SIGNAL_RETRY_S = 0.0
#: The floor of the poll rate: 1,000 polls in the default 150 s.
POLLS_PER_S = 1000 / 150
FD_GROWTH = 4
RSS_GROWTH_KIB = 12 * 1024

DELIVERED_BY_LOOP = r"Pending heat-config signals delivered\."
COMMAND_RUN = r"Executing os-refresh-config with"


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers(SEED, FAULT_RATE, weights=FAULT_WEIGHTS, hang_short_s=HANG_SHORT_S, hang_long_s=HANG_LONG_S)
    s.injectors["keystone"].rate = KEYSTONE_FAULT_RATE
    s.cloud.keystone.token_ttl = STALE_DURATION_S + TOKEN_LIFE_S
    yield s
    s.stop()


@pytest.fixture
def agent(tmp_path: Path, servers: Servers) -> Iterator[Agent]:
    a = Agent(tmp_path / "vm", servers, interval=INTERVAL_S, minimal=True, signal_retry_s=SIGNAL_RETRY_S)
    yield a
    a.stop()


def idle_command_runs(log: str) -> int:
    """Command runs that ran no hook (up to the loop's next "Sleeping" line): changes that were no deployment."""
    runs = re.split(r"^.*%s.*$" % COMMAND_RUN, log, flags=re.MULTILINE)[1:]
    return sum(1 for run in runs if "/hooks/script <" not in run.split("Sleeping", 1)[0])


def alive(agent: Agent) -> bool:
    assert agent.proc is not None and agent.proc.poll() is None, \
        "the agent exited (%s):\n%s" % (agent.proc and agent.proc.returncode, agent.log()[-4000:])
    return True


class Soak:
    """The faults' timeline: deployments, signal outages and token revocations, on a seeded schedule."""

    def __init__(self, agent: Agent, servers: Servers) -> None:
        self.agent, self.servers = agent, servers
        self.random = random.Random(SEED)
        self.started = time.monotonic()
        self.next_deploy = self.started + DEPLOY_GAPS_S[0]
        self.next_revoke = self.started + REVOKE_EVERY_S
        self.signal_outages = 0
        self.revocations = 0

    def step(self, now: float) -> None:
        if now >= self.next_deploy:
            outage = len(self.agent.deployments) % 2 == 1
            if outage:
                self.servers.injectors["cfn"].fail_for(self.random.uniform(*SIGNAL_OUTAGE_S),
                                                       r"/resources/%s$" % self.agent.next_resource)
                self.signal_outages += 1
            self.agent.add_deployment()
            self.next_deploy += DEPLOY_GAPS_S[outage]
        if now >= self.next_revoke:
            self.servers.cloud.keystone.expire_all_tokens()
            self.revocations += 1
            self.next_revoke += REVOKE_EVERY_S

    def run(self, seconds: float) -> None:
        deadline = self.started + seconds
        while time.monotonic() < deadline:
            alive(self.agent)
            self.step(time.monotonic())
            time.sleep(0.05)


def test_agent_survives_random_faults_and_delivers_every_signal(agent: Agent, servers: Servers, figures):
    keystone = servers.cloud.keystone
    agent.add_deployment()
    agent.start()
    # Warm-up without faults: every collector answered once and the first deployment is signalled.
    wait_for(lambda: alive(agent) and agent.signals_by_resource().get("deploy_0"), 60, "the first signal",
             interval=0.02)
    start = proc_figures(agent.proc.pid)
    before = {"polls": agent.polls(), "commands": agent.log_count(COMMAND_RUN), "auths": keystone.auth_count,
              "requests": servers.request_counts(), "log_chars": len(agent.log())}

    servers.faults(True)
    soak = Soak(agent, servers)
    soak.run(SOAK_SECONDS)
    servers.faults(False)
    polls = agent.polls() - before["polls"]
    requests = {n: c - before["requests"][n] for n, c in servers.request_counts().items()}
    # Recovery: every token revoked, then a change only Heat (through a new token) can bring.
    keystone.expire_all_tokens()
    auths_at_end = keystone.auth_count
    agent.add_deployment()  # the dispatcher also retries the outbox before running it

    expected = set(agent.resources())
    wait_for(lambda: alive(agent) and set(agent.signals_by_resource()) >= expected, 120,
             "a signal for every deployment (got %s)" % agent.signals_by_resource(), interval=0.02)
    end = proc_figures(agent.proc.pid)
    runs = agent.hook_runs()
    log = agent.log()
    signals = agent.signals_by_resource()
    result: Dict[str, Any] = {
        "seconds_of_faults": SOAK_SECONDS, "interval_s": INTERVAL_S, "polls_under_faults": polls,
        "polls_per_s": round(polls / SOAK_SECONDS, 2), "collectors": 7,
        "requests_under_faults": requests,
        "faults_injected": servers.fault_counts(), "faults_by_server": {n: i.counts for n, i in
                                                                        servers.injectors.items()},
        "exits": 0 if agent.proc.poll() is None else 1, "deployments": len(expected),
        "command_runs": agent.log_count(COMMAND_RUN) - before["commands"],
        "command_runs_without_new_deployment": idle_command_runs(log[before["log_chars"]:]),
        "signal_outages": soak.signal_outages, "signals_delivered_by_agent_retry_runs":
            agent.log_count(DELIVERED_BY_LOOP),
        "keystone_auths": keystone.auth_count - before["auths"], "keystone_revocations": soak.revocations + 1,
        "keystone_refused": keystone.auth_failures,
        "signals_accepted": sum(signals.values()), "signals_lost": len(expected - set(signals)),
        "signals_repeated": sum(n - 1 for n in signals.values()),
        "hook_runs": len(runs), "double_runs": len(runs) - len(set(runs)),
        "fd_start": start["fds"], "fd_end": end["fds"],
        "rss_kib_start": start["rss_kib"], "rss_kib_end": end["rss_kib"],
        "fd_bound": FD_GROWTH, "rss_bound_kib": RSS_GROWTH_KIB,
        "tracebacks_in_log": log.count(TRACEBACK),
    }
    figures["soak"] = result
    Path(agent.base, "soak-figures.json").write_text(json.dumps(result, indent=2))

    assert result["signals_repeated"] == 0, signals
    assert result["double_runs"] == 0, runs
    assert sorted(set(runs)) == sorted(expected), runs
    assert result["tracebacks_in_log"] == 0, log[log.index(TRACEBACK) - 500:][:4000]
    assert end["fds"] - start["fds"] <= FD_GROWTH, result
    assert end["rss_kib"] - start["rss_kib"] <= RSS_GROWTH_KIB, result
    assert polls >= POLLS_PER_S * SOAK_SECONDS, "the agent stalled: %d polls in %.0f s" % (polls, SOAK_SECONDS)
    assert result["command_runs_without_new_deployment"] == 0, result
    assert result["command_runs"] <= len(expected) - 1, result
    assert result["signals_delivered_by_agent_retry_runs"] > 0, result
    assert result["keystone_auths"] >= SOAK_SECONDS / TOKEN_LIFE_S, result
    assert sum(n for kind, n in servers.injectors["keystone"].counts.items() if kind != "hang_short") > 0, result
    assert keystone.auth_count > auths_at_end and keystone.auth_failures == 0, result
    secrets = list(PLANTED_SECRETS) + agent.signal_secrets()
    assert not secret_hits(log, secrets), "secret in the agent's log: %s" % secret_hits(log, secrets)
    leaks = scan_tree_for_secrets(agent.base, secrets, agent.private_paths())
    assert not leaks, leaks
