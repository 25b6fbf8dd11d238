"""The HTTP helper against a real loopback server: conditional GET, retry with backoff, clear errors."""
import email.utils
import logging
import time

import pytest

from agent_common.backoff import RETRY_AFTER_CAP_S, Backoff, PatientTimeouts
from agent_common.http import HttpClient, HttpError, Validators
from tests.servers.base import LoopbackServer, Response


@pytest.fixture
def server():
    srv = LoopbackServer()
    state = {"etag": '"v1"', "body": b'{"a": 1}'}

    @srv.route("GET", "/doc")
    def doc(request, match):
        if request.header("If-None-Match") == state["etag"]:
            return Response(304, b"", {"ETag": state["etag"]})
        return Response(200, state["body"], {"ETag": state["etag"], "Last-Modified": "Wed, 25 Nov 2026 10:00:00 GMT"})

    srv.state = state
    with srv:
        yield srv


@pytest.fixture
def tls_server(tmp_path):
    """An https server with a self-signed certificate (``tls.cert``) answering "secure" at /x."""
    from tests.servers.tls import make_self_signed

    tls = make_self_signed(tmp_path)
    srv = LoopbackServer()
    srv.add_route("GET", "/x", lambda r, m: Response(200, b"secure"))
    srv.start(ssl_context=tls.server_context())
    srv.tls = tls
    try:
        yield srv
    finally:
        srv.stop()


def test_conditional_get_costs_one_request_and_no_body_when_unchanged(server):
    client = HttpClient(timeout=5)
    first = client.conditional_get(server.url + "/doc")
    assert not first.not_modified and first.body == b'{"a": 1}'
    assert first.validators.etag == '"v1"'
    server.clear()
    second = client.conditional_get(server.url + "/doc", first.validators)
    assert second.not_modified and second.body is None
    assert len(server.requests) == 1 and server.bytes_sent == 0
    assert server.requests[0].header("If-None-Match") == '"v1"'
    server.state.update(etag='"v2"', body=b'{"a": 2}')
    third = client.conditional_get(server.url + "/doc", first.validators)
    assert third.body == b'{"a": 2}' and third.validators.etag == '"v2"'


def test_validators_round_trip_through_dict():
    v = Validators('"x"', "Wed, 25 Nov 2026 10:00:00 GMT")
    assert Validators.from_dict(v.to_dict()) == v
    assert not Validators.from_dict("garbage")


def test_retries_5xx_with_backoff_then_succeeds(server):
    calls = {"n": 0}

    @server.route("GET", "/flaky")
    def flaky(request, match):
        calls["n"] += 1
        return Response(503 if calls["n"] < 3 else 200, b"ok")

    sleeps = []
    client = HttpClient(timeout=5, retries=3, backoff=Backoff(1, 8), sleep=sleeps.append)
    assert client.request("GET", server.url + "/flaky").content == b"ok"
    assert calls["n"] == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1 and 0 <= sleeps[1] <= 2


def test_permanent_4xx_is_not_retried_and_error_hides_query(server):
    sleeps = []
    client = HttpClient(timeout=5, retries=5, sleep=sleeps.append)
    with pytest.raises(HttpError) as err:
        client.request("GET", server.url + "/missing?temp_url_sig=planted-temp-url-sig-3b8d")
    assert err.value.status == 404 and not err.value.retryable
    assert "planted-temp-url-sig-3b8d" not in str(err.value)
    assert sleeps == []


def test_slow_server_times_out_as_retryable_error(server):
    server.delay_s = 1.0
    client = HttpClient(timeout=0.2)
    with pytest.raises(HttpError) as err:
        client.request("GET", server.url + "/doc")
    assert err.value.retryable and err.value.status is None


def test_a_server_that_timed_out_is_given_twice_as_long_until_it_answers(server, caplog):
    """A server still does the work of a request its client gave up on (bench/FLEET.md): the next request to
    it waits twice as long, up to the cap, and its answer brings the configured timeout back."""
    server.delay_s = 0.6
    client = HttpClient(timeout=0.25)
    host = server.url.split("//", 1)[1]
    with caplog.at_level(logging.INFO, logger="agent_common.backoff"):
        for waited in (0.25, 0.5):
            with pytest.raises(HttpError, match="timed out"):
                client.request("GET", server.url + "/doc?sig=planted-sig-51b2")
            assert "%s gave no answer within %g s; the next request to it waits up to %g s." % (
                host, waited, waited * 2) in caplog.text
        assert client.request("GET", server.url + "/doc").status_code == 200  # waited up to 1 s
        assert client.patience.stretched == {}
        with pytest.raises(HttpError, match="timed out"):
            client.request("GET", server.url + "/doc")
    assert "planted-sig" not in caplog.text


def test_the_longer_timeout_stops_at_its_cap():
    patience = PatientTimeouts(cap=3.0)

    def times_out(limits):
        raise TimeoutError(limits)

    for expected in (2.0, 3.0, 3.0):
        with pytest.raises(TimeoutError):
            patience.call("http://user:pw@h:1/x", 1.0, times_out, (TimeoutError,))
        assert patience.stretched == {"h:1": expected}
    with pytest.raises(ConnectionRefusedError):  # not an answer, not a time-out: the longer wait stands
        patience.call("http://h:1/z", 1.0, lambda limits: (_ for _ in ()).throw(ConnectionRefusedError()),
                      (TimeoutError,))
    assert patience.stretched == {"h:1": 3.0}
    assert patience.call("http://h:1/y", 1.0, lambda limits: limits, (TimeoutError,)) == (3.0, 3.0)
    assert patience.stretched == {}


def test_a_committed_request_waits_long_for_its_answer_from_the_first_try(caplog):
    """A server finishes a committed request (a token, a claim) whether or not it is still waited for: its
    answer gets the committed wait at once; the connection the usual one, which a time-out stretches."""
    patience = PatientTimeouts(cap=3.0, committed_wait=30.0)
    assert patience.call("http://h:1/t", 2.0, lambda limits: limits, (TimeoutError,), committed=True) == (2.0, 30.0)
    assert patience.call("http://h:1/t", 60.0, lambda limits: limits, (TimeoutError,), committed=True) == (
        60.0, 60.0)  # a configured timeout above the cap stands

    def times_out(limits):
        raise TimeoutError(limits)

    with caplog.at_level(logging.INFO, logger="agent_common.backoff"), pytest.raises(TimeoutError):
        patience.call("http://h:1/t", 2.0, times_out, (TimeoutError,), "Keystone at ", committed=True)
    assert ("Keystone at h:1 gave no answer within 2 s to connect or 30 s to answer; the next request to it "
            "waits up to 3 s." in caplog.text)  # the cap of the stretched waits
    assert patience.call("http://h:1/t", 2.0, lambda limits: limits, (TimeoutError,), committed=True) == (3.0, 30.0)
    assert patience.call("http://h:1/t", 2.0, lambda limits: limits, (TimeoutError,)) == (2.0, 2.0)


def test_backoff_grows_to_cap_with_jitter_and_resets():
    b = Backoff(1, 10)
    ceilings = []
    for _ in range(6):
        delay = b.next_delay()
        ceilings.append(b.ceiling())
        assert 0 <= delay <= b.ceiling()  # full jitter
    assert ceilings == [1, 2, 4, 8, 10, 10]
    b.reset()
    assert b.next_delay() <= 1
    with pytest.raises(ValueError):
        Backoff(5, 1)


@pytest.mark.parametrize("insecure", [False, True])
def test_tls_setting_wins_over_requests_ca_bundle_env(tls_server, monkeypatch, insecure):
    """requests lets REQUESTS_CA_BUNDLE override a session's CA file or verify=False; ours must not."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    client = HttpClient(timeout=5, verify=False if insecure else tls_server.tls.cert)
    assert client.request("GET", tls_server.url + "/x").text == "secure"


def test_tls_context_made_only_for_https_and_honoured_on_a_redirect_to_https(tls_server, monkeypatch):
    """Plain http never loads the CA store (~1.8 MiB resident); a redirect to https still verifies as configured."""
    import agent_common.http as http_mod

    made = []
    real = http_mod.ssl_context
    monkeypatch.setattr(http_mod, "ssl_context", lambda verify: made.append(verify) or real(verify))
    plain = LoopbackServer()
    plain.add_route("GET", "/plain", lambda r, m: Response(200, b"plain"))
    plain.add_route("GET", "/moved", lambda r, m: Response(302, b"", {"Location": tls_server.url + "/x"}))
    assert tls_server.url.startswith("https://")
    with plain:
        client = HttpClient(timeout=5, verify=tls_server.tls.cert)
        assert client.request("GET", plain.url + "/plain").text == "plain"
        assert made == []
        assert client.request("GET", plain.url + "/moved").text == "secure"
        assert made == [tls_server.tls.cert]
        with pytest.raises(HttpError):  # the system CAs do not know the self-signed server
            HttpClient(timeout=5).request("GET", plain.url + "/moved")


def test_each_request_opens_its_own_connection(server):
    """No connection is kept between polls (see agent_common.http): each request asks the server to close it."""
    client = HttpClient(timeout=5)
    client.conditional_get(server.url + "/doc")
    client.conditional_get(server.url + "/doc")
    assert [r.header("Connection") for r in server.requests] == ["close", "close"]


def test_connection_closed_without_an_answer_is_a_retryable_error_then_retried(server):
    import socket

    dropped = []

    def drop_first(request, handler):
        if dropped:
            return False
        dropped.append(request.path)
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)
        return True

    server.injector = drop_first
    with pytest.raises(HttpError) as err:
        HttpClient(timeout=5).request("GET", server.url + "/doc?token=planted-secret-5c1e")
    assert err.value.retryable and err.value.status is None
    assert "planted-secret-5c1e" not in str(err.value) and "/doc" in str(err.value)
    dropped.clear()
    sleeps = []
    client = HttpClient(timeout=5, retries=1, sleep=sleeps.append)
    assert client.request("GET", server.url + "/doc").content == b'{"a": 1}'
    assert dropped == ["/doc"] and len(sleeps) == 1


def test_tls_verification_failure_is_one_error_naming_the_url(tls_server):
    """A server whose certificate the configured CAs do not vouch for: an HttpError, never a traceback."""
    with pytest.raises(HttpError) as err:
        HttpClient(timeout=5).request("GET", tls_server.url + "/x?sig=planted-sig-77a0")
    message = str(err.value)
    assert message.startswith("GET %s/x failed: " % tls_server.url) and "CERTIFICATE_VERIFY_FAILED" in message
    assert "planted-sig-77a0" not in message and tls_server.requests == []


def test_retry_after_delays_the_retry_by_at_least_what_the_server_asks(server):
    calls = {"n": 0}

    @server.route("GET", "/busy")
    def busy(request, match):
        calls["n"] += 1
        return Response(503, b"busy", headers={"Retry-After": "3"}) if calls["n"] == 1 else Response(200, b"ok")

    sleeps = []
    client = HttpClient(timeout=5, retries=2, backoff=Backoff(1, 8), sleep=sleeps.append)
    assert client.request("GET", server.url + "/busy").content == b"ok"
    assert len(sleeps) == 1 and 3 <= sleeps[0] <= 4  # Retry-After, plus the first step's jitter


def test_retry_after_beyond_the_backoff_cap_is_left_to_the_caller(server):
    when = email.utils.formatdate(time.time() + 120, usegmt=True)  # the HTTP-date form

    @server.route("GET", "/maintenance")
    def maintenance(request, match):
        return Response(503, b"later", headers={"Retry-After": when})

    sleeps = []
    client = HttpClient(timeout=5, retries=3, backoff=Backoff(1, 30), sleep=sleeps.append)
    with pytest.raises(HttpError) as err:
        client.request("GET", server.url + "/maintenance")
    assert sleeps == [] and err.value.status == 503  # not held here for two minutes
    assert 100 <= err.value.retry_after <= 121
    # The caller's schedule: at least what the server asked, capped, plus jitter.
    assert 120 <= Backoff(1, 30).next_delay(120) <= 121
    assert Backoff(1, 30).next_delay(10 ** 6) <= RETRY_AFTER_CAP_S + 1


def test_retry_after_is_ignored_on_a_status_that_is_not_retried(server):
    @server.route("GET", "/gone")
    def gone(request, match):
        return Response(404, b"no", headers={"Retry-After": "60"})

    with pytest.raises(HttpError) as err:
        HttpClient(timeout=5, retries=3, sleep=lambda s: None).request("GET", server.url + "/gone")
    assert err.value.status == 404 and err.value.retry_after is None
