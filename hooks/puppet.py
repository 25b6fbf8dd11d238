"""The ``puppet`` hook (SPEC §8.7): ``puppet apply`` the config as a manifest, inputs as facts.

Compatible with the heat-agents puppet hook: same directories, environment
variables and options (``enable_facter``, ``enable_hiera``, ``modulepath``,
``tags``, ``enable_debug``, ``enable_verbose``), the same puppet argv, ``FACTER_*``
facts, ``<working>/<id>.pp``, the hiera data file, log files named from
``creation_time``, outputs read from ``${heat_outputs_path}.<name>`` files, and
exit codes 0 and 2 (changes applied) reported as 0.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any, Dict, Iterable, List, Optional

from agent_common.atomic import atomic_write
from agent_common.deployment_contract import BadDeployment, Deployment, deployment_id, input_env, input_values
from hooks.toolkit.context import HookContext, hostname_f, options_of, string_option
from hooks.toolkit.hieradata import DATADIR_DEFAULT as HIERA_DATADIR_DEFAULT
from hooks.toolkit.hieradata import DATADIR_ENV as HIERA_DATADIR_ENV
from hooks.toolkit.hieradata import file_name_problem, write_private
from hooks.toolkit.outputs import prepare_workspace, prune_dir, suffix_owner
from hooks.toolkit.result import HookResult, log_outcome, result_from_proc

LOG = logging.getLogger("heat-config")

WORKING_ENV, WORKING_DEFAULT = "HEAT_PUPPET_WORKING", "/var/lib/heat-config/heat-config-puppet"
OUTPUTS_ENV, OUTPUTS_DEFAULT = "HEAT_PUPPET_OUTPUTS", "/var/run/heat-config/heat-config-puppet"
CMD_ENV, CMD_DEFAULT = "HEAT_PUPPET_CMD", "puppet"
#: The original logged to /var/run/heat-config/deployed: tmpfs, and the legacy state directory's name (§11.31).
LOGDIR_ENV, LOGDIR_DEFAULT = "HEAT_PUPPET_LOGDIR", "/var/log/heat-config/heat-config-puppet"
#: Where ``enable_debug`` / ``enable_verbose`` make puppet log (fixed in the original's argv).
DEBUG_LOG, VERBOSE_LOG = "/var/log/puppet/heat-debug.log", "/var/log/puppet/heat-verbose.log"
#: ``puppet apply --detailed-exitcodes``: 0 nothing to do, 2 changes applied; 4 and 6 are failures.
SUCCESS_CODES = (0, 2)

#: Log files ``<creation_time, ':' and 'T' → '-'>-<id>-stdout.log`` / ``-stderr.log``.
_LOG_NAME = re.compile(r"^\d{4}-\d\d-\d\d-\d\d-\d\d-\d\dZ-(?P<id>.+)-std(?:out|err)\.log$")


def flag(options: Dict[str, Any], key: str, default: bool) -> bool:
    """A boolean option: JSON true/false, 0/1 or the strings "true"/"false"; anything else names the option."""
    value = options.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise BadDeployment("option %s must be true or false, not %r" % (key, value))


def command(cmd: str, options: Dict[str, Any], manifest: str) -> List[str]:
    """puppet's argv, in the original's exact order (SPEC §8.7)."""
    argv = [cmd, "apply", "--color", "false", "--detailed-exitcodes", "--logdest", "console"]
    for option, key in (("--modulepath", "modulepath"), ("--tags", "tags")):
        value = string_option(options, key)
        if value:
            argv += [option, value]
    if flag(options, "enable_debug", False):
        argv += ["--debug", "--logdest", DEBUG_LOG]
    if flag(options, "enable_verbose", False):
        argv += ["--verbose", "--logdest", VERBOSE_LOG]
    return argv + [manifest]


def log_base(deployment: Deployment, logdir: str, dep_id: str) -> str:
    """``<logdir>/<ts>-<id>``, ``ts`` being ``creation_time`` with ':' and 'T' made '-' (now, when absent)."""
    created = deployment.get("creation_time")
    if created is None or created == "":
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    problem = file_name_problem(created)
    if problem:
        raise BadDeployment("creation_time %r %s" % (created, problem))
    return os.path.join(logdir, "%s-%s" % (re.sub("[:T]", "-", created), dep_id))


def fqdn(ctx: HookContext) -> Optional[str]:
    """``hostname -f``, or None (logged) when it cannot tell: then no FACTER_fqdn, as in the original."""
    name = hostname_f(ctx)
    if not name:
        LOG.warning("Failed to retrieve 'hostname -f' output")
    return name or None


def facts(deployment: Deployment, ctx: HookContext, options: Dict[str, Any], heat_outputs_path: str) -> Dict[str, str]:
    """The FACTER_* variables, in the original's order; with enable_hiera also the hiera data file."""
    env: Dict[str, str] = {}
    name = fqdn(ctx)
    if name:
        env["FACTER_fqdn"] = name
    if flag(options, "enable_facter", True):
        env.update(("FACTER_" + key, value) for key, value in input_env(deployment).items())
    if flag(options, "enable_hiera", False):
        config_name = deployment.get("name")
        problem = file_name_problem(config_name)
        if problem or not isinstance(config_name, str):  # file_name_problem refuses every name that is not a string
            raise BadDeployment("deployment name %r %s, so it cannot name a hiera data file" % (config_name, problem))
        datadir = ctx.private_dir(HIERA_DATADIR_ENV, HIERA_DATADIR_DEFAULT)
        write_private(os.path.join(datadir, "heat_config_%s.json" % config_name), json.dumps(input_values(deployment)))
        env["FACTER_deploy_config_name"] = config_name
    env["FACTER_heat_outputs_path"] = heat_outputs_path
    return env


def _write_logs(base: str, result: HookResult) -> None:
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        path = "%s-%s.log" % (base, stream)
        try:
            atomic_write(path, text or "", 0o600, sync=False)
        except OSError as exc:
            LOG.warning("Cannot write %s: %s", path, exc.strerror)


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    dep_id = deployment_id(deployment)
    options = options_of(deployment)
    config = deployment.get("config")
    if config is None:
        config = ""
    if not isinstance(config, str):
        raise BadDeployment("config must be a Puppet manifest (a string), not %s" % type(config).__name__)
    working = ctx.path(WORKING_ENV, WORKING_DEFAULT)
    logdir = ctx.path(LOGDIR_ENV, LOGDIR_DEFAULT)
    base = log_base(deployment, logdir, dep_id)
    manifest = os.path.join(working, dep_id + ".pp")
    argv = command(ctx.environ.get(CMD_ENV) or CMD_DEFAULT, options, manifest)
    workspace = prepare_workspace(deployment, ctx, (WORKING_ENV, WORKING_DEFAULT), (OUTPUTS_ENV, OUTPUTS_DEFAULT))
    ctx.private_dir(LOGDIR_ENV, LOGDIR_DEFAULT)

    env = dict(ctx.environ)
    fact_env = facts(deployment, ctx, options, workspace.heat_outputs_path)
    env.update(fact_env)
    atomic_write(manifest, config, 0o700, sync=False)

    LOG.info("Facts: %s", ", ".join(sorted(fact_env)))
    proc_result = ctx.run_tool(argv, "install puppet, or set %s" % CMD_ENV, env=env, cwd=working)
    result = result_from_proc(proc_result, ctx, workspace.outputs(deployment))
    _write_logs(base, result)
    LOG.info("Return code %s", proc_result.returncode)
    if proc_result.returncode in SUCCESS_CODES and not proc_result.timed_out:
        result.status_code = 0
    log_outcome(manifest, result.status_code, bool(result.status_code))
    return result


def cleanup(keep_ids: Iterable[str], ctx: HookContext) -> None:
    """Remove manifests, outputs and logs of deployments gone from the metadata (SPEC §12.13.15).

    Only names this hook gives its files are touched (a module path a user keeps in
    the working directory stays), and only those of ``ctx.gone_ids`` when known.
    """
    keep = list(keep_ids)

    def log_owner(name: str) -> Optional[str]:
        match = _LOG_NAME.match(name)
        return match.group("id") if match else None

    prune_dir(ctx.path(WORKING_ENV, WORKING_DEFAULT), keep, ctx.gone_ids, suffix_owner(".pp"))
    prune_dir(ctx.path(LOGDIR_ENV, LOGDIR_DEFAULT), keep, ctx.gone_ids, log_owner)
    prune_dir(ctx.path(OUTPUTS_ENV, OUTPUTS_DEFAULT), keep, ctx.gone_ids)
