"""A port whose listener never accepts: the server past its capacity, before it has seen a request."""
from __future__ import annotations

import socket
from contextlib import contextmanager
from typing import Iterator

import pytest


@contextmanager
def unaccepted_port() -> Iterator[int]:
    """A 127.0.0.1 port whose accept queue is full, so Linux drops further SYNs: a connect gets no answer.

    A client that gives up on such a connection has cost the server nothing, unlike a request it sent.
    """
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        held = []
        try:
            for _ in range(5):  # fill the queue (one connection on Linux) until a connect gets no answer
                try:
                    held.append(socket.create_connection(full.getsockname(), timeout=0.5))
                except socket.timeout:
                    break
            else:
                pytest.fail("the kernel accepted every connection to a listener that never accepts")
            yield full.getsockname()[1]
        finally:
            for sock in held:
                sock.close()
