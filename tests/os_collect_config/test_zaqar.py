"""The zaqar collector (SPEC §2.10, §5.9.4, §5.9.12) run through the real os-collect-config against loopback Keystone + Zaqar."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.os_collect_config.keystone_sources import METADATA, printed, write_config
from tests.servers.zaqar import ZaqarServer
from tests.support.listener import unaccepted_port
from tests.support.sandbox import assert_no_planted_secret
from tests.support.wait import wait_for

QUEUE = "server1-queue"


def zaqar_section(c, **extra):
    section = {"auth_url": c.auth_url, "user_id": c.user_id, "password": c.password,
               "project_id": c.project_id, "queue_id": QUEUE}
    section.update(extra)
    return {k: v for k, v in section.items() if v is not None}


def run_zaqar(occ, sandbox, c, *args, default=None, **extra):
    sections = {"DEFAULT": default} if default else {}
    sections["zaqar"] = zaqar_section(c, **extra)
    conf = write_config(sandbox, sections)
    return occ("--config-file", str(conf), *args, "zaqar")


def heat_posts(c, body, queue=QUEUE):
    return c.zaqar.post_message(c.project_id, queue, body)


# -- HTTP mode -----------------------------------------------------------------------------------
def test_print_reads_the_newest_message_and_consumes_nothing(cloud, occ, sandbox):
    heat_posts(cloud, {"old": 1})
    heat_posts(cloud, METADATA)
    out = printed(run_zaqar(occ, sandbox, cloud, "--print", "--debug"))  # stderr checked for secrets
    assert out == {"zaqar": METADATA, "dep-a": {"keystone": {"debug": True}}}
    assert len(cloud.zaqar.messages(cloud.project_id, QUEUE)) == 2  # the claim was released
    assert not any(occ.cachedir.iterdir())


def test_store_mode_claims_saves_then_deletes(cloud, occ, sandbox):
    heat_posts(cloud, {"old": 1})
    heat_posts(cloud, METADATA)
    assert run_zaqar(occ, sandbox, cloud, "--one-time", "--command", "true").returncode == 0
    assert cloud.zaqar.messages(cloud.project_id, QUEUE) == []
    assert json.loads(occ.cachedir.joinpath("zaqar.json").read_text()) == METADATA
    claim, delete = cloud.zaqar.requests
    assert (claim.method, claim.path) == ("POST", "/v2/queues/%s/claims" % QUEUE)
    assert (delete.method, delete.q("claim_ids")) == ("DELETE", claim_id_of(cloud))
    for r in (claim, delete):
        uuid.UUID(r.header("Client-ID"))  # Zaqar wants a UUID
        assert r.header("X-Project-Id") == cloud.project_id
        assert cloud.keystone.token_info(r.header("X-Auth-Token"))


def claim_id_of(c):
    return c.zaqar.requests[1].q("claim_ids")


def test_a_claim_zaqar_answers_late_is_waited_for_not_made_again(cloud, occ, sandbox):
    """A claim its client gave up on still hides the messages it took for the claim's ttl (60 s): 200 agents
    whose claims timed out at start first ran 436 to 523 s after it (bench/FLEET.md). The answer is waited
    for, past the configured 10 s, and the claim made once."""
    heat_posts(cloud, METADATA)
    late = [10.5]

    def answer_late(request, handler):
        if request.method == "POST" and "/claims" in request.path and late:
            time.sleep(late.pop())
        return False  # then answered as usual

    cloud.zaqar.injector = answer_late
    result = run_zaqar(occ, sandbox, cloud, "--one-time", "--command", "true")
    assert result.returncode == 0 and "gave no answer" not in result.stderr
    assert json.loads(occ.cachedir.joinpath("zaqar.json").read_text()) == METADATA
    claim, delete = cloud.zaqar.requests
    assert (claim.method, delete.method) == ("POST", "DELETE") and late == []
    assert cloud.zaqar.messages(cloud.project_id, QUEUE) == []


def test_failed_command_is_retried_after_the_message_was_taken(cloud, occ, sandbox):
    """SPEC §5.9.4: the original popped the message, so a failed command was never retried."""
    heat_posts(cloud, METADATA)
    flag, runs = sandbox.path("run", "fail"), sandbox.path("run", "runs")
    flag.write_text("")
    cmd = "echo run >> %s; test ! -e %s" % (runs, flag)
    first = run_zaqar(occ, sandbox, cloud, "--one-time", "--command", cmd)
    assert first.returncode == 1 and cloud.zaqar.messages(cloud.project_id, QUEUE) == []
    flag.unlink()
    assert run_zaqar(occ, sandbox, cloud, "--one-time", "--command", cmd).returncode == 0
    assert runs.read_text() == "run\nrun\n"
    assert json.loads(occ.cachedir.joinpath("dep-a.json.last").read_text()) == {"keystone": {"debug": True}}
    # Nothing new on the queue: no change, no run, and no warning about an empty queue.
    third = run_zaqar(occ, sandbox, cloud, "--one-time", "--command", cmd)
    assert third.returncode == 0 and runs.read_text() == "run\nrun\n"
    assert "Unavailable" not in third.stderr
    heat_posts(cloud, {"new": True})
    assert run_zaqar(occ, sandbox, cloud, "--one-time", "--command", cmd).returncode == 0
    assert runs.read_text().count("run") == 3


def test_empty_queue_is_quiet_and_yields_nothing(cloud, occ, sandbox):
    result = run_zaqar(occ, sandbox, cloud, "--print")
    assert printed(result) == {} and "WARNING" not in result.stderr


def test_token_is_shared_and_reused(cloud, occ, sandbox):
    heat_posts(cloud, {"a": 1})
    for _ in range(3):
        assert run_zaqar(occ, sandbox, cloud, "--one-time", "--command", "true").returncode == 0
    assert cloud.keystone.auth_count == 1


def test_region_name_picks_the_regional_queue_service(cloud, occ, sandbox):
    other = ZaqarServer(cloud.keystone).start().register("RegionTwo")
    try:
        heat_posts(cloud, {"region": 1})
        other.post_message(cloud.project_id, QUEUE, {"region": 2})
        out = printed(run_zaqar(occ, sandbox, cloud, "--print", region_name="RegionTwo"))
        assert out == {"zaqar": {"region": 2}}
    finally:
        other.stop()


@pytest.mark.parametrize("missing", ["auth_url", "password", "project_id", "user_id", "queue_id"])
def test_missing_setting_is_not_configured(cloud, occ, sandbox, missing):
    result = run_zaqar(occ, sandbox, cloud, "--print", "--debug", **{missing: None})
    assert printed(result) == {} and "Source [zaqar] Not configured" in result.stderr
    assert "No %s configured" % missing in result.stderr
    assert not cloud.zaqar.requests and cloud.keystone.auth_count == 0


def test_wrong_password_is_unavailable_without_leaking(cloud, occ, sandbox):
    cloud.keystone.users[cloud.user_id] = "changed"
    result = run_zaqar(occ, sandbox, cloud, "--print", "--debug")
    assert printed(result) == {} and "Source [zaqar] Unavailable" in result.stderr


# -- websocket mode ------------------------------------------------------------------------------
def test_websocket_print_lists_without_consuming(cloud, occ, sandbox):
    heat_posts(cloud, METADATA)
    out = printed(run_zaqar(occ, sandbox, cloud, "--print", "--debug", use_websockets=True))
    assert out == {"zaqar": METADATA, "dep-a": {"keystone": {"debug": True}}}
    actions = [f["action"] for f in cloud.zaqar.ws_requests]
    assert actions == ["authenticate", "queue_create", "subscription_create", "message_list"]
    assert cloud.zaqar.ws_requests[2]["body"] == {"queue_name": QUEUE, "ttl": 10000}
    assert len(cloud.zaqar.messages(cloud.project_id, QUEUE)) == 1
    assert not cloud.zaqar.requests  # nothing over HTTP


def test_websocket_one_time_reads_the_queued_message_then_deletes_it(cloud, occ, sandbox):
    posted = heat_posts(cloud, METADATA)
    assert run_zaqar(occ, sandbox, cloud, "--one-time", "--command", "true", use_websockets=True).returncode == 0
    assert json.loads(occ.cachedir.joinpath("zaqar.json").read_text()) == METADATA
    read, delete = cloud.zaqar.ws_requests[-2:]
    assert read["action"] == "message_list" and read["body"] == {"queue_name": QUEUE, "limit": 20}
    assert delete["action"] == "message_delete_many" and delete["body"] == {"queue_name": QUEUE,
                                                                            "message_ids": [posted]}
    assert delete["headers"]["X-Project-ID"] == cloud.project_id and uuid.UUID(delete["headers"]["Client-ID"])
    assert cloud.zaqar.messages(cloud.project_id, QUEUE) == []


def test_websocket_notification_wakes_the_agent_at_once_and_survives_a_reconnect(cloud, occ, sandbox):
    runs = sandbox.path("run", "runs")
    conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 30, "polling_interval": 30},
                                  "zaqar": zaqar_section(cloud, use_websockets=True)})
    proc = occ.popen("--config-file", str(conf), "--command", "echo run >> %s" % runs, "zaqar")
    try:
        assert wait_for(lambda: cloud.zaqar.ws_connections == 1 and len(cloud.zaqar.ws_requests) >= 4)
        posted = time.monotonic()
        heat_posts(cloud, {"v": 1})
        assert wait_for(lambda: runs.exists() and runs.read_text() == "run\n", timeout=10)
        assert time.monotonic() - posted < 5  # not the 30 s polling interval
        cloud.zaqar.drop_websockets()
        assert wait_for(lambda: len([f for f in cloud.zaqar.ws_requests if f["action"] == "authenticate"]) == 2)
        assert wait_for(lambda: cloud.zaqar.ws_connections == 1 and
                        cloud.zaqar.ws_requests[-1]["action"] == "message_delete_many")
        heat_posts(cloud, {"v": 2})
        assert wait_for(lambda: runs.read_text() == "run\nrun\n", timeout=10)
        assert json.loads(occ.cachedir.joinpath("zaqar.json").read_text()) == {"v": 2}
        assert cloud.keystone.auth_count == 1  # the reconnect reused the token
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert_no_planted_secret(err, "agent stderr")


def test_websocket_reconnect_after_many_notifications_keeps_the_newest_metadata(cloud, occ, sandbox, running):
    """Notified messages stay queued (real Zaqar's notifier does not remove them, nor does the loopback).

    After a reconnect the queue holds everything posted since the last read, oldest first; reading one
    batch of 20 from 25 took #1..#20 and put #20 back over the #25 already run. All must be read."""
    runs = sandbox.path("run", "runs")
    conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 30, "polling_interval": 30},
                                  "zaqar": zaqar_section(cloud, use_websockets=True)})
    # Each run records the metadata it was given, so a regressed body shows as a run on it.
    agent = running(occ, "--config-file", str(conf), "--command",
                    "tr -d ' \\n' < %s >> %s; echo >> %s" % (occ.cachedir / "zaqar.json", runs, runs), "zaqar")
    cached = lambda: json.loads(occ.cachedir.joinpath("zaqar.json").read_text())  # noqa: E731
    newest = '{"v":25}'
    subscribed = "Subscribed to zaqar queue"
    assert wait_for(lambda: agent.count(subscribed) == 1 and len(cloud.zaqar.ws_requests) >= 4)
    for v in range(1, 26):
        heat_posts(cloud, {"v": v})
    assert wait_for(lambda: runs.exists() and runs.read_text().splitlines()[-1:] == [newest])
    assert len(cloud.zaqar.messages(cloud.project_id, QUEUE)) == 25
    done = runs.read_text()
    latest = lambda: json.loads(occ.cachedir.joinpath(".agent-state", "zaqar.latest.json").read_text())  # noqa: E731
    before = latest()["received"]
    cloud.zaqar.drop_websockets()
    assert wait_for(lambda: cloud.zaqar.ws_connections == 1 and
                    cloud.zaqar.messages(cloud.project_id, QUEUE) == []), \
        "%d messages left queued" % len(cloud.zaqar.messages(cloud.project_id, QUEUE))
    # The reconnect reads the queue and hands the newest body it read to the loop (recorded, with the
    # time, in the collector's state) before it deletes them.
    assert wait_for(lambda: latest()["received"] > before, what="the queued messages delivered")
    assert latest()["body"] == {"v": 25}
    assert agent.count(subscribed) == 2
    assert cached() == {"v": 25}
    assert runs.read_text() == done
    assert "Traceback" not in agent.stop()


def test_websocket_reconnects_with_a_new_token_when_zaqar_closes_on_expiry(cloud, occ, sandbox):
    cloud.keystone.token_ttl = 3  # Zaqar closes the socket (4003) when the token expires
    runs = sandbox.path("run", "runs")
    conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 30, "polling_interval": 30},
                                  "zaqar": zaqar_section(cloud, use_websockets=True)})
    proc = occ.popen("--config-file", str(conf), "--command", "echo run >> %s" % runs, "zaqar")
    try:
        tokens = lambda: {f["headers"].get("X-Auth-Token") for f in cloud.zaqar.ws_requests  # noqa: E731
                          if f["action"] == "authenticate"}
        assert wait_for(lambda: len(tokens()) >= 2 and cloud.zaqar.ws_connections == 1, timeout=20)
        assert wait_for(lambda: cloud.zaqar.ws_requests[-1]["action"] == "message_list")  # an empty queue
        heat_posts(cloud, {"after": "expiry"})
        assert wait_for(lambda: runs.exists() and runs.read_text() == "run\n", timeout=10)
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_websocket_authentication_answered_late_is_waited_for_not_asked_for_again(cloud, occ, sandbox, running):
    """Real Zaqar's websocket server validates one token at a time (0.6 s each, bench/FLEET.md), to the end
    whether or not its client still waits: 200 agents that gave up after 10 s and asked again kept it busy
    with 770 validations nobody waited for. The answer is waited for (up to 300 s), past the
    configured 10 s, and the subscription asked for once."""
    cloud.zaqar.ws_late_replies["authenticate"] = [10.5]  # past the collector's 10 s
    heat_posts(cloud, {"v": 1})
    runs = sandbox.path("run", "runs")
    conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 600, "polling_interval": 600},
                                  "zaqar": zaqar_section(cloud, use_websockets=True)})
    agent = running(occ, "--config-file", str(conf), "--command", "echo run >> %s" % runs, "zaqar")
    assert wait_for(lambda: runs.exists() and runs.read_text() == "run\n", timeout=40)
    assert agent.count("Subscribed to zaqar queue") == 1
    assert len([f for f in cloud.zaqar.ws_requests if f["action"] == "authenticate"]) == 1
    assert agent.count("gave no answer") == 0
    assert "Traceback" not in agent.stop()


def test_a_queued_message_whose_read_answer_is_lost_is_read_again(cloud, occ, sandbox, running):
    """At 50 agents subscribing at once, real Zaqar answered reads after the agents had given up. A pop has
    deleted the messages by then: that server never ran its deployment (bench/FLEET.md). The answers to the
    first read and the first delete are lost here (the connection breaks); the message must still be run,
    and deleted."""
    cloud.zaqar.ws_lost_replies.update({"message_list": 1, "message_delete_many": 1})
    heat_posts(cloud, {"v": 1})
    runs = sandbox.path("run", "runs")
    conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 600, "polling_interval": 600},
                                  "zaqar": zaqar_section(cloud, use_websockets=True)})
    agent = running(occ, "--config-file", str(conf), "--command", "echo run >> %s" % runs, "zaqar")
    assert wait_for(lambda: runs.exists() and runs.read_text() == "run\n", timeout=40)
    assert wait_for(lambda: cloud.zaqar.messages(cloud.project_id, QUEUE) == [])
    assert wait_for(lambda: agent.count("Subscribed to zaqar queue") == 1)
    assert cloud.zaqar.ws_lost_replies == {"message_list": 0, "message_delete_many": 0}
    assert len([f for f in cloud.zaqar.ws_requests if f["action"] == "message_list"]) >= 3
    assert runs.read_text() == "run\n"
    assert "Traceback" not in agent.stop()


def test_websocket_does_not_hold_up_other_collectors(cloud, occ, sandbox):
    """The original blocked in recv() with no timeout; an idle queue must not delay the poll."""
    occ.write_local("local.json", {"from": "local"})
    conf = write_config(sandbox, {"zaqar": zaqar_section(cloud, use_websockets=True)})
    started = time.monotonic()
    result = occ("--config-file", str(conf), "--print", "zaqar", "local")
    assert printed(result) == {"local.json": {"from": "local"}}
    assert time.monotonic() - started < 8


def test_websocket_unreachable_is_unavailable_quickly(cloud, occ, sandbox):
    cloud.keystone.replace_endpoint("messaging-websocket", "ws://127.0.0.1:9")
    started = time.monotonic()
    result = run_zaqar(occ, sandbox, cloud, "--print", use_websockets=True)
    assert printed(result) == {} and "Source [zaqar] Unavailable" in result.stderr
    assert time.monotonic() - started < 15


def test_websocket_connection_not_accepted_is_left_after_the_configured_timeout(cloud, occ, sandbox, running):
    """Only the answers to the websocket's requests get the committed wait: a connection Zaqar never took
    cost it nothing, and is left after the configured 10 s, then tried again on a longer wait."""
    with unaccepted_port() as port:
        cloud.keystone.replace_endpoint("messaging-websocket", "ws://127.0.0.1:%d" % port)
        conf = write_config(sandbox, {"DEFAULT": {"min_polling_interval": 600, "polling_interval": 600},
                                      "zaqar": zaqar_section(cloud, use_websockets=True)})
        agent = running(occ, "--config-file", str(conf), "--command", "true", "zaqar")
        assert wait_for(lambda: agent.count(
            "Zaqar's websocket at 127.0.0.1:%d gave no answer within 10 s to connect or 300 s to answer; the next "
            "request to it waits up to 20 s." % port) == 1, timeout=40)
    assert "Traceback" not in agent.stop()


def test_use_websockets_on_the_command_line(cloud, occ, sandbox):
    heat_posts(cloud, {"cli": 1})
    conf = write_config(sandbox, {"zaqar": zaqar_section(cloud)})
    out = printed(occ("--config-file", str(conf), "--zaqar-use-websockets", "--print", "zaqar"))
    assert out == {"zaqar": {"cli": 1}} and cloud.zaqar.ws_requests and not cloud.zaqar.requests


def test_claim_id_from_location_or_message_href():
    from os_collect_config.collectors.base import Unavailable
    from os_collect_config.collectors.zaqar import claim_id_of

    msgs = [{"id": "m1", "href": "/v2/queues/q/messages/m1?claim_id=c-from-href"}]
    assert claim_id_of("/v2/queues/q/claims/c-from-location", msgs) == "c-from-location"
    assert claim_id_of(None, msgs) == "c-from-href"
    with pytest.raises(Unavailable):
        claim_id_of(None, [{"id": "m1", "href": "/v2/queues/q/messages/m1"}])
