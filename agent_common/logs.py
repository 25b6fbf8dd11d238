"""Logging setup shared by every tool: text or JSON lines, with secrets redacted.

Redaction happens in a handler filter on the *formatted* message, so a secret
cannot slip through an exception text, a repr or a URL a library logs.  Two kinds
of secret are removed: values registered at run time (passwords, tokens, secret
keys, secret deployment inputs) and shapes that are always secret (signed-URL
query strings, auth headers, password fields in JSON).

On the hook start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Iterable, List, Optional, Sequence, TextIO

REDACTED = "***"

#: os-collect-config's oslo.log-like default line.
OCC_FORMAT = "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s [-] %(message)s"
OCC_DATEFMT = "%Y-%m-%d %H:%M:%S"
#: heat-config's dispatcher line (SPEC §6.12).
HEAT_CONFIG_FORMAT = "[%(asctime)s] (heat-config) [%(levelname)s] %(message)s"

_PATTERNS = [
    # Query strings of signed / temp URLs: keep the path, drop everything after '?'.
    re.compile(r"(?P<keep>https?://[^\s?\"']+\?)[^\s\"']+"),
    # Auth headers and token-ish key=value or "key": "value" pairs.
    re.compile(
        r"(?P<keep>(?i:x-auth-token|x-subject-token|authorization|password|passwd|secret_access_key|"
        r"secret-access-key|deploy_password|access_token|token|signature|temp_url_sig)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',}&]+"
    ),
]

#: Words one of which a line must hold (lower-cased) for the second pattern to possibly match:
#: checking them first keeps redaction cheap for the many lines that hold no secret.
_KEYWORD_TRIGGERS = ("token", "authorization", "passw", "secret", "signature", "temp_url_sig")

_lock = threading.Lock()
_secrets: List[str] = []


def register_secret(value: Optional[str]) -> None:
    """Make ``value`` disappear from every log line from now on (values shorter than 4 chars are too common to mask)."""
    if not value or not isinstance(value, str) or len(value) < 4:
        return
    with _lock:
        if value not in _secrets:
            _secrets.append(value)
            _secrets.sort(key=len, reverse=True)


def register_secrets(values: Iterable[Optional[str]]) -> None:
    for value in values:
        register_secret(value)


def redact(text: str) -> str:
    """``text`` with every registered secret and every secret-shaped fragment replaced."""
    with _lock:
        secrets = list(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if "://" in text and "?" in text:
        text = _PATTERNS[0].sub(_keep_redacted, text)
    lowered = text.lower()
    if any(word in lowered for word in _KEYWORD_TRIGGERS):
        text = _PATTERNS[1].sub(_keep_redacted, text)
    return text


def _keep_redacted(match: "re.Match[str]") -> str:
    return match.group("keep") + REDACTED


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then redacts the whole line, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingFilter(logging.Filter):
    """For handlers whose formatter we do not own (a user's logging config file): redact the message itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, message (redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + ".%03dZ" % record.msecs,
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        for key, value in getattr(record, "fields", {}).items():
            doc[key] = value
        return redact(json.dumps(doc, sort_keys=False))


def setup_logging(
    *,
    level: int = logging.INFO,
    fmt: str = OCC_FORMAT,
    datefmt: Optional[str] = OCC_DATEFMT,
    json_lines: bool = False,
    stream: Optional[TextIO] = None,
    log_file: Optional[str] = None,
    use_stream: bool = True,
    extra_handlers: Sequence[logging.Handler] = (),
) -> logging.Logger:
    """Configure the root logger once for a command-line tool and return it.

    Logs go to ``stream`` (stderr by default, so they never mix with printed JSON)
    unless ``use_stream`` is False, and, when given, also to ``log_file`` (created
    0600: logs can hold hostnames and ids even with secrets removed) and to
    ``extra_handlers`` (syslog, journal), all through the same redacting formatter.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter: logging.Formatter = JsonFormatter() if json_lines else RedactingFormatter(fmt, datefmt)
    handlers: List[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)] if use_stream else []
    handlers.extend(extra_handlers)
    if log_file:
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handlers.append(logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8")))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    # Libraries are chatty at DEBUG and may log request URLs; they stay at WARNING.
    for noisy in ("urllib3", "keystoneauth", "requests", "websocket"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return root


def syslog_handler(facility: str = "LOG_USER", address: str = "/dev/log") -> logging.Handler:
    """A handler to the local syslog socket; ``facility`` is spelled as oslo.log's (``LOG_LOCAL0``)."""
    from logging.handlers import SysLogHandler

    name = facility.upper()
    name = name[4:] if name.startswith("LOG_") else name
    code = SysLogHandler.facility_names.get(name.lower())
    if code is None:
        raise ValueError("unknown syslog facility %r" % facility)
    return SysLogHandler(address=address, facility=code)


class JournalHandler(logging.Handler):
    """Sends records to journald over its native datagram socket (no systemd Python binding needed)."""

    _PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def __init__(self, identifier: str, address: str = "/run/systemd/journal/socket") -> None:
        super().__init__()
        import socket

        self.identifier = identifier
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record).encode("utf-8", "replace")
            fields = [
                b"MESSAGE\n" + len(message).to_bytes(8, "little") + message,
                b"PRIORITY=%d" % self._PRIORITY.get(record.levelno, 6),
                b"SYSLOG_IDENTIFIER=" + self.identifier.encode("utf-8", "replace"),
                b"LOGGER=" + record.name.encode("utf-8", "replace"),
            ]
            self.sock.sendto(b"\n".join(fields) + b"\n", self.address)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def describe_error(exc: BaseException) -> str:
    """One line naming an exception for a warning: its kind and the first line of its text, no traceback.

    Library exceptions often carry whole URLs; the redacting formatter still removes any
    query string or registered secret from the line when it is logged.
    """
    lines = str(exc).strip().splitlines()
    return "%s: %s" % (type(exc).__name__, lines[0]) if lines else type(exc).__name__
