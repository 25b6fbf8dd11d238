"""Deployment explosion (SPEC §2.4) and the merge of one poll's keys in collection order.

Explosion turns the ``deployments`` list of a collector's metadata into extra keys so
that os-apply-config sees each os-apply-config deployment's ``config`` at the root.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import logging

from os_collect_config.collectors.base import Collected, Unavailable

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, Iterable, List, Sequence

LOG = logging.getLogger("os_collect_config.merger")  # the original's logger name (SPEC §2.19.3)

#: Groups whose ``config`` becomes a key of its own (a missing group counts as Heat::Ungrouped).
EXPLODED_GROUPS = ("os-apply-config", "Heat::Ungrouped")


def explode(metadata: Any, deployment_keys: Sequence[str], collector_name: str) -> List[Collected]:
    """``[(collector_name, metadata)]`` followed by the ``(name, config)`` of each qualifying deployment.

    A qualifying deployment without ``config`` crashed cfn and request in the original
    (SPEC §2.4.3, weakness 9); here it makes the whole source unavailable for this poll,
    so the last good metadata stays in force instead of half of a broken document.
    """
    out: List[Collected] = [(collector_name, metadata)]
    if not isinstance(metadata, dict):
        return out
    for depkey in deployment_keys:
        if depkey not in metadata:
            continue
        deployments = metadata[depkey]
        if not isinstance(deployments, list):
            LOG.warning("Deployment-key %s was found but does not contain a list.", depkey)
            continue
        LOG.debug("Deployment found for %s", depkey)
        for item in deployments:
            if not isinstance(item, dict) or "name" not in item:
                LOG.warning("No name found for a deployment under %s.", depkey)
                continue
            if item.get("group", "Heat::Ungrouped") not in EXPLODED_GROUPS:
                continue
            if "config" not in item:
                raise Unavailable("deployment %r under %s has no config" % (item["name"], depkey))
            out.append((item["name"], item["config"]))
    return out


def as_mapping(pairs: Iterable[Collected]) -> Dict[str, Any]:
    """The print-mode object: keys in collection order, a repeated key keeps its last value (SPEC §2.16)."""
    out: Dict[str, Any] = {}
    for key, value in pairs:
        out[key] = value
    return out
