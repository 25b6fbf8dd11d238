"""The syslog and journald handlers behind os-collect-config's --use-syslog / --use-journal, on real sockets."""
import logging
import socket

from agent_common.logs import JournalHandler, register_secret, setup_logging, syslog_handler
from tests.support.sandbox import PLANTED_SECRETS


def _listen(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    return sock


def test_syslog_handler_sends_facility_and_redacted_message(tmp_path):
    sock = _listen(tmp_path / "log")
    register_secret(PLANTED_SECRETS[0])
    setup_logging(use_stream=False, extra_handlers=[syslog_handler("LOG_LOCAL0", str(tmp_path / "log"))])
    logging.getLogger("os-collect-config").info("hello %s", PLANTED_SECRETS[0])
    data = sock.recv(65536).decode()
    assert data.startswith("<134>") and "hello ***" in data and PLANTED_SECRETS[0] not in data


def test_journal_handler_speaks_the_native_protocol(tmp_path):
    sock = _listen(tmp_path / "journal")
    setup_logging(use_stream=False, extra_handlers=[JournalHandler("os-collect-config", str(tmp_path / "journal"))])
    logging.getLogger("x").warning("two\nlines")
    data = sock.recv(65536)
    head, rest = data.split(b"\n", 1)
    assert head == b"MESSAGE"
    size = int.from_bytes(rest[:8], "little")
    assert rest[8:8 + size].endswith(b"two\nlines")
    fields = rest[8 + size + 1:].decode().splitlines()
    assert "PRIORITY=4" in fields and "SYSLOG_IDENTIFIER=os-collect-config" in fields and "LOGGER=x" in fields


def test_redacting_filter_cleans_messages_for_foreign_formatters():
    import io

    from agent_common.logs import RedactingFilter

    register_secret(PLANTED_SECRETS[3])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("filter-test")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError("token %s" % PLANTED_SECRETS[3])
        except RuntimeError:
            log.exception("auth with %s failed", PLANTED_SECRETS[3])
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "auth with *** failed" in text and "token ***" in text and PLANTED_SECRETS[3] not in text
