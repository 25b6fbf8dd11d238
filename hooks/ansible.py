"""The ``ansible`` hook (SPEC §8.2): run the config as a playbook, inputs as extra variables.

Compatible with the heat-agents ansible hook: same directories and environment
variables, ``<working>/<id>_playbook.yaml`` and ``<id>_variables.json``, the same
options and ansible-playbook argv, outputs read from ``{{ heat_outputs_path }}.<name>``
files.  The playbook's failed tasks are named at the end of deploy_stderr.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Dict, Iterable, List

from agent_common.atomic import atomic_write
from agent_common.deployment_contract import Deployment, input_values
from hooks.toolkit.context import HookContext, beside_interpreter, options_of, string_option
from hooks.toolkit.outputs import prepare_workspace, prune_dir, suffix_owner
from hooks.toolkit.result import HookResult, log_outcome, result_from_proc

LOG = logging.getLogger("heat-config")

WORKING_ENV, WORKING_DEFAULT = "HEAT_ANSIBLE_WORKING", "/var/lib/heat-config/heat-config-ansible"
OUTPUTS_ENV, OUTPUTS_DEFAULT = "HEAT_ANSIBLE_OUTPUTS", "/var/run/heat-config/heat-config-ansible"
#: Unset, the command is found beside the hook's interpreter first (a venv with the [ansible] extra), then on PATH.
CMD_ENV, CMD_DEFAULT = "HEAT_ANSIBLE_CMD", "ansible-playbook"
INVENTORY_ENV, INVENTORY_DEFAULT = "HEAT_ANSIBLE_INVENTORY", "localhost,"

PLAYBOOK_SUFFIX = "_playbook.yaml"
VARIABLES_SUFFIX = "_variables.json"

#: ``TASK [name] ****`` headers and ``fatal: [host]: FAILED!`` lines of ansible's default output.
_TASK = re.compile(r"^TASK \[(?P<task>.*)\] \**\s*$")
_FAILED = re.compile(r"^(?:fatal|failed): \[(?P<host>[^\]]+)\]")
_IGNORED = "...ignoring"


def variables(deployment: Deployment, heat_outputs_path: str) -> Dict[str, Any]:
    """The extra variables: heat_config_id, every input with its native JSON value, then heat_outputs_path."""
    result: Dict[str, Any] = {"heat_config_id": deployment["id"]}
    result.update(input_values(deployment))
    result["heat_outputs_path"] = heat_outputs_path
    return result


def command(cmd: str, inventory: str, options: Dict[str, Any], playbook: str, variables_file: str) -> List[str]:
    """ansible-playbook's argv, in the original's exact order (SPEC §8.2)."""
    argv = [cmd, "-i", inventory]
    for flag, key in (("--module-path", "modulepath"), ("--skip-tags", "skip_tags"), ("--tags", "tags")):
        value = string_option(options, key)
        if value:
            argv += [flag, value]
    return argv + [playbook, "--extra-vars", "@" + variables_file]


def failed_tasks(stdout: str) -> List[str]:
    """'task "<task>" failed on <host>' for every task ansible reported failed or unreachable, in order."""
    task = ""
    found: List[str] = []
    for line in stdout.splitlines():
        header = _TASK.match(line)
        if header:
            task = header.group("task")
            continue
        failed = _FAILED.match(line)
        if failed:
            found.append('task "%s" failed on %s' % (task, failed.group("host")))
        elif line.strip() == _IGNORED and found:
            found.pop()  # ignore_errors: the failure did not count
    return list(dict.fromkeys(found))


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    options = options_of(deployment)
    workspace = prepare_workspace(deployment, ctx, (WORKING_ENV, WORKING_DEFAULT), (OUTPUTS_ENV, OUTPUTS_DEFAULT))
    working = workspace.working

    config = deployment.get("config")
    if config is None or config == "" or config == {} or config == []:
        LOG.warning("No 'config' input found, nothing to do.")
        return HookResult(stderr="No 'config' input found, nothing to do.\n")
    # A structured config is a playbook given as data: its JSON text is valid YAML.
    playbook_text = config if isinstance(config, str) else json.dumps(config, indent=2)

    playbook = os.path.join(working, workspace.dep_id + PLAYBOOK_SUFFIX)
    variables_file = os.path.join(working, workspace.dep_id + VARIABLES_SUFFIX)
    atomic_write(variables_file, json.dumps(variables(deployment, workspace.heat_outputs_path)), 0o600, sync=False)
    atomic_write(playbook, playbook_text, 0o600, sync=False)

    inventory = ctx.environ.get(INVENTORY_ENV) or INVENTORY_DEFAULT
    if string_option(options, "inventory"):
        inventory = os.path.join(working, string_option(options, "inventory"))
    cmd = ctx.environ.get(CMD_ENV) or beside_interpreter(CMD_DEFAULT)
    argv = command(cmd, inventory, options, playbook, variables_file)
    env = dict(ctx.environ)
    if string_option(options, "callback_plugins"):
        env["ANSIBLE_CALLBACK_PLUGINS"] = string_option(options, "callback_plugins")

    LOG.info("Variables: %s", ", ".join(sorted(input_values(deployment))) or "(none)")
    proc_result = ctx.run_tool(argv, "install ansible-core, or set %s" % CMD_ENV, env=env, cwd=working)
    result = result_from_proc(proc_result, ctx, workspace.outputs(deployment))
    log_outcome(playbook, proc_result.returncode, bool(proc_result.returncode))
    if proc_result.returncode:
        failures = failed_tasks(result.stdout or "")
        if failures:
            result.add_error("".join("ansible: %s\n" % f for f in failures))
    return result


def cleanup(keep_ids: Iterable[str], ctx: HookContext) -> None:
    """Remove playbooks, variables (they hold input values) and outputs of deployments gone from the metadata.

    Only files this hook names are touched in the working directory (an inventory a
    user keeps there stays), and only those of ``ctx.gone_ids`` when the caller knows them.
    """
    keep = list(keep_ids)
    ours = suffix_owner(PLAYBOOK_SUFFIX, VARIABLES_SUFFIX)
    prune_dir(ctx.path(WORKING_ENV, WORKING_DEFAULT), keep, ctx.gone_ids, ours)
    prune_dir(ctx.path(OUTPUTS_ENV, OUTPUTS_DEFAULT), keep, ctx.gone_ids)
