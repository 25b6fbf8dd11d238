"""request collector against a Swift temp URL (SPEC §2.9, §12.13.5).

One conditional GET per poll, 304 reuse, and failures that keep the last good data.
"""
from __future__ import annotations

import json

from tests.support.sandbox import PLANTED_SECRETS

META = {"os-collect-config": {"command": "true"},
        "deployments": [{"id": "1", "name": "dep-a", "group": "os-apply-config", "config": {"k": "v"}},
                        {"id": "2", "name": "dep-b", "group": "script", "config": "#!/bin/sh"},
                        {"id": "3", "name": "dep-c", "config": {"ungrouped": True}}]}


def _url(swift):
    swift.put_object("heat", "server1", META)
    return swift.temp_url("heat", "server1")


def test_print_explodes_deployments(occ, swift):
    res = occ("--print", "--request-metadata-url", _url(swift), "request")
    assert res.returncode == 0, res.stderr
    assert list(json.loads(res.stdout)) == ["request", "dep-a", "dep-c"]
    assert json.loads(res.stdout)["dep-a"] == {"k": "v"}


def test_one_conditional_get_per_poll_and_304_means_unchanged(occ, sandbox, swift):
    url = _url(swift)
    seen = sandbox.path("seen")
    cmd = "printenv OS_CONFIG_FILES >> %s" % seen
    assert occ("--one-time", "-c", cmd, "--request-metadata-url", url, "request").returncode == 0
    first = swift.received()
    assert [r.method for r in first] == ["GET"]
    assert first[0].header("If-None-Match") is None
    swift.clear()
    assert occ("--one-time", "-c", cmd, "--request-metadata-url", url, "request").returncode == 0
    second = swift.received()
    assert [r.method for r in second] == ["GET"]  # no HEAD, ever
    assert second[0].header("If-None-Match") and second[0].header("If-Modified-Since")
    assert len(seen.read_text().splitlines()) == 1  # 304: nothing changed, no command
    assert swift.bytes_sent == 0
    c = occ.cachedir
    assert seen.read_text().strip() == "%s/request.json:%s/dep-a.json:%s/dep-c.json" % (c, c, c)
    # The object changes: a full 200, a change, a run.
    swift.put_object("heat", "server1", dict(META, extra=1))
    assert occ("--one-time", "-c", cmd, "--request-metadata-url", url, "request").returncode == 0
    assert len(seen.read_text().splitlines()) == 2
    assert occ.cache_json("request.json")["extra"] == 1


def test_validators_not_trusted_when_cache_file_differs(occ, swift):
    url = _url(swift)
    occ("--one-time", "-c", "true", "--request-metadata-url", url, "request")
    occ.cachedir.joinpath("request.json").write_text('{"tampered": 1}')
    swift.clear()
    occ("--one-time", "-c", "true", "--request-metadata-url", url, "request")
    assert swift.received()[0].header("If-None-Match") is None
    assert occ.cache_json("request.json") == META


def _fails(occ, sandbox, swift, breaker):
    """First a good poll; then ``breaker`` breaks the source while a local file changes."""
    url = _url(swift)
    seen = sandbox.path("seen")
    cmd = "printenv OS_CONFIG_FILES >> %s" % seen
    occ.write_local("l", {"n": 1})
    assert occ("--one-time", "-c", cmd, "--request-metadata-url", url, "request", "local").returncode == 0
    breaker(swift)
    occ.write_local("l", {"n": 2})
    res = occ("--one-time", "-c", cmd, "--request-metadata-url", url, "request", "local")
    return res, seen.read_text().splitlines()


def _assert_last_good_kept(occ, res, runs):
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert "Source [request] Unavailable." in res.stderr and "keeping its last good data" in res.stderr
    c = occ.cachedir
    assert runs[-1] == "%s/request.json:%s/dep-a.json:%s/dep-c.json:%s/l.json" % (c, c, c, c)
    assert occ.cache_json("request.json") == META


def test_5xx_keeps_last_good_metadata_in_force(occ, sandbox, swift):
    def down(server):
        server.fail_with = 503
    res, runs = _fails(occ, sandbox, swift, down)
    _assert_last_good_kept(occ, res, runs)
    assert "returned HTTP 503" in res.stderr


def test_garbage_and_non_object_bodies_keep_last_good(occ, sandbox, swift):
    res, runs = _fails(occ, sandbox, swift, lambda s: s.put_object("heat", "server1", b"<html>oops"))
    _assert_last_good_kept(occ, res, runs)
    assert "not JSON" in res.stderr
    swift.put_object("heat", "server1", [1, 2])
    res = occ("--one-time", "-c", "true", "--request-metadata-url", swift.temp_url("heat", "server1"), "request")
    assert res.returncode == 0 and "not an object" in res.stderr


def test_unreachable_and_deployment_without_config(occ, sandbox, swift):
    res, runs = _fails(occ, sandbox, swift, lambda s: s.stop())
    _assert_last_good_kept(occ, res, runs)


def test_deployment_without_config_is_unavailable_not_a_crash(occ, swift):
    swift.put_object("heat", "server1", {"deployments": [{"name": "x", "group": "os-apply-config"}]})
    res = occ("--print", "--request-metadata-url", swift.temp_url("heat", "server1"), "request")
    assert res.returncode == 0 and json.loads(res.stdout) == {}
    assert "deployment 'x' under deployments has no config" in res.stderr


def test_hostile_deployment_names_are_refused(occ, swift):
    swift.put_object("heat", "server1", {"deployments": [
        {"name": n, "group": "os-apply-config", "config": {"n": n}}
        for n in ("../escape", "ec2", "os_config_files", ".hidden", "", "ok")]})
    res = occ("--one-time", "-c", "true", "--request-metadata-url", swift.temp_url("heat", "server1"), "request")
    assert res.returncode == 0
    names = sorted(p.name for p in occ.cachedir.iterdir() if not p.name.startswith("."))
    assert names == ["ok.json", "ok.json.last", "ok.json.orig", "os_config_files.json", "request.json",
                     "request.json.last", "request.json.orig"]
    assert not occ.cachedir.parent.joinpath("escape.json").exists()
    assert res.stderr.count("ignoring a key") == 5


def test_temp_url_signature_never_logged(occ, swift):
    swift.temp_url_key = PLANTED_SECRETS[2]
    url = _url(swift)
    sig = url.split("temp_url_sig=")[1].split("&")[0]
    swift.fail_with = 500
    res = occ("--one-time", "--debug", "-c", "true", "--request-metadata-url", url, "request")
    assert "returned HTTP 500" in res.stderr and sig not in res.stderr and sig not in res.stdout


def test_expired_temp_url_is_unavailable(occ, swift):
    swift.put_object("heat", "server1", META)
    url = swift.temp_url("heat", "server1", expires=1000)
    res = occ("--print", "--request-metadata-url", url, "request")
    assert res.returncode == 0 and "returned HTTP 401" in res.stderr and json.loads(res.stdout) == {}


def test_failed_command_is_retried_even_while_the_source_is_down(occ, sandbox, swift):
    url = _url(swift)
    seen = sandbox.path("seen")
    flag = sandbox.path("fail")
    flag.write_text("")
    cmd = "printenv OS_CONFIG_FILES >> %s; test ! -e %s" % (seen, flag)
    assert occ("--one-time", "-c", cmd, "--request-metadata-url", url, "request").returncode == 1
    swift.fail_with = 503  # the data the failed command saw is only in the cache now
    flag.unlink()
    res = occ("--one-time", "-c", cmd, "--request-metadata-url", url, "request")
    assert res.returncode == 0 and len(seen.read_text().splitlines()) == 2
    assert occ.cache_json("request.json.last") == META


def test_slow_source_times_out_and_others_go_on(occ, sandbox, swift):
    url = _url(swift)
    swift.delay_s = 3
    occ.write_local("l", {"n": 1})
    res = occ("--print", "--request-timeout", "0.5", "--request-metadata-url", url, "request", "local")
    assert res.returncode == 0 and json.loads(res.stdout) == {"l": {"n": 1}}
    assert "Source [request] Unavailable." in res.stderr and "timed out" in res.stderr


def test_unconfigured_default_collectors_are_quiet(occ, ec2):
    occ.write_local("l", {"n": 1})
    res = occ("--print", "--ec2-metadata-url", ec2.metadata_url)  # the default collector list
    assert res.returncode == 0 and set(json.loads(res.stdout)) == {"ec2", "l"}
    assert res.stderr == "", res.stderr


def test_slow_sources_are_polled_side_by_side(occ, swift, ec2):
    url = _url(swift)
    ec2.delay_s = 0.5
    ec2_requests_when_request_ran = []
    dispatch = swift.dispatch

    def spy(request):
        ec2_requests_when_request_ran.append(len(ec2.received()))
        return dispatch(request)
    swift.dispatch = spy
    res = occ("--print", "--request-metadata-url", url, "--ec2-metadata-url", ec2.metadata_url, "ec2", "request")
    assert res.returncode == 0 and list(json.loads(res.stdout))[:2] == ["ec2", "request"], res.stderr
    # ec2 (listed first) walks its tree one slow request at a time; request did not wait for that walk.
    walk = len(ec2.received())
    assert walk >= 7 and ec2_requests_when_request_ran[0] <= 2
