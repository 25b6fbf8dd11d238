"""One log stream (SPEC §12.17): one text shape, --log-format inherited by every child, journald/syslog fallback.

Every test runs the real console scripts in a sandbox.
"""
from __future__ import annotations

import json
import re
import socket
import stat

import pytest

from tests.support.deployments import deployment
from tests.support.dispatcher import write_deployments

#: time, tool name, level, message: the one text shape of every tool.
TEXT_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] \((?P<tool>[a-z-]+)\) "
                       r"\[(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL)\] ")


def _script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _chain(sandbox):
    """os-refresh-config's configure.d runs os-apply-config on one template, then heat-config on one deployment."""
    configure = sandbox.path("orc", "configure.d")
    configure.mkdir()
    _script(configure / "20-os-apply-config",
            "#!/bin/sh\nexec os-apply-config -o %s\n" % sandbox.path("out"))
    _script(configure / "55-heat-config", "#!/bin/sh\nexec heat-config\n")
    sandbox.path("templates", "etc").mkdir(parents=True)
    sandbox.path("templates", "etc", "motd").write_text("hello {{name}}\n")
    write_deployments(sandbox, [deployment(0)])  # the script hook echoes hello, NO_SIGNAL
    local = sandbox.path("lib", "local-data")
    local.mkdir(mode=0o755)
    (local / "greeting.json").write_text(json.dumps({"name": "world"}))
    return ["--cachedir", str(sandbox.path("cache")), "--backup-cachedir", str(sandbox.path("backup", "occ")),
            "--local-path", str(local), "--one-time", "--command",
            "os-refresh-config --lockfile %s" % sandbox.path("run", "orc.lock"), "local"]


def test_json_is_inherited_by_the_whole_chain(run_tool, hc, sandbox):
    """os-collect-config --log-format json → os-refresh-config → os-apply-config and heat-config: all JSON."""
    result = run_tool("os-collect-config", _chain(sandbox) + ["--log-format", "json"])
    assert result.returncode == 0, result.stderr
    assert sandbox.path("out", "etc", "motd").read_text() == "hello world\n"
    docs = []
    for line in result.stderr.splitlines():
        try:
            docs.append(json.loads(line))
        except ValueError:
            pytest.fail("not a JSON line: %r\nstderr:\n%s" % (line, result.stderr))
    assert {d["tool"] for d in docs} == {"os-collect-config", "os-refresh-config", "os-apply-config", "heat-config"}
    assert all({"time", "level", "tool", "message"} <= set(d) for d in docs)


def test_use_json_is_the_alias_and_children_see_the_format(run_tool, sandbox):
    sandbox.path("lib", "local-data").mkdir(mode=0o755)
    env_file = sandbox.path("child-env")
    args = ["--cachedir", str(sandbox.path("cache")), "--backup-cachedir", str(sandbox.path("backup", "occ")),
            "--local-path", str(sandbox.path("lib", "local-data")), "--one-time", "--force",
            "--command", "echo \"$$OS_CONFIG_AGENTS_LOG_FORMAT\" > %s" % env_file, "local"]
    result = run_tool("os-collect-config", args + ["--use-json"])
    assert result.returncode == 0 and env_file.read_text() == "json\n", result.stderr
    assert all(json.loads(line)["tool"] == "os-collect-config" for line in result.stderr.splitlines())
    result = run_tool("os-collect-config", args)
    assert result.returncode == 0 and env_file.read_text() == "text\n", result.stderr


def test_text_lines_have_one_shape_across_the_chain(run_tool, hc, sandbox):
    result = run_tool("os-collect-config", _chain(sandbox))
    assert result.returncode == 0, result.stderr
    tools = set()
    for line in result.stderr.splitlines():
        match = TEXT_LINE.match(line)
        assert match, "not a log line of the one shape: %r\nstderr:\n%s" % (line, result.stderr)
        tools.add(match.group("tool"))
    assert tools == {"os-collect-config", "os-refresh-config", "os-apply-config", "heat-config"}


def test_the_variable_chooses_the_format_and_the_option_wins(run_tool, sandbox):
    sandbox.path("templates", "motd").write_text("x\n")
    sandbox.path("md.json").write_text("{}")
    args = ["-o", str(sandbox.path("out")), "-m", str(sandbox.path("md.json"))]
    as_json = run_tool("os-apply-config", args, env={"OS_CONFIG_AGENTS_LOG_FORMAT": "json"})
    assert as_json.returncode == 0 and as_json.stderr
    assert {json.loads(line)["tool"] for line in as_json.stderr.splitlines()} == {"os-apply-config"}
    as_text = run_tool("os-apply-config", args + ["--log-format", "text"], env={"OS_CONFIG_AGENTS_LOG_FORMAT": "json"})
    assert as_text.stderr and all(TEXT_LINE.match(line) for line in as_text.stderr.splitlines()), as_text.stderr


def test_bad_log_format_option_is_a_usage_error(run_tool):
    for tool in ("os-refresh-config", "heat-config-notify", "dib-run-parts"):
        result = run_tool(tool, ["--log-format", "xml"])
        assert result.returncode == 2 and "--log-format" in result.stderr and "xml" in result.stderr, (tool, result)


def test_dib_run_parts_logs_json_when_asked(run_tool, sandbox):
    parts = sandbox.path("parts")
    parts.mkdir()
    _script(parts / "10-ok", "#!/bin/sh\ntrue\n")
    result = run_tool("dib-run-parts", ["--log-format", "json", str(parts)])
    docs = [json.loads(line) for line in result.stderr.splitlines()]
    assert result.returncode == 0 and docs and {d["tool"] for d in docs} == {"dib-run-parts"}
    assert any("10-ok" in d["message"] for d in docs)


# -- journald and syslog where there is no socket ---------------------------------------------------

def _occ_print(sandbox, *extra):
    sandbox.path("lib", "local-data").mkdir(mode=0o755, exist_ok=True)
    return ["--cachedir", str(sandbox.path("cache")), "--backup-cachedir", str(sandbox.path("backup", "occ")),
            "--local-path", str(sandbox.path("lib", "local-data")), "--print", *extra, "local"]


@pytest.mark.parametrize("flag,what,variable", [
    ("--use-journal", "journald", "OS_CONFIG_AGENTS_JOURNAL_SOCKET"),
    ("--use-syslog", "syslog", "OS_CONFIG_AGENTS_SYSLOG_SOCKET"),
])
def test_missing_log_socket_falls_back_to_stderr_said_once(run_tool, sandbox, flag, what, variable):
    """Issue 15 item 4: no "--- Logging error ---" traceback per record; the messages reach stderr."""
    missing = sandbox.path("run", "no-such-socket")
    result = run_tool("os-collect-config", _occ_print(sandbox, flag, "--debug"), env={variable: str(missing)})
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    notes = [line for line in result.stderr.splitlines() if "cannot log to %s" % what in line]
    assert len(notes) == 1 and str(missing) in notes[0] and "logging to stderr instead" in notes[0], result.stderr
    assert TEXT_LINE.match(notes[0]) and "[WARNING]" in notes[0]
    assert "local" in result.stderr and len(result.stderr.splitlines()) > 2  # the records themselves are there
    assert json.loads(result.stdout) is not None


def test_journal_that_stops_accepting_falls_back_once(run_tool, sandbox):
    """The socket file exists but nobody reads it (journald stopped): the send fails, said once, lines on stderr."""
    path = sandbox.path("run", "journal")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(path))
    dead.close()  # the file stays; sending to it is refused
    result = run_tool("os-collect-config", _occ_print(sandbox, "--use-journal", "--debug"),
                      env={"OS_CONFIG_AGENTS_JOURNAL_SOCKET": str(path)})
    assert result.returncode == 0, result.stderr
    assert "Logging error" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    notes = [line for line in result.stderr.splitlines() if "cannot log to journald" in line]
    assert len(notes) == 1, result.stderr
    assert len(result.stderr.splitlines()) > 2, result.stderr


def test_journal_gets_the_records_with_fields(run_tool, sandbox):
    from tests.agent_common.test_log_handlers import journal_fields

    path = sandbox.path("run", "journal")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    try:
        result = run_tool("os-collect-config", _occ_print(sandbox, "--use-journal", "--debug"),
                          env={"OS_CONFIG_AGENTS_JOURNAL_SOCKET": str(path)})
        entry = journal_fields(sock.recv(65536))
    finally:
        sock.close()
    assert result.returncode == 0 and result.stderr == "", result.stderr  # the journal only, as oslo.log
    assert entry["SYSLOG_IDENTIFIER"] == "os-collect-config" and entry["PRIORITY"] in ("6", "7")
    assert not TEXT_LINE.match(entry["MESSAGE"]) and entry["LOGGER"].startswith("os")
