"""Deployments as the dispatcher reads them: the file, validation, coercion, component resolution.

Heat's deployment objects (SPEC §6.4) stay plain dicts, because that is what
hooks receive and what the state files hold; this module holds the rules
applied to them before any hook sees them (SPEC §6.3, §6.6 steps 1–3, §12.7,
§12.13.8, §12.13.9, §12.13.14).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from agent_common.documents import loads_json, read_text
from hooks.protocol import (  # noqa: F401  (the deployment rules, for the dispatcher side through here)
    deployment_problem,
    id_problem,
    input_values,
    name_problem,
    refusal,
    shape_problem,
)

Deployment = Dict[str, Any]

#: Groups that are applied by os-apply-config through os-collect-config, never by a hook (SPEC §1.4, §7.10).
OAC_GROUPS = frozenset({"os-apply-config", "Heat::Ungrouped"})
DEFAULT_GROUP = "Heat::Ungrouped"

class BadDeploymentsFile(Exception):
    """The deployments file cannot be read, is not JSON, or not a list (SPEC §12.7); the message names the file."""


def parse(text: str, path: str) -> List[Any]:
    """The list in the deployments file; empty, whitespace, ``null`` and ``[]`` mean none (§12.13.9)."""
    if not text.strip():
        return []
    try:
        data = loads_json(text, path)
    except ValueError as exc:
        raise BadDeploymentsFile(str(exc)) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise BadDeploymentsFile("%s: expected a JSON list of deployments, found %s" % (path, type(data).__name__))
    return data


def read_deployments(path: str) -> Optional[List[Any]]:
    """The deployments in the file ``path``; None when it does not exist.

    Every other way the file can be wrong — a FIFO or a directory, no permission, bytes
    that are not UTF-8, JSON that is not JSON or nested too deeply, not a list — is a
    BadDeploymentsFile whose message is the one line naming the file (SPEC §12.7).
    """
    try:
        text = read_text(path)
    except OSError as exc:
        raise BadDeploymentsFile("%s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise BadDeploymentsFile(str(exc)) from None
    return None if text is None else parse(text, path)


def load_file(path: str) -> Deployment:
    """A deployment state file (``<deployed dir>/<id>.json``) as a dict; {} when missing, empty or unreadable."""
    try:
        data = loads_json(read_text(path) or "null", path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def coerce_inputs(deployment: Deployment) -> None:
    """``String`` inputs with another JSON value become its JSON text, null becomes "" (SPEC §12.13.14)."""
    for item in deployment.get("inputs") or []:
        if not isinstance(item, dict) or item.get("type") != "String":
            continue
        value = item.get("value")
        if value is None:
            item["value"] = ""
        elif not isinstance(value, str):
            item["value"] = json.dumps(value)


def resolve_component(deployment: Deployment) -> bool:
    """For group ``component``, pick the first config whose actions hold deploy_action (SPEC §6.6 step 3).

    Returns False when nothing matches: the deployment is then left alone.
    """
    if deployment.get("group") != "component":
        return True
    action = input_values(deployment).get("deploy_action")
    config = deployment.get("config")
    configs = config.get("configs") if isinstance(config, dict) else None
    for entry in configs or []:
        if isinstance(entry, dict) and action in (entry.get("actions") or []):
            deployment["config"] = entry.get("config")
            deployment["group"] = entry.get("tool")
            return True
    return False


def group_of(deployment: Deployment) -> str:
    """The deployment's group; "" when it is not a string (``shape_problem`` refuses such a deployment)."""
    group = deployment.get("group")
    if group is None or group == "":
        return DEFAULT_GROUP
    return group if isinstance(group, str) else ""


def action_of(deployment: Deployment) -> str:
    action = input_values(deployment).get("deploy_action")
    return action if isinstance(action, str) else ""


def signal_failed(outputs: List[Any], data: Any) -> bool:
    """Whether Heat will mark the deployment FAILED on this signal (SPEC §7.8)."""
    if not isinstance(data, dict):
        return False
    code = data.get("deploy_status_code")
    if code and str(code) != "0":
        return True
    for output in outputs:
        if isinstance(output, dict) and output.get("error_output") and output.get("name") in data:
            return True
    return False
