"""Live relays running the simulator's hop logic, in front of the lab broker, against
``simulate()`` on the loopback-mapped topology.

Every scenario of ``data/topologies/`` is mapped with :func:`realip.render.loopback_plan` and
:func:`realip.render.topology_on` (fresh ports, every hop's source port pinned), started with
:class:`realip.lab.relay.LiveTopology`, and driven by paho-mqtt bound to the client's own
127.x address and port: the broker records exactly the peername the simulator predicts, or
refuses where it predicts a refusal, with the same log line.  A raw client replaying the
simulated first bytes checks that every relay writes the simulated link's bytes exactly.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_helpers import V5, Paho

from realip.errors import ConfigurationError
from realip.lab import Background, free_port
from realip.lab.relay import HopRelay, LiveTopology, proxy_header_end, run_hop
from realip.proxy_protocol import V2_SIGNATURE, Endpoint, build
from realip.render import loopback_plan, needs_netns, needs_tls, topology_on
from realip.topology import NginxStream, Topology, Trace, load, mqtt_connect, simulate

ROOT = Path(__file__).resolve().parents[1]
# IPv6 scenarios cannot be placed on loopback: tests/real/test_ipv6_lab_real.py runs them in a
# private network namespace with their own addresses
SCENARIOS = [p for p in sorted((ROOT / "data" / "topologies").glob("*.yaml"))
             if not needs_netns(load(str(p))) and not needs_tls(load(str(p)))]
# (TLS scenarios: the lab refuses them until it terminates TLS — tests/test_tls.py checks that)


@pytest.fixture(scope="module")
def bg() -> Iterator[Background]:
    with Background() as loop:
        yield loop


def mapped(path: Path) -> Topology:
    topo = load(str(path))
    plan = loopback_plan(topo)
    labels = [topo.client.name, *(h.name for h in topo.hops), topo.broker.name]
    ports = {label: free_port(plan[label]) for label in labels}
    sports = {h.name: free_port(plan[h.name]) for h in topo.hops}
    return topology_on(topo, plan, ports, source_ports=sports)


def failure_seen(live: LiveTopology, trace: Trace) -> str | None:
    """The log line of the first refusal in the live chain, as ``name: log``."""
    for relay in live.relays:
        for p in relay.passages:
            if not p.view.accepted:
                return f"{relay.hop.name}: {p.view.log}"
    for r in live.broker.refused:
        return f"{live.topology.broker.name}: {r.log}"
    return None


def run_client(topo: Topology, live: LiveTopology, trace: Trace, protocol: int = 4) -> None:
    """Drive the scenario's client: paho (bound to its address and port), or a raw socket
    replaying the simulated bytes when the client forges a PROXY header itself."""
    client = topo.client
    host, port = live.entry
    if client.send_proxy is not None:
        with socket.socket() as s:
            s.settimeout(3)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((client.addr, client.port))
            s.connect((host, port))
            s.sendall(trace.links[0].data)
            with contextlib.suppress(OSError):
                s.recv(4)
        return
    paho = Paho(client.client_id, transport=client.transport, protocol=protocol,
                headers=dict(client.headers) or None, path=client.path)
    try:
        paho.connect(host, port, bind=client.addr, bind_port=client.port)
    except Exception:
        pass  # a refused WebSocket handshake raises in connect()
    finally:
        paho.close()


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_live_chain_gives_the_simulated_peername(bg: Background, path: Path) -> None:
    topo = mapped(path)
    trace = simulate(topo)
    live = LiveTopology(topo)
    bg.run(live.start())
    try:
        run_client(topo, live, trace)
        got = live.broker.peername(topo.client.client_id)
        if trace.connected:
            assert got == trace.peername, (trace.table(), failure_seen(live, trace))
        else:
            deadline = time.monotonic() + 3
            while failure_seen(live, trace) is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert got is None
            assert failure_seen(live, trace) == trace.failure
    finally:
        bg.run(live.close())


def test_two_tier_nginx_stream_proxy_protocol(bg: Background) -> None:
    """LB1 writes a header, LB2 reads it (trusting LB1) and writes its own; EMQX reads that."""
    topo = mapped(ROOT / "data" / "topologies" / "tcp-multi-regenerate.yaml")
    trace = simulate(topo)
    live = LiveTopology(topo)
    bg.run(live.start())
    try:
        with Paho("mqttx-client", protocol=V5) as c:
            assert c.connect(*live.entry, bind=topo.client.addr, bind_port=topo.client.port)
            assert c.whoami("mqttx-client") == trace.peername
        assert trace.peername == f"{topo.client.addr}:{topo.client.port}"
        lb2 = live.relay("lb2").passages[0]
        assert lb2.view.variables["remote_addr"] == topo.client.addr
        assert lb2.source == Endpoint(lb2.source.host, topo.hop("lb2").source_port)  # type: ignore[union-attr]
        info = live.broker.client("mqttx-client")
        assert info is not None and str(info.peer.host) == topo.hop("lb2").addr
    finally:
        bg.run(live.close())


def test_nginx_http_chain_to_websocket(bg: Background) -> None:
    """Three nginx-http tiers appending X-Forwarded-For, the inner one recursive; EMQX's ws
    listener reads X-Real-IP and X-Forwarded-Port."""
    topo = mapped(ROOT / "data" / "topologies" / "ws-multi-recursive.yaml")
    trace = simulate(topo)
    live = LiveTopology(topo)
    bg.run(live.start())
    try:
        with Paho("mqttx-client", transport="ws", headers=dict(topo.client.headers)) as c:
            assert c.connect(*live.entry, bind=topo.client.addr, bind_port=topo.client.port)
            assert c.whoami("mqttx-client") == trace.peername
        assert trace.peername == f"{topo.client.addr}:39872"
    finally:
        bg.run(live.close())


@pytest.mark.parametrize("name", ["tcp-multi-regenerate", "ws-multi-recursive",
                                  "haproxy-tcp-send-proxy-v2", "haproxy-ws-set-header"])
def test_relays_write_the_simulated_bytes(bg: Background, name: str) -> None:
    path = ROOT / "data" / "topologies" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{name} is not in data/topologies")
    topo = mapped(path)
    trace = simulate(topo)
    live = LiveTopology(topo)
    bg.run(live.start())
    try:
        with socket.socket() as s:
            s.settimeout(3)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((topo.client.addr, topo.client.port))
            s.connect(live.entry)
            s.sendall(trace.links[0].data)
            if topo.client.transport == "ws":
                assert s.recv(12) == b"HTTP/1.1 101"
                packet = mqtt_connect(topo.client.client_id)
                mask = b"\x0f\x0e\x0d\x0c"
                s.sendall(bytes([0x82, 0x80 | len(packet)]) + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(packet)))
            deadline = time.monotonic() + 3
            while live.broker.peername(topo.client.client_id) is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        for i, relay in enumerate(live.relays):
            passage = relay.passages[0]
            assert passage.data_in == trace.links[i].data
            assert passage.data_out == trace.links[i + 1].data
            assert passage.source == trace.links[i + 1].src
            assert passage.view.decisions == trace.views[i].decisions
        assert live.broker.peername(topo.client.client_id) == trace.peername
    finally:
        bg.run(live.close())


def test_relay_refuses_a_broken_header_like_nginx(bg: Background) -> None:
    addr = "127.0.5.10"
    hop = NginxStream(name="lb", addr=addr, port=free_port(addr), listen_proxy_protocol=True,
                      proxy_protocol="on")
    relay = HopRelay(hop, ("127.0.5.99", free_port("127.0.5.99")))
    bg.run(relay.start())
    try:
        with socket.socket() as s:
            s.settimeout(3)
            s.bind(("127.0.5.20", 0))
            s.connect((addr, hop.port))
            s.sendall(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n" + mqtt_connect("x"))
            assert s.recv(10) == b""
        view = relay.passages[0].view
        expected = run_hop(hop, Endpoint(view.peer.host, view.peer.port),
                           Endpoint(view.local.host, hop.port),
                           b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n" + mqtt_connect("x"))
        assert not view.accepted and view.log == expected.view.log
    finally:
        bg.run(relay.close())


def test_header_timeout_and_unreachable_upstream(bg: Background) -> None:
    addr = "127.0.5.11"
    hop = NginxStream(name="lb", addr=addr, port=free_port(addr), listen_proxy_protocol=True)
    relay = HopRelay(hop, ("127.0.5.98", free_port("127.0.5.98")), header_timeout=0.3,
                     connect_timeout=1.0)
    bg.run(relay.start())
    try:
        with socket.socket() as s:
            s.settimeout(3)
            s.connect((addr, hop.port))
            s.sendall(b"PROXY TCP4 1.2")
            started = time.monotonic()
            assert s.recv(10) == b""
            assert time.monotonic() - started < 2
        with socket.socket() as s:  # a good header, but nobody listens upstream
            s.settimeout(3)
            s.connect((addr, hop.port))
            s.sendall(build(("1.2.3.4", 5), ("5.6.7.8", 9), version=1) + b"data")
            assert s.recv(10) == b""
        logs = [p.view.log for p in relay.passages]
        assert logs == ["client timed out", "connect() failed"]
    finally:
        bg.run(relay.close())


def test_large_payloads_both_ways(bg: Background) -> None:
    topo = mapped(ROOT / "data" / "topologies" / "tcp-multi-regenerate.yaml")
    live = LiveTopology(topo)
    bg.run(live.start())
    try:
        with Paho("big") as c:
            assert c.connect(*live.entry, bind=topo.client.addr)
            c.subscribe("big/#", qos=1)
            payload = bytes(range(256)) * 1024  # 256 KiB each way through two relays
            c.publish("big/one", payload, qos=1)
            assert c.expect(5).payload == payload
    finally:
        bg.run(live.close())


def test_relays_only_use_loopback() -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        HopRelay(NginxStream(name="lb", addr="172.16.0.116"), ("127.0.0.1", 1883))
    with pytest.raises(ConfigurationError, match="loopback"):
        LiveTopology(load(str(ROOT / "data" / "topologies" / "tcp-single-tier.yaml")))


def test_proxy_header_framing() -> None:
    v1 = build(("1.2.3.4", 5), ("5.6.7.8", 9), version=1)
    v2 = build(("1.2.3.4", 5), ("5.6.7.8", 9), version=2)
    for header in (v1, v2):
        for i in range(len(header)):
            assert proxy_header_end(header[:i]) is None
        assert proxy_header_end(header + b"rest") == len(header)
    assert proxy_header_end(b"\x10\x0c") == 0
    assert proxy_header_end(b"PROXY " + b"x" * 200) == 0
    assert proxy_header_end(V2_SIGNATURE + b"\x21\x11\x00\x0c") is None
