"""Options and config files as oslo.config gave them to the original (SPEC §2.1, §2.2).

And clear one-line errors for configuration mistakes (SPEC §12.13.13).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from os_collect_config import cli
from os_collect_config.config import ConfigError, parse_ini


def parse(home: Path, *argv: str):
    return cli.parse(list(argv), home=str(home))


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_defaults(tmp_path):
    s = parse(tmp_path)
    assert s.command is None and s.cachedir == "/var/lib/os-collect-config"
    assert s.backup_cachedir == "/var/run/os-collect-config"
    assert s.collectors == ["heat_local", "ec2", "cfn", "heat", "request", "local", "zaqar"]
    assert (s.one_time, s.force, s.print_only, s.print_cachedir) == (False, False, False, False)
    assert (s.min_polling_interval, s.polling_interval, s.splay) == (1.0, 30.0, 0.0)
    assert s.deployment_key == ["deployments"] and s.command_timeout is None
    assert s.groups["heat_local"]["path"] == ["/var/lib/heat-cfntools/cfn-init-data"]
    assert s.groups["local"]["path"] == ["/var/lib/os-collect-config/local-data"]
    assert s.groups["ec2"] == {"metadata_url": "http://169.254.169.254/latest/meta-data", "timeout": 10.0,
                               "full_refresh_interval": 300.0}
    assert s.groups["keystone"] == {"cache_dir": None, "cache_ttl": 1800}


def test_file_keys_use_underscores_and_dashed_keys_are_ignored(tmp_path):
    conf = write(tmp_path / "occ.conf", "[DEFAULT]\npolling_interval = 7\nmin-polling-interval = 5\n"
                 "print = true\nprint_only = yes\nbackup_cachedir = /b\n\n[ec2]\nmetadata_url = http://h/x\n"
                 "[request]\nmetadata-url = http://ignored/\n")
    s = parse(tmp_path, "--config-file", str(conf))
    assert s.polling_interval == 7.0 and s.min_polling_interval == 1.0
    assert s.print_only is True and s.backup_cachedir == "/b"
    assert s.groups["ec2"]["metadata_url"] == "http://h/x" and s.groups["request"]["metadata_url"] is None


def test_cli_spellings_negations_and_short_forms(tmp_path):
    s = parse(tmp_path, "-c", "run-it", "-i", "12", "--one-time", "--noone-time", "--print",
              "--heat_local-path", "/a", "--heat_local-path", "/b", "--ec2-timeout", "3.5", "--keystone-cache_dir",
              "/k", "--keystone-cache_ttl", "60", "--deployment-key", "x", "-d", "--logfile", "/tmp/l")
    assert s.command == "run-it" and s.polling_interval == 12.0 and s.one_time is False and s.print_only
    assert s.groups["heat_local"]["path"] == ["/a", "/b"] and s.groups["ec2"]["timeout"] == 3.5
    assert s.groups["keystone"] == {"cache_dir": "/k", "cache_ttl": 60}
    assert s.deployment_key == ["x"] and s.logging["debug"] and s.logging["log_file"] == "/tmp/l"


def test_every_oslo_log_option_is_accepted(tmp_path):
    s = parse(tmp_path, "--debug", "--log-file", "f", "--log-dir", "d", "--logdir", "d2", "--log-config-append",
              "x", "--log-config", "y", "--log-date-format", "%H", "--use-syslog", "--use-journal",
              "--syslog-log-facility", "LOG_LOCAL0", "--use-json", "--nouse-json")
    assert s.logging["log_dir"] == "d2" and s.logging["log_config_append"] == "y"
    assert s.logging["use_syslog"] and s.logging["use_journal"] and not s.logging["use_json"]


def test_use_stderr_is_file_only(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(tmp_path, "--use-stderr")
    assert exc.value.code == 2
    conf = write(tmp_path / "c.conf", "[DEFAULT]\nuse_stderr = false\n")
    assert parse(tmp_path, "--config-file", str(conf)).logging["use_stderr"] is False


def test_discovery_home_file_and_dir(tmp_path):
    write(tmp_path / "os-collect-config.conf", "[DEFAULT]\ncommand = from-home\nsplay = 1\n")
    write(tmp_path / "os-collect-config.conf.d" / "20-b.conf", "[DEFAULT]\nsplay = 3\n")
    write(tmp_path / "os-collect-config.conf.d" / "10-a.conf", "[DEFAULT]\nsplay = 2\ncommand = from-dir\n")
    write(tmp_path / "os-collect-config.conf.d" / "ignored.txt", "[DEFAULT]\nsplay = 9\n")
    s = parse(tmp_path)
    assert (s.command, s.splay) == ("from-dir", 3.0)
    assert s.config_files[0] == str(tmp_path / "os-collect-config.conf")
    assert parse(tmp_path, "--splay", "4").splay == 4.0


def test_config_file_repeat_order_and_position(tmp_path):
    a = write(tmp_path / "a.conf", "[DEFAULT]\ncommand = a\npolling_interval = 1\n")
    b = write(tmp_path / "b.conf", "[DEFAULT]\ncommand = b\n")
    assert parse(tmp_path, "--config-file", str(a), "--config-file", str(b)).command == "b"
    assert parse(tmp_path, "--config-file", str(b), "--config-file", str(a)).command == "a"
    # A file applies where its flag appears: it overrides the arguments before it only.
    assert parse(tmp_path, "-c", "cli", "--config-file", str(a)).command == "a"
    assert parse(tmp_path, "--config-file", str(a), "-c", "cli").command == "cli"


def test_multi_values_files_then_cli_and_positional_collectors_replace(tmp_path):
    conf = write(tmp_path / "c.conf", "[DEFAULT]\ncollectors = ec2\ncollectors = local\ndeployment_key = a\n"
                 "deployment_key = b\n[HEAT_LOCAL]\npath = /1\npath = /2\n")
    s = parse(tmp_path, "--heat_local-path", "/3", "--config-file", str(conf), "--deployment-key", "c")
    assert s.collectors == ["ec2", "local"] and s.collectors_explicit
    assert s.groups["heat_local"]["path"] == ["/1", "/2", "/3"]
    assert s.deployment_key == ["a", "b", "c"]
    assert parse(tmp_path, "--config-file", str(conf), "heat", "heat").collectors == ["heat", "heat"]


def test_booleans_in_any_spelling(tmp_path):
    for word, expected in [("TRUE", True), ("yes", True), ("On", True), ("1", True), ("false", False),
                           ("NO", False), ("off", False), ("0", False)]:
        conf = write(tmp_path / "b.conf", "[DEFAULT]\nforce = %s\n" % word)
        assert parse(tmp_path, "--config-file", str(conf)).force is expected


def test_ini_syntax_like_oslo(tmp_path):
    conf = write(tmp_path / "c.conf", "# comment\n; other\n[DEFAULT]\ncommand: \"quoted value\"\n"
                 "cachedir = '/x'\n[default]\ncommand = lower-case default is a group of its own\n"
                 "[unknown]\nfoo = bar\n[DEFAULT]\nbackup_cachedir = /first\n  continued\n")
    s = parse(tmp_path, "--config-file", str(conf))
    assert s.command == "quoted value" and s.cachedir == "/x" and s.backup_cachedir == "/first\ncontinued"


def test_oslo_dollar_substitution(tmp_path):
    conf = write(tmp_path / "c.conf", "[DEFAULT]\ncachedir = /base\nbackup_cachedir = $cachedir/bk\n"
                 "command = echo $$HOME \\$USER ${ec2.timeout}\n")
    s = parse(tmp_path, "--config-file", str(conf))
    assert s.backup_cachedir == "/base/bk" and s.command == "echo $HOME $USER 10.0"
    bad = write(tmp_path / "bad.conf", "[DEFAULT]\ncommand = echo $OS_CONFIG_FILES\n")
    with pytest.raises(ConfigError, match="no such option OS_CONFIG_FILES"):
        parse(tmp_path, "--config-file", str(bad))


@pytest.mark.parametrize("text,needle", [
    ("[DEFAULT]\npolling_interval = fast\n", ":2: [DEFAULT] polling_interval: expected a number"),
    ("[DEFAULT]\none_time = maybe\n", ":2: [DEFAULT] one_time: expected a boolean"),
    ("[ec2]\nmetadata_url = not-a-url\n", ":2: [ec2] metadata_url: expected a URL"),
    ("[keystone]\ncache_ttl = 1.5\n", "cache_ttl: expected an integer"),
    # issue 12 defect 11: a negative or non-finite number was taken as "no limit" (or broke the loop)
    ("[DEFAULT]\ncommand_timeout = -1\n", ":2: [DEFAULT] command_timeout: expected a finite number >= 0, got '-1'"),
    ("[DEFAULT]\ncommand_timeout = nan\n", ":2: [DEFAULT] command_timeout: expected a finite number >= 0, got 'nan'"),
    ("[DEFAULT]\npolling_interval = inf\n", ":2: [DEFAULT] polling_interval: expected a finite number >= 0"),
    ("[DEFAULT]\nsplay = -Infinity\n", ":2: [DEFAULT] splay: expected a finite number >= 0"),
    ("[ec2]\ntimeout = NaN\n", ":2: [ec2] timeout: expected a finite number >= 0, got 'NaN'"),
    ("[keystone]\ncache_ttl = -5\n", ":2: [keystone] cache_ttl: expected an integer >= 0, got '-5'"),
    ("[request]\nmetadata_url =\n", ":2: [request] metadata_url: expected a URL"),
    ("polling_interval = 3\n", ":1: assignment before any [section]"),
    ("[DEFAULT\n", ":1: invalid section header"),
    ("[DEFAULT]\njust words\n", ":2: no '=' or ':'"),
])
def test_bad_file_values_are_one_line_errors_naming_file_and_line(tmp_path, text, needle):
    conf = write(tmp_path / "bad.conf", text)
    with pytest.raises(ConfigError) as exc:
        parse(tmp_path, "--config-file", str(conf))
    message = str(exc.value)
    assert str(conf) in message and needle in message and "\n" not in message


def test_parse_ini_keeps_order_and_repeats(tmp_path):
    conf = write(tmp_path / "c.conf", "[DEFAULT]\ncollectors = a\ncollectors = b\n")
    assert [(v.key, v.value, v.lineno) for v in parse_ini(str(conf))] == [("collectors", "a", 2),
                                                                          ("collectors", "b", 3)]


# -- the real command ------------------------------------------------------------------------

def test_print_cachedir_happens_before_collector_validation(occ):
    res = occ("--print-cachedir", "no-such-collector")
    assert res.returncode == 0 and res.stdout == str(occ.cachedir) + "\n"


def test_version_and_help(occ):
    res = occ("--version")
    assert res.returncode == 0 and res.stdout.strip() == "os-config-agents 0.1.0"
    res = occ("--help")
    assert res.returncode == 0
    for flag in ("--heat_local-path", "--cfn-metadata-url", "--zaqar-use-websockets", "--keystone-cache_dir",
                 "--noone-time", "--command-timeout", "--log-config-append", "--request-metadata-url"):
        assert flag in res.stdout


@pytest.mark.parametrize("args,needle", [
    (["no-such"], "collectors (set at the command line): unknown collector 'no-such'"),
    (["config_drive"], "unknown collector 'config_drive'"),
    (["--config-file", "/nonexistent/occ.conf"], "--config-file /nonexistent/occ.conf: no such file"),
])
def test_configuration_mistakes_exit_1_with_one_line(occ, args, needle):
    res = occ(*args)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and needle in res.stderr and "Traceback" not in res.stderr


def test_unreadable_or_bad_config_file_names_file_and_line(occ, sandbox):
    conf = sandbox.write("etc/occ.conf", "[DEFAULT]\nmin_polling_interval = 1\nsplay = lots\n")
    res = occ("--config-file", str(conf), "--print")
    assert res.returncode == 1 and "%s:3: [DEFAULT] splay: expected a number" % conf in res.stderr
    assert "Traceback" not in res.stderr
    conf.write_bytes(b"[DEFAULT]\ncommand = \xff\xfe\n")
    res = occ("--config-file", str(conf), "--print")
    assert res.returncode == 1 and "cannot read config file %s" % conf in res.stderr


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_command_timeout_that_is_not_a_finite_number_of_seconds_is_refused(occ, sandbox, value):
    occ.write_local("x", {"v": 1})
    conf = sandbox.write("etc/occ.conf", "[DEFAULT]\ncommand_timeout = %s\n" % value)
    res = occ("--config-file", str(conf), "--one-time", "-c", "true", "local")
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "%s:2: [DEFAULT] command_timeout: expected a finite number >= 0, got '%s'" % (conf, value) in res.stderr
    assert not occ.cachedir.joinpath("x.json").exists()  # refused before anything ran
    res = occ("--command-timeout", value, "--one-time", "-c", "true", "local")
    assert res.returncode == 2 and "--command-timeout" in res.stderr and value in res.stderr


#: Seconds within which a run must end: a FIFO opened for reading waits for a writer for ever.
FIFO_DEADLINE = 30


def test_a_config_file_that_is_a_fifo_is_one_error_line(occ, sandbox):
    """Issue 12 defect 11: a FIFO given as, found as, or in a directory of config files blocked the agent."""
    fifo = sandbox.path("etc", "occ.conf")
    os.mkfifo(fifo)
    conf_d = sandbox.path("etc", "occ.d")
    conf_d.mkdir()
    os.mkfifo(conf_d / "10-pipe.conf")
    os.mkfifo(sandbox.path("home", "os-collect-config.conf"))  # found by discovery ($HOME)
    for args, named in ((["--config-file", str(fifo)], fifo),
                        (["--config-file", str(sandbox.write("etc/ok.conf", "[DEFAULT]\n")), "--config-dir",
                          str(conf_d)], conf_d / "10-pipe.conf"),
                        ([], sandbox.path("home", "os-collect-config.conf"))):
        res = occ(*args, "--print", "local", timeout=FIFO_DEADLINE)  # a hang fails here (TimeoutExpired)
        assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and "%s: not a regular file" % named in res.stderr, res.stderr


def test_local_path_that_is_a_file_is_a_config_error(occ, sandbox):
    afile = sandbox.write("lib/not-a-dir", "{}")
    res = occ("--local-path", str(afile), "local", "--print")
    assert res.returncode == 1 and "[local] path (set at --local-path): %s is a file" % afile in res.stderr
    conf = sandbox.write("etc/occ.conf", "[local]\npath = %s\n" % afile)
    res = occ("--config-file", str(conf), "local", "--print")
    assert res.returncode == 1 and "[local] path (set at %s:2): %s is a file" % (conf, afile) in res.stderr


def test_unknown_collector_in_a_file_names_the_file(occ, sandbox):
    conf = sandbox.write("etc/occ.conf", "[DEFAULT]\ncollectors = local\ncollectors = nope\n")
    res = occ("--config-file", str(conf), "--print")
    assert res.returncode == 1 and "collectors (set at %s:3): unknown collector 'nope'" % conf in res.stderr


def test_bad_url_or_number_on_the_command_line_is_a_usage_error(occ):
    res = occ("--request-metadata-url", "nohost", "--print")
    assert res.returncode == 2 and "expected a URL" in res.stderr
    res = occ("--polling-interval", "soon")
    assert res.returncode == 2 and "polling-interval" in res.stderr


def test_missing_cachedir_parent_is_one_line(occ, sandbox):
    res = occ("--cachedir", str(sandbox.path("nope", "cache")), "-c", "true", "--one-time", "local")
    assert res.returncode == 1 and "cachedir %s" % sandbox.path("nope", "cache") in res.stderr
    assert "Traceback" not in res.stderr


def test_secrets_on_command_line_and_readable_config_are_warned(occ, sandbox):
    from tests.support.sandbox import PLANTED_SECRETS

    conf = sandbox.write("etc/occ.conf", "[heat]\npassword = %s\n" % PLANTED_SECRETS[0], mode=0o644)
    res = occ("--config-file", str(conf), "--heat-password", PLANTED_SECRETS[0], "--print", "local")
    assert res.returncode == 0
    assert "--heat-password was given on the command line" in res.stderr
    assert "Config file %s holds a secret but other users can read it" % conf in res.stderr
    os.chmod(conf, 0o600)
    res = occ("--config-file", str(conf), "--print", "local")
    assert "holds a secret" not in res.stderr
