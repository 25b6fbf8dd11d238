"""Which metadata files are read and how they merge (SPEC §4.3, §4.4), through the real command."""
from __future__ import annotations

import json
import os

import pytest

from os_apply_config.metadata import deep_merge, lookup, MISSING
from tests.os_apply_config.conftest import one_error_line


def key(oac, k, *args, **kwargs):
    return oac.run("--key", k, "--type", "raw", *args, **kwargs)


def test_m_beats_os_config_files_which_beats_the_list_file(oac, sandbox):
    a = oac.metadata("a.json", {"who": "m"})
    b = oac.metadata("b.json", {"who": "env"})
    c = oac.metadata("c.json", {"who": "list"})
    sandbox.path("cache", "os_config_files.json").write_text(json.dumps([c]))
    assert key(oac, "who", "-m", a, env={"OS_CONFIG_FILES": b}).stdout == "m\n"
    assert key(oac, "who", env={"OS_CONFIG_FILES": b}).stdout == "env\n"
    assert key(oac, "who").stdout == "list\n"
    other = sandbox.path("cache", "other-list.json")
    other.write_text(json.dumps([a]))
    assert key(oac, "who", "--os-config-files", str(other)).stdout == "m\n"


def test_repeated_m_uses_every_file(oac):
    a = oac.metadata("a.json", {"x": 1, "from_a": "yes"})
    b = oac.metadata("b.json", {"x": 2})
    r = key(oac, "from_a", "-m", a, "-m", b)
    assert r.stdout == "yes\n"
    assert key(oac, "x", "-m", a, "-m", b).stdout == "2\n"
    assert key(oac, "x", "-m", b, a).stdout == "1\n"


def test_os_config_files_empty_counts_and_the_list_file_is_not_read(oac, sandbox):
    c = oac.metadata("c.json", {"who": "list"})
    sandbox.path("cache", "os_config_files.json").write_text(json.dumps([c]))
    r = key(oac, "who", "--fallback-metadata", env={"OS_CONFIG_FILES": ""})
    assert r.returncode == 1
    assert "no metadata" in r.stderr  # said, not silent (SPEC §5.9.27)


def test_os_config_files_splits_on_colons_and_later_files_win(oac):
    a = oac.metadata("a.json", {"a": {"x": 1, "y": 2}, "l": [1]})
    b = oac.metadata("b.json", {"a": {"x": 9}, "l": [2]})
    r = key(oac, "a", env={"OS_CONFIG_FILES": "%s::%s" % (a, b)})
    assert json.loads(r.stdout) == {"x": 9, "y": 2}
    assert key(oac, "l", env={"OS_CONFIG_FILES": "%s:%s" % (a, b)}).stdout == "[2]\n"


def test_list_file_missing_means_empty_and_invalid_is_one_clear_error(oac, sandbox):
    listfile = sandbox.path("cache", "os_config_files.json")
    r = key(oac, "x", "--key-default", "dflt", "--fallback-metadata")
    assert (r.returncode, r.stdout) == (0, "dflt\n")
    for bad in ("not json", '{"a": 1}'):
        listfile.write_text(bad)
        r = key(oac, "x")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert str(listfile) in r.stderr


def test_per_file_rules(oac, sandbox):
    good = oac.metadata("good.json", {"k": "v"})
    ignored = [oac.metadata(n, d) for n, d in (("list.json", [1]), ("str.json", "\"s\""), ("null.json", "null"),
                                                ("empty.json", {}))]
    files = ":".join(["", "/nonexistent/file.json", good] + ignored)
    assert key(oac, "k", env={"OS_CONFIG_FILES": files}).stdout == "v\n"
    bad = oac.metadata("bad.json", "{not json")
    r = key(oac, "k", env={"OS_CONFIG_FILES": "%s:%s" % (good, bad)})
    assert r.returncode == 1 and "Could not parse metadata file: %s" % bad in r.stderr
    unreadable = sandbox.path("cache", "dir.json")
    unreadable.mkdir()
    r = key(oac, "k", env={"OS_CONFIG_FILES": str(unreadable)})
    assert r.returncode == 1 and "Could not open %s for reading." % unreadable in r.stderr


def nested(depth, key="a", leaf=1):
    doc = leaf
    for _ in range(depth):
        doc = {key: doc}
    return doc


UNDECODABLE = [
    pytest.param(b'{"k": "caf\xe9"}', "not UTF-8 text (byte 10)", id="latin-1"),
    pytest.param(b"[" * 100000 + b"]" * 100000, "JSON nested too deeply", id="lists-100000-deep"),
    pytest.param(b'{"k":' * 100000 + b"1" + b"}" * 100000, "JSON nested too deeply", id="objects-100000-deep"),
]


@pytest.mark.parametrize("content,problem", UNDECODABLE)
def test_metadata_that_cannot_be_decoded_is_one_line_naming_it_and_nothing_is_written(oac, sandbox, content, problem):
    """Issue 12 defect 9: bytes that are not UTF-8 and JSON nested deeper than the parser goes were tracebacks."""
    good = oac.metadata("good.json", {"k": "v"})
    oac.template("etc/a", "{{k}}")
    assert oac.render("-m", good).returncode == 0
    oac.template("etc/b", "new {{k}}")
    bad = sandbox.path("cache", "bad.json")
    bad.write_bytes(content)
    before = oac.snapshot()
    expected = "Could not parse metadata file: %s: %s" % (bad, problem)
    assert one_error_line(oac.render("-m", good, str(bad))) == expected
    assert oac.snapshot() == before
    assert one_error_line(key(oac, "k", "-m", good, str(bad))) == expected
    listfile = sandbox.path("cache", "os_config_files.json")
    listfile.write_bytes(content)  # the list file is read the same way
    assert one_error_line(key(oac, "k")) == "Could not parse list file: %s: %s" % (listfile, problem)


def test_metadata_that_is_not_a_regular_file_is_one_line_not_a_hang(oac, sandbox):
    fifo = sandbox.path("cache", "fifo.json")
    os.mkfifo(fifo)
    r = key(oac, "k", "-m", str(fifo), timeout=20)
    assert one_error_line(r) == "Could not open %s for reading. not a regular file" % fifo


def test_deep_documents_merge_as_deep_as_the_parser_reads_them():
    """Python 3.12+ parse JSON deeper than Python code may recurse (issue 12 defect 9): the merge does not recurse."""
    depth = 20000
    merged = deep_merge(nested(depth), nested(depth, leaf=2))
    for _ in range(depth):
        merged = merged["a"]
    assert merged == 2


def test_fallback_files_are_read_only_when_no_main_file_exists(oac):
    fb = oac.metadata("fallback.json", {"who": "fallback", "only_fb": 1})
    main = oac.metadata("main.json", {"who": "main"})
    r = key(oac, "only_fb", "--fallback-metadata", fb, env={"OS_CONFIG_FILES": main})
    assert r.returncode == 1  # not merged below the main files (SPEC §5.9.27)
    r = key(oac, "who", "--fallback-metadata", fb, env={"OS_CONFIG_FILES": "/missing.json"})
    assert r.stdout == "fallback\n"
    r = key(oac, "who", "--fallback-metadata", env={"OS_CONFIG_FILES": "/missing.json"})
    assert r.returncode == 1


def test_merge_is_deep_and_replaces_lists_and_mixed_kinds():
    merged = deep_merge(deep_merge({}, {"a": {"x": 1, "y": 2}, "l": [1], "s": {"k": 1}}),
                        {"a": {"x": 9}, "l": [2], "s": "scalar"})
    assert merged == {"a": {"x": 9, "y": 2}, "l": [2], "s": "scalar"}
    assert deep_merge({"s": "scalar"}, {"s": {"k": 1}}) == {"s": {"k": 1}}


@pytest.mark.parametrize("dotted,expected", [
    ("a.b", "c"), ("l.0", 1), ("l.-1", {"k": None}), ("l.5", MISSING), ("l.x", MISSING),
    ("a.b.c", MISSING), ("n", MISSING), ("l.-1.k", MISSING), ("missing", MISSING), ("num.x", MISSING),
])
def test_key_lookup_walks_objects_and_lists(dotted, expected):
    config = {"a": {"b": "c"}, "l": [1, 2, {"k": None}], "n": None, "num": 5}
    assert lookup(config, dotted) == expected


def test_subhash_renders_against_a_sub_object(oac):
    oac.template("etc/x", "{{y}}")
    md = oac.metadata("m.json", {"a": {"b": {"y": "deep"}}, "y": "top"})
    assert oac.render("-m", md, "--subhash", "a.b").returncode == 0
    assert oac.output("etc/x") == "deep"
    r = oac.render("-m", md, "-s", "a.b.y")
    assert r.returncode == 1
    assert "key 'a.b.y' does not correspond to a hash in the metadata file" in r.stderr
    # --subhash does not affect --key
    assert key(oac, "y", "-m", md, "-s", "a.b").stdout == "top\n"
    assert os.path.exists(oac.out / "etc" / "x")


def test_deprecated_second_list_file_only_behind_the_builtin_default(monkeypatch, tmp_path, caplog):
    from os_apply_config import metadata

    new, old = tmp_path / "new.json", tmp_path / "old.json"
    monkeypatch.setattr(metadata, "DEFAULT_LIST_FILE", str(new))
    monkeypatch.setattr(metadata, "OLD_LIST_FILE", str(old))
    old.write_text('["/x.json"]')
    assert metadata.main_list([], {}, str(new)) == ["/x.json"]
    assert "DEPRECATED: falling back to %s" % old in caplog.text
    assert metadata.main_list([], {}, str(tmp_path / "redirected.json")) == []
    new.write_text('["/y.json"]')
    assert metadata.main_list([], {}, str(new)) == ["/y.json"]


@pytest.mark.parametrize("mode", [(), ("--validate",), ("--key", "k", "--key-default", "d")])
def test_a_file_named_with_m_that_does_not_exist_is_an_error_and_nothing_is_rendered(oac, sandbox, mode):
    oac.template("etc/x.conf", "k={{k}}\n")
    good = oac.metadata("good.json", {"k": "v"})
    typo = str(sandbox.path("cache", "nope.json"))
    r = oac.render(*mode, "-m", good, typo)
    assert one_error_line(r) == "metadata file %s (named with -m/--metadata) does not exist" % typo
    assert r.stdout == "" and list(oac.out.iterdir()) == []


def test_missing_files_from_os_config_files_and_the_fallback_list_stay_optional(oac, sandbox):
    oac.template("etc/x.conf", "k={{k}}\n")
    good = oac.metadata("good.json", {"k": "v"})
    absent = str(sandbox.path("cache", "absent.json"))
    r = oac.render(env={"OS_CONFIG_FILES": "%s:%s" % (absent, good)})
    assert r.returncode == 0, r.stderr
    r = oac.run("-o", str(oac.out), "--fallback-metadata", absent, good, env={"OS_CONFIG_FILES": absent})
    assert r.returncode == 0, r.stderr
    assert oac.output("etc/x.conf") == "k=v\n"
