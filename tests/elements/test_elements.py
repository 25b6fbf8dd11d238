"""The diskimage-builder elements, without building an image (SPEC §9, §6.14, §11.36, §11.37).

The static checks read the element tree; the others run the element scripts
as disk-image-create would, in a temporary root (tests/elements/dib.py), and
look at what they left there.
"""
from __future__ import annotations

import configparser
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.elements.conftest import run_build_phases
from tests.elements.dib import (
    DIB_ELEMENTS,
    ELEMENTS,
    REPO,
    OverlayRoot,
    can_use_overlay_roots,
    element_closure,
    merge_elements,
)

#: Every element of SPEC §9 (§9.2, §9.3, §9.5 but os-svc-install, which our elements do not need).
SPEC_ELEMENTS = [
    "os-collect-config", "os-refresh-config", "os-apply-config", "heat-config",
    "heat-config-script", "heat-config-ansible", "heat-config-apply-config", "heat-config-cfn-init",
    "heat-config-chef", "heat-config-hiera", "heat-config-json-file", "heat-config-puppet",
    "heat-config-salt", "heat-config-docker-cmd", "heat-config-docker-compose", "heat-config-kubelet",
]
HOOK_ELEMENTS = [e for e in SPEC_ELEMENTS if e.startswith("heat-config-")]
ALL_ELEMENTS = sorted(p.name for p in ELEMENTS.iterdir() if p.is_dir())
PHASES = ("extra-data.d", "pre-install.d", "install.d", "post-install.d", "finalise.d", "cleanup.d", "root.d")

overlay = pytest.mark.skipif(can_use_overlay_roots() is not None, reason=str(can_use_overlay_roots()))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- the element tree ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SPEC_ELEMENTS)
def test_every_spec_element_exists_with_its_deps(name: str) -> None:
    assert (ELEMENTS / name / "element-deps").is_file()
    assert "os-config-agents" in element_closure([name]), "%s does not install the agents" % name


@pytest.mark.parametrize("name", HOOK_ELEMENTS)
def test_hook_elements_bring_the_dispatcher_and_declare_their_hook(name: str) -> None:
    # §11.36: docker-cmd, docker-compose and kubelet did not depend on heat-config.
    assert "heat-config" in element_closure([name])
    group = name[len("heat-config-"):]
    assert (ELEMENTS / name / "heat-config-hooks" / group).is_file()


def test_all_element_deps_resolve() -> None:
    for name in ALL_ELEMENTS:
        for dep in element_closure([name]):
            assert (ELEMENTS / dep).is_dir() or dep in DIB_ELEMENTS


def test_all_elements_merge_and_files_at_one_path_agree(tmp_path: Path) -> None:
    """Elements merge like diskimage-builder does, and no two ship different files at one path.

    diskimage-builder copies deeper entries over each other in an unspecified
    order: two different os-collect-config.conf templates (§11.36) would make
    the image depend on that order.
    """
    merge_elements(ALL_ELEMENTS, tmp_path / "hooks")
    seen = {}
    for element in ALL_ELEMENTS:
        for path in (ELEMENTS / element).rglob("*"):
            if path.is_file() and path.parent != ELEMENTS / element:
                rel = path.relative_to(ELEMENTS / element)
                if rel in seen:
                    assert seen[rel][1] == path.read_bytes(), "%s differs in %s and %s" % (rel, seen[rel][0], element)
                seen[rel] = (element, path.read_bytes())


def test_phase_scripts_are_executable_bash_with_errexit() -> None:
    """§11.37: every build script stops at its first error, so no image is built without what a hook needs."""
    scripts = [p for e in ALL_ELEMENTS for d in PHASES for p in sorted((ELEMENTS / e / d).glob("*"))]
    assert scripts
    for script in scripts:
        assert _mode(script) & 0o111 == 0o111, "%s is not executable" % script
        text = script.read_text()
        assert text.startswith("#!/bin/bash"), script
        assert "set -eu" in text or "set -ue" in text, "%s lacks set -e" % script
        check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    orc_scripts = [p for e in ALL_ELEMENTS for p in (ELEMENTS / e / "os-refresh-config").rglob("*") if p.is_file()]
    for script in orc_scripts:
        assert _mode(script) & 0o111 == 0o111, "%s is not executable" % script


# -- what the build leaves in the image (typical chain, run in a temporary root) ---------------------

@overlay
def test_agents_are_on_path_from_one_virtualenv(installed_root: OverlayRoot) -> None:
    venv = "/opt/stack/venvs/os-config-agents"
    assert installed_root.path(venv + "/bin/python3").exists()
    for name in ("os-collect-config", "os-refresh-config", "os-apply-config", "dib-run-parts",
                 "heat-config", "heat-config-notify", "heat-config-hook", "heat-config-rebuild-deployed"):
        link = installed_root.path("/usr/local/bin/" + name)
        assert os.readlink(link) == "%s/bin/%s" % (venv, name)
    result = installed_root.run(["os-refresh-config", "--print-base"])
    assert (result.returncode, result.stdout) == (0, "/usr/libexec/os-refresh-config\n")


@overlay
def test_orc_tree_and_oac_templates_are_installed(installed_root: OverlayRoot) -> None:
    base = "/usr/libexec/os-refresh-config"
    for phase in ("pre-configure.d", "configure.d", "post-configure.d", "migration.d"):
        assert _mode(installed_root.path("%s/%s" % (base, phase))) == 0o755
    for script in ("configure.d/20-os-apply-config", "configure.d/55-heat-config",
                   "post-configure.d/99-refresh-completed"):
        assert _mode(installed_root.path("%s/%s" % (base, script))) & 0o111, script
    templates = "/usr/libexec/os-apply-config/templates"
    assert installed_root.path(templates + "/var/run/heat-config/heat-config").is_file()
    assert installed_root.path(templates + "/etc/os-collect-config.conf").is_file()
    assert "0600" in installed_root.path(templates + "/etc/os-collect-config.conf.oac").read_text()


@overlay
def test_bootstrap_config_is_private(installed_root: OverlayRoot) -> None:
    conf = installed_root.path("/etc/os-collect-config.conf")
    assert _mode(conf) == 0o600
    parser = configparser.ConfigParser()
    parser.read_string(conf.read_text())
    assert parser.get("DEFAULT", "command") == "os-refresh-config"


@overlay
def test_hook_shims_run_the_builtin_hooks(installed_root: OverlayRoot) -> None:
    hooks_dir = "/var/lib/heat-config/hooks"
    for element in installed_root.chain:  # type: ignore[attr-defined]
        if element.startswith("heat-config-"):
            shim = installed_root.path("%s/%s" % (hooks_dir, element[len("heat-config-"):]))
            assert _mode(shim) == 0o755 and shim.stat().st_uid == 0
    deployment = {"id": "elements-test-1", "group": "script", "name": "hello", "inputs": [
        {"name": "who", "value": "image"}], "outputs": [{"name": "greeting"}],
        "config": "#!/bin/sh\necho \"hello $who\"\necho -n \"hi $who\" > $heat_outputs_path.greeting\n"}
    result = installed_root.run([hooks_dir + "/script"], input=json.dumps(deployment))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["deploy_stdout"] == "hello image\n"
    assert out["greeting"] == "hi image"
    assert out["deploy_status_code"] == 0


# -- the service ---------------------------------------------------------------------------------

UNIT = "/usr/lib/systemd/system/os-collect-config.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(ELEMENTS / "os-collect-config" / "init-scripts" / "systemd" / "os-collect-config.service")
    return parser


def test_unit_keeps_the_originals_command_line_and_restart_policy() -> None:
    unit = _unit()
    assert unit.get("Service", "ExecStart") == "/usr/local/bin/os-collect-config"
    assert unit.get("Service", "Restart") == "on-failure"
    assert "cloud-config.service" in unit.get("Unit", "After").split()
    assert unit.get("Unit", "Before") == "crond.service"
    assert unit.get("Install", "WantedBy") == "multi-user.target"


def test_unit_hardening_leaves_hooks_able_to_configure_the_system() -> None:
    """Private /tmp, never giving up restarting; nothing that stops a hook writing /etc, /usr or /home,
    installing packages or elevating through sudo."""
    unit = _unit()
    assert unit.get("Service", "PrivateTmp") == "yes"
    assert unit.get("Unit", "StartLimitIntervalSec") == "0"
    for option in ("ProtectSystem", "ProtectHome", "NoNewPrivileges", "ReadOnlyPaths", "RestrictSUIDSGID",
                   "SystemCallFilter", "PrivateDevices", "ProtectKernelModules", "ProtectKernelTunables"):
        assert not unit.has_option("Service", option), option


@overlay
def test_unit_is_installed_enabled_and_verifies(installed_root: OverlayRoot) -> None:
    assert installed_root.path(UNIT).is_file()
    wants = installed_root.path("/etc/systemd/system/multi-user.target.wants/os-collect-config.service")
    assert os.readlink(wants) in (UNIT, UNIT[len("/usr"):])  # /lib is /usr/lib on merged-/usr systems
    result = installed_root.run(["systemd-analyze", "verify", UNIT])
    assert result.returncode == 0, result.stderr
    assert "os-collect-config" not in result.stderr, result.stderr


# -- failures the build must not hide (§11.37) -----------------------------------------------------

@overlay
def test_a_hook_element_without_builtin_hook_fails_the_build(installed_root: OverlayRoot, tmp_path: Path) -> None:
    import hooks

    hooks_dir = merge_elements(["heat-config"], tmp_path / "hooks")
    (hooks_dir / "heat-config-hooks").mkdir()
    (hooks_dir / "heat-config-hooks" / "no-such-group").write_text("")
    assert "no-such-group" not in hooks.groups()
    root = OverlayRoot(tmp_path, hooks_dir, on_top_of=installed_root)
    result = root.run(["/bin/bash", "-c", ". /tmp/in_target.d/environment.d/10-os-config-agents.bash; "
                       "/tmp/in_target.d/install.d/50-heat-config"])
    assert result.returncode == 1
    assert "no built-in hook for group 'no-such-group'" in result.stderr
    assert not root.path("/var/lib/heat-config/hooks/no-such-group").exists()


# -- installing from a checkout -------------------------------------------------------------------

def _stage(tmp_path: Path, source: str, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIB_")}
    env.update(TMP_HOOKS_PATH=str(tmp_path / "hooks"), DIB_OS_CONFIG_AGENTS_SOURCE=source, **extra)
    (tmp_path / "hooks").mkdir(exist_ok=True)
    return subprocess.run([str(ELEMENTS / "os-config-agents" / "extra-data.d" / "10-os-config-agents-stage")],
                          env=env, capture_output=True, text=True, cwd=str(tmp_path))


STAGED = Path("hooks") / "os-config-agents-build"


def test_extra_data_stages_a_wheel(tmp_path: Path, agents_wheel: Path) -> None:
    assert _stage(tmp_path, str(agents_wheel)).returncode == 0
    assert sorted(p.name for p in (tmp_path / STAGED).iterdir()) == ["source"]
    assert [p.name for p in (tmp_path / STAGED / "source").iterdir()] == [agents_wheel.name]


def test_extra_data_stages_the_ca_bundle_pip_needs(tmp_path: Path) -> None:
    """For build hosts behind an intercepting HTTPS proxy that the image's own CA store does not know."""
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert _stage(tmp_path, "os-config-agents", DIB_OS_CONFIG_AGENTS_PIP_CERT=str(bundle)).returncode == 0
    assert (tmp_path / STAGED / "pip-cert.pem").read_text() == bundle.read_text()
    relative = _stage(tmp_path, "os-config-agents", DIB_OS_CONFIG_AGENTS_PIP_CERT="proxy-ca.pem")
    assert relative.returncode == 1 and "DIB_OS_CONFIG_AGENTS_PIP_CERT must be an absolute path" in relative.stderr


def test_extra_data_stages_a_checkout_without_vcs_or_venv(tmp_path: Path) -> None:
    tree = tmp_path / "checkout"
    for rel in ("pyproject.toml", "pkg/__init__.py", ".git/HEAD", ".venv/bin/python", "pkg/__pycache__/x.pyc"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("x")
    assert _stage(tmp_path, str(tree)).returncode == 0
    staged = tmp_path / STAGED / "source" / "tree"
    assert sorted(str(p.relative_to(staged)) for p in staged.rglob("*")) == ["pkg", "pkg/__init__.py", "pyproject.toml"]


def test_extra_data_leaves_a_pip_requirement_to_pip_and_refuses_relative_paths(tmp_path: Path) -> None:
    assert _stage(tmp_path, "os-config-agents==0.1.0").returncode == 0
    assert not (tmp_path / STAGED / "source").exists()
    (tmp_path / "rel.whl").write_text("x")
    result = _stage(tmp_path, "rel.whl")
    assert result.returncode == 1 and "absolute path" in result.stderr


@overlay
def test_image_can_be_built_from_a_checkout(installed_root: OverlayRoot, tmp_path: Path) -> None:
    """DIB_OS_CONFIG_AGENTS_SOURCE=<source tree>: pip builds and installs this checkout in the image."""
    hooks_dir = merge_elements(["os-config-agents"], tmp_path / "hooks")
    root = OverlayRoot(tmp_path, hooks_dir)
    run_build_phases(root, {"DIB_OS_CONFIG_AGENTS_SOURCE": str(REPO)})
    result = root.run(["/opt/stack/venvs/os-config-agents/bin/python3", "-c",
                       "import heat_config, os_collect_config; print(os_collect_config.__file__)"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("/opt/stack/venvs/os-config-agents/lib/")


# -- hook elements with build-side set-up ----------------------------------------------------------

@overlay
def test_hiera_element_links_the_puppet_hiera_config(installed_root: OverlayRoot, tmp_path: Path) -> None:
    hooks_dir = merge_elements(["heat-config-hiera"], tmp_path / "hooks")
    root = OverlayRoot(tmp_path, hooks_dir, on_top_of=installed_root)
    result = root.run(["/tmp/in_target.d/install.d/50-heat-config-hiera"])
    assert result.returncode == 0, result.stderr
    assert os.readlink(root.path("/etc/hiera.yaml")) == "/etc/puppet/hiera.yaml"


@overlay
@pytest.mark.parametrize("registries", ["", "registry.example:5000 10.0.0.5:5001"])
def test_kubelet_element_configures_bridge_docker_and_kubelet(tmp_path: Path, registries: str) -> None:
    """§9.4 without §11.38: no registry, interface name or firewall assumed; units verify."""
    hooks_dir = merge_elements(["heat-config-kubelet"], tmp_path / "hooks")
    root = OverlayRoot(tmp_path, hooks_dir)
    script = ("for f in /tmp/in_target.d/environment.d/*.bash; do . $f; done; "
              "/tmp/in_target.d/install.d/50-heat-config-kubelet && "
              "cp -RP /tmp/in_target.d/init-scripts/systemd/. /usr/lib/systemd/system/ && "
              "systemd-analyze verify /usr/lib/systemd/system/heat-config-kubelet-nat-rule.service "
              "/usr/lib/systemd/system/heat-config-kubelet-load-images.service")
    result = root.run(["/bin/bash", "-c", script], {"DIB_HEAT_KUBELET_INSECURE_REGISTRIES": registries})
    assert result.returncode == 0, result.stdout + result.stderr
    daemon = json.loads(root.path("/etc/docker/daemon.json").read_text())
    assert daemon == {"bridge": "cbr0", "mtu": 1450, "iptables": False, "insecure-registries": registries.split()}
    manifests = "/var/lib/heat-config/heat-config-kubelet/kubelet-manifests"
    assert _mode(root.path(manifests)) == 0o700
    assert "--pod-manifest-path=%s" % manifests in root.path("/etc/default/kubelet").read_text()
    bridge = root.path("/etc/network/interfaces.d/cbr0.cfg").read_text()
    assert "address 10.240.1.1/24" in bridge and "eth0" not in bridge
    nat = (ELEMENTS / "heat-config-kubelet/init-scripts/systemd/heat-config-kubelet-nat-rule.service").read_text()
    assert "eth0" not in nat and "192.168.20.112" not in root.path("/etc/docker/daemon.json").read_text()
