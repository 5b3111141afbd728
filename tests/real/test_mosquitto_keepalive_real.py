"""The installed Mosquitto's ``max_keepalive`` against the lab broker's ``Limits.max_keepalive``
(issue 11): the same CONNECTs to both, the CONNACKs compared.

One private ``mosquitto -c <own config>`` (no service) with ``max_keepalive 30`` listens on
127.0.51.20.  MQTT 5 clients asking for a Keep Alive of 0 or above 30 are told 30 (Server Keep
Alive, 0x13) by both — Mosquitto since 2.0.10 for 0.  For MQTT 3.1.1 the lab follows 2.0.12+
(CONNACK 0x02, identifier rejected): older releases, such as Debian's 2.0.11, let the client in
with its own value, which this test records rather than hides.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from realip.lab import Background
from realip.lab import mqtt as m
from realip.lab.broker import LabBroker, Limits
from realip.topology import Broker

from ._programs import free_port, stop_process, wait_listening
from .conftest import REQUIRE
from .test_mosquitto_real import mosquitto_binary

pytestmark = pytest.mark.real

ADDR = "127.0.51.20"
CLIENT = "127.0.51.21"
LAB = "127.0.51.22"
CASES = [("k5-0", 5, 0), ("k5-600", 5, 600), ("k5-20", 5, 20), ("k5-30", 5, 30),
         ("k3-20", 4, 20), ("k3-600", 4, 600)]


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    binary = mosquitto_binary()
    if binary is None:
        message = "mosquitto is not installed (apt-get install mosquitto; see apt.txt)"
        if REQUIRE:
            pytest.fail(f"REALIP_REQUIRE_REAL=1 but {message}")
        pytest.skip(message)
    out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10)
    found = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
    version = found.group(1) if found else "0"
    d = tmp_path_factory.mktemp("mosquitto-keepalive")
    port = free_port(ADDR)
    conf = d / "mosquitto.conf"
    conf.write_text("\n".join(("allow_anonymous true", "persistence false", "log_dest stderr",
                               "max_keepalive 30", f"listener {port} {ADDR}", "")))
    log = d / "mosquitto.log"
    with log.open("wb") as f:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=f, stderr=f)
    try:
        wait_listening(ADDR, port, proc, log=log)
        yield version, port
    finally:
        stop_process(proc)


def _connack(host: str, port: int, client_id: str, level: int, keepalive: int,
             ) -> tuple[int, Any]:
    """CONNECT (clean, no will) with *keepalive*: the CONNACK's reason code and its Server
    Keep Alive (None when absent or MQTT 3.1.1)."""
    with socket.socket() as s:
        s.bind((CLIENT if host == ADDR else LAB, 0))
        s.settimeout(3)
        s.connect((host, port))
        s.sendall(m.encode_connect(client_id, level, keepalive=keepalive))
        frames = m.PacketReader(m.MAX_PACKET)
        got: list[tuple[int, bytes]] = []
        while not got:
            chunk = s.recv(4096)
            assert chunk, f"{host} closed without a CONNACK"
            got = frames.feed(chunk)
    first, body = got[0]
    assert first >> 4 == m.PacketType.CONNACK
    if level != 5:
        return body[1], None
    props, _ = Properties(PacketTypes.CONNACK).unpack(body[2:])
    return body[1], props.json().get("ServerKeepAlive")


def test_max_keepalive_matches_the_installed_mosquitto(mosquitto: tuple[str, int]) -> None:
    version, port = mosquitto
    real = {cid: _connack(ADDR, port, cid, level, asked) for cid, level, asked in CASES}
    with Background() as bg:
        lab = LabBroker(Broker(addr=LAB, port=0), limits=Limits(max_keepalive=30))
        bg.run(lab.start())
        try:
            lab_port = lab.endpoint()[1]
            modelled = {cid: bg.run(asyncio.to_thread(_connack, LAB, lab_port, cid, level,
                                                      asked))
                        for cid, level, asked in CASES}
        finally:
            bg.run(lab.close())
    for cid in ("k5-0", "k5-600", "k5-20", "k5-30", "k3-20"):
        assert modelled[cid] == real[cid], (cid, version, real)
    assert real["k5-0"] == real["k5-600"] == (0, 30)
    assert modelled["k3-600"] == (2, None)  # the lab: Mosquitto 2.0.12+'s rule
    if _version_tuple(version) >= (2, 0, 12):
        assert real["k3-600"] == (2, None)
    else:  # 2.0.0-2.0.11: max_keepalive applied to MQTT 5 clients only
        assert real["k3-600"] == (0, None), (version, real)
