"""Atomic, durable file writes: a temp file in the same directory, fsync, rename, fsync of the directory.

A power cut or a kill -9 leaves either the old file or the new one, never half of either.
A SIGTERM leaves no temp file either, in a process that calls ``hold_sigterm_during_writes``.

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import _thread
import errno
import os
import re
import signal

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Optional, Sequence, Tuple, Union

    Data = Union[bytes, str]


def ensure_dir(path: str, mode: int = 0o700) -> None:
    """Create ``path`` (and parents) with ``mode`` if missing; leave an existing one as is."""
    os.makedirs(path, mode=mode, exist_ok=True)


def fsync_path(path: str) -> None:
    """Flush ``path`` to disk: a file's content, or a directory's new entries (renames, files, subdirectories)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: fsyncs of one batch in flight at once (see ``fsync_all``).
FSYNC_WORKERS = 16


def fsync_all(paths: Sequence[str]) -> None:
    """``fsync_path`` every path, several at a time; the first failure is raised once all are done.

    One by one, each fsync waits for its own journal commit and disk flush (500 small
    files: 0.2 to 1 s here); fsyncs in flight together are committed together, for about
    the cost of one ``os.sync()`` when the machine is idle, and without waiting for
    every other process's dirty data when it is not.
    """
    if len(paths) <= 1:
        for path in paths:
            fsync_path(path)
        return
    import collections
    import threading  # lazily: only a batch of writes needs threads

    pending, failures = collections.deque(paths), []

    def work() -> None:
        while True:
            try:
                path = pending.popleft()  # atomic: each path is taken by one thread
            except IndexError:
                return
            try:
                fsync_path(path)
            except OSError as exc:
                failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(min(FSYNC_WORKERS, len(paths)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise failures[0]


#: One entry per atomic write in flight, the writing thread's id (a list: appends and removes are atomic).
_writes_in_flight: list = []
#: A SIGTERM came while a write was in flight; the write that ends last delivers it again.
_sigterm_held = [False]


def hold_sigterm_during_writes() -> None:
    """Let a SIGTERM wait for the atomic writes in flight, then end the process as SIGTERM does.

    ``systemctl stop`` (or ``docker stop``) can land between a write's temp file and its
    rename; with SIGTERM's default action the temp file stayed behind until the next start
    removed it. The process still dies of the signal (its exit status, and systemd's view
    of it, are unchanged), only after the rename, an fsync later at most. Only the main
    thread can install a handler; writes in every thread are waited for.
    """
    def on_sigterm(signum: int, frame: object) -> None:
        _sigterm_held[0] = True
        if not _writes_in_flight:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


class _WriteInFlight:
    """Marks one atomic write, from its temp file's creation to its rename or removal."""

    def __enter__(self) -> None:
        _writes_in_flight.append(_thread.get_ident())

    def __exit__(self, *exc_info: object) -> None:
        _writes_in_flight.remove(_thread.get_ident())
        if _sigterm_held[0] and not _writes_in_flight:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler, in the main thread, now ends the process


#: The characters of a temp file name's random part (as mkstemp's).
_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _create_temp_file(directory: str, prefix: str) -> Tuple[int, str]:
    """A new file ``<prefix><8 random characters>`` in ``directory``, created exclusively 0600: (fd, path).

    What ``tempfile.mkstemp`` does, without importing tempfile (and with it shutil, random and
    the compression modules), which costs every hook run that writes a file ~5 ms.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = prefix + "".join(_TEMP_CHARS[byte % len(_TEMP_CHARS)] for byte in os.urandom(8))
        path = os.path.join(directory, name)
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temp file name", os.path.join(directory, prefix))


def atomic_write(
    path: str,
    data: Data,
    mode: int = 0o600,
    *,
    uid: Optional[int] = None,
    gid: Optional[int] = None,
    prefix: str = "tmp",
    sync: bool = True,
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content only.

    The mode (and owner, when given) is set on the temp file before the rename, so the
    new content is never visible with looser permissions than asked for.
    ``sync=False`` skips the two fsyncs: the replacement stays atomic for other
    processes and survives a kill -9, only a power cut may lose it. For files whose
    loss the caller can recover from (scripts, debug copies), where fsync would
    dominate the cost.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    with _WriteInFlight():
        fd, tmp = _create_temp_file(directory, prefix)
        try:
            os.fchmod(fd, mode)
            if uid is not None or gid is not None:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if sync:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(tmp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    if sync:
        fsync_path(directory)


#: The names ``atomic_write`` gives its temp files: the prefix (``tmp``, or ``tmp<word>.``) and 8 random characters.
TEMP_NAME = re.compile(r"^tmp(?:[a-z_]+\.)?[a-z0-9_]{8}$")


def remove_stale_temp_files(directory: str, before: float) -> List[str]:
    """Remove the temp files of ``atomic_write`` in ``directory`` last written before ``before``; name them.

    A process killed between creating its temp file and renaming it (kill -9, a
    SIGTERM with no handler, a power cut) leaves the temp file for ever, and a state
    directory fills with them.  ``before`` is when the caller started: a file written
    later may be another process's write in flight and is left alone.  A directory
    that does not exist holds nothing to remove.
    """
    removed: List[str] = []
    try:
        entries = [e for e in os.scandir(directory) if TEMP_NAME.match(e.name)]
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < before:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:  # its writer renamed it meanwhile
                continue
            removed.append(entry.path)
    return removed


def atomic_copy(src: str, dst: str, mode: int = 0o600) -> None:
    """Copy ``src`` over ``dst`` atomically (used for cache ``.last``/``.orig`` commits)."""
    with open(src, "rb") as f:
        atomic_write(dst, f.read(), mode)


class AtomicBatch:
    """Replace many files so that either all of them change or none does, durably.

    ``stage()`` writes each new content to a temp file beside its target (mode and
    owner set before anything is visible); ``commit()`` fsyncs every temp file, renames
    each over its target, then fsyncs every directory that got a new entry, so that a
    power cut leaves each file old or new; ``abort()`` (or an exception inside a
    ``with`` block) removes the temp files and leaves every target untouched.
    ``make_dirs()`` creates missing parents, whose new entries are made durable too.
    Not ``os.sync()``: that flushes every filesystem of the machine, and on a busy host
    waits seconds for data that is not ours.
    """

    def __init__(self, sync: bool = True) -> None:
        self.sync = sync
        self._staged: list = []
        self._dirs: dict = {}  # directories whose entries the batch changes (a dict: ordered, no duplicates)
        self._made: set = set()

    def __enter__(self) -> "AtomicBatch":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def make_dirs(self, directory: str) -> None:
        """Create ``directory`` and its missing parents (mode 0777 minus the umask, as ``os.makedirs``)."""
        directory = os.path.abspath(directory)
        if directory in self._made:
            return
        missing, parent = [], directory
        while not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        os.makedirs(directory, exist_ok=True)
        for created in missing:
            self._dirs[os.path.dirname(created)] = None
        self._made.add(directory)

    def stage(self, path: str, data: Data, mode: int, *, uid: Optional[int] = None,
              gid: Optional[int] = None, prefix: str = ".tmp") -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        directory, name = os.path.split(os.path.abspath(path))
        # One predictable name per target and process: cheaper than mkstemp's random tries
        # (hundreds of files per run), and O_EXCL|O_NOFOLLOW still refuse anything planted there.
        tmp = os.path.join(directory, "%s%s.%d" % (prefix, name, os.getpid()))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:
            os.unlink(tmp)  # left by an earlier process with our pid that died before renaming it
            fd = os.open(tmp, flags, 0o600)
        self._staged.append((tmp, path))
        self._dirs[directory] = None
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(f.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            f.write(data)

    def abort(self) -> None:
        for tmp, _ in self._staged:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        self._staged = []
        self._dirs = {}

    def commit(self) -> None:
        if not self._staged:
            return
        try:
            if self.sync:
                fsync_all([tmp for tmp, _ in self._staged])
            for tmp, path in self._staged:
                os.rename(tmp, path)
        except BaseException:
            self.abort()
            raise
        self._staged = []
        directories, self._dirs = list(self._dirs), {}
        if self.sync:
            fsync_all(directories)
