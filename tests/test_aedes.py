"""The aedes receiver model against what the real aedes 1.2.0 did (tests/vectors/aedes_1.2.0.json,
recorded on loopback; tests/real/test_aedes_real.py replays the cases live)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from realip.receivers import accepts
from realip.wire import mqtt_connect

DOC = json.loads((Path(__file__).parent / "vectors" / "aedes_1.2.0.json").read_text())
TCP: list[dict[str, Any]] = DOC["tcp"]


def expected(rec: dict[str, Any]) -> tuple[bool, bool, tuple[str, str] | None]:
    """What the model predicts for a recorded case: (crashed, connected, (address, port))."""
    writes = [bytes.fromhex(w) for w in rec["writes"]]
    acc = accepts("aedes", writes[0])
    after = b"".join(writes)[acc.consumed or 0:]
    connected = acc.accepted and after == mqtt_connect(rec["client_id"])
    addr = acc.variable("ipAddress")
    where = None
    if not acc.crash:
        where = (addr, acc.variable("port")) if addr is not None else \
            (rec["peer"][0], str(rec["peer"][1]))
    return acc.crash, connected, where


def test_versions_recorded() -> None:
    assert DOC["versions"]["aedes"] == "1.2.0"
    assert DOC["versions"]["aedes-protocol-decoder"] == "2.2.0"
    assert len(TCP) == 273


@pytest.mark.parametrize("rec", TCP, ids=[f"{r['group']}:{r['name']}" for r in TCP])
def test_model_matches_recorded_aedes(rec: dict[str, Any]) -> None:
    crash, connected, where = expected(rec)
    assert crash == rec["crashed"], rec
    assert connected == rec["connected"], rec
    d = rec["connDetails"]
    if d is not None:
        assert where == (d["ipAddress"], str(d["port"])), rec


WS: list[dict[str, Any]] = DOC["ws"]


@pytest.mark.parametrize("rec", WS, ids=[r["name"] for r in WS])
def test_ws_rule_matches_recorded_aedes(rec: dict[str, Any]) -> None:
    from realip.programs.aedes.ws import aedes_ws_peer

    assert rec["connected"] and not rec["crashed"]
    # the recording sent header values as UTF-8; Node reads them as latin-1
    headers = [(k, v.encode("utf-8").decode("latin-1")) for k, v in rec["headers"]]
    res = aedes_ws_peer(rec["peer"][0], rec["peer"][1], headers)
    assert (res.addr, res.port) == (rec["connDetails"]["ipAddress"], rec["connDetails"]["port"])
    assert res.trace
