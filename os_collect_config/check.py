"""``os-collect-config --check-config``: the configuration a run would use, shown, secrets masked (SPEC §12.16).

The settings are printed on stdout as an INI file in the original's syntax (so the
output can be kept as a config file once its masked values are filled in); the
warnings and the error, if any, on stderr.  No collector runs and nothing is
written.
"""
from __future__ import annotations

from agent_common.logs import REDACTED, redact
from os_collect_config import collectors as registry
from os_collect_config.config import (
    DEFAULT_GROUP, GLOBAL_OPTIONS, LOG_OPTIONS, PROG, ConfigError, check, secret_warnings,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, List, TextIO

    from os_collect_config.config import OptionTable, Settings


def _shown(value: Any, secret: bool) -> List[str]:
    """The value(s) of one option as INI text: secrets masked, secret-shaped fragments (signed URLs) redacted."""
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bool):
            text = "true" if item else "false"
        elif isinstance(item, float) and item.is_integer():
            text = "%d" % item
        else:
            text = str(item)
        out.append(REDACTED if secret and text else redact(text))
    return out


def _lines(key: str, value: Any, secret: bool) -> List[str]:
    if value is None or value == []:
        return ["# %s is not set" % key]
    return ["%s = %s" % (key, text) for text in _shown(value, secret)]


def render(settings: Settings, table: OptionTable) -> str:
    """The effective settings as INI: [DEFAULT] (global and logging options), then each collector group in use."""
    out = ["# the configuration os-collect-config would run with; files read: %s"
           % (", ".join(settings.config_files) or "none"), "[%s]" % DEFAULT_GROUP]
    for opt in GLOBAL_OPTIONS:
        out += _lines(opt.key, getattr(settings, opt.key), opt.secret)
    for opt in LOG_OPTIONS:
        out += _lines(opt.key, settings.logging[opt.key], opt.secret)
    for group in [g for g in settings.collectors if g in settings.groups] + ["keystone"]:
        values = settings.groups.get(group, {})
        if not values:
            continue
        out += ["", "[%s]" % group]
        for key, value in values.items():
            out += _lines(key, value, table[group][key].secret)
    return "\n".join(out) + "\n"


def check_config(settings: Settings, table: OptionTable, stdout: TextIO, stderr: TextIO) -> int:
    """Print the settings and every warning; 1 when the configuration has an error (also printed), else 0."""
    for warning in settings.warnings + secret_warnings(settings):
        stderr.write("%s: warning: %s\n" % (PROG, warning))
    try:
        check(settings, registry.REGISTRY)
    except ConfigError as exc:
        stderr.write("%s: error: %s\n" % (PROG, redact(str(exc))))
        return 1
    stdout.write(render(settings, table))
    return 0
