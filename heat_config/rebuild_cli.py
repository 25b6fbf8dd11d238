"""``heat-config-rebuild-deployed``: mark every known deployment as deployed after state loss (SPEC §6.8).

Reads ``deployments`` through ``os-apply-config --key deployments --type raw``,
picks the deployed dir (the current one if it exists, else the legacy one), and
creates an empty ``<id>.json`` for every deployment except groups
``os-apply-config`` and ``Heat::Ungrouped``.  Ids are checked before they become
file names.

Run bare it does what the original did, with no prompt (upgrade scripts run it over
ssh), and says what it did: one line per deployment marked and a closing line naming
the directory and how to undo one.  ``--dry-run`` lists the same deployments and
changes nothing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import List, Optional

from agent_common.cli import new_parser
from agent_common.deployment_contract import id_problem
from agent_common.documents import loads_json
from agent_common.paths import get_path
from heat_config.deployment import OAC_GROUPS, group_of


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(
        "heat-config-rebuild-deployed",
        "Mark every deployment in the current metadata as already deployed, so that heat-config "
        "does not run it again: for use after the deployed directory was lost (a rebuilt or restored "
        "server). Reads the deployments through os-apply-config (OS_CONFIG_FILES) and creates an empty "
        "<deployed dir>/<id>.json for each, except groups os-apply-config and Heat::Ungrouped. Deployments "
        "marked this way are not run and not signalled.",
        ["heat-config-rebuild-deployed --dry-run    # list what would be marked",
         "heat-config-rebuild-deployed              # mark them"],
    )
    p.add_argument("--dry-run", action="store_true", help="list the deployments that would be marked; write nothing")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    print("Reading deployments via os-apply-config")
    try:
        proc = subprocess.run(["os-apply-config", "--key", "deployments", "--type", "raw"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as exc:
        print("heat-config-rebuild-deployed: cannot run os-apply-config: %s" % exc.strerror, file=sys.stderr)
        return 1
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
        print("heat-config-rebuild-deployed: os-apply-config exited %d" % proc.returncode, file=sys.stderr)
        return 1
    try:
        deployments = loads_json(proc.stdout.decode("utf-8", "replace") or "null", "os-apply-config's deployments")
    except ValueError as exc:
        print("heat-config-rebuild-deployed: %s" % exc, file=sys.stderr)
        return 1
    if not isinstance(deployments, list):
        print("heat-config-rebuild-deployed: deployments are not a JSON list", file=sys.stderr)
        return 1
    print("Found %d deployments." % len(deployments))

    deployed_dir = get_path("heat_config_deployed")
    if not os.path.exists(deployed_dir):
        deployed_dir = get_path("heat_config_deployed_old")
    if not opts.dry_run:
        os.makedirs(deployed_dir, 0o700, exist_ok=True)
    marked = 0

    for item in deployments:
        if not isinstance(item, dict):
            continue
        dep_id, group = item.get("id"), group_of(item)
        if group in OAC_GROUPS:
            print("Skipping creating deployed file for deployment %s as it is group:%s" % (dep_id, group))
            continue
        problem = id_problem(dep_id)
        if problem:
            print("Skipping deployment %.60r: id %s" % (dep_id, problem), file=sys.stderr)
            continue
        path = os.path.join(deployed_dir, "%s.json" % dep_id)
        marked += 1
        if opts.dry_run:
            print("Would create %s (deployment %s, group %s)" % (path, dep_id, group))
            continue
        print("Creating %s so that deployment will not be re-run" % path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.utime(path)
    if opts.dry_run:
        print("Dry run: %d deployment(s) would be marked as deployed in %s; nothing was changed."
              % (marked, deployed_dir))
    else:
        print("Marked %d deployment(s) as deployed in %s: heat-config will not run them again. "
              "To run one again, remove its <id>.json there." % (marked, deployed_dir))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
