"""The render cache: a template whose inputs and output did not change is neither rendered nor written."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from os_apply_config.cache import RACY_NS


def cache_files(oac):
    d = oac.out / "var" / "lib" / "os-apply-config"
    return sorted(d.iterdir()) if d.exists() else []


def written(result):
    return sorted(l.rsplit("/", 1)[1] for l in result.stderr.splitlines() if "] writing " in l)


def test_unchanged_run_renders_nothing_and_does_not_even_load_pystache(oac):
    md = oac.metadata("m.json", {"a": 1, "b": 2})
    oac.template("etc/a", "{{a}}")
    oac.template("etc/b", "{{b}}")
    assert written(oac.render("-m", md)) == ["a", "b"]
    [cache] = cache_files(oac)
    assert cache.stat().st_mode & 0o777 == 0o600
    before = cache.stat().st_mtime_ns
    r = oac.render("-m", md, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0 and written(r) == []
    assert "pystache" not in r.stderr  # nothing was rendered
    assert cache.stat().st_mtime_ns == before  # and nothing written, not even the cache


def test_only_templates_reading_a_changed_key_are_rendered_again(oac):
    oac.template("etc/a", "{{a}} {{#sec}}{{x}}{{/sec}}")
    oac.template("etc/b", "{{b}}")
    oac.template("etc/warns", "{{b}}{{missing}}")
    md = oac.metadata("m.json", {"a": 1, "b": 2, "sec": {"x": "y"}})
    oac.render("-m", md)
    md = oac.metadata("m.json", {"a": 1, "b": 3, "sec": {"x": "y"}})
    r = oac.render("-m", md)
    assert written(r) == ["b", "warns"]
    md = oac.metadata("m.json", {"a": 1, "b": 3, "sec": {"x": "z"}})
    r = oac.render("-m", md)
    assert written(r) == ["a"] and oac.output("etc/a") == "1 z"
    assert "etc/warns: key 'missing' not found" in r.stderr  # warnings stay visible on a cached run


def test_edits_to_templates_controls_or_targets_are_noticed(oac):
    md = oac.metadata("m.json", {"a": 1})
    oac.template("etc/a", "{{a}}")
    oac.render("-m", md)
    oac.template("etc/a", "{{a}}!")
    assert written(oac.render("-m", md)) == ["a"] and oac.output("etc/a") == "1!"
    oac.template("etc/a", "{{a}}!", oac="mode: 0600\n")
    assert written(oac.render("-m", md)) == ["a"]
    (oac.out / "etc" / "a").write_text("1?")  # same size, edited by hand
    assert written(oac.render("-m", md)) == ["a"] and oac.output("etc/a") == "1!"
    os.chown(oac.out / "etc" / "a", 65534, -1)
    assert written(oac.render("-m", md)) == []  # an existing file keeps its owner, as always
    (oac.out / "etc" / "a").unlink()
    assert written(oac.render("-m", md)) == ["a"]


def test_settled_templates_are_known_by_their_stat_yet_every_edit_is_noticed(oac):
    """A template older than the racy window is identified by inode, size, mtime and ctime instead of
    being read again; an edit that keeps the size and puts the mtime back still changes the ctime."""
    md = oac.metadata("m.json", {"a": 1})
    a = oac.template("etc/a", "{{a}}.", oac="mode: 0640\n")
    b = oac.template("etc/b", "[{{a}}]")
    control = Path(str(a) + ".oac")
    time.sleep(RACY_NS / 1e9 + 0.2)
    assert written(oac.render("-m", md)) == ["a", "b"]
    [cache] = cache_files(oac)
    entries = json.loads(cache.read_text())["entries"]
    assert entries["etc/a"]["signature"][0][0] == a.stat().st_ino
    assert written(oac.render("-m", md)) == []

    before = a.stat()
    a.write_text("{{a}}!")  # same size, mtime put back: only the ctime tells
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert written(oac.render("-m", md)) == ["a"] and oac.output("etc/a") == "1!"

    before = control.stat()
    control.write_text("mode: 0600\n")
    os.utime(control, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert written(oac.render("-m", md)) == ["a"] and (oac.out / "etc" / "a").stat().st_mode & 0o777 == 0o600

    before = b.stat()
    replacement = b.with_name("b.new")
    replacement.write_text("<{{a}}>")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, b)  # a new inode of the same size and mtime
    assert written(oac.render("-m", md)) == ["b"] and oac.output("etc/b") == "<1>"


def test_a_lost_or_broken_cache_only_costs_a_render(oac):
    md = oac.metadata("m.json", {"a": 1})
    oac.template("etc/a", "{{a}}")
    oac.render("-m", md)
    [cache] = cache_files(oac)
    cache.write_text("{not json")
    r = oac.render("-m", md)
    assert r.returncode == 0 and written(r) == []
    assert json.loads(cache.read_text())["version"] == 1
    cache.unlink()
    assert written(oac.render("-m", md)) == [] and cache_files(oac)


def test_templates_with_partials_or_whole_document_use_are_handled(oac, sandbox):
    md = oac.metadata("m.json", {"a": 1, "b": 2})
    oac.template("etc/whole", "{{#a}}{{/a}}{{.}}")
    oac.template("etc/partial", "{{>part}}")
    (sandbox.root / "part.mustache").write_text("{{a}}")
    oac.render("-m", md)
    assert oac.output("etc/partial") == "1"
    (sandbox.root / "part.mustache").write_text("{{b}}")  # partials are read from the cwd: never cached
    md = oac.metadata("m.json", {"a": 1, "b": 3})
    r = oac.render("-m", md)
    assert oac.output("etc/partial") == "3"
    assert "whole" in written(r)  # {{.}} at the top depends on every key
