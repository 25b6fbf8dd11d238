"""The heat collector (SPEC §2.5, §5.9.11) run through the real os-collect-config against loopback Keystone + Heat."""
from __future__ import annotations

import json
import stat
import time

import pytest

from tests.os_collect_config.keystone_sources import METADATA, printed, write_config
from tests.servers.heat import HeatServer
from tests.support.sandbox import assert_no_planted_secret
from tests.support.wait import wait_for


def heat_section(c, **extra):
    section = {"auth_url": c.auth_url, "user_id": c.user_id, "password": c.password,
               "project_id": c.project_id, "stack_id": "mystack", "resource_name": "server1"}
    section.update(extra)
    return section


def run_heat(occ, sandbox, c, *args, **extra):
    conf = write_config(sandbox, {"heat": heat_section(c, **extra)})
    return occ("--config-file", str(conf), *args, "heat")


def test_print_collects_metadata_and_explodes_deployments(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", METADATA)
    out = printed(run_heat(occ, sandbox, cloud, "--print", "--debug"))  # stderr checked for secrets
    assert list(out) == ["heat", "dep-a"]
    assert out["heat"] == METADATA and out["dep-a"] == {"keystone": {"debug": True}}
    # A bare stack name is resolved through Heat's redirect, then the metadata fetched with the token.
    gets = cloud.heat.received("GET")
    assert [r.path.split("/stacks/")[1] for r in gets] == [
        "mystack", "mystack/%s/resources/server1/metadata" % cloud.heat.stacks["mystack"]]
    assert all(cloud.keystone.token_info(r.header("X-Auth-Token")) for r in gets)
    # Print mode writes nothing: not even the token cache.
    assert not any(occ.cachedir.iterdir())


def test_stack_name_and_id_needs_no_lookup(cloud, occ, sandbox):
    stack_id = cloud.heat.add_stack("mystack")
    cloud.heat.set_metadata("mystack", "server1", {"k": "v"})
    out = printed(run_heat(occ, sandbox, cloud, "--print", stack_id="mystack/" + stack_id))
    assert out == {"heat": {"k": "v"}}
    assert len(cloud.heat.received("GET")) == 1


def test_a_stack_recreated_under_the_same_name_is_looked_up_again(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"v": 1})
    assert run_heat(occ, sandbox, cloud, "--one-time", "--command", "true").returncode == 0
    cloud.heat.add_stack("mystack")  # new id
    cloud.heat.set_metadata("mystack", "server1", {"v": 2})
    assert "HTTP 404" in run_heat(occ, sandbox, cloud, "--one-time", "--command", "true").stderr
    assert run_heat(occ, sandbox, cloud, "--one-time", "--command", "true").returncode == 0
    assert json.loads(occ.cachedir.joinpath("heat.json").read_text()) == {"v": 2}


def test_token_is_reused_across_runs_until_it_nears_expiry(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", METADATA)
    marker = sandbox.path("run", "ran")
    cmd = "echo run >> %s" % marker
    for _ in range(3):
        assert run_heat(occ, sandbox, cloud, "--one-time", "--command", cmd).returncode == 0
    assert cloud.keystone.auth_count == 1  # the original authenticated with the password every poll
    assert marker.read_text() == "run\n"  # one change, one command run
    assert len(cloud.heat.received("GET", r"/stacks/mystack/?$")) == 1  # the stack lookup is remembered too
    cache = [p for p in occ.cachedir.joinpath(".agent-state").iterdir() if p.name.startswith("keystone-token")]
    assert len(cache) == 1 and stat.S_IMODE(cache[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(cache[0].parent.stat().st_mode) == 0o700
    assert json.loads(occ.cachedir.joinpath("dep-a.json").read_text()) == {"keystone": {"debug": True}}
    # A token that would expire within the safety margin is not reused.
    cloud.keystone.token_ttl = 60
    cache[0].unlink()
    for _ in range(2):
        before = cloud.keystone.auth_count
        assert run_heat(occ, sandbox, cloud, "--one-time", "--command", cmd).returncode == 0
        assert cloud.keystone.auth_count > before


def test_revoked_cached_token_is_replaced(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    assert run_heat(occ, sandbox, cloud, "--one-time", "--command", "true").returncode == 0
    assert printed(run_heat(occ, sandbox, cloud, "--print")) == {"heat": {"k": 1}}
    cloud.keystone.expire_all_tokens()  # Keystone forgot every token: Heat answers 401
    cloud.heat.set_metadata("mystack", "server1", {"k": 2})
    assert printed(run_heat(occ, sandbox, cloud, "--print")) == {"heat": {"k": 2}}
    assert cloud.keystone.auth_count == 2


def test_keystone_cache_dir_option_holds_the_token(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    ks_dir = sandbox.path("lib", "keystone-cache")
    conf = write_config(sandbox, {"heat": heat_section(cloud), "keystone": {"cache_dir": str(ks_dir)}})
    for _ in range(2):
        assert occ("--config-file", str(conf), "--one-time", "--command", "true", "heat").returncode == 0
    assert cloud.keystone.auth_count == 1
    assert [p.name.startswith("keystone-token") for p in ks_dir.iterdir()] == [True]
    assert stat.S_IMODE(ks_dir.stat().st_mode) == 0o700


def test_keystone_cache_ttl_bounds_the_reuse_of_a_cached_token(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})

    def two_runs(ttl):
        conf = write_config(sandbox, {"heat": heat_section(cloud), "keystone": {"cache_ttl": ttl}})
        before = cloud.keystone.auth_count
        for _ in range(2):
            assert occ("--config-file", str(conf), "--one-time", "--command", "true", "heat").returncode == 0
        return cloud.keystone.auth_count - before

    assert two_runs(1800) == 1
    assert two_runs(0) == 2  # the saved token is older than cache_ttl each time: authenticate again


def test_region_name_picks_the_regional_endpoint(cloud, occ, sandbox):
    other = HeatServer(cloud.keystone, cloud.project_id).start().register("RegionTwo")
    try:
        cloud.heat.set_metadata("mystack", "server1", {"region": 1})
        other.set_metadata("mystack", "server1", {"region": 2})
        assert printed(run_heat(occ, sandbox, cloud, "--print", region_name="RegionTwo")) == {"heat": {"region": 2}}
        result = run_heat(occ, sandbox, cloud, "--print", region_name="Atlantis")
        assert printed(result) == {}
        assert "Source [heat] Unavailable" in result.stderr and "Atlantis" in result.stderr
    finally:
        other.stop()


def test_wrong_password_is_unavailable_without_leaking(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    cloud.keystone.users[cloud.user_id] = "another-password"
    result = run_heat(occ, sandbox, cloud, "--print", "--debug")
    assert printed(result) == {}
    assert "Source [heat] Unavailable" in result.stderr and "Unauthorized" in result.stderr
    assert cloud.keystone.auth_failures == 1  # run_tool asserted no planted secret reached stderr


@pytest.mark.parametrize("missing", ["auth_url", "password", "project_id", "user_id", "stack_id", "resource_name"])
def test_missing_setting_means_not_configured(cloud, occ, sandbox, missing):
    section = heat_section(cloud)
    del section[missing]
    conf = write_config(sandbox, {"heat": section})
    result = occ("--config-file", str(conf), "--print", "--debug", "heat")
    assert printed(result) == {}
    assert "Source [heat] Not configured" in result.stderr and "No %s configured" % missing in result.stderr
    assert cloud.keystone.auth_count == 0 and not cloud.heat.requests


def test_deployment_without_config_is_unavailable(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"deployments": [{"name": "x", "group": "os-apply-config"}]})
    result = run_heat(occ, sandbox, cloud, "--print")
    assert printed(result) == {} and "Source [heat] Unavailable" in result.stderr


def test_timeout_option_bounds_a_stalled_heat(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    cloud.heat.delay_s = 12
    started = time.monotonic()
    result = run_heat(occ, sandbox, cloud, "--print", timeout=1)
    assert printed(result) == {} and "Source [heat] Unavailable" in result.stderr
    assert time.monotonic() - started < 9  # timeout 1 s (+ start-up), not the 12 s stall


def test_a_heat_api_that_timed_out_is_given_longer_on_the_next_poll(cloud, occ, sandbox, running):
    """heat-api still serves a GET its agent gave up on: at N = 200 (bench/FLEET.md) a fleet that retried on
    the same timeout kept it busy with abandoned reads. A poll that timed out makes the next wait twice as
    long; heat-api's answer brings the configured timeout back."""
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    cloud.heat.delay_s = 1.5
    runs = sandbox.path("run", "runs")
    conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 0.2, "polling_interval": 0.2},
                                  "heat": heat_section(cloud, timeout=1)})
    agent = running(occ, "--config-file", str(conf), "--command", "echo run >> %s" % runs, "heat")
    heat_api = cloud.heat.endpoint.split("//", 1)[1].split("/", 1)[0]
    timed_out = "%s gave no answer within 1 s; the next request to it waits up to 2 s." % heat_api
    assert wait_for(lambda: runs.exists(), timeout=30, what="a poll that waited long enough for heat-api")
    assert agent.count(timed_out) >= 1
    # heat-api still takes 1.5 s: a poll after the answer times out at 1 s again, and says so again.
    assert wait_for(lambda: agent.count(timed_out) >= 2, timeout=30)
    assert agent.count("waits up to 4 s") == 0
    assert "Traceback" not in agent.stop()


def test_a_token_keystone_issues_late_is_waited_for_not_asked_for_again(cloud, occ, sandbox):
    """Keystone issues a token its client gave up on: at N = 200 every agent gave up three (bench/FLEET.md).
    The token request is waited for past the configured timeout, and made once."""
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    cloud.keystone.delay_s = 2.0
    result = run_heat(occ, sandbox, cloud, "--print", timeout=1)
    assert printed(result) == {"heat": {"k": 1}} and "gave no answer" not in result.stderr
    assert cloud.keystone.auth_count == 1


def test_options_on_the_command_line(cloud, occ, sandbox):
    """The dashed per-collector flags of SPEC §2.1.3 reach the collector."""
    cloud.heat.set_metadata("mystack", "server1", {"cli": 1})
    args = ["--heat-auth-url", cloud.auth_url, "--heat-user-id", cloud.user_id, "--heat-password", cloud.password,
            "--heat-project-id", cloud.project_id, "--heat-stack-id", "mystack", "--heat-resource-name", "server1",
            "--heat-region-name", "RegionOne", "--heat-timeout", "5", "--heat-noinsecure", "--print", "heat"]
    result = occ(*args)
    assert printed(result) == {"heat": {"cli": 1}}
    assert "--heat-password was given on the command line" in result.stderr


def test_auth_url_v2_is_discovered_as_v3(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    out = printed(run_heat(occ, sandbox, cloud, "--print", auth_url=cloud.keystone.url + "/v2.0"))
    assert out == {"heat": {"k": 1}}
    assert cloud.keystone.received("GET", r"^/?$")  # version discovery on the unversioned URL


def test_continuous_agent_polls_with_one_token(cloud, occ, sandbox):
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    marker = sandbox.path("run", "ran")
    conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 0.2, "polling_interval": 0.2},
                                  "heat": heat_section(cloud)})
    proc = occ.popen("--config-file", str(conf), "--command", "echo run >> %s" % marker, "heat")
    try:
        deadline = time.time() + 20
        while len(cloud.heat.received("GET", "metadata")) < 4 and time.time() < deadline:
            time.sleep(0.1)
        cloud.heat.set_metadata("mystack", "server1", {"k": 2})
        while (not marker.exists() or marker.read_text().count("run") < 2) and time.time() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert marker.read_text() == "run\nrun\n"
    assert cloud.keystone.auth_count == 1
    assert_no_planted_secret(err, "agent stderr")


def test_continuous_agent_authenticates_once_per_token_lifetime(cloud, occ, sandbox):
    """Issue 16: N polls cost one token POST and at most one discovery GET; a 401 or an expiry one re-auth."""
    cloud.heat.set_metadata("mystack", "server1", {"k": 1})
    conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 0.1, "polling_interval": 0.1},
                                  "heat": heat_section(cloud, auth_url=cloud.keystone.url)})  # unversioned: discovery
    metadata_gets = lambda: cloud.heat.received("GET", "metadata")  # noqa: E731
    proc = occ.popen("--config-file", str(conf), "--command", "true", "heat")
    try:
        wait_for(lambda: len(metadata_gets()) >= 10, what="ten polls")
        assert cloud.keystone.auth_count == 1
        assert len(cloud.keystone.received("GET", r"^/(v3/?)?$")) <= 1  # discovery, once per process
        # Keystone forgot its tokens: Heat answers 401 once, the agent re-authenticates once.
        cloud.keystone.expire_all_tokens()
        polls = len(metadata_gets())
        wait_for(lambda: len(metadata_gets()) >= polls + 10, what="ten more polls after the revocation")
        assert cloud.keystone.auth_count == 2
        # Tokens that live just past the renewal margin: each is renewed once when it nears expiry.
        cloud.keystone.token_ttl = 122.5
        cloud.keystone.expire_all_tokens()
        wait_for(lambda: cloud.keystone.auth_count >= 5, timeout=30, what="three renewals of short tokens")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    used = [r.header("X-Auth-Token") for r in metadata_gets()]
    distinct = list(dict.fromkeys(used))
    assert cloud.keystone.auth_count in (len(distinct), len(distinct) + 1)  # the last may not be used yet
    # Every token but the last served many polls: none was fetched for a single request.
    counts = [used.count(t) for t in distinct[:-1]]
    assert min(counts) >= 3, counts
