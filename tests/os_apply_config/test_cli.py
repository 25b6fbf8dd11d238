"""os-apply-config options, modes, --key/--type/--boolean-key, logging and exit statuses (SPEC §4.1, §4.10-§4.13)."""
from __future__ import annotations

import re

import pytest

from os_apply_config.cli import default_templates


@pytest.fixture
def md(oac):
    return oac.metadata("m.json", {
        "s": "abc", "dotted": "host-1.example.com", "i": 5, "f": 1.5, "t": True, "no": False,
        "o": {"k": "v"}, "l": [1, "x"], "n": None, "ip": "10.0.0.1/24", "strtrue": "true",
        "dsn": "mysql://user:pw@host/db?charset=utf8", "user": "nova-api",
        "swift": "r1z1-10.0.0.1:%PORT%/sda", "nl": "line\n",
    })


def test_print_templates_and_version(oac, sandbox):
    r = oac.run("--print-templates")
    assert (r.returncode, r.stdout, r.stderr) == (0, "%s\n" % oac.templates, "")
    assert oac.run("--print-templates", "-t", "/x/y").stdout == "/x/y\n"
    r = oac.run("--version")
    assert r.returncode == 0 and re.match(r"os-config-agents \d+\.\d+", r.stdout)


def test_legacy_alias_behaves_the_same(oac, run_tool, md):
    r = run_tool("os-config-applier", ["--key", "s", "-m", md])
    assert (r.returncode, r.stdout) == (0, "abc\n")


def test_default_template_root_rules(tmp_path, capsys):
    default, legacy1, legacy2 = tmp_path / "usr", tmp_path / "opt1", tmp_path / "opt2"
    kwargs = dict(environ={}, default=str(default), legacy=(str(legacy1), str(legacy2)))
    assert default_templates(**kwargs) == str(default)
    legacy2.mkdir()
    assert default_templates(**kwargs) == str(legacy2)
    legacy1.mkdir()
    assert default_templates(**kwargs) == str(legacy1)
    assert "deprecated" in capsys.readouterr().err
    default.mkdir()
    assert default_templates(**kwargs) == str(default)
    assert default_templates(environ={"OS_CONFIG_APPLIER_TEMPLATES": ""}, default=str(default)) == ""


@pytest.mark.parametrize("k,args,out", [
    ("s", [], "abc"), ("i", ["--type", "int"], "5"), ("t", [], "true"), ("no", [], "false"),
    ("o", ["--type", "raw"], '{"k": "v"}'), ("l", ["--type", "raw"], '[1, "x"]'), ("l.1", [], "x"),
    ("f", [], "1.5"), ("dotted", [], "host-1.example.com"),  # default accepts dots and dashes (§5.9.28)
    ("ip", ["--type", "netaddress"], "10.0.0.1/24"), ("ip", ["--type", "netdevice"], "10.0.0.1/24"),
    ("dsn", ["--type", "dsn"], "mysql://user:pw@host/db?charset=utf8"), ("user", ["--type", "username"], "nova-api"),
    ("swift", ["--type", "swiftdevices"], "r1z1-10.0.0.1:%PORT%/sda"), ("nl", [], "line\n"),
])
def test_key_prints_values(oac, md, k, args, out):
    r = oac.run("--key", k, "-m", md, *args)
    assert (r.returncode, r.stdout) == (0, out + "\n"), r.stderr


@pytest.mark.parametrize("k,type_", [
    ("s", "int"), ("o", "default"), ("ip", "default"), ("s", "dsn"), ("dotted", "username"), ("s", "swiftdevices"),
    ("l", "netaddress"),
])
def test_type_mismatch_is_one_error_line(oac, md, k, type_):
    r = oac.run("--key", k, "-m", md, "--type", type_)
    assert r.returncode == 1 and r.stdout == ""
    assert re.search(r"\[ERROR\] cannot interpret value '.*' as type %s" % type_, r.stderr)
    assert "Traceback" not in r.stderr


def test_unknown_type_is_a_usage_error_not_a_traceback(oac, md):
    r = oac.run("--key", "s", "-m", md, "--type", "bogus")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "bogus" in r.stderr


def test_missing_key_and_key_default(oac, md):
    r = oac.run("--key", "nope", "-m", md)
    assert r.returncode == 1 and "key nope does not exist in %s" % md in r.stderr
    for k in ("nope", "n", "l.7", "s.x"):
        r = oac.run("--key", k, "-m", md, "--key-default", "fallback value!", "--type", "int")
        assert (r.returncode, r.stdout) == (0, "fallback value!\n")  # not type-checked
    assert oac.run("--key", "nope", "-m", md, "--key-default", "").stdout == "\n"


@pytest.mark.parametrize("k,status", [("t", 0), ("no", 1), ("strtrue", 255), ("nope", 255), ("i", 255), ("n", 255)])
def test_boolean_key_exit_statuses(oac, md, k, status):
    r = oac.run("--boolean-key", k, "-m", md)
    assert (r.returncode, r.stdout) == (status, "")


def test_key_wins_over_boolean_key_with_a_warning(oac, md):
    r = oac.run("--key", "s", "--boolean-key", "no", "-m", md)
    assert (r.returncode, r.stdout) == (0, "abc\n")
    assert "--boolean-key ignored" in r.stderr


def test_print_templates_wins_over_everything(oac, md):
    r = oac.run("--print-templates", "--key", "s", "-m", md)
    assert r.stdout == "%s\n" % oac.templates


def test_usage_error_exits_2(oac):
    assert oac.run("--no-such-option").returncode == 2
    assert oac.run("--default-mode", "999").returncode == 2


def test_log_format_and_redirectable_log_file(oac, md):
    oac.template("etc/x", "{{s}}")
    r = oac.render("-m", md)
    assert r.returncode == 0
    line = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] \(os-apply-config\) \[INFO\] "  # SPEC §12.17's one shape
    assert re.search(line + "writing %s/etc/x" % re.escape(str(oac.out)), r.stderr)
    assert re.search(line + "success$", r.stderr.strip())
    assert oac.log_file.read_text() == r.stderr
    r = oac.render("-m", md, env={"OS_APPLY_CONFIG_LOG_FILE": ""})
    assert r.returncode == 0 and oac.log_file.read_text().count("success") == 1


def test_missing_template_root(oac, md, sandbox):
    missing = str(sandbox.path("no-templates"))
    r = oac.render("-m", md, env={"OS_CONFIG_APPLIER_TEMPLATES": missing})
    assert r.returncode == 0 and "does not exist; nothing to render" in r.stderr and "success" in r.stderr
    r = oac.render("-m", md, "-t", missing)  # given explicitly: a mistake (§5.9.27)
    assert r.returncode == 1 and "template root %s is not a directory" % missing in r.stderr


def test_validate_renders_everything_but_writes_nothing(oac, md):
    ran = oac.sandbox.path("run", "exec-ran")
    oac.template("etc/plain", "{{s}}")
    oac.template("etc/exec", "#!/bin/sh\ntouch %s\necho generated\n" % ran, mode=0o755)
    r = oac.render("-m", md, "--validate")
    assert r.returncode == 0 and ran.exists()
    assert list(oac.out.iterdir()) == []
    assert [l for l in r.stderr.splitlines() if "[INFO]" in l][-1].endswith("success")
    oac.template("etc/broken", "{{#a}}")
    assert oac.render("-m", md, "-v").returncode == 1


def test_log_file_goes_to_var_log_only_for_roots_real_renders(monkeypatch):
    from os_apply_config import cli

    monkeypatch.delenv(cli.LOG_FILE_ENV, raising=False)
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    assert cli._log_file("/", querying=False) == "/var/log/os-apply-config.log"
    assert cli._log_file("/", querying=True) is None
    assert cli._log_file("/tmp/out", querying=False) is None
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    assert cli._log_file("/", querying=False) is None
    monkeypatch.setenv(cli.LOG_FILE_ENV, "/tmp/x.log")
    assert cli._log_file("/tmp/out", querying=True) == "/tmp/x.log"
    monkeypatch.setenv(cli.LOG_FILE_ENV, "")
    assert cli._log_file("/", querying=False) is None
