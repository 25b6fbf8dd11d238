"""The --type checks of `os-apply-config --key` (SPEC §4.10).

The patterns are the original's, except that `default` also accepts dots and
dashes, so host names, IP addresses and versions need no `raw`.  The check applies
to the text that is printed (JSON for objects, lists and booleans), not to Python's
repr of the value.
"""
from __future__ import annotations

import re

TYPES = {
    "int": r"^[0-9]+$",
    "default": r"^[A-Za-z0-9_.-]*$",
    "netaddress": r"^[A-Za-z0-9/.:-]*$",
    "netdevice": r"^[A-Za-z0-9/.:-]*$",
    "dsn": r"^[a-zA-Z0-9]+://([a-zA-Z0-9+_-]+(:[^@]+)?)?(@?[a-zA-Z0-9/_.-]+)?(/[a-zA-Z0-9_-]+)?(\?[a-zA-Z0-9=_-]+)?$",
    # `.-_` is a character range in the original; kept, as values that passed must still pass.
    "swiftdevices": r"^(r\d+z\d+-[A-Za-z0-9.-_]+:%PORT%/[^,]+,?)+$",
    "username": r"^[A-Za-z0-9_-]+$",
    "raw": r"",
}


class ValueTypeError(Exception):
    """The value does not have the requested type; the message is the one line to print."""


def ensure_type(text: str, type_name: str = "default") -> str:
    """Return ``text`` if it matches ``type_name`` (match at the start; `$` allows one final newline)."""
    if type_name not in TYPES:
        raise ValueTypeError("unknown type %r; valid types: %s" % (type_name, ", ".join(TYPES)))
    if not re.match(TYPES[type_name], text):
        raise ValueTypeError("cannot interpret value '%s' as type %s" % (text, type_name))
    return text
