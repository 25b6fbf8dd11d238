"""The EC2 and Swift loopback servers speak their wire protocols (what the agents' tests rely on)."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from tests.servers.ec2 import Ec2Server
from tests.servers.swift import SwiftServer


def _get(url, headers=None, method="GET", data=None):
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_swift_temp_url_signature_expiry_conditional_get_and_put():
    with SwiftServer("k3y") as swift:
        swift.put_object("c", "o", {"a": 1})
        url = swift.temp_url("c", "o")
        status, headers, body = _get(url)
        assert status == 200 and json.loads(body) == {"a": 1} and headers["ETag"] and headers["Last-Modified"]
        assert _get(url, {"If-None-Match": headers["ETag"]})[0] == 304
        assert _get(url, {"If-Modified-Since": headers["Last-Modified"]})[0] == 304
        assert _get(url.replace("temp_url_sig=", "temp_url_sig=0"))[0] == 401
        assert _get(swift.temp_url("c", "o", expires=int(time.time()) - 1))[0] == 401
        assert _get(swift.temp_url("c", "o", method="PUT"))[0] == 401  # a PUT signature does not allow GET
        assert _get(url, method="PUT", data=b"x")[0] == 401  # nor a GET signature a PUT
        put = swift.temp_url("c", "signal", method="PUT")
        assert _get(put, method="PUT", data=b'{"status": "SUCCESS"}',
                    headers={"Content-Type": "application/json"})[0] == 201
        assert swift.get_object("c", "signal") == b'{"status": "SUCCESS"}' and len(swift.puts) == 1
        swift.put_object("c", "o", {"a": 2})
        assert _get(url, {"If-None-Match": headers["ETag"]})[0] == 200


def test_ec2_listings_leaves_and_validators():
    with Ec2Server({"a": "1", "d": {"x": "y"}, "public-keys": {"0=k": {"openssh-key": "ssh"}}}) as ec2:
        status, headers, body = _get(ec2.metadata_url + "/")
        assert status == 200 and body.decode().split("\n") == ["a", "d/", "public-keys/"]
        assert _get(ec2.metadata_url + "/public-keys/")[2] == b"0=k"
        assert _get(ec2.metadata_url + "/public-keys/0/openssh-key")[2] == b"ssh"
        assert _get(ec2.metadata_url + "/d")[0] == 404
        assert _get(ec2.metadata_url + "/", {"If-None-Match": headers["ETag"]})[0] == 304
        ec2.set("a", "2")
        assert _get(ec2.metadata_url + "/a", {"If-Modified-Since": headers["Last-Modified"]})[0] == 200
