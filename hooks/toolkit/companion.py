"""What the os-refresh-config companions of the container hooks share (SPEC §8.3, §8.4).

The docker-compose and kubelet hooks each ship a ``configure.d/50-heat-config-*``
script (``heat-config-hook --refresh GROUP``) that runs before the dispatcher and
reads the same deployments file to bring the host in line with it.
"""
from __future__ import annotations

import logging
from typing import Dict, Mapping, Optional

from agent_common.deployment_contract import BadDeploymentsFile, Deployment, id_problem, name_problem, read_deployments
from agent_common.paths import get_path

LOG = logging.getLogger("heat-config")


def group_deployments(environ: Mapping[str, str], group: str, key: str) -> Optional[Dict[str, Deployment]]:
    """The deployments of ``group`` in the deployments file by their ``key`` field (``id`` or ``name``),
    for the os-refresh-config companions of the docker-compose and kubelet hooks (SPEC §8.3, §8.4).

    A deployment whose key cannot be a file name is logged and left out (SPEC §12.7).
    None (logged) when the file is missing or unreadable: a companion then changes
    nothing and exits 0, leaving the dispatcher to report the file (SPEC §11.25).
    """
    conf = get_path("heat_shell_config", environ)
    try:
        deployments = read_deployments(conf)
    except BadDeploymentsFile as exc:
        LOG.error("%s; %s left as it is", exc, group)
        return None
    if deployments is None:
        LOG.warning("No config file %s; %s left as it is", conf, group)
        return None
    key_problem = id_problem if key == "id" else name_problem
    found: Dict[str, Deployment] = {}
    for dep in deployments:
        if not isinstance(dep, dict) or dep.get("group") != group:
            continue
        problem = key_problem(dep.get(key))
        if problem:
            LOG.error("%s deployment %s: %s %s; skipped", group, dep.get("id") or dep.get("name"), key, problem)
            continue
        found[dep[key]] = dep
    return found
