"""Template rendering: mustache (SPEC §4.6), Jinja2 (§12.12), executable templates (§4.7), errors (§12.13.2)."""
from __future__ import annotations

import json
import os
import re

import pytest

from tests.os_apply_config.conftest import one_error_line
from tests.support.sandbox import PLANTED_SECRETS


@pytest.fixture
def md(oac):
    return oac.metadata("m.json", {
        "s": "a<b>&\"c'", "i": 5, "f": 1.0, "t": True, "no": False, "n": None, "zero": 0, "empty": "",
        "o": {"k": "v", "u": "\u00e9"}, "l": [1, "x", {"k": "in-list"}], "el": [], "eo": {},
        "nested": {"a": {"b": {"c": "deep"}}}, "dotted.key": "unreachable",
        "deployments": [{"name": "d1", "config": {"x": 1}}],
    })


@pytest.mark.parametrize("template,expected", [
    ("{{s}}|{{{s}}}|{{&s}}", "a<b>&\"c'|a<b>&\"c'|a<b>&\"c'"),  # no HTML escaping
    ("{{i}} {{f}} {{t}} {{no}} {{n}}|", "5 1.0 true false |"),
    ("{{o}}", '{"k": "v", "u": "\\u00e9"}'),
    ("{{l}}", '[1, "x", {"k": "in-list"}]'),
    ("{{deployments}}", '[{"name": "d1", "config": {"x": 1}}]'),
    ("{{nested.a.b.c}} {{nested.a.x}}|{{l.0}}|{{dotted.key}}|", "deep |||"),
    ("{{#l}}[{{.}}]{{/l}}", '[1][x][{"k": "in-list"}]'),
    ("{{#o}}{{k}}{{/o}}", "v"),
    ("{{#t}}yes{{/t}}{{#i}}<{{.}}>{{/i}}", "yes<5>"),
    ("{{#no}}a{{/no}}{{#n}}b{{/n}}{{#zero}}c{{/zero}}{{#empty}}d{{/empty}}{{#el}}e{{/el}}{{#eo}}f{{/eo}}"
     "{{#missing}}g{{/missing}}", ""),
    ("{{^no}}a{{/no}}{{^n}}b{{/n}}{{^zero}}c{{/zero}}{{^empty}}d{{/empty}}{{^el}}e{{/el}}{{^eo}}f{{/eo}}"
     "{{^missing}}g{{/missing}}{{^t}}X{{/t}}{{^l}}Y{{/l}}", "abcdefg"),
    ("{{#nested.a}}{{b.c}}{{s}}{{/nested.a}}", "deepa<b>&\"c'"),  # context stack lookups
    ("a\n  {{#l}}\n  - {{.}}\n  {{/l}}\nb\n", "a\n  - 1\n  - x\n  - {\"k\": \"in-list\"}\nb\n"),  # standalone lines
    ("x {{#t}} \ny{{/t}} \n", "x  \ny \n"),
    ("{{! a comment }}c{{=<% %>=}}<% s %>{{s}}", "ca<b>&\"c'{{s}}"),
    ("{{>no-such-partial}}end", "end"),
])
def test_mustache_semantics(oac, md, template, expected):
    oac.template("etc/t", template)
    r = oac.render("-m", md)
    assert r.returncode == 0, r.stderr
    assert oac.output("etc/t") == expected


def test_missing_keys_render_empty_and_are_reported_once_per_template_and_key(oac, md):
    oac.template("etc/a", "{{missing}} {{missing}} {{o.nope}}\n{{#l}}{{alsomissing}}{{/l}}")
    oac.template("etc/b", "{{missing}}{{^absent}}conditional sections are not reported{{/absent}}")
    r = oac.render("-m", md)
    assert r.returncode == 0
    assert oac.output("etc/a") == "  \n"
    warnings = [l for l in r.stderr.splitlines() if "[WARNING]" in l]
    assert len(warnings) == 4
    assert any("etc/a: key 'missing' not found" in w for w in warnings)
    assert any("etc/a: key 'o.nope' not found" in w for w in warnings)
    assert any("etc/a: key 'alsomissing' not found" in w for w in warnings)
    assert any("etc/b: key 'missing' not found" in w for w in warnings)


def test_absent_deployments_render_an_empty_file(oac):
    oac.template("var/run/heat-config/heat-config", "{{deployments}}")
    md = oac.metadata("m.json", {"other": 1})
    assert oac.render("-m", md).returncode == 0
    assert oac.output("var/run/heat-config/heat-config") == ""


@pytest.mark.parametrize("template,line,words", [
    ("ok\n{{#a}}\nnever closed\n", 2, "unclosed section {{#a}}"),
    # pystache names the last tag it parsed ({{#port}}); the open one is {{#hello}}
    ("{{#hello}}\nport={{port}}\n", 1, "unclosed section {{#hello}}"),
    ("x\n{{#outer}}{{^inner}}\n{{v}}\n", 2, "unclosed section {{#outer}}"),
    ("x\ny\n{{#a}}{{/b}}", 3, "Section end tag mismatch"),
])
def test_section_errors_name_the_template_and_line_and_nothing_is_written(oac, md, template, line, words):
    oac.template("etc/good", "{{s}}")
    bad = oac.template("etc/zz-bad", template)
    r = oac.render("-m", md)
    assert r.returncode == 1
    assert re.search(r"\[ERROR\] %s:%d: .*%s" % (re.escape(str(bad)), line, re.escape(words)), r.stderr)
    assert list(oac.out.iterdir()) == []  # the good template was not written either


def test_validate_names_the_section_left_open_not_the_last_tag(oac, md):
    bad = oac.template("etc/hello.conf", "{{#hello}}\nport={{port}}\n")
    r = oac.render("--validate", "-m", md)
    assert r.returncode == 1
    assert "[ERROR] %s:1: unclosed section {{#hello}}" % bad in r.stderr
    assert "{{#port}}" not in r.stderr


def test_crlf_templates_are_read_with_universal_newlines(oac, md):
    (oac.templates / "etc").mkdir(parents=True)
    (oac.templates / "etc" / "crlf").write_bytes(b"a={{i}}\r\nb\r\n")
    assert oac.render("-m", md).returncode == 0
    assert (oac.out / "etc" / "crlf").read_bytes() == b"a=5\nb\n"


class TestJinja:
    def test_name_j2_renders_to_name_with_the_metadata(self, oac, md):
        oac.template("etc/app.conf.j2", "k={{ o.k }}\n{% for x in l %}{{ x }};{% endfor %}\n", oac="mode: 0600\n")
        r = oac.render("-m", md)
        assert r.returncode == 0, r.stderr
        assert oac.output("etc/app.conf") == "k=v\n1;x;{'k': 'in-list'};\n"
        assert (oac.out / "etc" / "app.conf").stat().st_mode & 0o777 == 0o600
        assert not (oac.out / "etc" / "app.conf.j2").exists()

    def test_undefined_is_an_error_naming_file_line_and_name(self, oac, md):
        oac.template("etc/good", "{{s}}")
        bad = oac.template("etc/strict.j2", "line1\nline2 {{ o.k }}\nline3 {{ nothere }}\n")
        r = oac.render("-m", md)
        assert r.returncode == 1
        assert re.search(r"%s:3: undefined: 'nothere' is undefined" % re.escape(str(bad)), r.stderr)
        assert list(oac.out.iterdir()) == []

    def test_syntax_error_names_the_line(self, oac, md):
        bad = oac.template("etc/syntax.j2", "a\n{% if %}\n")
        r = oac.render("-m", md)
        assert r.returncode == 1 and re.search(r"%s:2: " % re.escape(str(bad)), r.stderr)

    def test_sandboxed(self, oac, md):
        oac.template("etc/evil.j2", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
        r = oac.render("-m", md)
        assert r.returncode == 1 and "unsafe" in r.stderr.lower()

    @pytest.mark.parametrize("text,line,problem", [
        ("ok\n{{ i + s }}\n", 2, "TypeError: unsupported operand type(s) for +: 'int' and 'str'"),
        ("a\nb\n{{ i / zero }}\n", 3, "ZeroDivisionError: division by zero"),
        ("{% macro f(n) %}\n{{ f(n) }}\n{% endmacro %}\n{{ f(1) }}\n", 2, "RecursionError: maximum recursion depth"),
    ], ids=["type", "zero-division", "recursive-macro"])
    def test_runtime_errors_are_one_line_naming_template_and_line(self, oac, md, text, line, problem):
        """Issue 12 defect 9: a template's own failing code printed a whole traceback (1,809 lines for recursion)."""
        oac.template("etc/a", "{{s}}")
        assert oac.render("-m", md).returncode == 0
        oac.template("etc/a", "{{i}}")
        bad = oac.template("etc/bad.j2", text)
        before = oac.snapshot()
        assert one_error_line(oac.render("-m", md)).startswith("%s:%d: %s" % (bad, line, problem))
        assert oac.snapshot() == before  # nothing written, the good template's change included

    def test_includes_are_relative_to_the_root_and_a_fifo_is_not_waited_on(self, oac, md):
        oac.template("etc/app.conf.j2", "{% include 'shared/head.j2' %}k={{ o.k }}\n")
        oac.template("shared/head.j2", "# {{ i }}\n")
        assert oac.render("-m", md).returncode == 0
        assert oac.output("etc/app.conf") == "# 5\nk=v\n"
        oac.template("etc/climb.j2", "{% include '../outside.j2' %}")
        assert "climb.j2" in one_error_line(oac.render("-m", md))
        (oac.templates / "etc" / "climb.j2").unlink()
        os.mkfifo(oac.templates / "shared" / "pipe.j2")
        before = oac.snapshot()
        error = one_error_line(oac.render("-m", md, timeout=10))  # Jinja2's loader takes only regular files
        assert error.startswith("%s: " % (oac.templates / "shared" / "pipe.j2")) and "not found" in error
        assert oac.snapshot() == before

    def test_name_clash_with_a_mustache_template_is_an_error(self, oac, md):
        oac.template("etc/x", "{{s}}")
        oac.template("etc/x.j2", "{{ s }}")
        r = oac.render("-m", md)
        assert r.returncode == 1 and "renders to the same file" in r.stderr


class TestExecutable:
    def test_stdout_is_the_body_and_config_comes_on_stdin(self, oac, md):
        oac.template("etc/gen", "#!/usr/bin/env python3\nimport json,sys\nc=json.load(sys.stdin)\n"
                                "print('i=%d' % c['i'])\nprint('diag', file=sys.stderr)\n", mode=0o755)
        r = oac.render("-m", md)
        assert r.returncode == 0
        assert oac.output("etc/gen") == "i=5\n"
        assert re.search(r"\[INFO\] .*etc/gen: diag", r.stderr)  # stderr is logged, not dropped (§5.9.30)

    def test_subhash_is_what_goes_on_stdin(self, oac, md):
        oac.template("etc/gen", "#!/bin/sh\ncat\n", mode=0o755)
        assert oac.render("-m", md, "-s", "nested.a").returncode == 0
        assert json.loads(oac.output("etc/gen")) == {"b": {"c": "deep"}}

    def test_failure_shows_the_output_as_text_and_writes_nothing(self, oac, md):
        oac.template("etc/good", "{{s}}")
        bad = oac.template("etc/gen", "#!/bin/sh\necho 'partial out'\necho 'it broke' >&2\nexit 3\n", mode=0o755)
        r = oac.render("-m", md)
        assert r.returncode == 1
        assert "%s: config script failed with exit status 3; output:\npartial out\nit broke" % bad in r.stderr
        assert "b'" not in r.stderr
        assert list(oac.out.iterdir()) == []


def test_secrets_in_metadata_are_not_logged(oac):
    md = oac.metadata("m.json", {"password": PLANTED_SECRETS[0]})
    oac.template("etc/secret.conf", "password={{password}}\n{{missing}}")
    r = oac.render("-m", md)  # run_tool checks stderr for planted secrets
    assert r.returncode == 0
    assert oac.output("etc/secret.conf").startswith("password=" + PLANTED_SECRETS[0])
