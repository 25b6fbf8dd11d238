"""The per-deployment journal: what happened to each deployment, written before each step (SPEC §12.1, §12.3).

One small JSON file per deployment, ``<deployed dir>/journal/<id>.json`` (0600,
directory 0700), replaced atomically at each step:

    received → running → finished → signalled

"running" is written (and synced) before the hook starts and "finished", with the
signal data, before the first signal attempt, so after a kill -9 the next run
knows whether a hook was interrupted (signal it failed, never re-run it) or
finished (signal it from the outbox).  The signal's own state (none, pending,
sent, refused) is part of the record: the records whose signal is pending are
the durable outbox.  A lock file held by the running dispatcher tells
``heat-config status`` "running" from "interrupted".

Beside each record that is not settled (its hook not finished, or its signal
pending) lies an empty ``<id>.open``: one directory listing tells a run which
records it must read, so a run with nothing new reads none of them.  The flag
is created before such a record is written and removed after a settled one is,
and the record's directory fsync makes both durable together.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from agent_common.atomic import atomic_write, ensure_dir

TYPE_CHECKING = False  # the running agent probes the journal between polls: typing would cost it ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, Iterator, List, Optional

JOURNAL_DIRNAME = "journal"
LOCK_NAME = ".lock"
OPEN_SUFFIX = ".open"

# Journal steps.
RECEIVED, RUNNING, FINISHED, SIGNALLED = "received", "running", "finished", "signalled"
# Signal states.
SIGNAL_NONE, SIGNAL_PENDING, SIGNAL_SENT, SIGNAL_REFUSED = "none", "pending", "sent", "refused"


#: Every field of a record and its default, in file order.
FIELDS: Dict[str, Any] = {
    "id": "", "name": "", "group": "", "action": "",
    "step": RECEIVED,
    "received_at": 0.0, "started_at": None, "finished_at": None,
    "status_code": None, "failed": None, "interrupted": False, "error": "",
    "signal": SIGNAL_NONE, "transport": "NO_SIGNAL", "attempts": 0, "next_try_at": None, "signal_error": "",
    "signal_data": None,
}


class Record:
    """The journal entry of one deployment (a plain class: the dispatcher's start-up path avoids dataclasses)."""

    __slots__ = tuple(FIELDS)

    def __init__(self, **values: Any) -> None:
        for name, default in FIELDS.items():
            setattr(self, name, values.get(name, default))

    def __repr__(self) -> str:
        return "Record(id=%r, step=%r, signal=%r)" % (self.id, self.step, self.signal)

    def to_dict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    @property
    def duration_s(self) -> Optional[float]:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    @property
    def settled(self) -> bool:
        """Finished and nothing left to send."""
        return self.step in (FINISHED, SIGNALLED) and self.signal != SIGNAL_PENDING

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Record":
        return cls(**{k: v for k, v in data.items() if k in FIELDS})


class Journal:
    """The journal directory of one deployed-state directory."""

    def __init__(self, deployed_dir: str) -> None:
        self.deployed_dir = deployed_dir
        self.dir = os.path.join(deployed_dir, JOURNAL_DIRNAME)
        self._lock_fd: Optional[int] = None

    def path(self, dep_id: str) -> str:
        return os.path.join(self.dir, dep_id + ".json")

    def load(self, dep_id: str) -> Optional[Record]:
        try:
            with open(self.path(dep_id), encoding="utf-8") as f:
                return Record.from_dict(json.load(f))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, record: Record, *, durable: bool = True) -> None:
        """Replace the record atomically; ``durable`` also survives a power cut (steps that guard a hook run)."""
        ensure_dir(self.dir, 0o700)
        flag = os.path.join(self.dir, record.id + OPEN_SUFFIX)
        if not record.settled:
            os.close(os.open(flag, os.O_WRONLY | os.O_CREAT, 0o600))
        atomic_write(self.path(record.id), json.dumps(record.to_dict(), sort_keys=True), 0o600, sync=durable)
        if record.settled:
            _unlink(flag)

    def remove(self, dep_id: str) -> None:
        _unlink(self.path(dep_id))
        _unlink(os.path.join(self.dir, dep_id + OPEN_SUFFIX))

    def index(self) -> "tuple[List[str], List[str]]":
        """(every id with a record, the ids whose record is not settled), from one directory listing."""
        try:
            names = os.listdir(self.dir)
        except OSError:
            return [], []
        ids = [n[: -len(".json")] for n in names if n.endswith(".json")]
        flagged = [n[: -len(OPEN_SUFFIX)] for n in names if n.endswith(OPEN_SUFFIX)]
        return ids, flagged

    def records(self) -> Iterator[Record]:
        try:
            names = sorted(os.listdir(self.dir))
        except OSError:
            return
        for name in names:
            if name.endswith(".json"):
                record = self.load(name[: -len(".json")])
                if record is not None:
                    yield record

    # -- who is running -----------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the dispatcher lock for the life of this process (released by the OS on any exit)."""
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


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def now() -> float:
    return time.time()


def has_unsettled(deployed_dir: str) -> bool:
    """Whether any deployment's hook or signal is not settled: one directory listing, no record read.

    The running os-collect-config asks this between polls to retry pending signals (SPEC §12.4).
    """
    try:
        return any(name.endswith(OPEN_SUFFIX) for name in os.listdir(os.path.join(deployed_dir, JOURNAL_DIRNAME)))
    except OSError:
        return False
