"""The Mosquitto model against what Mosquitto 2.1.2 and master (built from source) did.

``tests/vectors/mosquitto_<release>.json`` hold one record per connection: the writes a client
made (0.2 s apart), the listener's ``enable_proxy_protocol``, what the client saw (a CONNACK,
the connection closed, or nothing: still open) and every line the broker logged for it.  For
each record, :func:`realip.receivers.accepts` on the first write (the rest as ``later=``) must
predict all of it: accepted or not, the peername in ``New client connected from A:P``, the
rejection notice and the ``disconnected: …`` line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from realip.programs.mosquitto.receive import MASTER_COMMIT
from realip.receivers import Acceptance, accepts

VECTORS = Path(__file__).parent / "vectors"
RELEASES = ("2.1.2", "master")


def _load(release: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"mosquitto_{release}.json").read_text())
    return data


DOCS = {r: _load(r) for r in RELEASES}
CASES = [(r, c) for r in RELEASES for c in DOCS[r]["cases"]]


def _id(rc: tuple[str, dict[str, Any]]) -> str:
    release, c = rc
    split = "" if c["split"] is None else f"@{c['split']}"
    return f"{release}-v{c['enable_proxy_protocol']}-{c['name']}{split}"


def _model(release: str, case: dict[str, Any]) -> Acceptance:
    writes = [bytes.fromhex(w) for w in case["writes"]]
    later = writes[1] if len(writes) > 1 else None
    return accepts("mosquitto", writes[0], later=later,
                   version=f"{release}:{case['enable_proxy_protocol']}")


def _connect_follows(acc: Acceptance, case: dict[str, Any]) -> bool:
    """Whether the bytes after the header start with the client's CONNECT."""
    stream = b"".join(bytes.fromhex(w) for w in case["writes"])
    cid = case["client_id"].encode()
    return stream[acc.consumed or 0 :].startswith(b"\x10") and cid in stream[acc.consumed or 0 :]


def expected(release: str, case: dict[str, Any]) -> tuple[str, list[str]]:
    """What the model predicts the client sees and the broker logs for one record."""
    acc = _model(release, case)
    cid = case["client_id"]
    if acc.waiting:  # nothing happens until the client gives up and closes
        return "open", ["Client (null) [(null):0] disconnected: connection closed by client."]
    if not acc.accepted:
        lines = []
        if acc.log_line is not None and acc.log_line != acc.variable("disconnect"):
            lines.append(acc.log_line)
        if acc.variable("disconnect") is not None:
            lines.append(acc.variable("disconnect") or "")
        return "closed", lines
    assert _connect_follows(acc, case), "every recorded header is followed by a CONNECT"
    address = acc.variable("address")
    name = (f"{address}:{acc.variable('remote_port')}" if address is not None
            else case["peer"])  # UNKNOWN: the real peer
    notice = [acc.variable("negotiated") or ""] if acc.variable("negotiated") else []
    return "connack", [*notice, f"New client connected from {name} as {cid} (p4, c1, k60).",
                       f"Client {cid} [{name}] disconnected."]


def test_vectors_say_where_they_come_from() -> None:
    assert DOCS["master"]["commit"] == MASTER_COMMIT
    assert DOCS["2.1.2"]["commit"] == "99fa50f30e325609394c324c8ff71cfbbe95d8ab"
    for doc in DOCS.values():
        assert doc["recorded"] and doc["how"] and doc["config"]
        assert "enable_proxy_protocol 2" in doc["config"]
        assert len(doc["cases"]) == 787


@pytest.mark.parametrize("rc", CASES, ids=[_id(rc) for rc in CASES])
def test_model_predicts_the_real_broker(rc: tuple[str, dict[str, Any]]) -> None:
    release, case = rc
    assert expected(release, case) == (case["client_sees"], case["log"])


_NEW = re.compile(r"New client connected from (.*) as ")


def test_the_fixes_are_in_the_records() -> None:
    """The behaviours issue 14 named, as the records show them (both releases unless noted)."""
    by = {(r, c["name"], c["enable_proxy_protocol"], c["split"]): c for r, c in CASES}

    def logged(r: str, name: str, proto: int, split: int | None = None) -> str | None:
        for line in by[(r, name, proto, split)]["log"]:
            m = _NEW.match(line)
            if m:
                return m.group(1)
        return None

    for r in RELEASES:
        def peername(name: str, proto: int, split: int | None = None, r: str = r) -> str | None:
            return logged(r, name, proto, split)
        # v1 text kept as written; v2 printed by glibc inet_ntop
        assert peername("edge:v1-tcp6-uppercase", 1) == "2001:DB8::7:56324"
        assert peername("edge:v2-inet6-compat", 2) == "::102:56324"
        # the fixed part alone: dropped at once
        c16 = by[(r, "edge:v2-inet", 2, 16)]
        assert c16["log"] == ["Client (null) [(null):0] disconnected: connection closed by "
                              "client."]
        # a body in two reads: written over the start of the buffer
        assert peername("edge:v2-split-20", 2, 20) == "198.51.100.1:0"
        # unsupported family/transport: out of memory
        assert by[(r, "edge:v2-dgram", 2, None)]["log"] == [
            "Client (null) [(null):0] disconnected: out of memory."]
    # the spec's 216-byte UNIX block: accepted by 2.1.2, rejected by master
    unix = "valid:ranch v2 UNIX stream"
    assert by[("2.1.2", unix, 2, None)]["client_sees"] == "connack"
    assert by[("master", unix, 2, None)]["client_sees"] == "closed"
