"""The render cache: a template whose inputs and output did not change is neither rendered nor written."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agent_common.paths import PATHS
from os_apply_config.cache import RACY_NS, digest


def cache_files(oac):
    return sorted(oac.state_dir.iterdir()) if oac.state_dir.exists() else []


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def identities(root):
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*")}


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
    for damaged in (b"{not json", b"[" * 100000, b'{"version": 1, "entries": {"\xff": 1}}'):
        cache.write_bytes(damaged)
        r = oac.render("-m", md)
        assert r.returncode == 0 and written(r) == [] and "Traceback" not in r.stderr
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


def test_the_rendered_tree_holds_only_what_the_templates_render(oac):
    """Issue 12 defect 5: with -o DIR the cache is kept in $OS_APPLY_CONFIG_STATE_DIR, not in DIR/var/lib."""
    md = oac.metadata("m.json", {"a": 1, "b": 2})
    oac.template("etc/a", "{{a}}")
    oac.template("srv/b", "{{b}}")
    assert written(oac.render("-m", md)) == ["a", "b"]
    assert tree(oac.out) == ["etc/a", "srv/b"]
    [cache] = cache_files(oac)
    assert cache.name.startswith("render-cache-") and cache.stat().st_mode & 0o777 == 0o600
    before = identities(oac.out), identities(oac.state_dir)
    r = oac.render("-m", md, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0 and written(r) == [] and "pystache" not in r.stderr  # the fast path still holds
    assert (identities(oac.out), identities(oac.state_dir)) == before


def test_each_output_root_has_its_own_cache(oac, sandbox):
    md = oac.metadata("m.json", {"a": 1})
    oac.template("etc/a", "{{a}}")
    other = sandbox.path("other-root")
    other.mkdir()
    assert written(oac.render("-m", md)) == ["a"]
    assert written(oac.run("-o", str(other), "--fallback-metadata", "-m", md)) == ["a"]
    assert len(cache_files(oac)) == 2 and tree(other) == ["etc/a"]
    for root in (oac.out, other):  # neither render undid the other's record
        r = oac.run("-o", str(root), "--fallback-metadata", "-m", md, env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert written(r) == [] and "pystache" not in r.stderr


def test_without_a_state_dir_another_output_root_renders_everything_and_keeps_no_cache(oac, run_tool, sandbox):
    """Rendering elsewhere than / (a chroot, an image, a test) writes no cache into the host's state dir
    unless $OS_APPLY_CONFIG_STATE_DIR names one: every template renders, as the original's always did."""
    md = oac.metadata("m.json", {"a": 1})
    oac.template("etc/a", "{{a}}")
    default = Path(PATHS["oac_state_dir"].default)
    host_before = sorted(os.listdir(default)) if default.exists() else None
    args = ["-o", str(oac.out), "--fallback-metadata", "-m", md]
    env = {"OS_APPLY_CONFIG_LOG_FILE": "", "OS_APPLY_CONFIG_STATE_DIR": ""}  # empty: not set
    assert written(run_tool("os-apply-config", args, env=env)) == ["a"]
    before = identities(oac.out)
    r = run_tool("os-apply-config", args, env=dict(env, PYTHONPROFILEIMPORTTIME="1"))
    assert r.returncode == 0 and written(r) == [] and "pystache" in r.stderr  # rendered, found unchanged
    assert tree(oac.out) == ["etc/a"] and identities(oac.out) == before
    assert (sorted(os.listdir(default)) if default.exists() else None) == host_before


def test_rendering_into_slash_keeps_its_cache_in_var_lib_under_its_old_name():
    from os_apply_config.cache import cache_path

    templates = "/usr/libexec/os-apply-config/templates"
    old_name = "render-cache-%s.json" % digest(templates.encode())[:16]
    moved = {"OS_APPLY_CONFIG_STATE_DIR": "/srv/oac"}
    assert cache_path("/", templates, {}) == os.path.join("/var/lib/os-apply-config", old_name)
    assert cache_path("/", templates, moved) == os.path.join("/srv/oac", old_name)
    assert cache_path("/mnt/image", templates, {}) is None
    elsewhere = cache_path("/mnt/image", templates, moved)
    assert os.path.dirname(elsewhere) == "/srv/oac" and elsewhere != cache_path("/", templates, moved)
