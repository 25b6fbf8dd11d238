"""The one way tests, demo and benches wait for something another process does."""
from __future__ import annotations

import subprocess
import time
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError, TimeoutError):
    """A wait ran out: a failed assertion to pytest, a TimeoutError to the demo and the benches."""


def wait_for(check: Callable[[], T], timeout: float = 20.0, what: str = "condition", interval: float = 0.05) -> T:
    """The first true value ``check()`` returns, polling every ``interval`` seconds.

    After ``timeout`` seconds it raises WaitTimeout naming ``what`` and the time waited. ``check`` may
    raise to stop early (a richer wait whose process died has nothing left to wait for)."""
    started = time.monotonic()
    while True:
        value = check()
        if value:
            return value
        waited = time.monotonic() - started
        if waited > timeout:
            raise WaitTimeout("timed out after %.1f s waiting for %s" % (waited, what))
        time.sleep(interval)


def wait_for_process(check: Callable[[], T], proc: Optional[subprocess.Popen], timeout: float, what: str,
                     log: Callable[[], str], interval: float = 0.2) -> T:
    """``wait_for`` something a background process brings about.

    Once ``proc`` has exited nothing more will happen, so the wait ends there; either failure ends with
    the tail of the process's ``log``, where the reason is."""
    def check_while_running() -> T:
        value = check()
        if not value and proc is not None and proc.poll() is not None:
            raise AssertionError("the process exited with %s before %s" % (proc.returncode, what))
        return value

    try:
        return wait_for(check_while_running, timeout, what, interval)
    except AssertionError as exc:
        raise type(exc)("%s; its log ends:\n%s" % (exc, log()[-4000:])) from None
