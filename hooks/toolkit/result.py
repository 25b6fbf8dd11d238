"""What a hook gives back: HookResult, built from a finished tool or from a failure, and the outcome log line.

On the hook start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Any, Dict, Optional

from agent_common.deployment_contract import timeout_message
from agent_common.proc import TIMEOUT_STATUS, ProcResult

if TYPE_CHECKING:  # pragma: no cover - the context module imports this one
    from hooks.toolkit.context import HookContext

LOG = logging.getLogger("heat-config")

#: The outcome lines most hooks log, as the originals' hooks did: "Error running X. [1]" / "Completed X".
RUNNING = ("Error running %(subject)s. [%(status)s]", "Completed %(subject)s")


class HookResult:
    """What a hook produced: declared outputs plus the tool's stdout, stderr and status code.

    (A plain class rather than a dataclass: it is on the start-up path of every hook, and importing
    dataclasses costs more than the rest of that path; bench/hook_start.py measures it.)
    """

    __slots__ = ("outputs", "stdout", "stderr", "status_code")

    def __init__(self, outputs: Optional[Dict[str, Any]] = None, stdout: str = "", stderr: str = "",
                 status_code: int = 0) -> None:
        self.outputs: Dict[str, Any] = dict(outputs or {})
        self.stdout = stdout
        self.stderr = stderr
        self.status_code = status_code

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HookResult):
            return NotImplemented
        return self.signal_data() == other.signal_data()

    def __repr__(self) -> str:
        return "HookResult(status_code=%r, outputs=%r)" % (self.status_code, sorted(self.outputs))

    def signal_data(self) -> Dict[str, Any]:
        """The JSON object a hook prints and Heat receives (SPEC §6.13, §7.8)."""
        data = dict(self.outputs)
        data.update(deploy_stdout=self.stdout, deploy_stderr=self.stderr, deploy_status_code=self.status_code)
        return data

    @classmethod
    def failure(cls, message: str, status_code: int = 1) -> "HookResult":
        """A result for a hook that could not do its job; ``message`` becomes deploy_stderr."""
        return cls(stderr=message if message.endswith("\n") else message + "\n", status_code=status_code)



class ToolCannotRun(Exception):
    """Raised by HookContext.run_tool and private_dir when what a hook needs outside the deployment (its tool,
    its directories) is not there; ``call`` reports ``result``, the failed deployment."""

    def __init__(self, result: HookResult) -> None:
        super().__init__(result.stderr)
        self.result = result



def decode(data: bytes, dropped: int = 0) -> str:
    """UTF-8 with replacement (SPEC §8.0); a cut tail states how much was dropped (SPEC §12.11)."""
    text = data.decode("utf-8", "replace")
    if dropped:
        text = "[... %d bytes of earlier output cut ...]\n%s" % (dropped, text)
    return text


def result_from_proc(
    result: ProcResult, ctx: HookContext, outputs: Optional[Dict[str, Any]] = None
) -> HookResult:
    """A HookResult from a finished tool: decoded, bounded output; 124 and a last line naming the timeout."""
    stdout = decode(result.stdout, result.stdout_truncated)
    stderr = decode(result.stderr, result.stderr_truncated)
    status = result.returncode
    if result.timed_out:
        status = TIMEOUT_STATUS
        if stderr and not stderr.endswith("\n"):
            stderr += "\n"
        stderr += timeout_message(ctx.timeout or 0) + "\n"
    return HookResult(outputs=dict(outputs or {}), stdout=stdout, stderr=stderr, status_code=status)



def cannot_run(program: str, exc: OSError, remedy: str) -> HookResult:
    """The result for a tool that could not be started: a failure, never a silent success (SPEC §11.18).

    127 when it is not installed (as a shell says), 126 when it exists but cannot be
    executed; deploy_stderr names the program, the reason and ``remedy`` (how to get it,
    or the variable that names another one).
    """

    missing = exc.errno == errno.ENOENT
    reason = "not installed" if missing else (exc.strerror or str(exc))
    LOG.error("%s cannot be run: %s", program, reason)
    return HookResult.failure("%s cannot be run: %s (%s)" % (program, reason, remedy), 127 if missing else 126)



def log_outcome(subject: str, status: Any, failed: bool, *, lines: "tuple[str, str]" = RUNNING,
                done_level: int = logging.INFO) -> None:
    """Log how a hook's tool ended, in the words the originals' hook used (``lines``: the error line and the
    success line, formatted with ``subject`` and ``status``), so a user's log greps keep working."""
    values = {"subject": subject, "status": status}
    if failed:
        LOG.error(lines[0], values)
    else:
        LOG.log(done_level, lines[1], values)
