"""The live lab with the real nginx and HAProxy: every scenario of ``data/topologies/`` that has
an nginx or HAProxy hop runs with the real programs (configured by :mod:`realip.render`, started
by :mod:`realip.lab.drivers`) in front of the lab broker, a paho-mqtt client connects from the
client's loopback address, and the broker's peername must be the simulator's prediction — also
for forged headers.  After every test the programs' processes are gone and nothing listens on
the lab's addresses.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from realip.lab import Lab, ProgramError
from realip.lab.drivers import find_haproxy, find_nginx, tcp_sockets
from realip.topology import HAProxy, NginxHttp, NginxStream, Topology, load

from ._programs import proxied_scenarios

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]


def _scenarios() -> list[Topology]:
    return proxied_scenarios()


SCENARIOS = _scenarios()


def _need(request: pytest.FixtureRequest, topo: Topology) -> None:
    """The programs *topo* needs (skip, or fail under REALIP_REQUIRE_REAL=1, when missing)."""
    if any(isinstance(h, NginxStream | NginxHttp) for h in topo.hops):
        request.getfixturevalue("nginx_bin")
    if any(isinstance(h, HAProxy) for h in topo.hops):
        request.getfixturevalue("haproxy_bin")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def checked(lab: Lab) -> Iterator[Lab]:
    """Run *lab*; afterwards its processes are gone and nothing listens on its addresses."""
    try:
        with lab:
            assert lab.pids and all(not _gone(p) for p in lab.pids)
            yield lab
    finally:
        assert all(_gone(p) for p in lab.pids), lab.pids
        rows = tcp_sockets() or []
        addresses = set(lab.addresses.values())
        assert [r for r in rows if r.state == "LISTEN" and r.local[0] in addresses] == []


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_every_scenario_with_the_real_programs(request: pytest.FixtureRequest,
                                               topo: Topology) -> None:
    _need(request, topo)
    with checked(Lab(topo, proxies="real", progress="none")) as lab:
        assert all(r.runner != "python" for r in lab.runs.values())
        probes = [lab.connect()]
        if topo.client.transport == "ws":
            probes.append(lab.connect(forge_xff="6.6.6.6, 127.0.0.1"))
            probes.append(lab.connect(forge_xff="6.6.6.6", raw=True))
        else:
            probes.append(lab.connect(forge_proxy="PROXY TCP4 6.6.6.6 10.0.0.1 1111 1883\r\n"))
        for probe in probes:
            assert probe.peername == probe.predicted, (str(probe), probe.trace.table(),
                                                       probe.logs)
            assert not probe.notes, probe.notes
        assert (probes[0].peername is None) == (topo.expect is None)


def test_a_hop_refusal_is_read_from_the_program_log(nginx_bin: str) -> None:
    topo = load(str(ROOT / "data/topologies/tcp-multi-regenerate.yaml"))
    topo = topo.with_hop("lb1", listen_proxy_protocol=True)  # the client sends no header
    with checked(Lab(topo, proxies="nginx", progress="none")) as lab:
        probe = lab.connect()
        assert probe.peername is None and probe.agree
        assert probe.trace.failure is not None and "broken header" in probe.trace.failure
        assert probe.refused is not None and probe.refused.startswith("nginx: ")
        assert "broken header" in probe.refused


def test_nginx_and_haproxy_in_one_chain(nginx_bin: str, haproxy_bin: str) -> None:
    """HAProxy re-sends the client in a v2 header; nginx (stream realip) reads it and writes v1.
    With proxies="nginx" the HAProxy hop is a python relay; with "real" both are programs."""
    topo = load(str(ROOT / "data/topologies/haproxy-tcp-send-proxy-v2.yaml"))
    lb2 = NginxStream(name="lb2", addr="172.16.0.200", listen_proxy_protocol=True,
                      set_real_ip_from=("172.16.0.0/24",), proxy_protocol="on")
    topo = Topology(name="haproxy-then-nginx", client=topo.client, hops=(*topo.hops, lb2),
                    broker=topo.broker)
    for proxies, runners in (("nginx", {"lb1": "python", "lb2": "nginx"}),
                             ("real", {"lb1": "haproxy", "lb2": "nginx"})):
        with checked(Lab(topo, proxies=proxies, progress="none")) as lab:
            assert {n: r.runner for n, r in lab.runs.items()} == runners
            probe = lab.connect()
            assert probe.agree and probe.peername == probe.client, probe


def test_keyboard_interrupt_stops_the_programs(nginx_bin: str) -> None:
    lab = Lab("tcp-multi-regenerate", proxies="nginx", progress="none")
    with pytest.raises(KeyboardInterrupt), checked(lab):
        assert lab.connect().agree
        raise KeyboardInterrupt
    assert "connected to" in lab.programs["nginx"].logs()  # the log outlives the directory


def test_a_program_that_cannot_start_says_why(nginx_bin: str) -> None:
    topo = load(str(ROOT / "data/topologies/tcp-single-tier.yaml"))
    with socket.socket() as blocker:
        blocker.bind(("127.0.2.116", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        lab = Lab(topo, proxies="nginx", progress="none", ports={"lb1": port})
        with pytest.raises(ProgramError, match="Address already in use"):
            lab.start()
    assert lab.pids and all(_gone(p) for p in lab.pids)
    rows = tcp_sockets() or []
    assert not [r for r in rows if r.state == "LISTEN" and r.local[0] == "127.0.2.71"]


def test_auto_uses_what_is_installed(nginx_bin: str, haproxy_bin: str) -> None:
    assert find_nginx() is not None and find_haproxy() is not None
    with checked(Lab("haproxy-ws-set-header", proxies="auto", progress="none")) as lab:
        assert lab.runs["lb1"].runner == "haproxy"
        assert "haproxy-http → haproxy 2." in lab.describe()
        assert "bind 127.0.2.116:" in lab.configs["haproxy"]
        probe = lab.connect()
        assert probe.agree
        assert '"GET /mqtt HTTP/1.1"' in probe.logs["haproxy"] or lab.logs()["haproxy"]
