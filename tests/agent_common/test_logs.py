"""Secrets never reach a log line, whatever shape they take; JSON lines are valid JSON."""
import io
import json
import logging

from agent_common.logs import redact, register_secret, setup_logging
from tests.support.sandbox import PLANTED_SECRETS


def test_registered_secret_is_redacted_everywhere_in_the_line():
    register_secret(PLANTED_SECRETS[0])
    text = redact("auth failed for pw %s (%r)" % (PLANTED_SECRETS[0], PLANTED_SECRETS[0]))
    assert PLANTED_SECRETS[0] not in text
    assert "auth failed" in text


def test_secret_shapes_are_redacted_without_registration():
    line = redact(
        'PUT http://127.0.0.1:8080/v1/AUTH_x/c/o?temp_url_sig=abcdef123&temp_url_expires=99 '
        'X-Auth-Token: gAAAAtoken123 {"password": "hunter22", "secret_access_key": "AKIAXX"}'
    )
    assert "abcdef123" not in line
    assert "gAAAAtoken123" not in line
    assert "hunter22" not in line
    assert "AKIAXX" not in line
    assert "http://127.0.0.1:8080/v1/AUTH_x/c/o?" in line


def test_text_and_json_lines_go_to_the_stream_redacted():
    register_secret(PLANTED_SECRETS[1])
    for json_lines in (False, True):
        stream = io.StringIO()
        setup_logging("t", stream=stream, log_format_choice="json" if json_lines else "text")
        try:
            raise ValueError("bad key %s" % PLANTED_SECRETS[1])
        except ValueError:
            logging.getLogger("t").exception("failed with %s", PLANTED_SECRETS[1])
        out = stream.getvalue()
        assert PLANTED_SECRETS[1] not in out
        assert "failed with" in out
        if json_lines:
            doc = json.loads(out.strip().splitlines()[0])
            assert doc["level"] == "ERROR" and doc["logger"] == "t"
    setup_logging("t", stream=io.StringIO())


def test_log_file_is_private(tmp_path):
    log_file = tmp_path / "agent.log"
    setup_logging("t", stream=io.StringIO(), log_file=str(log_file))
    logging.getLogger("t").info("hello")
    assert "hello" in log_file.read_text()
    assert (log_file.stat().st_mode & 0o777) == 0o600
    setup_logging("t", stream=io.StringIO())


def test_cheap_prechecks_never_change_what_is_redacted():
    """redact() skips the patterns on lines that cannot match; the result must equal applying them always."""
    from agent_common import logs

    lines = [
        "GET https://h/v1/signal/x?Signature=abc&AWSAccessKeyId=k done",
        "X-Auth-Token: gAAAA123", "x-subject-token=zzz", "PASSWORD = hunter22", "passwd:'p4ss'",
        '"secret_access_key": "AKIAsecret"', "Access_Token=t0k", "Authorization: Bearer xyz",
        "temp_url_sig=deadbeef&temp_url_expires=1", "plain line, nothing to hide", "url http://h/p no query",
        "Signature=ABC", "ftp://x?y=1 not http",
    ]
    for line in lines:
        expected = line
        for pattern in logs._PATTERNS:
            expected = pattern.sub(lambda m: m.group("keep") + logs.REDACTED, expected)
        assert logs.redact(line) == expected, line
