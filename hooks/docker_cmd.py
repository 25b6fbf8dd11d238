"""The ``docker-cmd`` hook and its os-refresh-config companion (SPEC §8.10).

The config maps container keys to compose-v1-like settings; containers are handled
in ascending ``start_order`` (ties in document order) with ``docker run`` (labelled
with the deployment and ``managed_by=docker-cmd``; a taken name gets a random
``-xxxxxxxx`` suffix) or ``docker exec`` into a container of the same deployment;
``exit_codes`` lists the return codes that count as success.  The companion
(``configure.d/50-heat-config-docker-cmd``) removes the containers of deployments
gone from the metadata and gives suffixed containers their key back.  The hook's
stdout is only its JSON result; the commands' output goes to the log, input
values masked.
"""
from __future__ import annotations

import errno
import logging
import random
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from agent_common.deployment_contract import (
    BadDeployment,
    Deployment,
    deployment_id,
    env_text,
    input_values,
    timeout_message,
)
from agent_common.logs import register_secrets
from agent_common.proc import TIMEOUT_STATUS, ProcResult
from hooks.toolkit.companion import group_deployments
from hooks.toolkit.context import HookContext
from hooks.toolkit.result import HookResult, decode, log_outcome

LOG = logging.getLogger("heat-config")

CMD_ENV, CMD_DEFAULT = "HEAT_DOCKER_CMD", "docker"
GROUP = "docker-cmd"
MANAGED_LABEL = "managed_by=" + GROUP
#: The container settings the hook reads; anything else is logged as ignored.
KNOWN_FIELDS = frozenset({
    "action", "command", "detach", "env_file", "environment", "exit_codes", "image", "net", "pid",
    "privileged", "restart", "start_order", "user", "volumes", "volumes_from",
})
#: Docker's own rule for container names.
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_SUFFIX_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
#: Random suffixes tried before a run gives up finding a free name (each try is one ``docker inspect``).
NAME_ATTEMPTS = 20
#: Bound on the whole companion run (seconds): a hung engine must not hang os-refresh-config.
REFRESH_TIMEOUT_S = 600.0

Spec = Dict[str, Any]


class DockerCannotRun(Exception):
    """The docker command itself could not be started (missing, not executable)."""


# -- the config ---------------------------------------------------------------------------------
def _fail(key: Any, message: str) -> BadDeployment:
    return BadDeployment("container %s: %s" % (key, message))


def _strings(key: str, spec: Spec, field: str) -> List[str]:
    """A list-of-strings setting (a lone string counts as a one-item list); empty items are dropped."""
    value = spec.get(field)
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(i is None or _is_word(i) for i in items):
        raise _fail(key, "%s must be a string or a list of strings" % field)
    return [str(i) for i in items if i is not None and i != ""]


def _is_word(value: Any) -> bool:
    """A string, or a number YAML typed as one (``8080``): what can be one argument."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _environment(key: str, spec: Spec) -> List[str]:
    """``environment`` as ``NAME=value`` items: a list as given, or a mapping (null value: just NAME)."""
    value = spec.get("environment")
    if isinstance(value, dict):
        return [str(k) if v is None else "%s=%s" % (k, env_text(v)) for k, v in value.items()]
    return _strings(key, spec, "environment")


def _scalar(key: str, spec: Spec, field: str) -> Optional[str]:
    value = spec.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail(key, "%s must be a string" % field)
    return str(value)


def _boolean(key: str, spec: Spec, field: str) -> Optional[str]:
    """A true/false setting as docker spells it (``true``/``false``), None when unset."""
    value = spec.get(field)
    if value is None:
        return None
    text = str(value).lower()
    if not isinstance(value, (bool, str)) or text not in ("true", "false"):
        raise _fail(key, "%s must be true or false" % field)
    return text


def _command(key: str, spec: Spec) -> List[str]:
    """``command``: a string split on whitespace, or a list of arguments."""
    value = spec.get("command")
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return value.split()
    if not isinstance(value, list) or not all(_is_word(i) for i in value):
        raise _fail(key, "command must be a string or a list of strings")
    return [str(i) for i in value]


def _exit_codes(key: str, spec: Spec) -> List[int]:
    value = spec.get("exit_codes", [0])
    items = [value] if isinstance(value, int) else value
    if not isinstance(items, list) or not items or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise _fail(key, "exit_codes must be a list of integers")
    return items


def check_container(key: Any, spec: Any) -> Spec:
    """One container's settings, checked: everything wrong is a BadDeployment naming the key and field."""
    if not isinstance(key, str) or not key:
        raise _fail(key, "the container key must be a non-empty string")
    if not isinstance(spec, dict):
        raise _fail(key, "settings must be a mapping, not %s" % type(spec).__name__)
    action = spec.get("action", "run")
    if action not in ("run", "exec"):
        raise _fail(key, "action %r is neither 'run' nor 'exec'" % (action,))
    order = spec.get("start_order", 0)
    if isinstance(order, bool) or not isinstance(order, (int, float)):
        raise _fail(key, "start_order must be a number, not %r" % (order,))
    checked: Spec = {"action": action, "start_order": order, "exit_codes": _exit_codes(key, spec),
                     "command": _command(key, spec), "privileged": _boolean(key, spec, "privileged"),
                     "user": _scalar(key, spec, "user")}
    if action == "exec":
        if not checked["command"]:
            raise _fail(key, "command must name the container to exec in, then the command")
        return checked
    if not _CONTAINER_NAME.match(key):
        raise _fail(key, "not a valid container name (letters, digits, '_', '.', '-')")
    image = spec.get("image")
    if not isinstance(image, str) or not image.strip():
        raise _fail(key, "image must be a non-empty string")
    detach = _boolean(key, spec, "detach")
    checked.update(
        image=image, detach=detach != "false", env_file=_strings(key, spec, "env_file"),
        environment=_environment(key, spec), net=_scalar(key, spec, "net"), pid=_scalar(key, spec, "pid"),
        restart=_scalar(key, spec, "restart"), volumes=_strings(key, spec, "volumes"),
        volumes_from=_strings(key, spec, "volumes_from"),
    )
    return checked


def containers(config: Any) -> List[Tuple[str, Spec]]:
    """The containers of a config (object, or YAML text), checked, in ascending start_order, ties in document order."""
    if isinstance(config, str):
        import yaml

        try:
            config = yaml.safe_load(config)
        except yaml.YAMLError as exc:
            raise BadDeployment("config is not valid YAML: %s" % str(exc).replace("\n", " ")) from None
    if config is None:
        return []
    if not isinstance(config, dict):
        raise BadDeployment("config must map container names to their settings, not %s" % type(config).__name__)
    checked = []
    for key, spec in config.items():
        checked.append((key, check_container(key, spec)))
        unknown = sorted(set(spec) - KNOWN_FIELDS, key=str)
        if unknown:
            LOG.warning("Container %s: ignoring unknown setting(s) %s", key, ", ".join(map(str, unknown)))
    return sorted(checked, key=lambda item: item[1]["start_order"])


# -- argv ---------------------------------------------------------------------------------------
def _options(spec: Spec, fields: Sequence[str]) -> List[str]:
    """``--<field>=<value>`` for each of ``fields`` that is set, in that order."""
    return ["--%s=%s" % (field, spec[field]) for field in fields if spec[field] is not None]


def run_args(name: str, key: str, spec: Spec, config_id: str, inputs: Dict[str, Any]) -> List[str]:
    """``docker run``'s arguments, in the original's order (SPEC §8.10), ``--volumes-from`` spelled as docker wants."""
    args = ["run", "--name", name]
    for label, value in (("deploy_stack_id", env_text(inputs.get("deploy_stack_id"))),
                         ("deploy_resource_name", env_text(inputs.get("deploy_resource_name"))),
                         ("config_id", config_id), ("container_name", key), ("managed_by", GROUP)):
        args += ["--label", "%s=%s" % (label, value)]
    if spec["detach"]:
        args.append("--detach=true")
    args += ["--env-file=%s" % f for f in spec["env_file"]]
    args += ["--env=%s" % e for e in spec["environment"]]
    args += _options(spec, ("net", "pid", "privileged", "restart", "user"))
    args += ["--volume=%s" % v for v in spec["volumes"]]
    args += ["--volumes-from=%s" % v for v in spec["volumes_from"]]
    return args + [spec["image"]] + spec["command"]


def _loggable(argv: Sequence[str]) -> str:
    """The command line for the log, environment values masked (they often carry input values)."""
    return " ".join(re.sub(r"^(--env=[^=]*=).+", r"\1***", a) for a in argv)


# -- talking to docker --------------------------------------------------------------------------
def _docker(ctx: HookContext, docker: str, args: Sequence[str]) -> ProcResult:
    argv = [docker] + list(args)
    LOG.debug("Running %s", _loggable(argv))
    try:
        return ctx.run(argv)
    except OSError as exc:
        raise DockerCannotRun("%s cannot be run: %s (install docker, or set %s)" % (
            docker, "not installed" if exc.errno == errno.ENOENT else exc.strerror, CMD_ENV)) from None


def _names(result: ProcResult) -> List[str]:
    return result.stdout.decode("utf-8", "replace").split() if result.returncode == 0 else []


def free_name(ctx: HookContext, docker: str, key: str) -> str:
    """``key``, or ``key-<8 random [a-z0-9]>`` while another container has the name tried."""
    name = key
    for _ in range(NAME_ATTEMPTS):
        if _docker(ctx, docker, ["inspect", "--type", "container", "--format", "exists", name]).returncode:
            return name
        name = "%s-%s" % (key, "".join(random.choice(_SUFFIX_CHARS) for _ in range(8)))
    raise BadDeployment("container %s: no free name found after %d tries" % (key, NAME_ATTEMPTS))


def exec_target(ctx: HookContext, docker: str, key: str, config_id: str) -> str:
    """The container this deployment ran as ``key`` (first match), else ``key`` taken as a container name."""
    found = _names(_docker(ctx, docker, ["ps", "-a", "--filter", "label=container_name=%s" % key,
                                         "--filter", "label=config_id=%s" % config_id, "--format", "{{.Names}}"]))
    return found[0] if found else key


# -- the hook -----------------------------------------------------------------------------------
def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    inputs = input_values(deployment)
    config = deployment.get("config")
    if inputs.get("deploy_action") == "DELETE" or config is None or config == "" or config == {}:
        LOG.debug("Nothing to run (%s)", "DELETE" if inputs.get("deploy_action") == "DELETE" else "empty config")
        return HookResult()
    config_id = deployment_id(deployment)
    todo = containers(config)
    # Structured configs carry input values (get_input): keep them out of the logged commands and outputs.
    register_secrets(env_text(v) for k, v in inputs.items() if not k.startswith("deploy_"))
    docker = ctx.environ.get(CMD_ENV) or CMD_DEFAULT
    stdouts: List[str] = []
    stderrs: List[str] = []
    status = 0
    try:
        for key, spec in todo:
            LOG.debug("Running container: %s", key)
            if spec["action"] == "run":
                args = run_args(free_name(ctx, docker, key), key, spec, config_id, inputs)
            else:
                target = exec_target(ctx, docker, spec["command"][0], config_id)
                args = ["exec"] + _options(spec, ("privileged", "user")) + [target] + spec["command"][1:]
            done = _docker(ctx, docker, args)
            out = decode(done.stdout, done.stdout_truncated)
            err = decode(done.stderr, done.stderr_truncated)
            LOG.debug("%s %s: exit %s\nstdout: %s\nstderr: %s", spec["action"], key, done.returncode, out, err)
            stdouts += [out] if out else []
            stderrs += [err] if err else []
            if done.timed_out:
                stderrs.append(timeout_message(ctx.timeout or 0) + "\n")
                LOG.error("Timed out running %s", _loggable(args))
                return HookResult(stdout="\n".join(stdouts), stderr="\n".join(stderrs), status_code=TIMEOUT_STATUS)
            failed = done.returncode not in spec["exit_codes"]
            log_outcome(_loggable([docker] + args), done.returncode, failed, done_level=logging.DEBUG)
            if failed:
                status = done.returncode
    except DockerCannotRun as exc:
        LOG.error("%s", exc)
        stderrs.append(str(exc) + "\n")
        return HookResult(stdout="\n".join(stdouts), stderr="\n".join(stderrs), status_code=127)
    return HookResult(stdout="\n".join(stdouts), stderr="\n".join(stderrs), status_code=status)


# -- the os-refresh-config companion ------------------------------------------------------------
def _listed(ctx: HookContext, docker: str, args: Sequence[str]) -> List[List[str]]:
    """Tab-separated rows of a ``docker ps`` listing; a failing listing is logged and lists nothing."""
    result = _docker(ctx, docker, args)
    if result.returncode:
        LOG.error("docker %s failed (%s): %s", args[0], result.returncode,
                  result.stderr.decode("utf-8", "replace").strip()[-2000:])
        return []
    return [line.split("\t") for line in result.stdout.decode("utf-8", "replace").splitlines() if line.strip()]


def remove_gone(ctx: HookContext, docker: str, current_ids: Sequence[str]) -> None:
    """``docker rm -f`` every managed container whose config_id is no current docker-cmd deployment's id."""
    rows = _listed(ctx, docker, ["ps", "-a", "--filter", "label=" + MANAGED_LABEL, "--format", '{{.Label "config_id"}}'])
    for config_id in sorted({row[0] for row in rows if row[0]} - set(current_ids)):
        LOG.info("Deployment %s is gone: removing its containers", config_id)
        ids = _listed(ctx, docker, ["ps", "-a", "-q", "--filter", "label=" + MANAGED_LABEL,
                                    "--filter", "label=config_id=" + config_id])
        if not ids:
            continue
        removed = _docker(ctx, docker, ["rm", "-f"] + [row[0] for row in ids])
        if removed.returncode:
            LOG.error("Error removing the containers of %s: %s", config_id,
                      removed.stderr.decode("utf-8", "replace").strip()[-2000:])


def rename_suffixed(ctx: HookContext, docker: str) -> None:
    """Give each managed container its ``container_name`` label as name when no container has that name."""
    rows = _listed(ctx, docker, ["ps", "-a", "--format", '{{.Names}}\t{{.Label "container_name"}}\t{{.Label "managed_by"}}'])
    taken = {row[0] for row in rows}
    wanted = {row[0]: row[1] for row in rows if len(row) == 3 and row[2] == GROUP and row[1] and row[1] != row[0]}
    for current, desired in sorted(wanted.items()):
        if desired in taken:
            LOG.info('Cannot rename "%s" since "%s" still exists', current, desired)
            continue
        done = _docker(ctx, docker, ["rename", current, desired])
        if done.returncode:
            LOG.error("Cannot rename %s to %s: %s", current, desired, done.stderr.decode("utf-8", "replace").strip())
            continue
        taken.discard(current)
        taken.add(desired)


def refresh(environ: Mapping[str, str]) -> int:
    """``configure.d/50-heat-config-docker-cmd``: remove containers of gone deployments, rename suffixed ones.

    Always 0: a missing or broken deployments file, a missing docker or an engine
    error is logged, never a reason to abort os-refresh-config (§11.25).
    """
    wanted = group_deployments(environ, GROUP, "id")
    if wanted is None:
        return 0
    ctx = HookContext(environ=dict(environ), timeout=REFRESH_TIMEOUT_S)
    docker = ctx.environ.get(CMD_ENV) or CMD_DEFAULT
    try:
        remove_gone(ctx, docker, list(wanted))
        rename_suffixed(ctx, docker)
    except DockerCannotRun as exc:
        LOG.error("%s; containers left as they are", exc)
    return 0
