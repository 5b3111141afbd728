"""The lab servers under hostile and sloppy clients, all on loopback and bounded: garbage,
resets, slow headers, malformed and oversized packets, idle clients — each bad connection is
closed alone, good clients keep being served, and closing the servers leaves nothing open.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator

import pytest
from lab_helpers import Paho

from realip.lab import Background, free_port
from realip.lab.broker import LabBroker, Limits
from realip.lab.relay import LiveTopology
from realip.proxy_protocol import V2_SIGNATURE, build
from realip.topology import Broker, Client, NginxStream, Topology, mqtt_connect

HOST = "127.0.6.1"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


@pytest.fixture()
def bg() -> Iterator[Background]:
    with Background() as loop:
        yield loop


async def exchange(port: int, data: bytes, *, source: str, read: bool = True,
                   timeout: float = 3.0, reset: bool = False) -> bytes:
    """Connect from *source*, send *data*, return what came back until EOF (or b"")."""
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    try:
        writer.write(data)
        await writer.drain()
        if reset:
            writer.transport.abort()
            return b""
        if not read:
            return b""
        out = b""
        while True:
            chunk = await asyncio.wait_for(reader.read(4096), timeout)
            if not chunk:
                return out
            out += chunk
    except (OSError, asyncio.TimeoutError):
        return b""
    finally:
        writer.close()


def publish(topic: str, payload: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload
    return bytes([0x30, len(body)]) + body


def subscribe(topic: str) -> bytes:
    body = b"\x00\x01" + len(topic).to_bytes(2, "big") + topic.encode() + b"\x00"
    return bytes([0x82, len(body)]) + body


HOSTILE = [
    b"\x00\x00",  # reserved packet type 0
    b"\x10\xff\xff\xff\xff\x7f",  # remaining length over 4 bytes
    b"\x10\x0c\x00\x04MQTT\x09\x02\x00\x3c\x00\x00",  # unsupported protocol level
    build(("6.6.6.6", 1), (HOST, 1883), version=1) + mqtt_connect("pp-on-plain"),
    b"GET /mqtt HTTP/1.1\r\n\r\n",
    b"\x30\x05\x00\x01a",  # PUBLISH before CONNECT
    os.urandom(64),
    b"\x10",  # a CONNECT that never completes
    b"",  # connect and close
]


def test_broker_survives_hostile_connections(bg: Background) -> None:
    broker = LabBroker(Broker(addr=HOST, port=0),
                       Broker(addr=HOST, port=0, proxy_protocol=True, proxy_protocol_timeout=0.3),
                       Broker(addr=HOST, port=0, listener="ws"), idle_timeout=0.5)
    bg.run(broker.start())
    try:
        plain, pp, ws = (broker.endpoint(i)[1] for i in range(3))
        rng = random.Random(1883)

        async def hostile(i: int) -> None:
            source = f"127.0.6.{100 + i % 100}"
            kind = i % 4
            if kind == 0:
                await exchange(plain, HOSTILE[i % len(HOSTILE)], source=source,
                               reset=rng.random() < 0.3)
            elif kind == 1:  # slow or broken PROXY headers
                data = [b"PROXY TCP4 1.2.3", V2_SIGNATURE + b"\x21\x11\x00\xff\x01",
                        b"PROXY TCP9 x\r\n"][i % 3]
                await exchange(pp, data, source=source)
            elif kind == 2:  # WebSocket listener fed junk
                await exchange(ws, HOSTILE[i % len(HOSTILE)] + b"\r\n\r\n", source=source)
            else:  # reset in the middle of a CONNECT
                await exchange(plain, mqtt_connect(f"half-{i}")[:7], source=source, reset=True)

        async def good(i: int) -> bytes:
            data = mqtt_connect(f"good-{i}") + subscribe(f"$realip/whoami/good-{i}") \
                + publish("$realip/whoami", b"")
            reader, writer = await asyncio.open_connection(HOST, plain,
                                                           local_addr=("127.0.6.50", 0))
            try:
                writer.write(data)
                got = b""
                while b"127.0.6.50:" not in got:
                    chunk = await asyncio.wait_for(reader.read(4096), 3)
                    assert chunk, got
                    got += chunk
                return got
            finally:
                writer.close()

        async def storm() -> list[bytes]:
            bad = [asyncio.ensure_future(hostile(i)) for i in range(160)]
            goods = await asyncio.gather(*(good(i) for i in range(20)))
            await asyncio.gather(*bad)
            return goods

        started = time.monotonic()
        answers = bg.run(storm(), timeout=20)
        assert all(a.startswith(b"\x20\x02\x00\x00") for a in answers)  # CONNACK accepted
        assert time.monotonic() - started < 10
        assert len(broker.refused) >= 100
        logs = [r.log for r in broker.refused]
        assert any(log.startswith("idle_timeout") for log in logs)  # the CONNECT that never ends
        assert any("proxy_proto_timeout" in log for log in logs)  # the slow PROXY header
        assert any("resemble_protocol" in log for log in logs)  # a header on a plain listener
        # still serving, and nothing left over
        with Paho("after-storm") as c:
            assert c.connect(HOST, plain, bind="127.0.6.51")
            assert c.whoami("after-storm").startswith("127.0.6.51:")
        deadline = time.monotonic() + 3
        while broker.clients() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert broker.clients() == {}
    finally:
        bg.run(broker.close())


def test_relays_survive_hostile_connections(bg: Background) -> None:
    client = "127.0.7.86"
    topo = Topology(
        name="reliability",
        client=Client(addr=client, port=free_port(client)),
        hops=(NginxStream(name="lb1", addr="127.0.8.116", port=free_port("127.0.8.116"),
                          proxy_protocol="on"),
              NginxStream(name="lb2", addr="127.0.8.200", port=free_port("127.0.8.200"),
                          listen_proxy_protocol=True, proxy_protocol="on",
                          set_real_ip_from=("127.0.8.0/24",))),
        broker=Broker(addr="127.0.8.71", port=free_port("127.0.8.71"), proxy_protocol=True))
    live = LiveTopology(topo, pin_source_ports=False, header_timeout=0.3)
    bg.run(live.start())
    try:
        lb2 = ("127.0.8.200", topo.hops[1].port)

        async def hostile(i: int) -> None:
            reader, writer = await asyncio.open_connection(*lb2, local_addr=("127.0.7.9", 0))
            try:
                writer.write([b"PROXY TCP4 1.2", b"GARBAGE\r\n", b"PROXY TCP4 1.2.3.4 x 1 2\r\n",
                              b"\r\n\r\n\x00"][i % 4])
                await writer.drain()
                if i % 5 == 0:
                    writer.transport.abort()
                    return
                await asyncio.wait_for(reader.read(), 3)
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                writer.close()

        async def storm() -> None:
            await asyncio.gather(*(hostile(i) for i in range(100)))

        bg.run(storm(), timeout=20)
        with Paho("through") as c:
            assert c.connect(*live.entry, bind=client)
            assert c.whoami("through").startswith(f"{client}:")
        refused = [p for p in live.relay("lb2").passages if not p.view.accepted]
        assert len(refused) >= 60
    finally:
        bg.run(live.close())


def test_keepalive_expiry_closes_idle_clients(bg: Background) -> None:
    broker = LabBroker(Broker(addr=HOST, port=0))
    bg.run(broker.start())
    try:
        connect = bytearray(mqtt_connect("sleepy", keepalive=1))
        started = time.monotonic()
        got = bg.run(exchange(broker.endpoint()[1], bytes(connect), source="127.0.6.60",
                              timeout=4))
        assert got == b"\x20\x02\x00\x00"  # CONNACK, then closed for silence
        assert 1.2 < time.monotonic() - started < 3.5
        assert "sleepy" not in broker.clients()
    finally:
        bg.run(broker.close())


def test_malformed_packets_after_connect(bg: Background) -> None:
    broker = LabBroker(Broker(addr=HOST, port=0), limits=Limits(max_packet_size=1024))
    bg.run(broker.start())
    try:
        port = broker.endpoint()[1]
        for bad in (b"\x00\x00", b"\x82\x03\x00\x01\x00", b"\x30\xff\x7f" + b"x" * 100,
                    mqtt_connect("again"), publish("a/+/b", b"wildcard in a topic name")):
            got = bg.run(exchange(port, mqtt_connect("victim") + bad, source="127.0.6.61"))
            assert got == b"\x20\x02\x00\x00", bad  # CONNACK, then closed
        # MQTT 5: the broker says why before closing
        body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + b"\x00\x02v5"
        v5 = bytes([0x10, len(body)]) + body
        got = bg.run(exchange(port, v5 + b"\x00\x00", source="127.0.6.62"))
        # CONNACK accepted (its properties announce the limits: tests/test_lab_limits.py)
        assert got[:1] == b"\x20" and got[3] == 0 and got.endswith(b"\xe0\x01\x81")
    finally:
        bg.run(broker.close())


def test_websocket_text_frames_and_pings(bg: Background) -> None:
    from realip.topology import ws_upgrade_request

    broker = LabBroker(Broker(addr=HOST, port=0, listener="ws"))
    bg.run(broker.start())
    try:
        port = broker.endpoint()[1]
        mask = b"\x01\x02\x03\x04"

        def frame(opcode: int, payload: bytes) -> bytes:
            return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + \
                bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

        request = ws_upgrade_request(f"{HOST}:{port}")
        got = bg.run(exchange(port, request + frame(0x9, b"hi") + frame(0x1, b"text"),
                              source="127.0.6.63"))
        assert got.startswith(b"HTTP/1.1 101")
        assert b"\x8a\x02hi" in got  # pong
        assert b"\x03\xebMQTT over WebSocket uses binary frames" in got  # close 1003
    finally:
        bg.run(broker.close())


def test_close_leaves_nothing_open() -> None:
    before = open_fds()
    with Background() as bg:
        broker = LabBroker(Broker(addr=HOST, port=0), Broker(addr=HOST, port=0, listener="ws"))
        bg.run(broker.start())
        port = broker.endpoint()[1]

        held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

        async def hold(n: int) -> None:
            for i in range(n):
                reader, writer = await asyncio.open_connection(HOST, port)
                held.append((reader, writer))
                writer.write(mqtt_connect(f"held-{i}"))
                await writer.drain()
                assert await asyncio.wait_for(reader.readexactly(4), 3) == b"\x20\x02\x00\x00"

        bg.run(hold(10))
        assert len(broker.clients()) == 10
        started = time.monotonic()
        bg.run(broker.close())
        assert broker.clients() == {}

        async def all_eof() -> None:
            for reader, writer in held:
                assert await asyncio.wait_for(reader.read(), 3) == b""
                writer.close()
            await asyncio.sleep(0.05)

        bg.run(all_eof())
        assert time.monotonic() - started < 3
    assert open_fds() <= before + 1
