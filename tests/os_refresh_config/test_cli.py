"""os-refresh-config (SPEC §3): options, base directory, phases, error.d, lock, time limits, logging."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from os_refresh_config.cli import check_base_dir, default_base_dir
from tests.os_refresh_config.conftest import script
from tests.support.sandbox import BIN_DIR, process_gone
from tests.support.wait import wait_for

PHASE_DIRS = ["pre-configure.d", "configure.d", "post-configure.d", "migration.d"]


def test_print_base_and_phases(orc, base):
    r = orc("--print-base")
    assert (r.returncode, r.stdout) == (0, "%s\n" % base)
    r = orc("--print-phases")
    assert (r.returncode, r.stdout) == (0, "pre-configure\tconfigure\tpost-configure\tmigration\n")


def test_base_dir_variable_counts_even_when_empty(orc, sandbox):
    assert orc("--print-base", env={"OS_REFRESH_CONFIG_BASE_DIR": ""}).stdout == "\n"
    # An empty base makes the phase dirs relative to the working directory.
    work = sandbox.path("home")
    script(work / "configure.d", "10-here", "echo relative-phase-ran\n")
    r = orc(env={"OS_REFRESH_CONFIG_BASE_DIR": ""}, cwd=str(work))
    assert r.returncode == 0 and r.stdout == "relative-phase-ran\n"


def test_base_dir_legacy_and_default_rules(tmp_path, capsys):
    default, legacy = tmp_path / "usr-libexec", tmp_path / "opt-stack"
    kwargs = dict(environ={}, default=str(default), legacy=str(legacy))
    assert default_base_dir(**kwargs) == str(default)
    legacy.mkdir()
    assert default_base_dir(**kwargs) == str(legacy)
    assert "deprecated" in capsys.readouterr().err
    default.mkdir()
    assert default_base_dir(**kwargs) == str(default)
    assert default_base_dir(environ={"OS_REFRESH_CONFIG_BASE_DIR": "/x"}, default=str(default)) == "/x"


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.write_text("")], ids=["missing", "a-file"])
def test_a_base_dir_named_by_the_variable_that_is_not_a_directory_is_an_error(orc, sandbox, make):
    typo = sandbox.path("typo")
    make(typo)
    why = "is not a directory" if typo.exists() else "does not exist"
    r = orc(env={"OS_REFRESH_CONFIG_BASE_DIR": str(typo)})
    assert r.returncode == 1 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        "(os-refresh-config) [ERROR] base directory %s (from OS_REFRESH_CONFIG_BASE_DIR) %s; no phase ran"
        % (typo, why))
    assert orc("--print-base", env={"OS_REFRESH_CONFIG_BASE_DIR": str(typo)}).stdout == "%s\n" % typo


def test_the_default_base_dir_missing_is_a_warning_and_exit_0(tmp_path, caplog):
    missing = str(tmp_path / "usr-libexec")
    assert check_base_dir(missing, environ={}) == 0
    assert caplog.messages == ["base directory %s does not exist; no phase ran" % missing]
    assert caplog.records[0].levelname == "WARNING"
    assert check_base_dir(str(tmp_path), environ={}) is None


@pytest.mark.parametrize("args", [["--log-level", "WARNING"], ["positional"], ["--timeout", "1.5"]])
def test_usage_errors_exit_2(orc, args):
    assert orc(*args).returncode == 2


@pytest.mark.parametrize("level,shown", [
    ("DEBUG", {"DEBUG", "INFO", "ERROR"}),
    ("INFO", {"INFO", "ERROR"}),
    ("WARN", {"ERROR"}),
    ("ERROR", {"ERROR"}),
    ("CRITICAL", set()),
])
def test_log_level_chooses_the_lines_shown(orc, base, level, shown):
    """Each level is honoured, not just accepted: a run that logs at DEBUG (a missing phase dir), INFO
    (phases, summary) and ERROR (a failing script) shows exactly the levels at or above the one asked."""
    script(base / "configure.d", "10-ok", "echo ok\n")
    script(base / "configure.d", "20-fail", "exit 3\n")
    r = orc("--log-level", level)
    assert r.returncode == 1 and r.stdout == "ok\n"  # the run itself does not depend on the level
    assert set(re.findall(r"\(os-refresh-config\) \[([A-Z]+)\]", r.stderr)) == shown, r.stderr
    assert ("20-fail failed with exit" in r.stderr) == ("ERROR" in shown)


def test_empty_base_at_info_prints_nothing(orc):
    r = orc()
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_phases_run_in_order_with_the_environment_and_logs(orc, base, sandbox):
    for d in reversed(PHASE_DIRS):
        script(base / d, "10-x", 'echo "%s $OS_CONFIG_FILES"\n' % d)
    r = orc(env={"OS_CONFIG_FILES": "/a.json:/b.json"})
    assert r.returncode == 0
    assert r.stdout.splitlines() == ["%s /a.json:/b.json" % d for d in PHASE_DIRS]
    starts = re.findall(r"^\[.+\] \(os-refresh-config\) \[INFO\] Starting phase (\S+)$", r.stderr, re.M)
    completes = re.findall(r"\[INFO\] Completed phase (\S+)", r.stderr)
    assert starts == completes == ["pre-configure", "configure", "post-configure", "migration"]


def test_missing_phase_dir_is_skipped_with_a_debug_line(orc, base):
    script(base / "configure.d", "10-x", "echo only-configure\n")
    r = orc("--log-level", "DEBUG")
    assert r.returncode == 0 and r.stdout == "only-configure\n"
    assert "No dir for phase pre-configure" in r.stderr


def test_failure_runs_error_d_stops_later_phases_and_names_the_script(orc, base):
    script(base / "pre-configure.d", "10-ok", "echo pre\n")
    script(base / "configure.d", "20-bad", "echo partial output; echo boom-detail >&2; exit 3\n")
    script(base / "configure.d", "30-never", "echo never\n")
    script(base / "post-configure.d", "10-never", "echo never-post\n")
    script(base / "error.d", "10-handler", "echo handler-ran; exit 9\n")  # its status is ignored
    r = orc()
    assert r.returncode == 1
    assert r.stdout == "pre\npartial output\nhandler-ran\n"
    assert re.search(
        r"\[ERROR\] during configure phase: %s/configure.d/20-bad failed with exit status 3; last output:"
        r"\n    \| partial output\n    \| boom-detail" % re.escape(str(base)), r.stderr)
    assert "Calling error handlers." in r.stderr
    assert r.stderr.rstrip().count("Aborting...") == 1
    summary = r.stderr[r.stderr.index("Summary:"):]
    assert "Summary: 3 script(s)" in summary and "2 failed" in summary
    assert re.search(r"configure.d/20-bad +\d+\.\d{3} s  exit 3", summary)
    assert re.search(r"error.d/10-handler +\d+\.\d{3} s  exit 9", summary)


def test_error_d_never_runs_after_success(orc, base):
    script(base / "configure.d", "10-ok", "true\n")
    script(base / "error.d", "10-handler", "echo handler-ran\n")
    r = orc()
    assert r.returncode == 0 and "handler-ran" not in r.stdout


def test_error_d_also_gets_environment_d(orc, base, sandbox):
    script(base / "configure.d", "10-bad", "exit 1\n")
    script(base / "error.d", "10-handler", 'echo "handler sees $FROM_ENV_D"\n')
    sandbox.write("orc/environment.d/10-env", "export FROM_ENV_D=yes\n")
    assert orc().stdout == "handler sees yes\n"


def test_summary_names_every_script_with_duration_and_status(orc, base):
    script(base / "pre-configure.d", "10-a", "true\n")
    script(base / "migration.d", "10-b", "sleep 0.2\n")
    r = orc()
    assert r.returncode == 0
    assert re.search(r"Summary: 2 script\(s\) in [\d.]+ s, 0 failed", r.stderr)
    assert re.search(r"pre-configure.d/10-a +\d+\.\d{3} s  exit 0", r.stderr)
    m = re.search(r"migration.d/10-b +(\d+\.\d{3}) s  exit 0", r.stderr)
    assert m and float(m.group(1)) >= 0.2


def test_json_log_lines(orc, base):
    script(base / "configure.d", "10-bad", "echo the-tail; exit 4\n")
    r = orc("--log-format", "json")
    assert r.returncode == 1
    docs = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    assert docs and len(docs) == len([l for l in r.stderr.splitlines() if l.strip()])
    failure = [d for d in docs if d["level"] == "ERROR" and d.get("script")]
    assert failure[0]["status"] == 4 and failure[0]["output_tail"] == "the-tail"
    assert failure[0]["script"].endswith("configure.d/10-bad")
    summary = [d for d in docs if "duration_s" in d]
    assert [d["status"] for d in summary] == [4]


class TestLock:
    def test_pid_line_is_visible_while_running_and_emptied_after(self, orc, base):
        script(base / "configure.d", "10-show-lock", "cat %s\n" % orc.lockfile)
        r = orc()
        assert re.fullmatch(r"Locked by pid==\d+ at .+\n", r.stdout)
        assert os.path.getsize(orc.lockfile) == 0

    def test_second_run_waits_instead_of_being_dropped(self, orc, base, sandbox):
        marker = sandbox.path("run", "runs")
        script(base / "configure.d", "10-slow", "echo start >> %s; sleep 1; echo end >> %s\n" % (marker, marker))
        first = subprocess.Popen([str(BIN_DIR / "os-refresh-config"), "--lockfile", orc.lockfile],
                                 env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert wait_for(marker.exists, timeout=10, what="the first run to start")
            second = orc()
        finally:
            first.communicate(timeout=30)
        assert first.returncode == 0 and second.returncode == 0
        assert marker.read_text().split() == ["start", "end", "start", "end"]
        assert re.search(r"Waiting for .*orc.lock, held by Locked by pid==%d" % first.pid, second.stderr)

    def test_gives_up_after_lock_timeout_with_one_line_naming_the_holder(self, orc, sandbox):
        import fcntl

        with open(orc.lockfile, "w") as holder:
            fcntl.flock(holder, fcntl.LOCK_EX)
            holder.write("Locked by pid==4242 at sometime\n")
            holder.flush()
            start = time.monotonic()
            r = orc("--lock-timeout", "0.5")
        assert r.returncode == 1
        assert 0.4 < time.monotonic() - start < 10
        errors = [l for l in r.stderr.splitlines() if "[ERROR]" in l]
        assert len(errors) == 1
        assert "Could not lock %s within 0.5 s: held by Locked by pid==4242 at sometime" % orc.lockfile in errors[0]

    def test_unwritable_lock_location_is_one_line_not_a_traceback(self, run_tool, sandbox):
        r = run_tool("os-refresh-config", ["--lockfile", str(sandbox.path("no", "such", "dir", "lock"))])
        assert r.returncode == 1
        assert "Traceback" not in r.stderr
        assert "Could not open lock file" in r.stderr


class TestTimeLimits:
    @staticmethod
    def timed(orc, *args):
        start = time.monotonic()
        result = orc(*args)
        assert result.returncode == 1
        assert time.monotonic() - start < 20
        return result

    def test_timeout_stops_a_hung_script_with_sigterm_first_and_runs_error_d(self, orc, base, sandbox):
        got_term = sandbox.path("run", "got-term")
        script(base / "configure.d", "10-hang",
               "trap 'echo term > %s; exit 143' TERM\nsleep 60 & wait\n" % got_term)
        script(base / "post-configure.d", "10-never", "echo never\n")
        script(base / "error.d", "10-handler", "echo handler\n")
        r = self.timed(orc, "--timeout", "1", "--kill-grace", "5")
        assert got_term.read_text() == "term\n"
        assert r.stdout.splitlines() == ["handler"]
        assert "10-hang timed out" in r.stderr

    @pytest.mark.parametrize("slow_dir,hung_dir,where", [
        ("pre-configure.d", "configure.d", "during configure phase"),  # the limit outlives the first phase
        ("configure.d", "error.d", "10-hang timed out"),  # and error.d is limited too
    ])
    def test_limit_covers_later_phases_and_error_d(self, orc, base, slow_dir, hung_dir, where):
        script(base / slow_dir, "10-first", "sleep 1; exit 1\n" if hung_dir == "error.d" else "sleep 1\n")
        script(base / hung_dir, "10-hang", "sleep 30\n")
        r = self.timed(orc, "--timeout", "2", "--kill-grace", "1")
        assert where in r.stderr

    def test_script_timeout_sigkills_after_grace_and_reaches_the_process_group(self, orc, base, sandbox):
        pidfile = sandbox.path("run", "grandchild.pid")
        script(base / "configure.d", "10-stubborn",
               "trap '' TERM\nsleep 60 &\necho $! > %s\nwhile true; do sleep 0.1; done\n" % pidfile)
        self.timed(orc, "--script-timeout", "0.5", "--kill-grace", "0.5")
        grandchild = int(pidfile.read_text())
        assert process_gone(grandchild), "grandchild %d survived the group kill" % grandchild


def test_sigterm_to_orc_stops_the_running_script(orc, base, sandbox):
    started = sandbox.path("run", "started")
    script(base / "configure.d", "10-hang", "touch %s\nexec sleep 60\n" % started)
    p = subprocess.Popen([str(BIN_DIR / "os-refresh-config"), "--lockfile", orc.lockfile],
                         env=sandbox.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(started.exists, timeout=10, what="the script to start")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 128 + signal.SIGTERM
    assert "Stopped by signal" in err
    assert os.path.getsize(orc.lockfile) == 0


def test_scripts_do_not_inherit_the_lock_and_environment_d_is_sourced_per_phase(orc, base, sandbox):
    for d in ("pre-configure.d", "configure.d"):
        script(base / d, "10-fds", "for f in /proc/$$/fd/*; do readlink $f || true; done\n")
    sandbox.write("orc/environment.d/10-env", "export X=1\n")
    r = orc()
    assert r.returncode == 0
    assert r.stdout.count("10-fds") == 2  # the shell's own script descriptor, listed in each phase
    assert orc.lockfile not in r.stdout
    assert r.stderr.count("Sourcing environment file") == 2


def test_log_level_filters_our_lines(orc, base):
    script(base / "configure.d", "10-x", "true\n")
    assert "Starting phase configure" in orc("--log-level", "INFO").stderr
    quiet = orc("--log-level", "WARN")
    assert quiet.returncode == 0 and "[INFO]" not in quiet.stderr and "Summary" not in quiet.stderr
    assert "Checking " in orc("--log-level", "DEBUG").stderr
