"""What each mustache template rendered last time, so that a run where nothing it depends on changed skips it.

os-refresh-config runs os-apply-config whenever any metadata changed, and most
templates read keys that did not. For each mustache template we remember the
digest of its text and control file (and, once they are a few seconds old, their
stat identity, so that an unchanged template is not even read), the top-level
metadata keys it looked up (and the digest of their values), and the digest, mode
and owner of the file it wrote.
When all of these still hold, including the file on disk, the template is neither
rendered nor written. Anything else (Jinja2, executable templates, partials,
delimiter changes, a failed run, `--validate`, `--dry-run`) renders as usual.

The cache lives in a state directory of its own (see ``cache_path``), never in the
rendered tree, one file per template root and output root, mode 0600; losing it only
costs one full render.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from typing import Any, Dict, List, Mapping, Optional, Set

from agent_common.atomic import atomic_write, ensure_dir
from agent_common.documents import loads_json, read_bytes
from agent_common.paths import PATHS

VERSION = 1
STATE_DIR = PATHS["oac_state_dir"]
RACY_NS = 2 * 10**9  # see _racy()
WHOLE = "\0whole"  # the template used the whole document ({{.}} at the top)
_UNCACHEABLE = re.compile(r"\{\{\s*[>=]")  # partials read other files; new delimiters could hide them


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class RecordingDict(dict):
    """The metadata root handed to pystache: it notes every top-level name a template looks up."""

    def __init__(self, data: Dict[str, Any]) -> None:
        super().__init__(data)
        self.looked_up: Set[str] = set()

    def __contains__(self, key: object) -> bool:
        self.looked_up.add(key)  # type: ignore[arg-type]
        return super().__contains__(key)

    def items(self):  # json.dumps of the whole root
        self.looked_up.add(WHOLE)
        return super().items()

    def take(self) -> List[str]:
        keys, self.looked_up = sorted(self.looked_up), set()
        return keys


def _racy(signature: List[Any]) -> bool:
    """Whether a file of ``signature`` changed too recently to be told apart by its times from a later edit.

    Timestamps move in clock ticks, so a same-size edit within the tick of the one recorded
    would keep every field: such a template is identified by its content until it is older.
    """
    newest = max(sig[3] for sig in signature if sig is not None)
    return time.time_ns() - newest < RACY_NS


def cacheable(text: str) -> bool:
    return not _UNCACHEABLE.search(text)


def cache_path(output_root: str, template_root: str, environ: Mapping[str, str] = os.environ) -> Optional[str]:
    """The render cache file for these roots, or None when this render keeps none.

    The state directory is ``$OS_APPLY_CONFIG_STATE_DIR``, else /var/lib/os-apply-config.
    Rendering into / (the agent's case) the cache is there, named after the template root as
    it always was. Another output root (a chroot, an image being built, a test) gets a cache,
    named after both roots, only when the variable is set: the host's /var/lib is not that
    tree's state, and would collect a file for every such root for ever.
    """
    chosen = environ.get(STATE_DIR.env)
    output_root, template_root = os.path.abspath(output_root), os.path.abspath(template_root)
    if output_root == "/":
        key = template_root
    elif chosen:
        key = "%s\0%s" % (template_root, output_root)
    else:
        return None
    return os.path.join(chosen or STATE_DIR.default, "render-cache-%s.json" % digest(key.encode())[:16])


class RenderCache:
    def __init__(self, path: str, context: Dict[str, Any]) -> None:
        self.path = path
        self.context = context
        self._key_digests: Dict[str, str] = {}
        self.entries: Dict[str, Dict[str, Any]] = {}
        self._changed = True  # until the file on disk is known to hold exactly self.entries
        try:
            doc = loads_json(read_bytes(self.path), self.path)
            if doc.get("version") == VERSION and isinstance(doc.get("entries"), dict):
                self.entries = doc["entries"]
                self._changed = False
        except (OSError, ValueError, AttributeError):
            pass  # no cache, or a broken one: everything renders

    def deps_digest(self, keys: List[str]) -> str:
        parts = []
        for key in keys:
            if key not in self._key_digests:
                value = self.context if key == WHOLE else self.context.get(key, {"\0missing": True})
                self._key_digests[key] = digest(json.dumps(value, sort_keys=True).encode())
            parts.append("%s=%s" % (key, self._key_digests[key]))
        return digest("\n".join(parts).encode())

    @staticmethod
    def signature(template_path: str, control_path: Optional[str]) -> Optional[List[Any]]:
        """The identity of a template and its control file as stat sees it, or None when one cannot be read.

        Inode, size, mtime and ctime: any write or replacement changes one of them, and ctime
        cannot be set back by anyone. Taken before the files are read, so an edit that lands
        while they are read shows on the next run.
        """
        sig: List[Any] = []
        for path in (template_path, control_path):
            if path is None:
                sig.append(None)
                continue
            try:
                st = os.stat(path)
            except OSError:
                return None
            sig.append([st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        return sig

    def known_key(self, target: str, signature: Optional[List[Any]]) -> Optional[str]:
        """The template digest recorded for ``target`` when its template and control still have ``signature``."""
        entry = self.entries.get(target)
        if signature is None or not entry or entry.get("signature") != signature:
            return None
        return entry.get("template")

    def hit(self, target: str, template_digest: str, target_path: str) -> Optional[Dict[str, Any]]:
        """The entry for ``target`` if its template, its dependencies and the file on disk are all as recorded."""
        entry = self.entries.get(target)
        if not entry or entry.get("template") != template_digest:
            return None
        if entry.get("deps_digest") != self.deps_digest(entry.get("deps", [])):
            return None
        try:
            st = os.lstat(target_path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or [st.st_size, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid] != entry.get(
            "file"
        ):
            return None
        try:
            with open(target_path, "rb") as f:
                if digest(f.read()) != entry.get("body"):
                    return None
        except OSError:
            return None
        return entry

    def record(self, target: str, template_digest: str, deps: List[str], warnings: List[str], body: bytes,
               target_path: str, signature: Optional[List[Any]] = None) -> None:
        try:
            st = os.lstat(target_path)
        except OSError:
            if self.entries.pop(target, None) is not None:
                self._changed = True
            return
        entry = {
            "template": template_digest, "deps": deps, "deps_digest": self.deps_digest(deps), "warnings": warnings,
            "body": digest(body), "file": [st.st_size, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid],
        }
        if signature is not None and not _racy(signature):
            entry["signature"] = signature
        if self.entries.get(target) != entry:
            self.entries[target] = entry
            self._changed = True

    def forget_except(self, targets: Set[str]) -> None:
        for target in set(self.entries) - targets:
            del self.entries[target]
            self._changed = True

    def save(self) -> None:
        """Write the cache if it changed: a run that changed nothing writes nothing (nor serialises it)."""
        if not self._changed:
            return
        data = json.dumps({"version": VERSION, "entries": self.entries}, sort_keys=True)
        ensure_dir(os.path.dirname(self.path), 0o755)
        atomic_write(self.path, data, 0o600, sync=False)
