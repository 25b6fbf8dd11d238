"""Every default path the tools use, and the environment variable that overrides it (SPEC §5, §6.2).

One table, so that tests, docs and code agree, and so that a test can redirect
every path into a temporary directory.

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import collections
import os

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, Mapping, Optional


#: A default path and the environment variable that overrides it (``env`` None: an option does, if anything).
PathSetting = collections.namedtuple("PathSetting", ["default", "env"])


PATHS: Dict[str, PathSetting] = {
    # os-collect-config (options, not environment, redirect these: SPEC §5.1)
    "occ_cachedir": PathSetting("/var/lib/os-collect-config", None),
    "occ_backup_cachedir": PathSetting("/var/run/os-collect-config", None),
    "occ_heat_local_path": PathSetting("/var/lib/heat-cfntools/cfn-init-data", None),
    "occ_local_path": PathSetting("/var/lib/os-collect-config/local-data", None),
    "occ_cfn_metadata_hint": PathSetting("/var/lib/heat-cfntools/cfn-metadata-server", None),
    # where the config-drive probe looks for mounted devices (tests point it at a fixture file)
    "occ_proc_mounts": PathSetting("/proc/mounts", "OS_COLLECT_CONFIG_PROC_MOUNTS"),
    # os-refresh-config (SPEC §5.2)
    "orc_base_dir": PathSetting("/usr/libexec/os-refresh-config", "OS_REFRESH_CONFIG_BASE_DIR"),
    "orc_legacy_base_dir": PathSetting("/opt/stack/os-config-refresh", None),
    "orc_lockfile": PathSetting("/var/run/os-refresh-config.lock", None),
    # os-apply-config (SPEC §5.3)
    "oac_templates": PathSetting("/usr/libexec/os-apply-config/templates", "OS_CONFIG_APPLIER_TEMPLATES"),
    "oac_os_config_files": PathSetting("/var/lib/os-collect-config/os_config_files.json", "OS_CONFIG_FILES_PATH"),
    "oac_log_file": PathSetting("/var/log/os-apply-config.log", None),
    # the render cache (ours): used for output root /, and for other roots only when the variable is set
    "oac_state_dir": PathSetting("/var/lib/os-apply-config", "OS_APPLY_CONFIG_STATE_DIR"),
    # heat-config (SPEC §6.2)
    "heat_shell_config": PathSetting("/var/run/heat-config/heat-config", "HEAT_SHELL_CONFIG"),
    "heat_config_deployed": PathSetting("/var/lib/heat-config/deployed", "HEAT_CONFIG_DEPLOYED"),
    "heat_config_deployed_old": PathSetting("/var/run/heat-config/deployed", "HEAT_CONFIG_DEPLOYED_OLD"),
    "heat_config_notify": PathSetting("heat-config-notify", "HEAT_CONFIG_NOTIFY"),
    # the log sockets of --use-journal / --use-syslog (ours: tests point them at a socket they own, or none)
    "journal_socket": PathSetting("/run/systemd/journal/socket", "OS_CONFIG_AGENTS_JOURNAL_SOCKET"),
    "syslog_socket": PathSetting("/dev/log", "OS_CONFIG_AGENTS_SYSLOG_SOCKET"),
}

#: Hook directories searched after ``$HEAT_CONFIG_HOOKS`` (SPEC §6.2).
HOOK_DIRS = ("/usr/libexec/heat-config/hooks", "/var/lib/heat-config/hooks")


def get_path(name: str, environ: Optional[Mapping[str, str]] = None) -> str:
    """The path ``name`` resolves to: its environment override when set and non-empty, else the default."""
    setting = PATHS[name]
    env = os.environ if environ is None else environ
    if setting.env and env.get(setting.env):
        return env[setting.env]
    return setting.default


def user_state_dir(environ: Optional[Mapping[str, str]] = None) -> str:
    """Where a user who cannot write the system directories keeps our files (SPEC §12.18):
    ``$XDG_STATE_HOME/os-config-agents``, by default ``~/.local/state/os-config-agents``.

    The XDG base-directory rules ignore a relative ``XDG_STATE_HOME``.
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or ""
    if not os.path.isabs(base):
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "os-config-agents")


def writable(path: str) -> bool:
    """Whether this user can create ``path`` or, if it exists, write into it (its nearest existing
    ancestor decides for a path not there yet)."""
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    return os.access(probe, os.W_OK | os.X_OK)
