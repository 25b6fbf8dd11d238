"""The ``docker-compose`` hook and its os-refresh-config companion (SPEC §8.3).

One project directory per deployment ``name`` under ``$HEAT_DOCKER_COMPOSE_WORKING``
holds ``docker-compose.yml`` and the env files given by the ``env_files`` input; the
hook runs ``up -d --no-build`` there, and the companion
(``configure.d/50-heat-config-docker-compose``) writes the compose files and takes
down projects whose deployment was removed.

Compose v2 (``docker compose``) is used when the docker CLI has it, else the v1
``docker-compose`` command; ``$HEAT_DOCKER_COMPOSE_CMD`` (split like a shell word
list, so ``docker compose`` works) overrides the choice.
"""
from __future__ import annotations

import ast
import json
import logging
import os
import re
import shlex
import shutil
import time
from typing import Any, Dict, List, Mapping

from agent_common import proc
from agent_common.atomic import atomic_write, ensure_dir
from agent_common.deployment_contract import BadDeployment, Deployment, input_values, name_problem
from hooks.toolkit.companion import group_deployments
from hooks.toolkit.context import HookContext
from hooks.toolkit.docker_api import Engine, EngineError
from hooks.toolkit.result import HookResult, log_outcome, result_from_proc

LOG = logging.getLogger("heat-config")

WORKING_ENV, WORKING_DEFAULT = "HEAT_DOCKER_COMPOSE_WORKING", "/var/lib/heat-config/heat-config-docker-compose"
CMD_ENV = "HEAT_DOCKER_COMPOSE_CMD"
COMPOSE_FILE = "docker-compose.yml"
#: How many log lines of a failing service are added to deploy_stderr, and at most how many characters.
LOG_TAIL_LINES = 20
LOG_TAIL_CHARS = 4096
#: Bound on one cleanup ``down`` in the companion (seconds): a hung engine must not hang os-refresh-config.
DOWN_TIMEOUT_S = 300.0
#: After a successful ``up -d``, how long containers get to crash before the project counts as up (seconds).
SETTLE_S = 2.0
#: Bound on probing the docker CLI for Compose v2 (seconds).
_PROBE_TIMEOUT_S = 20.0


# -- which compose ------------------------------------------------------------------------------
def compose_command(environ: Mapping[str, str]) -> List[str]:
    """``$HEAT_DOCKER_COMPOSE_CMD`` when set; else ``docker compose`` when the docker CLI has v2; else ``docker-compose``."""
    override = environ.get(CMD_ENV, "").strip()
    if override:
        return shlex.split(override)
    docker = shutil.which("docker", path=environ.get("PATH"))
    if docker:
        try:
            probe = proc.run([docker, "compose", "version"], env=environ, timeout=_PROBE_TIMEOUT_S, output_cap=4096)
            if probe.returncode == 0:
                return [docker, "compose"]
        except OSError:
            pass
    return ["docker-compose"]


def is_v2(cmd: List[str]) -> bool:
    return len(cmd) >= 2 and os.path.basename(cmd[0]) == "docker" and cmd[1] == "compose"


# -- the compose file ---------------------------------------------------------------------------
def project_dir(working: str, deployment: Deployment) -> str:
    """``<working>/<name>``; a name that cannot be a directory name is refused (SPEC §12.7)."""
    name = deployment.get("name")
    problem = name_problem(name)
    if problem or not isinstance(name, str):  # name_problem refuses every name that is not a string
        raise BadDeployment("deployment name %s" % problem)
    return os.path.join(working, name)


def parse_config(config: Any) -> Dict[str, Any]:
    """The compose document as a mapping: an object as it is, a string parsed as YAML (booleans and nulls allowed)."""
    if isinstance(config, str):
        import yaml

        try:
            config = yaml.safe_load(config)
        except yaml.YAMLError as exc:
            raise BadDeployment("config is not valid YAML: %s" % str(exc).replace("\n", " ")) from None
    if not isinstance(config, dict):
        raise BadDeployment("config must be a compose document (a mapping), not %s" % type(config).__name__)
    return config


def services(document: Dict[str, Any]) -> Dict[str, Any]:
    """The services of either layout: under ``services:``, or at the top level (Compose file v1)."""
    if isinstance(document.get("services"), dict):
        return document["services"]
    return {k: v for k, v in document.items() if isinstance(v, dict) and k not in ("version", "networks", "volumes")}


def compose_text(config: Any, v2: bool) -> str:
    """What goes in docker-compose.yml: a string verbatim, an object as block YAML; a v1 layout wrapped for v2."""
    document = parse_config(config)
    if v2 and not isinstance(document.get("services"), dict):
        # v2 refuses the v1 key ``net``; ``network_mode`` takes the same values (host, none, container:NAME).
        document = {"services": {name: _v1_service_for_v2(svc) for name, svc in document.items()}}
    elif isinstance(config, str):
        return config
    import yaml

    return yaml.safe_dump(document, default_flow_style=False)


def _v1_service_for_v2(service: Any) -> Any:
    if isinstance(service, dict) and "net" in service and "network_mode" not in service:
        service = {("network_mode" if k == "net" else k): v for k, v in service.items()}
    return service


def write_compose_file(directory: str, config: Any, v2: bool) -> str:
    ensure_dir(directory, 0o700)
    path = os.path.join(directory, COMPOSE_FILE)
    atomic_write(path, compose_text(config, v2), 0o600, sync=False)
    return path


# -- env files ----------------------------------------------------------------------------------
def env_file_inputs(value: Any) -> Dict[str, str]:
    """file_name → content from the ``env_files`` input: JSON text, the originals' Python literal, or a list."""
    if value is None or value == "":
        return {}
    items = value
    if isinstance(value, str):
        try:
            items = json.loads(value)
        except ValueError:
            try:
                items = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise BadDeployment("input env_files is neither JSON nor a Python literal list") from None
    if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("file_name"), str) for i in items):
        raise BadDeployment('input env_files must be a list of {"file_name": ..., "content": ...}')
    return {i["file_name"]: "" if i.get("content") is None else str(i.get("content")) for i in items}


def referenced_env_files(document: Dict[str, Any]) -> List[str]:
    names: List[str] = []
    for service in services(document).values():
        value = service.get("env_file") if isinstance(service, dict) else None
        for name in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(name, str) and name not in names:
                names.append(name)
    return names


def write_env_files(directory: str, document: Dict[str, Any], provided: Dict[str, str]) -> None:
    """Write each env file a service references and the input provides; unprovided ones are left to compose."""
    root = os.path.realpath(directory)
    for name in referenced_env_files(document):
        if name not in provided:
            continue
        path = os.path.realpath(os.path.join(directory, name))
        if not path.startswith(root + os.sep):
            raise BadDeployment("env file %s is outside the project directory" % name)
        ensure_dir(os.path.dirname(path), 0o700)
        atomic_write(path, provided[name], 0o600, sync=False)
        LOG.debug("Wrote env file %s", name)


# -- diagnosis ----------------------------------------------------------------------------------
def compose_project_name(directory: str) -> str:
    """The project name compose derives from the directory (v1 and v2 normalise alike)."""
    return re.sub(r"[^-_a-z0-9]", "", os.path.basename(directory).lower())


def failing_services(directory: str, names: List[str], environ: Mapping[str, str]) -> List[str]:
    """One report per project container that is unhealthy, or stopped other than with 0: status and log tails."""
    engine = Engine(environ.get("DOCKER_HOST"), timeout=10)
    reports: List[str] = []
    try:
        containers = engine.containers(all=True, labels={"com.docker.compose.project": compose_project_name(directory)})
        for c in containers:
            status = c.get("Status", "")
            healthy_enough = c.get("State") == "running" and "(unhealthy)" not in status
            if healthy_enough or re.search(r"Exited \(0\)", status):
                continue
            service = (c.get("Labels") or {}).get("com.docker.compose.service", "?")
            if service not in names:  # an orphan of an earlier version of the project is not this deployment's
                continue
            name = (c.get("Names") or ["?"])[0].lstrip("/")
            report = "service %s (container %s) is %s\n" % (service, name, status or c.get("State"))
            tails = engine.log_tails(c["Id"], LOG_TAIL_LINES)
            for stream in ("stdout", "stderr"):
                tail = tails[stream]
                if len(tail) > LOG_TAIL_CHARS:
                    tail = "[... cut ...]" + tail[-LOG_TAIL_CHARS:]
                if tail:
                    report += "its last %s lines:\n%s" % (stream, tail if tail.endswith("\n") else tail + "\n")
            reports.append(report)
    except EngineError as exc:
        LOG.debug("No failure diagnosis: %s", exc)
    return reports


# -- the hook -----------------------------------------------------------------------------------
def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    working = ctx.path(WORKING_ENV, WORKING_DEFAULT)
    directory = project_dir(working, deployment)
    ensure_dir(directory, 0o700)
    inputs = input_values(deployment)
    config = deployment.get("config")
    if inputs.get("deploy_action") == "DELETE" or config is None or config == "" or config == {}:
        LOG.debug("Nothing to bring up for %s (%s)", deployment.get("name"),
                  "DELETE" if inputs.get("deploy_action") == "DELETE" else "empty config")
        return HookResult()

    cmd = compose_command(ctx.environ)
    document = parse_config(config)
    # The companion normally wrote it; writing it here too lets the hook run on its own (heat-config run).
    write_compose_file(directory, config, is_v2(cmd))
    write_env_files(directory, document, env_file_inputs(inputs.get("env_files")))

    argv = cmd + ["up", "-d", "--no-build"]
    result_proc = ctx.run_tool(argv, "install Compose v2 or docker-compose, or set %s" % CMD_ENV, cwd=directory)
    result = result_from_proc(result_proc, ctx)
    if not result_proc.timed_out:
        if result_proc.returncode == 0:
            time.sleep(min(SETTLE_S, ctx.remaining() or SETTLE_S))  # a service that dies at once did not come up
        reports = failing_services(directory, list(services(document)), ctx.environ)
        if reports:
            result.add_error("".join(reports))
            result.status_code = result.status_code or 1
    log_outcome(" ".join(argv), result.status_code, bool(result.status_code), done_level=logging.DEBUG)
    return result


# -- the os-refresh-config companion ------------------------------------------------------------
def _take_down(directory: str, cmd: List[str], environ: Mapping[str, str]) -> bool:
    argv = cmd + ["down", "--remove-orphans"]
    try:
        done = proc.run(argv, env=environ, cwd=directory, timeout=DOWN_TIMEOUT_S, output_cap=64 * 1024)
    except OSError as exc:
        LOG.error("Cannot take down %s: %s: %s", directory, argv[0], exc.strerror)
        return False
    if done.returncode:
        LOG.error("%s in %s failed (%s); will retry on the next run: %s", " ".join(argv), directory,
                  "timed out" if done.timed_out else done.returncode,
                  done.stderr.decode("utf-8", "replace").strip()[-2000:])
        return False
    return True


def refresh(environ: Mapping[str, str]) -> int:
    """``configure.d/50-heat-config-docker-compose``: remove projects of gone deployments, write current ones.

    Returns 0 whatever single project went wrong (each is logged): one bad
    deployment must not abort os-refresh-config and block every other (§11.25).
    """
    working = environ.get(WORKING_ENV) or WORKING_DEFAULT
    ensure_dir(working, 0o700)
    wanted = group_deployments(environ, "docker-compose", "name")
    if wanted is None:
        return 0

    cmd = compose_command(environ)
    for name in sorted(os.listdir(working)):
        directory = os.path.join(working, name)
        if name in wanted or not os.path.isfile(os.path.join(directory, COMPOSE_FILE)):
            continue
        LOG.info("Deployment %s is gone: taking its compose project down", name)
        if _take_down(directory, cmd, environ):
            shutil.rmtree(directory, ignore_errors=True)

    for name, dep in wanted.items():
        if dep.get("config") in (None, "", {}):
            continue
        try:
            write_compose_file(os.path.join(working, name), dep["config"], is_v2(cmd))
        except (BadDeployment, OSError) as exc:
            LOG.error("docker-compose deployment %s: %s", name, exc)
    return 0
