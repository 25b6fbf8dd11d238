"""Store mode, one poll at a time (SPEC §2.13–§2.15, §2.18).

The command, OS_CONFIG_FILES, commit, retries and the cache files.
"""
from __future__ import annotations

import json
import os
import re
import stat
import time

import pytest


def _record(sandbox, name="seen"):
    """A command that records OS_CONFIG_FILES (one line per run) and the SIGHUP disposition it inherited."""
    out = sandbox.path(name)
    return out, "printenv OS_CONFIG_FILES >> %s" % out


def _runs(path):
    return path.read_text().splitlines() if path.exists() else []


def test_one_time_runs_command_with_files_in_collection_order_and_commits(occ, sandbox):
    occ.heat_local.write_text(json.dumps({"h": 1}))
    occ.write_local("b", {"b": 1})
    occ.write_local("a.json", {"a": 1})
    seen, cmd = _record(sandbox)
    res = occ("--one-time", "-c", cmd, "heat_local", "local")
    assert res.returncode == 0, res.stderr
    c = str(occ.cachedir)
    expected = ["%s/heat_local.json" % c, "%s/a.json.json" % c, "%s/b.json" % c]
    assert _runs(seen) == [":".join(expected)]
    assert occ.cachedir.joinpath("os_config_files.json").read_text() == json.dumps(expected)
    for key in ("heat_local", "a.json", "b"):
        for suffix in (".json", ".json.orig", ".json.last"):
            path = occ.cachedir / (key + suffix)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(occ.cachedir.stat().st_mode) == 0o700
    assert json.loads(occ.backup.joinpath("os_config_files.json").read_text()) == expected
    assert not [p for p in os.listdir(occ.cachedir) if p.startswith("tmp")]
    # Nothing changed: no run.  --force: a run anyway.
    assert occ("--one-time", "-c", cmd, "heat_local", "local").returncode == 0
    assert len(_runs(seen)) == 1
    assert occ("--force", "-c", cmd, "heat_local", "local").returncode == 0
    assert len(_runs(seen)) == 2


def test_force_with_nothing_collected_gives_empty_os_config_files(occ, sandbox):
    seen, cmd = _record(sandbox)
    res = occ("--force", "-c", cmd, "local")
    assert res.returncode == 0 and _runs(seen) == [""]


def test_failed_command_status_no_commit_and_retry(occ, sandbox):
    occ.write_local("x", {"v": 1})
    marker = sandbox.path("fail")
    marker.write_text("")
    cmd = "test -e %s && exit 7; true" % marker
    res = occ("--one-time", "-c", cmd, "local")
    assert res.returncode == 7
    assert "Command failed, will not cache new data" in res.stderr
    assert not occ.cachedir.joinpath("x.json.last").exists()
    marker.unlink()
    assert occ("--one-time", "-c", cmd, "local").returncode == 0
    assert occ.cachedir.joinpath("x.json.last").exists()


def test_command_killed_by_signal_exits_256_minus_n(occ):
    occ.write_local("x", {"v": 1})
    res = occ("--one-time", "-c", "kill -TERM $$$$", "local")
    assert res.returncode == 256 - 15


def test_corrupt_last_is_a_change_not_a_crash(occ, sandbox):
    occ.write_local("x", {"v": 1})
    seen, cmd = _record(sandbox)
    assert occ("--one-time", "-c", cmd, "local").returncode == 0
    occ.cachedir.joinpath("x.json.last").write_text('{"v": ')  # torn by a power cut
    res = occ("--one-time", "-c", cmd, "local")
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert "unreadable" in res.stderr and len(_runs(seen)) == 2
    assert json.loads(occ.cachedir.joinpath("x.json.last").read_text()) == {"v": 1}


@pytest.mark.parametrize("damage", [b"\xff\xfe not UTF-8", b"[" * 100_000 + b"]" * 100_000],
                         ids=["not-utf8", "too-deep"])  # pytest 8 would make an id of all of it: E2BIG for children
def test_damaged_cache_and_state_files_are_as_good_as_none(occ, sandbox, damage):
    """A damaged disk: every file the agent keeps (``.last``, ``.json``, its ``.agent-state`` documents)
    holds bytes that are not UTF-8, or JSON nested too deeply. Each was a ValueError out of the poll."""
    occ.write_local("x", {"v": 1})
    seen, cmd = _record(sandbox)
    assert occ("--one-time", "-c", cmd, "local").returncode == 0
    for path in [occ.cachedir / "x.json.last", occ.cachedir / "x.json"] + list(
            occ.cachedir.joinpath(".agent-state").iterdir()):
        path.write_bytes(damage)
    res = occ("--one-time", "-c", cmd, "local")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert len(_runs(seen)) == 2  # an unreadable .last is a change
    assert occ.cache_json("x.json.last") == {"v": 1}
    assert json.loads(occ.cachedir.joinpath(".agent-state", "os-collect-config.committed.json").read_text()) \
        == {"local": ["x"]}


def test_equal_data_in_another_layout_is_no_change(occ, sandbox):
    occ.write_local("x", {"a": 1, "b": [1, 2]})
    seen, cmd = _record(sandbox)
    occ("--one-time", "-c", cmd, "local")
    occ.cachedir.joinpath("x.json.last").write_text('{"b":[1,2],"a":1}')
    occ("--one-time", "-c", cmd, "local")
    assert len(_runs(seen)) == 1


def test_removed_source_is_a_change_and_its_stale_files_go(occ, sandbox):
    occ.write_local("keep", {"k": 1})
    gone = occ.write_local("gone", {"g": 1})
    seen, cmd = _record(sandbox)
    assert occ("--one-time", "-c", cmd, "local").returncode == 0
    gone.unlink()
    res = occ("--one-time", "-c", cmd, "local")
    assert res.returncode == 0
    assert _runs(seen)[-1] == "%s/keep.json" % occ.cachedir
    assert not [p for p in os.listdir(occ.cachedir) if p.startswith("gone")]
    assert len(_runs(seen)) == 2
    assert occ("--one-time", "-c", cmd, "local").returncode == 0 and len(_runs(seen)) == 2


def test_removed_key_stays_until_the_command_succeeds(occ, sandbox):
    occ.write_local("keep", {"k": 1})
    gone = occ.write_local("gone", {"g": 1})
    occ("--one-time", "-c", "true", "local")
    gone.unlink()
    assert occ("--one-time", "-c", "exit 3", "local").returncode == 3
    assert occ.cachedir.joinpath("gone.json").exists()
    assert occ("--one-time", "-c", "true", "local").returncode == 0
    assert not occ.cachedir.joinpath("gone.json").exists()


def test_command_timeout_kills_a_hung_command(occ, sandbox):
    occ.write_local("x", {"v": 1})
    start = time.monotonic()
    res = occ("--one-time", "--command-timeout", "1", "-c", "sleep 60", "local")
    assert time.monotonic() - start < 30
    assert res.returncode == 124 and "timed out after 1 seconds" in res.stderr
    assert not occ.cachedir.joinpath("x.json.last").exists()


def test_logs_go_to_stderr_and_print_output_stays_clean(occ):
    occ.write_local("x", {"v": "ü"})
    res = occ("--print", "--debug", "local", "heat_local")
    assert json.loads(res.stdout) == {"x": {"v": "ü"}}
    assert "\\u00fc" in res.stdout and res.stdout.endswith("}\n")
    assert "DEBUG" in res.stderr


def test_print_mode_never_writes_the_cache(occ):
    occ.write_local("x", {"v": 1})
    res = occ("--print", "-c", "touch should-not-run", "local")
    assert res.returncode == 0 and json.loads(res.stdout) == {"x": {"v": 1}}
    assert os.listdir(occ.cachedir) == []
    assert not occ.sandbox.path("should-not-run").exists()


def test_splay_accepts_fractions(occ):
    """The original passed the float to random.randrange: only whole values worked, and none on 3.12+."""
    occ.write_local("x", {"v": 1})
    res = occ("--splay", "0.5", "--print", "--debug", "local")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"x": {"v": 1}}
    splays = [float(m) for m in re.findall(r"Splay: sleeping ([0-9.]+) seconds before the first poll", res.stderr)]
    assert len(splays) == 1 and 0 <= splays[0] < 0.5, res.stderr
    res = occ("--splay", "0.5", "--one-time", "-c", "true", "--debug", "local")  # not applied to one-time runs
    assert res.returncode == 0 and "Splay" not in res.stderr


def test_log_file_and_json_lines(occ, sandbox):
    log = sandbox.path("log", "occ.log")
    res = occ("--print", "--debug", "--use-json", "--log-file", str(log), "local")
    assert res.returncode == 0 and res.stderr == ""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any("Starting" in line["message"] for line in lines)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_existing_open_cachedir_is_restricted_to_0700(occ):
    occ.cachedir.chmod(0o755)
    occ.write_local("x", {"v": 1})
    assert occ("--one-time", "-c", "true", "local").returncode == 0
    assert stat.S_IMODE(occ.cachedir.stat().st_mode) == 0o700
    assert stat.S_IMODE(occ.cachedir.joinpath(".agent-state").stat().st_mode) == 0o700


def test_backup_failure_does_not_block_the_command(occ, sandbox):
    occ.write_local("x", {"v": 1})
    blocker = sandbox.write("run/not-a-dir", "")
    res = occ("--one-time", "-c", "true", "--backup-cachedir", str(blocker / "occ"), "local")
    assert res.returncode == 0 and "Cannot refresh the backup" in res.stderr
    assert occ.cachedir.joinpath("x.json.last").exists()


def test_log_config_append_file_is_used_and_still_redacts(occ, sandbox):
    from tests.support.sandbox import PLANTED_SECRETS

    out = sandbox.path("log", "custom.log")
    conf = sandbox.write("etc/logging.conf", """[loggers]
keys=root
[handlers]
keys=file
[formatters]
keys=plain
[logger_root]
level=DEBUG
handlers=file
[handler_file]
class=FileHandler
args=(%r,)
formatter=plain
[formatter_plain]
format=CUSTOM %%(levelname)s %%(message)s
""" % str(out))
    url = "http://127.0.0.1:9/meta?temp_url_sig=%s&temp_url_expires=1" % PLANTED_SECRETS[2]
    res = occ("--print", "--log-config-append", str(conf), "--request-metadata-url", url, "--request-timeout", "2",
              "request")
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    assert "CUSTOM WARNING Source [request] Unavailable." in text and PLANTED_SECRETS[2] not in text
