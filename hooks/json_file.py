"""The ``json-file`` hook (SPEC §8.6): write each value of ``config`` as a JSON file at its key's path.

Compatible with the heat-agents json-file hook: same byte layout (4-space indent,
sorted keys, ``,``/``: `` separators, no trailing newline), parent directories
created 0700 when missing, an existing file keeps its mode.  Each file is replaced
atomically; a path that cannot be written is named in deploy_stderr with the
reason, the other files are still written, and the status is 1.
"""
from __future__ import annotations

import errno
import logging
import os
from typing import Any, Optional, Tuple

from agent_common.atomic import atomic_write
from agent_common.deployment_contract import BadDeployment, Deployment
from hooks.toolkit.context import HookContext, ensure_private_dir
from hooks.toolkit.json_text import original_layout
from hooks.toolkit.result import HookResult

LOG = logging.getLogger("heat-config")


def path_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be written to, or None: only absolute paths, since the hook's cwd is nobody's choice."""
    if not path or "\0" in path:
        return "is empty or contains a NUL byte"
    if not os.path.isabs(path):
        return "is not an absolute path"
    return None


def _mode_and_owner(path: str) -> Tuple[int, Optional[int], Optional[int]]:
    """An existing file keeps its mode and owner (the original truncated it in place); a new one: 0666 & ~umask."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask, None, None
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


def write_file(path: str, value: Any) -> None:
    """Write one entry; through a symlink to its target, as the original's ``open(path, 'w')`` did."""
    target = os.path.realpath(path)
    try:
        ensure_private_dir(os.path.dirname(target))
    except FileExistsError:  # the parent is a file: say so rather than "File exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
    mode, uid, gid = _mode_and_owner(target)
    atomic_write(target, original_layout(value), mode, uid=uid, gid=gid)


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    config = deployment.get("config")
    if not isinstance(config, dict):
        raise BadDeployment("config must be an object mapping file path to JSON value, not %s"
                            % type(config).__name__)
    errors = []
    for path, value in config.items():
        problem = path_problem(path)
        if problem is None:
            try:
                write_file(path, value)
                LOG.info("Wrote %s", path)
                continue
            except OSError as exc:
                problem = "cannot be written: %s" % (exc.strerror or exc)
        LOG.error("%r %s", path, problem)
        errors.append("json-file: %r %s\n" % (path, problem))
    return HookResult(stderr="".join(errors), status_code=1 if errors else 0)
