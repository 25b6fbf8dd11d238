"""Heat templates and stack queries shared by the scenarios that drive the real Heat (tests/e2e, tests/vm)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import yaml

from tests.e2e import controlplane


def deployment_template(
    *,
    transport: str,
    signal: str,
    group: str,
    config: Any,
    inputs: Optional[List[Dict[str, Any]]] = None,
    outputs: Optional[List[Dict[str, Any]]] = None,
    input_values: Optional[Dict[str, Any]] = None,
    actions: Optional[List[str]] = None,
    options: Optional[Dict[str, Any]] = None,
    config_type: str = "OS::Heat::SoftwareConfig",
) -> Dict[str, Any]:
    """DeployedServer + one config + one deployment; outputs expose the server's occ settings and results."""
    deployment: Dict[str, Any] = {
        "config": {"get_resource": "config"},
        "server": {"get_resource": "server"},
        "signal_transport": signal,
        "input_values": input_values or {},
    }
    if actions is not None:
        deployment["actions"] = actions
    template_outputs: Dict[str, Any] = {
        "os_collect_config": {"value": {"get_attr": ["server", "os_collect_config"]}},
    }
    for attr in ("deploy_stdout", "deploy_stderr", "deploy_status_code"):
        template_outputs[attr] = {"value": {"get_attr": ["deployment", attr]}}
    for out in outputs or []:
        template_outputs["out_" + out["name"]] = {"value": {"get_attr": ["deployment", out["name"]]}}
    config_props: Dict[str, Any] = {"group": group, "config": config, "inputs": inputs or [],
                                    "outputs": outputs or []}
    if options:
        config_props["options"] = options
    return {
        "heat_template_version": "2021-04-16",
        "resources": {
            "server": {"type": "OS::Heat::DeployedServer",
                       "properties": {"software_config_transport": transport}},
            "config": {"type": config_type, "properties": config_props},
            "deployment": {"type": "OS::Heat::SoftwareDeployment", "properties": deployment},
        },
        "outputs": template_outputs,
    }


def _query(url: Any) -> Optional[str]:
    """The signed part of a pre-signed or temp URL."""
    return url.split("?", 1)[1] if isinstance(url, str) and "?" in url else None


def outputs_of(stack: Dict[str, Any]) -> Dict[str, Any]:
    return {o["output_key"]: o.get("output_value") for o in stack.get("outputs", [])}


def wait_for_occ_settings(heat: controlplane.Heat, name: str, stack_id: str, timeout: float = 60) -> Dict:
    """The server's os_collect_config attribute, once the DeployedServer exists."""
    deadline = time.monotonic() + timeout
    while True:
        stack = heat.stack(name, stack_id)
        value = outputs_of(stack).get("os_collect_config")
        if value:
            return value
        if not stack["stack_status"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            raise AssertionError("no os_collect_config from the server: %s %s"
                                 % (stack["stack_status"], stack.get("stack_status_reason")))
        time.sleep(0.5)


def deployment_events(heat: controlplane.Heat, name: str, stack_id: str) -> List[str]:
    return ["%s %s: %s" % (e["resource_status"], e["logical_resource_id"], e.get("resource_status_reason"))
            for e in heat.events(name, stack_id) if e["logical_resource_id"] == "deployment"]




def server_secrets(heat: controlplane.Heat, name: str, stack_id: str) -> Set[str]:
    """The credentials Heat handed the stack's server (SPEC §12.10: none may reach a log)."""
    try:
        md = heat.call("GET", "/stacks/%s/%s/resources/server/metadata" % (name, stack_id))["metadata"] or {}
    except controlplane.ApiError:
        return set()
    found: List[Any] = []
    for section in (md.get("os-collect-config") or {}).values():
        if isinstance(section, dict):
            found += [section.get("password"), section.get("secret_access_key"), _query(section.get("metadata_url"))]
    for dep in md.get("deployments") or []:
        for inp in dep.get("inputs") or []:
            if inp.get("name") == "deploy_password":
                found.append(inp.get("value"))
            elif inp.get("name") == "deploy_signal_id":
                found.append(_query(inp.get("value")))
    return {v for v in found if isinstance(v, str) and len(v) >= 8}


def assert_no_secret_in(secrets: Set[str], text: str, where: str) -> None:
    leaked = [s[:4] + "..." for s in secrets if s in text]
    assert not leaked, "credentials Heat gave the server appear in %s (starting %s)" % (where, leaked)


#: A stack of only boot-config's resource, its user-data (a software config id) as an output.
BOOT_CONFIG_TOP = {
    "heat_template_version": "2021-04-16",
    "parameters": {"image": {"type": "string", "default": "none"}},
    "resources": {"boot_config": {"type": "Heat::InstallConfigAgent"}},
    "outputs": {"config": {"value": {"get_attr": ["boot_config", "config"]}},
                "image": {"value": {"get_param": "image"}}},
}


def _inline_files(node: Any, base: Path, files: Dict[str, str]) -> Any:
    """Replace each get_file path by its absolute URL and put the file in ``files``, as heatclient does."""
    if isinstance(node, list):
        return [_inline_files(item, base, files) for item in node]
    if isinstance(node, dict):
        if list(node) == ["get_file"]:
            path = (base / node["get_file"]).resolve()
            url = path.as_uri()
            files[url] = path.read_text()
            return {"get_file": url}
        return {key: _inline_files(value, base, files) for key, value in node.items()}
    return node


def boot_config_stack_request(env_file: Path, parameters: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """What python-heatclient sends for ``openstack stack create -e <env> -t <template>`` of boot-config.

    The environment's registry target and every ``get_file`` become absolute file URLs whose contents go
    in ``files``; ``parameters`` override the environment's parameter_defaults."""
    env = yaml.safe_load(env_file.read_text())
    files: Dict[str, str] = {}
    registry = env["resource_registry"]
    target = (env_file.parent / registry["Heat::InstallConfigAgent"]).resolve()
    nested = _inline_files(yaml.safe_load(target.read_text()), target.parent, files)
    files[target.as_uri()] = yaml.safe_dump(nested)
    env["resource_registry"] = {"Heat::InstallConfigAgent": target.as_uri()}
    env.setdefault("parameter_defaults", {}).update(parameters or {})
    return {"template": BOOT_CONFIG_TOP, "environment": env, "files": files}
