"""The lab's SafeListener records no client-chosen port, end to end on loopback (issue 11).

A real paho-mqtt client on 127.0.41.20–.29 forges ``X-Forwarded-For``/``X-Forwarded-Port`` (or
a PROXY header); a live nginx-like relay (the simulator's hop logic, 127.0.41.10/.11) passes
it on to the lab broker's SafeListener (127.0.41.1).  The peername the broker records is the
client's real address, with its real source port or none — never 31337.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lab_helpers import Paho, raw_mqtt

from realip.lab import Background, free_port
from realip.lab.broker import LabBroker, SafeListener
from realip.lab.relay import HopRelay
from realip.proxy_protocol import build
from realip.topology import NginxHttp, NginxStream

HOST = "127.0.41.1"
HTTP_PROXY = "127.0.41.10"
STREAM_PROXY = "127.0.41.11"
#: what the client sends itself: with X-Forwarded-For left to the proxy, its one element lines
#: up with the one X-Forwarded-Port element (the case a count-matching resolver took)
FORGED_PORT = {"X-Forwarded-Port": "31337"}
FORGED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Port": "31337"}
LISTENERS = [
    SafeListener(addr=HOST, port=0, listener="ws", trusted=(f"{HTTP_PROXY}/32",)),
    SafeListener(addr=HOST, port=0, listener="ws", trusted=(f"{HTTP_PROXY}/32",),
                 x_forwarded_port=True),
    SafeListener(addr=HOST, port=0, proxy_protocol=True, trusted=(f"{STREAM_PROXY}/32",)),
]
WS_UPGRADE = (("Upgrade", "$http_upgrade"), ("Connection", "upgrade"))


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Background, LabBroker]]:
    bg = Background()
    broker = LabBroker(*LISTENERS)
    try:
        bg.run(broker.start())
        yield bg, broker
    finally:
        try:
            bg.run(broker.close())
        finally:
            bg.close()


def _through(bg: Background, hop: NginxHttp | NginxStream, upstream: tuple[str, int],
             client_id: str, source: str, *, transport: str = "ws",
             headers: dict[str, str] | None = None) -> int:
    """Connect *client_id* from *source* (a known port) through a relay playing *hop*."""
    relay = HopRelay(hop, upstream)
    bg.run(relay.start())
    try:
        port = free_port(source)
        with Paho(client_id, transport=transport, headers=headers) as c:
            assert c.connect(hop.addr, hop.port, bind=source, bind_port=port)
        return port
    finally:
        bg.run(relay.close())


def test_forged_x_forwarded_port_is_not_recorded(lab: tuple[Background, LabBroker]) -> None:
    """nginx appends the client to X-Forwarded-For and passes its X-Forwarded-Port on as it
    came; the listener does not say its proxy sets that header: the port is unknown."""
    bg, broker = lab
    hop = NginxHttp(name="lb", addr=HTTP_PROXY, port=free_port(HTTP_PROXY),
                    proxy_http_version="1.1",
                    proxy_set_header=(*WS_UPGRADE,
                                      ("X-Forwarded-For", "$proxy_add_x_forwarded_for")))
    _through(bg, hop, broker.endpoint(0), "fwd-port-off", "127.0.41.20", headers=FORGED_PORT)
    assert broker.peername("fwd-port-off") == "127.0.41.20:"


def test_the_proxys_own_x_forwarded_port_is_the_real_source_port(
        lab: tuple[Background, LabBroker]) -> None:
    """With ``x_forwarded_port=True`` and a proxy that sets it (nginx ``$remote_port``, the
    client's own line replaced), the recorded port is the client's real source port."""
    bg, broker = lab
    hop = NginxHttp(name="lb", addr=HTTP_PROXY, port=free_port(HTTP_PROXY),
                    proxy_http_version="1.1",
                    proxy_set_header=(*WS_UPGRADE,
                                      ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
                                      ("X-Forwarded-Port", "$remote_port")))
    port = _through(bg, hop, broker.endpoint(1), "fwd-port-on", "127.0.41.21", headers=FORGED)
    assert broker.peername("fwd-port-on") == f"127.0.41.21:{port}"


def test_proxy_protocol_port_only_from_the_trusted_proxy(
        lab: tuple[Background, LabBroker]) -> None:
    """Through the trusted stream proxy the PROXY header's port is the real one; a client that
    connects directly with its own header claiming :31337 is refused, not recorded."""
    bg, broker = lab
    hop = NginxStream(name="lb", addr=STREAM_PROXY, port=free_port(STREAM_PROXY),
                      proxy_protocol="on")
    port = _through(bg, hop, broker.endpoint(2), "pp-port", "127.0.41.22", transport="tcp")
    assert broker.peername("pp-port") == f"127.0.41.22:{port}"
    forged = build(("203.0.113.7", 31337), ("127.0.41.1", 1883), version=1)
    assert raw_mqtt(*broker.endpoint(2), forged, bind="127.0.41.23",
                    client_id="pp-forged") == b""
    assert broker.peername("pp-forged") is None
    assert any(str(r.peer.host) == "127.0.41.23" for r in broker.refused)
