"""``heat-config run FILE``: one SoftwareConfig or deployment through its hook, here, without Heat (SPEC §12.9).

A template author's inner loop: the file may be a SoftwareConfig (``group``,
``config``, ``inputs``, ``outputs``, ``options``; also wrapped as a template
resource with ``properties``) or a full deployment, in JSON or YAML.  Inputs come
from the declared defaults and ``--input NAME=VALUE``; nothing is signalled and
no deployment state is written.

Run by a user who cannot write the system directories, the hook's directories move
under the per-user state directory (SPEC §12.18); the files the run leaves for a
deployment that is not in the metadata are removed when it ends.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from types import ModuleType
from typing import Any, Dict, List, Optional, Sequence

import hooks
from agent_common import deployment_contract as contract
from agent_common.deployment_contract import hook_timeout
from agent_common.documents import loads_json, read_text
from agent_common.paths import get_path, user_state_dir, writable
from heat_config import deployment as dep
from heat_config import hook_runner
from hooks.toolkit.context import HookContext

LOG = logging.getLogger("heat-config")


class UsageError(Exception):
    """A mistake in the command line or the file; the message is the one line to print."""


def load(path: str) -> Dict[str, Any]:
    """The SoftwareConfig or deployment in ``path``, its fields checked as the dispatcher checks them."""
    try:
        text = read_text(path)
    except OSError as exc:
        raise UsageError("%s: %s" % (path, exc.strerror)) from None
    except ValueError as exc:  # not UTF-8: the message names the file
        raise UsageError(str(exc)) from None
    if text is None:
        raise UsageError("%s: No such file or directory" % path)
    try:
        data = loads_json(text, path)
    except ValueError:
        data = load_yaml(text, path)
    if isinstance(data, dict) and isinstance(data.get("properties"), dict) and "group" not in data:
        data = data["properties"]
    if not isinstance(data, dict):
        raise UsageError("%s: expected a SoftwareConfig or deployment object" % path)
    problem = contract.shape_problem(data)
    if problem:
        raise UsageError("%s: %s" % (path, problem))
    return data


def load_yaml(text: str, path: str) -> Any:
    import yaml  # heavy, and only a file that is not JSON needs it (DESIGN principle 7)

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " line %d" % (mark.line + 1) if mark is not None else ""
        raise UsageError("%s:%s not valid JSON or YAML: %s" % (path, where, getattr(exc, "problem", exc))) from None
    except RecursionError:
        raise UsageError("%s: nested too deeply" % path) from None


def parse_inputs(pairs: Sequence[str]) -> Dict[str, str]:
    given: Dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError("--input %r: expected NAME=VALUE" % pair)
        given[name] = value
    return given


def build(config: Dict[str, Any], given: Dict[str, str], action: str, name: str) -> Dict[str, Any]:
    """A deployment as Heat would derive it from this config (SPEC §6.4), with deploy_action set."""
    inputs: List[Dict[str, Any]] = []
    for declared in config.get("inputs") or []:  # objects with a name: checked by load
        item = dict(declared)
        item.setdefault("type", "String")
        if item["name"] in given:
            item["value"] = given[item["name"]]
        elif "value" not in item:
            item["value"] = item.get("default")
        inputs.append(item)
    declared_names = {i["name"] for i in inputs}
    for key, value in given.items():
        if key not in declared_names:
            inputs.append({"name": key, "type": "String", "value": value})
    for item in inputs:
        if item["name"] == "deploy_action":
            item["value"] = action
            break
    else:
        inputs.append({"name": "deploy_action", "type": "String", "value": action})
    return {
        "id": config.get("id") or "heat-config-run-%s" % uuid.uuid4(),
        "name": config.get("name") or name,
        "group": config.get("group") or dep.DEFAULT_GROUP,
        "config": config.get("config", ""),
        "inputs": inputs,
        "outputs": config.get("outputs") or [],
        "options": config.get("options") or {},
    }


def exit_status(data: Any) -> int:
    """SPEC §12.13.11: 0 when deploy_status_code is 0, that code when 1–255, otherwise 1."""
    code: Any = data.get("deploy_status_code") if isinstance(data, dict) else None
    if code in (0, "0", None, ""):
        return 0
    try:
        number = int(code)
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 255 else 1


def hook_dirs(module: ModuleType) -> Dict[str, str]:
    """The directories a built-in hook keeps files in: its ``<X>_ENV`` variables and their ``<X>_DEFAULT`` paths.

    Read from the module's own constants, so a hook added later is covered without a list to keep.
    """
    found = {}
    for name, variable in vars(module).items():
        if not name.endswith("_ENV"):
            continue
        default = getattr(module, name[: -len("_ENV")] + "_DEFAULT", None)
        if isinstance(variable, str) and isinstance(default, str) and os.path.isabs(default):
            found[variable] = default
    return found


def per_user_dirs(module: Optional[ModuleType], env: Dict[str, str]) -> Dict[str, str]:
    """SPEC §12.18: each hook directory not named by its variable and not writable here moves under
    the per-user state directory (its system path kept below it, so none collide); returns what moved."""
    moved: Dict[str, str] = {}
    if module is None:
        return moved
    base = user_state_dir(env)
    for variable, default in sorted(hook_dirs(module).items()):
        if not env.get(variable) and not writable(default):
            moved[variable] = env[variable] = os.path.join(base, default.lstrip("/"))
    if moved:
        LOG.info("The system directories are not writable by this user; this run keeps its files under %s (%s)",
                 base, ", ".join("%s=%s" % item for item in sorted(moved.items())))
    return moved


def metadata_ids(env: Dict[str, str]) -> List[str]:
    """Ids of the deployments in this machine's deployments file; none when it cannot be read."""
    try:
        items = contract.read_deployments(get_path("heat_shell_config", env)) or []
    except contract.BadDeploymentsFile:
        return []
    return [item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)]


def remove_leftovers(module: Optional[ModuleType], dep_id: str, env: Dict[str, str]) -> None:
    """The run's scripts and output files go, unless its deployment is one in the metadata (SPEC §12.18)."""
    keep = metadata_ids(env)
    if module is None or not hasattr(module, "cleanup") or dep_id in keep:
        return
    try:
        module.cleanup(keep, HookContext(environ=env, gone_ids=[dep_id]))
    except Exception as exc:  # the result is already there; a file left behind must not hide it
        LOG.warning("Could not remove the files this run left: %s: %s", type(exc).__name__, exc)


def run(path: str, pairs: Sequence[str], action: str, environ: Optional[Dict[str, str]] = None,
        live: bool = False) -> "tuple[Any, int]":
    """Run the file's config through its hook; ``live`` shows the hook's output on stderr as it runs."""
    env = dict(os.environ if environ is None else environ)
    deployment = build(load(path), parse_inputs(pairs), action, os.path.splitext(os.path.basename(path))[0])
    problem = contract.id_problem(deployment["id"])
    if problem:
        raise UsageError("%s: id %s" % (path, problem))
    dep.coerce_inputs(deployment)
    if not dep.resolve_component(deployment):
        raise UsageError("%s: no component config for action %s" % (path, action))
    group = dep.group_of(deployment)
    ref = None if contract.name_problem(group) else hook_runner.find(group, env)
    if ref is None:
        raise UsageError("%s: %s" % (path, hook_runner.no_hook_message(group, env)))
    module = ref.module or hooks.module(group)  # an executable hook of a built-in group uses its directories
    per_user_dirs(module, env)
    ctx = HookContext(environ=env, timeout=hook_timeout(deployment, env), echo_fd=sys.stderr.fileno() if live else None)
    try:
        data = hook_runner.execute(ref, deployment, ctx)
    finally:
        remove_leftovers(module, deployment["id"], env)
    return data, exit_status(data)


def render_text(data: Any) -> str:
    """``--format text``: deploy_stdout and deploy_stderr as text, then the outputs and the status."""
    if not isinstance(data, dict):
        return "%s\n" % (data,)
    parts = []
    for stream in ("deploy_stdout", "deploy_stderr"):
        text = data.get(stream)
        parts.append("--- %s ---\n%s" % (stream, text if isinstance(text, str) else ""))
        if parts[-1][-1:] != "\n":
            parts[-1] += "\n"
    parts.append("--- outputs ---\n")
    for name, value in data.items():
        if name not in ("deploy_stdout", "deploy_stderr", "deploy_status_code"):
            parts.append("%s: %s\n" % (name, value.rstrip("\n") if isinstance(value, str) else json.dumps(value)))
    parts.append("deploy_status_code: %s\n" % data.get("deploy_status_code"))
    return "".join(parts)
