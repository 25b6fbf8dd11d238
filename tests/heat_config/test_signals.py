"""Signal transports on the wire (SPEC §7), through heat-config-notify and through the dispatcher in-process.

Every transport is checked against a loopback server that speaks the real
protocol and records what it receives: verbs, paths, headers and bodies.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from tests.servers.base import LoopbackServer, Response
from tests.servers.swift import SwiftServer
from tests.support.deployments import STACK, STACK_ID, cfn_inputs, dep_id, deployment, keystone_inputs
from tests.support.dispatcher import assert_no_secret_on_disk_outside_state, journal, write_deployments
from tests.support.sandbox import BIN_DIR, PLANTED_SECRETS
from tests.support.wait import wait_for

SIGNAL = {"deploy_stdout": "caf\u00e9 ok\n", "deploy_stderr": "", "deploy_status_code": 0, "result": "42\n"}


def notify(run_tool, sandbox, dep, data=SIGNAL, env=None, raw_stdin=None):
    path = sandbox.write("deployed/%s.json" % dep["id"], json.dumps(dep), 0o600)
    stdin = raw_stdin if raw_stdin is not None else json.dumps(data)
    return run_tool("heat-config-notify", [str(path)], input=stdin, env=env)


def dispatch(run_tool, sandbox, deployments, env=None):
    write_deployments(sandbox, deployments)
    result = run_tool("heat-config", env=env)
    assert result.returncode == 0, result.stderr
    return result


def signal_via(via, run_tool, sandbox, dep):
    """Signal ``dep`` through heat-config-notify or a dispatcher run; the body the server should receive."""
    if via == "notify":
        assert notify(run_tool, sandbox, dep).returncode == 0
        return SIGNAL
    dispatch(run_tool, sandbox, [dep])
    return {"deploy_stdout": "hello\n", "deploy_stderr": "", "deploy_status_code": 0}


@pytest.fixture
def swift():
    server = SwiftServer().start()
    yield server
    server.stop()


# -- CFN_SIGNAL -----------------------------------------------------------------------------------
def test_cfn_signal_posts_json_to_the_presigned_url_unchanged(run_tool, hc, cloud):
    dep = deployment(signal=cfn_inputs(cloud))
    result = notify(run_tool, hc, dep)
    assert result.returncode == 0, result.stderr
    assert len(cloud.cfn.signals) == 1  # the signature verified: the URL was not re-encoded
    (request,) = cloud.cfn.received("POST")
    assert request.header("content-type") == "application/json"
    assert request.header("X-Auth-Token") is None and request.header("Authorization") is None
    assert request.body == json.dumps(SIGNAL, ensure_ascii=True).encode()  # ASCII escapes, default separators
    assert cloud.cfn.signals[0].body == SIGNAL
    assert "resources/deploy_0" in cloud.cfn.signals[0].arn


def test_cfn_signal_from_the_dispatcher_in_process(run_tool, hc, cloud):
    dep = deployment(config="#!/bin/sh\necho done\necho 42 > $heat_outputs_path.result\n",
                     outputs=["result"], signal=cfn_inputs(cloud))
    dispatch(run_tool, hc, [dep])
    assert [s.body for s in cloud.cfn.signals] == [
        {"result": "42\n", "deploy_stdout": "done\n", "deploy_stderr": "", "deploy_status_code": 0}]
    record = journal(hc, dep["id"])
    assert record["signal"] == "sent" and record["transport"] == "CFN_SIGNAL"


def test_cfn_5xx_is_retried_for_post(run_tool, hc, cloud):
    """SPEC §11.5: the original never retries a POST on 5xx."""
    cloud.cfn.signal_statuses = [503, 502]
    dep = deployment(signal=cfn_inputs(cloud))
    result = notify(run_tool, hc, dep, env={"HEAT_CONFIG_SIGNAL_RETRY_S": "30"})
    assert result.returncode == 0, result.stderr
    assert len(cloud.cfn.received("POST")) == 3
    assert len(cloud.cfn.signals) == 1


# -- TEMP_URL_SIGNAL ------------------------------------------------------------------------------
def test_temp_url_signal_puts_the_object(run_tool, hc, swift):
    url = swift.temp_url(STACK_ID, "deploy_0-signal", method="PUT")
    dep = deployment(signal=[
        {"name": "deploy_signal_transport", "type": "String", "value": "TEMP_URL_SIGNAL"},
        {"name": "deploy_signal_id", "type": "String", "value": url},
        {"name": "deploy_signal_verb", "type": "String", "value": "PUT"},
    ])
    result = notify(run_tool, hc, dep)
    assert result.returncode == 0, result.stderr
    (put,) = swift.puts
    assert put.header("content-type") == "application/json"
    assert json.loads(swift.get_object(STACK_ID, "deploy_0-signal")) == SIGNAL
    signature = url.split("temp_url_sig=", 1)[1].split("&", 1)[0]
    assert signature not in result.stderr  # the temp URL's signature is a secret (SPEC §12.10)


# -- HEAT_SIGNAL ----------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["notify", "dispatcher"])
def test_heat_signal_authenticates_and_posts_to_the_resource(run_tool, hc, cloud, via):
    dep = deployment(signal=keystone_inputs(cloud, "HEAT_SIGNAL"))
    dep["inputs"] = [i if i["name"] != "deploy_resource_name" else dict(i, value="my deploy/0") for i in dep["inputs"]]
    expected = signal_via(via, run_tool, hc, dep)
    assert cloud.keystone.auth_count == 1
    (signal,) = cloud.heat.signals
    assert (signal.stack_name, signal.stack_id, signal.resource) == (STACK, STACK_ID, "my deploy/0")
    assert signal.body == expected
    (request,) = cloud.heat.received("POST")
    assert request.path == "/v1/%s/stacks/%s/%s/resources/my%%20deploy%%2F0/signal" % (
        cloud.project_id, STACK, STACK_ID)
    assert cloud.keystone.token_info(request.header("X-Auth-Token")) is not None
    assert_no_secret_on_disk_outside_state(hc)


def test_heat_signal_wrong_password_is_refused_for_good(run_tool, hc, cloud):
    dep = deployment(signal=keystone_inputs(cloud, "HEAT_SIGNAL"))
    for item in dep["inputs"]:
        if item["name"] == "deploy_password":
            item["value"] = PLANTED_SECRETS[3]
    dispatch(run_tool, hc, [dep])
    record = journal(hc, dep["id"])
    assert record["signal"] == "refused"
    assert "401" in record["signal_error"]
    assert cloud.heat.signals == []


# -- ZAQAR_SIGNAL ---------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["notify", "dispatcher"])
def test_zaqar_signal_posts_one_message(run_tool, hc, cloud, via):
    dep = deployment(signal=keystone_inputs(cloud, "ZAQAR_SIGNAL"))
    expected = signal_via(via, run_tool, hc, dep)
    (posted,) = cloud.zaqar.posted
    assert posted.queue == "signal-queue-deploy_0"
    assert posted.message == {"body": expected, "ttl": 600}
    assert posted.api == "v2"
    headers = {k.lower(): v for k, v in posted.headers.items()}
    assert headers["x-project-id"] == cloud.project_id
    assert headers["client-id"]
    assert cloud.keystone.token_info(headers["x-auth-token"]) is not None
    assert cloud.heat.signals == []  # a queue id means Zaqar, not the Heat API


# -- NO_SIGNAL and the CLI contract ---------------------------------------------------------------
def test_no_signal_sends_nothing(run_tool, hc, cloud):
    result = notify(run_tool, hc, deployment())
    assert result.returncode == 0
    assert cloud.cfn.requests == [] and cloud.heat.requests == [] and cloud.keystone.requests == []


def test_notify_usage_and_missing_file(run_tool, hc):
    result = run_tool("heat-config-notify", [], input="{}")
    assert result.returncode == 1 and "Usage" in result.stderr
    result = run_tool("heat-config-notify", [str(hc.path("nope.json"))], input="{}")
    assert result.returncode == 1 and "No config file" in result.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_notify_help_prints_usage_and_exits_0_without_reading_stdin(hc, flag):
    # stdin is a pipe nobody writes to or closes: reading it would block until the time-out
    proc = subprocess.Popen([str(BIN_DIR / "heat-config-notify"), flag], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=hc.env)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    assert out.startswith("usage: heat-config-notify [-h] [DEPLOYMENT_FILE]") and "example:" in out
    assert "No config file" not in out + err and err == ""


def test_notify_at_a_terminal_says_it_reads_stdin(hc):
    """Run by hand, it no longer waits in silence: it says what it is reading."""
    import pty

    master, slave = pty.openpty()
    err = hc.path("run", "notify.err")
    with open(str(err), "wb") as err_file:
        proc = subprocess.Popen([str(BIN_DIR / "heat-config-notify"), str(hc.path("nope.json"))], stdin=slave,
                                stdout=subprocess.PIPE, stderr=err_file, env=hc.env)
    os.close(slave)
    try:
        wait_for(lambda: "end it with Ctrl-D" in err.read_text(), what="the stdin hint")
        os.write(master, b"{}\n\x04")
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        os.close(master)
    assert "Reading the signal data (JSON) from standard input; end it with Ctrl-D" in err.read_text()
    assert "No config file %s" % hc.path("nope.json") in err.read_text()


def test_invalid_stdin_sends_empty_object(run_tool, hc, cloud):
    result = notify(run_tool, hc, deployment(signal=cfn_inputs(cloud)), raw_stdin="not json")
    assert result.returncode == 0
    assert "No valid json found on stdin" in result.stderr
    assert cloud.cfn.signals[0].body == {}


def test_endpoint_down_exits_75(run_tool, hc, cloud):
    dep = deployment(signal=cfn_inputs(cloud))
    cloud.cfn.fail_with = 503
    start = time.monotonic()
    result = notify(run_tool, hc, dep, env={"HEAT_CONFIG_SIGNAL_RETRY_S": "2"})
    assert result.returncode == 75
    assert time.monotonic() - start < 15


def test_4xx_is_refused_for_good_exit_0_and_recorded(run_tool, hc, cloud):
    dep = deployment(signal=cfn_inputs(cloud))
    for item in dep["inputs"]:
        if item["name"] == "deploy_signal_id":
            item["value"] = item["value"].replace("Signature=", "Signature=x")
    result = notify(run_tool, hc, dep)
    assert result.returncode == 0
    assert "refused" in result.stderr
    assert len(cloud.cfn.received("POST")) == 1  # not retried


def test_oversized_signal_is_trimmed_keeping_the_tail(run_tool, hc, cloud):
    """SPEC §7.4/§11.7/§12.11: the original crashes on Python 3 and sends nothing."""
    big = {"deploy_stdout": "o" * 900000 + "STDOUT-END", "deploy_stderr": "e" * 300000 + "STDERR-END",
           "deploy_status_code": 2, "result": "kept"}
    result = notify(run_tool, hc, deployment(signal=cfn_inputs(cloud)), data=big)
    assert result.returncode == 0, result.stderr
    (request,) = cloud.cfn.received("POST")
    assert len(request.body) <= 950000
    body = cloud.cfn.signals[0].body
    assert body["deploy_stdout"].endswith("STDOUT-END") and body["deploy_stderr"].endswith("STDERR-END")
    assert "characters cut" in body["deploy_stdout"] and "characters cut" in body["deploy_stderr"]
    assert body["deploy_status_code"] == 2 and body["result"] == "kept"


def test_secrets_never_logged_by_notify(run_tool, hc, cloud):
    dep = deployment(signal=keystone_inputs(cloud, "HEAT_SIGNAL") + cfn_inputs(cloud))
    result = notify(run_tool, hc, dep)
    assert result.returncode == 0
    for secret in PLANTED_SECRETS:
        assert secret not in result.stdout + result.stderr
    signature = cloud.cfn.signals[0].params["Signature"]
    assert signature not in result.stderr
    assert dep_id(0)  # the deployment file itself is the only place the password lives


def test_heat_style_encoded_signal_url_reaches_the_server_byte_for_byte(run_tool, hc, cloud):
    """SPEC §7.2: Heat's URL has the ARN fully percent-encoded (``%3A``, ``%2F``); it must not be re-encoded."""
    inputs = cfn_inputs(cloud)
    url = inputs[1]["value"]
    base, rest = url.split("/v1/signal/", 1)
    arn, query = rest.split("?", 1)
    inputs[1]["value"] = "%s/v1/signal/%s?%s" % (base, arn.replace("/", "%2F"), query)
    assert "%2F" in inputs[1]["value"] and "%3A" in inputs[1]["value"]
    assert notify(run_tool, hc, deployment(signal=inputs)).returncode == 0
    (request,) = cloud.cfn.received("POST")
    assert "http://127.0.0.1:%d%s" % (cloud.cfn.port, request.raw_path) == inputs[1]["value"]
    assert len(cloud.cfn.signals) == 1


@pytest.mark.parametrize("via", ["notify", "dispatcher"])
def test_a_503_with_retry_after_delays_the_retry_by_at_least_that(run_tool, hc, via):
    """Issue 16: a busy endpoint that says when to come back is not asked again sooner."""
    server = LoopbackServer()
    posts = []

    @server.route("POST", "/signal")
    def signal(request, match):
        posts.append(time.monotonic())
        if len(posts) == 1:
            return Response(503, b"busy", headers={"Retry-After": "4"})
        return Response(200, b"")

    server.start()
    try:
        inputs = [{"name": "deploy_signal_transport", "type": "String", "value": "CFN_SIGNAL"},
                  {"name": "deploy_signal_id", "type": "String", "value": server.url + "/signal"},
                  {"name": "deploy_signal_verb", "type": "String", "value": "POST"}]
        env = {"HEAT_CONFIG_SIGNAL_RETRY_S": "30"}
        if via == "notify":
            result = notify(run_tool, hc, deployment(signal=inputs), env=env)
        else:
            result = dispatch(run_tool, hc, [deployment(signal=inputs)], env=env)
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert len(posts) == 2 and posts[1] - posts[0] >= 4.0, posts
    assert re.search(r"returned HTTP 503; retrying in [4-9]\.\d s", result.stderr), result.stderr
