"""ec2: the EC2 metadata tree over HTTP, or the config drive's copy of it (SPEC §2.8).

Each poll asks for the top-level listing (a conditional GET: a 304 reuses the body
remembered in the agent state).  The whole tree, every node with a conditional GET, is
walked when that listing changed and otherwise once every ``full-refresh-interval``
seconds (default 300; 0 walks it every poll, as before): an idle poll is one request
instead of one per node (22 on the bench's tree), and a changed leaf is seen within
that interval (issue 16; SPEC §12.13.4 asked for the walk every poll).  While the
service cannot be reached, the last good ``ec2.json`` stays in force.  The config drive (label ``config-2``) is
probed once per process: blkid and mount come from ``PATH``, the mount table from
``$OS_COLLECT_CONFIG_PROC_MOUNTS`` (default ``/proc/mounts``).

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time

from agent_common import proc
from agent_common.http import HttpError, Validators
from agent_common.paths import get_path
from os_collect_config.collectors.base import Collected, Collector, Option, Unavailable

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, List, Optional

LOG = logging.getLogger("os_collect_config.ec2")  # the original's logger name (SPEC §2.19.3)

EC2_METADATA_URL = "http://169.254.169.254/latest/meta-data"
CONFIG_DRIVE_LABEL = "config-2"
CONFIG_DRIVE_TYPES = ("vfat", "iso9660")
CONFIG_DRIVE_FILE = os.path.join("ec2", "latest", "meta-data.json")
#: ``[ec2] full-refresh-interval`` default: the longest a changed leaf under an unchanged listing goes unseen.
DEFAULT_FULL_REFRESH_S = 300.0


class Ec2Collector(Collector):
    name = "ec2"
    options = (
        Option("metadata-url", type="url", default=EC2_METADATA_URL, help="URL to query for EC2 Metadata."),
        Option("timeout", type="float", default=10.0,
               help="Seconds to wait for the connection and read request timeout."),
        Option("full-refresh-interval", type="float", default=DEFAULT_FULL_REFRESH_S,
               help="Seconds between walks of the whole metadata tree; in between, a poll fetches only the "
                    "top-level listing and walks the tree when that changed. 0 walks it every poll (new)."),
    )

    def __init__(self, conf: Dict[str, Any], ctx: Any) -> None:
        super().__init__(conf, ctx)
        self._device: Optional[str] = None
        self._probed = False

    def collect(self) -> List[Collected]:
        drive = self._config_drive()
        if drive:
            return [(self.name, drive)]
        state = None if self.ctx.print_mode else self.ctx.state(self.name)
        walked_at = state.load("walked_at") if state else None
        every = self.conf.get("full_refresh_interval")
        every = DEFAULT_FULL_REFRESH_S if every is None else float(every)
        due = not isinstance(walked_at, (int, float)) or not 0 <= time.time() - walked_at < every
        walker = TreeWalker(self, state.load("nodes") if state else None, trust=not due)
        try:
            tree = walker.fetch(self.conf["metadata_url"].rstrip("/") + "/")
        except HttpError as exc:
            raise Unavailable(str(exc), exc.retry_after) from exc
        if state is not None:
            state.save("nodes", walker.seen)
            if not walker.trust:  # every node was asked for: the next walk is due ``every`` seconds from now
                state.save("walked_at", time.time())
        return [(self.name, tree)]

    def _config_drive(self) -> Any:
        if not self._probed:
            self._probed = True
            self._device = find_config_drive()
        if not self._device:
            return {}
        return read_config_drive(self._device)


class TreeWalker:
    """Walks one metadata tree; ``seen`` maps each URL to its validators and body for the next poll.

    With ``trust``, only the first URL (the top-level listing) is requested: every node
    below it is the body an earlier poll saved, unless the listing changed, which turns
    ``trust`` off and makes this a full walk.  A node never seen before is always fetched.
    """

    def __init__(self, collector: Collector, previous: Any, trust: bool = False) -> None:
        self.client = collector.http(collector.conf.get("timeout") or 10.0)
        self.previous: Dict[str, Any] = previous if isinstance(previous, dict) else {}
        self.seen: Dict[str, Any] = {}
        self.trust = trust

    def _get(self, url: str) -> str:
        before: Any = self.previous.get(url)  # what an earlier poll saved: checked before use
        usable = isinstance(before, dict) and isinstance(before.get("body"), str)
        if usable and self.trust and self.seen:  # below the listing, which was unchanged
            self.seen[url] = before
            return before["body"]
        result = self.client.conditional_get(url, Validators.from_dict(before) if usable else None)
        if result.not_modified and usable:
            body = before["body"]
            validators = Validators.from_dict(before)
        else:
            body = (result.body or b"").decode("utf-8", "replace")
            validators = result.validators
            if not self.seen and not (usable and before["body"] == body):
                self.trust = False  # the listing changed (or is new): walk everything this time
        # Kept even without validators: a poll that trusts the listing reuses the body.
        self.seen[url] = dict(validators.to_dict(), body=body)
        return body

    def fetch(self, url: str) -> Any:
        """A directory URL (ending in ``/``) becomes an object, anything else its body as a string."""
        body = self._get(url)
        if not url.endswith("/"):
            return body
        tree: Dict[str, Any] = {}
        for entry in body.split("\n"):
            entry = entry.strip()
            if not entry:
                continue
            if "=" in entry:
                entry = entry[:entry.index("=")] + "/"
            tree[entry.rstrip("/") if entry.endswith("/") else entry] = self.fetch(url + entry)
        return tree


# -- config drive ---------------------------------------------------------------------------

def parse_blkid_export(text: str) -> List[Dict[str, str]]:
    """Devices from ``blkid -o export``: blocks of KEY=value lines separated by blank lines."""
    devices = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value.replace("\\ ", " ")
        if fields:
            devices.append(fields)
    return devices


def find_config_drive() -> Optional[str]:
    """The device name of the first config drive blkid reports, or None."""
    try:
        res = proc.run(["blkid", "-o", "export"], timeout=30)
    except OSError as exc:
        LOG.debug("Cannot run blkid: %s", exc)
        return None
    if res.returncode != 0:
        LOG.debug("blkid exited with status %d", res.returncode)
        return None
    for dev in parse_blkid_export(res.stdout.decode("utf-8", "replace")):
        if dev.get("LABEL") == CONFIG_DRIVE_LABEL and dev.get("TYPE") in CONFIG_DRIVE_TYPES and dev.get("DEVNAME"):
            LOG.debug("Config drive found: %s", dev["DEVNAME"])
            return dev["DEVNAME"]
    return None


def existing_mount(devname: str) -> Optional[str]:
    try:
        with open(get_path("occ_proc_mounts"), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == devname:
            return fields[1].replace("\\040", " ")
    return None


def read_config_drive(devname: str) -> Any:
    """``ec2/latest/meta-data.json`` of the drive, mounting it read-only if nobody has; ``{}`` on any failure."""
    mountpoint = existing_mount(devname)
    mounted_here = None
    try:
        if mountpoint is None:
            target = tempfile.mkdtemp(prefix="config-2-")
            res = proc.run(["mount", devname, target, "-o", "ro"], timeout=60)
            if res.returncode != 0:
                LOG.error("Problem running \"mount %s %s -o ro\": %s", devname, target,
                          res.stderr.decode("utf-8", "replace").strip())
                os.rmdir(target)
                return {}
            mountpoint = mounted_here = target
        path = os.path.join(mountpoint, CONFIG_DRIVE_FILE)
        if not os.path.isfile(path):
            LOG.warning("No expected file at path: %s", path)
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        LOG.error("Problem getting metadata: %s", exc)
        return {}
    finally:
        if mounted_here:
            _unmount(mounted_here)


def _unmount(path: str) -> None:
    try:
        res = proc.run(["umount", "-l", path], timeout=60)
    except OSError as exc:
        LOG.error("Problem running \"umount -l %s\": %s", path, exc)
        return
    if res.returncode == 0:
        try:
            os.rmdir(path)
        except OSError as exc:
            LOG.warning("Cannot remove %s: %s", path, exc.strerror)
    else:
        LOG.error("Problem running \"umount -l %s\": exit status %d", path, res.returncode)
