"""Deployments shaped as Heat sends them (SPEC §6.4), and the signal inputs that point them at a loopback cloud."""
from __future__ import annotations

import uuid
from typing import Any, Dict, List, Optional

from tests.servers.cloud import Cloud

STACK = "web"
STACK_ID = "1e4c0000-stack"


def dep_id(n: int = 0) -> str:
    return str(uuid.UUID(int=0x5B0C2F0E7D3A4F559D590D5F1C3A0000 + n))


def deployment(n: int = 0, config: Any = "#!/bin/sh\necho hello\n", group: str = "script",
               inputs: Optional[List[Dict[str, Any]]] = None, outputs: Optional[List[str]] = None,
               signal: Optional[List[Dict[str, Any]]] = None, options: Optional[Dict[str, Any]] = None,
               action: str = "CREATE", name: Optional[str] = None) -> Dict[str, Any]:
    """A deployment object shaped as Heat sends it (SPEC §6.4)."""
    items = list(inputs or [])
    items += [
        {"name": "deploy_server_id", "type": "String", "value": "a1b2c3d4-server"},
        {"name": "deploy_action", "type": "String", "value": action},
        {"name": "deploy_stack_id", "type": "String", "value": "%s/%s" % (STACK, STACK_ID)},
        {"name": "deploy_resource_name", "type": "String", "value": "deploy_%d" % n},
    ]
    items += signal if signal is not None else [
        {"name": "deploy_signal_transport", "type": "String", "value": "NO_SIGNAL"}]
    return {
        "id": dep_id(n),
        "name": name or "%02d_deployment" % n,
        "group": group,
        "creation_time": "2024-03-05T09:12:44Z",
        "options": options or {},
        "config": config,
        "outputs": [{"name": o, "type": "String", "error_output": False} for o in (outputs or [])],
        "inputs": items,
    }


def cfn_inputs(servers: Cloud, resource: str = "deploy_0") -> List[Dict[str, Any]]:
    url = servers.cfn.signed_signal_url(servers.access_key, STACK, STACK_ID, resource)
    return [
        {"name": "deploy_signal_transport", "type": "String", "value": "CFN_SIGNAL"},
        {"name": "deploy_signal_id", "type": "String", "value": url},
        {"name": "deploy_signal_verb", "type": "String", "value": "POST"},
    ]


def keystone_inputs(servers: Cloud, transport: str, resource: str = "deploy_0") -> List[Dict[str, Any]]:
    """HEAT_SIGNAL / ZAQAR_SIGNAL inputs for the stack every test deployment names (STACK/STACK_ID)."""
    servers.heat.add_stack(STACK, STACK_ID)
    items = [
        {"name": "deploy_signal_transport", "type": "String", "value": transport},
        {"name": "deploy_auth_url", "type": "String", "value": servers.auth_url},
        {"name": "deploy_username", "type": "String", "value": "web-deploy-user"},
        {"name": "deploy_user_id", "type": "String", "value": servers.user_id},
        {"name": "deploy_password", "type": "String", "value": servers.password},
        {"name": "deploy_project_id", "type": "String", "value": servers.project_id},
        {"name": "deploy_region_name", "type": "String", "value": servers.region},
    ]
    if transport == "ZAQAR_SIGNAL":
        items.append({"name": "deploy_queue_id", "type": "String", "value": "signal-queue-%s" % resource})
    return items
