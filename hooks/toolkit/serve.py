"""Serving a built-in hook: the call that turns any failure into a reported result, and the
stdin-JSON → stdout-JSON executable form (SPEC §6.13) of ``heat-config-hook GROUP`` and hook shims.

On the hook start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import sys

from agent_common.deployment_contract import BadDeployment, refusal, register_input_secrets
from agent_common.documents import loads_json
from agent_common.logs import setup_logging
from hooks.toolkit.context import context_for
from hooks.toolkit.result import HookResult, ToolCannotRun

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs every hook run ~4 ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Optional

    from agent_common.deployment_contract import Deployment
    from hooks.toolkit.context import HookContext

    #: A built-in hook: ``run(deployment, ctx) -> HookResult`` of a module in hooks/.
    Hook = Callable[[Deployment, HookContext], HookResult]

LOG = logging.getLogger("heat-config")


def setup_hook_logging() -> None:
    """Hooks log to stderr in the dispatcher's format (text or JSON), level DEBUG (SPEC §8.0), secrets redacted."""
    setup_logging("heat-config", level=logging.DEBUG)


def refused(deployment: Deployment) -> Optional[HookResult]:
    """The failed result for a deployment a hook must not run (logged in one line), or None."""
    message = refusal(deployment)
    if message is None:
        return None
    LOG.error("Refused: %s", message)
    return HookResult.failure("refused: %s" % message)


def call(hook: Hook, deployment: Deployment, ctx: HookContext) -> HookResult:
    """Run a built-in hook; a crash becomes a failed result with a one-line reason, never a lost deployment."""
    register_input_secrets(deployment)
    refused_result = refused(deployment)
    if refused_result is not None:
        return refused_result
    try:
        return hook(deployment, ctx)
    except ToolCannotRun as exc:
        return exc.result
    except BadDeployment as exc:
        LOG.error("Refused: %s", exc)
        return HookResult.failure("refused: %s" % exc)
    except Exception as exc:  # the deployment must still be reported
        LOG.exception("Hook crashed")
        return HookResult.failure("hook crashed: %s: %s" % (type(exc).__name__, exc))


def read_deployment(stdin: Any) -> Optional[Deployment]:
    """The deployment object on ``stdin``, or None after logging one line saying why not.

    Read as bytes where there are bytes, so that text that is not UTF-8, or JSON nested
    too deeply, is that one line too (agent_common.documents), not a traceback.
    """
    try:
        deployment = loads_json(getattr(stdin, "buffer", stdin).read(), "stdin")
    except ValueError as exc:
        LOG.error("%s", exc)
        return None
    if not isinstance(deployment, dict):
        LOG.error("stdin: not a deployment JSON object")
        return None
    return deployment


def serve(hook: Hook, stdin: Any = None, stdout: Any = None) -> int:
    """The stdin-JSON → stdout-JSON protocol of SPEC §6.13 around a built-in hook."""
    setup_hook_logging()
    stdout = stdout or sys.stdout
    deployment = read_deployment(stdin or sys.stdin)
    if deployment is None:
        return 1
    result = call(hook, deployment, context_for(deployment))
    json.dump(result.signal_data(), stdout)
    stdout.flush()
    return 0
