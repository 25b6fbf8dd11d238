"""The loopback protocol servers speak the wire protocols the real clients expect.

These tests drive them with the same client libraries the agents use
(keystoneauth1, requests, websocket-client), so a server that drifts from the
real protocol fails here before it can make an agent test pass wrongly.
"""
from __future__ import annotations

import json
import time

import pytest
import requests

from tests.servers.cfn import v2_signature


def _session(c, ttl=None, password=None):
    from keystoneauth1 import session
    from keystoneauth1.identity import generic

    if ttl is not None:
        c.keystone.token_ttl = ttl
    auth = generic.Password(auth_url=c.keystone.url, user_id=c.user_id, password=password or c.password,
                            project_id=c.project_id)
    return session.Session(auth=auth)


def test_keystone_discovery_auth_catalog_and_reuse(cloud):
    sess = _session(cloud)
    assert sess.get_endpoint(service_type="orchestration", interface="public") == cloud.heat.endpoint
    assert sess.get_endpoint(service_type="messaging", interface="public", region_name="RegionOne") == cloud.zaqar.url
    assert sess.get_endpoint(service_type="messaging-websocket", interface="public") == cloud.zaqar.ws_url
    assert sess.get_endpoint(service_type="cloudformation", interface="public") == cloud.cfn.url + "/v1"
    assert sess.get_endpoint(service_type="identity", interface="public") == cloud.keystone.v3_url
    from keystoneauth1 import exceptions

    with pytest.raises(exceptions.EndpointNotFound):
        sess.get_endpoint(service_type="orchestration", interface="public", region_name="Nowhere")
    token = sess.get_token()
    assert sess.get_token() == token and cloud.keystone.auth_count == 1
    assert cloud.keystone.token_info(token).project_id == cloud.project_id


def test_keystone_wrong_password_is_401(cloud):
    from keystoneauth1 import exceptions

    sess = _session(cloud, password="wrong")
    with pytest.raises(exceptions.Unauthorized):
        sess.get_token()
    assert cloud.keystone.auth_failures == 1 and cloud.keystone.auth_count == 0


def test_keystone_short_lived_token_is_renewed(cloud):
    sess = _session(cloud, ttl=1)
    first = sess.get_token()
    # keystoneauth renews a token that expires within its minimum life (120 s).
    assert sess.get_token() != first
    assert cloud.keystone.auth_count == 2


def test_heat_lookup_metadata_and_signal(cloud):
    stack_id = cloud.heat.add_stack("mystack")
    cloud.heat.set_metadata("mystack", "server1", {"deployments": []})
    tok = _session(cloud).get_token()
    h = {"X-Auth-Token": tok}
    r = requests.get(cloud.heat.endpoint + "/stacks/mystack", headers=h, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].endswith("/stacks/mystack/" + stack_id)
    md = requests.get(cloud.heat.endpoint + "/stacks/mystack/%s/resources/server1/metadata" % stack_id, headers=h)
    assert md.json() == {"metadata": {"deployments": []}} and "ETag" not in md.headers
    assert requests.get(md.url, headers={"X-Auth-Token": "bogus"}).status_code == 401
    sig = requests.post(cloud.heat.endpoint + "/stacks/mystack/%s/resources/server1/signal" % stack_id,
                        headers=h, json={"deploy_status_code": 0})
    assert sig.status_code == 200 and cloud.heat.signals[0].body == {"deploy_status_code": 0}


def _describe_params(c, stack="mystack", resource="server1", host=None, path="/v1/"):
    params = {"Action": "DescribeStackResource", "StackName": stack, "LogicalResourceId": resource,
              "AWSAccessKeyId": c.access_key, "SignatureVersion": "2", "SignatureMethod": "HmacSHA256"}
    host = host or "127.0.0.1:%d" % c.cfn.port
    params["Signature"] = v2_signature(c.secret_key, "GET", host, path, params)
    return params


def test_cfn_describe_requires_a_valid_signature(cloud):
    cloud.cfn.set_metadata("mystack", "server1", {"a": 1})
    ok = requests.get(cloud.cfn.metadata_url, params=_describe_params(cloud))
    assert ok.status_code == 200
    assert ok.text.startswith("<DescribeStackResourceResponse><DescribeStackResourceResult>")
    assert "<Metadata>{&quot;a&quot;: 1}</Metadata>" in ok.text or '<Metadata>{"a": 1}</Metadata>' in ok.text
    # Signed without the port is accepted too (as Keystone does).
    assert requests.get(cloud.cfn.metadata_url, params=_describe_params(cloud, host="127.0.0.1")).status_code == 200
    bad = _describe_params(cloud)
    bad["LogicalResourceId"] = "other"
    assert requests.get(cloud.cfn.metadata_url, params=bad).status_code == 403
    cloud.cfn.namespace = True
    assert 'xmlns="http://cloudformation' in requests.get(cloud.cfn.metadata_url, params=_describe_params(cloud)).text


def test_cfn_presigned_signal_url(cloud):
    url = cloud.cfn.signed_signal_url(cloud.access_key, "mystack", "abc-123", "deployment1")
    assert "/v1/signal/arn%3Aopenstack%3Aheat%3A%3A" in url and "Timestamp=" in url
    r = requests.post(url, data=json.dumps({"deploy_stdout": "hi"}), headers={"content-type": "application/json"})
    assert r.status_code == 200
    assert cloud.cfn.signals[0].body == {"deploy_stdout": "hi"}
    assert cloud.cfn.signals[0].arn.endswith(":stacks/mystack/abc-123/resources/deployment1")
    tampered = url.replace("deployment1", "deployment2")
    assert requests.post(tampered, data="{}").status_code == 403


def test_zaqar_http_post_pop_claim(cloud):
    tok = _session(cloud).get_token()
    h = {"X-Auth-Token": tok, "Client-ID": "c1", "X-Project-Id": cloud.project_id}
    q = cloud.zaqar.url + "/v2/queues/q1"
    assert requests.post(q + "/messages", headers={"X-Auth-Token": tok}, json={"messages": []}).status_code == 400
    no_project = {"X-Auth-Token": tok, "Client-ID": "c1"}
    assert requests.delete(q + "/messages?pop=1", headers=no_project).status_code == 400
    r = requests.post(q + "/messages", headers=h, json={"messages": [{"body": {"n": 1}, "ttl": 600}]})
    assert r.status_code == 201 and r.json()["resources"][0].startswith("/v2/queues/q1/messages/")
    assert requests.get(q + "/messages", headers=h).json()["messages"] == []  # own messages need echo
    assert requests.get(q + "/messages?echo=true", headers=h).json()["messages"][0]["body"] == {"n": 1}
    claim = requests.post(q + "/claims?limit=5", headers=h, json={"ttl": 60, "grace": 30})
    assert claim.status_code == 201
    msg = claim.json()["messages"][0]
    assert "claim_id=" in msg["href"]
    assert requests.delete(cloud.zaqar.url + msg["href"].split("?")[0], headers=h).status_code == 403
    assert requests.delete(cloud.zaqar.url + msg["href"], headers=h).status_code == 204
    assert requests.post(q + "/claims", headers=h, json={"ttl": 60}).status_code == 204
    cloud.zaqar.post_message(cloud.project_id, "q1", {"n": 2})
    popped = requests.delete(q + "/messages?pop=1", headers=h).json()["messages"]
    assert [m["body"] for m in popped] == [{"n": 2}]
    assert requests.delete(q + "/messages?pop=1", headers=h).json() == {"messages": []}
    v11 = requests.post(cloud.zaqar.url + "/v1.1/queues/q2/messages", headers=h,
                        json={"messages": [{"body": {"s": 1}, "ttl": 600}]})
    assert v11.status_code == 201 and cloud.zaqar.posted[-1].message == {"body": {"s": 1}, "ttl": 600}


def test_zaqar_websocket_protocol_and_notifications(cloud):
    import websocket

    tok = _session(cloud).get_token()
    ws = websocket.create_connection(cloud.zaqar.ws_url, timeout=5)
    hdr = {"Client-ID": "c1", "X-Project-ID": cloud.project_id}

    def send(action, body=None, **extra):
        ws.send(json.dumps({"action": action, "headers": dict(hdr, **extra), "body": body or {}}))
        return json.loads(ws.recv())

    assert send("queue_create", {"queue_name": "q"})["headers"]["status"] == 403
    assert send("authenticate", **{"X-Auth-Token": "bogus"})["headers"]["status"] == 401
    assert send("authenticate", **{"X-Auth-Token": tok})["headers"]["status"] == 200
    assert send("queue_create", {"queue_name": "q"})["headers"]["status"] == 201
    assert send("subscription_create", {"queue_name": "q", "ttl": 10000})["headers"]["status"] == 201
    cloud.zaqar.post_message(cloud.project_id, "q", {"md": 1})
    note = json.loads(ws.recv())
    assert note["body"] == {"md": 1} and note["Message_Type"] == "Notification" and note["queue_name"] == "q"
    resp = send("message_delete_many", {"queue_name": "q", "pop": 1})
    assert resp["headers"]["status"] == 200 and resp["body"]["messages"][0]["body"] == {"md": 1}
    assert resp["request"]["action"] == "message_delete_many"
    assert send("message_delete_many", {"queue_name": "q", "pop": 1})["body"] == {"messages": []}
    ws.close()
    deadline = time.time() + 5
    while cloud.zaqar.ws_connections and time.time() < deadline:
        time.sleep(0.05)
    assert cloud.zaqar.ws_connections == 0


def test_https_server(tmp_path):
    from tests.servers.base import LoopbackServer, Response
    from tests.servers.tls import make_self_signed

    tls = make_self_signed(tmp_path)
    server = LoopbackServer()
    server.add_route("GET", "/x", lambda r, m: Response(200, b"ok"))
    server.start(ssl_context=tls.server_context())
    try:
        assert server.url.startswith("https://")
        assert requests.get(server.url + "/x", verify=tls.cert).text == "ok"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + "/x")
    finally:
        server.stop()
