"""The live lab's TLS scenarios with the python relays (issue 12): every hop is a
:class:`~realip.lab.relay.HopRelay` running the hop's step on real sockets — terminating TLS
with a real handshake where the hop does (``listen … ssl`` / ``bind … ssl``), reading the real
ClientHello for ``ssl_preread``, relaying TLS untouched elsewhere — in front of the lab
broker's ssl/wss listeners.  The broker's peername and username, who terminated TLS and what
it learned are the simulator's; bad input is refused by the same hop with the same log line.
(tests/real/test_tls_lab_real.py runs the same with the real nginx and HAProxy.)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from realip.lab import Lab, Probe
from realip.lab.relay import tls_role
from realip.render import needs_tls
from realip.topology import Topology, load

ROOT = Path(__file__).resolve().parents[1]
# the TLS scenarios (tls-forged-cert-cn forges the SSL TLV in clear: no TLS, no hop)
SCENARIOS = [load(str(p)) for p in sorted((ROOT / "data" / "topologies").glob("*.yaml"))
             if p.stem.startswith(("tls-", "wss-"))]


def _refused_alike(probe: Probe) -> str:
    """Both refused at the same hop with the same log line; returns the hop."""
    detail = (str(probe), probe.trace.table())
    assert probe.peername is None and probe.predicted is None and probe.agree, detail
    refusing = next(v for v in probe.trace.views if not v.accepted)
    assert probe.refused is not None, detail
    if refusing.name in [h.name for h in probe.trace.topology.hops]:
        # a relay runs the very step: the same sentence
        assert probe.refused == f"{refusing.name}: {refusing.log}", detail
    else:  # the lab broker: the same TLS alert (its own wording)
        assert probe.refused.startswith(f"{refusing.name}: "), detail
    return refusing.name


def test_every_tls_scenario_has_the_roles_it_needs() -> None:
    assert {t.name for t in SCENARIOS} >= {
        "tls-nginx-terminates", "wss-nginx-terminates", "tls-haproxy-client-cert",
        "tls-passthrough-sni", "tls-passthrough-forged-cn", "tls-forged-cert-cn"}
    roles = {tls_role(h) for t in SCENARIOS for h in t.hops}
    assert roles == {"terminate", "preread", None}
    assert [t.name for t in SCENARIOS if not needs_tls(t)] == ["tls-forged-cert-cn"]


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_tls_scenario_with_relays(topo: Topology) -> None:
    with Lab(topo, proxies="python", progress="none") as lab:
        text = lab.describe()
        assert (f"over TLS, SNI {topo.client.sni}" in text) is topo.client.tls
        assert ("terminates TLS" in text) is any(tls_role(h) == "terminate" for h in topo.hops)
        assert (lab.pki is not None) is needs_tls(topo)
        probe = lab.connect()
        detail = (str(probe), probe.trace.table())
        assert probe.connected and probe.agree, detail
        assert probe.username == probe.predicted_username == topo.expect_username
        if topo.client.tls:
            assert probe.tls is not None and probe.predicted_tls is not None
            assert probe.tls.terminated_by == probe.predicted_tls.terminated_by
            # a relay that terminates shows what its real handshake saw
            if probe.tls.terminated_by in lab.relays:
                assert probe.tls.server_name == topo.client.sni
                assert probe.tls.cert_cn == probe.predicted_tls.cert_cn
        raw = lab.connect(raw=True)
        assert raw.agree and raw.peername == probe.peername, str(raw)
        if topo.hops:
            forged = lab.connect(forge_proxy="PROXY TCP4 6.6.6.6 10.0.0.1 1111 8883\r\n")
            if forged.predicted is None:
                _refused_alike(forged)
            else:
                assert forged.agree, (str(forged), forged.trace.table())


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
def test_bad_input_refused_by_the_relay_as_simulated(name: str, hop: Mapping[str, Any],
                                                     clients: list[Mapping[str, Any]]) -> None:
    topo = load(str(ROOT / "data" / "topologies" / f"{name}.yaml"))
    if hop:
        topo = topo.with_hop("lb1", **hop)
    with Lab(topo, proxies="python", progress="none") as lab:
        refusers = [_refused_alike(lab.connect(client=c)) for c in clients]
        # the terminating end refuses (lb1, or EMQX's ssl listener behind the pass-through,
        # where plain bytes carry no SNI for lb1's map to route by: lb1 refuses them)
        want = ["lb1" if name != "tls-passthrough-sni" or c.get("tls") is False
                else topo.broker.name for c in clients]
        assert refusers == want
        good = lab.connect(client={"cert_cn": "device-42"} if hop else None)
        assert good.connected and good.agree, (str(good), good.trace.table())


def test_haproxy_crt_ignore_err_through_the_relay() -> None:
    """The relay's real handshake accepts the other CA's certificate, the step lets it
    through (crt-ignore-err all) and writes the SSL TLV with verify 21 and CN evil."""
    topo = load(str(ROOT / "data" / "topologies" / "tls-haproxy-client-cert.yaml"))
    with Lab(topo.with_hop("lb1", crt_ignore_err=True), proxies="python",
             progress="none") as lab:
        probe = lab.connect(client={"cert_cn": "evil", "cert_ca": "other-ca"})
        assert probe.connected and probe.agree and probe.username == "evil", str(probe)
        assert probe.record is not None and probe.record.pp2_ssl is not None
        assert (probe.record.pp2_ssl.verify, probe.record.pp2_ssl.cn) == (21, "evil")


@pytest.mark.parametrize("name", ["tcp-single-tier", "ws-single-tier",
                                  "haproxy-tcp-send-proxy-v2", "haproxy-ws-set-header"])
def test_a_client_hello_to_a_plain_relay(name: str) -> None:
    """TLS where nobody terminates it: the relay (or EMQX behind it) refuses the ClientHello
    as the step says, at once (an http hop does not wait for a request head)."""
    with Lab(name, proxies="python", progress="none") as lab:
        probe = lab.connect(client={"tls": True, "sni": "mqtt.example.com"}, timeout=2.0)
        _refused_alike(probe)
        assert "timed out" not in (probe.refused or "")
        assert lab.connect().agree


def test_proxy_ssl_through_the_relay() -> None:
    """``proxy_ssl on``: the relay writes the PROXY line in clear, then opens TLS to the
    broker's ssl listener (no SNI), which terminates it."""
    topo = load(str(ROOT / "data" / "topologies" / "tls-nginx-terminates.yaml"))
    topo = topo.with_hop("lb1", proxy_ssl=True).with_broker(listener="ssl", port=8883)
    with Lab(topo, proxies="python", progress="none") as lab:
        probe = lab.connect()
        assert probe.connected and probe.agree and probe.peername == probe.client, str(probe)
        assert probe.record is not None and probe.record.tls is not None
        assert probe.record.tls.server_name is None
        pki = lab.pki
        assert pki is not None and pki.directory.exists()
    assert not pki.directory.exists()  # the keys go with the lab


def test_a_truncated_handshake_is_refused_clearly() -> None:
    """paho completes every handshake: a client with tls_truncate is not run live."""
    from realip.errors import ConfigurationError

    with Lab("tls-nginx-terminates", proxies="python", progress="none") as lab:
        with pytest.raises(ConfigurationError, match="tls_truncate"):
            lab.connect(client={"tls_truncate": 60})
        assert lab.connect().agree
