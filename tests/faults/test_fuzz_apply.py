"""Fuzz os-apply-config (mustache and Jinja2 templates, ``.oac`` files, metadata) and the hooks' inputs.

os-apply-config renders a generated template tree against generated metadata into an output
root inside the sandbox (SPEC §4, §12.12, §12.13.2). ``heat-config-hook GROUP`` gets generated
deployments on stdin for every built-in hook, each hook's tool replaced by ``true`` (the hooks'
``HEAT_*_CMD`` variables) so that only the hook's own handling of its input is under test, and
every path it writes redirected into the sandbox (json-file's target paths are generated inside it).
Outcome for every example: a result or one clear line; no traceback, hang, secret or stray file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.faults.conftest import FuzzTarget
from tests.faults.strategies import PASSWORD, deployments, json_values, names, raw_documents

pytestmark = pytest.mark.faults

MUSTACHE = st.lists(st.sampled_from([
    "{{a}}", "{{a.b}}", "{{{a}}}", "{{#a}}x{{/a}}", "{{^a}}none{{/a}}", "{{#a}}{{.}}{{/a}}", "{{#a}}",
    "{{/a}}", "{{> partial}}", "{{=<% %>=}}<% a %>", "{{!comment}}", "{{", "}}", "{{ a }}", "{{&a}}",
    "{{deployments}}", "{{#list}}{{name}}{{/list}}", "text", "\n", "ü", "{{a", "{{#a}}{{#b}}{{/a}}{{/b}}"]),
    max_size=6).map("".join)
JINJA = st.lists(st.sampled_from([
    "{{ a }}", "{{ a.b.c }}", "{{ 1/0 }}", "{{ a + 1 }}", "{% for x in a %}{{ x }}{% endfor %}", "{% if a %}",
    "{% endif %}", "{{ undefined_var }}", "{% include 'nope.j2' %}", "{{ a | tojson }}", "{{ a | bogus }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "{{ a['x'] }}", "{{", "{#", "text", "{{ a|int / 0 }}",
    "{{ ''.__class__ }}", "{{ range(5)|list|length }}"]), max_size=5).map("".join)
OAC = st.one_of(
    st.fixed_dictionaries({}, optional={
        "mode": st.one_of(st.sampled_from(["0600", "0644", "0777", "600", "abc", "", "0o600", "99999", "-1"]),
                          st.integers(-1, 0o7777), json_values),
        "owner": st.one_of(st.sampled_from(["root", "nobody", "no-such-user", "0", "", "65534"]), json_values),
        "group": st.one_of(st.sampled_from(["root", "nogroup", "no-such-group", "0"]), json_values),
        "allow_empty": st.one_of(st.booleans(), json_values),
        "bogus": json_values}).map(json.dumps),
    st.sampled_from(["", "mode: 0600\n", "{", "- a\n- b\n", "mode: [\n", "\xff", "owner: !!python/object:x {}\n"]),
)


@given(templates=st.dictionaries(st.sampled_from(["etc/a.conf", "etc/b.conf.j2", "etc/sub/c", "d.j2", "x/y/z.j2"]),
                                 st.one_of(MUSTACHE, JINJA), min_size=1, max_size=4),
       oacs=st.dictionaries(st.sampled_from(["etc/a.conf", "etc/b.conf", "etc/sub/c", "d", "x/y/z"]), OAC,
                            max_size=3),
       metadata=st.lists(raw_documents, min_size=1, max_size=2))
def test_templates_oac_and_metadata(fuzz_base: Path, templates: Dict[str, str], oacs: Dict[str, str],
                                    metadata: list):
    target = FuzzTarget("os-apply-config templates+oac", fuzz_base)
    box = target.sandbox()
    root = box.path("templates")
    for rel, text in templates.items():
        box.write("templates/" + rel, text)
    for rel, text in oacs.items():
        box.write("templates/%s.oac" % rel, text)
    files = []
    for n, body in enumerate(metadata):
        path = box.path("cache", "m%d.json" % n)
        path.write_bytes(body)
        files.append(str(path))
    out = box.path("out")
    out.mkdir()
    env = {"OS_CONFIG_FILES": ":".join(files)}
    target.run(box, "os-apply-config", ["-t", str(root), "-o", str(out), "--fallback-metadata"], env=env)
    target.run(box, "os-apply-config", ["-t", str(root), "-o", str(out), "--fallback-metadata", "--key", "a.b",
                                        "--type", "raw", "--key-default", ""], env=env)


#: Every built-in hook, with its tool replaced by ``true`` and its directories in the sandbox.
HOOKS = ("script", "json-file", "apply-config", "ansible", "puppet", "hiera", "salt", "chef", "cfn-init",
         "kubelet", "docker-compose", "docker-cmd")


def hook_env(box: Any) -> Dict[str, str]:
    env = {"HEAT_CONFIG_HOOK_TIMEOUT": "10", "DOCKER_HOST": "unix://%s" % box.path("run", "no-docker.sock"),
           "HEAT_PUPPET_HIERA_DATADIR": str(box.path("lib", "hieradata")),
           "HEAT_HIERA_CONFIG": str(box.path("etc", "hiera.yaml")),
           "HEAT_KUBELET_MANIFESTS": str(box.path("lib", "kubelet-manifests")),
           "HEAT_CFN_INIT_LAST_METADATA_DIR": str(box.path("lib", "heat-cfntools")),
           "OS_APPLY_CONFIG_DEPLOYED_DIR": str(box.path("lib", "oac-deployed"))}
    for tool in ("SCRIPT", "ANSIBLE", "PUPPET", "SALT", "CHEF", "DOCKER_COMPOSE"):
        env["HEAT_%s_WORKING" % tool] = str(box.path("lib", tool.lower()))
        env["HEAT_%s_OUTPUTS" % tool] = str(box.path("run", tool.lower()))
    for tool in ("ANSIBLE", "PUPPET", "SALT", "DOCKER", "DOCKER_COMPOSE", "CFN_INIT", "APPLY_CONFIG",
                 "HIERA_ELEMENT_CHECK"):
        env["HEAT_%s_CMD" % tool] = "true"
    env["HEAT_PUPPET_LOGDIR"] = str(box.path("log", "puppet"))
    return env


#: json-file's target paths: "@" is the sandbox (absolute), and the relative, empty and directory cases.
json_file_configs = st.dictionaries(st.sampled_from(["@/a.json", "@/sub/dir/b.json", "relative.json", "", "@/"]),
                                    json_values, max_size=3)


@given(group=st.sampled_from(HOOKS), dep=deployments("http://127.0.0.1:9"), json_file=json_file_configs,
       raw_stdin=st.one_of(st.none(), st.sampled_from(["", "{", "[]", "5", "null", '{"config": 5}'])))
def test_hook_inputs(fuzz_base: Path, group: str, dep: Any, json_file: Dict[str, Any], raw_stdin: Any):
    target = FuzzTarget("hook inputs", fuzz_base)
    box = target.sandbox()
    if isinstance(dep, dict):
        dep["group"] = group
        if group == "json-file":
            dep["config"] = {k.replace("@", str(box.root)): v for k, v in json_file.items()}
        elif group != "script" and not isinstance(dep.get("config"), (dict, list)):
            dep["config"] = {"value": dep.get("config"), "password_input": PASSWORD}
    stdin = raw_stdin if raw_stdin is not None else json.dumps(dep)
    target.run(box, "heat-config-hook", [group], input=stdin, env=hook_env(box), timeout=60)


@given(name=names)
def test_hook_names(fuzz_base: Path, name: str):
    """A group that is no built-in hook is one line, whatever its name."""
    target = FuzzTarget("hook names", fuzz_base)
    box = target.sandbox()
    target.run(box, "heat-config-hook", [name], input="{}", env=hook_env(box))
