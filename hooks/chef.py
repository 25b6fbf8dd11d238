"""The ``chef`` hook (SPEC §8.11): run chef-client in local mode with the config as the run list.

Compatible with the heat-agents chef hook: same directories, environment variables
and ``client.rb`` lines, the node file ``<working>/node/<fqdn>.json`` holding the
inputs as node attributes plus ``run_list`` (but not Heat's signal credentials),
the kitchen cloned with git (afresh on UPDATE), the same chef-client argv and
outputs read from ``$heat_outputs_path.<name>``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from typing import Any, Dict, Iterable, List, Optional

from agent_common.atomic import atomic_write
from agent_common.deployment_contract import BadDeployment, Deployment, input_values, name_problem
from hooks.toolkit.context import HookContext, ensure_private_dir, hostname_f, options_of
from hooks.toolkit.outputs import prepare_workspace, prune_dir
from hooks.toolkit.result import HookResult, log_outcome, result_from_proc

LOG = logging.getLogger("heat-config")

WORKING_ENV, WORKING_DEFAULT = "HEAT_CHEF_WORKING", "/var/lib/heat-config/heat-config-chef"
OUTPUTS_ENV, OUTPUTS_DEFAULT = "HEAT_CHEF_OUTPUTS", "/var/run/heat-config/heat-config-chef"
CHEF_CLIENT = "chef-client"

#: The input that selects the Chef environment (a client.rb line, not a node attribute).
ENVIRONMENT_INPUT = "environment"
#: Heat's own inputs (SPEC §6.4), never node attributes: the seven the original left out, and the
#: signal credentials it wrote into the node file and so into Chef (§11.12).
HEAT_INPUTS = frozenset({
    "deploy_server_id", "deploy_action", "deploy_stack_id", "deploy_resource_name",
    "deploy_signal_transport", "deploy_signal_id", "deploy_signal_verb",
    "deploy_auth_url", "deploy_username", "deploy_user_id", "deploy_password",
    "deploy_project_id", "deploy_region_name", "deploy_queue_id",
})


def _options(deployment: Deployment) -> Dict[str, Any]:
    options = options_of(deployment)
    for key in ("kitchen", "kitchen_path"):
        if options.get(key) is not None and not isinstance(options[key], str):
            raise BadDeployment("option %s must be a string" % key)
    return options


def _ruby_string(value: str, what: str) -> str:
    """``value`` as a single-quoted Ruby string for client.rb; refused when it would end the quote or the line."""
    if any(c in value for c in "'\\\n\r"):
        raise BadDeployment("%s cannot contain quotes, backslashes or line breaks (it goes into client.rb)" % what)
    return "'%s'" % value


def run_list(config: Any) -> List[Any]:
    """The node's run list: ``config`` as a JSON array (text, or already an array); empty config → empty list."""
    if config is None or config == "":
        return []
    value = config
    if isinstance(config, str):
        try:
            value = json.loads(config)
        except ValueError as exc:
            raise BadDeployment("config is not a JSON array of run-list items: %s" % exc) from None
    if not isinstance(value, list):
        raise BadDeployment('config must be a JSON array of run-list items, like ["recipe[app]"]')
    return value


def environment(inputs: Dict[str, Any]) -> Optional[str]:
    """The Chef environment named by the ``environment`` input, None when unset or empty."""
    value = inputs.get(ENVIRONMENT_INPUT)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadDeployment("input %s must be a string" % ENVIRONMENT_INPUT)
    return value


def client_config(kitchen_path: str, node_dir: str, chef_environment: Optional[str]) -> str:
    """client.rb: the original's lines in its order, no trailing newline (SPEC §8.11)."""
    lines = [
        "log_level :debug",
        "log_location STDOUT",
        "local_mode true",
        "chef_zero.enabled true",
        "cookbook_path %s" % _ruby_string(os.path.join(kitchen_path, "cookbooks"), "option kitchen_path"),
        "role_path %s" % _ruby_string(os.path.join(kitchen_path, "roles"), "option kitchen_path"),
        "environment_path %s" % _ruby_string(os.path.join(kitchen_path, "environments"), "option kitchen_path"),
    ]
    if chef_environment is not None:
        lines.append("environment %s" % _ruby_string(chef_environment, "input %s" % ENVIRONMENT_INPUT))
    lines.append("node_path %s" % _ruby_string(node_dir, WORKING_ENV))
    return "\n".join(lines)


def node_attributes(inputs: Dict[str, Any], runs: List[Any]) -> Dict[str, Any]:
    """Every input but Heat's own and ``environment``, in input order, then ``run_list``."""
    attributes = {k: v for k, v in inputs.items() if k != ENVIRONMENT_INPUT and k not in HEAT_INPUTS}
    attributes["run_list"] = runs
    return attributes


def fqdn(ctx: HookContext) -> str:
    """The host's name as ``hostname -f`` prints it; Python's idea of the FQDN when that fails (§11.29)."""
    name = hostname_f(ctx)
    if not name:
        name = socket.getfqdn()
        LOG.warning("hostname -f gave no name; the node file is named after %s", name)
    return name


def clone_kitchen(kitchen: str, kitchen_path: str, action: Any, working: str,
                  ctx: HookContext) -> Optional[HookResult]:
    """git clone the kitchen (afresh on UPDATE); the failed result when the clone did not succeed."""
    if action == "UPDATE":
        shutil.rmtree(os.path.join(working, kitchen_path), ignore_errors=True)
    result = ctx.run_tool(["git", "clone", kitchen, kitchen_path], "install git to use the kitchen option", cwd=working)
    if result.returncode or result.timed_out:
        LOG.error("Error cloning the kitchen into %s. [%s]", kitchen_path, result.returncode)
        return result_from_proc(result, ctx)
    return None


#: The original chef hook's words for how chef-client ended.
OUTCOME_LINES = ("Chef return code %(status)s", "Completed chef-client for %(subject)s")


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    options = _options(deployment)
    inputs = input_values(deployment)
    working = ctx.path(WORKING_ENV, WORKING_DEFAULT)
    kitchen_path = options.get("kitchen_path") or os.path.join(working, "kitchen")
    node_dir = os.path.join(working, "node")
    attributes = node_attributes(inputs, run_list(deployment.get("config")))
    client_rb = client_config(kitchen_path, node_dir, environment(inputs))
    workspace = prepare_workspace(deployment, ctx, (WORKING_ENV, WORKING_DEFAULT), (OUTPUTS_ENV, OUTPUTS_DEFAULT))

    if options.get("kitchen"):
        failed = clone_kitchen(options["kitchen"], kitchen_path, inputs.get("deploy_action"), working, ctx)
        if failed is not None:
            return failed

    host = fqdn(ctx)
    problem = name_problem(host)
    if problem:
        return HookResult.failure("host name %r cannot name the node file: it %s" % (host, problem))
    ensure_private_dir(node_dir)
    node_file = os.path.join(node_dir, host + ".json")
    atomic_write(node_file, json.dumps(attributes, indent=4, separators=(",", ": ")), 0o600, sync=False)
    config_path = os.path.join(working, "client.rb")
    atomic_write(config_path, client_rb, 0o600, sync=False)

    env = dict(ctx.environ, heat_outputs_path=workspace.heat_outputs_path)
    argv = [CHEF_CLIENT, "-z", "--config", config_path, "-j", node_file]
    LOG.info("Node attributes: %s", ", ".join(sorted(attributes)))
    result = ctx.run_tool(argv, "install the chef package; it is looked up on PATH", env=env, cwd=working)
    log_outcome(workspace.dep_id, result.returncode, bool(result.returncode or result.timed_out), lines=OUTCOME_LINES)
    return result_from_proc(result, ctx, workspace.outputs(deployment))


def cleanup(keep_ids: Iterable[str], ctx: HookContext) -> None:
    """Remove output files of deployments gone from the metadata; client.rb and the node file are per host."""
    prune_dir(ctx.path(OUTPUTS_ENV, OUTPUTS_DEFAULT), keep_ids, ctx.gone_ids)
