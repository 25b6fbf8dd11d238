"""The one way os-config-agents runs a child process.

Every caller (command runner, run-parts, hooks, notifier) needs the same things:
no shell unless asked, an environment it controls, a timeout that kills the whole
process group (SIGTERM, then SIGKILL), and output kept to a bounded tail so a
chatty child can neither exhaust memory nor produce a signal Heat refuses.

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from agent_common.record import Record

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from io import BufferedReader
    from typing import IO, Callable, Mapping, Optional, Sequence, Union

#: Default cap on captured stdout/stderr, per stream (the tail is kept).
DEFAULT_OUTPUT_CAP = 1024 * 1024
#: Exit status of a child stopped by its timeout (as coreutils' timeout(1) gives it).
TIMEOUT_STATUS = 124
#: Grace period between SIGTERM and SIGKILL for a timed-out process group.
KILL_GRACE_S = 10.0


class ProcResult(Record):
    """What a finished child left behind. ``returncode`` is negative for a signal, as subprocess gives it."""

    returncode: int
    stdout: bytes
    stderr: bytes
    duration_s: float
    timed_out: bool = False
    stdout_truncated: int = 0
    stderr_truncated: int = 0


class _TailBuffer:
    """Keeps the last ``cap`` bytes of a stream and counts what was dropped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        excess = len(self.data) - self.cap
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess


def write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError:  # our own stdout/stderr went away: keep capturing, stop echoing
            return


class _InputWriter(threading.Thread):
    """Feeds ``data`` to a child's stdin beside the timed wait, so the timeout also holds for a child
    that never reads its input (the pipe holds 64 KiB; a blocking write of more waited for the child).

    The pipe is written non-blocking and polled, so that ``stop()`` ends the thread even when a
    process the child left behind keeps the pipe open without reading; the thread alone closes it.
    A child that closes its stdin early (EPIPE) simply ends the writing: that is its choice.
    """

    TICK_S = 0.05

    def __init__(self, pipe: IO[bytes], data: bytes) -> None:
        super().__init__(name="stdin-writer", daemon=True)
        self.pipe = pipe
        self.data = data
        self._stop_event = threading.Event()

    def run(self) -> None:
        import select

        fd = self.pipe.fileno()
        view = memoryview(self.data)
        try:
            os.set_blocking(fd, False)
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            while view and not self._stop_event.is_set():
                if not poller.poll(self.TICK_S * 1000):
                    continue
                try:
                    view = view[os.write(fd, view[:65536]):]
                except BlockingIOError:
                    continue
        except OSError:  # EPIPE: the child closed its stdin, or exited without reading it all
            pass
        finally:
            try:
                self.pipe.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _pump(stream: BufferedReader, buf: _TailBuffer, echo_fd: Optional[int] = None) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        buf.feed(chunk)
        if echo_fd is not None:
            write_all(echo_fd, chunk)
    stream.close()


class _SignalsDeferred:
    """Hold back SIGTERM, SIGINT and SIGHUP handlers while a child is being started.

    A handler that raises (to stop a runner) could otherwise fire after the fork but
    before we know the child's pid, and the child would outlive us in its own session.
    The signals are delivered again, by ``deliver()``, once the caller can clean up.
    Only Python-level handlers in the main thread are deferred; default actions stay.
    """

    def __init__(self) -> None:
        self.pending: list = []
        self.saved: dict = {}

    def __enter__(self) -> "_SignalsDeferred":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                if callable(signal.getsignal(signum)):
                    self.saved[signum] = signal.signal(signum, lambda num, frame: self.pending.append(num))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)
        self.saved = {}

    def deliver(self) -> None:
        pending, self.pending = self.pending, []
        for signum in pending:
            signal.raise_signal(signum)


def kill_group(pgid: int, grace_s: float = KILL_GRACE_S, proc: Optional[subprocess.Popen] = None,
               gone: Optional[Callable[[], bool]] = None) -> None:
    """SIGTERM the process group, then SIGKILL it if the leader is still alive after ``grace_s``.

    ``gone`` tells when the leader ended for a group that is not our child (no ``proc`` to poll).
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if (proc is not None and proc.poll() is not None) or (gone is not None and gone()):
            break
        time.sleep(0.05)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(
    argv: Union[Sequence[str], str],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    stdin_data: Optional[bytes] = None,
    timeout: Optional[float] = None,
    capture: bool = True,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    stdout_cap: Optional[int] = None,
    shell: bool = False,
    kill_grace_s: float = KILL_GRACE_S,
    tee: bool = False,
    echo_fd: Optional[int] = None,
    echo_stdout: bool = True,
    drain_s: float = 5.0,
    on_start: Optional[Callable[[int], None]] = None,
) -> ProcResult:
    """Run a child in its own session and wait for it.

    ``capture=False`` lets the child inherit stdout/stderr (as os-collect-config's
    command does); otherwise both streams are captured as bounded tails.
    ``tee=True`` (with capture) also passes each chunk straight through to our own
    stdout/stderr as it arrives, so a caller can show a child's output live and still
    report its tail (os-refresh-config's scripts).
    ``echo_fd`` (with capture) instead passes both streams through to that one descriptor
    (stdout only when ``echo_stdout``): ``heat-config run`` shows a hook's output live on
    stderr while its stdout stays the JSON result.
    ``drain_s`` bounds the wait for the pipes after the child exited: a daemon the
    child started may hold them open for ever.
    A ``timeout`` of None or 0 means no limit.
    ``output_cap`` bounds each captured stream; ``stdout_cap``, when given, bounds stdout
    instead (a hook's stdout is its whole JSON result, parsed before it is trimmed).
    ``on_start`` is called with the child's pid (its process group id) as soon as it runs, so a
    caller can record the group and stop it after a crash of its own (heat-config's journal).
    """
    start = time.monotonic()
    pipe = subprocess.PIPE if capture else None
    with _SignalsDeferred() as deferred:
        proc = subprocess.Popen(
            argv,
            shell=shell,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.PIPE if stdin_data is not None else None,
            stdout=pipe,
            stderr=pipe,
            start_new_session=True,
        )
    out, err = _TailBuffer(output_cap if stdout_cap is None else stdout_cap), _TailBuffer(output_cap)
    pumps = []
    writer: Optional[_InputWriter] = None
    timed_out = False
    try:
        if on_start is not None:
            on_start(proc.pid)
        deferred.deliver()
        if capture:
            echoes = (1, 2) if tee else (echo_fd if echo_stdout else None, echo_fd)
            for stream, buf, fd in ((proc.stdout, out, echoes[0]), (proc.stderr, err, echoes[1])):
                t = threading.Thread(target=_pump, args=(stream, buf, fd), daemon=True)
                t.start()
                pumps.append(t)
        if stdin_data is not None and proc.stdin is not None:  # stdin is a pipe exactly when there is data
            writer = _InputWriter(proc.stdin, stdin_data)
            writer.start()
        try:
            proc.wait(timeout=timeout or None)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc.pid, kill_grace_s, proc)
            proc.wait()
    except BaseException:
        # Whatever stops us (a signal handler's exception, KeyboardInterrupt) stops the child's group too.
        kill_group(proc.pid, 0, proc)
        proc.wait()
        raise
    finally:
        if writer is not None:
            writer.stop()
    if timed_out:
        # Grandchildren may still hold the pipes open; the group kill above reached them.
        kill_group(proc.pid, 0)
    for t in pumps:
        t.join(timeout=drain_s)
    return ProcResult(
        returncode=proc.returncode,
        stdout=bytes(out.data),
        stderr=bytes(err.data),
        duration_s=time.monotonic() - start,
        timed_out=timed_out,
        stdout_truncated=out.dropped,
        stderr_truncated=err.dropped,
    )
