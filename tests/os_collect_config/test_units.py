"""In-process checks of explosion, the cache and the loop's wake-up (SPEC §2.4, §2.13)."""
from __future__ import annotations

import json
import os
import stat
import threading
import time

import pytest

from os_collect_config.cache import MISSING, Cache, check_key
from os_collect_config.collectors.base import Unavailable
from os_collect_config.merge import as_mapping, explode


def test_explode_spec_example():
    meta = {"os-collect-config": {"command": "os-refresh-config"},
            "deployments": [
                {"id": "d1", "name": "dep-a", "group": "os-apply-config", "config": {"keystone": {"debug": True}},
                 "inputs": []},
                {"id": "d2", "name": "dep-b", "group": "script", "config": "#!/bin/sh\necho hi", "inputs": []}]}
    assert explode(meta, ["deployments"], "heat") == [("heat", meta), ("dep-a", {"keystone": {"debug": True}})]


def test_explode_edge_cases(caplog):
    meta = {"a": "not a list", "b": [{"config": 1}, "junk", {"name": "u", "config": 2},
                                     {"name": "g", "group": "Heat::Ungrouped", "config": 3}]}
    assert explode(meta, ["missing", "a", "b"], "c") == [("c", meta), ("u", 2), ("g", 3)]
    assert "does not contain a list" in caplog.text and caplog.text.count("No name found") == 2
    with pytest.raises(Unavailable, match="has no config"):
        explode({"deployments": [{"name": "x"}]}, ["deployments"], "request")
    assert explode([1, 2], ["deployments"], "c") == [("c", [1, 2])]


def test_print_mapping_later_value_wins_in_first_position():
    assert list(as_mapping([("a", 1), ("b", 2), ("a", 3)]).items()) == [("a", 3), ("b", 2)]


def test_check_key():
    reserved = ["ec2", "heat", "local"]
    assert check_key("dep-a", "heat", reserved) is None
    assert check_key("heat", "heat", reserved) is None
    for bad in ("../x", "a/b", "", ".x", "ec2", "os_config_files", "x" * 300, None, 5):
        assert check_key(bad, "heat", reserved), bad


def test_store_commit_semantics(tmp_path):
    c = Cache(str(tmp_path / "c"))
    c.ensure()
    assert stat.S_IMODE(os.stat(c.cachedir).st_mode) == 0o700
    assert c.store("k", {"é": 1}) == (True, c.path("k"))
    assert open(c.path("k")).read() == '{\n "\\u00e9": 1\n}'
    assert c.store("k", {"é": 1})[0] is True  # no .last yet
    c.commit(["k"])
    assert c.store("k", {"é": 1})[0] is False
    assert c.store("k", {"é": 2})[0] is True
    assert json.loads(open(c.path("k") + ".orig").read()) == {"é": 1}  # written once
    assert c.load("k", ".last") == {"é": 1} and c.load("nope") is MISSING
    c.remove(["k"])
    assert os.listdir(c.cachedir) == []


def test_strict_equality_true_is_not_1(tmp_path):
    c = Cache(str(tmp_path))
    c.store("k", 1)
    c.commit(["k"])
    assert c.store("k", True)[0] is True


def test_backup_is_swapped_whole(tmp_path, monkeypatch):
    c = Cache(str(tmp_path / "c"), str(tmp_path / "run" / "b"))
    c.ensure()
    c.store("k", 1)
    c.backup()
    assert sorted(os.listdir(c.backup_dir)) == ["k.json", "k.json.orig"]
    c.store("j", 2)

    def crash(src, dst, *a, **kw):
        raise OSError("disk full")
    import shutil

    monkeypatch.setattr(shutil, "copytree", crash)
    with pytest.raises(OSError):
        c.backup()
    assert sorted(os.listdir(c.backup_dir)) == ["k.json", "k.json.orig"]  # the old backup survived
    monkeypatch.undo()
    c.backup()
    assert sorted(os.listdir(c.backup_dir)) == ["j.json", "j.json.orig", "k.json", "k.json.orig"]
    assert sorted(os.listdir(tmp_path / "run")) == ["b"]
    assert all(stat.S_IMODE(os.stat(os.path.join(c.backup_dir, f)).st_mode) == 0o600
               for f in os.listdir(c.backup_dir))


def test_wakeup_event_ends_the_sleep_early(tmp_path):
    from os_collect_config import cli
    from os_collect_config.collectors.base import Collector
    from os_collect_config.loop import Agent

    settings = cli.parse(["--cachedir", str(tmp_path / "c"), "-c", "true", "--polling-interval", "30",
                          "--min-polling-interval", "30", "local", "--local-path", str(tmp_path / "none")],
                         home=str(tmp_path))
    agent = Agent(settings, ["os-collect-config"])
    polls = []
    original = agent.store_poll

    def counting_poll():
        polls.append(time.monotonic())
        if len(polls) == 2:
            raise SystemExit(0)
        return original()
    agent.store_poll = counting_poll
    threading.Timer(0.3, agent.ctx.wakeup.set).start()
    t0 = time.monotonic()
    with pytest.raises(SystemExit):
        agent.run()
    assert time.monotonic() - t0 < 5
    assert not agent.ctx.wakeup.is_set()
    assert isinstance(agent.collectors[0][1], Collector)


def test_backup_skips_temp_files_and_agent_state_but_keeps_tmp_named_keys(tmp_path):
    c = Cache(str(tmp_path / "c"), str(tmp_path / "b"))
    c.ensure()
    c.store("tmpconfig", 1)
    (tmp_path / "c" / "tmpab12cd_9").write_text("in flight")
    (tmp_path / "c" / "tmp_meta_list.x1y2z3w4").write_text("in flight")
    (tmp_path / "c" / ".agent-state").mkdir()
    c.backup()
    assert sorted(os.listdir(c.backup_dir)) == ["tmpconfig.json", "tmpconfig.json.orig"]
