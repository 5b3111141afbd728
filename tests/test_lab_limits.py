"""The lab broker under hostile clients (issue 11): its :class:`Limits` validated, announced
in CONNACK and enforced — a stalled subscriber bounded by the broker's own accounting, the
drop policy, the inflight window, topic aliases, packet size, Receive Maximum, subscriptions
and connections — the topic trie's match cost, and ``$realip/`` reserved to the broker.

Raw MQTT clients on 127.0.40.x (one broker per test, each bounded in time and count).
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from realip.errors import ConfigurationError
from realip.lab import Background, Lab
from realip.lab import mqtt as m
from realip.lab.broker import WHOAMI, LabBroker, Limits
from realip.lab.topics import TopicTree
from realip.topology import Broker, mqtt_connect

HOST = "127.0.40.1"


@pytest.fixture()
def bg() -> Iterator[Background]:
    with Background() as loop:
        yield loop


class Raw:
    """A raw MQTT client: sends bytes, reads framed packets (``(type, first byte, body)``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 level: int) -> None:
        self.reader = reader
        self.writer = writer
        self.level = level
        self.frames = m.PacketReader(m.MAX_PACKET)
        self.pending: list[tuple[int, bytes]] = []
        self.connack: dict[str, Any] = {}

    @classmethod
    async def connect(cls, port: int, client_id: str, *, level: int = 5, source: str = HOST,
                      properties: tuple[tuple[int, Any], ...] = (),
                      will: m.Will | None = None, host: str = HOST, keepalive: int = 0) -> Raw:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
        raw = cls(reader, writer, level)
        raw.send(m.encode_connect(client_id, level, properties=properties, will=will,
                                  keepalive=keepalive))
        ptype, _, body = await raw.packet()
        assert ptype == m.PacketType.CONNACK and body[1] == 0, body
        if level == 5:
            props, _ = Properties(PacketTypes.CONNACK).unpack(body[2:])
            raw.connack = props.json()
        return raw

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def packet(self, timeout: float = 3.0) -> tuple[int, int, bytes]:
        while not self.pending:
            chunk = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
            if not chunk:
                raise EOFError
            self.pending += self.frames.feed(chunk)
        first, body = self.pending.pop(0)
        return first >> 4, first, body

    async def expect(self, ptype: int, timeout: float = 3.0) -> tuple[int, bytes]:
        while True:
            got, first, body = await self.packet(timeout)
            if got == ptype:
                return first, body

    async def closed(self, timeout: float = 3.0) -> list[tuple[int, bytes]]:
        """Every packet until the broker closes the connection."""
        out = []
        while True:
            try:
                _, first, body = await self.packet(timeout)
            except (EOFError, ConnectionError):
                return out
            out.append((first, body))

    async def subscribe(self, *filters: tuple[str, int], pid: int = 1) -> bytes:
        self.send(m.encode_subscribe(self.level, pid, filters))
        _, body = await self.expect(m.PacketType.SUBACK)
        return body[3:] if self.level == 5 else body[2:]  # the reason codes

    def publish(self, topic: str, payload: bytes = b"", qos: int = 0, pid: int | None = None,
                props: tuple[tuple[int, Any], ...] = ()) -> None:
        self.send(m.encode_publish(self.level, m.Publish(topic, payload, qos, False, False,
                                                         pid if qos else None, props)))

    async def message(self, timeout: float = 3.0) -> m.Publish:
        first, body = await self.expect(m.PacketType.PUBLISH, timeout)
        packet = m.parse(first, body, self.level)
        assert isinstance(packet, m.Publish)
        return packet

    def close(self) -> None:
        self.writer.close()


def start(bg: Background, limits: Limits | None = None, **kw: Any) -> LabBroker:
    broker = LabBroker(Broker(addr=HOST, port=0), limits=limits, **kw)
    bg.run(broker.start())
    return broker


# -- Limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, where", [
    ({"max_packet_size": 1}, "max_packet_size=1 is out of range: allowed 2..268435460"),
    ({"max_topic_alias": 65536}, "max_topic_alias=65536"),
    ({"max_inflight": 0}, "max_inflight=0"),
    ({"max_queued_messages": 0}, "max_queued_messages=0"),
    ({"max_connections": True}, "max_connections must be an integer"),
    ({"max_subscriptions": 1.5}, "max_subscriptions must be an integer"),
    ({"queue_policy": "block"}, "queue_policy must be 'drop' or 'disconnect'"),
    ({"max_queued_bytes": 1000, "max_packet_size": 2000}, "below max_packet_size=2000"),
])
def test_limits_are_validated_at_construction(kw: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(where)):
        Limits(**kw)


def test_limits_reach_the_broker_and_the_lab() -> None:
    limits = Limits(max_topic_alias=0)
    with pytest.raises(ConfigurationError, match=r"limits must be a realip\.lab\.broker\.Limits"):
        LabBroker(Broker(addr=HOST, port=0), limits={"max_topic_alias": 0})  # type: ignore
    with pytest.raises(ConfigurationError, match=r"limits must be a realip\.lab\.broker\.Limits"):
        Lab("tcp-single-tier", limits=3, progress="none")  # type: ignore[arg-type]
    assert LabBroker(Broker(addr=HOST, port=0)).limits == Limits()
    with Lab("tcp-single-tier", progress="none", limits=limits) as lab:
        assert lab.broker is not None and lab.broker.limits is limits
        assert lab.connect().agree


def test_connack_announces_every_limit_mqtt5_has_a_property_for(bg: Background) -> None:
    broker = start(bg, Limits(max_packet_size=4096, max_topic_alias=7, max_inflight=5))
    try:
        async def run() -> dict[str, Any]:
            c = await Raw.connect(broker.endpoint()[1], "announced")
            c.close()
            return c.connack

        assert bg.run(run()) == {"ReceiveMaximum": 5, "TopicAliasMaximum": 7,
                                 "MaximumPacketSize": 4096,
                                 "SubscriptionIdentifierAvailable": 0,
                                 "SharedSubscriptionAvailable": 0}
    finally:
        bg.run(broker.close())


# -- a subscriber that never reads ---------------------------------------------------------------


def stalled_subscriber(port: int, client_id: str, topic: str) -> socket.socket:
    """What issue 11 did: CONNECT + SUBSCRIBE, then never recv() (a small receive buffer, so
    the kernel absorbs little)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind(("127.0.40.2", 0))
    s.connect((HOST, port))
    s.sendall(mqtt_connect(client_id) + m.encode_subscribe(4, 1, [(topic, 0)]))
    return s


@pytest.mark.parametrize("policy", ["drop", "disconnect"])
def test_a_stalled_subscriber_costs_at_most_its_bound(bg: Background, policy: str) -> None:
    bound = 1_500_000
    limits = Limits(max_packet_size=600_000, max_queued_bytes=bound,
                    queue_policy=policy)  # type: ignore[arg-type]
    broker = start(bg, limits)
    port = broker.endpoint()[1]
    stalled = stalled_subscriber(port, "stalled", "f")
    payload = bytes(512 * 1024)
    count = 120
    try:
        async def flood() -> tuple[float, m.Publish]:
            deadline = time.monotonic() + 3
            while broker.stats("stalled") is None or not broker.stats("stalled").subscriptions:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            good = await Raw.connect(port, "good-reader", source="127.0.40.3")
            assert await good.subscribe(("g", 0)) == b"\x00"
            pub = await Raw.connect(port, "publisher", source="127.0.40.4")
            started = time.monotonic()
            peaks = []
            for i in range(count):
                pub.publish("f", payload)
                await pub.writer.drain()
                if i % 10 == 0:
                    stats = broker.stats("stalled")
                    if stats is not None:
                        peaks.append(stats.buffered)
            pub.publish("g", b"after", qos=1, pid=1)  # in order: every flood message is routed
            await pub.expect(m.PacketType.PUBACK, timeout=20)
            took = time.monotonic() - started
            assert all(p <= bound for p in peaks), peaks
            msg = await good.message()
            good.close()
            pub.close()
            return took, msg

        took, msg = bg.run(flood(), timeout=60)
        assert msg.payload == b"after"  # a good client is still served
        assert took < 30  # the publisher was never held back by the stalled subscriber
        if policy == "drop":
            stats = broker.stats("stalled")
            assert stats is not None
            assert 0 < stats.peak_buffered <= bound  # the broker's own accounting
            assert stats.buffered <= bound
            assert stats.dropped >= count - bound // len(payload) - 10  # most were dropped
        else:
            assert broker.stats("stalled") is None  # disconnected, its buffer freed
            kicked = [e for e in broker.enforced if e.client_id == "stalled"]
            assert kicked and kicked[0].action == "disconnect" and kicked[0].reason == 0x97
    finally:
        stalled.close()
        bg.run(broker.close())


def test_queue_policy_drops_qos0_first_then_the_oldest(bg: Background) -> None:
    # one message in flight (never acknowledged until we say), three queued
    broker = start(bg, Limits(max_inflight=1, max_queued_messages=3))
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[list[bytes], int]:
            sub = await Raw.connect(port, "slow-acker", source="127.0.40.5")
            assert await sub.subscribe(("t/#", 1)) == b"\x01"
            pub = await Raw.connect(port, "feeder", source="127.0.40.6")
            sequence = [("p1", 1), ("p2", 1), ("p3", 0), ("p4", 1), ("p5", 1), ("p6", 0),
                        ("p7", 1)]
            for i, (name, qos) in enumerate(sequence, 1):
                pub.publish("t/x", name.encode(), qos=qos, pid=i)
            pub.publish("sync", b"", qos=1, pid=99)
            while True:
                _, body = await pub.expect(m.PacketType.PUBACK)
                if body[:2] == b"\x00\x63":
                    break
            stats = broker.stats("slow-acker")
            assert stats is not None and (stats.inflight, stats.queued_messages) == (1, 3)
            got = []
            for _ in range(4):  # acknowledge one at a time: the window lets the next one out
                msg = await sub.message()
                got.append(msg.payload)
                assert msg.packet_id is not None
                sub.send(m.encode_ack(5, m.PacketType.PUBACK, msg.packet_id))
            with pytest.raises(asyncio.TimeoutError):
                await sub.message(timeout=0.3)
            stats = broker.stats("slow-acker")
            assert stats is not None
            sub.close()
            pub.close()
            return got, stats.dropped

        got, dropped = bg.run(run(), timeout=20)
        # p3 (QoS 0) went first, then p6 (the new QoS 0 itself), then the oldest QoS 1, p2
        assert got == [b"p1", b"p4", b"p5", b"p7"]
        assert dropped == 3
    finally:
        bg.run(broker.close())


def test_client_receive_maximum_bounds_what_the_broker_sends(bg: Background) -> None:
    broker = start(bg)
    port = broker.endpoint()[1]
    try:
        async def run() -> int:
            sub = await Raw.connect(port, "rm-2", source="127.0.40.7",
                                    properties=((m.RECEIVE_MAXIMUM, 2),))
            await sub.subscribe(("w", 1))
            pub = await Raw.connect(port, "rm-pub", source="127.0.40.8")
            for i in range(1, 6):
                pub.publish("w", b"x", qos=1, pid=i)
            first = [await sub.message(), await sub.message()]
            with pytest.raises(asyncio.TimeoutError):
                await sub.message(timeout=0.3)  # two unacknowledged: the rest wait
            for msg in first:
                assert msg.packet_id is not None
                sub.send(m.encode_ack(5, m.PacketType.PUBACK, msg.packet_id))
            more = [await sub.message(), await sub.message()]
            sub.close()
            pub.close()
            return len(first) + len(more)

        assert bg.run(run(), timeout=15) == 4
    finally:
        bg.run(broker.close())


# -- MQTT 5 limits enforced --------------------------------------------------------------------


async def disconnect_reason(c: Raw) -> int | None:
    for first, body in await c.closed():
        if first >> 4 == m.PacketType.DISCONNECT:
            return body[0]
    return None


def test_topic_alias_enforced(bg: Background) -> None:
    broker = start(bg, Limits(max_topic_alias=3))
    no_alias = LabBroker(Broker(addr=HOST, port=0), limits=Limits(max_topic_alias=0))
    bg.run(no_alias.start())
    port, port0 = broker.endpoint()[1], no_alias.endpoint()[1]
    try:
        async def run() -> list[int | None]:
            out: list[int | None] = []
            # an alias flood within the maximum: the table never holds more than 3
            c = await Raw.connect(port, "aliases", source="127.0.40.9")
            for i in range(200):
                c.publish(f"a/{i}/" + "x" * 1000, b"", props=((m.TOPIC_ALIAS, i % 3 + 1),))
            c.publish("sync", b"", qos=1, pid=1, props=())
            await c.expect(m.PacketType.PUBACK)
            stats = broker.stats("aliases")
            assert stats is not None and stats.aliases == 3
            c.publish("", b"via alias", props=((m.TOPIC_ALIAS, 2),))  # known: fine
            c.publish("b", b"", props=((m.TOPIC_ALIAS, 4),))  # above the maximum
            out.append(await disconnect_reason(c))
            c = await Raw.connect(port, "unknown-alias", source="127.0.40.9")
            c.publish("", b"", props=((m.TOPIC_ALIAS, 1),))  # never set
            out.append(await disconnect_reason(c))
            c = await Raw.connect(port, "alias-zero", source="127.0.40.9")
            c.publish("z", b"", props=((m.TOPIC_ALIAS, 0),))
            out.append(await disconnect_reason(c))
            c = await Raw.connect(port0, "none-announced", source="127.0.40.9")
            assert "TopicAliasMaximum" not in c.connack
            c.publish("z", b"", props=((m.TOPIC_ALIAS, 1),))
            out.append(await disconnect_reason(c))
            return out

        assert bg.run(run(), timeout=20) == [0x94, 0x82, 0x94, 0x94]
        assert {e.reason for e in broker.enforced} == {0x94, 0x82}
    finally:
        bg.run(broker.close())
        bg.run(no_alias.close())


def test_packet_too_large_disconnects(bg: Background) -> None:
    broker = start(bg, Limits(max_packet_size=2048))
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[int | None, bool]:
            c = await Raw.connect(port, "big", source="127.0.40.10")
            assert c.connack["MaximumPacketSize"] == 2048
            c.publish("t", bytes(2030))  # 2030 + 1 + 2 + 1 + 2 + 1 = 2037 bytes: fine
            c.publish("t", bytes(2048))
            reason = await disconnect_reason(c)
            v3 = await Raw.connect(port, "big-311", level=4, source="127.0.40.10")
            v3.publish("t", bytes(4096))
            return reason, (await v3.closed()) == []

        assert bg.run(run(), timeout=15) == (0x95, True)  # 3.1.1: closed without a word
    finally:
        bg.run(broker.close())


def test_receive_maximum_exceeded_disconnects(bg: Background) -> None:
    broker = start(bg, Limits(max_inflight=2))
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[list[int], int | None]:
            c = await Raw.connect(port, "qos2", source="127.0.40.11")
            assert c.connack["ReceiveMaximum"] == 2
            kinds = []
            for pid in (1, 2):  # completed flows do not count
                c.publish("q", b"", qos=2, pid=pid)
                kinds.append((await c.packet())[0])
                c.send(m.encode_ack(5, m.PacketType.PUBREL, pid))
                kinds.append((await c.packet())[0])
            for pid in (3, 4):
                c.publish("q", b"", qos=2, pid=pid)
                kinds.append((await c.packet())[0])
            c.publish("q", b"", qos=2, pid=3)  # a resend: still two
            kinds.append((await c.packet())[0])
            c.publish("q", b"", qos=2, pid=5)  # a third unfinished one
            return kinds, await disconnect_reason(c)

        kinds, reason = bg.run(run(), timeout=15)
        assert kinds == [5, 7, 5, 7, 5, 5, 5]  # PUBREC, PUBCOMP, ...
        assert reason == 0x93
    finally:
        bg.run(broker.close())


def test_max_subscriptions_and_max_connections(bg: Background) -> None:
    broker = start(bg, Limits(max_subscriptions=2, max_connections=3))
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[bytes, bytes, bool, bool]:
            c1 = await Raw.connect(port, "c1", source="127.0.40.12")
            codes = await c1.subscribe(("a", 0), ("b", 1), ("c", 0))
            again = await c1.subscribe(("a", 1), pid=2)  # an existing filter is replaced
            c2 = await Raw.connect(port, "c2", source="127.0.40.12")
            c3 = await Raw.connect(port, "c3", source="127.0.40.12")
            reader, writer = await asyncio.open_connection(HOST, port,
                                                           local_addr=("127.0.40.13", 0))
            writer.write(mqtt_connect("c4"))
            try:  # closed at accept (a reset, as the broker aborts it)
                fourth_closed = await asyncio.wait_for(reader.read(), 3) == b""
            except ConnectionResetError:
                fourth_closed = True
            writer.close()
            c3.close()
            deadline = time.monotonic() + 3
            while "c3" in broker.clients() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            c5 = await Raw.connect(port, "c5", source="127.0.40.12")  # room again
            for c in (c1, c2, c5):
                c.close()
            return codes, again, fourth_closed, True

        codes, again, fourth_closed, fifth = bg.run(run(), timeout=15)
        assert codes == b"\x00\x01\x97" and again == b"\x01"
        assert fourth_closed and fifth
        assert any(r.log.startswith("max_connections (3)") for r in broker.refused)
    finally:
        bg.run(broker.close())


# -- the subscription index ----------------------------------------------------------------------


def test_topic_tree_matches_like_the_specification() -> None:
    rng = random.Random(11)
    words = ["a", "b", "", "$SYS", "$realip"]

    def topic() -> str:
        return "/".join(rng.choice(words) for _ in range(rng.randint(1, 4)))

    def filt() -> str:
        levels = [rng.choice([*words, "+"]) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            levels[-1] = "#"
        return "/".join(levels)

    tree: TopicTree[int, str] = TopicTree()
    filters = sorted({filt() for _ in range(300)})
    for i, f in enumerate(filters):
        assert tree.add(f, i, f)
    for f in filters[::3]:  # some removed again, their branches pruned
        assert tree.remove(f, filters.index(f))
    kept = {i: f for i, f in enumerate(filters) if f not in set(filters[::3])}
    assert len(tree) == len(kept)
    for _ in range(500):
        t = topic()
        want = sorted(i for i, f in kept.items() if m.topic_matches(f, t))
        assert sorted(k for k, _ in tree.match(t)) == want, t
    assert sorted(f for f, _, _ in tree.filters()) == sorted(kept.values())


def test_a_publish_costs_what_matches_it_not_what_exists(bg: Background) -> None:
    """300 000 subscriptions held by one client: the good client's publish visits the same
    few trie nodes as on an idle broker, and is delivered (latency figures:
    benchmarks/bench_soak.py)."""
    count = 300_000
    broker = start(bg, Limits(max_subscriptions=count, max_packet_size=1 << 21,
                              max_queued_bytes=1 << 22))
    port = broker.endpoint()[1]
    try:
        async def probe(good: Raw, n: int) -> int:
            visits = []
            for i in range(n):
                good.publish("probe/me", str(i).encode())
                msg = await good.message()
                assert msg.payload == str(i).encode()
                visits.append(broker.subscriptions.visited)
            return max(visits)

        async def run() -> tuple[int, int]:
            good = await Raw.connect(port, "good", source="127.0.40.14")
            await good.subscribe(("probe/+", 0))
            idle = await probe(good, 5)
            hog = await Raw.connect(port, "hog", source="127.0.40.15")
            per_packet = 75_000
            for k in range(count // per_packet):
                filters = [(f"hog/{k}/{i % 300}/{i}", 0) for i in range(per_packet)]
                hog.send(m.encode_subscribe(5, k + 1, filters))
                await hog.expect(m.PacketType.SUBACK, timeout=30)
            assert len(broker.subscriptions) == count + 1
            loaded = await probe(good, 20)
            hog.close()
            good.close()
            return idle, loaded

        idle, loaded = bg.run(run(), timeout=120)
        assert loaded == idle <= 4  # root, "probe", "+": the 300 000 others are never seen
    finally:
        bg.run(broker.close())


# -- $realip/ is the broker's --------------------------------------------------------------------


@pytest.mark.parametrize("level", [4, 5], ids=["3.1.1", "5.0"])
def test_forged_whoami_is_refused(bg: Background, level: int) -> None:
    broker = start(bg)
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[int, str, bytes]:
            victim = await Raw.connect(port, "victim1", source="127.0.40.16")
            assert await victim.subscribe((f"{WHOAMI}/victim1", 0)) == b"\x00"
            forger = await Raw.connect(port, "forger", level=level, source="127.0.40.17")
            forger.publish(f"{WHOAMI}/victim1", b"6.6.6.6:1234", qos=1, pid=7)
            _, ack = await forger.expect(m.PacketType.PUBACK)
            forger.publish(f"{WHOAMI}/victim1", b"6.6.6.6:1234")  # QoS 0: dropped
            forger.publish("$realip/anything", b"x", qos=1, pid=8)
            await forger.expect(m.PacketType.PUBACK)
            victim.publish(WHOAMI, b"?")
            answer = await victim.message()
            for c in (victim, forger):
                c.close()
            return ack[2] if len(ack) > 2 else 0, answer.payload.decode(), ack

        reason, answer, _ = bg.run(run(), timeout=15)
        assert answer.startswith("127.0.40.16:")  # the first answer is the broker's, not 6.6.6.6
        assert reason == (0x87 if level == 5 else 0)  # MQTT 3.1.1 can only acknowledge
        denied = [e for e in broker.enforced if e.client_id == "forger"]
        assert [e.action for e in denied] == ["deny-publish"] * 3
    finally:
        bg.run(broker.close())


def test_forged_whoami_by_response_topic_or_will_is_refused(bg: Background) -> None:
    broker = start(bg)
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[bytes, str]:
            victim = await Raw.connect(port, "victim2", source="127.0.40.18")
            await victim.subscribe((f"{WHOAMI}/victim2", 0))
            forger = await Raw.connect(port, "forger2", source="127.0.40.19")
            forger.publish(WHOAMI, b"", qos=1, pid=1,
                           props=((m.RESPONSE_TOPIC, f"{WHOAMI}/victim2"),))
            _, ack = await forger.expect(m.PacketType.PUBACK)
            doomed = await Raw.connect(port, "doomed", source="127.0.40.19",
                                       will=m.Will(f"{WHOAMI}/victim2", b"6.6.6.6:1", 0, False))
            doomed.writer.transport.abort()  # no DISCONNECT: the will would be published
            await asyncio.sleep(0.2)
            victim.publish(WHOAMI, b"")
            answer = await victim.message()
            victim.close()
            forger.close()
            return ack, answer.payload.decode()

        ack, answer = bg.run(run(), timeout=15)
        assert ack[2] == 0x87
        assert answer.startswith("127.0.40.18:")
        assert {e.detail.split(" to ")[0] for e in broker.enforced} == \
            {"whoami Response Topic", "will"}
    finally:
        bg.run(broker.close())


@pytest.mark.parametrize("level", [4, 5], ids=["3.1.1", "5.0"])
def test_subscribing_to_others_whoami_is_refused(bg: Background, level: int) -> None:
    broker = start(bg)
    port = broker.endpoint()[1]
    try:
        async def run() -> tuple[bytes, str]:
            spy = await Raw.connect(port, "spy", level=level, source="127.0.40.20")
            codes = await spy.subscribe((f"{WHOAMI}/+", 0), ("$realip/#", 0),
                                        (f"{WHOAMI}/victim3", 0), (f"{WHOAMI}/spy", 0))
            victim = await Raw.connect(port, "victim3", source="127.0.40.21")
            await victim.subscribe((f"{WHOAMI}/victim3", 0))
            victim.publish(WHOAMI, b"")
            await victim.message()
            spy.publish(WHOAMI, b"")
            mine = await spy.message()  # the only answer the spy gets is its own
            with pytest.raises(asyncio.TimeoutError):
                await spy.message(timeout=0.3)
            spy.close()
            victim.close()
            return codes, mine.topic

        codes, topic = bg.run(run(), timeout=15)
        refused = 0x87 if level == 5 else 0x80
        assert codes == bytes([refused, refused, refused, 0])
        assert topic == f"{WHOAMI}/spy"
    finally:
        bg.run(broker.close())


def test_wildcard_client_ids_cannot_widen_their_own_answer(bg: Background) -> None:
    broker = start(bg)
    port = broker.endpoint()[1]
    try:
        async def run() -> bytes:
            sneaky = await Raw.connect(port, "+", source="127.0.40.22")
            codes = await sneaky.subscribe((f"{WHOAMI}/+", 0))
            sneaky.close()
            return codes

        assert bg.run(run(), timeout=10) == b"\x87"
    finally:
        bg.run(broker.close())


# -- keep alive ------------------------------------------------------------------------------


def test_a_trickled_packet_does_not_keep_a_session_alive(bg: Background) -> None:
    broker = start(bg)
    port = broker.endpoint()[1]
    try:
        async def run() -> float:
            reader, writer = await asyncio.open_connection(HOST, port,
                                                           local_addr=("127.0.40.23", 0))
            writer.write(mqtt_connect("trickler", keepalive=1))
            assert await asyncio.wait_for(reader.readexactly(4), 3) == b"\x20\x02\x00\x00"
            started = time.monotonic()
            writer.write(b"\x30\x7f")  # a PUBLISH of 127 bytes, sent a byte every 0.1 s
            try:
                for _ in range(60):
                    await asyncio.sleep(0.1)
                    writer.write(b"x")
                    if reader.at_eof():
                        break
                    try:
                        if await asyncio.wait_for(reader.read(1), 0.001) == b"":
                            break
                    except asyncio.TimeoutError:
                        pass
            except ConnectionError:
                pass
            writer.close()
            return time.monotonic() - started

        took = bg.run(run(), timeout=15)
        assert 1.2 < took < 3.5  # 1.5 × Keep Alive after the last complete packet
        assert any(e.client_id == "trickler" and e.reason == 0x8D for e in broker.enforced)
    finally:
        bg.run(broker.close())
