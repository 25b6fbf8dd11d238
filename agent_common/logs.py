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

from agent_common.paths import get_path

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Iterable, List, Mapping, Optional, TextIO, Tuple

REDACTED = "***"

#: The variable that carries the log format to every command a tool starts (SPEC §12.17).
LOG_FORMAT_ENV = "OS_CONFIG_AGENTS_LOG_FORMAT"
LOG_FORMATS = ("text", "json")


def text_format(tool: str) -> str:
    """The one text line shape of every tool (SPEC §12.17): time, tool name, level, message."""
    return "[%(asctime)s] (" + tool.replace("%", "%%") + ") [%(levelname)s] %(message)s"


#: heat-config's dispatcher line (SPEC §6.12), also used by hooks.
HEAT_CONFIG_FORMAT = text_format("heat-config")

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

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:  # noqa: N802
        """With a date format too, the milliseconds follow as in the default (``2024-05-01 10:00:00,123``)."""
        stamp = super().formatTime(record, datefmt)
        return stamp + ",%03d" % record.msecs if datefmt else stamp


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
    """One JSON object per line: time, level, tool, logger, pid, message (redacted), and any ``fields``."""

    def __init__(self, tool: str = "") -> None:
        super().__init__()
        self.tool = tool

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + ".%03dZ" % record.msecs,
            "level": record.levelname,
            "tool": self.tool,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        for key, value in getattr(record, "fields", {}).items():
            doc[key] = value
        return redact(json.dumps(doc, sort_keys=False, default=str))


def log_format(choice: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> str:
    """The format to use: ``choice`` (the command's option) when given, else $OS_CONFIG_AGENTS_LOG_FORMAT, else text.

    A value of the variable that is not a format is ignored (text): a typo in an inherited
    environment must not stop the agent.
    """
    if choice:
        return choice
    value = (os.environ if environ is None else environ).get(LOG_FORMAT_ENV, "").strip().lower()
    return value if value in LOG_FORMATS else "text"


def setup_logging(
    tool: str,
    *,
    level: int = logging.INFO,
    log_format_choice: Optional[str] = None,
    datefmt: Optional[str] = None,
    stream: Optional[TextIO] = None,
    log_file: Optional[str] = None,
    use_stream: bool = True,
    journal: bool = False,
    syslog_facility: Optional[str] = None,
) -> logging.Logger:
    """Configure the root logger once for the command-line tool ``tool`` and return it.

    The format is :func:`log_format` of ``log_format_choice``; it is exported in
    $OS_CONFIG_AGENTS_LOG_FORMAT so that every command this one starts logs the same way
    (SPEC §12.17).  Logs go to ``stream`` (stderr by default, so they never mix with
    printed JSON) unless ``use_stream`` is False, and, when given, also to ``log_file``
    (created 0600: logs can hold hostnames and ids even with secrets removed), to the
    journal and to syslog, all redacted.  A journal or syslog socket that does not
    exist, or stops accepting, sends the lines to stderr instead, said once.
    Raises OSError when ``log_file`` cannot be opened, ValueError for an unknown facility.
    """
    chosen = log_format(log_format_choice)
    os.environ[LOG_FORMAT_ENV] = chosen
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter: logging.Formatter = (
        JsonFormatter(tool) if chosen == "json" else RedactingFormatter(text_format(tool), datefmt)
    )
    fallback = _StderrFallback(formatter, stream)
    handlers: List[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)] if use_stream else []
    if journal:
        handlers.append(_or_fallback(lambda: JournalHandler(tool), "journald", get_path("journal_socket"),
                                     fallback, use_stream))
    if syslog_facility is not None:
        from logging.handlers import SysLogHandler

        code = syslog_facility_code(syslog_facility)
        handlers.append(_or_fallback(lambda: SysLogHandler(address=get_path("syslog_socket"), facility=code),
                                     "syslog", get_path("syslog_socket"), fallback, use_stream))
    if log_file:
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        handlers.append(logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8")))
    for handler in handlers:
        if handler.formatter is None:
            handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    # Libraries are chatty at DEBUG and may log request URLs; they stay at WARNING.
    for noisy in ("urllib3", "keystoneauth", "requests", "websocket"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    fallback.announce()
    return root


class _StderrFallback(logging.StreamHandler):
    """Where the lines go when the journal or syslog cannot take them: stderr, with one line saying why.

    A handler that cannot deliver calls :meth:`take`; the note is written once, the
    first time, and never as logging's "--- Logging error ---" traceback.
    """

    def __init__(self, formatter: logging.Formatter, stream: Optional[TextIO]) -> None:
        super().__init__(stream or sys.stderr)
        self.setFormatter(formatter)
        self.notes: List[str] = []
        self.said = 0
        #: Whether this handler must write the lines itself (no stderr handler already does).
        self.needed = False

    def unavailable(self, what: str, address: str, why: str, needed: bool) -> None:
        self.notes.append("cannot log to %s (%s: %s); logging to stderr instead" % (what, address, why))
        self.needed = self.needed or needed

    def announce(self) -> None:
        """Say, once, why lines that should go to the journal or syslog go to stderr."""
        notes, self.said = self.notes[self.said:], len(self.notes)
        for note in notes:
            self.emit(logging.LogRecord("logging", logging.WARNING, __file__, 0, note, None, None))

    def take(self, record: logging.LogRecord) -> None:
        self.announce()
        if self.needed:
            self.emit(record)


def _or_fallback(make: Callable[[], logging.Handler], what: str, address: str, fallback: _StderrFallback,
                 stream_used: bool) -> logging.Handler:
    """``make()``, or ``fallback`` when ``address`` is not a socket or the handler cannot be made."""
    if not os.path.exists(address):
        fallback.unavailable(what, address, "no such socket", not stream_used)
        return fallback if not stream_used else logging.NullHandler()
    try:
        handler = make()
    except OSError as exc:
        fallback.unavailable(what, address, exc.strerror or str(exc), not stream_used)
        return fallback if not stream_used else logging.NullHandler()
    handler.handleError = lambda record: _failed(handler, what, address, fallback, stream_used, record)  # type: ignore[method-assign]
    return handler


def _failed(handler: logging.Handler, what: str, address: str, fallback: _StderrFallback, stream_used: bool,
            record: logging.LogRecord) -> None:
    """A journal or syslog send failed: stop using that handler and hand this and later records to stderr."""
    exc = sys.exc_info()[1]
    logging.getLogger().removeHandler(handler)
    fallback.unavailable(what, address, describe_error(exc) if exc else "send failed", not stream_used)
    if not stream_used:
        logging.getLogger().addHandler(fallback)
    fallback.take(record)


def syslog_facility_code(facility: str) -> int:
    """The number of a syslog facility spelled as oslo.log spells it (``LOG_LOCAL0``); ValueError if unknown."""
    from logging.handlers import SysLogHandler

    name = facility.upper()
    name = name[4:] if name.startswith("LOG_") else name
    code = SysLogHandler.facility_names.get(name.lower())
    if code is None:
        raise ValueError("unknown syslog facility %r" % facility)
    return code


class JournalHandler(logging.Handler):
    """Sends records to journald over its native datagram socket (no systemd Python binding needed).

    Each entry carries journald fields, so that ``journalctl -o json`` or a match such as
    ``journalctl SYSLOG_IDENTIFIER=os-collect-config PRIORITY=3`` works: MESSAGE (the
    redacted message, without the time and level journald adds itself), PRIORITY,
    SYSLOG_IDENTIFIER, LOGGER, CODE_FILE/CODE_LINE/CODE_FUNC, and the record's
    structured ``fields`` as upper-case names (``phase`` → ``PHASE``).
    """

    _PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def __init__(self, identifier: str, address: Optional[str] = None) -> None:
        super().__init__()
        import socket

        self.identifier = identifier
        self.address = address or get_path("journal_socket")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def fields(self, record: logging.LogRecord) -> List[Tuple[str, str]]:
        """The journald fields of ``record``, every value redacted."""
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        out = [
            ("MESSAGE", redact(message)),
            ("PRIORITY", str(self._PRIORITY.get(record.levelno, 6))),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("LOGGER", record.name),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName or ""),
        ]
        for key, value in getattr(record, "fields", {}).items():
            name = re.sub(r"[^A-Z0-9_]", "_", str(key).upper()).lstrip("_")
            if name:
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                out.append((name, redact(text)))
        return out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            datagram = b""
            for name, value in self.fields(record):
                data = value.encode("utf-8", "replace")
                datagram += name.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
            self.sock.sendto(datagram, self.address)
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
