"""``heat-config-hook GROUP``: run one hook with the stdin-JSON → stdout-JSON protocol (SPEC §6.13).

What the hook shims in a hook directory call, and a way to try a hook by hand
(``heat-config-hook script < deployment.json``).  A built-in hook of that group
runs in this process; otherwise the group's executable is looked up in the hook
directories, as the dispatcher would.

On the hook start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import os
import sys

import hooks
from hooks.toolkit.context import context_for
from hooks.toolkit.serve import read_deployment, refused, serve, setup_hook_logging

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs every hook run ~4 ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Optional, Tuple

LOG = logging.getLogger("heat-config")


def parse_args(argv: List[str]) -> Tuple[str, bool]:
    """The group and whether ``--refresh`` was given.

    The call shims and users make, a lone group name, is read without argparse, which
    (with the gettext it imports) costs every hook run ~3 ms; anything else is argparse's.
    """
    if len(argv) == 1 and not argv[0].startswith("-"):
        return argv[0], False
    from agent_common.cli import new_parser
    from agent_common.logs import LOG_FORMAT_ENV

    parser = new_parser(
        "heat-config-hook",
        "Run the hook of GROUP on the deployment JSON read from stdin; print its result JSON.",
        ["heat-config-hook script < deployment.json",
         "HEAT_SHELL_CONFIG=/run/heat-config/heat-config heat-config-hook docker-compose --refresh"],
    )
    parser.add_argument("group", help="hook group, e.g. script")
    parser.add_argument("--refresh", action="store_true",
                        help="run the group's os-refresh-config companion (configure.d/50-heat-config-GROUP) "
                             "instead of a hook; it reads $HEAT_SHELL_CONFIG, not stdin")
    args = parser.parse_args(argv)
    if args.log_format:  # read by the hook's logging setup, and passed on to what the hook runs
        os.environ[LOG_FORMAT_ENV] = args.log_format
    return args.group, args.refresh


def main(argv: Optional[List[str]] = None) -> int:
    group, refresh = parse_args(sys.argv[1:] if argv is None else argv)
    builtin = hooks.module(group)
    if refresh:
        setup_hook_logging()
        if builtin is None or not hasattr(builtin, "refresh"):
            LOG.error("Group %s has no os-refresh-config companion", group)
            return 1
        return builtin.refresh(os.environ)
    if builtin is not None:
        return serve(builtin.run)

    # Looking up an executable hook needs the dispatcher's hook runner (and through it the signal sizing);
    # a built-in hook, the common case timed by bench/hook_start.py, does not pay for importing it.
    from heat_config import hook_runner

    setup_hook_logging()
    ref = hook_runner.find(group, os.environ)
    if ref is None:
        LOG.error("%s", hook_runner.no_hook_message(group, os.environ))
        return 1
    deployment = read_deployment(sys.stdin)
    if deployment is None:
        return 1
    result = refused(deployment)
    data = result.signal_data() if result else hook_runner.execute(ref, deployment, context_for(deployment))
    json.dump(data, sys.stdout)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
