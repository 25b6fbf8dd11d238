"""The hiera data directory, written by the hiera hook and by the puppet hook's ``enable_hiera``."""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

from agent_common.atomic import atomic_write

LOG = logging.getLogger("heat-config")

DATADIR_ENV, DATADIR_DEFAULT = "HEAT_PUPPET_HIERA_DATADIR", "/etc/puppet/hieradata"


def file_name_problem(name: Any) -> Optional[str]:
    """Why ``name`` cannot be one plain file name inside a directory, or None when it can."""
    if not isinstance(name, str) or not name:
        return "is empty or not a string"
    if any(bad in name for bad in ("/", "\\", "\0", "..")):
        return "would leave the directory (it must be a plain file name, without '/', '\\' or '..')"
    return None


def write_private(path: str, text: str) -> None:
    """Replace ``path`` atomically, mode 0600 (hiera data and config may hold input values).

    A symlink is written through, as the original's ``open()`` did (images link /etc/hiera.yaml).
    """
    atomic_write(os.path.realpath(path), text, 0o600)
    LOG.info("Wrote %s", path)
