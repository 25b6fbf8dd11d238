"""TLS of the heat, cfn and zaqar sources (SPEC §5.9.11, §5.9.12), through the real os-collect-config.

Each source is served over HTTPS with a certificate no system CA vouches for:
it must be refused by default, accepted with the source's CA option, and accepted
when verification is switched off explicitly (heat ``insecure``, zaqar
``ssl_certificate_validation = false``; cfn has no such switch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import pytest

from tests.os_collect_config.keystone_sources import printed, write_config
from tests.servers.cfn import CfnServer
from tests.servers.heat import HeatServer
from tests.servers.tls import make_self_signed
from tests.servers.zaqar import ZaqarServer


def _heat(c, ctx):
    server = HeatServer(c.keystone, c.project_id).start(ssl_context=ctx)
    c.keystone.replace_endpoint("orchestration", server.endpoint)
    server.set_metadata("mystack", "server1", {"tls": True})
    return server, {"auth_url": c.auth_url, "user_id": c.user_id, "password": c.password,
                    "project_id": c.project_id, "stack_id": "mystack", "resource_name": "server1"}


def _cfn(c, ctx):
    server = CfnServer({c.access_key: c.secret_key}, c.project_id).start(ssl_context=ctx)
    server.set_metadata("mystack", "server1", {"tls": True})
    return server, {"metadata_url": server.metadata_url, "access_key_id": c.access_key,
                    "secret_access_key": c.secret_key, "stack_name": "mystack", "path": "server1.Metadata"}


def _zaqar(c, ctx, use_websockets=False):
    server = ZaqarServer(c.keystone).start(ssl_context=ctx)
    c.keystone.replace_endpoint("messaging", server.url)
    c.keystone.replace_endpoint("messaging-websocket", server.ws_url)
    server.post_message(c.project_id, "q", {"tls": True})
    return server, {"auth_url": c.auth_url, "user_id": c.user_id, "password": c.password,
                    "project_id": c.project_id, "queue_id": "q", "use_websockets": use_websockets}


def _zaqar_websocket(c, ctx):
    return _zaqar(c, ctx, use_websockets=True)


@dataclass
class Source:
    name: str
    start: Callable[[Any, Any], Any]
    ca_option: str
    off: Optional[Dict[str, Any]]
    off_warning: Optional[str] = None


SOURCES = [
    Source("heat", _heat, "ca_file", {"insecure": True}, "not verified ([heat] insecure = true)"),
    Source("cfn", _cfn, "ca_certificate", None),
    Source("zaqar", _zaqar, "ca_file", {"ssl_certificate_validation": False},
           "not verified ([zaqar] ssl_certificate_validation = false)"),
    Source("zaqar", _zaqar_websocket, "ca_file", {"ssl_certificate_validation": False},
           "not verified ([zaqar] ssl_certificate_validation = false)"),
]


def _each(sources):
    return pytest.mark.parametrize("tls_source", sources, indirect=True, ids=lambda s: s.start.__name__.strip("_"))


@pytest.fixture
def tls_source(request, cloud, tmp_path):
    tls = make_self_signed(tmp_path)
    source = request.param
    server, section = source.start(cloud, tls.server_context())
    yield source, section, tls
    server.stop()


def _run(occ, sandbox, source, section, **extra):
    conf = write_config(sandbox, {source.name: dict(section, **extra)})
    return occ("--config-file", str(conf), "--print", source.name)


@_each(SOURCES)
def test_unknown_ca_is_refused_by_default(tls_source, occ, sandbox):
    source, section, _ = tls_source
    result = _run(occ, sandbox, source, section)
    assert printed(result) == {}
    assert "Source [%s] Unavailable" % source.name in result.stderr
    assert "certificate verify failed" in result.stderr.lower()


@_each(SOURCES)
def test_ca_option_trusts_a_private_ca(tls_source, occ, sandbox):
    source, section, tls = tls_source
    assert printed(_run(occ, sandbox, source, section, **{source.ca_option: tls.cert})) == {source.name: {"tls": True}}


@_each([s for s in SOURCES if s.off])
def test_verification_off_only_when_asked(tls_source, occ, sandbox):
    source, section, _ = tls_source
    result = _run(occ, sandbox, source, section, **source.off)
    assert printed(result) == {source.name: {"tls": True}}
    if source.off_warning:
        assert source.off_warning in result.stderr


def test_zaqar_validation_on_with_ca_file(cloud, occ, sandbox, tmp_path):
    """``ssl_certificate_validation = true`` with a ``ca_file`` keeps working as in the original."""
    tls = make_self_signed(tmp_path)
    server, section = _zaqar(cloud, tls.server_context())
    try:
        out = _run(occ, sandbox, SOURCES[2], section, ssl_certificate_validation=True, ca_file=tls.cert)
        assert printed(out) == {"zaqar": {"tls": True}}
    finally:
        server.stop()
