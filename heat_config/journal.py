"""The per-deployment journal: what happened to each deployment, written before each step (SPEC §12.3).

One JSON file per deployment, ``<deployed dir>/journal/<id>.json``, replaced
atomically at each step: received → running → finished → signalled.  The records
whose signal is pending are the durable outbox; an empty ``<id>.open`` beside each
unsettled record lets a run find those with one directory listing.  How a run
recovers from a kill with it: docs/architecture.md.
"""
from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Iterator, List, Optional

from agent_common.atomic import atomic_write, ensure_dir
from agent_common.documents import loads_json, read_bytes
from agent_common.journal_layout import (
    CORRUPT_DIRNAME,
    LOCK_NAME,
    OPEN_SUFFIX,
    RECORD_SUFFIX,
    SIGNAL_COUNTS_NAME,
    journal_dir,
)

LOG = logging.getLogger("heat-config")

# Journal steps.
RECEIVED, RUNNING, FINISHED, SIGNALLED = "received", "running", "finished", "signalled"
STEPS = (RECEIVED, RUNNING, FINISHED, SIGNALLED)
# Signal states.
SIGNAL_NONE, SIGNAL_PENDING, SIGNAL_SENT, SIGNAL_REFUSED = "none", "pending", "sent", "refused"
SIGNAL_STATES = (SIGNAL_NONE, SIGNAL_PENDING, SIGNAL_SENT, SIGNAL_REFUSED)


def _is_time(value: Any) -> bool:
    return value is None or (type(value) in (int, float) and math.isfinite(value))


#: What each field must hold, as (test, what it should be): a record that breaks one is corrupt.
_CHECKS = {
    "step": (lambda v: v in STEPS, "one of " + ", ".join(STEPS)),
    "signal": (lambda v: v in SIGNAL_STATES, "one of " + ", ".join(SIGNAL_STATES)),
    "received_at": (_is_time, "a time"), "started_at": (_is_time, "a time or null"),
    "finished_at": (_is_time, "a time or null"), "next_try_at": (_is_time, "a time or null"),
    "attempts": (lambda v: type(v) is int and v >= 0, "a whole number"),
    "failed": (lambda v: v is None or type(v) is bool, "true, false or null"),
    "interrupted": (lambda v: type(v) is bool, "true or false"),
    "signal_data": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "hook_pgid": (lambda v: v is None or (type(v) is int and v > 1), "a process group id or null"),
    "hook_proc": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "signal_log": (lambda v: isinstance(v, list) and all(
        isinstance(e, dict) and _is_time(e.get("at")) and e.get("result") in SIGNAL_STATES for e in v),
        "a list of signal attempts"),
}
for _name in ("id", "name", "group", "action", "error", "transport", "signal_error"):
    _CHECKS[_name] = (lambda v: isinstance(v, str), "a string")


def record_problem(data: Any, dep_id: str) -> Optional[str]:
    """Why ``data`` (a parsed journal file) is not the record of ``dep_id``, or None.

    The journal is ours, yet a damaged disk or a hand edit can leave anything
    there; what this refuses would otherwise raise somewhere in a run.
    """
    if not isinstance(data, dict):
        return "not a JSON object"
    for name, (test, expected) in _CHECKS.items():
        if name in data and not test(data[name]):
            return "field %s is not %s" % (name, expected)
    if data.get("id", dep_id) != dep_id:
        return "field id names another deployment"
    return None


class CorruptRecord(Exception):
    """A journal entry that cannot be read as a record; the message names the file and why."""


@dataclass
class JournalRecord:
    """The journal entry of one deployment; the fields in file order."""

    id: str = ""
    name: str = ""
    group: str = ""
    action: str = ""
    step: str = RECEIVED
    received_at: float = 0.0
    started_at: Optional[float] = None
    finished_at: Optional[float] = None
    status_code: Optional[int] = None
    failed: Optional[bool] = None
    interrupted: bool = False
    error: str = ""
    signal: str = SIGNAL_NONE
    transport: str = "NO_SIGNAL"
    attempts: int = 0
    next_try_at: Optional[float] = None
    signal_error: str = ""
    signal_data: Optional[Dict[str, Any]] = None
    # The process group the hook runs in (an executable hook, or the latest tool a built-in hook started)
    # and what identifies its leader, so that a run after a crash can stop it and never a recycled pid.
    hook_pgid: Optional[int] = None
    hook_proc: Optional[str] = None
    #: The latest signal attempts, oldest first: ``{"at": time, "result": signal state, "error": text}``
    #: (``heat-config status ID``, SPEC §12.14; the metrics count them by result, §12.15).
    signal_log: List[Dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:
        return "JournalRecord(id=%r, step=%r, signal=%r)" % (self.id, self.step, self.signal)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @property
    def duration_s(self) -> Optional[float]:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    @property
    def signalled_at(self) -> Optional[float]:
        """When the signal was accepted or refused for good; None while it is pending or was never sent."""
        if self.step != SIGNALLED or not self.signal_log:
            return None
        return self.signal_log[-1]["at"]

    def log_attempt(self, result: str, error: str) -> None:
        """Remember one signal attempt, keeping the latest SIGNAL_LOG_KEEP."""
        self.signal_log = (self.signal_log + [{"at": now(), "result": result, "error": error}])[-SIGNAL_LOG_KEEP:]

    @property
    def settled(self) -> bool:
        """Finished and nothing left to send."""
        return self.step in (FINISHED, SIGNALLED) and self.signal != SIGNAL_PENDING

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "JournalRecord":
        return cls(**{k: v for k, v in data.items() if k in FIELD_NAMES})


#: Signal attempts a record keeps (a signal retried for days keeps only its latest ones).
SIGNAL_LOG_KEEP = 20

#: Every field of a record, in file order.
FIELD_NAMES = tuple(f.name for f in fields(JournalRecord))


class Journal:
    """The journal directory of one deployed-state directory."""

    def __init__(self, deployed_dir: str) -> None:
        self.deployed_dir = deployed_dir
        self.dir = journal_dir(deployed_dir)
        self._lock_fd: Optional[int] = None
        self._corrupt_dir: Optional[str] = None

    def path(self, dep_id: str) -> str:
        return os.path.join(self.dir, dep_id + RECORD_SUFFIX)

    def read(self, dep_id: str) -> Optional[JournalRecord]:
        """The record of ``dep_id``, None when there is none; CorruptRecord when the entry is unusable.

        Changes nothing (``status`` uses it); the dispatcher uses ``load``.
        """
        path = self.path(dep_id)
        try:
            data = loads_json(read_bytes(path), path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptRecord("%s: %s" % (path, exc.strerror or exc)) from None
        except ValueError as exc:
            raise CorruptRecord(str(exc)) from None
        problem = record_problem(data, dep_id)
        if problem:
            raise CorruptRecord("%s: %s" % (path, problem))
        return JournalRecord.from_dict(data)

    def load(self, dep_id: str) -> Optional[JournalRecord]:
        """``read``, with an unusable entry set aside (and a warning naming it) instead of raised."""
        try:
            return self.read(dep_id)
        except CorruptRecord as exc:
            self.set_aside(dep_id, str(exc))
            return None

    def set_aside(self, dep_id: str, reason: str) -> None:
        """Move an unusable entry, unchanged and private, out of the journal so every run does not trip on it."""
        try:
            if self._corrupt_dir is None:
                ensure_dir(os.path.join(self.dir, CORRUPT_DIRNAME), 0o700)
                self._corrupt_dir = os.path.join(self.dir, CORRUPT_DIRNAME, _stamp())
                ensure_dir(self._corrupt_dir, 0o700)
            dest = os.path.join(self._corrupt_dir, dep_id + RECORD_SUFFIX)
            _move_private(self.path(dep_id), dest)
        except OSError as exc:
            LOG.warning("Journal record %s is unusable (%s) and could not be set aside: %s", self.path(dep_id),
                        reason, exc.strerror or exc)
            return
        LOG.warning("Journal record %s is unusable (%s); set aside as %s. Its deployment is not run again "
                    "while %s exists.", self.path(dep_id), reason, dest,
                    os.path.join(self.deployed_dir, dep_id + ".json"))

    def set_aside_copies(self) -> Dict[str, str]:
        """id → path of the newest set-aside copy of its record (for ``status``)."""
        root = os.path.join(self.dir, CORRUPT_DIRNAME)
        copies: Dict[str, str] = {}
        try:
            stamps = sorted(os.listdir(root))
        except OSError:
            return copies
        for stamp in stamps:
            try:
                names = os.listdir(os.path.join(root, stamp))
            except OSError:
                continue
            for name in names:
                if name.endswith(RECORD_SUFFIX):
                    copies[name[: -len(RECORD_SUFFIX)]] = os.path.join(root, stamp, name)
        return copies

    def repair(self) -> None:
        """A journal path that is not a directory (damage: only we write there) is moved aside, so the
        dispatcher goes on with a new journal instead of failing every run; the markers beside it still
        keep deployed deployments from running again."""
        if os.path.isdir(self.dir) or not os.path.lexists(self.dir):
            return
        dest = "%s.corrupt-%s" % (self.dir, _stamp())
        try:
            _move_private(self.dir, dest)
        except FileNotFoundError:  # another dispatcher starting at the same moment moved it
            return
        LOG.error("%s was not a directory: moved it to %s and started a new journal (deployments already "
                  "marked in %s are not run again)", self.dir, dest, self.deployed_dir)

    def save(self, record: JournalRecord, *, keep_open: bool = False) -> None:
        """Replace the record atomically and durably: every step survives a power cut, not only a kill.

        A record renamed into place unflushed can come back empty after a power cut, and an empty
        record is a deployment neither run again nor signalled (the VM suite's power cut found it).

        ``keep_open`` leaves a settled record flagged until ``close``: its caller has
        one more file to write for it (``<id>.notify.json``), and a run after a kill in
        between must read the record to write that file.
        """
        ensure_dir(self.dir, 0o700)
        flag = os.path.join(self.dir, record.id + OPEN_SUFFIX)
        if not record.settled or keep_open:
            os.close(os.open(flag, os.O_WRONLY | os.O_CREAT, 0o600))
        atomic_write(self.path(record.id), json.dumps(record.to_dict(), sort_keys=True), 0o600)
        if not keep_open:
            self.close(record)

    def close(self, record: JournalRecord) -> None:
        """Drop the flag of a settled record: no later run needs to read it."""
        if record.settled:
            _unlink(os.path.join(self.dir, record.id + OPEN_SUFFIX))

    def count_signal_attempts(self, results: Dict[str, int]) -> Dict[str, int]:
        """Add this run's signal attempts by result to the totals kept beside the records; the totals.

        Called with the journal lock held; an unreadable totals file starts again from zero.
        """
        path = os.path.join(self.dir, SIGNAL_COUNTS_NAME)
        try:
            saved = loads_json(read_bytes(path) or b"{}", path)
        except (OSError, ValueError):
            saved = {}
        if not isinstance(saved, dict):
            saved = {}
        totals = {}
        for state in (SIGNAL_SENT, SIGNAL_PENDING, SIGNAL_REFUSED):
            before = saved.get(state)
            totals[state] = (before if type(before) is int else 0) + results.get(state, 0)
        if any(results.values()):
            ensure_dir(self.dir, 0o700)
            atomic_write(path, json.dumps(totals, sort_keys=True), 0o600)
        return totals

    def remove(self, dep_id: str) -> None:
        _unlink(self.path(dep_id))
        _unlink(os.path.join(self.dir, dep_id + OPEN_SUFFIX))

    def index(self) -> "tuple[List[str], List[str]]":
        """(every id with a record, the ids whose record is not settled), from one directory listing."""
        try:
            names = os.listdir(self.dir)
        except OSError:
            return [], []
        ids = [n[: -len(RECORD_SUFFIX)] for n in names if n.endswith(RECORD_SUFFIX)]
        flagged = [n[: -len(OPEN_SUFFIX)] for n in names if n.endswith(OPEN_SUFFIX)]
        return ids, flagged

    def records(self) -> Iterator[JournalRecord]:
        """Every usable record (``load``: an unusable one is set aside)."""
        for dep_id in sorted(self.index()[0]):
            record = self.load(dep_id)
            if record is not None:
                yield record

    # -- who is running -----------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the dispatcher lock for the life of this process (released by the OS on any exit)."""
        self.repair()
        ensure_dir(self.dir, 0o700)
        fd = os.open(os.path.join(self.dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd

    def dispatcher_running(self) -> bool:
        """True when some dispatcher holds the lock right now (used by status; takes no lasting lock)."""
        try:
            fd = os.open(os.path.join(self.dir, LOCK_NAME), os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False


def _stamp() -> str:
    """A name part unique to this run: UTC time and pid."""
    return "%s-%d" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), os.getpid())


def _move_private(src: str, dest: str) -> None:
    """Rename ``src`` to ``dest`` and make it readable by its owner only (a symlink is moved as it is)."""
    os.rename(src, dest)
    if not os.path.islink(dest):
        os.chmod(dest, 0o700 if os.path.isdir(dest) else 0o600)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def now() -> float:
    return time.time()

