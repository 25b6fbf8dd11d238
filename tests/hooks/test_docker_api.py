"""The Engine API log stream format (multiplexed frames, or raw with a TTY), and the client on the real engine."""
from __future__ import annotations

import struct

import pytest

from hooks.toolkit.docker_api import Engine, EngineError, demux


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(data)) + data


def test_demux_splits_streams_in_order():
    raw = frame(1, b"out 1\n") + frame(2, b"err 1\n") + frame(1, b"out 2\n")
    assert demux(raw) == {"stdout": b"out 1\nout 2\n", "stderr": b"err 1\n"}


def test_demux_keeps_a_tty_stream_raw():
    assert demux(b"plain text from a tty\n") == {"stdout": b"plain text from a tty\n", "stderr": b""}
    truncated = frame(1, b"abc")[:-1]
    assert demux(truncated)["stdout"] == truncated


def test_unsupported_or_unreachable_hosts_are_one_clear_error(tmp_path):
    with pytest.raises(EngineError, match="only unix:// and tcp://"):
        Engine("ssh://host").images()
    with pytest.raises(EngineError, match="cannot reach the container engine"):
        Engine("unix://%s" % (tmp_path / "none.sock")).images()


@pytest.mark.docker
def test_log_tails_per_stream_on_the_real_engine(docker_engine):
    name = "oca-logs-probe"
    docker_engine.docker("run", "--name", name, docker_engine.base_image, "sh", "-c",
                         "seq 1 50; echo last-error >&2; seq 51 60")
    try:
        tails = Engine(docker_engine.host).log_tails(name, lines=3)
        assert tails == {"stdout": "58\n59\n60\n", "stderr": "last-error\n"}
    finally:
        docker_engine.docker("rm", "-f", name, check=False)
