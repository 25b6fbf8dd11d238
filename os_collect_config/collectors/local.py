"""local: one key per JSON file in the configured directories (SPEC §2.12).

A directory owned by someone else or writable by everyone, or a file writable by
everyone, makes the whole source unavailable.  One unparsable file does not disable
the others: that file's last good value (its cache file) stays in force until it is
fixed.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import logging
import os
import stat

from agent_common.documents import NotRegularFile, loads_json, read_bytes
from agent_common.paths import get_path
from os_collect_config.cache import MISSING, Cache
from os_collect_config.collectors.base import Collected, Collector, NotConfigured, Option, Unavailable

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Set

LOG = logging.getLogger("os_collect_config.local")  # the original's logger name (SPEC §2.19.3)


class LocalCollector(Collector):
    name = "local"
    options = (
        Option("path", type="multi", default=[get_path("occ_local_path")],
               help="Local directory to scan for Metadata files."),
    )

    def __init__(self, conf, ctx) -> None:
        super().__init__(conf, ctx)
        self._reported_missing: Set[str] = set()

    def collect(self) -> List[Collected]:
        paths = self.conf.get("path") or []
        if not paths:
            raise NotConfigured("No path configured.")
        found: List[Collected] = []
        for directory in paths:
            try:
                st = os.stat(directory)
            except OSError:
                if directory not in self._reported_missing:
                    LOG.warning("%s not found. Skipping", directory)
                    self._reported_missing.add(directory)
                continue
            self._reported_missing.discard(directory)
            if not stat.S_ISDIR(st.st_mode):
                raise Unavailable("[local] path %s is not a directory" % directory)
            _check_owner_and_mode(directory, st)
            found.extend(self._read_dir(directory))
        if not found:
            LOG.debug("No local metadata found (%s)", paths)
        # Code-point order of the basenames, stable for duplicates (the original sorts in the C locale).
        return sorted(found, key=lambda item: item[0])

    def _read_dir(self, directory: str) -> List[Collected]:
        out: List[Collected] = []
        for name in os.listdir(directory):
            if name.startswith("."):
                continue
            path = os.path.join(directory, name)
            if os.path.isdir(path):
                continue
            if os.stat(path).st_mode & stat.S_IWOTH:
                raise Unavailable("%s is world writable. This is a security risk." % path)
            try:
                value = loads_json(read_bytes(path), path)
            except NotRegularFile:  # a FIFO would block the agent for ever; a socket or device is no file
                LOG.warning("%s is not a regular file; skipped.", path)
                continue
            except (OSError, ValueError) as exc:
                last = Cache(self.ctx.cachedir).load(name)
                keep = "keeping its last good value" if last is not MISSING else "skipped"
                LOG.warning("%s; %s.", _reason(path, exc), keep)
                if last is not MISSING:
                    out.append((name, last))
                continue
            out.append((name, value))
        return out


def _reason(path: str, exc: Exception) -> str:
    """One line naming the file: documents' ValueErrors already do; an OSError gets its path added."""
    if isinstance(exc, OSError):
        return "cannot read %s: %s" % (path, exc.strerror or exc)
    return str(exc)


def _check_owner_and_mode(directory: str, st: os.stat_result) -> None:
    """Group-writable is allowed (the owner may let others write); another owner or world-writable is not."""
    if st.st_uid != os.getuid():
        raise Unavailable("%s is owned by another user. This is a security risk." % directory)
    if st.st_mode & stat.S_IWOTH:
        raise Unavailable("%s is world writable. This is a security risk." % directory)
