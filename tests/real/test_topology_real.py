"""The topology simulator against the real nginx and HAProxy, byte for byte, on loopback.

Every scenario of ``data/topologies/`` with nginx or HAProxy hops, a few curated topologies for
paths the generator rarely reaches, and a batch of generated ones (a seeded generator: random hop
configurations and forged client headers; ``REALIP_TOPOLOGY_SEED`` and ``REALIP_TOPOLOGY_CASES``
explore other batches) are mapped onto
loopback addresses with :func:`realip.render.loopback_plan` and run with the configurations
:mod:`realip.render` writes.  A chain of *n* hops runs in *n* stages: stage *k* runs the real
hops 0…k, and hop *k*'s upstream — the next hop's (or the broker's) address and port — is a small
Python capture server that records the peer and the bytes.  The client connects from its own
loopback address and sends exactly ``simulate(...).links[0].data``; then

* ``simulate(mapped).links[k + 1].data`` must equal the captured bytes exactly, and the capture's
  peer must be hop *k*'s address and source port;
* where the simulator says a hop closes the connection, nothing reaches the capture, the program
  logs the simulator's message, and (for the first hop) the client's connection is closed.

All stages of all cases are configured at once: one nginx process holds every nginx hop (as
``server`` blocks on their own ports), one HAProxy every HAProxy hop.  Every hop's source port is
pinned (``proxy_bind addr:port`` / ``source addr:port``) so that the simulator knows the source
ports of the hops before the captured one too; the capture checks the pin took effect.  The
broker is not real here: the capture stands in for it.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from realip.render import (
    haproxy_cfg,
    haproxy_main,
    haproxy_sections,
    loopback_plan,
    nginx_conf,
    nginx_main,
    nginx_server,
    topology_on,
)
from realip.topology import (
    Broker,
    Client,
    HAProxy,
    Hop,
    NginxHttp,
    NginxStream,
    Topology,
    Trace,
    simulate,
)

from ._programs import NGINX_STREAM_MODULE, Running, proxied_scenarios

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]
#: the generator's seed and size; REALIP_TOPOLOGY_SEED / REALIP_TOPOLOGY_CASES explore others
SEED = int(os.environ.get("REALIP_TOPOLOGY_SEED", "1883"))
GENERATED = int(os.environ.get("REALIP_TOPOLOGY_CASES", "100"))


# ==============================================================================================
# Cases


def _scenarios() -> list[Topology]:
    # not the TLS scenarios: this suite sends the simulator's exact first bytes and compares
    # the next link byte for byte, but a real TLS handshake's bytes are random (and its
    # ClientHello is not the simulator's deterministic one) — tests/real/test_tls_lab_real.py
    # runs them through the real programs with a real TLS client instead
    return proxied_scenarios(tls=False)


# The article's address space: the generated topologies use it too, so they go through the same
# mapping (render.topology_on) as the scenarios.
_CLIENTS = ("115.236.21.86", "1.94.170.163")
_HOP_ADDRS = ("172.16.0.116", "172.16.0.200", "172.16.0.225")
_BROKER = "172.16.0.71"
#: trust lists: every host of the LAN, only the first hop, nobody labelled, everybody
_TRUST = (("172.16.0.0/24",), ("172.16.0.116",), ("10.0.0.0/8",), ("0.0.0.0/0",))
_XFF = ("127.0.0.1", "6.6.6.6, 172.16.0.9", "junk, 203.0.113.5", "203.0.113.5:8080",
        "172.16.0.200, 172.16.0.116", "6.6.6.6,, 10.1.2.3", ", 172.16.0.9", "2001:db8::7",
        "[2001:db8::7]:443", "", "10.1.2.3 , 172.16.0.9")
_FORGED_PROXY = ("PROXY TCP4 6.6.6.6 172.16.0.116 1111 1883\r\n",
                 "PROXY TCP6 2001:db8::66 2001:db8::1 2222 1883\r\n",
                 "PROXY UNKNOWN\r\n", "PROXY TCP4 6.6.6.6 junk 1 2\r\n")
_NGX_HEADERS = (
    ("Upgrade", ("$http_upgrade",)),
    ("Connection", ("Upgrade", "upgrade", "keep-alive", "close", "$http_connection",
                    "keep-alive, Upgrade", "upgrade,", "close,,Upgrade", "a,,")),
    ("Host", ("$host", "$host:$server_port", "$proxy_host")),
    ("X-Forwarded-For", ("$proxy_add_x_forwarded_for", "$remote_addr",
                         "$http_x_forwarded_for, $realip_remote_addr")),
    ("X-Forwarded-Port", ("$http_x_forwarded_port, $remote_port", "$remote_port",
                          "$http_x_forwarded_port, $realip_remote_port")),
    ("X-Real-IP", ("$remote_addr", "$http_x_real_ip")),
    ("X-Nothing", ("$http_x_absent", "")),
    ("X-PP", ("$proxy_protocol_addr:$proxy_protocol_port", "$server_addr:$server_port")),
)
_HAP_RULES = (
    ("set-header", "X-Forwarded-For", "%[src]"),
    ("set-header", "X-Forwarded-Port", "%[src_port]"),
    ("set-header", "X-Real-IP", "%[src]"),
    ("set-header", "X-Proxy", "%[dst]:%[dst_port]"),
    ("del-header", "X-Forwarded-For"),
    ("del-header", "X-Forwarded-Port"),
)


def _generated(rng: random.Random, index: int) -> Topology:
    ws = rng.random() < 0.6
    n = rng.choice((1, 2, 2, 3, 3))
    sends_pp = False  # whether the previous hop (or the client) writes a PROXY header
    forged_proxy = None
    if rng.random() < 0.25:
        forged_proxy = rng.choice(_FORGED_PROXY)
        sends_pp = True
    headers: list[tuple[str, str]] = []
    if ws:
        for _ in range(rng.choice((0, 1, 1, 2))):
            name = "X-Forwarded-For" if rng.random() < 0.8 else "x-forwarded-for"
            headers.append((name, rng.choice(_XFF)))
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            headers.append(("X-Forwarded-Port", rng.choice(("39872", "1, 2", ""))))
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            headers.append(("X-Real-IP", rng.choice(("8.8.8.8", "172.16.0.116"))))
        if rng.random() < 0.15:
            headers.append((rng.choice(("X_Forwarded_For", "X-Real_IP")), "9.9.9.9"))
        rng.shuffle(headers)
    client = Client(addr=rng.choice(_CLIENTS), port=50000 + index,
                    transport="ws" if ws else "tcp", send_proxy=forged_proxy,
                    headers=tuple(headers))
    hops: list[Hop] = []
    for j in range(n):
        name = f"lb{j + 1}"
        addr = _HOP_ADDRS[j]
        # a hop expects a header when the previous one sends (mostly), so most chains connect
        expect = sends_pp if rng.random() < 0.85 else not sends_pp
        kinds = ["nginx-stream", "haproxy-tcp"]
        if ws:
            kinds += ["nginx-http", "haproxy-http"] * 3
        kind = rng.choice(kinds)
        common = {"name": name, "addr": addr, "port": 1883 if not ws else 8083,
                  "public": "121.36.192.227" if j == 0 else None}
        hop: Hop
        if kind == "nginx-stream":
            hop = NginxStream(**common, listen_proxy_protocol=expect,
                              set_real_ip_from=rng.choice(((), *_TRUST)),
                              proxy_protocol=rng.choice(("off", "on")))
            sends_pp = hop.proxy_protocol != "off" or (sends_pp and not expect)
        elif kind == "haproxy-tcp":
            hop = _gen_haproxy(rng, common, "tcp", expect)
            sends_pp = hop.send_proxy != "off" or (sends_pp and not (
                hop.accept_proxy or hop.expect_proxy_from))
        elif kind == "nginx-http":
            names = rng.sample(range(len(_NGX_HEADERS)), rng.randint(0, len(_NGX_HEADERS)))
            psh = tuple((_NGX_HEADERS[i][0] if rng.random() < 0.85
                         else _NGX_HEADERS[i][0].lower(), rng.choice(_NGX_HEADERS[i][1]))
                        for i in names)
            header = rng.choice(("X-Forwarded-For", "X-Forwarded-For", "X-Real-IP")
                                + (("proxy_protocol",) if expect else ()))
            hop = NginxHttp(**common, listen_proxy_protocol=expect,
                            set_real_ip_from=rng.choice(((), _TRUST[0], *_TRUST)),
                            real_ip_header=header, real_ip_recursive=rng.random() < 0.5,
                            proxy_http_version=rng.choice(("1.0", "1.1", "1.1")),
                            proxy_set_header=psh)
            sends_pp = False
        else:
            hop = _gen_haproxy(rng, common, "http", expect)
            sends_pp = hop.send_proxy != "off"
        hops.append(hop)
    broker = Broker(addr=_BROKER, port=1883 if not ws else 8083,
                    listener="ws" if ws else "tcp", proxy_protocol=sends_pp)
    return Topology(name=f"gen{index:03d}", client=client, hops=tuple(hops), broker=broker)


def _gen_haproxy(rng: random.Random, common: dict[str, object], mode: str,
                 expect: bool) -> HAProxy:
    accept = expect and rng.random() < 0.6
    expect_from: tuple[str, ...] = ()
    if expect and not accept:
        expect_from = rng.choice(_TRUST[:3])
    send = rng.choice(("off", "v1", "v2", "v2"))
    opts: tuple[str, ...] = ()
    if send == "v2":
        opts = tuple(o for o in ("crc32c", "unique-id", "ssl") if rng.random() < 0.35)
    extra: dict[str, object] = {}
    if mode == "http":
        extra["forwardfor"] = rng.random() < 0.6
        if extra["forwardfor"]:
            extra["forwardfor_if_none"] = rng.random() < 0.3
            if rng.random() < 0.25:
                extra["forwardfor_except"] = rng.choice(("172.16.0.0/24", "10.0.0.0/8"))
            if rng.random() < 0.2:
                extra["forwardfor_header"] = "X-Client-IP"
        rules = rng.sample(_HAP_RULES, rng.randint(0, 3))
        extra["http_request"] = tuple(rules)
    return HAProxy(**common, mode=mode, accept_proxy=accept,  # type: ignore[arg-type]
                   expect_proxy_from=expect_from, send_proxy=send, proxy_v2_options=opts,
                   **extra)


def _curated() -> list[Topology]:
    """Paths the generator reaches only rarely."""
    lan = {"addr": _BROKER, "port": 1883}
    v6 = "PROXY TCP6 2001:db8::66 2001:db8::1 2222 1883\r\n"
    everyone = ("0.0.0.0/0",)
    ws_headers = (("X-Forwarded-For", "6.6.6.6"), ("X_Forwarded_For", "7.7.7.7"),
                  ("X-Forwarded-Port", "1"))
    edge = {"name": "lb1", "addr": _HOP_ADDRS[0], "public": "121.36.192.227"}
    return [
        # stream realip adopts a forged TCP6 source and re-emits it with its IPv4 address:
        # HAProxy's strict TCP6 reader refuses the mixed line
        Topology(name="cur-mixed-family-to-haproxy",
                 client=Client(addr=_CLIENTS[0], port=1, send_proxy=v6),
                 hops=(NginxStream(**edge, listen_proxy_protocol=True,
                                   set_real_ip_from=everyone, proxy_protocol="on"),
                       HAProxy(name="lb2", addr=_HOP_ADDRS[1], accept_proxy=True,
                               send_proxy="v2")),
                 broker=Broker(**lan, proxy_protocol=True)),
        # … while nginx's lenient reader takes it and mixes the families again
        Topology(name="cur-mixed-family-to-nginx",
                 client=Client(addr=_CLIENTS[0], port=1, send_proxy=v6),
                 hops=(NginxStream(**edge, listen_proxy_protocol=True,
                                   set_real_ip_from=everyone, proxy_protocol="on"),
                       NginxStream(name="lb2", addr=_HOP_ADDRS[1], listen_proxy_protocol=True,
                                   set_real_ip_from=("172.16.0.0/24",),
                                   proxy_protocol="on")),
                 broker=Broker(**lan, proxy_protocol=True)),
        # HAProxy relays an IPv6 client (v1 TCP6, v2 0x21 with every TLV option) to nginx http,
        # which takes the client from the PROXY header
        Topology(name="cur-v6-through-haproxy",
                 client=Client(addr=_CLIENTS[1], port=1, transport="ws", send_proxy=v6,
                               headers=ws_headers),
                 hops=(HAProxy(**edge, port=8083, accept_proxy=True, send_proxy="v1"),
                       HAProxy(name="lb2", addr=_HOP_ADDRS[1], port=8083, accept_proxy=True,
                               send_proxy="v2",
                               proxy_v2_options=("crc32c", "unique-id", "ssl")),
                       NginxHttp(name="lb3", addr=_HOP_ADDRS[2], port=8083,
                                 listen_proxy_protocol=True, set_real_ip_from=("172.16.0.0/24",),
                                 real_ip_header="proxy_protocol",
                                 proxy_set_header=(("X-Forwarded-For", "$remote_addr"),
                                                   ("X-Forwarded-Port", "$remote_port")))),
                 broker=Broker(addr=_BROKER, port=8083, listener="ws")),
        # nginx speaks HTTP/1.0 with Connection: close to HAProxy, which drops close and adds
        # keep-alive; HAProxy's lower-case names reach the next nginx
        Topology(name="cur-http10-to-haproxy",
                 client=Client(addr=_CLIENTS[1], port=1, transport="ws", headers=ws_headers),
                 hops=(NginxHttp(**edge, port=8083,
                                 proxy_set_header=(("X-Forwarded-For",
                                                    "$proxy_add_x_forwarded_for"),)),
                       HAProxy(name="lb2", addr=_HOP_ADDRS[1], port=8083, mode="http",
                               forwardfor=True, forwardfor_if_none=True,
                               http_request=(("set-header", "X-Forwarded-Port",
                                              "%[src_port]"),)),
                       NginxHttp(name="lb3", addr=_HOP_ADDRS[2], port=8083,
                                 set_real_ip_from=("172.16.0.0/24",),
                                 real_ip_header="X-Forwarded-For", real_ip_recursive=True,
                                 proxy_http_version="1.1",
                                 proxy_set_header=(("Host", "$host"),
                                                   ("X-Real-IP", "$remote_addr")))),
                 broker=Broker(addr=_BROKER, port=8083, listener="ws")),
        # nginx's allow/deny (stream: on the TCP peer, before the PROXY header is read) and
        # HAProxy's tcp-request connection reject: the fixes for a tier anyone can reach
        Topology(name="cur-stream-access-denies-client",
                 client=Client(addr=_CLIENTS[0], port=1),
                 hops=(NginxStream(**edge, access=("allow 172.16.0.0/24", "deny all"),
                                   proxy_protocol="on"),),
                 broker=Broker(**lan, proxy_protocol=True)),
        Topology(name="cur-stream-access-allows-client",
                 client=Client(addr=_CLIENTS[0], port=1),
                 hops=(NginxStream(**edge, access=("deny 10.0.0.0/8", "allow all"),
                                   proxy_protocol="on"),),
                 broker=Broker(**lan, proxy_protocol=True)),
        Topology(name="cur-http-access-after-realip",
                 client=Client(addr=_CLIENTS[1], port=1, transport="ws"),
                 hops=(NginxHttp(**edge, port=8083,
                                 proxy_set_header=(("X-Forwarded-For", "$remote_addr"),)),
                       NginxHttp(name="lb2", addr=_HOP_ADDRS[1], port=8083,
                                 set_real_ip_from=("172.16.0.0/24",),
                                 real_ip_header="X-Forwarded-For",
                                 access=(f"deny {_CLIENTS[1]}", "allow all"))),
                 broker=Broker(addr=_BROKER, port=8083, listener="ws")),
        Topology(name="cur-haproxy-reject-unless-src",
                 client=Client(addr=_CLIENTS[0], port=1),
                 hops=(HAProxy(**edge, reject_unless_src=("172.16.0.0/24",),
                               send_proxy="v2"),),
                 broker=Broker(**lan, proxy_protocol=True)),
        # HAProxy cleans Connection: keep-alive / close tokens set by nginx
        Topology(name="cur-connection-tokens",
                 client=Client(addr=_CLIENTS[0], port=1, transport="ws"),
                 hops=(NginxHttp(**edge, port=8083, proxy_http_version="1.1",
                                 proxy_set_header=(("Connection", "keep-alive, Upgrade"),
                                                   ("Upgrade", "$http_upgrade"))),
                       HAProxy(name="lb2", addr=_HOP_ADDRS[1], port=8083, mode="http"),
                       NginxHttp(name="lb3", addr=_HOP_ADDRS[2], port=8083,
                                 proxy_set_header=(("Connection", "$http_connection"),))),
                 broker=Broker(addr=_BROKER, port=8083, listener="ws")),
    ]


def _cases() -> list[Topology]:
    rng = random.Random(SEED)
    return [*_scenarios(), *_curated(), *(_generated(rng, i) for i in range(GENERATED))]


CASES = _cases()


# ==============================================================================================
# Stages and ports


class _Ports:
    """Ports below the kernel's ephemeral range (so that no outgoing connection takes them),
    checked free on their address, each used once."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used: set[int] = set()

    def take(self, host: str) -> int:
        for _ in range(1000):
            port = self.rng.randrange(20000, 32000)
            if port in self.used:
                continue
            with socket.socket() as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            self.used.add(port)
            return port
        raise RuntimeError("no free port")


@dataclass
class Stage:
    topology: Topology
    k: int
    plan: dict[str, str]
    ports: dict[str, int]  #: listening ports of hops 0..k and of the capture (label k+1)
    sources: dict[str, int]  #: pinned source ports of hops 0..k
    tag: str

    @property
    def target(self) -> Hop | Broker:
        return [*self.topology.hops, self.topology.broker][self.k + 1]

    def mapped(self, client_port: int) -> Topology:
        ports = {**self.ports, self.topology.client.name: client_port}
        return topology_on(self.topology, self.plan, ports, source_ports=self.sources)


def _stages(topo: Topology, index: int, pool: _Ports) -> list[Stage]:
    plan = loopback_plan(topo)
    out = []
    nodes = [*topo.hops, topo.broker]
    for k in range(len(topo.hops)):
        ports = {n.name: pool.take(plan[n.name]) for n in nodes[: k + 2]}
        sources = {h.name: pool.take(plan[h.name]) for h in topo.hops[: k + 1]}
        out.append(Stage(topo, k, plan, ports, sources, f"c{index}s{k}_"))
    return out


# ==============================================================================================
# The programs


@dataclass
class Lab:
    stages: dict[str, list[Stage]]
    nginx: Running | None
    haproxy: Running | None


def _listening(wanted: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of *wanted* (IPv4 address, port) are in state LISTEN (``/proc/net/tcp``)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":
            continue
        hexip, hexport = fields[1].split(":")
        ip = socket.inet_ntoa(int(hexip, 16).to_bytes(4, "little"))
        found.add((ip, int(hexport, 16)))
    return wanted & found


def _start(cmd: list[str], directory: Path, log: Path, wanted: set[tuple[str, int]]) -> Running:
    out = (directory / "stdout.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out.close()
    running = Running(proc, directory, log)
    deadline = time.monotonic() + 15
    while _listening(wanted) != wanted:
        if proc.poll() is not None or time.monotonic() > deadline:
            running.stop()
            text = (directory / "stdout.log").read_text(errors="replace")
            raise RuntimeError(f"{cmd[0]} did not come up ({proc.returncode}):\n{text}")
        time.sleep(0.05)
    return running


@pytest.fixture(scope="module")
def lab(nginx_bin: str, haproxy_bin: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    pool = _Ports(SEED)
    stages = {t.name: _stages(t, i, pool) for i, t in enumerate(CASES)}
    http: list[str] = []
    stream: list[str] = []
    sections: list[str] = []
    ngx_listen: set[tuple[str, int]] = set()
    hap_listen: set[tuple[str, int]] = set()
    for case in stages.values():
        for st in case:
            for hop in st.topology.hops[: st.k + 1]:
                where = (st.plan[hop.name], st.ports[hop.name])
                if isinstance(hop, HAProxy):
                    sections.append(haproxy_sections(st.topology, hop.name, st.plan, st.ports,
                                                     tag=st.tag, source_ports=st.sources))
                    hap_listen.add(where)
                else:
                    kind, server = nginx_server(st.topology, hop.name, st.plan, st.ports,
                                                source_ports=st.sources)
                    (http if kind == "http" else stream).append(server)
                    ngx_listen.add(where)
    base = tmp_path_factory.mktemp("topology-real")
    nginx = haproxy = None
    try:
        if http or stream:
            d = base / "nginx"
            d.mkdir()
            module = str(NGINX_STREAM_MODULE) if NGINX_STREAM_MODULE.exists() else None
            (d / "nginx.conf").write_text(nginx_main(str(d), http=http, stream=stream,
                                                     stream_module=module))
            nginx = _start([nginx_bin, "-p", str(d), "-c", str(d / "nginx.conf"),
                            "-e", str(d / "startup.log")], d, d / "error.log", ngx_listen)
        if sections:
            d = base / "haproxy"
            d.mkdir()
            cfg = d / "haproxy.cfg"
            cfg.write_text(haproxy_main(str(d), sections))
            check = subprocess.run([haproxy_bin, "-c", "-f", str(cfg)], capture_output=True,
                                   text=True, timeout=30)
            assert check.returncode == 0, check.stdout + check.stderr
            haproxy = _start([haproxy_bin, "-db", "-f", str(cfg)], d, d / "stdout.log",
                             hap_listen)
        yield Lab(stages, nginx, haproxy)
    finally:
        for running in (nginx, haproxy):
            if running is not None:
                running.stop()


# ==============================================================================================
# Capture


def _complete(data: bytes) -> bool:
    """Whether *data* holds the PROXY header(s) and a whole MQTT CONNECT or HTTP request head."""
    rest = data
    while True:
        if rest[:12] == b"\r\n\r\n\x00\r\nQUIT\n":
            if len(rest) < 16:
                return False
            size = 16 + int.from_bytes(rest[14:16], "big")
            if len(rest) < size:
                return False
            rest = rest[size:]
        elif rest[:5] == b"PROXY":
            end = rest.find(b"\r\n")
            if end < 0:
                return False
            rest = rest[end + 2 :]
        else:
            break
    if rest[:1] == b"\x10":
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(rest):
                return False
            byte = rest[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        return len(rest) >= i + length
    return rest[:4] == b"GET " and b"\r\n\r\n" in rest


class Capture:
    """Stands in for the next hop: listens on its address and port, records one connection."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)

    def arrived(self, timeout: float) -> bool:
        return bool(select.select([self.sock], [], [], timeout)[0])

    def take(self, timeout: float = 5.0) -> tuple[tuple[str, int], bytes]:
        if not self.arrived(timeout):
            raise AssertionError("no connection reached the capture")
        conn, peer = self.sock.accept()
        data = b""
        with conn:
            deadline = time.monotonic() + 3.0
            while not _complete(data) and time.monotonic() < deadline:
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                data += chunk
            conn.settimeout(0.05)  # anything written right behind?
            with contextlib.suppress(OSError):
                data += conn.recv(65536)
        return (str(peer[0]), int(peer[1])), data

    def close(self) -> None:
        self.sock.close()


# ==============================================================================================
# Running a stage


def _closed(sock: socket.socket, timeout: float = 3.0) -> bool:
    """Whether the peer closes *sock* (EOF or reset) within *timeout*, answer or not."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def _logged(running: Running, before: int, message: str, timeout: float = 2.0) -> bytes | None:
    """The log line holding the simulator's *message* (its " … " stand for variable fields),
    waiting for it up to *timeout*; None if it did not appear."""
    parts = [re.escape(p.encode("latin-1")) for p in message.split(" … ")]
    pattern = re.compile(rb"[^\n]*?".join(parts))
    deadline = time.monotonic() + timeout
    while True:
        m = pattern.search(running.log_since(before))
        if m is not None:
            return m.group(0)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _first_rejection(trace: Trace, hops: int) -> int | None:
    return next((i for i, v in enumerate(trace.views[:hops]) if not v.accepted), None)


def _run(lab: Lab, st: Stage) -> str:
    topo = st.topology
    hop0 = topo.hops[0]
    target = st.target
    cap = Capture(st.plan[target.name], st.ports[target.name])
    logs = {n: r.log_size() for n, r in (("nginx", lab.nginx), ("haproxy", lab.haproxy))
            if r is not None}
    try:
        with socket.socket() as client:
            client.bind((st.plan[topo.client.name], 0))
            client.connect((st.plan[hop0.name], st.ports[hop0.name]))
            trace = simulate(st.mapped(client.getsockname()[1]))
            # refused at accept (tcp-request connection reject): checked below
            with contextlib.suppress(ConnectionResetError):
                client.sendall(trace.links[0].data)
            where = f"{topo.name} stage {st.k} ({topo.hops[st.k].name} → {target.name})"
            reject = _first_rejection(trace, st.k + 1)
            if reject is None:
                peer, data = cap.take()
                link = trace.links[st.k + 1]
                hop = topo.hops[st.k]
                assert peer == (st.plan[hop.name], st.sources[hop.name]), where
                assert (str(link.src.host), link.src.port) == peer, where
                assert data == link.data, (
                    f"{where}\n real: {data!r}\n  sim: {link.data!r}\n{trace.table()}")
                return "captured"
            view = trace.views[reject]
            assert reject == st.k, where
            assert not cap.arrived(0.3), f"{where}: the capture got a connection\n{trace.table()}"
            if reject == 0:
                assert _closed(client), f"{where}: the client's connection stayed open"
            rejecting = topo.hops[reject]
            running = lab.haproxy if isinstance(rejecting, HAProxy) else lab.nginx
            assert running is not None and view.log is not None
            if view.log.startswith("(no log line"):
                new = running.log_since(logs["haproxy" if isinstance(rejecting, HAProxy)
                                             else "nginx"]).decode("latin-1")
                assert "reject" not in new.lower() and st.plan[topo.client.name] not in new, new
                return "rejected"
            name = "haproxy" if isinstance(rejecting, HAProxy) else "nginx"
            found = _logged(running, logs[name], view.log)
            assert found is not None, (f"{where}: {view.log!r} not logged:\n"
                                       f"{running.log_since(logs[name]).decode('latin-1')}")
            return "rejected"
    finally:
        cap.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_simulator_matches_the_real_programs(lab: Lab, case: Topology) -> None:
    stages = lab.stages[case.name]
    probe = simulate(stages[0].mapped(40000))
    last = _first_rejection(probe, len(case.hops))
    for st in stages[: (len(stages) if last is None else last + 1)]:
        _run(lab, st)


def test_enough_generated_cases() -> None:
    assert sum(c.name.startswith("gen") for c in CASES) >= 50
    assert len(_scenarios()) >= 16


def test_whole_configuration_files_load(nginx_bin: str, haproxy_bin: str,
                                         tmp_path: Path) -> None:
    """nginx_conf / haproxy_cfg (one program per hop, as the live lab runs them) pass the
    programs' own checks for every hop of every scenario."""
    checked = 0
    for topo in _scenarios() + _curated():
        plan = loopback_plan(topo)
        for hop in topo.hops:
            d = tmp_path / f"{topo.name}-{hop.name}"
            d.mkdir()
            if isinstance(hop, HAProxy):
                cfg = d / "haproxy.cfg"
                cfg.write_text(haproxy_cfg(topo, hop.name, plan, prefix=str(d)))
                cmd = [haproxy_bin, "-c", "-f", str(cfg)]
            else:
                module = str(NGINX_STREAM_MODULE) if NGINX_STREAM_MODULE.exists() else None
                conf = d / "nginx.conf"
                conf.write_text(nginx_conf(topo, hop.name, plan, prefix=str(d),
                                           stream_module=module))
                cmd = [nginx_bin, "-t", "-p", str(d), "-c", str(conf), "-e", str(d / "e.log")]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            assert out.returncode == 0, f"{topo.name} {hop.name}:\n{out.stdout}{out.stderr}"
            checked += 1
    assert checked >= 30
