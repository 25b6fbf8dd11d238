"""SPEC §12.16: unknown options and sections are warned about; ``--check-config``; the README's INI examples work."""
from __future__ import annotations

import re
from pathlib import Path

from tests.support.readme import blocks_of
from tests.support.sandbox import PLANTED_SECRETS



def _conf(sandbox, text: str, name: str = "occ.conf") -> Path:
    path = sandbox.path("etc", name)
    path.write_text(text)
    path.chmod(0o600)
    return path


TYPOS = "[DEFAULT]\ncolectors = local\npolling-interval = 5\n\n[locl]\npath = /tmp/x\n"


def test_unknown_option_and_section_are_warned_once_and_the_run_goes_on(occ, sandbox):
    """Issue 15 item 2: file, line and the closest known name; the tool still runs (oslo.config ignores them)."""
    conf = _conf(sandbox, TYPOS)
    occ.write_local("a.json", {"x": 1})
    result = occ("--config-file", str(conf), "--print", "local")
    assert result.returncode == 0 and '"x": 1' in result.stdout, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "[WARNING]" in line]
    assert [w.split("[WARNING] ", 1)[1] for w in warnings] == [
        "%s:2: unknown option colectors in [DEFAULT], ignored; did you mean collectors?" % conf,
        "%s:3: unknown option polling-interval in [DEFAULT], ignored; did you mean polling_interval?" % conf,
        "%s:5: unknown section [locl], ignored with everything in it; did you mean [local]?" % conf,
    ], result.stderr


def test_check_config_says_the_default_collectors_run(occ, sandbox):
    conf = _conf(sandbox, TYPOS)
    result = occ("--config-file", str(conf), "--check-config")
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert all(w.startswith("os-collect-config: warning: ") for w in warnings), warnings
    assert warnings[-1] == ("os-collect-config: warning: collectors is not set, so the default collectors run: "
                            "heat_local ec2 cfn heat request local zaqar (ec2 polls http://169.254.169.254)")
    assert re.findall(r"^collectors = (\w+)$", result.stdout, re.M) == [
        "heat_local", "ec2", "cfn", "heat", "request", "local", "zaqar"]
    assert not occ.cachedir.exists() or not any(occ.cachedir.iterdir())  # no collector ran, nothing cached


def test_check_config_masks_every_secret(occ, sandbox):
    conf = _conf(sandbox, "\n".join([
        "[DEFAULT]", "collectors = cfn", "collectors = heat", "collectors = request", "collectors = zaqar",
        "[cfn]", "metadata_url = http://127.0.0.1:9/v1/", "access_key_id = AKIDEXAMPLE",
        "secret_access_key = %s" % PLANTED_SECRETS[0], "stack_name = s", "path = server.Metadata",
        "[heat]", "auth_url = http://127.0.0.1:9/v3", "user_id = u", "password = %s" % PLANTED_SECRETS[1],
        "project_id = p", "stack_id = s/1", "resource_name = server",
        "[request]", "metadata_url = http://127.0.0.1:9/v1/AUTH_a/c/o?temp_url_sig=%s&temp_url_expires=9"
        % PLANTED_SECRETS[2],
        "[zaqar]", "auth_url = http://127.0.0.1:9/v3", "user_id = u", "password = %s" % PLANTED_SECRETS[3],
        "project_id = p", "queue_id = q", ""]))
    result = occ("--config-file", str(conf), "--check-config")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    for secret in PLANTED_SECRETS[:4]:
        assert secret not in result.stdout
    assert "secret_access_key = ***" in result.stdout and result.stdout.count("password = ***") == 2
    assert "metadata_url = http://127.0.0.1:9/v1/AUTH_a/c/o?***" in result.stdout
    assert "access_key_id = AKIDEXAMPLE" in result.stdout and "[zaqar]" in result.stdout


def test_check_config_exits_1_on_an_error_and_still_shows_the_warnings(occ, sandbox):
    conf = _conf(sandbox, "[DEFAULT]\ncollectors = lokal\n\n[locl]\npath = /x\n")
    result = occ("--config-file", str(conf), "--check-config")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "os-collect-config: warning: %s:4: unknown section [locl], ignored with everything in it; "
        "did you mean [local]?" % conf,
        "os-collect-config: error: collectors (set at %s:2): unknown collector 'lokal' (valid: heat_local ec2 cfn "
        "heat request local zaqar)" % conf,
    ]


def test_check_config_reads_conf_d_and_the_command_line(occ, sandbox):
    conf = _conf(sandbox, "[DEFAULT]\ncollectors = local\n")
    conf_d = sandbox.path("etc", "conf.d")
    conf_d.mkdir()
    (conf_d / "10-poll.conf").write_text("[DEFAULT]\npolling_interval = 7\nmin_polling_intervall = 2\n")
    result = occ("--config-file", str(conf), "--config-dir", str(conf_d), "--check-config", "--splay", "3")
    assert result.returncode == 0, result.stderr
    assert "polling_interval = 7\n" in result.stdout and "splay = 3\n" in result.stdout
    assert result.stderr == ("os-collect-config: warning: %s:3: unknown option min_polling_intervall in [DEFAULT], "
                             "ignored; did you mean min_polling_interval?\n" % (conf_d / "10-poll.conf"))


def test_readme_ini_examples_pass_check_config(occ, sandbox):
    """Issue 15 item 1: every INI block of the README, copied as it is, gives no warning and exit 0."""
    blocks = [b.text for b in blocks_of("ini")]
    assert blocks
    for n, block in enumerate(blocks):
        assert not re.search(r"^[^#;\n][^\n]*[ \t][#;]", block, re.M), "inline comment in README INI block %d" % n
        conf = _conf(sandbox, block, "readme-%d.conf" % n)
        result = occ("--config-file", str(conf), "--check-config")
        assert (result.returncode, result.stderr) == (0, ""), (n, result.stderr)
