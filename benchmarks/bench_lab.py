"""Time realip's asyncio integration and the live lab on loopback.

Run: ``python benchmarks/bench_lab.py`` (``--quick`` for a short run).  Prints:

1. reading one PROXY header from an in-memory ``StreamReader``: :func:`realip.aio.read_proxy_header`
   (strict, CRC32C checked, deadline) against proxy-protocol 0.11.3's ``ProxyProtocolReader``
   (with its ``wait_for`` deadline, as its ``get_callback`` uses it), as µs/op and the ratio
   (peer / realip; > 1 means realip is faster);
2. whole connections on loopback (connect, header + payload, echo, close), per second:
   plain ``asyncio.start_server`` without a header, :func:`realip.aio.start_server`, and the
   peer's callback wrapper;
3. the lab broker: MQTT CONNECT→CONNACK round trips per second directly and through one and two
   :class:`~realip.lab.relay.HopRelay` hops, and QoS 0 PUBLISH throughput to one subscriber;
4. the live lab (:class:`realip.lab.Lab`): 500 paho-mqtt connections (connect, CONNACK,
   disconnect) through the two-tier chain ``tcp-multi-regenerate`` (two nginx stream hops
   re-generating PROXY v1), once with realip's relays and once with the real nginx, in the same
   run; every peername the broker records must be the client's own address and port — the
   simulator's prediction — and the connections per second and their ratio are printed
   (``--chain`` runs only this part).

Sides are measured in alternation, best of several rounds, so load elsewhere hits them alike.
Parts 1–3 listen on and connect to 127.0.9.x only; part 4 uses the lab's loopback plan
(127.0.1.86 → 127.0.2.116 → 127.0.2.200 → 127.0.2.71).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from realip.aio import read_proxy_header, start_server
from realip.lab import free_port
from realip.lab.broker import LabBroker
from realip.lab.relay import HopRelay
from realip.proxy_protocol import build
from realip.topology import Broker, NginxStream, mqtt_connect

QUICK = "--quick" in sys.argv
ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.9.1"
HEADERS = {
    "v1 TCP4": build(("192.0.2.10", 56324), ("198.51.100.1", 1883), version=1),
    "v2 IPv4 + CRC32C": build(("192.0.2.10", 56324), ("198.51.100.1", 1883), crc32c=True),
}
PAYLOAD = mqtt_connect("bench")


async def best_rate(fn: Callable[[], Awaitable[object]], n: int, rounds: int) -> float:
    """Best operations per second over *rounds* runs of *n* calls."""
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


# -- 1. in memory --------------------------------------------------------------------------------


async def in_memory() -> None:
    try:
        from proxyprotocol.detect import ProxyProtocolDetect
        from proxyprotocol.reader import ProxyProtocolReader
    except ImportError:
        peer = None
    else:
        peer = ProxyProtocolReader(ProxyProtocolDetect())
    print("1. one header from an in-memory StreamReader (µs/op)")
    print(f"   {'header':22} {'realip':>8} {'proxy-protocol':>15} {'ratio':>6}")
    n, rounds = (500, 3) if QUICK else (3000, 6)
    for name, header in HEADERS.items():
        data = header + PAYLOAD

        async def ours(data: bytes = data) -> None:
            reader = asyncio.StreamReader()
            reader.feed_data(data)
            await read_proxy_header(reader, timeout=3.0)

        async def theirs(data: bytes = data) -> None:
            reader = asyncio.StreamReader()
            reader.feed_data(data)
            await asyncio.wait_for(peer.read(reader), 3.0)  # type: ignore[union-attr]

        a = b = 0.0
        for _ in range(rounds):
            a = max(a, await best_rate(ours, n, 1))
            if peer is not None:
                b = max(b, await best_rate(theirs, n, 1))
        them = f"{1e6 / b:15.1f}" if b else f"{'n/a':>15}"
        ratio = f"{a / b:6.2f}" if b else f"{'':>6}"
        print(f"   {name:22} {1e6 / a:8.1f} {them} {ratio}")


# -- 2. whole connections ------------------------------------------------------------------------


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(await reader.readexactly(len(PAYLOAD)))
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def connections() -> None:
    servers: dict[str, tuple[asyncio.Server, bytes]] = {}
    servers["asyncio, no header"] = (await asyncio.start_server(echo, HOST, 0), b"")
    header = HEADERS["v1 TCP4"]
    servers["realip.aio, v1"] = (await start_server(echo, HOST, 0), header)
    try:
        from proxyprotocol.detect import ProxyProtocolDetect
        from proxyprotocol.reader import ProxyProtocolReader
        from proxyprotocol.sock import SocketInfo

        async def peer_echo(r: asyncio.StreamReader, w: asyncio.StreamWriter,
                            info: SocketInfo) -> None:
            await echo(r, w)

        cb = ProxyProtocolReader(ProxyProtocolDetect()).get_callback(peer_echo)
        servers["proxy-protocol, v1"] = (await asyncio.start_server(cb, HOST, 0), header)
    except ImportError:
        pass
    n, rounds = (100, 2) if QUICK else (400, 5)
    rates = dict.fromkeys(servers, 0.0)
    try:
        for _ in range(rounds):
            for name, (server, prefix) in servers.items():
                port = server.sockets[0].getsockname()[1]

                async def one(port: int = port, prefix: bytes = prefix) -> None:
                    reader, writer = await asyncio.open_connection(HOST, port,
                                                                   local_addr=("127.0.9.2", 0))
                    writer.write(prefix + PAYLOAD)
                    assert await reader.readexactly(len(PAYLOAD)) == PAYLOAD
                    writer.close()

                rates[name] = max(rates[name], await best_rate(one, n, 1))
    finally:
        for server, _ in servers.values():
            server.close()
            await server.wait_closed()
    print("2. connections per second on loopback (connect, header + payload, echo, close)")
    base = rates["asyncio, no header"]
    for name, rate in rates.items():
        print(f"   {name:22} {rate:8.0f}/s  ({rate / base:4.2f} of plain asyncio)")


# -- 3. the lab broker ---------------------------------------------------------------------------


async def broker() -> None:
    listener = Broker(addr=HOST, port=free_port(HOST), proxy_protocol=True)
    lab = LabBroker(listener)
    await lab.start()
    relays = []
    try:
        lb2 = NginxStream(name="lb2", addr="127.0.9.20", port=free_port("127.0.9.20"),
                          listen_proxy_protocol=True, proxy_protocol="on",
                          set_real_ip_from=("127.0.9.0/24",))
        lb1 = NginxStream(name="lb1", addr="127.0.9.10", port=free_port("127.0.9.10"),
                          proxy_protocol="on")
        relays = [await HopRelay(lb2, (HOST, listener.port)).start(),
                  await HopRelay(lb1, (lb2.addr, lb2.port)).start()]
        header = build(("192.0.2.10", 56324), (HOST, listener.port), version=1)
        entries = {"direct (client sends PROXY)": (HOST, listener.port, header),
                   "through 1 relay": (lb2.addr, lb2.port, header),
                   "through 2 relays": (lb1.addr, lb1.port, b"")}
        n, rounds = (50, 2) if QUICK else (200, 4)
        print("3. lab broker, MQTT CONNECT -> CONNACK round trips per second")
        for name, (host, port, prefix) in entries.items():

            async def one(host: str = host, port: int = port, prefix: bytes = prefix) -> None:
                reader, writer = await asyncio.open_connection(host, port,
                                                               local_addr=("127.0.9.2", 0))
                writer.write(prefix + PAYLOAD)
                assert await reader.readexactly(4) == b"\x20\x02\x00\x00"
                writer.close()

            print(f"   {name:28} {await best_rate(one, n, rounds):8.0f}/s")
        # QoS 0 throughput
        count = 2000 if QUICK else 20000
        sub_r, sub_w = await asyncio.open_connection(HOST, listener.port)
        sub_w.write(header + mqtt_connect("sub") + b"\x82\x08\x00\x01\x00\x03b/x\x00")
        await sub_r.readexactly(4 + 5)  # CONNACK, SUBACK
        pub_r, pub_w = await asyncio.open_connection(HOST, listener.port)
        pub_w.write(header + mqtt_connect("pub"))
        await pub_r.readexactly(4)
        message = b"\x30\x0d\x00\x03b/x" + b"12345678"
        start = time.perf_counter()
        for _ in range(count // 100):
            pub_w.write(message * 100)
            await pub_w.drain()
        await sub_r.readexactly(len(message) * count)
        rate = count / (time.perf_counter() - start)
        print(f"   QoS 0 PUBLISH, one subscriber   {rate:8.0f} msg/s")
        for w in (sub_w, pub_w):
            w.close()
    finally:
        for r in relays:
            await r.close()
        await lab.close()


# -- 4. the live lab: 500 paho-mqtt connections through two tiers ----------------------------


def chain_rate(proxies: str, n: int) -> tuple[float, int]:
    """Connections per second through ``tcp-multi-regenerate`` with *proxies*, and how many
    peernames were wrong (the broker's record against the client's own address and port, which
    is also the simulator's prediction for that port)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from realip.lab import Lab

    with Lab(ROOT / "data" / "topologies" / "tcp-multi-regenerate.yaml", proxies=proxies,
             progress="none") as lab:
        broker = lab.broker
        assert broker is not None
        host, port = lab.entry
        source = lab.addresses["client"]
        seen: list[tuple[str, int, str | None]] = []

        def one(cid: str) -> None:
            done: list[bool] = []
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid,
                                 reconnect_on_failure=False)
            client.on_connect = lambda *a: done.append(True)
            client.connect(host, port, keepalive=30, bind_address=source)
            sock = client.socket()
            local = sock.getsockname()[1] if isinstance(sock, socket.socket) else 0
            deadline = time.monotonic() + 5
            while not done and time.monotonic() < deadline:
                client.loop(0.05)
            info = broker.clients().get(cid)
            seen.append((cid, local, None if info is None else info.peername))
            client.disconnect()
            client.loop(0.001)

        for i in range(20):  # warm-up
            one(f"warm-{i}")
        seen.clear()
        start = time.perf_counter()
        for i in range(n):
            one(f"bench-{i}")
        rate = n / (time.perf_counter() - start)
        wrong = 0
        for cid, local, peername in seen:
            predicted = lab.predict(client_port=local, client_id=cid).peername
            if not (peername == predicted == f"{source}:{local}"):
                wrong += 1
        return rate, wrong


def chain(n: int) -> None:
    from realip.lab import find_nginx

    print(f"4. the live lab: {n} paho-mqtt connections through two tiers (tcp-multi-regenerate)")
    rates: dict[str, float] = {}
    for proxies, name in (("python", "realip relays"), ("nginx", "real nginx")):
        if proxies == "nginx" and find_nginx() is None:
            print(f"   {name:16} not installed (apt-get install nginx libnginx-mod-stream)")
            continue
        rate, wrong = chain_rate(proxies, n)
        rates[name] = rate
        verdict = "all peernames correct" if not wrong else f"{wrong} WRONG peernames"
        print(f"   {name:16} {rate:8.0f} connections/s   {verdict}")
    if len(rates) == 2:
        ratio = rates["realip relays"] / rates["real nginx"]
        print(f"   ratio relays / nginx: {ratio:4.2f} (> 1 means the relays are faster)")


async def main() -> None:
    await in_memory()
    await connections()
    await broker()


if __name__ == "__main__":
    if "--chain" not in sys.argv:
        asyncio.run(main())
    chain(100 if QUICK else 500)
