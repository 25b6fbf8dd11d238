"""bench/fleet.py's counting proxy: what the fleet figures rest on (the bench itself is not run in CI).

A request is placed in the herd's seconds when it reaches the proxy, not when the server
answers it (a slow answer must not move it), and an agent that hangs up before the answer
costs no traceback and is still counted: the server did get the request.
"""
from __future__ import annotations

import contextlib
import importlib.util
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Tuple

from tests.servers.base import LoopbackServer, Response
from tests.support.wait import wait_for

FLEET = Path(__file__).resolve().parents[1] / "bench" / "fleet.py"


def load_fleet():
    spec = importlib.util.spec_from_file_location("fleet", FLEET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class GatedServer(LoopbackServer):
    """``GET /md``: answered only once ``gate`` is set; ``arrived`` is set when a request is in."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.arrived = threading.Event(), threading.Event()
        self.add_route("GET", r"/md", self._md)

    def _md(self, request, match) -> Response:
        self.arrived.set()
        self.gate.wait(30)
        return Response(200, {"v": 1})


def send_through(proxy_port: int, url: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=30)
    sock.sendall(("GET %s/md HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % url).encode())
    return sock


def ask_for_tunnel(proxy_port: int, port: int) -> socket.socket:
    """What a websocket client behind ``http_proxy`` sends first: CONNECT to the service's port."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=30)
    sock.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
    return sock


def hang_up(sock: socket.socket) -> None:
    """An agent's timeout: the connection is reset, so the proxy's answer cannot be written."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@contextlib.contextmanager
def listening() -> Iterator[Tuple[socket.socket, int]]:
    """A socket on 127.0.0.1 that the test accepts from and answers by hand (or never), and its port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(30)
        yield listener, listener.getsockname()[1]


@contextlib.contextmanager
def open_tunnel() -> Iterator[Tuple[Any, socket.socket, socket.socket, int]]:
    """A tunnel through a fresh proxy to a socket of the test's: the tally, the agent's end, the service's
    end, and the relays running before it."""
    fleet = load_fleet()
    with listening() as (service, port):
        tally = fleet.Tally({port: "zaqar-websocket"})
        proxy, proxy_port = fleet.start_proxy(tally)
        try:
            before = relays_running()
            sock = ask_for_tunnel(proxy_port, port)
            upstream, _ = service.accept()
            upstream.settimeout(30)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            yield tally, sock, upstream, before
        finally:
            proxy.shutdown()


def relays_running() -> int:
    return sum(1 for t in threading.enumerate() if "process_request" in t.name)


def test_a_request_is_counted_at_its_arrival_not_at_the_answer():
    fleet, server = load_fleet(), GatedServer().start()
    port = int(server.url.rsplit(":", 1)[1])
    tally = fleet.Tally({port: "heat-api"})
    proxy, proxy_port = fleet.start_proxy(tally)
    try:
        sock = send_through(proxy_port, server.url)
        assert server.arrived.wait(30)
        answered_after = time.time()
        server.gate.set()
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.close()
        wait_for(lambda: tally.requests.get("heat-api") == 1, timeout=30, what="the request counted")
        assert tally.times["heat-api"][0] < answered_after
    finally:
        server.gate.set()
        proxy.shutdown()
        server.stop()


def test_an_agent_that_hangs_up_before_the_answer_is_counted_without_a_traceback(capsys):
    fleet, server = load_fleet(), GatedServer().start()
    port = int(server.url.rsplit(":", 1)[1])
    tally = fleet.Tally({port: "heat-api"})
    proxy, proxy_port = fleet.start_proxy(tally)
    try:
        before = relays_running()
        sock = send_through(proxy_port, server.url)
        assert server.arrived.wait(30)
        hang_up(sock)
        server.gate.set()
        wait_for(lambda: tally.requests.get("heat-api") == 1 and relays_running() == before, timeout=30,
                 what="the relay counted the request and ended")
    finally:
        server.gate.set()
        proxy.shutdown()
        server.stop()
    assert "Traceback" not in capsys.readouterr().err


def test_a_service_that_never_answers_gets_the_agent_a_502_counted_without_a_traceback(capsys):
    """A saturated service (heat-api-cfn at N = 50): the proxy gives up, and the agent may be gone by then."""
    fleet = load_fleet()
    fleet.UPSTREAM_TIMEOUT_S = 0.5
    with listening() as (silent, port):  # accepts connections (the kernel does), never reads nor answers
        tally = fleet.Tally({port: "heat-api-cfn"})
        proxy, proxy_port = fleet.start_proxy(tally)
        try:
            before = relays_running()
            sock = send_through(proxy_port, "http://127.0.0.1:%d" % port)
            upstream, _ = silent.accept()  # the proxy has read the request and forwarded it
            hang_up(sock)
            wait_for(lambda: tally.requests.get("heat-api-cfn") == 1 and relays_running() == before, timeout=30,
                     what="the relay gave up, counted the request and ended")
            upstream.close()
        finally:
            proxy.shutdown()
    assert "Traceback" not in capsys.readouterr().err


def test_a_tunnel_is_one_request_and_every_byte_either_way_is_counted_as_it_passes():
    """The websocket client asks for a CONNECT tunnel through ``http_proxy`` (zaqar_ws at N = 50 got a 501)."""
    with open_tunnel() as (tally, sock, upstream, before):
        sock.sendall(b"ping")
        assert upstream.recv(4) == b"ping"
        upstream.sendall(b"pong!")
        assert sock.recv(5) == b"pong!"
        wait_for(lambda: tally.bytes.get("zaqar-websocket") == 9, timeout=30, what="both ways counted")
        assert tally.requests == {"zaqar-websocket": 1}
        assert tally.kinds == {"zaqar-websocket": {"CONNECT 200": 1}}
        upstream.close()
        wait_for(lambda: relays_running() == before, timeout=30, what="the tunnel ended with its upstream")
        assert sock.recv(1) == b""
        sock.close()


def test_a_tunnel_to_a_closed_port_is_a_502_counted_as_such():
    fleet = load_fleet()
    with listening() as (_, port):
        pass  # the port is free again: nothing listens there
    tally = fleet.Tally({port: "zaqar-websocket"})
    proxy, proxy_port = fleet.start_proxy(tally)
    try:
        sock = ask_for_tunnel(proxy_port, port)
        assert sock.recv(4096).startswith(b"HTTP/1.1 502")
        sock.close()
        assert tally.kinds == {"zaqar-websocket": {"CONNECT 0": 1}}
    finally:
        proxy.shutdown()


def test_a_tunnel_whose_agent_resets_the_connection_ends_without_a_traceback(capsys):
    """An agent killed at the end of a run resets its websocket: the relay stops, and so does its upstream."""
    with open_tunnel() as (tally, sock, upstream, before):
        upstream.sendall(b"unread")  # left unread in the agent's socket: its close is a reset
        wait_for(lambda: tally.bytes.get("zaqar-websocket") == 6, timeout=30, what="the bytes relayed")
        hang_up(sock)
        wait_for(lambda: relays_running() == before, timeout=30, what="the tunnel ended")
        assert upstream.recv(1) == b""  # the proxy closed its side upstream too
        upstream.close()
    assert "Traceback" not in capsys.readouterr().err
