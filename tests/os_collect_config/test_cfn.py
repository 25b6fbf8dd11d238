"""The cfn collector (SPEC §2.7, §5.9.9, §5.9.10) run through the real os-collect-config against a loopback heat-api-cfn."""
from __future__ import annotations

import json
import time

import pytest
import requests

from tests.os_collect_config.keystone_sources import METADATA, printed, write_config
from tests.servers.cfn import CfnServer
from tests.servers.cloud import ACCESS_KEY, PROJECT_ID, SECRET_KEY


@pytest.fixture
def cfn():
    server = CfnServer({ACCESS_KEY: SECRET_KEY}, PROJECT_ID).start()
    yield server
    server.stop()


def cfn_section(server, **extra):
    section = {"metadata_url": server.metadata_url, "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
               "stack_name": "mystack", "path": ["server1.Metadata"]}
    section.update(extra)
    return {k: v for k, v in section.items() if v is not None}


def run_cfn(occ, sandbox, server, *args, sections=None, **extra):
    conf = write_config(sandbox, dict(sections or {}, cfn=cfn_section(server, **extra)))
    return occ("--config-file", str(conf), *args, "cfn")


def unavailable(result) -> str:
    assert printed(result) == {}
    assert "Source [cfn] Unavailable" in result.stderr and "Traceback" not in result.stderr
    return result.stderr


def test_print_signed_describe_and_explosion(cfn, occ, sandbox):
    cfn.set_metadata("mystack", "server1", METADATA)
    out = printed(run_cfn(occ, sandbox, cfn, "--print", "--debug"))  # stderr checked for secrets
    assert out == {"cfn": METADATA, "dep-a": {"keystone": {"debug": True}}}
    (req,) = cfn.received("GET")
    assert req.q("Action") == "DescribeStackResource" and req.q("StackName") == "mystack"
    assert req.q("LogicalResourceId") == "server1" and req.q("SignatureVersion") == "2"
    assert req.q("SignatureMethod") == "HmacSHA256" and req.q("Timestamp")
    assert req.header("Content-Type") == "application/json"
    assert cfn.verified == 1


def test_every_path_gets_a_fresh_signature(cfn, occ, sandbox):
    """The original reused one HMAC object, so every signature after the first was wrong (§5.9.10)."""
    cfn.set_metadata("mystack", "server1", {"a": 1, "nested": {"b": {"c": 2}}})
    cfn.set_metadata("mystack", "server2", {"d": 3})
    paths = ["server1.Metadata", "server2.Metadata", "server1.Metadata.nested.b"]
    out = printed(run_cfn(occ, sandbox, cfn, "--print", path=paths))
    assert out == {"cfn": {"a": 1, "nested": {"b": {"c": 2}}, "d": 3, "c": 2}}
    assert cfn.verified == 2  # one request per resource, each signature valid
    assert [r.q("LogicalResourceId") for r in cfn.received("GET")] == ["server1", "server2"]


def test_unset_stack_name_is_neither_signed_nor_sent(cfn, occ, sandbox):
    cfn.set_metadata("mystack", "server1", {"a": 1})
    stderr = unavailable(run_cfn(occ, sandbox, cfn, "--print", stack_name=None))
    (req,) = cfn.received("GET")
    assert "StackName" not in req.query
    assert cfn.verified == 1  # the signature matched what was sent; Heat then wants a StackName
    assert "HTTP 400" in stderr


def test_signatures_carry_a_timestamp_so_a_captured_url_expires(cfn, occ, sandbox):
    cfn.set_metadata("mystack", "server1", {"a": 1})
    printed(run_cfn(occ, sandbox, cfn, "--print"))
    captured = cfn.received("GET")[0].raw_path
    assert requests.get(cfn.url + captured).status_code == 200
    cfn.credential_ttl_s = -1  # as if the server's credential TTL had passed
    assert requests.get(cfn.url + captured).status_code == 403


def test_wrong_secret_is_refused_and_never_logged(cfn, occ, sandbox):
    cfn.credentials[ACCESS_KEY] = "the-real-secret"
    stderr = unavailable(run_cfn(occ, sandbox, cfn, "--print", "--debug"))
    assert "HTTP 403" in stderr and cfn.verified == 0


def test_metadata_url_from_the_hint_file(cfn, occ, sandbox):
    cfn.set_metadata("mystack", "server1", {"hinted": True})
    hint = sandbox.write("lib/cfn-metadata-server", cfn.url + "\n")
    out = printed(run_cfn(occ, sandbox, cfn, "--print", metadata_url=None, heat_metadata_hint=str(hint)))
    assert out == {"cfn": {"hinted": True}}
    assert cfn.received("GET")[0].path == "/v1/"


def test_no_url_and_no_hint_is_not_configured(cfn, occ, sandbox):
    result = run_cfn(occ, sandbox, cfn, "--print", "--debug", metadata_url=None,
                     heat_metadata_hint=str(sandbox.path("lib", "absent")))
    assert printed(result) == {} and "Source [cfn] Not configured" in result.stderr
    assert not cfn.requests


@pytest.mark.parametrize("missing", ["access_key_id", "secret_access_key", "path"])
def test_missing_credentials_or_path_is_not_configured(cfn, occ, sandbox, missing):
    result = run_cfn(occ, sandbox, cfn, "--print", "--debug", **{missing: None})
    assert printed(result) == {} and "Source [cfn] Not configured" in result.stderr
    assert not cfn.requests


def test_path_without_a_dot_is_an_error_and_not_configured(cfn, occ, sandbox):
    result = run_cfn(occ, sandbox, cfn, "--print", path=["server1.Metadata", "server1"])
    assert printed(result) == {}
    assert "Path not in format resource.field[.x.y] (server1)" in result.stderr
    assert not cfn.requests  # checked before any request


def test_cfn_deployment_key_is_its_own_option(cfn, occ, sandbox):
    md = {"mydeps": [{"name": "dep-x", "group": "Heat::Ungrouped", "config": {"x": 1}}],
          "deployments": [{"name": "dep-y", "config": {"y": 1}}]}
    cfn.set_metadata("mystack", "server1", md)
    out = printed(run_cfn(occ, sandbox, cfn, "--print", "--deployment-key", "deployments", deployment_key="mydeps"))
    assert list(out) == ["cfn", "dep-x"]  # the global --deployment-key has no effect on cfn (SPEC §2.7.1)


def test_timeout_option_bounds_a_stalled_server(cfn, occ, sandbox):
    cfn.set_metadata("mystack", "server1", {"a": 1})
    cfn.delay_s = 12
    started = time.monotonic()
    unavailable(run_cfn(occ, sandbox, cfn, "--print", timeout=1))
    assert time.monotonic() - started < 9  # timeout 1 s (+ start-up), not the 12 s stall


def test_namespaced_xml_is_read(cfn, occ, sandbox):
    """AWS-style replies carry a namespace; the original crashed on them (§5.9.9)."""
    cfn.set_metadata("mystack", "server1", {"ns": 1})
    cfn.namespace = True
    assert printed(run_cfn(occ, sandbox, cfn, "--print")) == {"cfn": {"ns": 1}}


def test_empty_metadata_element_is_an_empty_object(cfn, occ, sandbox):
    cfn.set_metadata("mystack", "server1", {})  # Heat writes <Metadata /> for empty metadata
    assert printed(run_cfn(occ, sandbox, cfn, "--print")) == {"cfn": {}}


DETAIL = ("<DescribeStackResourceResponse><DescribeStackResourceResult><StackResourceDetail>%s"
          "</StackResourceDetail></DescribeStackResourceResult></DescribeStackResourceResponse>")


@pytest.mark.parametrize("reply, path, said", [
    ("<DescribeStackResourceResponse><oops>", "server1.Metadata", "not well-formed XML"),
    ("<DescribeStackResourceResponse/>", "server1.Metadata", "no DescribeStackResourceResult"),
    (DETAIL % "<Metadata>{}</Metadata>", "server1.Nope", "path server1.Nope does not exist"),
    (DETAIL % "<Metadata>not json</Metadata>", "server1.Metadata", "failed to parse as JSON"),
    (DETAIL % "<Metadata>[1, 2]</Metadata>", "server1.Metadata", "holds a list, not an object"),
    (DETAIL % '<Metadata>{"a": {}}</Metadata>', "server1.Metadata.a.b", "sub-key b of path"),
    (DETAIL % json.dumps({"deployments": [{"name": "n", "group": "os-apply-config"}]}).join(
        ["<Metadata>", "</Metadata>"]), "server1.Metadata", "has no config"),
])
def test_broken_replies_make_the_source_unavailable_not_crash(cfn, occ, sandbox, reply, path, said):
    cfn.raw_reply = reply
    stderr = unavailable(run_cfn(occ, sandbox, cfn, "--print", path=[path]))
    assert said in stderr


def test_store_mode_keeps_last_good_data_through_a_broken_reply(cfn, occ, sandbox):
    cfn.set_metadata("mystack", "server1", METADATA)
    marker = sandbox.path("run", "files")
    cmd = 'echo "$$OS_CONFIG_FILES" >> %s' % marker
    assert run_cfn(occ, sandbox, cfn, "--one-time", "--command", cmd).returncode == 0
    assert json.loads(occ.cachedir.joinpath("cfn.json").read_text()) == METADATA
    cfn.raw_reply = "<broken"
    result = run_cfn(occ, sandbox, cfn, "--one-time", "--force", "--command", cmd)
    assert result.returncode == 0 and "Source [cfn] Unavailable" in result.stderr
    runs = marker.read_text().splitlines()
    assert len(runs) == 2 and runs[0] == runs[1]  # the cfn files stay in OS_CONFIG_FILES
    assert json.loads(occ.cachedir.joinpath("cfn.json").read_text()) == METADATA
