"""The aedes model against the real aedes (Node.js), live on 127.0.44.x: every case of
:data:`realip.receivers.EDGE_CASES` and every spec vector over TCP (crash or not, connected or
not, the client address and port aedes records), and the WebSocket header rules.

The inputs are those of tests/vectors/aedes_1.2.0.json (the edge cases and spec vectors with an
MQTT CONNECT as the payload); the expectation is the model's, computed here, not the recording.
A missing ``node`` or missing ``node_modules`` (``npm ci`` in realip/lab/node) skips — and fails
under ``REALIP_REQUIRE_REAL=1``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from realip.programs.aedes.ws import aedes_ws_peer
from realip.receivers import EDGE_CASES, accepts
from realip.wire import mqtt_connect

from ._programs import free_port

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[1] / "vectors"
DOC = json.loads((ROOT / "aedes_1.2.0.json").read_text())
TCP: list[dict[str, Any]] = DOC["tcp"]
WS: list[dict[str, Any]] = DOC["ws"]
HOST, SRC = "127.0.44.10", "127.0.44.11"


@pytest.fixture(scope="module")
def aedes() -> Iterator[Any]:
    from realip.lab.drivers.aedes import AedesListener, find_aedes, missing_detail

    from .conftest import _need

    _need(None if find_aedes(refresh=True) is None else "aedes",
          f"aedes ({missing_detail()})")
    listener = AedesListener([("tcp", HOST, free_port(HOST)), ("ws", HOST, free_port(HOST)),
                              ("tcp", "::1", free_port("::1"))])
    listener.start()
    try:
        yield listener
    finally:
        listener.stop()


def test_cases_cover_edge_cases_and_spec_vectors() -> None:
    spec = sum(len(json.loads((ROOT / f"proxy_protocol_{g}.json").read_text()))
               for g in ("valid", "malformed"))
    assert len(TCP) == len(EDGE_CASES) + spec
    assert [r["name"] for r in TCP if r["group"] == "edge"] == list(EDGE_CASES)


def _port(aedes: Any, kind: str, v6: bool = False) -> int:
    return next(p for k, h, p in aedes.listens if k == kind and (h == "::1") == v6)


@pytest.mark.parametrize("rec", TCP, ids=[f"{r['group']}:{r['name']}" for r in TCP])
def test_tcp_case_live(aedes: Any, rec: dict[str, Any]) -> None:
    aedes.ensure()
    writes = [bytes.fromhex(w) for w in rec["writes"]]
    cid = rec["client_id"]
    model = accepts("aedes", writes[0])
    mark, gen = aedes.mark(), aedes.generation
    v6 = rec["ipv6"]
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind(("::1" if v6 else SRC, 0))
    s.settimeout(3)
    s.connect(("::1" if v6 else HOST, _port(aedes, "tcp", v6)))
    peer = s.getsockname()[:2]
    for i, w in enumerate(writes):
        if i:
            time.sleep(0.25)
        try:
            s.sendall(w)
        except OSError:
            break
    ev = aedes.wait_for(lambda e: e.generation == gen and (
        (e.event == "client" and e.fields.get("id") == cid)
        or e.event in ("clientError", "connectionError", "crash")), 2.0, after=mark,
        stop_on_exit=True)
    s.close()
    crashed = aedes.died(0.5 if ev is not None and ev.event == "crash" else 0.05)
    evs = [e for e in aedes.since(mark) if e.generation == gen]
    client = next((e for e in evs if e.event == "client" and e.fields.get("id") == cid), None)
    other = next((e for e in evs if e.event in ("clientError", "connectionError")), None)
    assert crashed == model.crash, (model, evs)
    if model.crash:
        crash = next(e for e in evs if e.event == "crash")
        assert crash.fields["error"] == model.log_line
        return
    after = b"".join(writes)[model.consumed or 0:]
    assert (client is not None) == (model.accepted and after == mqtt_connect(cid)), (model, evs)
    seen = (client or other).details if (client or other) else None
    if seen is not None:
        addr = model.variable("ipAddress")
        want = (addr, model.variable("port")) if addr is not None else (peer[0], str(peer[1]))
        assert (seen["ipAddress"], str(seen["port"])) == want


def _ws_request(port: int, headers: list[tuple[str, str]]) -> bytes:
    lines = ["GET /mqtt HTTP/1.1", f"Host: {HOST}:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: cmVhbGlwLWFlZGVzLWtleQ==",
             "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: mqtt",
             *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def _frame(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    return bytes([0x82, 0x80 | len(payload)]) + mask + bytes(
        b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("rec", WS, ids=[r["name"] for r in WS])
def test_ws_headers_live(aedes: Any, rec: dict[str, Any]) -> None:
    aedes.ensure()
    headers = [(k, v) for k, v in rec["headers"]]
    cid = f"live-{WS.index(rec):03d}"
    mark = aedes.mark()
    port = _port(aedes, "ws")
    with socket.create_connection((HOST, port), timeout=3, source_address=(SRC, 0)) as s:
        peer = s.getsockname()[:2]
        s.sendall(_ws_request(port, headers))
        resp = b""
        while b"\r\n\r\n" not in resp:
            d = s.recv(4096)
            assert d, "aedes closed the upgrade"
            resp += d
        assert resp.startswith(b"HTTP/1.1 101")
        s.sendall(_frame(mqtt_connect(cid)))
        ev = aedes.client(cid, 3.0, after=mark)
    assert ev is not None and ev.details is not None
    node_view = [(k, v.encode("utf-8").decode("latin-1")) for k, v in headers]
    res = aedes_ws_peer(peer[0], peer[1], node_view)
    assert (ev.details["ipAddress"], ev.details["port"]) == (res.addr, res.port)
    assert aedes.alive
