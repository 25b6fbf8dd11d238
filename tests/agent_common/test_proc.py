"""The one subprocess helper: real children, real process groups, real signals."""
import os
import time

from agent_common.proc import run
from tests.support.sandbox import process_gone


def test_captures_output_status_and_stdin():
    result = run(["/bin/sh", "-c", "cat; echo err >&2; exit 3"], stdin_data=b"hello")
    assert result.returncode == 3
    assert result.stdout == b"hello"
    assert result.stderr == b"err\n"
    assert not result.timed_out


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    # The shell starts a grandchild that would outlive a plain kill of the shell.
    script = "sleep 300 & echo $! > %s; wait" % pidfile
    start = time.monotonic()
    result = run(["/bin/sh", "-c", script], timeout=0.5, kill_grace_s=1)
    assert result.timed_out
    assert time.monotonic() - start < 10
    grandchild = int(pidfile.read_text())
    assert process_gone(grandchild), "grandchild %d survived the timeout" % grandchild


def test_term_ignoring_child_is_killed_after_grace():
    result = run(["/bin/sh", "-c", "trap '' TERM; sleep 30"], timeout=0.3, kill_grace_s=0.5)
    assert result.timed_out
    assert result.returncode < 0


def test_output_is_capped_to_its_tail():
    result = run(["/bin/sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"],
                 output_cap=100)
    assert len(result.stdout) == 100
    assert result.stdout.endswith(b"line1999\n")
    assert result.stdout_truncated > 0


def test_environment_and_cwd_are_the_callers_choice(tmp_path):
    result = run(["/bin/sh", "-c", "pwd; echo $ONLY"], env={"ONLY": "this", "PATH": "/usr/bin:/bin"},
                 cwd=str(tmp_path))
    assert result.stdout.decode().splitlines() == [str(tmp_path), "this"]


def test_tee_passes_output_through_live_and_keeps_the_tail(tmp_path):
    # A parent process runs the child with tee=True; its own stdout/stderr must show the
    # child's output while the result still holds the captured tail.
    import subprocess
    import sys

    code = (
        "from agent_common.proc import run\n"
        "r = run(['/bin/sh', '-c', 'echo out-line; echo err-line >&2; exit 4'], tee=True)\n"
        "print('rc=%d tail=%r/%r' % (r.returncode, r.stdout, r.stderr))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.stdout.splitlines() == ["out-line", "rc=4 tail=b'out-line\\n'/b'err-line\\n'"]
    assert proc.stderr == "err-line\n"


def test_drain_bound_when_a_daemon_keeps_the_pipes_open():
    # The child exits at once but leaves a grandchild holding stdout: the caller must not wait for it.
    start = time.monotonic()
    result = run(["/bin/sh", "-c", "echo started; (sleep 4 &) ; exit 0"], drain_s=0.3)
    assert result.returncode == 0
    assert result.stdout == b"started\n"
    assert time.monotonic() - start < 5


def test_a_signal_while_the_child_starts_is_held_back_until_it_can_be_stopped():
    # A handler that raises must not fire between fork and knowing the pid: the child
    # would be left running in its own session. The signal arrives during Popen here.
    import signal
    import subprocess
    import sys

    code = (
        "import os, signal, subprocess, sys\n"
        "from agent_common import proc\n"
        "class Stop(Exception): pass\n"
        "def handler(n, f): raise Stop()\n"
        "signal.signal(signal.SIGTERM, handler)\n"
        "real_popen = subprocess.Popen\n"
        "def popen(*a, **k):\n"
        "    p = real_popen(*a, **k)\n"
        "    print(p.pid, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # lands inside Popen, before run() has the pid\n"
        "    return p\n"
        "subprocess.Popen = popen\n"
        "try:\n"
        "    proc.run(['sleep', '60'], kill_grace_s=0)\n"
        "except Stop:\n"
        "    sys.exit(7)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 7, result.stderr
    child = int(result.stdout.split()[0])
    if not process_gone(child):
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child outlived the runner")


def test_timeout_holds_while_the_child_does_not_read_its_input():
    """Issue 12 defect 2: stdin was written before the timed wait, so a child that never read a large
    input blocked the writer, and the timeout, until it exited by itself."""
    start = time.monotonic()
    result = run(["sh", "-c", "sleep 8"], stdin_data=b"x" * 200_000, timeout=1, kill_grace_s=2)
    elapsed = time.monotonic() - start
    assert result.timed_out
    assert result.returncode < 0
    assert elapsed < 4, "took %.1f s for a 1 s timeout" % elapsed


def test_timeout_with_unread_input_kills_the_whole_group_after_the_grace(tmp_path):
    """The child ignores SIGTERM and never reads: SIGKILL after the grace reaches it and its grandchild."""
    pidfile = tmp_path / "grandchild.pid"
    script = "trap '' TERM; sleep 300 & echo $! > %s; wait" % pidfile
    start = time.monotonic()
    result = run(["/bin/sh", "-c", script], stdin_data=b"y" * 400_000, timeout=0.5, kill_grace_s=1)
    assert result.timed_out and result.returncode == -9
    assert 1.4 < time.monotonic() - start < 5
    assert process_gone(int(pidfile.read_text()))


def test_a_child_that_closes_its_input_early_is_not_an_error():
    """EPIPE on the child's stdin is the child's choice, not a failure of the run."""
    result = run(["sh", "-c", "exec 0<&-; echo done"], stdin_data=b"z" * 1_000_000, timeout=10)
    assert (result.returncode, result.stdout, result.timed_out) == (0, b"done\n", False)
    result = run(["head", "-c", "5"], stdin_data=b"abcdefgh" * 200_000, timeout=10)
    assert (result.returncode, result.stdout, result.timed_out) == (0, b"abcde", False)


def test_large_input_is_delivered_whole():
    data = bytes(range(256)) * 4000
    result = run(["cat"], stdin_data=data, timeout=20)
    assert result.returncode == 0 and result.stdout == data
