"""The lab broker's last hostile-client gaps (issue 11): per-connection rate limits (EMQX 5's
``messages_rate``/``bytes_rate``, a read pause), QoS 0 beside a full inflight window (EMQX's
``mqueue_store_qos0``) and the Keep Alive limits (Mosquitto's ``max_keepalive``, EMQX's
``server_keepalive``).

Raw MQTT clients on 127.0.51.x; each test bounded in time and count.
"""

from __future__ import annotations

import asyncio
import re
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_lab_limits import Raw

from realip.errors import ConfigurationError
from realip.lab import Background
from realip.lab import mqtt as m
from realip.lab.broker import LabBroker, Limits
from realip.lab.ratelimit import Rate, TokenBucket, parse_amount, parse_rate
from realip.topology import Broker, mqtt_connect

HOST = "127.0.51.1"


@pytest.fixture()
def bg() -> Iterator[Background]:
    with Background() as loop:
        yield loop


def start(bg: Background, limits: Limits | None = None) -> LabBroker:
    broker = LabBroker(Broker(addr=HOST, port=0), limits=limits)
    bg.run(broker.start())
    return broker


async def connect(port: int, client_id: str, source: str, **kw: Any) -> Raw:
    return await Raw.connect(port, client_id, source=source, host=HOST, **kw)


# -- rates, as EMQX writes them ------------------------------------------------------------------


@pytest.mark.parametrize("text, size, want", [
    ("1000/s", False, Rate(1000, 1)),
    ("1000/10s", False, Rate(1000, 10)),
    ("10000/60m", False, Rate(10000, 3600)),
    ("5/500ms", False, Rate(5, 0.5)),
    ("1MB/s", True, Rate(1 << 20, 1)),
    ("5kb/1m", True, Rate(5 << 10, 60)),
    (250, False, Rate(250, 1)),
    ("infinity", True, None),
    (None, False, None),
])
def test_rates_parse_like_emqx(text: Any, size: bool, want: Rate | None) -> None:
    assert parse_rate(text, "r", size=size) == want


@pytest.mark.parametrize("kw, where", [
    ({"messages_rate": "1MB/s"}, "Limits.messages_rate='1MB/s': a message rate has no size"),
    ({"bytes_rate": "fast"}, "Limits.bytes_rate='fast' is not a rate"),
    ({"messages_rate": 0}, "Limits.messages_rate=0 must be above 0"),
    ({"messages_rate": "0/s"}, "Limits.messages_rate='0/s' must be above 0"),
    ({"bytes_burst": "100MB"}, "Limits.bytes_burst without a bytes_rate"),
    ({"messages_rate": True}, "Limits.messages_rate must be a rate"),
    ({"mqueue_store_qos0": 1}, "Limits.mqueue_store_qos0 must be True or False"),
    ({"max_keepalive": 70000}, "Limits.max_keepalive=70000 is out of range: allowed 0..65535"),
    ({"server_keepalive": 0}, "Limits.server_keepalive=0 is out of range"),
    ({"server_keepalive": 30, "max_keepalive": 60}, "set one of them"),
])
def test_bad_limits_are_refused_at_construction(kw: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(where)):
        Limits(**kw)


def test_token_bucket_pauses_for_its_debt() -> None:
    bucket = TokenBucket(Rate(100, 1), burst=50, now=0.0)  # 150 tokens at first
    assert bucket.take(150, 0.0) == 0.0
    assert bucket.take(50, 0.0) == pytest.approx(0.5)  # 50 in debt at 100/s
    assert bucket.take(0, 0.5) == 0.0  # paid back
    assert bucket.take(0, 100.0) == 0.0 and bucket.tokens == 150  # capped at the capacity
    assert parse_amount("100MB/60m", "b", size=True) == 100 << 20  # EMQX writes bursts so


# -- a flood beside a good client ----------------------------------------------------------------


class Flooder:
    """A hostile client in a thread of its own (blocking sockets, so it costs the broker's
    loop nothing but what the broker reads): CONNECT, then *packets* written back to back
    for as long as the broker takes them; everything the broker sends is read and thrown
    away (a client that does not read would be held back by read back-pressure, not by the
    rate limit under test)."""

    def __init__(self, port: int, client_id: str, source: str,
                 packets: Callable[[int], bytes]) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5,
                                             source_address=(source, 0))
        self.sock.sendall(mqtt_connect(client_id))
        self.packets = packets
        self.stop = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self._write, daemon=True),
                        threading.Thread(target=self._read, daemon=True)]
        for t in self.threads:
            t.start()

    def _write(self) -> None:
        self.sock.settimeout(0.2)
        i = 0
        pending = b""
        while not self.stop.is_set():
            if not pending:
                pending = self.packets(i)
                i += 1
            try:
                n = self.sock.send(pending)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sent += n
            pending = pending[n:]

    def _read(self) -> None:
        while not self.stop.is_set():
            try:
                if not self.sock.recv(1 << 16):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(2)
        self.sock.close()


def subscribe_flood(i: int) -> bytes:
    """bench_soak's subscription flood: SUBSCRIBE packets of 5000 filters, past the quota."""
    return m.encode_subscribe(4, i % 65535 + 1,
                              [(f"sf/{i % 20}/{j}/+/#", 0) for j in range(5000)])


_PUBLISHES = b"".join(m.encode_publish(4, m.Publish("flood/x", bytes(40))) for _ in range(1000))


def publish_flood(i: int) -> bytes:
    """1000 small QoS 0 PUBLISH packets (to a topic nobody reads) per call."""
    return _PUBLISHES


async def probe(good: Raw, n: int) -> list[float]:
    """*n* publish→delivery round trips of the good client (seconds)."""
    out = []
    for i in range(n):
        payload = str(i).encode()
        started = time.perf_counter()
        good.publish("probe/good", payload)
        msg = await good.message(timeout=5)
        out.append(time.perf_counter() - started)
        assert msg.payload == payload
        await asyncio.sleep(0.003)
    return out


def test_rate_limits_keep_floods_from_starving_a_good_client(bg: Background) -> None:
    """A SUBSCRIBE flood and a PUBLISH flood, rate-limited as EMQX 5 does (reads paused), beside
    a good client: its median publish→delivery time stays within 2× of idle, measured in the
    same test, and both flooders' sessions say they were throttled.  (Without the limits the
    same floods cost ~10–20× the median: ``benchmarks/bench_soak.py``.)"""
    limits = Limits(messages_rate="500/s", bytes_rate="256KB/s", max_subscriptions=100)
    broker = start(bg, limits)
    port = broker.endpoint()[1]
    flooders: list[Flooder] = []
    try:
        good = bg.run(connect(port, "good", "127.0.51.2"))
        bg.run(good.subscribe(("probe/good", 0)))
        bg.run(probe(good, 30))  # warm-up
        idle = bg.run(probe(good, 200), timeout=20)
        flooders = [Flooder(port, "sub-flood", "127.0.51.3", subscribe_flood),
                    Flooder(port, "pub-flood", "127.0.51.4", publish_flood)]
        time.sleep(0.5)  # past the flooders' first bucketful
        loaded = bg.run(probe(good, 400), timeout=20)
        stats = {f: broker.stats(f) for f in ("sub-flood", "pub-flood")}
        sent = [f.sent for f in flooders]
        for f in flooders:
            f.close()
        # idle again once they are gone: the machine's own load is measured on both sides
        idle += bg.run(probe(good, 200), timeout=20)
    finally:
        for f in flooders:
            f.close()
        bg.run(broker.close())
    idle_p50, loaded_p50 = statistics.median(idle), statistics.median(loaded)
    pauses = [(st.throttled, round(st.throttled_seconds, 2)) for st in stats.values() if st]
    print(f"good client p50: idle {idle_p50 * 1e6:.0f} µs, beside the floods "
          f"{loaded_p50 * 1e6:.0f} µs ({loaded_p50 / idle_p50:.2f}×); flooders wrote {sent} "
          f"bytes; (pauses, seconds paused) {pauses}")
    assert loaded_p50 <= 2 * idle_p50, (idle_p50, loaded_p50)
    for name, st in stats.items():
        assert st is not None, name
        assert st.throttled > 0 and st.throttled_seconds > 0.1, (name, st)
    assert all(s > 0 for s in sent)
    throttled = {e.client_id for e in broker.enforced if e.action == "throttle"}
    assert throttled == {"sub-flood", "pub-flood"}  # the good client never was


def test_a_throttled_client_is_slowed_not_disconnected(bg: Background) -> None:
    """messages_rate counts packets of every kind: 60 PINGREQs at 20/s (bucket of 20) take
    about 2 s, and every one is answered."""
    broker = start(bg, Limits(messages_rate="20/s"))
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[float, int]:
            c = await connect(port, "pinger", "127.0.51.5", level=4)
            started = time.monotonic()
            c.send(b"\xc0\x00" * 60)
            for _ in range(60):
                await c.expect(m.PacketType.PINGRESP, timeout=5)
            took = time.monotonic() - started
            c.close()
            return took, 60

        took, answered = bg.run(run(), timeout=15)
        assert 1.5 < took < 4.5 and answered == 60
        stats_seen = [e for e in broker.enforced if e.client_id == "pinger"]
        assert [e.action for e in stats_seen] == ["throttle"]
    finally:
        bg.run(broker.close())


# -- QoS 0 beside a full inflight window ---------------------------------------------------------


def qos_sequence(bg: Background, store_qos0: bool) -> tuple[list[tuple[bytes, int]], int]:
    """Inflight window of 1, never acknowledged until the sequence is in: what reaches the
    subscriber, in order (payload, QoS), and the session's drop count."""
    broker = start(bg, Limits(max_inflight=1, mqueue_store_qos0=store_qos0))
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[list[tuple[bytes, int]], int]:
            sub = await connect(port, "window-1", "127.0.51.6")
            assert await sub.subscribe(("q/#", 1)) == b"\x01"
            pub = await connect(port, "mixer", "127.0.51.7")
            sequence = [("a1", 1), ("a2", 1), ("b1", 0), ("a3", 1), ("b2", 0), ("b3", 0)]
            for i, (name, qos) in enumerate(sequence, 1):
                pub.publish("q/x", name.encode(), qos=qos, pid=i)
            pub.publish("sync", b"", qos=1, pid=99)
            while (await pub.expect(m.PacketType.PUBACK))[1][:2] != b"\x00\x63":
                pass
            got = []
            while len(got) < len(sequence):
                msg = await sub.message()
                got.append((msg.payload, msg.qos))
                if msg.qos:
                    assert msg.packet_id is not None
                    sub.send(m.encode_ack(5, m.PacketType.PUBACK, msg.packet_id))
            stats = broker.stats("window-1")
            assert stats is not None
            sub.close()
            pub.close()
            return got, stats.dropped

        return bg.run(run(), timeout=15)
    finally:
        bg.run(broker.close())


def test_qos0_waits_behind_a_full_window_with_mqueue_store_qos0(bg: Background) -> None:
    """EMQX 6.3, ``mqueue_store_qos0 = true`` (its default, and the lab's): QoS 0 messages
    that arrive while the window is full queue behind the QoS 1 ones — arrival order."""
    got, dropped = qos_sequence(bg, True)
    assert [p for p, _ in got] == [b"a1", b"a2", b"b1", b"a3", b"b2", b"b3"]
    assert dropped == 0


def test_qos0_passes_a_full_window_without_mqueue_store_qos0(bg: Background) -> None:
    """EMQX <= 6.2 (and 6.3 with ``mqueue_store_qos0 = false``), Mosquitto 2.0: QoS 0 is
    written at once, past the QoS 1 messages waiting for the window; each QoS keeps its own
    order, which is all MQTT asks [MQTT-4.6.0-6]."""
    got, dropped = qos_sequence(bg, False)
    assert [p for p, _ in got] == [b"a1", b"b1", b"b2", b"b3", b"a2", b"a3"]
    for qos in (0, 1):
        names = [p for p, q in got if q == qos]
        assert names == sorted(names)
    assert dropped == 0


def test_without_mqueue_store_qos0_a_congested_subscriber_loses_qos0_not_memory(
        bg: Background) -> None:
    """QoS 0 is never queued without ``mqueue_store_qos0``: a subscriber that does not read
    loses them once its transport is full, and its queue stays empty."""
    broker = start(bg, Limits(mqueue_store_qos0=False, max_packet_size=300_000,
                              max_queued_bytes=1_000_000))
    port = broker.endpoint()[1]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind(("127.0.51.8", 0))
    s.connect((HOST, port))
    s.sendall(mqtt_connect("stuck") + m.encode_subscribe(4, 1, [("big", 0)]))
    try:
        async def run() -> Any:
            deadline = time.monotonic() + 3
            while broker.stats("stuck") is None or not broker.stats("stuck").subscriptions:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            pub = await connect(port, "big-pub", "127.0.51.9")
            for _ in range(40):
                pub.publish("big", bytes(200_000))
            pub.publish("sync", b"", qos=1, pid=1)
            await pub.expect(m.PacketType.PUBACK, timeout=10)
            pub.close()
            return broker.stats("stuck")

        stats = bg.run(run(), timeout=20)
        assert stats is not None
        # the kernel's buffers take up to ~4 MB of the 8 MB; the rest is dropped
        assert stats.queued_messages == 0 and stats.dropped >= 15
        assert stats.peak_buffered <= 1_000_000
    finally:
        s.close()
        bg.run(broker.close())


# -- Keep Alive limits ---------------------------------------------------------------------------


async def raw_connack(port: int, source: str, client_id: str, level: int,
                      keepalive: int) -> tuple[int, dict[str, Any]]:
    """CONNECT with *keepalive*; the CONNACK's reason code and (MQTT 5) properties."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    writer.write(m.encode_connect(client_id, level, keepalive=keepalive))
    frames = m.PacketReader(m.MAX_PACKET)
    got: list[tuple[int, bytes]] = []
    while not got:
        chunk = await asyncio.wait_for(reader.read(1 << 16), 3)
        assert chunk, "closed without a CONNACK"
        got = frames.feed(chunk)
    first, body = got[0]
    assert first >> 4 == m.PacketType.CONNACK
    props: dict[str, Any] = {}
    if level == 5:
        parsed, _ = Properties(PacketTypes.CONNACK).unpack(body[2:])
        props = parsed.json()
    writer.close()
    return body[1], props


def test_max_keepalive_like_mosquitto(bg: Background) -> None:
    """Mosquitto 2.0.12+: Keep Alive 0 or above ``max_keepalive`` — MQTT 5 is told
    ``max_keepalive`` (Server Keep Alive), MQTT 3.1.1 is refused with CONNACK 0x02."""
    broker = start(bg, Limits(max_keepalive=30))
    port = broker.endpoint()[1]
    try:
        async def run() -> list[tuple[int, Any]]:
            out = []
            for cid, level, asked in [("v5-0", 5, 0), ("v5-big", 5, 600), ("v5-ok", 5, 20),
                                      ("v5-max", 5, 30), ("v3-big", 4, 600), ("v3-0", 4, 0),
                                      ("v3-ok", 4, 20)]:
                code, props = await raw_connack(port, "127.0.51.10", cid, level, asked)
                out.append((code, props.get("ServerKeepAlive")))
            return out

        assert bg.run(run(), timeout=15) == [(0, 30), (0, 30), (0, None), (0, None),
                                             (2, None), (2, None), (0, None)]
        refused = [r.log for r in broker.refused]
        assert refused == ["max_keepalive 30: Keep Alive 600 refused (CONNACK 0x02)",
                           "max_keepalive 30: Keep Alive 0 refused (CONNACK 0x02)"]
    finally:
        bg.run(broker.close())


def test_server_keepalive_like_emqx(bg: Background) -> None:
    """EMQX ``mqtt.server_keepalive``: every MQTT 5 client is told it, whatever it asked;
    MQTT 3.1.1 clients keep their own; the session's stats show the value in force."""
    broker = start(bg, Limits(server_keepalive=45))
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[list[tuple[int, Any]], int, int]:
            out = []
            for cid, level, asked in [("e5-0", 5, 0), ("e5-10", 5, 10), ("e5-900", 5, 900),
                                      ("e3-900", 4, 900)]:
                code, props = await raw_connack(port, "127.0.51.11", cid, level, asked)
                out.append((code, props.get("ServerKeepAlive")))
            five = await connect(port, "held-5", "127.0.51.11", keepalive=10)
            three = await connect(port, "held-3", "127.0.51.11", level=4, keepalive=10)
            s5, s3 = broker.stats("held-5"), broker.stats("held-3")
            assert s5 is not None and s3 is not None
            five.close()
            three.close()
            return out, s5.keepalive, s3.keepalive

        out, k5, k3 = bg.run(run(), timeout=15)
        assert out == [(0, 45), (0, 45), (0, 45), (0, None)]
        assert (k5, k3) == (45, 10)
    finally:
        bg.run(broker.close())


def test_the_watchdog_runs_on_the_keepalive_in_force(bg: Background) -> None:
    """An MQTT 5 client asking for no Keep Alive under ``max_keepalive=1`` is told 1 s and is
    disconnected (0x8D) 1.5 s after its last packet — the broker's value, not the client's."""
    broker = start(bg, Limits(max_keepalive=1))
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[Any, float, int | None]:
            c = await connect(port, "silent", "127.0.51.12", keepalive=0)
            started = time.monotonic()
            packets = await c.closed(timeout=5)
            took = time.monotonic() - started
            reason = next((body[0] for first, body in packets
                           if first >> 4 == m.PacketType.DISCONNECT), None)
            return c.connack.get("ServerKeepAlive"), took, reason

        told, took, reason = bg.run(run(), timeout=15)
        assert told == 1 and reason == 0x8D
        assert 1.3 < took < 3.0
    finally:
        bg.run(broker.close())
