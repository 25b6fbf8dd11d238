"""The metadata cache: ``<key>.json``, ``.orig``, ``.last``, ``os_config_files.json`` and the backup copy.

Names, contents and commit semantics are the original's (SPEC §2.13): the command
sees ``<key>.json``; ``.last`` is what the last successful command saw, and a key
differing from it is a change.  Every write is atomic and durable, every file 0600
in a 0700 directory; a torn ``.last`` is a change rather than a crash, and the
backup is swapped in whole.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import os
import time

from agent_common.atomic import TEMP_NAME, atomic_copy, atomic_write, fsync_path, remove_stale_temp_files
from os_collect_config.collectors.base import STATE_DIRNAME, read_json_safe, read_text_safe

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Iterable, Optional, Sequence, Set, Tuple

LOG = logging.getLogger(__name__)

FILE_LIST_NAME = "os_config_files"
#: What ``Cache.load`` returns for an absent or unreadable file (``None`` is a valid JSON value).
MISSING = object()


def dumps(value: Any) -> str:
    """A cache file's exact bytes: indent 1, non-ASCII escaped, no trailing newline (as the original)."""
    return json.dumps(value, indent=1)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_key(key: Any, producer: str, reserved: Iterable[str]) -> Optional[str]:
    """Why ``key`` cannot name a cache file, or None when it can (weakness 6).

    A key must stay inside the cache dir and must not take the file of another
    collector's main key or of ``os_config_files``.
    """
    if not isinstance(key, str) or not key:
        return "key must be a non-empty string"
    if "/" in key or "\\" in key or "\0" in key or key.startswith("."):
        return "key %r would leave the cache directory or hide a file" % key
    if len(key.encode("utf-8")) > 200:
        return "key is longer than 200 bytes"
    if key == FILE_LIST_NAME or (key in reserved and key != producer):
        return "key %r would overwrite the %s file" % (key, key)
    return None


class Cache:
    """One cache directory and its backup copy."""

    def __init__(self, cachedir: str, backup_dir: Optional[str] = None) -> None:
        self.cachedir = cachedir
        self.backup_dir = backup_dir

    def ensure(self) -> None:
        """Create the cache dir 0700 with one mkdir (the parent must exist, as in the original); tighten an old one.

        An existing one may hold the temp file of a write that a kill or power cut
        interrupted: those are removed here, once per start.
        """
        try:
            os.mkdir(self.cachedir, 0o700)
        except FileExistsError:
            st = os.stat(self.cachedir)
            if st.st_mode & 0o077 and st.st_uid == os.getuid():
                LOG.info("Restricting %s to mode 0700: it holds metadata and credentials.", self.cachedir)
                os.chmod(self.cachedir, 0o700)
            started = time.time()
            for directory in (self.cachedir, os.path.join(self.cachedir, STATE_DIRNAME)):
                for path in remove_stale_temp_files(directory, started):
                    LOG.info("Removed %s, left by a write that was interrupted.", path)

    def path(self, key: str) -> str:
        return os.path.join(self.cachedir, "%s.json" % key)

    def load(self, key: str, suffix: str = "") -> Any:
        """The parsed value of ``<key>.json<suffix>``, or ``MISSING`` when absent or unreadable."""
        return read_json_safe(self.path(key) + suffix, MISSING)

    def has(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def store(self, key: str, value: Any) -> Tuple[bool, str]:
        """Write ``<key>.json``; return (changed since the last successful command, path)."""
        dest = self.path(key)
        data = dumps(value)
        changed = False
        if not os.path.exists(dest + ".orig"):
            atomic_write(dest + ".orig", data, 0o600)
            changed = True
        if read_text_safe(dest) != data:
            atomic_write(dest, data, 0o600)
        if not changed:
            last = self.load(key, ".last")
            if last is MISSING:
                if os.path.exists(dest + ".last"):
                    LOG.warning("Ignoring unreadable %s.last; treating %s as changed.", dest, key)
                changed = True
            else:
                changed = _canonical(last) != _canonical(value)
        return changed, dest

    def commit(self, keys: Iterable[str]) -> None:
        """After the command succeeded: ``<key>.json`` becomes ``<key>.json.last``."""
        for key in keys:
            dest = self.path(key)
            if os.path.exists(dest):
                atomic_copy(dest, dest + ".last", 0o600)

    def remove(self, keys: Iterable[str]) -> None:
        """Delete the cache files of keys no longer collected (weakness 5)."""
        for key in keys:
            for suffix in ("", ".orig", ".last"):
                try:
                    os.unlink(self.path(key) + suffix)
                except FileNotFoundError:
                    pass
            LOG.info("Removed cache files of %s: no source provides it any more.", key)

    def write_file_list(self, keys: Sequence[str]) -> str:
        """``os_config_files.json``: the compact JSON list of the cache paths of ``keys``."""
        dest = self.path(FILE_LIST_NAME)
        atomic_write(dest, json.dumps([self.path(k) for k in keys]), 0o600, prefix="tmp_meta_list.")
        return dest

    def backup(self) -> None:
        """Replace the backup dir by a full copy of the cache dir, swapped in whole (weakness 2)."""
        if not self.backup_dir:
            return
        import shutil
        import tempfile
        target = os.path.abspath(self.backup_dir)
        parent, name = os.path.split(target)
        os.makedirs(parent, exist_ok=True)
        for leftover in os.listdir(parent):
            if leftover.startswith((".%s.new-" % name, ".%s.old-" % name)):
                shutil.rmtree(os.path.join(parent, leftover), ignore_errors=True)
        fresh = tempfile.mkdtemp(prefix=".%s.new-" % name, dir=parent)
        shutil.copytree(self.cachedir, fresh, dirs_exist_ok=True, copy_function=_copy,
                        ignore=_not_backed_up)
        os.chmod(fresh, 0o700)
        fsync_path(fresh)
        old = None
        if os.path.lexists(target):
            old = tempfile.mkdtemp(prefix=".%s.old-" % name, dir=parent)
            os.rename(target, os.path.join(old, name))
        os.rename(fresh, target)
        fsync_path(parent)
        if old:
            shutil.rmtree(old, ignore_errors=True)


def _copy(src: str, dst: str) -> str:
    """copytree's copy function: every backup file durable and 0600 (SPEC §2.13.2)."""
    atomic_copy(src, dst, 0o600)
    return dst


def _not_backed_up(directory: str, names: Sequence[str]) -> Set[str]:
    return {n for n in names if n == STATE_DIRNAME or TEMP_NAME.match(n)}
