"""Same input, same bytes: our --print output and cache files against the original os-collect-config 14.1.0.

SPEC §2.13, §2.14.3, §2.16: cache JSON (indent 1, ASCII-escaped, no trailing
newline), the compact os_config_files.json list, the print format and the order of
OS_CONFIG_FILES must not differ, for the local and heat_local collectors.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.os_collect_config.conftest import run_original
from tests.support.sandbox import BIN_DIR

import subprocess


def _inputs(root: Path) -> dict:
    """heat_local files and a local-data dir with non-ASCII, nesting, numbers and keys needing sorting."""
    lib = root / "inputs"
    (lib / "local-data").mkdir(parents=True)
    (lib / "local-data").chmod(0o755)
    (lib / "cfn-init-data").write_text(json.dumps(
        {"os-collect-config": {"command": "true"}, "deployments": [{"name": "d", "group": "os-apply-config",
                                                                      "config": {"x": 1}}],
         "café": "naïve ☃", "n": [1, 2.5, None, True], "nested": {"a": {"b": {}}}}))
    (lib / "override").write_text(json.dumps({"n": "replaced", "extra": {"z": "\u00fc"}}))
    (lib / "broken").write_text("{not json")
    for name, value in {"b.json": {"b": 1}, "A.json": [1, 2], "a": {"k": "v", "ü": "é"}, "zz": "text",
                        ".hidden": {"no": 1}}.items():
        (lib / "local-data" / name).write_text(json.dumps(value))
    (lib / "local-data" / "subdir").mkdir()
    return {
        "--heat_local-path": [str(lib / "cfn-init-data"), str(lib / "missing"), str(lib / "broken"),
                              str(lib / "override")],
        "--local-path": [str(lib / "local-data")],
    }


def _args(inputs: dict, cachedir: Path, backup: Path) -> list:
    args = ["--cachedir", str(cachedir), "--backup-cachedir", str(backup)]
    for flag, values in inputs.items():
        for v in values:
            args += [flag, v]
    return args + ["heat_local", "local"]


def _ours(args, env):
    return subprocess.run([str(BIN_DIR / "os-collect-config"), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_print_output_is_byte_identical(sandbox, original_occ):
    inputs = _inputs(sandbox.root)
    args = _args(inputs, sandbox.path("cache", "x"), sandbox.path("backup", "x"))
    theirs = run_original(original_occ, args + ["--print"], sandbox.env)
    ours = _ours(args + ["--print"], sandbox.env)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert json.loads(ours.stdout)["heat_local"]["n"] == "replaced"


def _tree(directory: Path, prefix_from: str = "", prefix_to: str = "") -> dict:
    out = {}
    for p in sorted(directory.iterdir()):
        if p.name == ".agent-state":
            continue  # our addition (SPEC §12.1)
        out[p.name] = (p.read_text().replace(prefix_from, prefix_to), oct(p.stat().st_mode & 0o777))
    return out


@pytest.mark.parametrize("command_status", [0, 3])
def test_cache_files_and_os_config_files_are_identical(sandbox, original_occ, command_status):
    inputs = _inputs(sandbox.root)
    results = {}
    for who in ("theirs", "ours"):
        cache, backup = sandbox.path("cache", who), sandbox.path("backup", who)
        seen = sandbox.path("seen-%s" % who)
        command = "printenv OS_CONFIG_FILES > %s; exit %d" % (seen, command_status)
        args = _args(inputs, cache, backup) + ["--one-time", "--command", command]
        proc = run_original(original_occ, args, sandbox.env) if who == "theirs" else _ours(args, sandbox.env)
        assert proc.returncode == command_status, proc.stderr
        results[who] = (_tree(cache, str(cache), "<C>"), _tree(backup, str(cache), "<C>"),
                        seen.read_text().strip().replace(str(cache), "<C>"))
    assert results["ours"] == results["theirs"]
    files, _, seen = results["ours"]
    assert seen.split(":")[:3] == ["<C>/heat_local.json", "<C>/A.json.json", "<C>/a.json"]
    assert not files["heat_local.json"][0].endswith("\n")
    assert ("heat_local.json.last" in files) == (command_status == 0)


@pytest.mark.parametrize("args", [
    ["--cachedir", "/cli", "--config-file", "{a}"],
    ["--config-file", "{a}", "--cachedir", "/cli"],
    ["--config-file", "{a}", "--config-file", "{b}"],
    ["--config-file", "{b}", "--config-file", "{a}"],
    ["--config-file", "{dollar}"],
    ["--cachedir", "$$z/${{backup_cachedir}}"],
    ["--config-dir", "{d}"],
    ["--config-file", "{a}", "--config-dir", "{d}"],
    [],
])
def test_option_precedence_matches_oslo(sandbox, original_occ, args):
    a = sandbox.write("etc/a.conf", "[DEFAULT]\ncachedir = /from-a\nbackup_cachedir = /bk-a\n")
    b = sandbox.write("etc/b.conf", "[DEFAULT]\ncachedir: '/from-b'\n")
    dollar = sandbox.write("etc/d.conf", "[DEFAULT]\ncachedir = $$x\\$y/$backup_cachedir\n")
    sandbox.write("etc/dir/20.conf", "[DEFAULT]\ncachedir = /from-dir-20\n")
    sandbox.write("etc/dir/10.conf", "[DEFAULT]\ncachedir = /from-dir-10\n")
    sandbox.write("home/os-collect-config.conf", "[DEFAULT]\ncachedir = /from-home\n")
    argv = [x.format(a=a, b=b, dollar=dollar, d=sandbox.path("etc", "dir")) for x in args] + ["--print-cachedir"]
    theirs = run_original(original_occ, argv, sandbox.env)
    ours = _ours(argv, sandbox.env)
    assert theirs.returncode == 0, theirs.stderr
    assert (ours.returncode, ours.stdout) == (0, theirs.stdout)


@pytest.mark.parametrize("positional", [[], ["local"], ["local", "local"]])
def test_multi_options_and_positional_collectors_match_oslo(sandbox, original_occ, positional):
    for d, name in (("A", "a1"), ("B", "b1")):
        sandbox.write("lib/%s/%s" % (d, name), json.dumps({"from": d}))
        sandbox.path("lib", d).chmod(0o755)
    sandbox.write("lib/hl", json.dumps({"hl": 1}))
    conf = sandbox.write("etc/occ.conf", "[DEFAULT]\ncollectors = heat_local\ncollectors = local\n"
                         "[local]\npath = %s\n[heat_local]\npath = %s\n"
                         % (sandbox.path("lib", "A"), sandbox.path("lib", "hl")))
    argv = ["--local-path", str(sandbox.path("lib", "B")), "--config-file", str(conf), "--print"] + positional
    theirs = run_original(original_occ, argv, sandbox.env)
    ours = _ours(argv, sandbox.env)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.stdout == theirs.stdout


def test_request_collector_cache_and_explosion_match(sandbox, original_occ, swift):
    swift.put_object("heat", "server1", {
        "os-collect-config": {"request": {"metadata_url": "x"}}, "ünï": "códe",
        "deployments": [{"id": "1", "name": "dep-a", "group": "os-apply-config", "config": {"a": [1, 2.0]}},
                        {"id": "2", "name": "dep-b", "group": "script", "config": "#!/bin/sh"},
                        {"id": "3", "name": "dep-c", "config": {"c": None}},
                        {"id": "4", "group": "os-apply-config", "config": {}}],
        "other": [{"name": "o", "config": {"o": 1}}]})
    url = swift.temp_url("heat", "server1")
    trees = {}
    for who in ("theirs", "ours"):
        cache, backup = sandbox.path("cache", who), sandbox.path("backup", who)
        args = ["--cachedir", str(cache), "--backup-cachedir", str(backup), "--one-time", "-c", "true",
                "--request-metadata-url", url, "--deployment-key", "deployments", "--deployment-key", "other",
                "request"]
        proc = run_original(original_occ, args, sandbox.env) if who == "theirs" else _ours(args, sandbox.env)
        assert proc.returncode == 0, proc.stderr
        trees[who] = _tree(cache, str(cache), "<C>")
    assert trees["ours"] == trees["theirs"]
    assert json.loads(trees["ours"]["os_config_files.json"][0]) == [
        "<C>/request.json", "<C>/dep-a.json", "<C>/dep-c.json", "<C>/o.json"]


def test_ec2_tree_matches(sandbox, original_occ, ec2):
    outputs = {}
    for who in ("theirs", "ours"):
        args = ["--cachedir", str(sandbox.path("cache", who)), "--print", "--ec2-metadata-url", ec2.metadata_url,
                "ec2"]
        proc = run_original(original_occ, args, sandbox.env) if who == "theirs" else _ours(args, sandbox.env)
        assert proc.returncode == 0, proc.stderr
        outputs[who] = proc.stdout
    assert outputs["ours"] == outputs["theirs"]
    assert json.loads(outputs["ours"])["ec2"]["public-keys"] == {"0": {"openssh-key": "ssh-rsa AAAA test"}}
