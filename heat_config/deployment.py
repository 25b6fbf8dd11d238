"""Deployments as the dispatcher prepares them: state files, coercion, component resolution, groups.

What a deployment is and how it is checked is agent_common.deployment_contract,
shared with the hooks; this module holds what only the dispatcher does to a
deployment before a hook sees it, and how it reads the result Heat will see.
"""
from __future__ import annotations

import json
from typing import Any, List

from agent_common.deployment_contract import Deployment, input_values
from agent_common.documents import loads_json, read_text

#: Groups that are applied by os-apply-config through os-collect-config, never by a hook (SPEC §1.4, §7.10).
OAC_GROUPS = frozenset({"os-apply-config", "Heat::Ungrouped"})
DEFAULT_GROUP = "Heat::Ungrouped"


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
