"""The ``kubelet`` hook and its os-refresh-config companion (SPEC §8.4).

The companion (``configure.d/50-heat-config-kubelet``) keeps one static pod
manifest ``<id>.json`` per kubelet deployment in ``$HEAT_KUBELET_MANIFESTS``,
which the host's kubelet watches; the hook only waits, within the deployment's
timeout, until the pod is there: every image of the pod present, then every
container running.

Readiness is read where the kubelet puts containers: through the CRI with
``crictl`` when it is on the PATH (containerd, CRI-O), else from the Docker
engine at ``$DOCKER_HOST``, where a container counts when it is running and its
name follows the kubelet's docker naming — the original's
``k8s_<name>.<8 chars>_<first 15 chars of the id without dashes>`` or the later
dockershim ``k8s_<name>_<pod name>…``.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set

from agent_common import proc
from agent_common.atomic import atomic_write, ensure_dir
from agent_common.deployment_contract import BadDeployment, Deployment, deployment_id, timeout_message
from agent_common.logs import HEAT_CONFIG_FORMAT, RedactingFormatter
from agent_common.proc import TIMEOUT_STATUS
from hooks.toolkit.companion import group_deployments
from hooks.toolkit.context import HookContext
from hooks.toolkit.docker_api import Engine, EngineError
from hooks.toolkit.result import HookResult

LOG = logging.getLogger("heat-config")

MANIFESTS_ENV = "HEAT_KUBELET_MANIFESTS"
MANIFESTS_DEFAULT = "/var/lib/heat-config/heat-config-kubelet/kubelet-manifests"
DEFAULT_IMAGES_TIMEOUT = 600.0
DEFAULT_CONTAINERS_TIMEOUT = 120.0
DEFAULT_POLL_PERIOD = 5.0
#: Shortest pause between polls, so ``poll_period: 0`` cannot spin a CPU.
_MIN_POLL_S = 0.1


class _Deadline(Exception):
    """The deployment's own timeout (SPEC §12.5) ran out."""


# -- what the pod needs -------------------------------------------------------------------------
def pod_spec(deployment: Deployment) -> Dict[str, Any]:
    config = deployment.get("config")
    if isinstance(config, str):
        import yaml

        try:
            config = yaml.safe_load(config) if config.strip() else {}
        except yaml.YAMLError as exc:
            raise BadDeployment("config is not a pod manifest: %s" % str(exc).replace("\n", " ")) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BadDeployment("config must be a pod manifest (an object)")
    return config


def containers_of(manifest: Dict[str, Any]) -> List[Dict[str, Any]]:
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        spec = manifest
    items = spec.get("containers") or []
    if not isinstance(items, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in items):
        raise BadDeployment("config.containers must be a list of objects with a name")
    return items


def pod_name_part(config_id: str) -> str:
    """The original's pod part of a container name: the id without dashes, first 15 characters."""
    return config_id.replace("-", "")[:15]


def image_matches(wanted: str, tag: str) -> bool:
    """The original's rule: a tag that starts with the image if it names a tag, else with ``<image>:``."""
    return tag.startswith(wanted if ":" in wanted else wanted + ":")


def docker_name_patterns(config_id: str, container: str, pod_name: Optional[str]) -> List["re.Pattern[str]"]:
    """Names the kubelet gives the container in Docker: the original's form, and dockershim's."""
    patterns = [re.compile(r"^/?k8s_%s\.[0-9a-z]{8}_%s" % (re.escape(container), re.escape(pod_name_part(config_id))))]
    if pod_name:
        patterns.append(re.compile(r"^/?k8s_%s_%s(-[^_]+)?_" % (re.escape(container), re.escape(pod_name))))
    return patterns


# -- where to look ------------------------------------------------------------------------------
class DockerRuntime:
    """Images and running containers as the Docker engine at $DOCKER_HOST lists them."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.engine = Engine(environ.get("DOCKER_HOST"), timeout=30)
        self.description = "the Docker engine at %s" % self.engine.host

    def image_tags(self) -> List[str]:
        return [t for image in self.engine.images() for t in (image.get("RepoTags") or [])]

    def running(self, config_id: str, container: str, pod_name: Optional[str]) -> Optional[str]:
        patterns = docker_name_patterns(config_id, container, pod_name)
        for c in self.engine.containers():
            for name in c.get("Names") or []:
                if any(p.match(name) for p in patterns):
                    return name
        return None


class CriRuntime:
    """Images and running containers as ``crictl`` lists them from the CRI runtime (containerd, CRI-O)."""

    def __init__(self, crictl: str, environ: Mapping[str, str]) -> None:
        self.crictl = crictl
        self.environ = environ
        self.description = "the CRI runtime (%s)" % crictl

    def _json(self, *args: str) -> Dict[str, Any]:
        done = proc.run([self.crictl, *args, "-o", "json"], env=self.environ, timeout=60, output_cap=16 << 20)
        if done.returncode:
            raise EngineError("crictl %s failed: %s" % (args[0], done.stderr.decode("utf-8", "replace").strip()))
        try:
            return json.loads(done.stdout or b"{}")
        except ValueError as exc:
            raise EngineError("crictl %s printed no JSON: %s" % (args[0], exc)) from None

    def image_tags(self) -> List[str]:
        return [t for image in self._json("images").get("images") or [] for t in image.get("repoTags") or []]

    def running(self, config_id: str, container: str, pod_name: Optional[str]) -> Optional[str]:
        prefixes = [p for p in (pod_name, pod_name_part(config_id)) if p]
        for c in self._json("ps", "--state", "Running").get("containers") or []:
            labels = c.get("labels") or {}
            name = labels.get("io.kubernetes.container.name") or (c.get("metadata") or {}).get("name")
            pod = labels.get("io.kubernetes.pod.name", "")
            if name == container and any(pod.startswith(p) for p in prefixes):
                return "%s in pod %s" % (name, pod)
        return None


def runtime_for(environ: Mapping[str, str]):
    crictl = shutil.which("crictl", path=environ.get("PATH"))
    return CriRuntime(crictl, environ) if crictl else DockerRuntime(environ)


# -- waiting ------------------------------------------------------------------------------------
def _number(options: Dict[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadDeployment("option %s must be a number of seconds" % key)
    try:
        return max(float(value), 0.0)
    except ValueError:
        raise BadDeployment("option %s must be a number of seconds" % key) from None


def wait_for(what: str, pending: Set[str], check: Callable[[str], Optional[str]], timeout: float,
             poll: float, ctx: HookContext) -> None:
    """Poll ``check`` for every pending item until all are found; raise on the timeout or the deployment's deadline."""
    LOG.info("Waiting for %s: %s", what, ", ".join(sorted(pending)))
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            for item in sorted(pending):
                found = check(item)
                if found:
                    LOG.info("Found %s: %s", item, found)
                    pending.discard(item)
        except EngineError as exc:
            if str(exc) != last_error:
                LOG.warning("%s", exc)
            last_error = str(exc)
        if not pending:
            return
        remaining = ctx.remaining()
        if remaining is not None and remaining <= poll:
            raise _Deadline()
        if time.monotonic() + poll > deadline:
            raise TimeoutError("Timed out after %s seconds waiting for %s: %s" % (
                int(timeout) if timeout.is_integer() else timeout, what, ", ".join(sorted(pending))))
        time.sleep(poll)


def _capture(level: int) -> "tuple[logging.Handler, io.StringIO]":
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setLevel(level)
    handler.setFormatter(RedactingFormatter(HEAT_CONFIG_FORMAT))
    return handler, buf


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    config_id = deployment_id(deployment)
    options = deployment.get("options") or {}
    if not isinstance(options, dict):
        raise BadDeployment("options must be an object")
    images_timeout = _number(options, "images_timeout", DEFAULT_IMAGES_TIMEOUT)
    containers_timeout = _number(options, "containers_timeout", DEFAULT_CONTAINERS_TIMEOUT)
    poll = max(_number(options, "poll_period", DEFAULT_POLL_PERIOD), _MIN_POLL_S)
    manifest = pod_spec(deployment)
    containers = containers_of(manifest)
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    # A v1 Pod names itself in metadata.name; the originals' container manifests in "id".
    pod_name = next((n for n in (metadata.get("name"), manifest.get("id")) if isinstance(n, str) and n), None)

    # deploy_stdout is every record of this run, deploy_stderr the warnings and errors (as the original).
    out_handler, out = _capture(logging.DEBUG)
    err_handler, err = _capture(logging.WARNING)
    old_level = LOG.level
    LOG.setLevel(logging.DEBUG)
    LOG.addHandler(out_handler)
    LOG.addHandler(err_handler)
    status = 0
    try:
        runtime = runtime_for(ctx.environ)
        LOG.debug("Checking pod %s through %s", config_id, runtime.description)
        images = {c["image"] for c in containers if isinstance(c.get("image"), str)}
        if images:
            wait_for("images", set(images),
                     lambda image: next((t for t in runtime.image_tags() if image_matches(image, t)), None),
                     images_timeout, poll, ctx)
        names = {c["name"] for c in containers}
        if names:
            wait_for("containers", set(names), lambda name: runtime.running(config_id, name, pod_name),
                     containers_timeout, poll, ctx)
    except _Deadline:
        status = TIMEOUT_STATUS
        LOG.error("An error occurred deploying pod %s: %s", config_id, timeout_message(ctx.timeout or 0))
    except Exception as exc:  # reported in the result, as the original does
        status = 1
        LOG.error("An error occurred deploying pod %s: %s", config_id, exc)
    finally:
        LOG.removeHandler(out_handler)
        LOG.removeHandler(err_handler)
        LOG.setLevel(old_level)
    stderr = err.getvalue()
    if status == TIMEOUT_STATUS:
        stderr += timeout_message(ctx.timeout or 0) + "\n"
    return HookResult(stdout=out.getvalue(), stderr=stderr, status_code=status)


# -- the os-refresh-config companion ------------------------------------------------------------
def manifest_text(config: Any) -> str:
    return json.dumps(config, indent=2, separators=(",", ": "))


def refresh(environ: Mapping[str, str]) -> int:
    """``configure.d/50-heat-config-kubelet``: one ``<id>.json`` static pod manifest per kubelet deployment.

    Manifests of deployments that left the metadata are removed, so the kubelet
    stops their pods.  A deployments file that is missing or unreadable changes
    nothing (the dispatcher reports it); a bad deployment is logged and skipped.
    """
    manifests = environ.get(MANIFESTS_ENV) or MANIFESTS_DEFAULT
    ensure_dir(manifests, 0o700)
    deployments = group_deployments(environ, "kubelet", "id")
    if deployments is None:
        return 0
    wanted: Dict[str, str] = {}
    for dep_id, dep in deployments.items():
        try:
            wanted[dep_id + ".json"] = manifest_text(pod_spec(dep))
        except BadDeployment as exc:
            LOG.error("kubelet deployment %s: %s; skipped", dep_id, exc)

    for name in sorted(os.listdir(manifests)):
        if name.endswith(".json") and name not in wanted:
            os.unlink(os.path.join(manifests, name))
            LOG.info("Removed manifest %s: its deployment is gone", name)
    for name, text in wanted.items():
        path = os.path.join(manifests, name)
        try:
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        except OSError:
            pass
        atomic_write(path, text, 0o600, prefix=".tmp")  # the kubelet skips dot files
        LOG.info("Wrote manifest %s", name)
    return 0
