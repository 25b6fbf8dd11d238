"""Continuous mode: adaptive polling, per-source backoff, SIGHUP and config-change re-exec (SPEC §2.14, §2.17).

Each test runs the real agent as a process with a log file and watches that log,
the command's records and what the loopback server received.
"""
from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import List, Optional

from tests.support.wait import wait_for

#: The lines that end a poll: it found nothing new, ran the command, or failed as a whole.
POLL_END = re.compile(r"No changes detected\.|Executing |Poll failed: ")


def test_adaptive_polling_min_after_change_then_back_to_max(occ, sandbox, running):
    """The minimum is 25 times what reading a local file takes: the ramp is never slowed for the server's sake."""
    occ.write_local("x", {"v": 1})
    seen = sandbox.path("seen")
    r = running(occ, "--min-polling-interval", "0.25", "--polling-interval", "1",
                "-c", "echo run >> %s" % seen, "local")
    wait_for(lambda: len(r.sleeps()) >= 5, what="five sleeps")
    sleeps = r.sleeps()[:5]
    # The first full-length sleep is drawn from (0, max]: agents started together get phases of their own.
    # The next ones keep it: each is the interval less the time the poll took.
    assert sleeps[:2] == [0.25, 0.5] and 0 <= sleeps[2] <= 1 and all(0.75 < s <= 1 for s in sleeps[3:]), sleeps
    assert r.count("Spreading polls: this sleep is %.2f of 1.00 seconds." % sleeps[2]) == 1
    occ.write_local("x", {"v": 2})
    wait_for(lambda: len(seen.read_text().splitlines()) == 2, what="second run")
    wait_for(lambda: len(r.sleeps("Executing", 1)) >= 3, what="sleeps after the change")
    after_change = r.sleeps("Executing", 1)[:3]
    assert after_change[:2] == [0.25, 0.5] and 0.75 < after_change[2] <= 1, after_change
    assert r.count("The last collection took") == 0


def test_min_larger_than_max_is_warned_and_capped(occ, running):
    occ.write_local("x", {"v": 1})
    r = running(occ, "--min-polling-interval", "5", "--polling-interval", "0.2", "-c", "true", "local")
    wait_for(lambda: len(r.sleeps()) >= 2, what="sleeps")
    sleeps = r.sleeps()[:2]
    assert 0 <= sleeps[0] <= 0.2 and 0.1 < sleeps[1] <= 0.2, sleeps  # the first one spreads the polls' phase
    assert r.count("min_polling_interval 5.00 is larger than polling_interval 0.20") == 1


def test_failing_source_backs_off_keeps_last_good_and_recovers(occ, sandbox, swift, running):
    swift.put_object("heat", "server1", {"a": 1})
    url = swift.temp_url("heat", "server1")
    seen = sandbox.path("seen")
    occ.write_local("l", {"n": 1})
    r = running(occ, "--min-polling-interval", "0.1", "--polling-interval", "1.6",
                "-c", "printenv OS_CONFIG_FILES >> %s" % seen, "--request-metadata-url", url, "request", "local")
    wait_for(lambda: seen.exists(), what="first run")
    swift.fail_with = 503
    swift.clear()
    wait_for(lambda: r.count("Source [request] Unavailable.") >= 3, timeout=30, what="three failures")
    gets = len(swift.received("GET"))
    assert gets <= r.count("Source [request] Unavailable.") + 1
    # Every poll that met the failure still completed on the last good data. (That the source is held
    # back between its tries while the loop goes on is proven where a Retry-After makes it certain,
    # tests/os_collect_config/test_fleet_herd.py: here full jitter may draw a delay shorter than a poll.)
    outcomes = wait_for(lambda: _ends_of_polls_after(r.lines(), "Source [request] Unavailable."),
                        what="the end of each failing poll")
    assert set(outcomes) == {"No changes detected."}, outcomes
    delays = [float(m.group(1)) for m in (re.search(r"next try in ([0-9.]+) s", l) for l in r.lines()) if m]
    assert all(d <= 1.6 for d in delays)
    health = occ.cachedir / ".agent-state" / "os-collect-config.health.json"
    # kept for a restart (SPEC §12.1); written just after the log line, so waited for
    wait_for(lambda: json.loads(health.read_text())["request"]["failures"] >= 3, what="three failures saved")
    assert "HTTP 503" in json.loads(health.read_text())["request"]["last_error"]
    assert oct(health.stat().st_mode & 0o777) == "0o600"
    # Another source changes meanwhile: the command runs with the last good request files.
    occ.write_local("l", {"n": 2})
    c = occ.cachedir
    wait_for(lambda: len(seen.read_text().splitlines()) == 2, what="run during the outage")
    assert seen.read_text().splitlines()[-1] == "%s/request.json:%s/l.json" % (c, c)
    # Recovery on the next try, and tries are never further apart than one polling interval (the
    # delays above): counted in requests, not in wall time, which a loaded machine stretches.
    gets = len(swift.received("GET"))
    swift.fail_with = None
    swift.put_object("heat", "server1", {"a": 2})
    wait_for(lambda: r.count("Source [request] available again.") == 1, timeout=10, what="recovery")
    assert len(swift.received("GET")) - gets <= 2  # the recovering GET, plus at most one already in flight
    wait_for(lambda: len(seen.read_text().splitlines()) == 3, what="run after recovery")
    assert occ.cache_json("request.json") == {"a": 2}
    assert json.loads(health.read_text()) == {}


def _ends_of_polls_after(lines: List[str], needle: str) -> Optional[List[str]]:
    """How each poll that logged ``needle`` ended (its first line saying so), or None while one is under way."""
    ends = []
    for i, line in enumerate(lines):
        if needle in line:
            end = next((m.group(0) for m in map(POLL_END.search, lines[i + 1:]) if m), None)
            if end is None:
                return None
            ends.append(end)
    return ends


def _sighup_disposition_of_command(seen: Path) -> str:
    return seen.read_text().split()[0] if seen.exists() else ""


def test_sighup_reexecs_between_polls_and_command_keeps_default_sighup(occ, sandbox, running):
    occ.write_local("x", {"v": 1})
    seen = sandbox.path("seen")
    # SigIgn is a hex mask; bit 0 is SIGHUP.  The command sleeps so the HUP lands while it runs.
    cmd = "grep SigIgn /proc/self/status | cut -f2 >> %s; sleep 1" % seen
    r = running(occ, "--min-polling-interval", "0.2", "--polling-interval", "0.2", "-c", cmd, "local")
    wait_for(lambda: seen.exists(), what="command start")
    r.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: r.count("Signal received. Re-executing") == 1, what="re-exec")
    wait_for(lambda: r.count("Starting (pid %d)" % r.proc.pid) == 2, what="second start")
    mask = int(seen.read_text().split()[0], 16)
    assert not mask & 1, "the command inherited an ignored SIGHUP"
    # The command was not interrupted: its run completed and was committed before the re-exec.
    assert occ.cachedir.joinpath("x.json.last").exists()
    r.proc.send_signal(signal.SIGHUP)  # HUP works again after the first command, unlike the original
    wait_for(lambda: r.count("Signal received. Re-executing") == 2, what="second re-exec")


def test_sigterm_outside_a_write_ends_the_agent_at_once_of_the_signal(occ, running):
    """The handler that holds SIGTERM for a write in flight (agent_common.atomic) must not hold it otherwise:
    an idle agent dies of it, as the original does, and systemd sees the same end."""
    occ.write_local("a.json", {"a": 1})
    r = running(occ, "--polling-interval", "600", "--command", "true", "local")
    wait_for(lambda: r.count("Sleeping") >= 1, 20, "the agent asleep after its first run")
    r.proc.terminate()
    assert r.proc.wait(timeout=10) == -signal.SIGTERM
    assert [p.name for p in occ.cachedir.rglob("tmp*")] == []


def test_sighup_reexec_when_argv0_is_not_an_executable_path(occ, running):
    occ.write_local("x", {"v": 1})
    r = running(occ, "--polling-interval", "0.2", "--min-polling-interval", "0.2", "-c", "true", "local",
                argv0_module=True)
    wait_for(lambda: r.count("Starting (pid") == 1, what="start")
    r.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: r.count("Starting (pid %d)" % r.proc.pid) == 2, what="restart")
    assert r.proc.poll() is None


def test_config_file_appearing_later_triggers_reexec(occ, sandbox, running):
    occ.write_local("x", {"v": 1})
    sandbox.write("etc/occ.d/00-base.conf", "[DEFAULT]\npolling_interval = 0.2\nmin_polling_interval = 0.2\n"
                  "collectors = local\n")
    r = running(occ, "--config-dir", str(sandbox.path("etc", "occ.d")), "-c", "true")
    wait_for(lambda: r.count("Sleeping") >= 2, what="polls")
    assert r.count("with collectors local.") == 1
    # Rendered later by os-apply-config: the default file in $HOME did not exist at start-up.
    sandbox.write("home/os-collect-config.conf", "[DEFAULT]\ncollectors = heat_local\n")
    wait_for(lambda: r.count("Configuration changed. Re-executing") == 1, what="re-exec")
    wait_for(lambda: r.count("with collectors heat_local local.") == 1, what="new file in force")
    sandbox.write("etc/occ.d/10-more.conf", "[DEFAULT]\ncollectors = local\n")
    wait_for(lambda: r.count("Configuration changed. Re-executing") == 2, what="re-exec on conf.d change")
    wait_for(lambda: r.count("with collectors heat_local local local.") == 1, what="conf.d value in force")


def test_failing_command_is_retried_with_growing_jittered_sleeps(occ, sandbox, running):
    occ.write_local("x", {"v": 1})
    runs = sandbox.path("runs")
    r = running(occ, "--min-polling-interval", "0.1", "--polling-interval", "0.8",
                "-c", "echo run >> %s; exit 5" % runs, "local")
    wait_for(lambda: len(r.sleeps()) >= 6, what="six sleeps")
    sleeps = r.sleeps()[:6]
    tops = [0.2, 0.4, 0.8, 0.8, 0.8, 0.8]
    assert all(top / 2 - 0.01 <= s <= top + 0.01 for s, top in zip(sleeps, tops)), sleeps
    assert len(set(sleeps[2:])) > 1  # jitter: the capped sleeps are not all the same
    assert len(runs.read_text().splitlines()) >= 6  # every poll retries the failed command
    assert r.count("Command failed, will not cache new data") >= 6


def test_a_source_down_for_thousands_of_polls_keeps_its_capped_backoff(occ, sandbox, running):
    """After about 1,025 failures in a row (8.5 h of an unreachable source at 30 s) the doubling backoff
    overflowed a float: every later failure raised OverflowError, and the count is saved across restarts,
    so a restarted agent failed again at once. The saved count stands for that long outage here."""
    state = occ.cachedir / ".agent-state"
    state.mkdir(mode=0o700)
    (state / "os-collect-config.health.json").write_text(
        json.dumps({"request": {"failures": 5000, "last_error": "down since yesterday"}}))
    occ.write_local("x", {"v": 1})
    r = running(occ, "--polling-interval", "1", "-c", "true", "--request-metadata-url",
                "http://127.0.0.1:9/metadata", "request", "local")
    wait_for(lambda: r.count("Source [request] Unavailable") >= 3, what="three failed polls of the source")
    assert r.proc.poll() is None
    delays = [float(m.group(1)) for m in (re.search(r"Source \[request\].*next try in ([0-9.]+) s", l)
                                          for l in r.lines()) if m]
    assert all(0 <= d <= 1.0 for d in delays), delays  # the cap (the polling interval), fully jittered
    assert r.count("Poll failed:") == 0
    assert "Traceback" not in r.stop()


def test_a_failing_poll_is_one_line_and_the_agent_goes_on(occ, sandbox, running):
    """Whatever one poll raises costs that poll and a backoff, never the agent (SPEC §2.14, §2.18).

    Here the cache file of a key cannot be written (a directory stands in its place)."""
    occ.write_local("x", {"v": 1})
    occ.cachedir.joinpath("x.json").mkdir()
    runs = sandbox.path("runs")
    r = running(occ, "--min-polling-interval", "0.1", "--polling-interval", "0.4",
                "-c", "echo run >> %s" % runs, "local")
    wait_for(lambda: r.count("Poll failed:") >= 3, what="three failed polls")
    failed = [l for l in r.lines() if "Poll failed:" in l]
    assert all("x.json" in l and "trying again later" in l for l in failed), failed
    assert not runs.exists()
    sleeps = r.sleeps()[:3]  # backing off as after a failed command: doubling, jittered, capped
    assert all(top / 2 - 0.01 <= s <= top + 0.01 for s, top in zip(sleeps, [0.2, 0.4, 0.4])), sleeps
    occ.cachedir.joinpath("x.json").rmdir()
    wait_for(lambda: runs.exists(), what="the command once the cache can be written")
    assert occ.cache_json("x.json") == {"v": 1}
    assert r.proc.poll() is None
    assert "Traceback" not in r.stop()
