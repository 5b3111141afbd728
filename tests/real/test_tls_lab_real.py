"""The live lab's TLS scenarios on the real nginx and HAProxy, beside the simulator (issue 12).

Every bundled ``tls-*`` / ``wss-*`` scenario with an nginx or HAProxy hop runs with the real
programs (Debian's nginx 1.22.1 with the stream module, HAProxy 2.6) configured by
:mod:`realip.render` with the lab's run-time PKI, in front of the lab broker's tcp/ws/ssl
listeners; paho-mqtt connects over TLS or wss from the client's loopback address with the
scenario's SNI and client certificate.  The broker's peername and username must be the
simulator's, and so must the end that terminated TLS (the host whose certificate the client
met) and what it learned (SNI, client CN) where the lab can see it.

Bad input, live beside simulated: plain bytes to a ``listen … ssl`` / ``bind … ssl`` port, no
certificate to ``verify required`` / ``ssl_verify_client on`` / ``fail_if_no_peer_cert``, a
certificate from ``other-ca``, a forged PROXY header in front of the ClientHello.  Both refuse,
at the same hop; a real program's refusal must be the log line the simulator predicts (its
" … " stand for the fields that vary, as in test_topology_real.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from realip.lab import Lab, Probe
from realip.proxy_protocol import decode
from realip.topology import HAProxy, NginxHttp, NginxStream, Topology, load

pytestmark = pytest.mark.real

ROOT = Path(__file__).resolve().parents[2]


def _tls_scenarios() -> list[Topology]:
    out = []
    for path in sorted((ROOT / "data" / "topologies").glob("*.yaml")):
        if not path.stem.startswith(("tls-", "wss-")):
            continue
        topo = load(str(path))
        if any(isinstance(h, NginxStream | NginxHttp | HAProxy) for h in topo.hops):
            out.append(topo)
    return out


SCENARIOS = _tls_scenarios()


def _need(request: pytest.FixtureRequest, topo: Topology) -> None:
    if any(isinstance(h, NginxStream | NginxHttp) for h in topo.hops):
        request.getfixturevalue("nginx_bin")
    if any(isinstance(h, HAProxy) for h in topo.hops):
        request.getfixturevalue("haproxy_bin")


def _program(topo: Topology, hop: str) -> str:
    return "haproxy" if isinstance(topo.hop(hop), HAProxy) else "nginx"


def _logged(text: str, message: str) -> str | None:
    """The log line of *text* holding the simulator's *message* (" … " stand for the fields
    that vary), None if none does."""
    parts = [re.escape(p) for p in message.split(" … ")]
    m = re.search("[^\n]*?".join(parts), text)
    return None if m is None else m.group(0)


def _alert(text: str) -> str | None:
    m = re.search(r"tls_alert, ?\{(\w+)", text)
    return None if m is None else m.group(1)


def check_refused_alike(lab: Lab, probe: Probe) -> str:
    """Both refused, by the same hop, and a real program's log holds the simulator's line
    (the broker's refusal: the same TLS alert).  Returns the refusing hop's name."""
    trace = probe.trace
    detail = (str(probe), trace.table(), probe.logs)
    assert probe.peername is None and probe.predicted is None, detail
    assert probe.agree, detail
    refusing = next(v for v in trace.views if not v.accepted)
    assert refusing.log is not None
    topo = lab.topology
    if refusing.name == topo.broker.name:
        assert probe.refused is not None and probe.refused.startswith(f"{refusing.name}: "), \
            detail
        want = _alert(refusing.log)
        if want is not None:
            assert _alert(probe.refused) == want, detail
        elif "not a TLS record" in refusing.log:  # Erlang's ssl: unexpected_message
            assert _alert(probe.refused) == "unexpected_message", detail
        else:  # a plain listener: the lab broker runs the same step
            assert probe.refused == f"{refusing.name}: {refusing.log}", detail
        return refusing.name
    program = _program(topo, refusing.name)
    assert probe.refused is not None and probe.refused.startswith(f"{program}: "), detail
    found = _logged(probe.logs[program], refusing.log)
    assert found is not None, (refusing.log, *detail)
    return refusing.name


@pytest.fixture
def lab_of(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start (and afterwards close) a lab with the real programs for a topology."""
    labs: list[Lab] = []

    def start(topo: Topology) -> Lab:
        _need(request, topo)
        lab = Lab(topo, proxies="real", progress="none").start()
        labs.append(lab)
        assert all(r.runner != "python" for r in lab.runs.values())
        return lab

    yield start
    for lab in labs:
        lab.close()


# ==============================================================================================
# Every bundled TLS scenario


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_tls_scenario_live_equals_simulated(lab_of: Any, topo: Topology) -> None:
    lab = lab_of(topo)
    probe = lab.connect()
    detail = (str(probe), probe.trace.table(), probe.logs)
    assert probe.connected and probe.peername == probe.predicted, detail
    assert probe.username == probe.predicted_username == topo.expect_username, detail
    assert probe.tls is not None and probe.predicted_tls is not None
    assert probe.tls.terminated_by == probe.predicted_tls.terminated_by is not None, detail
    # every fact observed: the terminating end's SNI and client CN — from the broker's own
    # handshake, or the realip-tls line the lab makes nginx / HAProxy log
    assert probe.tls == probe.predicted_tls, detail
    assert probe.tls.server_name == topo.client.sni
    assert probe.agree, detail
    # a PROXY v2 SSL TLV reaching the broker (HAProxy's send-proxy-v2-ssl-cn, or the client's
    # forged one through a pass-through): field by field the one the simulator writes
    last = probe.trace.links[-1].proxy_header
    want = decode(last).ssl if last is not None and not last.startswith(b"PROXY") else None
    assert probe.record is not None
    got = probe.record.pp2_ssl
    if want is None:
        assert got is None
    else:
        assert got is not None
        assert (int(got.client), got.verify, got.version, got.cn, got.cipher) == \
            (int(want.client), want.verify, want.version, want.cn, want.cipher), detail
    # the scenario's expectation holds on loopback: the peername names the expected host
    # (or the forged address, which is not mapped)
    expected = topo.expect
    assert expected is not None
    if expected.rsplit(":", 1)[0] == topo.client.addr:
        assert probe.peername == probe.client
    else:
        assert probe.peername == expected
    # the session is encrypted up to the terminating end, whose certificate the client met
    terminator = probe.tls.terminated_by
    assert terminator in (*(h.name for h in topo.hops), topo.broker.name)
    # the simulator's own plaintext (CONNECT or upgrade request) inside a real TLS connection
    raw = lab.connect(raw=True)
    assert raw.agree and raw.peername == probe.peername, (str(raw), raw.logs)
    assert raw.tls is not None and raw.tls.terminated_by == terminator


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_a_proxy_header_before_the_client_hello(lab_of: Any, topo: Topology) -> None:
    """The client writes a PROXY v1 line in clear, then its ClientHello: a ``listen … ssl`` /
    ``bind … ssl`` hop fails the handshake on it, a pass-through hop relays it (and the
    broker reads or refuses it) — live as simulated."""
    lab = lab_of(topo)
    probe = lab.connect(forge_proxy="PROXY TCP4 6.6.6.6 10.0.0.1 1111 8883\r\n")
    if probe.predicted is None:
        check_refused_alike(lab, probe)
    else:
        assert probe.agree, (str(probe), probe.trace.table(), probe.logs)


# ==============================================================================================
# Bad input


#: (scenario, hop lb1's changes, the client's changes for each probe)
_VERIFY_ON = {"ssl_verify_client": "on", "ssl_client_certificate": "clients-ca"}
BAD: list[tuple[str, Mapping[str, Any], list[Mapping[str, Any]]]] = [
    ("tls-nginx-terminates", {}, [{"tls": False}]),
    ("wss-nginx-terminates", {}, [{"tls": False}]),
    ("tls-haproxy-client-cert", {}, [{"tls": False}, {"cert_cn": None},
                                     {"cert_ca": "other-ca"},
                                     {"cert_ca": "other-ca", "cert_chain": True}]),
    ("tls-nginx-terminates", _VERIFY_ON, [{"cert_cn": None},
                                          {"cert_cn": "evil", "cert_ca": "other-ca"},
                                          {"cert_cn": "evil", "cert_ca": "other-ca",
                                           "cert_chain": True}]),
    ("wss-nginx-terminates", _VERIFY_ON, [{"cert_cn": None},
                                          {"cert_cn": "evil", "cert_ca": "other-ca"}]),
    ("tls-passthrough-sni", {}, [{"tls": False}, {"cert_cn": None},
                                 {"cert_cn": "evil", "cert_ca": "other-ca"}]),
]


@pytest.mark.parametrize(("name", "hop", "clients"), BAD,
                         ids=[f"{n}{'-verify-on' if h else ''}" for n, h, _ in BAD])
def test_bad_input_is_refused_live_as_simulated(lab_of: Any, name: str,
                                                hop: Mapping[str, Any],
                                                clients: list[Mapping[str, Any]]) -> None:
    topo = load(str(ROOT / "data" / "topologies" / f"{name}.yaml"))
    if hop:
        topo = topo.with_hop("lb1", **hop)
    lab = lab_of(topo)
    refusers = [check_refused_alike(lab, lab.connect(client=c)) for c in clients]
    # who refuses: the terminating end (lb1, or EMQX's ssl listener behind the pass-through)
    # (plain bytes carry no SNI: the pass-through lb1's map has no route for them)
    want = ["lb1" if name != "tls-passthrough-sni" or c.get("tls") is False
            else topo.broker.name for c in clients]
    assert refusers == want
    # the good client is still served afterwards, with its certificate when it needs one
    good = lab.connect(client={"cert_cn": "device-42"} if hop else None)
    assert good.connected and good.agree, (str(good), good.trace.table(), good.logs)


def test_haproxy_crt_ignore_err_tlv_live_as_simulated(lab_of: Any) -> None:
    """``verify required crt-ignore-err all`` lets a certificate from another CA through;
    ``send-proxy-v2-ssl-cn`` tells EMQX its CN and the failed verify result (X509 error 21,
    "unable to verify the first certificate": it came without its CA) — the SSL TLV the
    broker received is the one the simulator writes."""
    topo = load(str(ROOT / "data" / "topologies" / "tls-haproxy-client-cert.yaml"))
    topo = topo.with_hop("lb1", crt_ignore_err=True)
    lab = lab_of(topo)
    probe = lab.connect(client={"cert_cn": "evil", "cert_ca": "other-ca"})
    detail = (str(probe), probe.trace.table(), probe.logs)
    assert probe.connected and probe.agree and probe.username == "evil", detail
    # HAProxy's own log: it saw the other CA's certificate and let it through
    assert probe.tls is not None and probe.tls.cert_cn == "evil", detail
    assert "realip-tls" in probe.logs["haproxy"] or "realip-tls" in lab.logs()["haproxy"]
    header = decode(probe.trace.links[-1].parts[0][1])
    want = header.ssl
    assert want is not None and want.verify == 21
    assert probe.record is not None
    live = probe.record.pp2_ssl
    assert live is not None
    assert (int(live.client), live.verify, live.cn, live.version) == \
        (int(want.client), want.verify, want.cn, want.version), detail


@pytest.mark.parametrize("client", [{}, {"tls_version": "TLSv1.2"}], ids=["tls13", "tls12"])
def test_haproxy_every_ssl_sub_tlv_live_as_simulated(lab_of: Any,
                                                     client: Mapping[str, Any]) -> None:
    """``proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key``: the SSL TLV the real
    HAProxy writes — sub-TLVs in make_proxy_line_v2's order, the negotiated version and
    cipher, the signature and key algorithms of its own certificate — is the simulator's,
    byte for byte."""
    topo = load(str(ROOT / "data" / "topologies" / "tls-haproxy-client-cert.yaml"))
    topo = topo.with_hop("lb1", proxy_v2_options=["ssl", "cert-cn", "ssl-cipher", "cert-sig",
                                                  "cert-key"])
    lab = lab_of(topo)
    probe = lab.connect(client=client or None)
    detail = (str(probe), probe.trace.table(), probe.logs)
    assert probe.connected and probe.agree, detail
    last = probe.trace.links[-1].proxy_header
    assert last is not None and probe.record is not None
    want, got = decode(last).ssl, probe.record.pp2_ssl
    assert want is not None and got is not None
    assert [(t.type, t.value) for t in got.subtlvs] == [(t.type, t.value) for t in want.subtlvs]
    assert (int(got.client), got.verify) == (int(want.client), want.verify)


PLAIN = ["tcp-single-tier", "ws-single-tier", "haproxy-tcp-send-proxy-v2",
         "haproxy-ws-set-header"]


@pytest.mark.parametrize("name", PLAIN)
def test_a_client_hello_to_a_plain_listener(lab_of: Any, name: str) -> None:
    """A client that opens TLS where nobody terminates it: the first hop (or EMQX behind a
    stream relay) meets a ClientHello as bytes and refuses it — live as simulated, with the
    simulator's log line; the lab makes a PKI for that client on demand."""
    topo = load(str(ROOT / "data" / "topologies" / f"{name}.yaml"))
    lab = lab_of(topo)
    assert lab.pki is None
    probe = lab.connect(client={"tls": True, "sni": "mqtt.example.com"})
    assert lab.pki is not None
    check_refused_alike(lab, probe)
    assert lab.connect().agree  # the plain client is still served


def test_nginx_proxy_ssl_re_encrypts_to_the_broker(lab_of: Any) -> None:
    """``listen … ssl`` + ``proxy_ssl on`` in front of EMQX's ssl listener with
    ``proxy_protocol``: nginx terminates the client's TLS, writes the PROXY line in clear and
    opens a TLS connection of its own (no SNI: proxy_ssl_server_name off) — the broker
    terminates that one, live as simulated."""
    topo = load(str(ROOT / "data" / "topologies" / "tls-nginx-terminates.yaml"))
    topo = topo.with_hop("lb1", proxy_ssl=True).with_broker(listener="ssl", port=8883)
    lab = lab_of(topo)
    probe = lab.connect()
    detail = (str(probe), probe.trace.table(), probe.logs)
    assert probe.connected and probe.agree and probe.peername == probe.client, detail
    assert probe.tls is not None and probe.tls.terminated_by == "lb1"
    assert probe.trace.views[-1].tls == "terminated"
    assert probe.record is not None and probe.record.tls is not None, detail
    assert probe.record.tls.server_name is None and probe.record.tls.cert is None
