"""A small fleet of real agents against one loopback server: no herd after the server stalls (issue 16).

A server that stalls (a heat-api paused, a proxy queueing connections) and then answers
every waiting request at once lines its clients up: without care they would then poll
in lock-step for ever, the whole fleet in the same instant of every polling interval.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from tests.servers.base import LoopbackServer, Response
from tests.support.wait import wait_for

AGENTS = 8
INTERVAL_S = 2.0
#: How long the stalled server holds the last agent to arrive.
STALL_S = 1.5


class StallingServer(LoopbackServer):
    """``GET /meta/<agent>``: the same small document for everyone; ``gate`` closed holds every answer."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.arrivals: Dict[int, List[float]] = {}
        self.held = 0
        #: When set, every request is answered 503 with this Retry-After (seconds).
        self.busy_for: Optional[int] = None
        #: When set, every request is answered 503 at once, with no Retry-After: a service down, failing fast.
        self.down = False
        #: Seconds every answer takes: a slow server.
        self.hold_s = 0.0
        self._lock = threading.Lock()
        self.add_route("GET", r"/meta/(\d+)", self._meta)

    def _meta(self, request, match) -> Response:
        agent = int(match.group(1))
        with self._lock:
            self.arrivals.setdefault(agent, []).append(time.monotonic())
            held = not self.gate.is_set()
            self.held += held
        self.gate.wait(30)
        time.sleep(self.hold_s)
        if self.down:
            return Response(503, b"down")
        if self.busy_for is not None:
            return Response(503, b"busy", headers={"Retry-After": str(self.busy_for)})
        return Response(200, {"v": 1})


def start_agent(sandbox, server: StallingServer, index: int, interval: float = INTERVAL_S,
                *extra: str, min_interval: Optional[float] = None) -> subprocess.Popen:
    """One agent polling ``server`` as agent ``index``: every ``interval`` s, also after a change unless
    ``min_interval`` is given."""
    base = sandbox.path("agent%d" % index)
    first = interval if min_interval is None else min_interval
    args = ["--cachedir", str(base / "cache"), "--backup-cachedir", str(base / "backup"), *extra,
            "--min-polling-interval", str(first), "--polling-interval", str(interval),
            "--command", "true", "--request-metadata-url", "%s/meta/%d" % (server.url, index), "request"]
    base.mkdir(parents=True)
    return subprocess.Popen([str(Path(sys.executable).parent / "os-collect-config")] + args, env=sandbox.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(sandbox.root))


@contextmanager
def one_agent(sandbox, server: StallingServer, interval: float, *extra: str,
              min_interval: Optional[float] = None) -> Iterator[Path]:
    """Agent 0 polling ``server`` while the block runs, logging to the path it yields; both stopped after."""
    log = sandbox.path("agent0", "occ.log")
    agent = start_agent(sandbox, server, 0, interval, "--log-file", str(log), *extra, min_interval=min_interval)
    try:
        yield log
    finally:
        agent.terminate()
        agent.communicate(timeout=10)
        server.stop()


def test_agents_released_together_by_a_stalled_server_spread_their_next_polls(sandbox):
    server = StallingServer().start()
    agents = [start_agent(sandbox, server, i) for i in range(AGENTS)]
    try:
        wait_for(lambda: all(len(server.arrivals.get(i, [])) >= 2 for i in range(AGENTS)), timeout=60,
                 what="two polls from every agent")
        server.gate.clear()  # the server stalls: each agent's next poll waits for an answer
        wait_for(lambda: server.held >= AGENTS and all(a.poll() is None for a in agents), timeout=30,
                 what="every agent waiting on the stalled server")
        time.sleep(STALL_S)  # the stall, for the last agent to arrive too
        released = time.monotonic()
        server.gate.set()  # ... and answers everybody at the same instant
        after = lambda i: [t for t in server.arrivals.get(i, []) if t > released]  # noqa: E731
        wait_for(lambda: all(after(i) for i in range(AGENTS)), timeout=30, what="a poll from every agent")
        first = sorted(after(i)[0] - released for i in range(AGENTS))
    finally:
        for agent in agents:
            agent.terminate()
        for agent in agents:
            agent.communicate(timeout=10)
        server.stop()
    # In lock-step, all eight would come back within a few tens of milliseconds of release + 2 s.
    # Spread over the interval, eight uniform phases fall within 0.5 s of each other with p < 0.001.
    assert all(0 <= t <= INTERVAL_S + 1.0 for t in first), first
    assert first[-1] - first[0] >= 0.5, first


@pytest.mark.parametrize("hold_s", [0.3, 1.5])
def test_polls_slowed_down_by_the_server_keep_the_agents_phase(sandbox, hold_s):
    """The next poll starts one interval after the last one started, however long its answer took: a fleet
    released at once by a stalled server gets back the phases it had, at no cost in polls (a random redraw
    would add a poll from every agent within one interval, as after an outage in bench/FLEET.md), and the
    agents a busy server answers late do not drift behind the others, a drift of a fraction of a second per
    poll that gathered 200 agents into bursts (bench/FLEET.md, N = 200)."""
    server = StallingServer().start()
    server.hold_s = hold_s
    interval = 3.0
    with one_agent(sandbox, server, interval, "--debug") as log:
        # The first two polls: the first one after start, then the one after the random sleep that
        # draws this agent's phase. The next ones keep it.
        wait_for(lambda: len(server.arrivals.get(0, [])) >= 5, timeout=60, what="five slow polls")
    arrivals = server.arrivals[0]
    gaps = [b - a for a, b in zip(arrivals[1:], arrivals[2:5])]
    # Counted from the answer the gaps would be interval + hold_s; drawn at random, anywhere in
    # (hold_s, interval + hold_s]: three in a row within [-0.1, +0.2] s of the interval by chance, p < 0.001.
    assert all(interval - 0.1 <= gap <= interval + 0.2 for gap in gaps), gaps
    assert "Keeping this agent's phase after a %.1f" % hold_s in log.read_text()


def test_a_503_with_retry_after_holds_the_next_poll_of_that_source_back(sandbox):
    server = StallingServer().start()
    server.busy_for = 3
    server.hold_s = 2.0  # the 503 takes 2 s to come: the wait counts from the answer (the jitter adds at most 1 s)
    url = server.url
    with one_agent(sandbox, server, 0.2) as log:
        wait_for(lambda: len(server.arrivals.get(0, [])) >= 2, timeout=30, what="the poll after the 503")
        polls = log.read_text().count("Sleeping")
    first, second = server.arrivals[0][:2]
    assert second - first >= 2.0 + 3.0  # the answer, then Retry-After: 3, though the agent polls every 0.2 s ...
    assert polls >= 10  # ... and went on polling its other sources meanwhile
    assert "Source [request] Unavailable. GET %s/meta/0 returned HTTP 503" % url in log.read_text()


def test_the_quick_polls_after_a_change_end_when_the_server_is_slow(sandbox):
    """A fleet-wide change made every agent poll five times in half a minute; where each poll costs the server
    seconds (cfn at N = 20 in bench/FLEET.md) that slowed the server down until polls timed out. The quick polls
    after a change now wait ten times what the last answer took: 10 x 0.4 s here, not the 0.1 s minimum."""
    server = StallingServer().start()
    server.hold_s = 0.4
    with one_agent(sandbox, server, 30, "--debug", min_interval=0.1) as log:
        wait_for(lambda: len(server.arrivals.get(0, [])) >= 2, timeout=30, what="the poll after the first run")
    first, second = server.arrivals[0][:2]
    assert second - first >= 0.4 + 10 * 0.4, server.arrivals[0]
    text = log.read_text()
    assert "Executing true" in text.split("Sleeping")[0]  # the first poll was a change: the ramp began
    took, floor = (float(word.rstrip(".")) for word in
                   text.split("The last collection took ")[1].split("\n")[0].split() if word[0].isdigit())
    assert 0.4 <= took < 3 and abs(floor - 10 * took) <= 0.1 and "Sleeping %.2f seconds" % floor in text, text


def test_a_source_that_comes_back_keeps_the_agents_phase(sandbox):
    """A service failing fast (heat-api stopped behind its proxy) was tried at every poll, at the agent's own phase:
    the recovery keeps that phase. Redrawing it, as every agent of the fleet would at once, adds a poll from each
    within one interval: twice the steady rate at the end of that interval (the herd of bench/FLEET.md)."""
    server = StallingServer().start()
    server.down = True
    url = server.url
    with one_agent(sandbox, server, INTERVAL_S, "--debug") as log:
        wait_for(lambda: len(server.arrivals.get(0, [])) >= 2, timeout=30, what="two failing polls")
        server.down = False
        after = wait_for(lambda: _until(_lines_from(log, "Source [request] available again."), "Sleeping"),
                         what="the recovery and the sleep after it")
    assert "Source [request] Unavailable. GET %s/meta/0 returned HTTP 503" % url in log.read_text()
    decided = "\n".join(after)
    assert "Keeping this agent's phase" in decided and "Spreading polls" not in decided, decided
    assert INTERVAL_S - 0.5 < float(after[-1].split("Sleeping ")[1].split()[0]) <= INTERVAL_S, decided


def _until(lines: List[str], needle: str) -> Optional[List[str]]:
    """``lines`` up to the first one containing ``needle``, included (None while there is none)."""
    end = next((i for i, line in enumerate(lines) if needle in line), None)
    return None if end is None else lines[:end + 1]


def _lines_from(log: Path, needle: str) -> List[str]:
    """The log's lines from the first one containing ``needle`` on (none while it is absent)."""
    lines = log.read_text().splitlines() if log.exists() else []
    start = next((i for i, line in enumerate(lines) if needle in line), None)
    return [] if start is None else lines[start:]
