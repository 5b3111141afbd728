"""The lab broker with real paho-mqtt clients on loopback: TCP and WebSocket, MQTT 3.1.1 and
5.0, peernames with and without PROXY headers, X-Forwarded-For (forged, allow-listed, safe),
access rules, whoami, and the EMQX decisions matching the simulator's.

One broker (several listeners on 127.0.4.1) serves the whole module; every test connects from
its own 127.0.4.x addresses and reads only its own records.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from lab_helpers import V5, V311, Paho, raw_mqtt, v5_request
from paho.mqtt.client import WebsocketConnectionError

from realip.lab import Background, free_port
from realip.lab.broker import WHOAMI, LabBroker, Refusal, SafeListener
from realip.lab.relay import HopRelay
from realip.proxy_protocol import build
from realip.topology import Broker, NginxStream

HOST = "127.0.4.1"
PROXY = "127.0.4.10"  # plays the trusted proxy
LISTENERS = {
    "tcp": Broker(addr=HOST, port=0),
    "tcp-pp": Broker(addr=HOST, port=0, proxy_protocol=True, proxy_protocol_timeout=0.3),
    "tcp-pp-rules": Broker(addr=HOST, port=0, proxy_protocol=True,
                           access_rules=(f"allow {PROXY}/32", "deny all")),
    "ws": Broker(addr=HOST, port=0, listener="ws"),
    "ws-pp": Broker(addr=HOST, port=0, listener="ws", proxy_protocol=True),
    "ws-64": Broker(addr=HOST, port=0, listener="ws", proxy_address_allow=(f"{PROXY}/32",),
                    version="6.4.0"),
    "ws-63": Broker(addr=HOST, port=0, listener="ws", version="6.3.0"),
    "safe-tcp": SafeListener(addr=HOST, port=0, proxy_protocol=True, trusted=(f"{PROXY}/32",)),
    "safe-ws": SafeListener(addr=HOST, port=0, listener="ws", trusted=(f"{PROXY}/32",)),
}
NAMES = list(LISTENERS)


class Lab:
    def __init__(self, bg: Background, broker: LabBroker) -> None:
        self.bg = bg
        self.broker = broker

    def addr(self, name: str) -> tuple[str, int]:
        return self.broker.endpoint(NAMES.index(name))

    def refusals(self, source: str) -> list[Refusal]:
        return [r for r in list(self.broker.refused) if str(r.peer.host) == source]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    bg = Background()
    broker = LabBroker(*LISTENERS.values())
    try:
        bg.run(broker.start())
        yield Lab(bg, broker)
    finally:
        try:
            bg.run(broker.close())
        finally:
            bg.close()


def wait_for(predicate: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


# -- MQTT over TCP and WebSocket, 3.1.1 and 5.0 -------------------------------------------------


@pytest.mark.parametrize("protocol", [V311, V5], ids=["3.1.1", "5.0"])
@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_connect_subscribe_publish_receive(lab: Lab, transport: str, protocol: int) -> None:
    source = "127.0.4.20" if transport == "tcp" else "127.0.4.21"
    cid = f"pubsub-{transport}-{protocol}"
    port = free_port(source)
    with Paho(cid, transport=transport, protocol=protocol) as c:
        assert c.connect(*lab.addr(transport), bind=source, bind_port=port)
        c.subscribe("lab/+/temp", qos=1)
        c.publish("lab/room1/temp", b"21.5", qos=1)
        msg = c.expect()
        assert (msg.topic, msg.payload, msg.qos) == ("lab/room1/temp", b"21.5", 1)
        c.publish("lab/room2/temp", b"19", qos=2)
        assert c.expect().payload == b"19"
        c.publish("lab/room1/humidity", b"no match")
        c.publish("lab/room3/temp", b"qos0")
        assert c.expect().payload == b"qos0"
        # peername recorded like `emqx ctl clients show`, and the whoami answer agrees
        assert lab.broker.peername(cid) == f"{source}:{port}"
        assert c.whoami(cid) == f"{source}:{port}"
        info = lab.broker.clients()[cid]
        assert info.proto_ver == (5 if protocol == V5 else 4)
        assert info.listener.startswith(f"{transport}:{HOST}:")
    wait_for(lambda: cid not in lab.broker.clients())
    assert lab.broker.peername(cid) == f"{source}:{port}"  # the last one seen
    assert lab.broker.client(cid).connected is False  # type: ignore[union-attr]


def test_tcp_and_ws_clients_share_topics_and_retained(lab: Lab) -> None:
    with Paho("pub-tcp", protocol=V5) as pub, Paho("sub-ws", transport="ws") as sub:
        assert pub.connect(*lab.addr("tcp"), bind="127.0.4.22")
        assert sub.connect(*lab.addr("ws"), bind="127.0.4.23")
        pub.publish("shared/retained", b"kept", qos=1, retain=True)
        sub.subscribe("shared/#")
        msg = sub.expect()
        assert (msg.payload, msg.retain) == (b"kept", True)
        pub.publish("shared/live", b"now")
        msg = sub.expect()
        assert (msg.payload, msg.retain) == (b"now", False)
        sub.subscribe("#")  # wildcards never match $ topics
        pub.publish(WHOAMI, b"")
        pub.publish("shared/retained", b"", retain=True)  # clears it
        while True:
            m = sub.expect(1)
            assert not m.topic.startswith("$")
            if m.topic == "shared/retained" and m.payload == b"":
                break


def test_whoami_mqtt5_response_topic(lab: Lab) -> None:
    with Paho("v5-whoami", transport="ws", protocol=V5) as c:
        assert c.connect(*lab.addr("ws"), bind="127.0.4.24")
        c.subscribe("replies/me")
        c.publish(WHOAMI, b"", properties=v5_request("replies/me", b"req-1"))
        msg = c.expect()
        assert msg.topic == "replies/me"
        assert msg.payload.decode().startswith("127.0.4.24:")
        assert msg.properties.CorrelationData == b"req-1"


def test_will_message_on_abnormal_close(lab: Lab) -> None:
    with Paho("will-watcher") as watcher:
        assert watcher.connect(*lab.addr("tcp"), bind="127.0.4.25")
        watcher.subscribe("wills/#")
        doomed = Paho("doomed")
        doomed.client.will_set("wills/doomed", b"gone")
        assert doomed.connect(*lab.addr("tcp"), bind="127.0.4.25", threaded=False)
        doomed.client.socket().close()  # no DISCONNECT
        assert watcher.expect().payload == b"gone"


def test_session_takeover(lab: Lab) -> None:
    with Paho("same-id") as first, Paho("same-id") as second:
        assert first.connect(*lab.addr("tcp"), bind="127.0.4.26")
        assert second.connect(*lab.addr("tcp"), bind="127.0.4.27")
        wait_for(lambda: lab.broker.peername("same-id", ).startswith("127.0.4.27:"))  # type: ignore[union-attr]


# -- PROXY protocol ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_proxy_protocol_on_peername_from_header(lab: Lab, version: int) -> None:
    header = build(("198.51.100.7", 41000 + version), (HOST, 1883), version=version)
    answer = raw_mqtt(*lab.addr("tcp-pp"), header, bind="127.0.4.30", client_id=f"pp{version}")
    assert answer[:1] == b"\x20"  # CONNACK
    info = lab.broker.client(f"pp{version}")
    assert info is not None and info.peername == f"198.51.100.7:{41000 + version}"
    assert info.sockname == f"{HOST}:1883"  # the PROXY destination
    assert str(info.peer.host) == "127.0.4.30"


def test_proxy_protocol_through_a_relay_with_paho(lab: Lab) -> None:
    relay_addr = "127.0.4.11"
    hop = NginxStream(name="lb", addr=relay_addr, port=free_port(relay_addr), proxy_protocol="on")
    relay = HopRelay(hop, lab.addr("tcp-pp"))
    lab.bg.run(relay.start())
    try:
        port = free_port("127.0.4.31")
        with Paho("via-relay", protocol=V5) as c:
            assert c.connect(relay_addr, hop.port, bind="127.0.4.31", bind_port=port)
            assert c.whoami("via-relay") == f"127.0.4.31:{port}"
            assert str(lab.broker.client("via-relay").peer.host) == relay_addr  # type: ignore[union-attr]
    finally:
        lab.bg.run(relay.close())


def test_proxy_header_on_a_plain_listener_fails_like_emqx(lab: Lab) -> None:
    header = build(("198.51.100.7", 1), (HOST, 1883), version=1)
    assert raw_mqtt(*lab.addr("tcp"), header, bind="127.0.4.32") == b""
    wait_for(lambda: lab.refusals("127.0.4.32"))
    assert "resemble_protocol => proxy_protocol_v1" in lab.refusals("127.0.4.32")[0].log


def test_missing_header_on_a_proxy_listener(lab: Lab) -> None:
    # esockd reads a line: a CONNECT (no LF) waits for the timeout, an HTTP line is refused
    assert raw_mqtt(*lab.addr("tcp-pp"), b"", bind="127.0.4.33") == b""
    wait_for(lambda: lab.refusals("127.0.4.33"))
    assert "proxy_proto_timeout" in lab.refusals("127.0.4.33")[0].log
    assert raw_mqtt(*lab.addr("tcp-pp"), b"GET / HTTP/1.1\r\n", bind="127.0.4.45") == b""
    wait_for(lambda: lab.refusals("127.0.4.45"))
    assert "invalid_proxy_info" in lab.refusals("127.0.4.45")[0].log


def test_proxy_protocol_timeout(lab: Lab) -> None:
    import socket

    with socket.socket() as s:
        s.settimeout(3)
        s.bind(("127.0.4.34", 0))
        s.connect(lab.addr("tcp-pp"))
        started = time.monotonic()
        s.sendall(b"PROXY TCP4 198.51")
        assert s.recv(10) == b""
        assert time.monotonic() - started < 2
    wait_for(lambda: lab.refusals("127.0.4.34"))
    assert "proxy_proto_timeout" in lab.refusals("127.0.4.34")[0].log


def test_emqx_accepts_a_forged_header_access_rules_stop_it(lab: Lab) -> None:
    forged = build(("6.6.6.6", 666), (HOST, 1883), version=1)
    # EMQX: any peer may send a header
    raw_mqtt(*lab.addr("tcp-pp"), forged, bind="127.0.4.35", client_id="forger")
    assert lab.broker.peername("forger") == "6.6.6.6:666"
    # with access_rules only the proxy may connect at all
    assert raw_mqtt(*lab.addr("tcp-pp-rules"), forged, bind="127.0.4.36") == b""
    wait_for(lambda: lab.refusals("127.0.4.36"))
    assert lab.refusals("127.0.4.36")[0].log == "connection refused by access_rules"
    raw_mqtt(*lab.addr("tcp-pp-rules"), build(("203.0.113.5", 5), (HOST, 1), version=2),
             bind=PROXY, client_id="ruled-ok")
    assert lab.broker.peername("ruled-ok") == "203.0.113.5:5"


def test_safe_listener_honours_only_trusted_headers(lab: Lab) -> None:
    header = build(("203.0.113.9", 999), (HOST, 1883), version=2)
    assert raw_mqtt(*lab.addr("safe-tcp"), header, bind=PROXY, client_id="safe-pp")[:1] \
        == b"\x20"
    assert lab.broker.peername("safe-pp") == "203.0.113.9:999"
    # a direct client forging a header is refused ...
    assert raw_mqtt(*lab.addr("safe-tcp"), header, bind="127.0.4.37") == b""
    wait_for(lambda: lab.refusals("127.0.4.37"))
    assert lab.refusals("127.0.4.37")[0].log.startswith("reject:")
    # ... and a direct client without one is itself
    port = free_port("127.0.4.38")
    with Paho("safe-direct") as c:
        assert c.connect(*lab.addr("safe-tcp"), bind="127.0.4.38", bind_port=port)
        assert c.whoami("safe-direct") == f"127.0.4.38:{port}"


def test_ws_proxy_protocol_wins_over_headers(lab: Lab) -> None:
    import socket

    from realip.topology import ws_upgrade_request

    header = build(("198.51.100.44", 4444), (HOST, 8083), version=1)
    request = ws_upgrade_request(f"{HOST}:8083", extra=[("X-Forwarded-For", "6.6.6.6")])
    with socket.socket() as s:
        s.settimeout(3)
        s.bind(("127.0.4.39", 0))
        s.connect(lab.addr("ws-pp"))
        s.sendall(header + request)
        assert s.recv(12) == b"HTTP/1.1 101"
        # a masked binary frame carrying an MQTT CONNECT
        from realip.topology import mqtt_connect

        packet = mqtt_connect("ws-pp-client")
        mask = b"\x01\x02\x03\x04"
        s.sendall(bytes([0x82, 0x80 | len(packet)]) + mask +
                  bytes(b ^ mask[i % 4] for i, b in enumerate(packet)))
        wait_for(lambda: lab.broker.peername("ws-pp-client") is not None)
    assert lab.broker.peername("ws-pp-client") == "198.51.100.44:4444"


# -- X-Forwarded-For on WebSocket --------------------------------------------------------------


def test_emqx_ws_takes_the_leftmost_forged_header(lab: Lab) -> None:
    headers = {"X-Forwarded-For": "6.6.6.6, 127.0.4.40", "X-Forwarded-Port": "1234"}
    with Paho("xff-forger", transport="ws", headers=headers) as c:
        assert c.connect(*lab.addr("ws"), bind="127.0.4.40")
        assert c.whoami("xff-forger") == "6.6.6.6:1234"


def test_emqx_63_ignores_headers_by_default(lab: Lab) -> None:
    port = free_port("127.0.4.41")
    with Paho("xff-63", transport="ws", headers={"X-Forwarded-For": "6.6.6.6"}) as c:
        assert c.connect(*lab.addr("ws-63"), bind="127.0.4.41", bind_port=port)
        assert c.whoami("xff-63") == f"127.0.4.41:{port}"


def test_emqx_64_allow_list(lab: Lab) -> None:
    forged = {"X-Forwarded-For": "6.6.6.6"}
    port = free_port("127.0.4.42")
    with Paho("allow-direct", transport="ws", headers=forged) as c:
        assert c.connect(*lab.addr("ws-64"), bind="127.0.4.42", bind_port=port)
        assert c.whoami("allow-direct") == f"127.0.4.42:{port}"  # not allowed: ignored
    chain = {"X-Forwarded-For": f"6.6.6.6, 203.0.113.50, {PROXY}", "X-Forwarded-Port": "5050"}
    with Paho("allow-proxy", transport="ws", headers=chain) as c:
        assert c.connect(*lab.addr("ws-64"), bind=PROXY)
        assert c.whoami("allow-proxy") == "203.0.113.50:5050"  # right to left, skipping PROXY


def test_safe_ws_listener(lab: Lab) -> None:
    port = free_port("127.0.4.43")
    with Paho("safe-ws-direct", transport="ws", headers={"X-Forwarded-For": "6.6.6.6"}) as c:
        assert c.connect(*lab.addr("safe-ws"), bind="127.0.4.43", bind_port=port)
        assert lab.broker.peername("safe-ws-direct") == f"127.0.4.43:{port}"
    chain = {"X-Forwarded-For": "6.6.6.6, 203.0.113.60:6060"}
    with Paho("safe-ws-proxy", transport="ws", headers=chain) as c:
        assert c.connect(*lab.addr("safe-ws"), bind=PROXY)
        assert c.whoami("safe-ws-proxy") == "203.0.113.60:6060"
    # a malformed entry at the boundary: realip refuses to guess (403)
    with Paho("safe-ws-junk", transport="ws", headers={"X-Forwarded-For": "junk"}) as c, \
            pytest.raises(WebsocketConnectionError, match="not upgraded"):
        c.connect(*lab.addr("safe-ws"), bind=PROXY)
    wait_for(lambda: any(r.log.startswith("403") for r in lab.refusals(PROXY)))


def test_safe_ws_listener_never_records_a_client_chosen_port(lab: Lab) -> None:
    """Issue 11: through the trusted proxy, a client's own X-Forwarded-Port: 31337 is not the
    port the safe listener records (the listener does not say its proxies set that header)."""
    forged = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Port": "31337"}
    with Paho("safe-ws-port", transport="ws", headers=forged) as c:
        assert c.connect(*lab.addr("safe-ws"), bind=PROXY)
        recorded = lab.broker.peername("safe-ws-port")
    assert recorded is not None and recorded.startswith("203.0.113.7")
    assert not recorded.endswith(":31337")


def test_wrong_path_and_plain_http_are_refused(lab: Lab) -> None:
    with Paho("bad-path", transport="ws", path="/nope") as c, \
            pytest.raises(WebsocketConnectionError, match="not upgraded"):
        c.connect(*lab.addr("ws"), bind="127.0.4.44")
    wait_for(lambda: lab.refusals("127.0.4.44"))
    assert "404" in lab.refusals("127.0.4.44")[0].log
