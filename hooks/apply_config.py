"""The ``apply-config`` hook (SPEC §8.5): run os-apply-config and report its result to Heat.

``$HEAT_APPLY_CONFIG_CMD`` (default ``os-apply-config``, split like a shell line so
that it can carry options) runs without arguments in the hook's environment, so
occ's ``OS_CONFIG_FILES`` applies all collected metadata; the deployment's
``config`` is ignored, and deploy_* come from that command.
"""
from __future__ import annotations

import logging
import shlex
from typing import List

from agent_common.deployment_contract import BadDeployment, Deployment
from hooks.toolkit.context import HookContext
from hooks.toolkit.result import HookResult, log_outcome, result_from_proc

LOG = logging.getLogger("heat-config")

CMD_ENV, CMD_DEFAULT = "HEAT_APPLY_CONFIG_CMD", "os-apply-config"


def command(ctx: HookContext) -> List[str]:
    """The argv of ``$HEAT_APPLY_CONFIG_CMD`` (unset or blank: ``os-apply-config``)."""
    line = ctx.environ.get(CMD_ENV, "").strip() or CMD_DEFAULT
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise BadDeployment("%s cannot be split into a command: %s" % (CMD_ENV, exc)) from None
    if not argv:
        raise BadDeployment("%s holds no command" % CMD_ENV)
    return argv


#: The original apply-config hook's words for how os-apply-config ended.
OUTCOME_LINES = ("Error running %(subject)s: [%(status)s]", "Completed %(subject)s.")


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    argv = command(ctx)
    result = ctx.run_tool(argv, "install os-apply-config, or set %s" % CMD_ENV)
    log_outcome("apply-config", result.returncode, bool(result.returncode or result.timed_out), lines=OUTCOME_LINES)
    return result_from_proc(result, ctx)
