"""Debian's Mosquitto 2.0.11, run privately, against the simulator's "Mosquitto 2.0 without PROXY
support" scenario (``data/topologies/tcp-mosquitto-20-no-proxy.yaml``).

One ``mosquitto -c <own config>`` (no service) listens on 127.0.42.10.  The bytes the simulator
says nginx sends the broker (its PROXY v1 line, then the client's CONNECT) are written to it in
one write: the broker must log what the simulator's broker view logs and close the connection
without a CONNACK, as the trace says (no peername).  The same CONNECT without the header is the
control: the broker answers it, with the peername the Mosquitto broker step predicts.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from realip.programs import Broker, Inbound, step
from realip.programs.mosquitto.receive import release
from realip.proxy_protocol import Endpoint
from realip.topology import load, simulate

from ._programs import free_port, stop_process, wait_listening
from .conftest import REQUIRE

pytestmark = pytest.mark.real

SCENARIO = (Path(__file__).parents[2] / "realip" / "data" / "topologies"
            / "tcp-mosquitto-20-no-proxy.yaml")
BROKER_ADDR = "127.0.42.10"
CLIENT_ADDR = "127.0.42.11"  # plays the nginx hop


def mosquitto_binary() -> str | None:
    """Path of the mosquitto broker, or None."""
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto"
                                         if Path("/usr/sbin/mosquitto").exists() else None)


@dataclass
class Mosquitto:
    """A private broker: its version, port and log file."""

    version: str
    port: int
    log: Path

    def log_size(self) -> int:
        return self.log.stat().st_size

    def lines_since(self, offset: int) -> list[str]:
        return self.log.read_bytes()[offset:].decode("latin-1").splitlines()


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    binary = mosquitto_binary()
    if binary is None:
        message = "mosquitto is not installed (apt-get install mosquitto; see apt.txt)"
        if REQUIRE:
            pytest.fail(f"REALIP_REQUIRE_REAL=1 but {message}")
        pytest.skip(message)
    out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10)
    m = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
    version = m.group(1) if m else "unknown"
    if release(version).proxy:
        pytest.skip(f"mosquitto {version} reads PROXY headers: not the 2.0 scenario")
    d = tmp_path_factory.mktemp("mosquitto-20")
    port = free_port(BROKER_ADDR)
    conf = d / "mosquitto.conf"
    conf.write_text("\n".join((
        "allow_anonymous true", "persistence false", "log_dest stderr", "log_type all",
        "log_timestamp false", "connection_messages true", f"listener {port} {BROKER_ADDR}",
        "")))
    log = d / "mosquitto.log"
    with log.open("wb") as f:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=f, stderr=f)
    try:
        wait_listening(BROKER_ADDR, port, proc, log=log)
        yield Mosquitto(version, port, log)
    finally:
        stop_process(proc)


def _send(broker: Mosquitto, data: bytes) -> tuple[int, bytes, str, list[str]]:
    """One connection from CLIENT_ADDR writing *data*: its port, what came back, how it ended
    and the broker's log lines for it."""
    before = broker.log_size()
    with socket.socket() as s:
        s.bind((CLIENT_ADDR, 0))
        s.settimeout(2.0)
        s.connect((BROKER_ADDR, broker.port))
        port = s.getsockname()[1]
        s.sendall(data)
        got, end = b"", "open"
        try:
            while len(got) < 4:
                chunk = s.recv(4096)
                if not chunk:
                    end = "closed"
                    break
                got += chunk
        except ConnectionResetError:
            end = "closed"
        except TimeoutError:
            end = "open"
        if got[:1] == b"\x20":
            end = "connack"
            s.sendall(b"\xe0\x00")  # DISCONNECT
    time.sleep(0.3)
    return port, got, end, broker.lines_since(before)


def test_a_proxy_header_to_mosquitto_20(mosquitto: Mosquitto) -> None:
    trace = simulate(load(SCENARIO))
    link = trace.links[-1]
    assert link.receiver == "mosquitto" and [p for p, _ in link.parts] == ["proxy", "mqtt"]
    view = trace.views[-1]
    assert not view.accepted and trace.peername is None
    assert view.log == "Client <unknown> disconnected due to protocol error."

    port, got, end, lines = _send(mosquitto, b"".join(b for _, b in link.parts))
    # what the client sees: no CONNACK, the connection closed (what the trace says)
    assert got == b"" and end == "closed", (got, end, lines)
    assert f"New connection from {CLIENT_ADDR}:{port} on port {mosquitto.port}." in lines
    assert view.log in lines
    assert not any(line.startswith("New client connected") for line in lines)


def test_the_same_connect_without_a_header(mosquitto: Mosquitto) -> None:
    trace = simulate(load(SCENARIO))
    mqtt = dict(trace.links[-1].parts)["mqtt"]
    port, got, end, lines = _send(mosquitto, mqtt)
    assert end == "connack" and got[:2] == b"\x20\x02", (got, end, lines)
    node = trace.topology.broker
    assert isinstance(node, Broker)
    out = step(node, Inbound(mqtt, Endpoint(IPv4Address(CLIENT_ADDR), port),
                             Endpoint(IPv4Address(BROKER_ADDR), mosquitto.port),
                             client_id="mqttx-client"))
    assert out.peername == f"{CLIENT_ADDR}:{port}"
    assert any(line.startswith(f"New client connected from {out.peername} as mqttx-client ")
               for line in lines), lines
