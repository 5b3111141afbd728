"""The live lab (:class:`realip.lab.Lab`) with python relays: every scenario of
``data/topologies/`` runs on loopback and the broker's peername is the simulator's prediction;
nothing is left behind — no listening socket, thread or process — after success, an exception,
or a KeyboardInterrupt; the macOS message; the ``lab`` command line.

The real nginx/HAProxy runs are in ``tests/real/test_lab_real.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import realip.lab.lab as labmod
from realip.__main__ import main
from realip.errors import ConfigurationError
from realip.lab import Lab, LoopbackUnavailable, Probe, ProgramMissing, Progress, drivers
from realip.lab.drivers import parse_netstat, tcp_sockets
from realip.render import loopback_plan, needs_netns, needs_tls
from realip.topology import load

ROOT = Path(__file__).resolve().parents[1]
# IPv6 scenarios cannot be placed on loopback: tests/real/test_ipv6_lab_real.py runs them (python
# relays and the real programs) inside a private network namespace with their own addresses
SCENARIOS = [p for p in sorted((ROOT / "data" / "topologies").glob("*.yaml"))
             if not needs_netns(load(str(p))) and not needs_tls(load(str(p)))]
# (TLS scenarios: the lab refuses them until it terminates TLS — tests/test_tls.py checks that)


# ==============================================================================================
# Helpers


def listening_on(addresses: set[str]) -> list[tuple[str, int]]:
    rows = tcp_sockets()
    assert rows is not None
    return [r.local for r in rows if r.state == "LISTEN" and r.local[0] in addresses]


@contextlib.contextmanager
def nothing_left(topology: str = "tcp-multi-regenerate") -> Iterator[None]:
    """Asserts that no thread survives and nothing listens on the topology's addresses."""
    addresses = set(loopback_plan(load(str(ROOT / "data" / "topologies" /
                                          f"{topology}.yaml"))).values())
    threads = set(threading.enumerate())
    assert listening_on(addresses) == []
    yield
    extra = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
    assert extra == [], extra
    assert listening_on(addresses) == []


def quiet(topology: str, **kwargs: object) -> Lab:
    return Lab(topology, progress="none", **kwargs)  # type: ignore[arg-type]


# ==============================================================================================
# Every scenario, live


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_every_scenario_live_gives_the_predicted_peername(path: Path) -> None:
    topo = load(str(path))
    with quiet(str(path)) as lab:
        probes = [lab.connect()]
        if topo.client.transport == "ws":
            probes.append(lab.connect(forge_xff="6.6.6.6, 127.0.0.1"))
        else:
            probes.append(lab.connect(forge_proxy="PROXY TCP4 6.6.6.6 10.0.0.1 1111 1883\r\n"))
        for probe in probes:
            assert probe.peername == probe.predicted, (str(probe), probe.trace.table())
            assert probe.agree
            if probe.peername is None:
                assert probe.refused, probe
        first = probes[0]
        # the scenario's own result, on loopback: the article's expectation holds live
        assert (first.peername is None) == (topo.expect is None)
        assert first.client == f"{lab.addresses[topo.client.name]}:{topo.client.port}"
        assert first.addresses == loopback_plan(topo)


def test_peername_naming_a_proxy_uses_the_observed_source_port() -> None:
    """LB 2 does not trust LB 1: the peername is LB 1's address and *its* source port."""
    with quiet("tcp-multi-regenerate-untrusted") as lab:
        probe = lab.connect()
        assert probe.agree
        assert probe.peername == f"{lab.addresses['lb1']}:{probe.source_ports['lb1']}"
        assert set(probe.source_ports) == {"lb1", "lb2"}
        assert probe.label(probe.peername) == " = lb1"


def test_direct_and_forged_websocket_clients() -> None:
    with quiet("ws-multi-override") as lab:
        through = lab.connect(forge_xff="6.6.6.6")
        direct = lab.connect(forge_xff="6.6.6.6", direct=True)
        raw = lab.connect(forge_xff="6.6.6.6", raw=True)
    client = through.client
    assert through.peername == client  # LB 1 overrides the forged header
    assert direct.peername == "6.6.6.6:39872" == direct.predicted  # EMQX believes the client
    assert direct.path == ("client", "emqx") and direct.label(direct.peername).startswith(" (not")
    assert raw.peername == raw.predicted == client
    assert "X-Forwarded-For: 6.6.6.6" in str(through)


def test_forged_proxy_header_direct_and_through_a_relay() -> None:
    header = "PROXY TCP4 203.0.113.9 10.0.0.1 4242 1883\r\n"
    with quiet("tcp-single-tier") as lab:
        direct = lab.connect(forge_proxy=header, direct=True)
        raw = lab.connect(forge_proxy=header.encode(), direct=True, raw=True)
        through = lab.connect(forge_proxy=header)
    assert direct.peername == raw.peername == "203.0.113.9:4242" == direct.predicted
    assert through.peername is None and through.agree  # LB 1 relays it as data: EMQX fails
    assert through.refused is not None and "frame_error" in through.refused
    assert through.forged == ("PROXY TCP4 203.0.113.9 10.0.0.1 4242 1883\\r\\n",)


def test_client_id_transport_and_port() -> None:
    with quiet("ws-emqx-direct-client") as lab:
        probe = lab.connect(client_id="probe-7", port=0)
        assert probe.client_id == "probe-7" and probe.agree
        assert probe.client != f"{lab.addresses['client']}:61813"
        tcp = lab.connect(transport="tcp", timeout=0.5)  # TCP at a WebSocket listener
        assert tcp.peername is None and tcp.agree
        with pytest.raises(ConfigurationError):
            lab.connect(transport="quic")


def test_repeated_header_names_go_through_the_raw_client() -> None:
    """paho-mqtt takes WebSocket headers as a dict: two X-Forwarded-For lines are sent by the
    raw client (the simulator's exact request)."""
    topo = load(str(ROOT / "data/topologies/ws-emqx-direct-client.yaml"))
    topo = topo.with_client(headers=(("X-Forwarded-For", "1.1.1.1"),
                                     ("x-forwarded-for", "2.2.2.2")))
    with Lab(topo, progress="none") as lab:
        probe = lab.connect()
    assert probe.agree and probe.peername is not None and probe.peername.startswith("1.1.1.1")


def test_without_a_whoami_answer_the_broker_record_is_shown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from realip.lab.broker import LabBroker

    monkeypatch.setattr(LabBroker, "_whoami", lambda self, session, request: None)
    with quiet("tcp-single-tier") as lab:
        probe = lab.connect(timeout=0.5)
    assert probe.agree and probe.peername == "127.0.1.86:61177"
    assert any("broker's record" in n for n in probe.notes)


def test_busy_client_port_falls_back_with_a_note() -> None:
    with quiet("ws-emqx-direct-client") as lab, socket.socket() as blocker:
        blocker.bind((lab.addresses["client"], 61813))
        probe = lab.connect()
        assert probe.agree and not probe.client.endswith(":61813")
        assert any("busy" in n for n in probe.notes)


def test_a_refusing_relay_is_named() -> None:
    with quiet("tcp-stacked-headers") as lab:
        probe = lab.connect()
    assert probe.peername is None and probe.agree
    assert probe.refused == probe.trace.failure


def test_probe_text_and_json_are_stable() -> None:
    with quiet("tcp-single-tier") as lab:
        a, b = lab.connect(), lab.connect()
    assert str(a) == str(b)
    assert "127.0.1.86:61177 = client" in str(a) and "✓ they agree" in str(a)
    assert "they agree" in a._repr_html_()
    doc = json.loads(json.dumps(a.to_dict()))
    assert doc["peername"] == doc["predicted"] == "127.0.1.86:61177"
    assert doc["addresses"]["lb1"] == "127.0.2.116"


# ==============================================================================================
# Clean-up


def test_nothing_left_after_success() -> None:
    with nothing_left():
        with quiet("tcp-multi-regenerate") as lab:
            assert lab.connect().agree
            assert listening_on(set(lab.addresses.values()))
        assert not lab.running and lab.cleanup_errors == []
        with pytest.raises(ConfigurationError):
            lab.connect()
        with pytest.raises(ConfigurationError):
            lab.start()


def test_nothing_left_after_an_exception_inside() -> None:
    with nothing_left(), pytest.raises(RuntimeError, match="boom"), \
            quiet("tcp-multi-regenerate") as lab:
        lab.connect()
        raise RuntimeError("boom")


def test_nothing_left_after_a_keyboard_interrupt_inside() -> None:
    with nothing_left(), pytest.raises(KeyboardInterrupt), quiet("tcp-multi-regenerate"):
        raise KeyboardInterrupt


def test_nothing_left_after_a_keyboard_interrupt_while_starting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The interrupt comes (in the caller's thread, as a kernel interrupt does) while the lab
    waits for its thread to start the second relay: the broker and one relay are up."""
    from realip.lab import Background

    real_run = Background.run
    calls: list[object] = []

    def run(self: Background, coro: Any, timeout: float | None = 10.0) -> Any:
        calls.append(coro)
        result = real_run(self, coro, timeout)
        if len(calls) == 3:  # broker, lb2, lb1: lb1 is started, then the interrupt
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(Background, "run", run)
    lab = quiet("tcp-multi-regenerate")
    with nothing_left(), pytest.raises(KeyboardInterrupt):
        lab.start()
    assert len(calls) >= 3 and not lab.running


def test_nothing_left_after_a_keyboard_interrupt_between_steps(
        monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[str] = []

    def step(self: Progress, text: str) -> None:
        steps.append(text)
        if len(steps) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "step", step)
    with nothing_left(), pytest.raises(KeyboardInterrupt), quiet("tcp-multi-regenerate"):
        pass  # pragma: no cover
    assert len(steps) == 4


def test_nothing_left_after_a_keyboard_interrupt_while_connecting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(labmod, "_paho_client", interrupted)
    with nothing_left(), pytest.raises(KeyboardInterrupt), \
            quiet("tcp-multi-regenerate") as lab:
        lab.connect()


def test_an_interrupt_during_close_still_closes_everything(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from realip.lab import Background

    real_close = Background.close
    hit = []

    def close(self: Background) -> None:
        hit.append(1)
        real_close(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Background, "close", close)
    with nothing_left(), pytest.raises(KeyboardInterrupt), quiet("tcp-multi-regenerate"):
        pass
    assert hit == [1]


def test_a_lab_never_closed_is_closed_when_collected() -> None:
    with nothing_left():
        lab = quiet("tcp-multi-regenerate").start()
        finalizer = lab._finalizer
        del lab
        import gc

        gc.collect()
        assert not finalizer.alive


# ==============================================================================================
# Loopback addresses (macOS), programs, progress


def test_macos_without_aliases_is_told_how_to_add_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(labmod, "can_bind", lambda addr: addr == "127.0.0.1")
    with nothing_left(), pytest.raises(LoopbackUnavailable) as info, \
            quiet("tcp-multi-regenerate"):
        pass  # pragma: no cover
    text = str(info.value)
    for addr in ("127.0.1.86", "127.0.2.116", "127.0.2.200", "127.0.2.71"):
        assert f"sudo ifconfig lo0 alias {addr} up" in text
    assert "simulator notebooks" in text
    assert info.value.missing == ("127.0.1.86", "127.0.2.116", "127.0.2.200", "127.0.2.71")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["lab", "run", str(ROOT / "data/topologies/tcp-single-tier.yaml"),
                     "--quiet"])
    assert code == 2 and "sudo ifconfig lo0 alias 127.0.1.86 up" in err.getvalue()


def test_some_aliases_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(labmod, "can_bind", lambda addr: addr != "127.0.2.71")
    assert labmod.missing_loopback(["127.0.1.86", "127.0.2.71", "127.0.2.71"]) == ["127.0.2.71"]
    with pytest.raises(ConfigurationError, match="loopback"):
        labmod.missing_loopback(["10.0.0.1"])


def test_missing_programs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drivers.base, "_CACHE", {"nginx": None, "haproxy": None})
    with pytest.raises(ProgramMissing, match="apt-get install nginx libnginx-mod-stream"):
        Lab("tcp-single-tier", proxies="nginx")
    with pytest.raises(ProgramMissing, match="apt-get install haproxy"):
        Lab("haproxy-tcp-send-proxy-v2", proxies="real")
    lab = Lab("tcp-single-tier", proxies="auto", progress="none")
    assert lab.runs["lb1"].runner == "python"
    assert "nginx is not installed" in lab.describe()
    # a program that is not needed is not looked for
    assert Lab("tcp-single-tier", proxies="haproxy").runs["lb1"].runner == "python"
    with pytest.raises(ConfigurationError, match="proxies"):
        Lab("tcp-single-tier", proxies="apache")


def test_progress_lines_show_no_ports_and_callbacks_get_every_step() -> None:
    out = io.StringIO()
    seen: list[tuple[int, int, str]] = []
    with Lab("tcp-multi-regenerate", progress="text", progress_stream=out):
        pass
    with Lab("tcp-multi-regenerate", progress=lambda d, t, m: seen.append((d, t, m))):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "lab tcp-multi-regenerate: starting"
    assert lines[1].startswith("  [1/4] loopback addresses: client 127.0.1.86;")
    assert lines[-1] == ("ready: client 127.0.1.86 → lb1 127.0.2.116 → lb2 127.0.2.200 → "
                         "emqx 127.0.2.71")
    assert not [line for line in lines if re.search(r"\d:\d", line)]  # no ports
    assert [d for d, _, _ in seen] == [0, 1, 2, 3, 4] and seen[-1][2].startswith("ready")
    with pytest.raises(ConfigurationError):
        Progress("fancy")


def test_lab_accepts_a_topology_a_path_or_a_name() -> None:
    topo = load(str(ROOT / "data" / "topologies" / "tcp-single-tier.yaml"))
    for what in (topo, ROOT / "data" / "topologies" / "tcp-single-tier.yaml", "tcp-single-tier"):
        assert Lab(what, progress="none").topology == topo
    with pytest.raises(ConfigurationError):
        Lab("no/such/file.yaml")


def test_netstat_parsing() -> None:
    bsd = ("Active Internet connections (including servers)\n"
           "Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)\n"
           "tcp4       0      0  127.0.2.116.53211      127.0.2.200.8083       ESTABLISHED\n"
           "tcp4       0      0  127.0.2.200.8083       *.*                    LISTEN\n")
    rows = parse_netstat(bsd)
    assert rows[0].local == ("127.0.2.116", 53211) and rows[0].remote == ("127.0.2.200", 8083)
    assert rows[1].state == "LISTEN" and rows[1].local == ("127.0.2.200", 8083)
    linux = "tcp        0      0 127.0.2.116:53211       127.0.2.200:8083        ESTABLISHED\n"
    assert parse_netstat(linux)[0].remote == ("127.0.2.200", 8083)


# ==============================================================================================
# The command line


def test_cli_lab_run_json() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["lab", "run", str(ROOT / "data/topologies/ws-multi-override.yaml"),
                     "--forge-xff", "6.6.6.6", "--json", "--quiet"])
    doc = json.loads(out.getvalue())
    assert code == 0
    assert doc["peername"] == doc["predicted"] == "127.0.1.163:52662"
    assert doc["addresses"] == {"client": "127.0.1.163", "lb1": "127.0.2.116",
                                "lb1.public": "127.0.2.116", "lb2": "127.0.2.200",
                                "emqx": "127.0.2.71"}


def test_cli_lab_run_refused_and_text() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["lab", "run", str(ROOT / "data/topologies/tcp-stacked-headers.yaml"),
                     "--json", "--quiet"])
    doc = json.loads(out.getvalue())
    assert code == 0 and doc["peername"] is None and doc["predicted"] is None
    proc = subprocess.run([sys.executable, "-m", "realip", "lab", "run",
                           str(ROOT / "data/topologies/tcp-single-tier.yaml")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "broker's peername  127.0.1.86:61177 = client" in proc.stdout
    assert "ready: client 127.0.1.86" in proc.stderr  # progress on stderr


def test_cli_lab_check() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["lab", "check", "--json"]) == 0
    doc = json.loads(out.getvalue())
    assert doc["loopback"]["ok"] is True and set(doc) == {"loopback", "nginx", "haproxy"}


def test_probe_is_exported() -> None:
    assert Probe.__name__ == "Probe"
