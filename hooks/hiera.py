"""The ``hiera`` hook (SPEC §8.8): write a hiera config and JSON data files for Puppet to look up.

Compatible with the heat-agents hiera hook: same environment variables, the same
legacy guard (``$HEAT_HIERA_ELEMENT_CHECK_CMD``: when it runs and prints anything
but ``empty``, hieradata still comes from os-apply-config and the deployment
fails), the same hiera.yaml layout and data file bytes.  Every file is written
atomically with mode 0600.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional

from agent_common.deployment_contract import BadDeployment, Deployment
from hooks.toolkit.context import HookContext, ensure_private_dir
from hooks.toolkit.hieradata import DATADIR_DEFAULT, DATADIR_ENV, file_name_problem, write_private
from hooks.toolkit.json_text import original_layout
from hooks.toolkit.result import HookResult, result_from_proc

LOG = logging.getLogger("heat-config")

CONFIG_ENV, CONFIG_DEFAULT = "HEAT_HIERA_CONFIG", "/etc/puppet/hiera.yaml"
CHECK_ENV = "HEAT_HIERA_ELEMENT_CHECK_CMD"
CHECK_DEFAULT = "os-apply-config --key hiera.datafiles --type raw --key-default empty"
#: What the check command prints when os-apply-config holds no legacy hieradata.
CHECK_EMPTY = "empty"


def data_file(datadir: str, key: Any) -> str:
    """``<datadir>/<key>.json`` for a ``config.datafiles`` key, which must stay inside ``datadir``."""
    problem = file_name_problem(key)
    if problem:
        raise BadDeployment("config.datafiles key %r %s" % (key, problem))
    return os.path.join(datadir, key + ".json")


def hiera_config(datadir: str, hierarchy: List[str]) -> str:
    """The hiera.yaml text, line for line as the original wrote it (a leading empty line included)."""
    lines = ["", "---", ":backends:", "  - json", ":json:", "  :datadir: %s" % datadir, ":hierarchy:"]
    lines += ["  - %s" % item for item in hierarchy]
    return "\n".join(lines) + "\n"


def _hierarchy(config: Dict[str, Any]) -> Optional[List[str]]:
    if "hierarchy" not in config:
        return None
    hierarchy = config["hierarchy"]
    if not isinstance(hierarchy, list):
        raise BadDeployment("config.hierarchy must be a list, not %s" % type(hierarchy).__name__)
    for index, item in enumerate(hierarchy):
        if not isinstance(item, str) or "\n" in item or "\r" in item:
            raise BadDeployment("config.hierarchy[%d] must be a one-line string" % index)
    return hierarchy


def _datafiles(config: Dict[str, Any], datadir: str) -> Dict[str, str]:
    """path → text of every data file, all keys checked before anything is written."""
    datafiles = config.get("datafiles")
    if datafiles is None:
        return {}
    if not isinstance(datafiles, dict):
        raise BadDeployment("config.datafiles must be an object, not %s" % type(datafiles).__name__)
    return {data_file(datadir, key): original_layout(value) for key, value in datafiles.items()}


def legacy_check(ctx: HookContext) -> Optional[HookResult]:
    """A failed result when os-apply-config still holds ``hiera.datafiles``, or the check gave no answer.

    An empty ``$HEAT_HIERA_ELEMENT_CHECK_CMD`` or a command that cannot be started
    means there is no legacy data to worry about, as with the original.
    """
    argv = ctx.environ.get(CHECK_ENV, CHECK_DEFAULT).split()
    if not argv:
        return None
    try:
        result = ctx.run(argv)
    except OSError as exc:
        LOG.debug("Legacy hieradata check %s cannot run (%s): assuming no legacy hieradata", argv[0], exc.strerror)
        return None
    answer = result.stdout.decode("utf-8", "replace").strip()
    if answer == CHECK_EMPTY and not result.timed_out:
        return None
    failed = result_from_proc(result, ctx)
    if answer:
        why = ("legacy hieradata from os-apply-config has been detected (%s printed %r): move it to the "
               "hiera hook's config.datafiles before deploying with this hook" % (" ".join(argv), answer))
    else:
        why = ("the legacy hieradata check %s (%s) printed nothing (status %s), so it is unknown whether "
               "os-apply-config still holds hieradata" % (" ".join(argv), CHECK_ENV, failed.status_code))
    LOG.error("%s", why)
    failed.add_error(why + "\n")
    failed.status_code = 1
    return failed


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    config = deployment.get("config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise BadDeployment("config must be an object with hierarchy and/or datafiles, not %s"
                            % type(config).__name__)
    datadir = ctx.path(DATADIR_ENV, DATADIR_DEFAULT)
    files: Dict[str, str] = {}
    hierarchy = _hierarchy(config)
    if hierarchy is not None:
        files[ctx.path(CONFIG_ENV, CONFIG_DEFAULT)] = hiera_config(datadir, hierarchy)
    files.update(_datafiles(config, datadir))

    refused = legacy_check(ctx)
    if refused is not None:
        return refused
    path = datadir
    try:
        ensure_private_dir(datadir)
        for path, text in files.items():
            write_private(path, text)
    except OSError as exc:
        LOG.error("Cannot write %s: %s", path, exc.strerror)
        return HookResult.failure("hiera: cannot write %s: %s" % (path, exc.strerror or exc))
    return HookResult()
