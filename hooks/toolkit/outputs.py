"""The files a hook leaves per deployment: its working and outputs directories, the declared outputs a tool
writes to ``<heat_outputs_path>.<name>`` (SPEC §8.0), and pruning the files of deployments that left.

On the hook start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from agent_common.deployment_contract import Deployment, deployment_id
from hooks.toolkit.context import HookContext

LOG = logging.getLogger("heat-config")


class Workspace:
    """Where one deployment's run of a hook writes: the working directory and ``heat_outputs_path``.

    (A plain class, as HookResult: it is on every hook's start-up path.)
    """

    __slots__ = ("dep_id", "working", "heat_outputs_path")

    def __init__(self, dep_id: str, working: str, heat_outputs_path: str) -> None:
        self.dep_id = dep_id
        self.working = working
        self.heat_outputs_path = heat_outputs_path

    def outputs(self, deployment: Deployment) -> Dict[str, Any]:
        """The declared outputs the tool wrote for this run (``output_files``)."""
        return output_files(self.heat_outputs_path, deployment)


def prepare_workspace(deployment: Deployment, ctx: HookContext, working: Tuple[str, str],
                      outputs: Tuple[str, str]) -> Workspace:
    """The prologue of a hook whose tool writes outputs files: check the id, create the working and
    outputs directories (each an ``(environment variable, default)`` pair) 0700, and remove the output
    files an earlier run of the same id left, so stale outputs are never reported."""
    dep_id = deployment_id(deployment)
    outputs_dir = ctx.private_dir(*outputs)
    working_dir = ctx.private_dir(*working)
    workspace = Workspace(dep_id, working_dir, os.path.join(outputs_dir, dep_id))
    remove_output_files(workspace.heat_outputs_path)
    return workspace


def output_files(base_path: str, deployment: Deployment) -> Dict[str, Any]:
    """Declared outputs read from ``<base_path>.<name>`` files, content unchanged; missing files skipped (§8.0)."""
    values: Dict[str, Any] = {}
    for output in deployment.get("outputs") or []:
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str) or not name or "/" in name or "\0" in name:
            continue
        try:
            with open("%s.%s" % (base_path, name), encoding="utf-8", errors="replace") as f:
                values[name] = f.read()
        except OSError:
            pass
    return values


def remove_output_files(base_path: str) -> None:
    """Remove ``<base_path>.*`` left by an earlier run of the same id, so stale outputs are never reported."""
    directory, prefix = os.path.split(base_path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix + "."):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _owner(name: str, ids: Iterable[str]) -> bool:
    return any(name == i or name.startswith(i + ".") for i in ids)


def prune_dir(directory: str, keep_ids: Iterable[str], gone_ids: Optional[Iterable[str]] = None,
              owner_of: Optional[Callable[[str], Optional[str]]] = None) -> List[str]:
    """Remove the entries of deployments no longer in the metadata (§12.13.15); returns the names removed.

    An entry belongs to the deployment ``owner_of(name)`` names (None: not this hook's
    file, never touched); by default ``<id>`` and ``<id>.<anything>`` belong to ``<id>``.
    With ``gone_ids`` (the dispatcher knows which deployments left: ``ctx.gone_ids``)
    only their entries are removed, so a directory a user pointed elsewhere loses
    nothing else; without it, every entry no kept id owns is removed.
    """
    keep = set(keep_ids)
    gone = None if gone_ids is None else set(gone_ids)
    removed: List[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if owner_of is None:
            if _owner(name, keep) or (gone is not None and not _owner(name, gone)):
                continue
        else:
            owner = owner_of(name)
            if owner is None or owner in keep or (gone is not None and owner not in gone):
                continue
        path = os.path.join(directory, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(name)
            LOG.debug("Removed %s: its deployment is gone", path)
        except OSError as exc:
            LOG.warning("Could not remove %s: %s", path, exc.strerror)
    return removed


def suffix_owner(*suffixes: str) -> Callable[[str], Optional[str]]:
    """An ``owner_of`` for prune_dir: ``<id><suffix>`` belongs to ``<id>``, any other name to nobody."""
    def owner(name: str) -> Optional[str]:
        for suffix in suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return None

    return owner

