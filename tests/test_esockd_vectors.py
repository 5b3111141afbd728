"""The ``emqx-tcp`` model against what esockd 5.17.0 really did, for both backends.

``tests/vectors/esockd_5.17.0.json`` holds what ``esockd_proxy_protocol`` (run under Erlang/OTP 25
through ``esockd_transport:proxy_upgrade/2`` and ``esockd_socket:proxy_upgrade/2``) did with every
case of :data:`realip.receivers.EDGE_CASES`, every spec vector and a few esockd-specific cases
(the file says how it was recorded).  For each case and backend the model must predict: accept
or not, the peername and sockname EMQX gets, the bytes left for the MQTT parser, the exact error
term or crash reason, whether it waited until ``proxy_protocol_timeout`` and whether it spun the
CPU meanwhile, and the certificate CN a v2 SSL TLV hands to ``peer_cert_as_username``.

esockd blocks until the header is complete, so the prediction is the model's answer for all the
bytes the client wrote; a case split over two writes must then show the real program waiting
for the second one (the model, given the first write only, says ``waiting``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from realip.decisions import Acceptance
from realip.programs.emqx.broker import peername
from realip.programs.emqx.esockd import RECEIVER, backend_for
from realip.receivers import EDGE_CASES, PAYLOAD, accepts

DATA = json.loads((Path(__file__).parent / "vectors" / "esockd_5.17.0.json").read_text())
CASES: list[dict[str, Any]] = DATA["cases"]
BACKENDS = ("gen_tcp", "socket")
TIMEOUT_MS: int = DATA["proxy_protocol_timeout_ms"]
PAUSE_MS: int = DATA["pause_between_writes_ms"]
KNOWN = {(d["case"], b): d for d in DATA["known_differences"] for b in d["backends"]}
PAIRS = [(c, b) for c in CASES for b in BACKENDS]


def _data(case: dict[str, Any]) -> bytes:
    return b"".join(bytes.fromhex(w) for w in case["writes"])


def _model(case: dict[str, Any], backend: str) -> Acceptance:
    return accepts("emqx-tcp", _data(case), version=f"5.17 {backend}")


def _observed_by_model(case: dict[str, Any], backend: str) -> dict[str, Any]:
    """The recorded fields, as the model predicts them for this case."""
    m = _model(case, backend)
    got = case["results"][backend]
    if not m.accepted:
        if m.variable("esockd_crash") is not None:
            out = {"outcome": "crash", "term": "{error," + str(m.variable("esockd_crash")) + "}"}
        else:
            out = {"outcome": "error", "term": m.variable("esockd_error")}
        return out
    assert m.consumed is not None
    return {
        "outcome": "ok",
        "peername": peername(m.source.host, m.source.port) if m.source else got["client"],
        "sockname": (peername(m.destination.host, m.destination.port) if m.destination
                     else got["listen"]),
        "rest_hex": _data(case)[m.consumed:].hex().upper(),
        "peer_cert_common_name": m.variable("pp2_ssl_cn") or "undefined",
    }


def test_every_case_recorded_for_both_backends() -> None:
    assert DATA["version"] == "5.17.0" and len(DATA["commit"]) == 40
    assert "OTP 25" in DATA["otp"]
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)) == 292
    # every edge case (sent as EdgeCase.writes()) and every spec vector
    assert {n[5:] for n in names if n.startswith("edge:")} == set(EDGE_CASES)
    vectors = Path(__file__).parent / "vectors"
    for kind in ("valid", "malformed"):
        specs = json.loads((vectors / f"proxy_protocol_{kind}.json").read_text())
        recorded = {c["name"]: c["writes"] for c in CASES if c["name"].startswith(kind + ":")}
        assert recorded == {f"{kind}:{i}:{v['name']}": [v["hex"] + PAYLOAD.hex()]
                            for i, v in enumerate(specs)}
    for name, edge in EDGE_CASES.items():
        assert by_writes("edge:" + name) == [w.hex() for w in edge.writes()]
    assert all(set(c["results"]) == set(BACKENDS) for c in CASES)


@pytest.mark.parametrize(("case", "backend"), PAIRS,
                         ids=[f"{c['name']}-{b}" for c, b in PAIRS])
def test_model_predicts_the_recorded_outcome(case: dict[str, Any], backend: str) -> None:
    got = case["results"][backend]
    want = _observed_by_model(case, backend)
    seen = {k: got.get(k) for k in want}
    known = KNOWN.get((case["name"], backend))
    if known is None:
        assert seen == want
        return
    # A recorded difference (the vector file gives the reason): exactly that field differs, by
    # exactly the recorded values.
    field = known["field"]
    assert seen[field] == known["recorded"] and want[field] == known["model"]
    assert {k: v for k, v in seen.items() if k != field} == \
        {k: v for k, v in want.items() if k != field}


def test_known_differences_are_only_the_otp25_zone_id() -> None:
    assert len(KNOWN) == 2
    assert all("OTP 25" in d["reason"] for d in KNOWN.values())


@pytest.mark.parametrize(("case", "backend"), PAIRS,
                         ids=[f"{c['name']}-{b}" for c, b in PAIRS])
def test_waiting_and_busy_loop(case: dict[str, Any], backend: str) -> None:
    got = case["results"][backend]
    m = _model(case, backend)
    waited = got["elapsed_ms"] >= TIMEOUT_MS * 0.9
    assert waited == m.waiting, (got, m.reason)
    first = None
    if len(case["writes"]) > 1:
        first = accepts("emqx-tcp", bytes.fromhex(case["writes"][0]),
                        version=f"5.17 {backend}")
        if first.waiting:  # the real program waited for the second write
            assert got["elapsed_ms"] >= PAUSE_MS * 0.8
    # the socket backend's busy loop (CPU time of the order of the wall time): until the
    # timeout, or until the rest of a split line arrives
    spun = got["cpu_ms"] >= got["elapsed_ms"] * 0.25 and got["elapsed_ms"] >= PAUSE_MS * 0.8
    spins = m.variable("esockd_cpu") is not None or (
        first is not None and first.variable("esockd_cpu") is not None)
    assert spun == spins, (got, m.reason)


def test_backends_differ_where_the_issue_says() -> None:
    """The socket backend's own failures (issue 14 §3), from the recording."""
    by = {c["name"]: c["results"] for c in CASES}
    local = by["edge:v2-local"]
    assert local["gen_tcp"]["outcome"] == "ok"
    assert local["socket"] == {**local["socket"], "outcome": "crash",
                               "term": "{error,function_clause}"}
    no_crlf = by["edge:v1-lone-lf-no-payload"]
    # gen_tcp ends the line at the LF and crashes on the port "1883\n"
    assert no_crlf["gen_tcp"]["term"] == "{error,badarg}"
    assert no_crlf["socket"]["term"] == "{error,{invalid,{timeout,-1}}}"
    assert no_crlf["socket"]["cpu_ms"] > 200
    body = by["extra:v2-fixed-part-only"]
    assert {body[b]["term"] for b in BACKENDS} == {"{recv_proxy_info_error,timeout}"}
    for b in BACKENDS:
        m = accepts("emqx-tcp", _data({"writes": by_writes("extra:v2-fixed-part-only")}),
                    version=f"5.17 {b}")
        assert m.waiting and m.variable("esockd_error") == "{recv_proxy_info_error,timeout}"


def by_writes(name: str) -> list[str]:
    return next(c["writes"] for c in CASES if c["name"] == name)


def test_versions_are_data() -> None:
    assert RECEIVER.versions == ("5.17 gen_tcp", "5.17 socket")
    assert RECEIVER.settings("5.17 socket")[1]["backend"] == "socket"
    assert RECEIVER.settings("socket")[1]["backend"] == "socket"  # the bare name still reads
    assert RECEIVER.settings()[1]["backend"] == "gen_tcp"
    with pytest.raises(ValueError, match=r"5\.17 gen_tcp"):
        RECEIVER.settings("5.17")
    # EMQX's tcp_backend default: socket from 6.3 on (Unix), gen_tcp before; ssl never socket
    assert backend_for("5.8.9") == backend_for("6.2.2") == "5.17 gen_tcp"
    assert backend_for("6.3.0") == "5.17 socket"
    assert backend_for("6.3.0", "ssl") == "5.17 gen_tcp"


def test_the_broker_step_uses_the_versions_default_backend() -> None:
    """A v2 LOCAL header (with an address block, so recv(0) does not swallow the CONNECT):
    EMQX 5.x/6.2 (gen_tcp) go on with the real peer; EMQX 6.3's default socket backend crashes
    the connection (recorded above as function_clause)."""
    from ipaddress import IPv4Address

    from realip.programs import step
    from realip.programs.base import Broker, Inbound
    from realip.proxy_protocol import Endpoint

    local = bytes.fromhex(by_writes("edge:v2-local-inet-block")[0])
    connect = bytes.fromhex("101000044d5154540402003c0004746573")
    conn = Inbound(local[:28] + connect, Endpoint(IPv4Address("172.16.0.116"), 40000),
                   Endpoint(IPv4Address("172.16.0.71"), 1883), client_id="c1")
    for version, ok in (("5.7.0", True), ("6.2.2", True), ("6.3.0", False)):
        node = Broker(addr="172.16.0.71", proxy_protocol=True, version=version)
        out = step(node, conn)
        assert out.ok is ok, (version, out.view.log)
        if ok:
            assert out.peername == "172.16.0.116:40000"
        else:
            assert out.view.log == "connection process crashed (function_clause in " \
                "set_socket_meta/1 (v2 LOCAL)): socket closed"
    # a v1 line cut before its CRLF: gen_tcp times out, socket busy-waits and crashes
    cut = Inbound(b"PROXY TCP4 203.0.113.7 198.51", conn.peer, conn.local)
    logs = {v: step(Broker(addr="172.16.0.71", proxy_protocol=True, version=v), cut).view.log
            for v in ("5.7.0", "6.3.0")}
    assert logs == {"5.7.0": "proxy_proto_timeout after 3s (no complete header)",
                    "6.3.0": "connection process crashed with {invalid,{timeout,-1}} after 3s "
                             "(no complete header)"}
