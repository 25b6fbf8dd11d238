"""The ``cfn-init`` hook (SPEC §8.12): hand the config to cfn-init as its last metadata, then run it.

``config`` (an object, or a JSON string of one) is written, 0600, as
``{"AWS::CloudFormation::Init": config}`` to
``$HEAT_CFN_INIT_LAST_METADATA_DIR/last_metadata``, where heat-cfntools' cfn-init
reads its metadata, and ``$HEAT_CFN_INIT_CMD`` runs with no arguments; deploy_*
come from it.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict

from agent_common.atomic import atomic_write
from agent_common.deployment_contract import BadDeployment, Deployment
from hooks.toolkit.context import HookContext
from hooks.toolkit.result import HookResult, log_outcome, result_from_proc

LOG = logging.getLogger("heat-config")

METADATA_DIR_ENV, METADATA_DIR_DEFAULT = "HEAT_CFN_INIT_LAST_METADATA_DIR", "/var/cache/heat-cfntools"
CMD_ENV, CMD_DEFAULT = "HEAT_CFN_INIT_CMD", "cfn-init"
METADATA_FILE = "last_metadata"
INIT_KEY = "AWS::CloudFormation::Init"


def init_config(deployment: Deployment) -> Dict[str, Any]:
    """The AWS::CloudFormation::Init object: ``config`` itself, or parsed from its JSON text (absent: ``{}``)."""
    config = deployment.get("config")
    if isinstance(config, str):
        if not config.strip():
            return {}
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise BadDeployment("config is not valid JSON: %s" % exc) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise BadDeployment("config must be an AWS::CloudFormation::Init object, not %s" % type(config).__name__)
    return config


def run(deployment: Deployment, ctx: HookContext) -> HookResult:
    metadata = {INIT_KEY: init_config(deployment)}
    directory = ctx.private_dir(METADATA_DIR_ENV, METADATA_DIR_DEFAULT)
    path = os.path.join(directory, METADATA_FILE)
    atomic_write(path, json.dumps(metadata), 0o600)
    LOG.info("Wrote %s", path)

    cmd = ctx.environ.get(CMD_ENV) or CMD_DEFAULT
    proc_result = ctx.run_tool([cmd], "install heat-cfntools, or set %s" % CMD_ENV)
    log_outcome(cmd, proc_result.returncode, bool(proc_result.returncode or proc_result.timed_out))
    return result_from_proc(proc_result, ctx)
