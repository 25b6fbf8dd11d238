"""The collector registry: name → class, resolved on first use.

Collector modules are imported only when the command line needs their options or
the loop runs them, so ``--print`` with the local collector never imports
``requests`` or keystoneauth1.  A new collector is one module plus one line here.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import importlib

from os_collect_config.collectors.base import Collector, Option

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, Tuple, Type

#: name → "module:Class", in the default collection order of SPEC §2.2's help text.
REGISTRY: Dict[str, str] = {
    "heat_local": "os_collect_config.collectors.heat_local:HeatLocalCollector",
    "ec2": "os_collect_config.collectors.ec2:Ec2Collector",
    "cfn": "os_collect_config.collectors.cfn:CfnCollector",
    "heat": "os_collect_config.collectors.heat:HeatCollector",
    "request": "os_collect_config.collectors.request:RequestCollector",
    "local": "os_collect_config.collectors.local:LocalCollector",
    "zaqar": "os_collect_config.collectors.zaqar:ZaqarCollector",
}


class CollectorMissing(ImportError):
    """The collector's module is not installed (yet)."""


def load(name: str) -> Type[Collector]:
    """The class registered as ``name``; KeyError for an unknown name, CollectorMissing if not installed."""
    module_name, _, class_name = REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise CollectorMissing("collector %s is not installed (%s)" % (name, module_name)) from exc
    return getattr(module, class_name)


def options(name: str) -> Tuple[Option, ...]:
    """The options ``name`` declares (its INI section and ``--<name>-*`` flags)."""
    try:
        return tuple(load(name).options)
    except CollectorMissing:
        return ()
