"""Only a source that answered can report a key gone (weakness 5 fixed without a new failure mode).

A key whose source is down, unconfigured or no longer in the collector list is not a
change: otherwise a first boot whose transport is not up yet runs os-refresh-config
on no metadata, which renders os-collect-config.conf from nothing.
"""
import json
import os


def occ_args(sandbox, *extra):
    return ["--one-time", "--command", "echo \"$$OS_CONFIG_FILES\" >> %s" % sandbox.path("runs"),
            "--cachedir", str(sandbox.path("cache")), "--backup-cachedir", str(sandbox.path("backup")), *extra]


def runs(sandbox):
    path = sandbox.path("runs")
    return path.read_text().splitlines() if path.exists() else []


def test_key_of_a_source_left_out_or_down_is_not_a_change(run_tool, sandbox):
    boot = sandbox.write("lib/cfn-init-data", json.dumps({"os-collect-config": {"collectors": ["request"]}}))
    local = sandbox.path("local-data")
    local.mkdir(mode=0o700)
    (local / "app.json").write_text(json.dumps({"a": 1}))
    first = run_tool("os-collect-config", occ_args(sandbox, "--heat_local-path", str(boot), "--local-path",
                                                     str(local), "heat_local", "local"))
    assert first.returncode == 0 and len(runs(sandbox)) == 1

    # The agent now runs with the configured transport, which is down, and without heat_local.
    down = run_tool("os-collect-config", occ_args(sandbox, "--request-metadata-url", "http://127.0.0.1:9/md",
                                                    "--local-path", str(local), "request", "local"))
    assert down.returncode == 0, down.stderr
    assert len(runs(sandbox)) == 1, "the command ran although no source that answered lost a key"
    assert os.path.exists(sandbox.path("cache", "heat_local.json"))


def test_key_gone_from_a_source_that_answered_is_a_change(run_tool, sandbox):
    local = sandbox.path("local-data")
    local.mkdir(mode=0o700)
    (local / "app.json").write_text("{}")
    (local / "db.json").write_text("{}")
    assert run_tool("os-collect-config", occ_args(sandbox, "--local-path", str(local), "local")).returncode == 0
    (local / "db.json").unlink()
    assert run_tool("os-collect-config", occ_args(sandbox, "--local-path", str(local), "local")).returncode == 0
    assert runs(sandbox)[-1].endswith("app.json.json")
    assert len(runs(sandbox)) == 2
    assert not os.path.exists(sandbox.path("cache", "db.json.json"))
