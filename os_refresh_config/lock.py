"""The os-refresh-config lock: one run at a time, and a second trigger waits instead of being lost.

A run waits for the lock up to a bound, so a configuration change that arrives
during a run is not dropped; whoever holds the lock can be seen in the file (its
pid line is flushed, not buffered).
"""
from __future__ import annotations

import fcntl
import os
import time
from typing import IO, Callable, Optional


class LockError(Exception):
    """The lock could not be taken; the message is the one line to show."""


class RunLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self._file: Optional[IO[str]] = None

    def holder(self) -> str:
        """The pid line the current holder wrote, or a placeholder when it is not readable."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                line = f.readline().strip()
        except OSError:
            line = ""
        return line or "an unknown process"

    def acquire(self, timeout: float, on_wait: Callable[[str], None], poll_s: float = 0.1) -> None:
        """Take the lock, waiting up to ``timeout`` seconds (0: try once). ``on_wait`` hears about the holder once."""
        try:
            f = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            raise LockError("Could not open lock file %s: %s" % (self.path, exc.strerror)) from None
        deadline = time.monotonic() + max(timeout, 0)
        waited = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    f.close()
                    raise LockError(
                        "Could not lock %s within %g s: held by %s" % (self.path, timeout, self.holder())
                    ) from None
                if not waited:
                    on_wait(self.holder())
                    waited = True
                time.sleep(poll_s)
        f.truncate(0)
        f.write("Locked by pid==%d at %s\n" % (os.getpid(), time.strftime("%Y-%m-%d %H:%M:%S %Z")))
        f.flush()
        self._file = f

    def release(self) -> None:
        """Empty the file and unlock; the file itself stays, as with the original."""
        if self._file is None:
            return
        try:
            self._file.truncate(0)
        finally:
            self._file.close()
            self._file = None
