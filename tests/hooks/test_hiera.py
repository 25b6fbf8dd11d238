"""The hiera hook (SPEC §8.8), run as ``heat-config-hook hiera``; its legacy guard is this project's real os-apply-config."""
from __future__ import annotations

import json
import os
import stat

import pytest

from tests.support.sandbox import hook_json

OK = {"deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0}


@pytest.fixture
def hiera_env(sandbox):
    """Datadir and config in the sandbox; the guard is the default command, found first in PATH (our os-apply-config),
    reading metadata without ``hiera.datafiles``."""
    metadata = sandbox.write("cache/metadata.json", json.dumps({"other": {"datafiles": "not hiera"}}))
    return {
        "HEAT_PUPPET_HIERA_DATADIR": str(sandbox.path("etc", "puppet", "hieradata")),
        "HEAT_HIERA_CONFIG": str(sandbox.path("etc", "hiera.yaml")),
        "OS_CONFIG_FILES": str(metadata),
    }


def deployment(config):
    return {"id": "3f1c5d2e-aaaa-4bbb-8ccc-000000000001", "name": "hieradata", "group": "hiera",
            "config": config, "inputs": [], "outputs": [], "options": {}}


def run_hook(run_tool, env, config):
    out, proc = hook_json(run_tool, "hiera", deployment(config), env)
    assert "Traceback" not in proc.stderr
    return out


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_hierarchy_and_datafiles_are_written_byte_for_byte(run_tool, sandbox, hiera_env):
    config = {
        "hierarchy": ["%{::uuid}", "heat_config_%{::deploy_config_name}", "common"],
        "datafiles": {
            "common": {"zeta": [1, 2.5, None, True], "alpha": {"b": "é", "a": {}}},
            "heat_config_web": {"port": 8080},
            "scalar": "text",
        },
    }
    assert run_hook(run_tool, hiera_env, config) == OK
    datadir = sandbox.path("etc", "puppet", "hieradata")
    assert sandbox.path("etc", "hiera.yaml").read_bytes() == (
        "\n---\n:backends:\n  - json\n:json:\n  :datadir: %s\n:hierarchy:\n"
        "  - %%{::uuid}\n  - heat_config_%%{::deploy_config_name}\n  - common\n" % datadir).encode()
    assert (datadir / "common.json").read_bytes() == (
        '{\n    "alpha": {\n        "a": {},\n        "b": "\\u00e9"\n    },\n'
        '    "zeta": [\n        1,\n        2.5,\n        null,\n        true\n    ]\n}').encode()
    assert (datadir / "heat_config_web.json").read_bytes() == b'{\n    "port": 8080\n}'
    assert (datadir / "scalar.json").read_bytes() == b'"text"'
    assert sorted(os.listdir(datadir)) == ["common.json", "heat_config_web.json", "scalar.json"]  # no temp files left
    for path in (sandbox.path("etc", "hiera.yaml"), *datadir.iterdir()):
        assert mode(path) == 0o600
    assert mode(datadir) == 0o700


def test_existing_files_are_replaced_and_the_config_kept_without_hierarchy(run_tool, sandbox, hiera_env):
    hiera_yaml = sandbox.write("etc/hiera.yaml", "user's own hiera config\n", mode=0o644)
    old = sandbox.write("etc/puppet/hieradata/common.json", '{"a much longer stale value": "x"}' * 10, mode=0o644)
    assert run_hook(run_tool, hiera_env, {"datafiles": {"common": {"new": 1}}}) == OK
    assert old.read_bytes() == b'{\n    "new": 1\n}' and mode(old) == 0o600
    assert hiera_yaml.read_text() == "user's own hiera config\n"


def test_a_symlinked_hiera_config_is_written_through(run_tool, sandbox, hiera_env):
    target = sandbox.write("etc/puppet/hiera.yaml", "old\n")
    os.symlink(target, sandbox.path("etc", "hiera.yaml"))
    assert run_hook(run_tool, hiera_env, {"hierarchy": []}) == OK
    assert os.path.islink(sandbox.path("etc", "hiera.yaml"))
    assert target.read_text().endswith(":hierarchy:\n")


def test_legacy_hieradata_in_os_apply_config_fails_the_deployment(run_tool, sandbox, hiera_env):
    """The default guard, `os-apply-config --key hiera.datafiles ...`, finds legacy data: status 1, nothing written."""
    sandbox.write("cache/metadata.json", json.dumps({"hiera": {"datafiles": {"common": {"legacy": True}}}}))
    out = run_hook(run_tool, hiera_env, {"hierarchy": ["common"], "datafiles": {"common": {"new": 1}}})
    assert out["deploy_status_code"] == 1
    assert out["deploy_stdout"] == '{"common": {"legacy": true}}\n'  # what the check printed
    assert out["deploy_stderr"].startswith("legacy hieradata from os-apply-config has been detected "
                                           "(os-apply-config --key hiera.datafiles --type raw --key-default empty "
                                           "printed '{\"common\": {\"legacy\": true}}')")
    assert not sandbox.path("etc", "puppet", "hieradata").exists()
    assert not sandbox.path("etc", "hiera.yaml").exists()


def test_a_check_that_fails_without_an_answer_fails_the_deployment(run_tool, sandbox, hiera_env):
    env = dict(hiera_env, HEAT_HIERA_ELEMENT_CHECK_CMD="os-apply-config --key hiera.datafiles --type no-such-type")
    out = run_hook(run_tool, env, {"datafiles": {"common": {}}})
    assert out["deploy_status_code"] == 1
    assert "no-such-type" in out["deploy_stderr"]  # os-apply-config's own complaint is kept
    assert out["deploy_stderr"].splitlines()[-1].startswith(
        "the legacy hieradata check os-apply-config --key hiera.datafiles --type no-such-type "
        "(HEAT_HIERA_ELEMENT_CHECK_CMD) printed nothing (status ")
    assert not sandbox.path("etc", "puppet", "hieradata").exists()


@pytest.mark.parametrize("check", ["missing", ""])
def test_an_absent_or_empty_check_command_means_no_legacy_data(run_tool, sandbox, hiera_env, check):
    command = str(sandbox.path("no-such-os-apply-config")) + " --key hiera.datafiles" if check == "missing" else ""
    out = run_hook(run_tool, dict(hiera_env, HEAT_HIERA_ELEMENT_CHECK_CMD=command), {"datafiles": {"c": [1]}})
    assert out == OK
    assert sandbox.path("etc", "puppet", "hieradata", "c.json").read_bytes() == b"[\n    1\n]"


@pytest.mark.parametrize("key", ["../escape", "sub/file", "..", "back\\slash", ""])
def test_a_datafile_key_leaving_the_datadir_is_refused_with_nothing_written(run_tool, sandbox, hiera_env, key):
    out = run_hook(run_tool, hiera_env, {"hierarchy": ["common"], "datafiles": {"common": {"a": 1}, key: {"b": 2}}})
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"].startswith("refused: config.datafiles key %r " % key)
    assert not sandbox.path("etc", "puppet", "hieradata").exists()
    assert not sandbox.path("etc", "hiera.yaml").exists()
    assert not sandbox.path("etc", "puppet", "escape.json").exists()


@pytest.mark.parametrize("config, named", [
    ("hierarchy: [common]", "config must be an object with hierarchy and/or datafiles, not str"),
    ({"hierarchy": "common"}, "config.hierarchy must be a list, not str"),
    ({"hierarchy": ["ok", {"a": 1}]}, "config.hierarchy[1] must be a one-line string"),
    ({"hierarchy": ["two\nlines"]}, "config.hierarchy[0] must be a one-line string"),
    ({"datafiles": ["common"]}, "config.datafiles must be an object, not list"),
])
def test_a_config_of_the_wrong_shape_fails_naming_the_key(run_tool, hiera_env, config, named):
    out = run_hook(run_tool, hiera_env, config)
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"] == "refused: %s\n" % named


def test_an_unwritable_hiera_config_fails_naming_it(run_tool, sandbox, hiera_env):
    env = dict(hiera_env, HEAT_HIERA_CONFIG=str(sandbox.path("no", "such", "dir", "hiera.yaml")))
    out = run_hook(run_tool, env, {"hierarchy": ["common"]})
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"] == "hiera: cannot write %s: No such file or directory\n" % env["HEAT_HIERA_CONFIG"]
