"""Which metadata files os-apply-config reads, and how it merges them (SPEC §4.3, §4.4).

Every `-m` counts and beats `OS_CONFIG_FILES` (which counts even when empty), which
beats the list file; the fallback files are read only when those give no existing
file.  A file named with `-m` must exist; other empty and missing paths are skipped, documents that are not non-empty objects
are ignored, and the rest are deep-merged in read order, later files winning, lists
replaced.  No metadata at all is a warning; a broken list file is one clear error.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from agent_common.documents import loads_json, read_bytes
from agent_common.paths import PATHS

LOG = logging.getLogger("os-apply-config")

DEFAULT_LIST_FILE = PATHS["oac_os_config_files"].default
#: Read (with a deprecation warning) when the built-in default list file gives nothing.
OLD_LIST_FILE = "/var/run/os-collect-config/os_config_files.json"
DEFAULT_FALLBACK = [
    "/var/cache/heat-cfntools/last_metadata",
    "/var/lib/heat-cfntools/cfn-init-data",
    "/var/lib/cloud/data/cfn-init-data",
]


class MetadataError(Exception):
    """A metadata file or list file that cannot be used; the message names it."""


MISSING = object()


def _load_json(path: str, what: str) -> Any:
    """The parsed file, or MISSING when it does not exist (skipped silently, as the original).

    Read through agent_common.documents: a FIFO is refused instead of blocking, and bytes
    that are not UTF-8 or JSON nested too deeply are one error naming the file.
    """
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        return MISSING
    except OSError as exc:
        raise MetadataError("Could not open %s for reading. %s" % (path, exc.strerror)) from None
    try:
        return loads_json(data, path)
    except ValueError as exc:
        raise MetadataError("Could not parse %s: %s" % (what, exc)) from None


def _load_list_file(path: str) -> List[str]:
    value = _load_json(path, "list file")
    if value is MISSING:
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise MetadataError("No list of paths in json file: %s" % path)
    return value


def require_named(cli_files: Sequence[str]) -> None:
    """Files named with `-m` must exist: a typo there is a mistake, not "no metadata".

    The original skipped them silently and rendered every template with empty values.
    Files that come from OS_CONFIG_FILES, the list file or the fallback list stay
    optional, as they always were: those lists name files that may not exist yet.
    """
    for path in cli_files:
        if path and not os.path.exists(path):
            raise MetadataError("metadata file %s (named with -m/--metadata) does not exist" % path)


def main_list(cli_files: Sequence[str], environ: Mapping[str, str], list_file: str) -> List[str]:
    """SPEC §4.3.1: the main list of metadata paths."""
    if cli_files:
        return list(cli_files)
    if "OS_CONFIG_FILES" in environ:
        return environ["OS_CONFIG_FILES"].split(":")
    files = _load_list_file(list_file)
    if not files and list_file == DEFAULT_LIST_FILE:
        if os.path.exists(OLD_LIST_FILE):
            LOG.warning("DEPRECATED: falling back to %s", OLD_LIST_FILE)
        files = _load_list_file(OLD_LIST_FILE)
    return files


class Metadata:
    """The merged document and the files it came from."""

    def __init__(self) -> None:
        self.config: Dict[str, Any] = {}
        self.read: List[str] = []
        self.looked_at: List[str] = []


def deep_merge(base: Dict[str, Any], other: Dict[str, Any]) -> Dict[str, Any]:
    """``other`` merged into a copy of ``base``: objects merge recursively, anything else replaces.

    Without recursion in Python: from 3.12 the json module parses objects nested deeper
    than Python code may recurse, and such a document must merge, not crash.
    """
    merged = dict(base)
    pending = [(merged, other)]
    while pending:
        target, source = pending.pop()
        for key, value in source.items():
            current = target.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                target[key] = dict(current)  # a copy: the documents merged are left as they were
                pending.append((target[key], value))
            else:
                target[key] = value
    return merged


def _merge_files(paths: Sequence[str], result: Metadata) -> None:
    for path in paths:
        if not path:
            continue
        result.looked_at.append(path)
        doc = _load_json(path, "metadata file")
        if doc is MISSING or doc is None:  # a file holding null counts as absent, as it always did
            continue
        result.read.append(path)
        if isinstance(doc, dict) and doc:
            result.config = deep_merge(result.config, doc)
        elif doc not in ({}, None):
            LOG.warning("ignoring %s: its top level is not a JSON object", path)


def collect(main: Sequence[str], fallback: Sequence[str]) -> Metadata:
    """Read and merge the main list; only when none of its files exists, the fallback files."""
    result = Metadata()
    _merge_files(main, result)
    if not result.read and fallback:
        _merge_files(fallback, result)
    if not result.read:
        LOG.warning("no metadata: none of %s exists", ", ".join(result.looked_at) or "the metadata files (none given)")
    return result


def lookup(config: Any, dotted: str) -> Any:
    """SPEC §4.10.1: walk a dotted key through objects and (Python-indexed) lists; MISSING when it is not there."""
    value = config
    for step in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(step, MISSING)
        elif isinstance(value, list):
            try:
                value = value[int(step)]
            except (ValueError, IndexError):
                return MISSING
        else:
            return MISSING
        if value is MISSING or value is None:
            return MISSING
    return value


def subhash(config: Dict[str, Any], dotted: Optional[str]) -> Dict[str, Any]:
    """SPEC §4.4.2: the object at ``dotted``, each step an object."""
    if not dotted:
        return config
    value: Any = config
    for step in dotted.split("."):
        if isinstance(value, dict) and isinstance(value.get(step), dict):
            value = value[step]
        else:
            raise MetadataError("key '%s' does not correspond to a hash in the metadata file" % dotted)
    return value
