"""The syslog and journald handlers behind os-collect-config's --use-syslog / --use-journal, on real sockets."""
import logging
import socket

from agent_common.logs import register_secret, setup_logging
from tests.support.sandbox import PLANTED_SECRETS


def _listen(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    return sock


def journal_fields(datagram: bytes):
    """The fields of one journald native-protocol datagram: NAME=value lines or NAME\\n<size><bytes>\\n."""
    fields, rest = {}, datagram
    while rest:
        head, rest = rest.split(b"\n", 1)
        if b"=" in head:
            name, value = head.split(b"=", 1)
        else:
            size = int.from_bytes(rest[:8], "little")
            name, value, rest = head, rest[8:8 + size], rest[8 + size + 1:]
        fields[name.decode()] = value.decode()
    return fields


def test_syslog_handler_sends_facility_and_redacted_message(tmp_path, monkeypatch):
    sock = _listen(tmp_path / "log")
    monkeypatch.setenv("OS_CONFIG_AGENTS_SYSLOG_SOCKET", str(tmp_path / "log"))
    register_secret(PLANTED_SECRETS[0])
    setup_logging("os-collect-config", use_stream=False, syslog_facility="LOG_LOCAL0")
    logging.getLogger("os-collect-config").info("hello %s", PLANTED_SECRETS[0])
    data = sock.recv(65536).decode()
    assert data.startswith("<134>") and "hello ***" in data and PLANTED_SECRETS[0] not in data


def test_journal_handler_speaks_the_native_protocol(tmp_path, monkeypatch):
    sock = _listen(tmp_path / "journal")
    monkeypatch.setenv("OS_CONFIG_AGENTS_JOURNAL_SOCKET", str(tmp_path / "journal"))
    setup_logging("os-collect-config", use_stream=False, journal=True)
    logging.getLogger("x").warning("two\nlines")
    fields = journal_fields(sock.recv(65536))
    assert fields["MESSAGE"] == "two\nlines"  # journald adds the time and priority itself
    assert fields["PRIORITY"] == "4" and fields["SYSLOG_IDENTIFIER"] == "os-collect-config" and fields["LOGGER"] == "x"
    assert fields["CODE_FILE"] == __file__ and fields["CODE_FUNC"] == "test_journal_handler_speaks_the_native_protocol"


def test_journal_entries_carry_structured_fields_redacted(tmp_path, monkeypatch):
    """SPEC §12.17: where journald is used, a record's structured fields become journald fields."""
    sock = _listen(tmp_path / "journal")
    monkeypatch.setenv("OS_CONFIG_AGENTS_JOURNAL_SOCKET", str(tmp_path / "journal"))
    register_secret(PLANTED_SECRETS[2])
    setup_logging("os-refresh-config", use_stream=False, journal=True, log_format_choice="json")
    logging.getLogger("os-refresh-config").error(
        "failed with %s", PLANTED_SECRETS[2],
        extra={"fields": {"phase": "configure", "status": 3, "output-tail": "pw %s" % PLANTED_SECRETS[2]}})
    fields = journal_fields(sock.recv(65536))
    assert fields["MESSAGE"] == "failed with ***" and fields["PRIORITY"] == "3"
    assert fields["PHASE"] == "configure" and fields["STATUS"] == "3" and fields["OUTPUT_TAIL"] == "pw ***"
    assert fields["SYSLOG_IDENTIFIER"] == "os-refresh-config"


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
