"""What a hook gets besides the deployment: HookContext (environment, timeout, output cap, tool runner),
and the small readers every hook uses on it (options, hook directories, the host name).

On the hook start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import logging
import os
import sys
import time

from agent_common import proc
from agent_common.deployment_contract import BadDeployment, hook_timeout
from hooks.toolkit.result import HookResult, ToolCannotRun, cannot_run

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs every hook run ~4 ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence

    from agent_common.deployment_contract import Deployment

LOG = logging.getLogger("heat-config")

#: Cap on each of stdout/stderr kept from a hook's tool (the tail is kept, the cut stated).
OUTPUT_CAP = 512 * 1024


class HookContext:
    """What the caller (dispatcher, heat-config-hook, heat-config run) gives a hook besides the deployment."""

    def __init__(self, environ: Optional[Dict[str, str]] = None, timeout: Optional[float] = None,
                 output_cap: int = OUTPUT_CAP, started: Optional[float] = None,
                 gone_ids: Optional[Iterable[str]] = None, on_start: Optional[Callable[[int], None]] = None,
                 echo_fd: Optional[int] = None) -> None:
        self.environ: Dict[str, str] = dict(os.environ) if environ is None else environ
        #: Where the tools' output also goes as it arrives (``heat-config run`` at a terminal, SPEC §12.18).
        self.echo_fd = echo_fd
        #: Called with the process group id of each tool ``run`` starts (the dispatcher journals it, §12.3).
        self.on_start = on_start
        #: For ``cleanup``: ids known to have left the metadata (None: not known).
        self.gone_ids = None if gone_ids is None else frozenset(gone_ids)
        #: Seconds the whole hook may take; None means no limit.
        self.timeout = timeout
        self.output_cap = output_cap
        self.started = time.monotonic() if started is None else started

    def __repr__(self) -> str:
        return "HookContext(timeout=%r)" % (self.timeout,)

    def remaining(self) -> Optional[float]:
        """Seconds left of the timeout (never below a small positive value), or None without a limit."""
        if not self.timeout:
            return None
        return max(self.timeout - (time.monotonic() - self.started), 0.01)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin_data: Optional[bytes] = None,
        stdout_cap: Optional[int] = None,
        echo_stdout: bool = True,
    ) -> proc.ProcResult:
        """Run a tool in its own process group, bounded by what is left of the timeout and the output cap
        (``stdout_cap`` instead for stdout, when given); its output shown live on ``echo_fd`` when set
        (stdout only when ``echo_stdout``: an executable hook's stdout is its JSON result)."""
        return proc.run(
            list(argv),
            env=self.environ if env is None else env,
            cwd=cwd,
            stdin_data=stdin_data,
            timeout=self.remaining(),
            output_cap=self.output_cap,
            stdout_cap=stdout_cap,
            on_start=self.on_start,
            echo_fd=self.echo_fd,
            echo_stdout=echo_stdout,
        )

    def run_tool(
        self,
        argv: Sequence[str],
        remedy: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
    ) -> proc.ProcResult:
        """``run`` for the tool a hook drives: logged, and when it cannot start, ToolCannotRun ends the hook
        with the failed result of ``cannot_run`` (``remedy`` says how to get the tool)."""
        LOG.debug("Running %s%s", " ".join(argv), " in %s" % cwd if cwd else "")
        try:
            return self.run(argv, env=env, cwd=cwd)
        except OSError as exc:
            raise ToolCannotRun(cannot_run(argv[0], exc, remedy)) from None

    def path(self, env_name: str, default: str) -> str:
        """A hook directory: its environment override when set and non-empty, else the default."""
        return self.environ.get(env_name) or default

    def private_dir(self, env_name: str, default: str) -> str:
        """``path``, created 0700 when missing (SPEC §8.0); when it cannot be a directory (a file is there,
        no permission) the hook ends, through ToolCannotRun, with a failure naming the variable."""
        path = self.path(env_name, default)
        try:
            ensure_private_dir(path)
        except OSError as exc:
            reason = "a file that is not a directory is there" if isinstance(exc, FileExistsError) else exc.strerror
            message = "%s=%s cannot be used as a directory: %s" % (env_name, path, reason)
            LOG.error("%s", message)
            raise ToolCannotRun(HookResult.failure(message)) from None
        return path



def beside_interpreter(name: str) -> str:
    """``name`` from this interpreter's bin directory when it is there, else ``name`` for a PATH lookup.

    A tool an extra installs (``os-config-agents[ansible]`` brings ansible-playbook) lands
    in the virtualenv's bin directory, which is not on PATH when only our commands are
    linked from it: the hook must find it without a link.  Not resolved through symlinks:
    a venv's python links to the system interpreter, whose directory is not the venv's.
    """
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else name


def context_for(deployment: Deployment, environ: Optional[Mapping[str, str]] = None) -> HookContext:
    """The context of a hook run on its own (``heat-config-hook``): this environment and its timeout."""
    env = dict(os.environ if environ is None else environ)
    return HookContext(environ=env, timeout=hook_timeout(deployment, env))



def options_of(deployment: Deployment) -> Dict[str, Any]:
    """The deployment's ``options`` object; absent is empty (any other type is refused by ``shape_problem``)."""
    return deployment.get("options") or {}


def string_option(options: Dict[str, Any], key: str) -> str:
    """A string option; empty strings and nulls count as unset (SPEC §8.2)."""
    value = options.get(key)
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise BadDeployment("option %s must be a string" % key)
    return value


def hostname_f(ctx: HookContext) -> str:
    """The host's name as ``hostname -f`` prints it (as the originals' puppet and chef hooks asked); "" on failure."""
    try:
        result = ctx.run(["hostname", "-f"])
    except OSError as exc:
        LOG.debug("hostname -f cannot be run: %s", exc.strerror)
        return ""
    if result.returncode or result.timed_out:
        return ""
    return result.stdout.decode("utf-8", "replace").strip()



def ensure_private_dir(path: str) -> None:
    """Create a hook directory 0700 when missing (SPEC §8.0)."""
    os.makedirs(path, mode=0o700, exist_ok=True)

