"""The ``script`` hook (SPEC §8.1): run the config as an executable, inputs in its environment.

Compatible with the heat-agents script hook: same directories and environment
variables, the script kept at ``<working>/<id>``, outputs read from
``$heat_outputs_path.<name>``.
"""
from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable

from agent_common.atomic import atomic_write
from agent_common.deployment_contract import Deployment, input_env
from hooks.toolkit.context import HookContext
from hooks.toolkit.outputs import prepare_workspace, prune_dir
from hooks.toolkit.result import HookResult, log_outcome, result_from_proc

LOG = logging.getLogger("heat-config")

WORKING_ENV, WORKING_DEFAULT = "HEAT_SCRIPT_WORKING", "/var/lib/heat-config/heat-config-script"
OUTPUTS_ENV, OUTPUTS_DEFAULT = "HEAT_SCRIPT_OUTPUTS", "/var/run/heat-config/heat-config-script"


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    workspace = prepare_workspace(deployment, ctx, (WORKING_ENV, WORKING_DEFAULT), (OUTPUTS_ENV, OUTPUTS_DEFAULT))
    script = os.path.join(workspace.working, workspace.dep_id)
    config = deployment.get("config")
    atomic_write(script, config if isinstance(config, str) else "", 0o700, sync=False)

    env = dict(ctx.environ)
    inputs = input_env(deployment)
    env.update(inputs)
    env["heat_outputs_path"] = workspace.heat_outputs_path
    LOG.info("Inputs: %s", ", ".join(sorted(inputs)) or "(none)")

    LOG.debug("Running %s", script)
    try:
        result = ctx.run([script], env=env, cwd=workspace.working)
    except OSError as exc:
        if exc.errno == errno.ENOEXEC:
            return HookResult.failure("%s cannot be executed: the config must start with a #! line" % script, 126)
        return HookResult.failure("%s cannot be executed: %s" % (script, exc.strerror), 126)
    log_outcome(script, result.returncode, bool(result.returncode))
    return result_from_proc(result, ctx, workspace.outputs(deployment))


def cleanup(keep_ids: Iterable[str], ctx: HookContext) -> None:
    """Remove scripts and output files of deployments no longer in the metadata (SPEC §12.13.15)."""
    keep = list(keep_ids)
    for directory in (ctx.path(WORKING_ENV, WORKING_DEFAULT), ctx.path(OUTPUTS_ENV, OUTPUTS_DEFAULT)):
        prune_dir(directory, keep, ctx.gone_ids)
