"""`.oac` control files: owner, group, mode and allow_empty of one rendered file (SPEC §4.8).

YAML 1.1, an empty file means defaults, and only the four documented keys exist.
`mode` takes YAML octal (`mode: 0640`), the octal strings people write ("0755",
"755", "0o755") and `mode: 755`; `mode: 0` means mode 000.  Owners and groups may
be numeric strings.

Most control files are a few `key: word` lines. Those are read here directly with
YAML 1.1's rules for such words, so that rendering does not pay for importing PyYAML;
anything else goes to PyYAML (tests check both readers agree).
"""
from __future__ import annotations

import grp
import logging
import pwd
import re
from typing import Any, Dict, NamedTuple, Optional

LOG = logging.getLogger("os-apply-config")

KEYS = ("allow_empty", "mode", "owner", "group")
_SIMPLE_LINE = re.compile(r"^(\w+)[ \t]*:[ \t]+([A-Za-z0-9_-]+)[ \t]*(?:#.*)?$")
_BLANK_OR_COMMENT = re.compile(r"^[ \t]*(?:#.*)?$")
_YAML11_BOOL = {
    **{w: True for w in ("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")},
    **{w: False for w in ("no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF")},
}
_YAML11_NULL = ("null", "Null", "NULL")
_OCTAL_TEXT = re.compile(r"^(?:0o|0)?([0-7]{1,4})$")


class ControlError(Exception):
    """A control file that cannot be applied; the message is the original's where it had one."""


class Control(NamedTuple):
    allow_empty: bool = True
    mode: Optional[int] = None
    owner: Optional[int] = None
    group: Optional[int] = None


class _Scalar(NamedTuple):
    """A YAML scalar as written: its value, and for integers the digits as typed."""

    value: Any
    int_text: Optional[str] = None


def _simple_scalar(word: str) -> Optional[_Scalar]:
    """YAML 1.1 meaning of a plain word, or None when only PyYAML should decide."""
    if word in _YAML11_BOOL:
        return _Scalar(_YAML11_BOOL[word])
    if word[0].isdigit() or word[0] == "-":
        if re.fullmatch(r"0[0-7]+", word):
            return _Scalar(int(word, 8), word)
        if re.fullmatch(r"0|[1-9][0-9]*", word):
            return _Scalar(int(word), word)
        return None
    if word in _YAML11_NULL:
        return None
    return _Scalar(word)


def _parse_simple(text: str) -> Optional[Dict[str, _Scalar]]:
    result: Dict[str, _Scalar] = {}
    for line in text.splitlines():
        if _BLANK_OR_COMMENT.match(line):
            continue
        m = _SIMPLE_LINE.match(line)
        scalar = _simple_scalar(m.group(2)) if m else None
        if m is None or scalar is None:
            return None
        result[m.group(1)] = scalar
    return result


def _parse_yaml(text: str) -> Any:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = " at line %d" % (where.line + 1) if where is not None else ""
        raise ControlError("cannot parse control file%s: %s" % (line, getattr(exc, "problem", None) or exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        return data
    int_texts = {}
    for key_node, value_node in getattr(node, "value", []):
        if isinstance(value_node, yaml.ScalarNode) and value_node.tag.endswith(":int"):
            int_texts[key_node.value] = value_node.value
    return {k: _Scalar(v, int_texts.get(k)) for k, v in data.items()}


def _mode(scalar: _Scalar) -> int:
    value, text = scalar.value, scalar.int_text
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ControlError("mode '%s' is not numeric" % value)
    if isinstance(value, str):
        m = _OCTAL_TEXT.match(value.strip())
        if not m:
            raise ControlError("mode '%s' is not an octal number" % value)
        mode = int(m.group(1), 8)
    elif text is not None and re.fullmatch(r"[1-7][0-7]*", text) and value > 0o777:
        mode = int(text, 8)  # `mode: 755`: the digits of an octal mode, written without the 0
    else:
        mode = value
        if text is not None and re.fullmatch(r"[1-7][0-7]{2}", text):
            LOG.warning("mode %s is read as decimal (%#o), as the original did; write 0%s for octal",
                        text, mode, text)
    if not 0 <= mode <= 0o777:
        raise ControlError("mode '%#o' out of range" % mode)
    return mode


def _account(kind: str, value: Any) -> int:
    by_id, by_name, database = (
        (pwd.getpwuid, pwd.getpwnam, "passwd") if kind == "owner" else (grp.getgrgid, grp.getgrnam, "group")
    )
    try:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ControlError("%s '%s' must be a string or int" % (kind, value))
        if isinstance(value, int):
            return by_id(value)[2]
        if value.isdigit():
            return by_id(int(value))[2]
        return by_name(value)[2]
    except KeyError:
        raise ControlError("%s '%s' not found in %s database" % (kind, value, database)) from None


def parse_control(text: str) -> Control:
    """The Control a `.oac` text asks for; ControlError with the original's wording otherwise."""
    data = _parse_simple(text)
    if data is None:
        data = _parse_yaml(text)
    if not isinstance(data, dict):
        raise ControlError("header is not a dict")
    fields: Dict[str, Any] = {}
    for key, scalar in data.items():
        if key not in KEYS:
            raise ControlError("unrecognised file control key '%s'" % key)
        if key == "allow_empty":
            if not isinstance(scalar.value, bool):
                raise ControlError("allow_empty requires Boolean, got: '%s'" % scalar.value)
            fields[key] = scalar.value
        elif key == "mode":
            fields[key] = _mode(scalar)
        else:
            fields[key] = _account(key, scalar.value)
    return Control(**fields)
