"""Built-in hooks: the registry group → module.

Each module named here provides ``run(deployment, ctx) -> HookResult`` and may
provide ``cleanup(keep_ids, ctx)`` (see hooks/toolkit/) and ``refresh(environ) -> int``,
its os-refresh-config companion (``heat-config-hook --refresh GROUP``).  Modules are imported
only when their group is used, so the dispatcher starts fast whatever hooks exist.
Adding a hook is one module plus one line below.

On the hook start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Dict, Optional

#: group → module implementing it.
BUILTIN: Dict[str, str] = {
    "script": "hooks.script",
    "ansible": "hooks.ansible",
    "docker-compose": "hooks.docker_compose",
    "kubelet": "hooks.kubelet",
    "apply-config": "hooks.apply_config",
    "json-file": "hooks.json_file",
    "chef": "hooks.chef",
    "salt": "hooks.salt",
    "puppet": "hooks.puppet",
    "hiera": "hooks.hiera",
    "cfn-init": "hooks.cfn_init",
    "docker-cmd": "hooks.docker_cmd",
}


def module(group: str) -> Optional[ModuleType]:
    """The built-in hook module for ``group``, or None when there is none."""
    name = BUILTIN.get(group)
    return importlib.import_module(name) if name else None


def groups() -> list:
    return sorted(BUILTIN)
