"""Finding the hook of a group and running it, built-in or executable (SPEC §6.6, §6.7).

A hook executable in a hook directory wins, so a hook a user drops in works as
with the original; otherwise the built-in hook of that group runs in-process.
An executable that is only our shim for a built-in (``exec heat-config-hook
GROUP``) is recognised and short-cut, which saves a process per deployment.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Dict, List, Mapping, Optional

import hooks
from agent_common.deployment_contract import Deployment
from agent_common.documents import loads_json
from agent_common.paths import HOOK_DIRS
from agent_common.proc import ProcResult
from heat_config.signals import fit
from hooks.toolkit.context import HookContext
from hooks.toolkit.result import decode, log_outcome, result_from_proc
from hooks.toolkit.serve import call

LOG = logging.getLogger("heat-config")

#: What a hook shim installed by our elements contains; such a file stands for the built-in hook.
SHIM_MARK = "heat-config-hook"
#: Cap on an executable hook's stdout, which is its whole JSON result: generous, so that a result with
#: large deploy_stdout/deploy_stderr is parsed whole before they are trimmed to fit the signal.
RESULT_CAP = 32 * 1024 * 1024


def search_dirs(environ: Mapping[str, str]) -> List[str]:
    """Hook directories in lookup order (SPEC §6.2): $HEAT_CONFIG_HOOKS, then the two standard ones."""
    dirs = [environ["HEAT_CONFIG_HOOKS"]] if environ.get("HEAT_CONFIG_HOOKS") else []
    return [d for d in dirs + list(HOOK_DIRS) if os.path.isdir(d)]


def sanitise(group: str) -> str:
    """The original's hook file name: letters, digits, '-' and '_' only (``Heat::Ungrouped`` → ``HeatUngrouped``)."""
    return "".join(c for c in group if c in "-_" or c.isalnum())


@dataclass(frozen=True)
class HookRef:
    """The hook chosen for a group: an executable path, or a built-in module."""

    group: str
    path: Optional[str] = None
    module: Optional[ModuleType] = None

    @property
    def label(self) -> str:
        return self.path or "built-in %s hook" % self.group


def _is_shim(path: str, group: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512).decode("utf-8", "replace")
    except OSError:
        return False
    return re.search(r"\b%s\s+%s\b" % (SHIM_MARK, re.escape(group)), head) is not None


def find(group: str, environ: Mapping[str, str]) -> Optional[HookRef]:
    """The hook for ``group``: the exact name, then the sanitised name, in each directory; then built-in.

    Trying the exact name first keeps ``a.b`` and ``ab`` apart (SPEC §11.34) while
    ``Heat::Ungrouped``-style names still find their sanitised hook file.
    """
    names = [group] if sanitise(group) == group else [group, sanitise(group)]
    for directory in search_dirs(environ):
        for name in names:
            path = os.path.join(directory, name)
            if os.path.exists(path):
                if _is_shim(path, group) and hooks.module(group) is not None:
                    return HookRef(group, module=hooks.module(group))
                return HookRef(group, path=path)
    builtin = hooks.module(group)
    return HookRef(group, module=builtin) if builtin is not None else None


def known_groups(environ: Mapping[str, str]) -> List[str]:
    """Every group a hook exists for: the built-in ones and the files in the hook directories."""
    found = set(hooks.groups())
    for directory in search_dirs(environ):
        try:
            found.update(name for name in os.listdir(directory) if not name.startswith("."))
        except OSError:
            continue
    return sorted(found)


def no_hook_message(group: str, environ: Mapping[str, str]) -> str:
    """Why ``group`` has no hook, with the known groups and the closest one (issue 15 item 16)."""
    known = known_groups(environ)
    close = difflib.get_close_matches(group, known, n=1)
    return "no hook for group %s%s; known groups: %s (hook directories searched: %s)" % (
        group, " (did you mean %s?)" % close[0] if close else "", ", ".join(known),
        ", ".join(search_dirs(environ)) or "none exists")


def execute(ref: HookRef, deployment: Deployment, ctx: HookContext) -> Dict[str, Any]:
    """Run the hook and return the signal data for Heat (SPEC §6.7, with §11.19 fixed)."""
    if ref.module is not None:
        return call(ref.module.run, deployment, ctx).signal_data()
    assert ref.path is not None
    payload = json.dumps(deployment).encode("utf-8", "replace")
    LOG.debug("Running %s", ref.path)
    try:
        result = ctx.run([ref.path], stdin_data=payload, stdout_cap=RESULT_CAP, echo_stdout=False)
    except OSError as exc:
        LOG.error("Error running %s: %s", ref.path, exc.strerror)
        return {"deploy_stdout": "", "deploy_stderr": "cannot execute hook %s: %s\n" % (ref.path, exc.strerror),
                "deploy_status_code": 126}
    log_outcome(ref.path, result.returncode, bool(result.returncode))
    LOG.debug("Hook stderr:\n%s", decode(result.stderr, result.stderr_truncated))
    parsed = _json_result(result)
    if parsed is not None:
        return parsed
    excess = len(result.stdout) - ctx.output_cap  # as raw text, stdout keeps the tail any tool output keeps
    if excess > 0:
        result.stdout, result.stdout_truncated = result.stdout[excess:], result.stdout_truncated + excess
    return result_from_proc(result, ctx).signal_data()


def _json_result(result: ProcResult) -> Optional[Dict[str, Any]]:
    """The hook's whole stdout as its JSON result object, trimmed to fit a signal; None when it is not one.

    The result is parsed whole (up to RESULT_CAP) and only then trimmed as §7.4 says
    (``signals.fit``: deploy_stdout and deploy_stderr lose their start, the cut is
    stated), so a large result keeps its outputs (issue 12 defect 3).
    """
    if result.timed_out or result.stdout_truncated or not result.stdout.strip():
        return None
    try:
        parsed = loads_json(result.stdout, "the hook's output")
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return json.loads(fit(parsed))
