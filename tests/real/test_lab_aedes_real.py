"""The live lab with the real aedes as its broker (issue 14 §2): every bundled ``aedes-*``
scenario runs through :class:`realip.lab.Lab` with ``broker="real"`` — the Node process of
realip/lab/node/aedes-server.mjs on the broker's loopback address, nginx for the hops — and what
aedes itself recorded for the client id (its ``connDetails``) must be the simulator's prediction,
for the scenario's client and for forged headers.  A header that kills aedes shows as the broker
DOWN (no hang, no traceback), and the next probe finds it restarted.

Everything runs on 127.0.50.0/24 (the scenarios' loopback plan moved there).  A missing ``node``
or missing ``node_modules`` (``npm ci`` in realip/lab/node) skips — and fails under
``REALIP_REQUIRE_REAL=1``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from realip.audit import audit
from realip.lab import Lab
from realip.lab.drivers import tcp_sockets
from realip.lab.live_audit import live_audit
from realip.render import loopback_plan
from realip.topology import NginxHttp, NginxStream, Topology, load
from realip.wire import mqtt_connect

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2] / "data" / "topologies"
SCENARIOS = [load(str(p)) for p in sorted(ROOT.glob("aedes-*.yaml"))]
FORGED_V1 = "PROXY TCP4 6.6.6.6 10.0.0.1 1111 1883\r\n"


@pytest.fixture(scope="module")
def aedes_bin() -> str:
    """node with aedes installed (skip, or fail under REALIP_REQUIRE_REAL=1, when missing)."""
    from realip.lab.drivers.aedes import find_aedes, missing_detail

    from .conftest import _need

    info = find_aedes(refresh=True)
    return _need(None if info is None else info.path, f"aedes ({missing_detail()})")


def _plan(topo: Topology) -> dict[str, str]:
    """The scenario's loopback plan moved onto this file's range, 127.0.50.0/24 (distinct
    addresses stay distinct; the aedes scenarios trust no address range)."""
    plan = loopback_plan(topo)
    moved = {a: f"127.0.50.{10 + i}" for i, a in enumerate(dict.fromkeys(plan.values()))}
    return {label: moved[a] for label, a in plan.items()}


def _lab(request: pytest.FixtureRequest, topo: Topology) -> Lab:
    request.getfixturevalue("aedes_bin")
    if any(isinstance(h, NginxStream | NginxHttp) for h in topo.hops):
        request.getfixturevalue("nginx_bin")
    return Lab(topo, proxies="real", broker="real", progress="none", addresses=_plan(topo))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def checked(lab: Lab) -> Iterator[Lab]:
    """Run *lab* with the real aedes; afterwards every process it started is gone and nothing
    listens on its addresses."""
    pids: set[int] = set()
    try:
        with lab:
            assert lab.broker_run.real and lab.real_broker is not None and lab.broker is None
            assert lab.real_broker.alive
            yield lab
            pids.update(lab.pids)
    finally:
        pids.update(lab.pids)
        assert all(_gone(p) for p in pids), pids
        rows = tcp_sockets() or []
        addresses = set(lab.addresses.values())
        assert [r for r in rows if r.state == "LISTEN" and r.local[0] in addresses] == []


def _same(probe: object) -> None:
    from realip.lab import Probe

    assert isinstance(probe, Probe)
    assert probe.peername == probe.predicted, (str(probe), probe.trace.table(), probe.logs)
    assert probe.down == probe.predicted_down, (str(probe), probe.logs)
    if probe.peername is None:
        # the refusal aedes reported is the one the simulator predicts, word for word
        assert probe.refused == probe.trace.failure, (probe.refused, probe.trace.failure)


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_every_aedes_scenario_with_the_real_aedes(request: pytest.FixtureRequest,
                                                  topo: Topology) -> None:
    assert topo.broker.kind == "aedes"
    with checked(_lab(request, topo)) as lab:
        assert "→ real aedes 1.2.0" in lab.describe()
        first = lab.connect()
        _same(first)
        assert (first.peername is None) == (topo.expect is None)
        if topo.expect is not None and first.peername is not None:
            # the scenario's own (forged) client address, live
            assert first.peername.rsplit(":", 1)[0] == topo.expect.rsplit(":", 1)[0]
        probes = []
        if topo.client.transport == "ws":
            probes += [lab.connect(forge_xff="7.7.7.7"),
                       lab.connect(forge_xff="6.6.6.6, 127.0.0.1"),
                       lab.connect(forge_xff="6.6.6.6", raw=True),
                       # aedes lets X-Real-IP override X-Forwarded-For
                       lab.connect(headers=[("X-Real-IP", "8.8.4.4"),
                                            ("X-Forwarded-For", "5.5.5.5")]),
                       lab.connect(forge_xff="9.9.9.9", direct=True)]
        else:
            probes += [lab.connect(forge_proxy=FORGED_V1),
                       lab.connect(forge_proxy=FORGED_V1, raw=True)]
        for probe in probes:
            _same(probe)
            assert probe.connected
        if topo.client.transport == "ws":
            assert [p.peername.rsplit(":", 1)[0] for p in probes if p.peername] == \
                ["7.7.7.7", "6.6.6.6", "6.6.6.6", "8.8.4.4", "9.9.9.9"]
        else:
            assert [p.peername for p in probes] == ["6.6.6.6:1111"] * 2


def test_forge_xff_through_nginx_reaches_the_real_aedes(request: pytest.FixtureRequest) -> None:
    topo = next(t for t in SCENARIOS if t.client.transport == "ws")
    with checked(_lab(request, topo)) as lab:
        probe = lab.connect(forge_xff="203.0.113.9")
        _same(probe)
        assert probe.peername is not None and probe.peername.startswith("203.0.113.9:")
        # the port is nginx's own source port towards aedes (what connDetails keeps)
        assert probe.peername == f"203.0.113.9:{probe.source_ports['lb1']}"
        assert '"ipAddress": "203.0.113.9"' in probe.logs["aedes"]


def test_a_crash_is_the_broker_down_and_the_next_probe_restarts_it(
        request: pytest.FixtureRequest) -> None:
    topo = next(t for t in SCENARIOS if t.name == "aedes-malformed-header-down")
    with checked(_lab(request, topo)) as lab:
        assert lab.real_broker is not None
        # a bystander connected to aedes before the crash: it goes down too
        host, port = lab.entry
        with socket.create_connection((host, port), timeout=3,
                                      source_address=(lab.addresses["client"], 0)) as other:
            other.sendall(mqtt_connect("bystander"))
            assert other.recv(4)[:2] == b"\x20\x02"
            pid = lab.real_broker.pid
            t0 = time.monotonic()
            crash = lab.connect()  # the scenario's client: PROXY UNKNOWN
            assert time.monotonic() - t0 < 3.0  # seen at once, not a timeout
            _same(crash)
            assert crash.down and crash.predicted_down and not crash.connected
            assert "DOWN" in str(crash)
            assert crash.to_dict()["broker_down"] is True
            assert not lab.broker_alive and pid is not None and _gone(pid)
            other.settimeout(3)
            with contextlib.suppress(ConnectionResetError):
                assert other.recv(1) == b""  # every client of the Node process is gone
        # the next probe restarts aedes and works
        after = lab.connect(forge_proxy=FORGED_V1)
        _same(after)
        assert after.peername == "6.6.6.6:1111" and not after.down
        assert any("restarted" in n for n in after.notes)
        assert lab.broker_alive and lab.real_broker.pid != pid
        # crash again, restart explicitly: the probe after needs no restart
        _same(lab.connect())
        assert lab.restart_broker() and lab.broker_alive
        assert not lab.restart_broker()  # running: nothing to do
        again = lab.connect(forge_proxy=FORGED_V1)
        _same(again)
        assert again.connected and again.notes == ()


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_live_audit_drives_the_real_aedes(request: pytest.FixtureRequest,
                                          topo: Topology) -> None:
    request.getfixturevalue("aedes_bin")
    if topo.hops:
        request.getfixturevalue("nginx_bin")
    report = audit(topo, reach_inner=True, fix=False)
    rows = list(live_audit(report, proxies="real", broker="real"))
    assert rows and {r.broker for r in rows} == {"real aedes 1.2.0"}
    ran = [r for r in rows if r.live_verdict is not None]
    assert ran
    differ = [(r.row.position.name, r.row.attack.name, r.row.verdict, r.live_verdict,
               r.live_recorded, r.note) for r in ran if not r.agree]
    assert differ == []
    if topo.name == "aedes-malformed-header-down":
        # the header that kills aedes is DOWN live as in the simulator
        assert [r.row.attack.name for r in ran if r.live_verdict == "DOWN"] == \
            [r.row.attack.name for r in ran if r.row.verdict == "DOWN"] != []
