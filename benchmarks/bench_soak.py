"""Soak the lab broker with hostile clients beside good ones (issue 11): measured, not asserted.

Run: ``python benchmarks/bench_soak.py`` (``--quick`` for short phases; ``--hostile N`` and
``--good M`` set the counts, default 4 and 8).  The broker runs in a child process (so its RSS
is its own) with :class:`realip.lab.broker.Limits` raised to let one client hold 300 000
subscriptions; every client is a raw socket in this process, on 127.0.40.50–.99
(``--net 127.0.51``: another loopback /24).

Phases of the same length, after a warm-up:

1. **idle** — M good clients, each subscribed to its own topic, publish a timestamp to it and
   wait for the delivery, every 20 ms: publish→delivery latency;
2. **300k subscriptions** — 300 000 subscriptions held by other sessions (SUBSCRIBE packets of
   up to 75 000 filters, issue 11's attack; ``--max-subscriptions`` per session, default
   10 000, so 30 sessions); the same probes: their ratio to idle is the topic trie's claim (a
   publish costs what matches it);
3. beside those subscriptions, N hostile connections of one kind at a time, then all together:
   *stalled* subscribers (CONNECT + SUBSCRIBE ``flood/#``, never ``recv()``) while a publisher
   sends 20 PUBLISH/s of 512 KiB to ``flood/x``; *subscription floods* (SUBSCRIBE packets of
   5 000 filters in a loop, past ``max_subscriptions``); *alias floods* (MQTT 5 PUBLISH with
   60 KB topics on every alias up to the maximum, then one above it: disconnected, reconnect);
   *1-byte segments* (CONNECT and PUBLISHes written one byte per TCP segment, reconnecting);
   *publish floods* (batches of 1000 small QoS 0 PUBLISH to a topic nobody reads, as fast as
   the broker takes them).

Per-connection rate limits (EMQX 5's listener ``messages_rate``/``bytes_rate``, a read pause):
``--messages-rate 1000/s --bytes-rate 1MB/s`` gives them to the broker (default: none, as
EMQX's ``infinity``), so two runs compare the floods without and with them.

Printed: good-client latency percentiles per phase (p50/p90/p99/max, probes lost after 2 s)
with the ratios to idle, and the broker's RSS every half second.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from realip.lab import mqtt as m
from realip.topology import mqtt_connect

QUICK = "--quick" in sys.argv
PHASE = 3.0 if QUICK else 10.0


def _arg(name: str, default: int) -> int:
    if name in sys.argv:
        return int(sys.argv[sys.argv.index(name) + 1])
    return default


def _sarg(name: str) -> str | None:
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return None


HOSTILE = _arg("--hostile", 4)
MESSAGES_RATE = _sarg("--messages-rate")
BYTES_RATE = _sarg("--bytes-rate")
NET = _sarg("--net") or "127.0.40"  # the loopback /24 to use (``--net 127.0.51``)
HOST = f"{NET}.50"
GOOD = _arg("--good", 8)
SUBSCRIPTIONS = 300_000
MAX_SUBSCRIPTIONS = _arg("--max-subscriptions", 10_000)  # per session


# -- the broker, in its own process ----------------------------------------------------------


def serve() -> None:
    from realip.lab.broker import LabBroker, Limits
    from realip.topology import Broker

    limits = Limits(max_subscriptions=MAX_SUBSCRIPTIONS, max_packet_size=2 << 20,
                    max_queued_bytes=4 << 20, max_connections=4096,
                    messages_rate=MESSAGES_RATE, bytes_rate=BYTES_RATE)

    async def main() -> None:
        broker = LabBroker(Broker(addr=HOST, port=0), limits=limits, idle_timeout=5)
        await broker.start()
        print(broker.endpoint()[1], flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes it
        await broker.close()

    asyncio.run(main())


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- clients ---------------------------------------------------------------------------------


async def open_mqtt(port: int, source: str, client_id: str, level: int = 4
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, m.PacketReader]:
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    writer.write(m.encode_connect(client_id, level))
    frames = m.PacketReader(m.MAX_PACKET)
    while not frames.feed(await asyncio.wait_for(reader.read(65536), 10)):
        pass
    return reader, writer, frames


@dataclass
class Probes:
    latencies: list[float] = field(default_factory=list)
    lost: int = 0


async def good_client(port: int, i: int, stop: asyncio.Event, out: Probes) -> None:
    topic = f"good/{i}"
    reader, writer, frames = await open_mqtt(port, f"{NET}.{60 + i % 10}", f"good-{i}")
    writer.write(m.encode_subscribe(4, 1, [(topic, 0)]))
    pending: list[tuple[int, bytes]] = []
    while not any(first >> 4 == m.PacketType.SUBACK for first, _ in pending):
        pending += frames.feed(await reader.read(65536))
    pending.clear()
    try:
        while not stop.is_set():
            sent = time.perf_counter()
            writer.write(m.encode_publish(4, m.Publish(topic, struct.pack("!d", sent))))
            try:
                got = False
                deadline = sent + 2.0
                while not got:
                    while not pending:
                        left = deadline - time.perf_counter()
                        chunk = await asyncio.wait_for(reader.read(65536), max(left, 0.001))
                        if not chunk:
                            return
                        pending += frames.feed(chunk)
                    first, body = pending.pop(0)
                    if first >> 4 == m.PacketType.PUBLISH:
                        pub = m.parse(first, body)
                        assert isinstance(pub, m.Publish)
                        if struct.unpack("!d", pub.payload)[0] == sent:
                            out.latencies.append(time.perf_counter() - sent)
                            got = True
            except (asyncio.TimeoutError, TimeoutError):
                out.lost += 1
            await asyncio.sleep(0.02)
    finally:
        writer.close()


async def hold_subscriptions(port: int) -> list[asyncio.StreamWriter]:
    """300 000 subscriptions in SUBSCRIBE packets of up to 75 000 filters (issue 11's attack),
    from as many sessions as ``max_subscriptions`` needs."""
    writers = []
    per_packet = min(75_000, MAX_SUBSCRIPTIONS)
    for h in range(SUBSCRIPTIONS // MAX_SUBSCRIPTIONS):
        reader, writer, frames = await open_mqtt(port, f"{NET}.{51 + h % 5}", f"hog-{h}")
        for k in range(MAX_SUBSCRIPTIONS // per_packet):
            filters = [(f"hog/{h}/{k}/{i % 300}/{i}", 0) for i in range(per_packet)]
            writer.write(m.encode_subscribe(4, k + 1, filters))
            while not any(f >> 4 == m.PacketType.SUBACK for f, _ in frames.feed(
                    await asyncio.wait_for(reader.read(1 << 20), 60))):
                pass
        writers.append(writer)
    return writers


def stalled_subscriber(port: int, i: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((f"{NET}.{71 + i % 5}", 0))
    s.connect((HOST, port))
    s.sendall(mqtt_connect(f"stalled-{i}") + m.encode_subscribe(4, 1, [("flood/#", 0)]))
    return s


async def flood_publisher(port: int, stop: asyncio.Event) -> None:
    _, writer, _ = await open_mqtt(port, f"{NET}.76", "flooder")
    packet = m.encode_publish(4, m.Publish("flood/x", bytes(512 * 1024)))
    while not stop.is_set():
        writer.write(packet)
        await writer.drain()
        await asyncio.sleep(0.05)  # 20 publishes/s
    writer.close()


_SUBSCRIBES: list[bytes] = []


def subscribe_packets() -> list[bytes]:
    """40 SUBSCRIBE packets of 5000 distinct filters each, encoded once (so the flooders cost
    this process a write, not an encode, and the good clients' figures are the broker's)."""
    if not _SUBSCRIBES:
        _SUBSCRIBES.extend(m.encode_subscribe(4, k + 1, [(f"sf/{k}/{j}/+/#", 0)
                                                         for j in range(5000)])
                           for k in range(40))
    return _SUBSCRIBES


async def subscription_flood(port: int, i: int, stop: asyncio.Event) -> None:
    reader, writer, frames = await open_mqtt(port, f"{NET}.{77 + i % 5}", f"subflood-{i}")
    packets = subscribe_packets()
    k = 0
    while not stop.is_set():
        writer.write(packets[k])
        # past the first round only packets whose filters were refused (over
        # max_subscriptions) come again: each SUBSCRIBE is a flood of new filters
        k = k + 1 if k + 1 < len(packets) else MAX_SUBSCRIPTIONS // 5000
        while not any(f >> 4 == m.PacketType.SUBACK for f, _ in frames.feed(
                await asyncio.wait_for(reader.read(1 << 20), 30))):
            pass
    writer.close()


async def alias_flood(port: int, i: int, stop: asyncio.Event, maximum: int) -> None:
    rounds = 0
    while not stop.is_set():
        rounds += 1
        try:
            reader, writer, _ = await open_mqtt(port, f"{NET}.{82 + i % 5}",
                                                f"alias-{i}", level=5)
            for alias in range(1, maximum + 2):  # the last one is above the maximum
                topic = f"a/{rounds}/{alias}/" + "x" * 60_000
                writer.write(m.encode_publish(5, m.Publish(topic, b"", properties=(
                    (m.TOPIC_ALIAS, alias),))))
                await writer.drain()
            await asyncio.wait_for(reader.read(), 5)  # DISCONNECT 0x94, then EOF
            writer.close()
        except (OSError, asyncio.TimeoutError, TimeoutError):
            await asyncio.sleep(0.05)


_PUBLISHES = b"".join(m.encode_publish(4, m.Publish("pf/x", bytes(40))) for _ in range(1000))


async def publish_flood(port: int, i: int, stop: asyncio.Event) -> None:
    """Small QoS 0 PUBLISHes to a topic nobody reads, 1000 per write, as fast as the broker
    takes them (TCP back-pressure is the only brake)."""
    _, writer, _ = await open_mqtt(port, f"{NET}.{92 + i % 5}", f"pubflood-{i}")
    while not stop.is_set():
        writer.write(_PUBLISHES)
        await writer.drain()
    writer.close()


async def segment_flood(port: int, i: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection(
                HOST, port, local_addr=(f"{NET}.{87 + i % 5}", 0))
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            data = mqtt_connect(f"bytes-{i}") + b"".join(
                m.encode_publish(4, m.Publish(f"seg/{i}", b"x" * 20)) for _ in range(200))
            for b in data:
                if stop.is_set():
                    break
                writer.write(bytes([b]))
                await writer.drain()
                await asyncio.sleep(0)
            writer.close()
        except OSError:
            await asyncio.sleep(0.05)


# -- phases ----------------------------------------------------------------------------------


async def phase(port: int, pid: int, name: str, extra: list[Awaitable[None]],
                stop_extra: asyncio.Event, rss: list[tuple[float, str, float]],
                t0: float) -> Probes:
    stop = asyncio.Event()
    probes = Probes()
    goods = [asyncio.ensure_future(good_client(port, i, stop, probes)) for i in range(GOOD)]
    others = [asyncio.ensure_future(a) for a in extra]
    end = time.monotonic() + PHASE
    while time.monotonic() < end:
        rss.append((time.monotonic() - t0, name, rss_mib(pid)))
        await asyncio.sleep(0.5)
    stop.set()
    stop_extra.set()
    await asyncio.gather(*goods, return_exceptions=True)
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    return probes


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {k: float("nan") for k in ("p50", "p90", "p99", "max")}
    v = sorted(values)

    def at(q: float) -> float:
        return v[min(len(v) - 1, int(q * len(v)))] * 1e6

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": v[-1] * 1e6}


async def run(port: int, pid: int) -> None:
    from realip.lab.broker import Limits

    rss: list[tuple[float, str, float]] = []
    t0 = time.monotonic()
    rss.append((0.0, "start", rss_mib(pid)))
    results: dict[str, Probes] = {}
    await phase(port, pid, "warm-up", [], asyncio.Event(), [], t0)
    results["idle"] = await phase(port, pid, "idle", [], asyncio.Event(), rss, t0)
    hogs = await hold_subscriptions(port)
    rss.append((time.monotonic() - t0, "300k subscribed", rss_mib(pid)))
    results["300k subscriptions"] = await phase(port, pid, "300k subs", [], asyncio.Event(),
                                                rss, t0)
    maximum = Limits().max_topic_alias

    def attacks(kind: str, stop: asyncio.Event) -> list[Awaitable[None]]:
        out: list[Awaitable[None]] = []
        if kind in ("stalled", "all"):
            out.append(flood_publisher(port, stop))
        if kind in ("subscription flood", "all"):
            out += [subscription_flood(port, i, stop) for i in range(HOSTILE)]
        if kind in ("alias flood", "all"):
            out += [alias_flood(port, i, stop, maximum) for i in range(HOSTILE)]
        if kind in ("1-byte segments", "all"):
            out += [segment_flood(port, i, stop) for i in range(HOSTILE)]
        if kind in ("publish flood", "all"):
            out += [publish_flood(port, i, stop) for i in range(HOSTILE)]
        return out

    subscribe_packets()  # encoded before any phase is timed
    for kind in ("stalled", "subscription flood", "alias flood", "1-byte segments",
                 "publish flood", "all"):
        stop = asyncio.Event()
        stalled = [stalled_subscriber(port, i) for i in range(HOSTILE)] \
            if kind in ("stalled", "all") else []
        results[f"+ {kind}"] = await phase(port, pid, kind, attacks(kind, stop), stop, rss, t0)
        for sock in stalled:
            sock.close()
    for hog in hogs:
        hog.close()
    await asyncio.sleep(1.0)
    rss.append((time.monotonic() - t0, "after", rss_mib(pid)))

    print(f"lab broker soak: {GOOD} good clients; {HOSTILE} hostile connections of each kind "
          f"beside {SUBSCRIPTIONS} subscriptions ({MAX_SUBSCRIPTIONS} per session); "
          f"{PHASE:g} s phases; publish→delivery in µs; rate limits per connection: "
          f"messages_rate={MESSAGES_RATE or 'infinity'} bytes_rate={BYTES_RATE or 'infinity'}")
    idle = percentiles(results["idle"].latencies)
    print(f"{'phase':<22} {'probes':>7} {'lost':>5} {'p50':>9} {'p90':>9} {'p99':>9} "
          f"{'max':>10}  p50/idle p99/idle")
    for name, probes in results.items():
        p = percentiles(probes.latencies)
        print(f"{name:<22} {len(probes.latencies):>7} {probes.lost:>5} {p['p50']:>9.0f} "
              f"{p['p90']:>9.0f} {p['p99']:>9.0f} {p['max']:>10.0f}  "
              f"{p['p50'] / idle['p50']:>8.2f} {p['p99'] / idle['p99']:>8.2f}")
    print("broker RSS (MiB), every 0.5 s:")
    rows: dict[str, list[float]] = {}
    for _, name, mib in rss:
        rows.setdefault(name, []).append(mib)
    for name, values in rows.items():
        print(f"  {name:<20} " + " ".join(f"{v:.0f}" for v in values))


def main() -> None:
    if "--serve" in sys.argv:
        serve()
        return
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), *sys.argv[1:],
                              "--serve"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        asyncio.run(run(port, child.pid))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


if __name__ == "__main__":
    main()
