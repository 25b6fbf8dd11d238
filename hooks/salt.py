"""The ``salt`` hook (SPEC §8.9): apply the config as a Salt state with salt-call in local mode.

Compatible with the heat-agents salt hook: same directories and environment
variables, the state kept at ``<working>/<id>.sls`` (an object config dumped as
YAML, text verbatim), the minion options of ``$SALT_MINION_CONFIG`` overridden
with ``file_roots`` = the working directory, a local file client and every input
as an option, and the state results in deploy_stdout or deploy_stderr as the
original puts them.

The original imported Salt into the hook's Python.  Our hooks run from the
agents' own virtualenv while an image's Salt is the distribution's salt-minion in
the system Python, so Salt runs as a subprocess, ``$HEAT_SALT_CMD`` (default
``salt-call``).  The overridden options reach it as a private, temporary config
directory (0700, files 0600: inputs may be secrets) whose ``minion`` file reads
the original's configuration as Salt would, then includes the overrides last so
that they win.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Iterable, List

from agent_common.atomic import atomic_write
from agent_common.deployment_contract import BadDeployment, Deployment, input_values
from hooks.toolkit.context import HookContext
from hooks.toolkit.outputs import output_files, prepare_workspace, prune_dir, suffix_owner
from hooks.toolkit.result import HookResult, log_outcome, result_from_proc

LOG = logging.getLogger("heat-config")

WORKING_ENV, WORKING_DEFAULT = "HEAT_SALT_WORKING", "/var/lib/heat-config/heat-config-salt"
OUTPUTS_ENV, OUTPUTS_DEFAULT = "HEAT_SALT_OUTPUTS", "/var/run/heat-config/heat-config-salt"
CONFIG_ENV, CONFIG_DEFAULT = "SALT_MINION_CONFIG", "/etc/salt/minion"
CMD_ENV, CMD_DEFAULT = "HEAT_SALT_CMD", "salt-call"

#: Salt's own default for the minion config's ``default_include`` (relative to the config's directory).
DEFAULT_INCLUDE = "minion.d/*.conf"
#: Name of the included file, in the private config directory, that holds the overrides.
OVERRIDES_FILE = "heat-config.conf"


class ConfigProblem(Exception):
    """The minion config named by SALT_MINION_CONFIG cannot be used; the message names it."""


def state_text(config: Any) -> str:
    """The SLS text: an object dumped as block YAML, a string as it is (SPEC §8.9)."""
    if config is None:
        return ""
    if isinstance(config, str):
        return config
    if isinstance(config, dict):
        import yaml

        return yaml.safe_dump(config, default_flow_style=False)
    raise BadDeployment("config must be Salt state text or an object, not %s" % type(config).__name__)


def load_minion_config(path: str) -> Dict[str, Any]:
    """The original minion options file as a mapping; {} when it does not exist (Salt's defaults then apply)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigProblem("%s %s cannot be read: %s" % (CONFIG_ENV, path, exc.strerror)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigProblem("%s %s is not valid YAML: %s" % (CONFIG_ENV, path, exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigProblem("%s %s must hold a mapping of minion options" % (CONFIG_ENV, path))
    return data


def _absolute(paths: Any, base: str) -> List[str]:
    """Include paths as Salt resolves them for a config file in ``base``."""
    items = [paths] if isinstance(paths, str) else list(paths or [])
    result = []
    for item in items:
        if isinstance(item, str) and item:
            item = os.path.expanduser(item)
            result.append(item if os.path.isabs(item) else os.path.join(base, item))
    return result


def minion_options(original_path: str, original: Dict[str, Any], overrides_path: str) -> Dict[str, Any]:
    """The private ``minion`` file: the original's options, its includes made absolute, the overrides last."""
    base = os.path.dirname(os.path.abspath(original_path))
    options = dict(original)
    options["default_include"] = _absolute(original.get("default_include", DEFAULT_INCLUDE), base)
    options["include"] = _absolute(original.get("include"), base) + [overrides_path]
    return options


def overrides(deployment: Deployment, working: str, heat_outputs_path: str) -> Dict[str, Any]:
    """Every input as a minion option, then the options the hook needs (these win over an input's)."""
    options = dict(input_values(deployment))
    options.update(file_roots={"base": [working]}, file_client="local", heat_outputs_path=heat_outputs_path)
    return options


def write_config_dir(directory: str, original_path: str, options: Dict[str, Any]) -> None:
    """Fill the private config directory that ``salt-call --config-dir`` reads."""
    import yaml

    overrides_path = os.path.join(directory, OVERRIDES_FILE)
    atomic_write(overrides_path, yaml.safe_dump(options, default_flow_style=False), 0o600, sync=False)
    minion = minion_options(original_path, load_minion_config(original_path), overrides_path)
    atomic_write(os.path.join(directory, "minion"), yaml.safe_dump(minion, default_flow_style=False), 0o600,
                 sync=False)


def command(cmd: str, config_dir: str, dep_id: str) -> List[str]:
    return [cmd, "--local", "--retcode-passthrough", "--out=json", "--config-dir=" + config_dir, "state.sls", dep_id]


def states_succeeded(returned: Any) -> bool:
    """Every state reports a true ``result`` (salt's return code is not always right, SPEC §8.9)."""
    return isinstance(returned, dict) and all(
        isinstance(state, dict) and bool(state.get("result")) for state in returned.values())


def result_of(proc: Any, ctx: HookContext, deployment: Deployment, heat_outputs_path: str) -> HookResult:
    """The hook's result from salt-call's JSON: results YAML in stdout or stderr, the other null (SPEC §8.9)."""
    import yaml

    if proc.timed_out:
        return result_from_proc(proc, ctx)
    try:
        returned = json.loads(proc.stdout.decode("utf-8", "replace"))["local"]
    except (ValueError, KeyError, TypeError):
        failed = result_from_proc(proc, ctx)
        failed.stderr = (failed.stderr or "") + "salt-call printed no JSON result (exit status %s)\n" % proc.returncode
        failed.status_code = proc.returncode or 1
        return failed
    structure = {"return": returned, "retcode": proc.returncode}
    outputs = {}
    for output in deployment.get("outputs") or []:
        if isinstance(output, dict) and isinstance(output.get("name"), str):
            outputs[output["name"]] = structure.get(output["name"])
    outputs.update(output_files(heat_outputs_path, deployment))
    text = yaml.safe_dump(returned)
    if proc.returncode == 0 or states_succeeded(returned):
        return HookResult(outputs, stdout=text, stderr=None, status_code=0)
    return HookResult(outputs, stdout=None, stderr=text, status_code=proc.returncode or 1)


#: The original salt hook's words for how a state ended.
OUTCOME_LINES = ("Error applying Salt state %(subject)s. [%(status)s]", "Completed applying Salt state %(subject)s")


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    text = state_text(deployment.get("config"))
    workspace = prepare_workspace(deployment, ctx, (WORKING_ENV, WORKING_DEFAULT), (OUTPUTS_ENV, OUTPUTS_DEFAULT))
    dep_id, working, heat_outputs_path = workspace.dep_id, workspace.working, workspace.heat_outputs_path
    state_file = os.path.join(working, dep_id + ".sls")
    atomic_write(state_file, text, 0o600, sync=False)

    config_dir = tempfile.mkdtemp(prefix="heat-config-salt-")
    try:
        try:
            write_config_dir(config_dir, ctx.path(CONFIG_ENV, CONFIG_DEFAULT),
                             overrides(deployment, working, heat_outputs_path))
        except ConfigProblem as exc:
            LOG.error("%s", exc)
            return HookResult.failure(str(exc))
        argv = command(ctx.environ.get(CMD_ENV) or CMD_DEFAULT, config_dir, dep_id)
        LOG.info("Inputs as minion options: %s", ", ".join(sorted(input_values(deployment))) or "(none)")
        proc = ctx.run_tool(argv, "install salt-minion, or set %s" % CMD_ENV, cwd=working)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
    result = result_of(proc, ctx, deployment, heat_outputs_path)
    log_outcome(state_file, result.status_code, bool(result.status_code), lines=OUTCOME_LINES)
    return result


def cleanup(keep_ids: Iterable[str], ctx: HookContext) -> None:
    """Remove the states and outputs of deployments known to be gone; other files of the file root stay.

    The working directory is Salt's file root, where a user may keep states of
    their own, so only ``<id>.sls`` of ``ctx.gone_ids`` is removed there.
    """
    keep = list(keep_ids)
    prune_dir(ctx.path(WORKING_ENV, WORKING_DEFAULT), keep, ctx.gone_ids or (), suffix_owner(".sls"))
    prune_dir(ctx.path(OUTPUTS_ENV, OUTPUTS_DEFAULT), keep, ctx.gone_ids)
