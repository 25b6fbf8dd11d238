"""boot-config environments and templates, rendered as Heat renders them (fast: no image).

SPEC §10.1-10.5; §11.39-41 (fixed: current distributions, embedded files arrive
verbatim, the agent's config is never reset to a minimal one).
"""
from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.boot_config.conftest import BOOT_CONFIG, WHEEL_URL, required_params
from tests.boot_config.heat_userdata import Renderer, TemplateError, environment_template, parts
from tests.boot_config.heat_userdata import render as heat_render

PIP_TEMPLATE = BOOT_CONFIG / "templates/install_config_agent_pip.yaml"
CONTAINER_TEMPLATE = BOOT_CONFIG / "templates/install_container_agent.yaml"
ENVIRONMENTS = ("debian_pip_env.yaml", "ubuntu_pip_env.yaml", "fedora_pip_env.yaml", "centos_stream_pip_env.yaml",
                "fedora_yum_env.yaml", "centos7_rdo_env.yaml", "test_image_env.yaml", "container_agent_env.yaml",
                "none_env.yaml")
def render(template, params=None):
    """The user-data, with the parameters an operator must give set (agent_package)."""
    return heat_render(template, dict(required_params(template), **(params or {})))


HEREDOC = re.compile(r"<<'(?P<marker>[A-Z_]+)'\n(?P<body>.*?)\n(?P=marker)\n", re.S)


def heredoc_bodies(script: str) -> list:
    return [m.group("body") for m in HEREDOC.finditer(script)]


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_environment_registers_an_installer_that_renders(name):
    env_file = BOOT_CONFIG / name
    env = yaml.safe_load(env_file.read_text())
    assert set(env) <= {"resource_registry", "parameter_defaults"}, "an env file Heat accepts"
    template = environment_template(env_file)
    if template is None:
        assert env["resource_registry"]["Heat::InstallConfigAgent"] == "OS::Heat::SoftwareConfig"
        return
    doc = yaml.safe_load(template.read_text())
    assert str(doc["heat_template_version"]) >= "2014-10-16"
    mime = doc["resources"][doc["outputs"]["config"]["value"]["get_resource"]]
    assert mime["type"] == "OS::Heat::MultipartMime"
    for part in mime["properties"]["parts"]:
        resource = doc["resources"][part["config"]["get_resource"]]
        assert resource["type"] in ("OS::Heat::SoftwareConfig", "OS::Heat::CloudConfig")
        if resource["type"] == "OS::Heat::SoftwareConfig":
            assert resource["properties"]["group"] == "ungrouped"
    assert parts(render(template)), "user-data with parts"


def test_pip_installer_parts_come_in_install_configure_start_order():
    scripts = parts(render(PIP_TEMPLATE))
    assert [s.splitlines()[0] for s in scripts] == ["#!/bin/bash"] * 3
    assert "pip\" install" in scripts[0]
    assert "os-collect-config --one-time" in scripts[1]
    assert "systemctl enable os-collect-config" in scripts[2]


def test_every_script_part_is_valid_bash():
    for template in (PIP_TEMPLATE, CONTAINER_TEMPLATE):
        for text in parts(render(template)):
            if text.startswith("#!"):
                proc = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
                assert proc.returncode == 0, proc.stderr


def test_every_part_is_ascii_so_a_nova_server_gets_it_decoded():
    """Heat's Nova user-data assembly (build_userdata, SOFTWARE_CONFIG) re-wraps each part's payload as it
    stands: a part with one non-ASCII character is base64 in the MultipartMime and reaches cloud-init
    still encoded, which cloud-init cannot recognise as a script ("Unhandled unknown content-type"). The
    VM suite's boot-config scenario met exactly this with a "section" sign in a comment."""
    for template in (PIP_TEMPLATE, CONTAINER_TEMPLATE):
        for text in parts(render(template)):
            odd = sorted({c for c in text if ord(c) > 127})
            assert not odd, "non-ASCII %s in the part starting %r" % (odd, text[:60])


def test_embedded_files_arrive_byte_for_byte_without_shell_expansion(tmp_path):
    """§11.40: each file is pasted between quoted here-document markers, never expanded."""
    configure = parts(render(PIP_TEMPLATE))[1]
    doc = yaml.safe_load(PIP_TEMPLATE.read_text())
    params = doc["resources"]["configure_config_agent"]["properties"]["config"]["str_replace"]["params"]
    files = [(PIP_TEMPLATE.parent / p["get_file"]).read_text() for p in params.values()]
    assert any("$" in f for f in files), "the embedded files do hold text a shell would expand"
    bodies = heredoc_bodies(configure)
    for content in files:
        assert "OS_CONFIG_AGENTS_EOF" not in content
        assert content in bodies, "embedded verbatim"
    # What the script's own place() writes from one of those here-documents equals the file.
    place = re.search(r"^place\(\) \{.*?^\}$", configure, re.S | re.M).group(0)
    occ_conf = (PIP_TEMPLATE.parent / "fragments/os-collect-config.conf").read_text()
    body = next(b for b in bodies if b.startswith("[DEFAULT]\n{{"))
    target = tmp_path / "etc" / "os-collect-config.conf"
    script = "%s\nplace %s 0600 <<'OS_CONFIG_AGENTS_EOF'\n%sOS_CONFIG_AGENTS_EOF\n" % (place, target, body)
    subprocess.run(["bash", "-eu", "-c", script], check=True)
    assert target.read_text() == occ_conf
    assert target.stat().st_mode & 0o777 == 0o600


def test_parameters_reach_the_install_script_and_bad_values_are_refused():
    install = parts(render(PIP_TEMPLATE, {"agent_package": "os-config-agents==9.9",
                                          "pip_index_url": "http://mirror.example/simple"}))[0]
    assert "agent_package='os-config-agents==9.9'" in install
    assert "pip_index_url='http://mirror.example/simple'" in install
    with pytest.raises(TemplateError):
        Renderer(PIP_TEMPLATE, {"agent_package": "x'; rm -rf /"})


def test_agent_package_has_no_default_that_cannot_install():
    """os-config-agents is not on PyPI: the operator names a wheel (or an index that has it), and a stack
    without it is refused when it is created, not after the server booted and pip failed."""
    spec = yaml.safe_load(PIP_TEMPLATE.read_text())["parameters"]["agent_package"]
    assert "default" not in spec and "not on PyPI" in spec["description"]
    with pytest.raises(TemplateError, match=r"The Parameter \(agent_package\) was not provided"):
        heat_render(PIP_TEMPLATE)
    install = parts(render(PIP_TEMPLATE))[0]
    assert "agent_package='%s'" % WHEEL_URL in install


def test_occ_conf_template_renders_region_name_and_is_0600():
    """§11.36/§10.3: the oac template carries region_name for [heat] and [zaqar]; a .oac makes it 0600."""
    text = (PIP_TEMPLATE.parent / "fragments/os-collect-config.conf").read_text()
    heat = text.split("[heat]")[1].split("{{/heat}}")[0]
    zaqar = text.split("[zaqar]")[1].split("{{/zaqar}}")[0]
    assert "region_name = {{region_name}}" in heat and "region_name = {{region_name}}" in zaqar
    oac = yaml.safe_load((PIP_TEMPLATE.parent / "fragments/os-collect-config.conf.oac").read_text())
    assert oac == {"mode": 0o600}
    assert yaml.safe_load((PIP_TEMPLATE.parent / "fragments/heat-config.oac").read_text()) == {"mode": 0o600}


def test_start_part_never_rewrites_the_agent_config():
    """§11.41: the originals reset /etc/os-collect-config.conf to a minimal file here."""
    start = parts(render(PIP_TEMPLATE))[2]
    assert "/etc/os-collect-config.conf" not in start.split("set -eux", 1)[1], "no command touches it"
    assert "ExecStart=$occ" in start and "/usr/bin/os-collect-config" not in start


def test_container_agent_user_data_writes_helpers_then_starts_the_unit():
    cloud_config, start = parts(render(CONTAINER_TEMPLATE, {"agent_image": "registry.example/hca:1"}))
    assert cloud_config.startswith("#cloud-config\n")
    files = {f["path"]: f for f in yaml.safe_load(cloud_config)["write_files"]}
    for name in ("get_container_agent_image.sh", "run_container_agent.sh"):
        written = files["/opt/container_agent/" + name]
        assert written["permissions"] == "0755"
        assert written["content"] == (CONTAINER_TEMPLATE.parent / "fragments" / name).read_text()
    assert "agent_image='registry.example/hca:1'" in start
    run = files["/opt/container_agent/run_container_agent.sh"]["content"]
    assert "--privileged" not in run.split("set -eu", 1)[1], "§11.44"
    for state in ("/var/lib/heat-config", "/var/lib/os-collect-config"):
        assert '-v "$root%s:%s"' % (state, state) in run, "§11.43: state survives the container"
