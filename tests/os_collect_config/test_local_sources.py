"""local and heat_local collectors (SPEC §2.11, §2.12; weaknesses 18, 19)."""
from __future__ import annotations

import json
import os

import pytest


def test_local_keys_sorted_dotfiles_and_subdirs_skipped(occ):
    for name in ("b", "B", "a.json", ".hidden"):
        occ.write_local(name, {"n": name})
    (occ.local_dir / "sub").mkdir()
    res = occ("--print", "local")
    assert list(json.loads(res.stdout)) == ["B", "a.json", "b"]


def test_local_multiple_dirs_merge_in_sorted_order(occ, sandbox):
    occ.write_local("m", {"d": 1})
    other = sandbox.path("lib", "other")
    other.mkdir()
    (other / "a").write_text('{"d": 2}')
    res = occ("--print", "--local-path", str(other), "local")
    assert list(json.loads(res.stdout)) == ["a", "m"]


def test_one_bad_file_keeps_its_last_good_value_and_the_others(occ, sandbox):
    occ.write_local("good", {"g": 1})
    bad = occ.write_local("bad", {"b": 1})
    seen = sandbox.path("seen")
    assert occ("--one-time", "-c", "printenv OS_CONFIG_FILES >> %s" % seen, "local").returncode == 0
    bad.write_text("{torn")
    occ.write_local("good", {"g": 2})
    res = occ("--one-time", "-c", "printenv OS_CONFIG_FILES >> %s" % seen, "local")
    assert res.returncode == 0 and "bad: not valid JSON" in res.stderr and "keeping its last good value" in res.stderr
    assert seen.read_text().splitlines()[-1] == "%s/bad.json:%s/good.json" % (occ.cachedir, occ.cachedir)
    assert occ.cache_json("bad.json") == {"b": 1} and occ.cache_json("good.json") == {"g": 2}


def test_insecure_dirs_and_files_make_local_unavailable(occ):
    occ.write_local("x", {"v": 1})
    occ.local_dir.chmod(0o777)
    res = occ("--print", "local")
    assert json.loads(res.stdout) == {} and "world writable" in res.stderr
    occ.local_dir.chmod(0o775)  # group-writable is allowed
    assert json.loads(occ("--print", "local").stdout) == {"x": {"v": 1}}
    (occ.local_dir / "x").chmod(0o666)
    assert json.loads(occ("--print", "local").stdout) == {}
    (occ.local_dir / "x").chmod(0o644)
    if os.getuid() == 0:
        os.chown(occ.local_dir, 65534, -1)
        res = occ("--print", "local")
        assert json.loads(res.stdout) == {} and "owned by another user" in res.stderr


def test_local_key_named_like_another_collector_is_refused(occ):
    occ.write_local("ec2", {"spoof": 1})
    occ.write_local("fine", {"ok": 1})
    res = occ("--one-time", "-c", "true", "local")
    assert res.returncode == 0 and "would overwrite the ec2 file" in res.stderr
    assert not occ.cachedir.joinpath("ec2.json").exists() and occ.cachedir.joinpath("fine.json").exists()


def test_missing_local_dir_warns_once_and_is_not_an_error(occ):
    res = occ("--print", "local")
    assert res.returncode == 0 and json.loads(res.stdout) == {}
    assert res.stderr.count("not found. Skipping") == 1


def test_heat_local_merge_later_wins_and_bad_files_skipped(occ, sandbox):
    first = sandbox.write("lib/one", json.dumps({"a": 1, "b": 1}))
    second = sandbox.write("lib/two", json.dumps({"b": 2}))
    broken = sandbox.write("lib/broken", "{")
    a_dir = sandbox.path("lib")  # a directory given as a file: unreadable, named, no traceback
    res = occ("--print", "--heat_local-path", str(first), "--heat_local-path", str(broken), "--heat_local-path",
              str(a_dir), "--heat_local-path", str(second), "heat_local")
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert json.loads(res.stdout) == {"heat_local": {"a": 1, "b": 2}}
    assert "%s: not valid JSON" % broken in res.stderr and "Cannot read %s" % a_dir in res.stderr


def test_heat_local_absent_is_quiet_not_a_warning(occ):
    res = occ("--print", "heat_local")
    assert json.loads(res.stdout) == {} and "WARNING" not in res.stderr


def test_heat_local_only_unusable_files_keep_last_good(occ, sandbox):
    occ.heat_local.write_text('{"h": 1}')
    assert occ("--one-time", "-c", "true", "heat_local").returncode == 0
    occ.heat_local.write_text("not json")
    res = occ("--print", "heat_local")
    assert json.loads(res.stdout) == {"heat_local": {"h": 1}}
    assert "Source [heat_local] Unavailable." in res.stderr


def test_heat_local_bad_json_is_a_warning_naming_the_file_and_the_position(occ):
    occ.heat_local.write_text('{"a": 1,\n "b": }\n')
    res = occ("--one-time", "-c", "true", "heat_local")
    assert res.returncode == 0 and "Traceback" not in res.stderr
    warning = [line for line in res.stderr.splitlines() if "(os-collect-config) [WARNING]" in line and "not valid JSON" in line]
    assert len(warning) == 1, res.stderr
    assert "%s: not valid JSON: Expecting value: line 2 column 7" % occ.heat_local in warning[0]
    assert "Local metadata not found" not in res.stderr  # it was found: it is broken
    assert "Source [heat_local] Unavailable. no usable metadata in %s" % occ.heat_local in res.stderr


#: Seconds within which a run must end: a FIFO opened for reading waits for a writer for ever.
FIFO_DEADLINE = 30


def test_a_fifo_in_local_data_is_skipped_with_one_warning(occ):
    """Issue 12 defect 11: a FIFO named *.json in a local-data directory blocked the agent, --print too."""
    occ.write_local("good.json", {"g": 1})
    fifo = occ.local_dir / "pipe.json"
    os.mkfifo(fifo)
    for args in (["--print", "local"], ["--one-time", "-c", "true", "local"]):
        res = occ(*args, timeout=FIFO_DEADLINE)  # a hang fails here (TimeoutExpired)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        named = [line for line in res.stderr.splitlines() if str(fifo) in line]
        assert len(named) == 1 and "WARNING" in named[0] and "not a regular file" in named[0], res.stderr
    assert json.loads(occ("--print", "local", timeout=FIFO_DEADLINE).stdout) == {"good.json": {"g": 1}}
    assert occ.cache_json("good.json.json") == {"g": 1}


def test_a_fifo_as_a_heat_local_file_is_skipped_with_one_warning(occ, sandbox):
    fifo = sandbox.path("lib", "cfn-init-fifo")
    os.mkfifo(fifo)
    good = sandbox.write("lib/cfn-init-data", json.dumps({"h": 1}))
    res = occ("--print", "--heat_local-path", str(fifo), "--heat_local-path", str(good), "heat_local",
              timeout=FIFO_DEADLINE)
    assert res.returncode == 0 and json.loads(res.stdout) == {"heat_local": {"h": 1}}
    named = [line for line in res.stderr.splitlines() if str(fifo) in line]
    assert len(named) == 1 and "WARNING" in named[0] and "not a regular file" in named[0], res.stderr


BAD_DOCUMENTS = {
    "not-utf8": (b'{"a": "\xff\xfe"}', "not UTF-8"),
    "too-deep": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("kind", sorted(BAD_DOCUMENTS))
def test_undecodable_or_too_deep_files_are_one_line_naming_the_file(occ, sandbox, kind):
    content, reason = BAD_DOCUMENTS[kind]
    occ.write_local("good", {"g": 1})
    bad_local = occ.local_dir / "bad"
    bad_local.write_bytes(content)
    bad_heat = sandbox.path("lib", "bad-init-data")
    bad_heat.write_bytes(content)
    good_heat = sandbox.write("lib/more-data", json.dumps({"h": 1}))
    res = occ("--print", "--heat_local-path", str(bad_heat), "--heat_local-path", str(good_heat),
              "heat_local", "local", timeout=FIFO_DEADLINE)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert json.loads(res.stdout) == {"heat_local": {"h": 1}, "good": {"g": 1}}
    for path in (bad_local, bad_heat):
        named = [line for line in res.stderr.splitlines() if str(path) in line]
        assert len(named) == 1 and reason in named[0], res.stderr[-2000:]
