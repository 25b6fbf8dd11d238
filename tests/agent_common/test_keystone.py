"""agent_common.keystone against the loopback Keystone: discovery, token reuse in memory and on disk, re-auth."""
from __future__ import annotations

import logging
import os
import stat

import pytest

from agent_common.keystone import Credentials, KeystoneSession, token_cache_path
from agent_common.logs import redact
from tests.support.listener import unaccepted_port


def creds(c, auth_url=None, password=None):
    return Credentials(auth_url or c.auth_url, c.user_id, password or c.password, c.project_id)


def test_token_reused_in_memory_and_catalog_lookup(cloud):
    ks = KeystoneSession(creds(cloud))
    assert ks.token() == ks.token()
    assert ks.endpoint("orchestration") == cloud.heat.endpoint
    assert ks.endpoint("messaging", "RegionOne") == cloud.zaqar.url
    assert cloud.keystone.auth_count == 1
    with pytest.raises(LookupError, match="no public messaging endpoint in region Mars"):
        ks.endpoint("messaging", "Mars")


def test_token_cache_survives_a_new_process_and_is_private(cloud, tmp_path):
    cache = str(tmp_path / "state")
    first = KeystoneSession(creds(cloud), token_cache_dir=cache)
    token = first.token()
    first.save()
    path = token_cache_path(cache, creds(cloud))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    second = KeystoneSession(creds(cloud), token_cache_dir=cache)
    assert second.token() == token and second.endpoint("orchestration") == cloud.heat.endpoint
    assert cloud.keystone.auth_count == 1


def test_token_near_expiry_is_not_reused(cloud, tmp_path):
    cloud.keystone.token_ttl = 60  # inside the 120 s safety margin
    cache = str(tmp_path)
    first = KeystoneSession(creds(cloud), token_cache_dir=cache)
    first.token()
    first.save()
    KeystoneSession(creds(cloud), token_cache_dir=cache).token()
    assert cloud.keystone.auth_count == 2


def test_corrupt_cache_is_ignored_with_a_warning(cloud, tmp_path, caplog):
    path = token_cache_path(str(tmp_path), creds(cloud))
    with open(path, "w") as f:
        f.write("{torn")
    with caplog.at_level(logging.WARNING):
        ks = KeystoneSession(creds(cloud), token_cache_dir=str(tmp_path))
    assert ks.token() and cloud.keystone.auth_count == 1
    assert "Ignoring unreadable keystone token cache" in caplog.text


def test_revoked_token_is_replaced_on_401(cloud, tmp_path):
    cloud.heat.set_metadata("s", "r", {"a": 1})
    ks = KeystoneSession(creds(cloud))
    old = ks.token()
    cloud.keystone.expire_all_tokens()
    url = "%s/stacks/s/%s/resources/r/metadata" % (cloud.heat.endpoint, cloud.heat.stacks["s"])
    assert ks.session.get(url).json() == {"metadata": {"a": 1}}
    assert ks.token() != old and cloud.keystone.auth_count == 2


def test_v2_url_goes_through_discovery(cloud):
    ks = KeystoneSession(creds(cloud, auth_url=cloud.keystone.url + "/v2.0"))
    assert ks.endpoint("orchestration") == cloud.heat.endpoint
    assert cloud.keystone.received("GET", r"^/?$")


def test_password_and_token_are_redacted_from_logs(cloud):
    ks = KeystoneSession(creds(cloud))
    token = ks.token()
    line = redact("auth with %s gave %s" % (cloud.password, token))
    assert cloud.password not in line and token not in line


def test_wrong_password_raises_unauthorized(cloud):
    from keystoneauth1 import exceptions

    with pytest.raises(exceptions.Unauthorized):
        KeystoneSession(creds(cloud, password="not-it")).token()


def test_a_token_keystone_answers_late_is_waited_for_not_asked_for_again(cloud, caplog):
    """Keystone finishes a token its client gave up on: 200 agents that each gave up three token requests
    (after 10, 20 and 40 s) made it issue 800 tokens for 200 agents, behind which 2 ran in 300 s (bench/FLEET.md).
    A token request is waited for up to the committed wait (300 s) from the first try, and then given up."""
    from keystoneauth1.exceptions import ConnectTimeout

    ks = KeystoneSession(creds(cloud), timeout=1.0)
    keystone = cloud.keystone.url.split("//", 1)[1]
    cloud.keystone.delay_s = 2.0  # a queueing Keystone: it answers, later than the configured timeout
    with caplog.at_level(logging.INFO, logger="agent_common.backoff"):
        assert ks.token() and ks.endpoint("orchestration") == cloud.heat.endpoint
    assert cloud.keystone.auth_count == 1 and "gave no answer" not in caplog.text
    assert ks.session.timeout == 1.0  # the other requests never had anything but the configured timeout

    ks = KeystoneSession(creds(cloud), timeout=1.0)
    ks.patience.committed_wait = 1.5  # 300 s in use
    with caplog.at_level(logging.INFO, logger="agent_common.backoff"), pytest.raises(ConnectTimeout):
        ks.token()
    assert ("Keystone at %s gave no answer within 1 s to connect or 1.5 s to answer; the next request to it "
            "waits up to 2 s." % keystone in caplog.text)


def test_a_keystone_that_does_not_take_the_connection_is_given_up_after_the_configured_timeout(cloud):
    """A connection its server never accepted cost it nothing: only the answer gets the committed wait."""
    import time

    from keystoneauth1.exceptions import ConnectTimeout

    with unaccepted_port() as port:
        ks = KeystoneSession(creds(cloud, auth_url="http://127.0.0.1:%d/v3" % port), timeout=1.0)
        started = time.monotonic()
        with pytest.raises(ConnectTimeout):
            ks.token()
        assert time.monotonic() - started < 10  # the configured 1 s (one SYN retry), not the 300 s
        assert ks.patience.stretched == {"127.0.0.1:%d" % port: 2.0}


def test_a_request_that_timed_out_makes_the_next_one_to_that_server_wait_twice_as_long(cloud, caplog):
    """The same for the service behind the token (heat-api at N = 200, bench/FLEET.md), server by server."""
    from keystoneauth1.exceptions import ConnectTimeout

    ks = KeystoneSession(creds(cloud), timeout=1.0)
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    url = cloud.heat.endpoint + "/stacks/mystack/%s/resources/server1/metadata" % cloud.heat.stacks["mystack"]
    heat_api = cloud.heat.endpoint.split("//", 1)[1].split("/", 1)[0]
    ks.token()
    cloud.heat.delay_s = 1.5
    with caplog.at_level(logging.INFO, logger="agent_common.backoff"), pytest.raises(ConnectTimeout):
        ks.request("GET", url)
    assert "%s gave no answer within 1 s; the next request to it waits up to 2 s." % heat_api in caplog.text
    assert ks.patience.stretched == {heat_api: 2.0}  # Keystone, which answered, keeps its 1 s
    assert ks.request("GET", url).status_code == 200
    with pytest.raises(ConnectTimeout):  # the answer brought the configured 1 s back
        ks.request("GET", url)
