"""A throw-away certificate authority for HTTPS loopback servers (made with the openssl CLI)."""
from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SelfSigned:
    """A self-signed certificate for 127.0.0.1: ``cert`` doubles as the CA bundle a client trusts."""

    cert: str
    key: str

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_self_signed(directory: Path) -> SelfSigned:
    cert, key = directory / "loopback.crt", directory / "loopback.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return SelfSigned(str(cert), str(key))
