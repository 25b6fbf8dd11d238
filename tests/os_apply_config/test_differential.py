"""Byte-for-byte comparison with os-apply-config 14.1.0 (and os-refresh-config 14.1.0) installed from PyPI.

The original runs its real code from its own virtualenv, through tests.support.originals.OAC_SHIM
(it would append to /var/log/os-apply-config.log as root); nothing else of it is changed.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.originals import orc_oac_originals, original_oac_argv

METADATA = {
    "s": "plain", "html": "<a href=\"x\">&amp;</a> 'q'", "uni": "caf\u00e9 \u2603", "i": 42, "neg": -3, "f": 1.5,
    "big": 12345678901234567890, "exp": 1e100, "t": True, "no": False, "n": None, "zero": 0, "empty": "",
    "o": {"k": "v", "nested": {"deep": {"x": "X"}}, "l": [1, 2]}, "l": [1, "two", {"k": "three"}, [4], None, True],
    "people": [{"name": "ann", "tags": ["a", "b"]}, {"name": "bob", "tags": []}, {"name": "cy"}],
    "el": [], "eo": {}, "multi": "line1\nline2\n", "dotted.key": "x",
    "deployments": [{"name": "d1", "group": "script", "inputs": [{"name": "i", "value": "\u00fc"}]}],
    "os-collect-config": {"command": "os-refresh-config", "polling_interval": 30, "collectors": ["heat", "local"],
                          "heat": {"auth_url": "http://ks/v3", "user_id": "u", "password": None}},
}

CORPUS = {
    "vars": "{{s}} {{{s}}} {{&s}} {{ s }} {{html}} {{{html}}} {{uni}}\n",
    "numbers": "{{i}} {{neg}} {{f}} {{big}} {{exp}} {{zero}}\n",
    "bools-null": "[{{t}}] [{{no}}] [{{n}}] [{{empty}}]\n",
    "json": "{{o}}\n{{l}}\n{{people}}\n{{el}} {{eo}}\n{{deployments}}",
    "deployments": "{{deployments}}",
    "dotted": "{{o.k}} {{o.nested.deep.x}} {{o.nested.missing}} {{o.l}} {{l.0}} {{dotted.key}} {{a.b.c}}\n",
    "missing": "before {{nope}} {{nope.deeper}} after\n",
    "sections": "{{#people}}- {{name}}{{#tags}} #{{.}}{{/tags}}{{^tags}} (no tags){{/tags}}\n{{/people}}",
    "section-scalars": "{{#t}}T{{/t}}{{#i}}<{{.}}>{{/i}}{{#s}}[{{.}}]{{/s}}{{#o}}{{k}}{{/o}}{{#l}}({{.}}){{/l}}\n",
    "falsy": "{{#no}}1{{/no}}{{#n}}2{{/n}}{{#zero}}3{{/zero}}{{#empty}}4{{/empty}}{{#el}}5{{/el}}{{#eo}}6{{/eo}}"
             "{{#nope}}7{{/nope}}|{{^no}}1{{/no}}{{^n}}2{{/n}}{{^zero}}3{{/zero}}{{^empty}}4{{/empty}}{{^el}}5{{/el}}"
             "{{^eo}}6{{/eo}}{{^nope}}7{{/nope}}{{^t}}8{{/t}}{{^l}}9{{/l}}\n",
    "context-stack": "{{#o}}{{#nested}}{{#deep}}{{x}}-{{k}}-{{s}}{{/deep}}{{/nested}}{{/o}}\n",
    "standalone": "a\n  {{#people}}\n  * {{name}}\n  {{/people}}\n{{! standalone comment }}\nb\n  {{^el}}  \nc\n{{/el}}\n",
    "inline-ws": " {{#t}} x {{/t}} \n\t{{#t}}\ty\n\t{{/t}}\nend",
    "comments-delims": "{{! comment with {{braces}} }}x{{=<% %>=}}<%s%> {{s}} <%={{ }}=%>{{s}}\n",
    "partial": "{{>nothing-here}}|\n",
    "multiline-value": "{{multi}}|{{#multi}}[{{.}}]{{/multi}}\n",
    "occ-conf": "[DEFAULT]\n{{^os-collect-config.command}}command = os-refresh-config\n{{/os-collect-config.command}}"
                "{{#os-collect-config}}{{#command}}command = {{command}}\n{{/command}}"
                "{{#polling_interval}}polling_interval = {{polling_interval}}\n{{/polling_interval}}"
                "{{#collectors}}collectors = {{.}}\n{{/collectors}}"
                "{{#heat}}\n[heat]\nauth_url = {{auth_url}}\nuser_id = {{user_id}}\npassword = {{password}}\n"
                "{{/heat}}{{/os-collect-config}}",
    "no-tags": "just text, no tags at all\n\n",
    "empty-file": "",
    "crlf": "a={{s}}\r\nb\r\n",
    "unicode-template": "\u00e9t\u00e9 {{uni}} \u2603\n",
}

@pytest.fixture(scope="session")
def originals():
    return orc_oac_originals()


@pytest.fixture
def original_oac(originals, sandbox):
    def run(*args: str, env=None):
        merged = dict(sandbox.env)
        merged.update(env or {})
        return subprocess.run([*original_oac_argv(originals), *args], env=merged, capture_output=True,
                              text=True, timeout=120, cwd=str(sandbox.root))

    return run


def _tree(root):
    """Every file under ``root``: only rendered ones (our render cache is kept outside the tree)."""
    out = {}
    for current, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(current, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_mustache_corpus_renders_byte_for_byte_like_the_original(oac, original_oac, sandbox):
    for name, text in CORPUS.items():
        path = oac.templates / "etc" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    md = oac.metadata("m.json", METADATA)
    theirs_root = sandbox.path("out-original")
    theirs_root.mkdir()
    theirs = original_oac("-t", str(oac.templates), "-o", str(theirs_root), "-m", md, "--fallback-metadata")
    assert theirs.returncode == 0, theirs.stderr
    ours = oac.render("-m", md)
    assert ours.returncode == 0, ours.stderr
    expected, got = _tree(theirs_root), _tree(oac.out)
    assert sorted(got) == sorted(expected) == sorted("etc/" + n for n in CORPUS)
    for name in expected:
        assert got[name] == expected[name], name


def test_subhash_and_executable_templates_match_the_original(oac, original_oac, sandbox):
    oac.template("etc/sub", "{{x}} {{nope}}\n")
    oac.template("etc/exec", "#!/bin/sh\necho generated; cat; echo\n", mode=0o755)
    md = oac.metadata("m.json", METADATA)
    theirs_root = sandbox.path("out-original")
    theirs_root.mkdir()
    args = ("-m", md, "--fallback-metadata", "--subhash", "o.nested.deep")
    assert original_oac("-t", str(oac.templates), "-o", str(theirs_root), *args).returncode == 0
    assert oac.render(*args).returncode == 0
    assert _tree(oac.out) == _tree(theirs_root)


KEY_CASES = [
    ("s", "default"), ("i", "int"), ("i", "default"), ("t", "default"), ("no", "default"), ("o", "raw"),
    ("l", "raw"), ("l.1", "default"), ("l.-1", "default"), ("l.2.k", "raw"), ("people.0.name", "username"),
    ("uni", "raw"), ("multi", "raw"), ("o.nested", "raw"), ("big", "int"), ("neg", "raw"),
]


@pytest.mark.parametrize("key,type_", KEY_CASES)
def test_key_output_matches_the_original(oac, original_oac, key, type_):
    md = oac.metadata("m.json", METADATA)
    args = ("--key", key, "--type", type_, "-m", md, "--fallback-metadata")
    theirs, ours = original_oac(*args), oac.run(*args)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (0, theirs.stdout)


@pytest.mark.parametrize("key", ["nope", "n", "l.9", "s.x", "l.x"])
def test_missing_key_and_default_match_the_original(oac, original_oac, key):
    md = oac.metadata("m.json", METADATA)
    for extra in ((), ("--key-default", "dflt"), ("--key-default", "")):
        args = ("--key", key, "-m", md, "--fallback-metadata", *extra)
        theirs, ours = original_oac(*args), oac.run(*args)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


@pytest.mark.parametrize("key", ["t", "no", "s", "nope", "n", "i", "l.5"])
def test_boolean_key_matches_the_original(oac, original_oac, key):
    md = oac.metadata("m.json", METADATA)
    args = ("--boolean-key", key, "-m", md, "--fallback-metadata")
    assert oac.run(*args).returncode == original_oac(*args).returncode


def test_metadata_sources_match_the_original(oac, original_oac, sandbox):
    a = oac.metadata("a.json", {"v": {"x": 1, "y": 2}, "w": "a"})
    b = oac.metadata("b.json", {"v": {"x": 9}, "w": [1]})
    list_file = sandbox.path("cache", "os_config_files.json")
    list_file.write_text(json.dumps([b, a]))
    for env in ({"OS_CONFIG_FILES": "%s:%s" % (a, b)}, {"OS_CONFIG_FILES": ":%s::/missing" % b}, {}):
        for k in ("v", "w"):
            args = ("--key", k, "--type", "raw", "--fallback-metadata")
            theirs, ours = original_oac(*args, env=env), oac.run(*args, env=env)
            assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), (env, k)


def test_orc_print_options_match_the_original(run_tool, originals, sandbox):
    for args in (["--print-base"], ["--print-phases"]):
        theirs = run_tool(str(originals / "os-refresh-config"), args)
        ours = run_tool("os-refresh-config", args)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)
