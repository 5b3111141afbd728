"""The simulator's HAProxy TLS model against what the real HAProxy 2.6 sent
(``tests/vectors/haproxy_2.6_tls.json``, recorded by ``tests/real/_haproxy_tls.py``): for
every recorded ``mode tcp`` case, the same configuration and client in the simulator give the
same decision (the handshake refused with the same log message, or passed) and, when passed,
the same PROXY v2 header field by field — TLV types and order, the SSL TLV's client flags,
verify, sub-TLV order and values — and the same plaintext behind it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from realip.programs import HAProxy, Inbound, step
from realip.proxy_protocol import decode
from realip.tls import Certificate, TlsSession
from realip.wire import endpoint

VECTORS = json.loads((Path(__file__).parent / "vectors" / "haproxy_2.6_tls.json").read_text())

#: the recorder's client certificates, as the simulator names them (CA by label)
CERTS: dict[str, tuple[str, bool] | None] = {
    "none": None, "good": ("clients-ca", False), "utf8": ("clients-ca", False),
    "nocn": ("clients-ca", False), "ctrl": ("clients-ca", False),
    "badca": ("other-ca", False), "badchain": ("other-ca", True)}


def _cases() -> list[dict[str, Any]]:
    out = []
    for case in VECTORS["cases"]:
        if case["haproxy"]["frontend"][0] != "mode tcp" or case["client"]["resume"]:
            continue  # http frontends: tests/test_haproxy_tls_vectors.py; no resumption model
        if case["client"]["cert"] == "nocn":
            continue  # a certificate without a CN: the simulator's certificates always have one
        out.append(case)
    return out


CASES = _cases()


def _hop(case: dict[str, Any]) -> HAProxy:
    bind = case["haproxy"]["bind"]
    server = case["haproxy"]["server"]
    words = bind.split()
    verify = words[words.index("verify") + 1] if "verify" in words else "none"
    key = "RSA2048" if "server-rsa.pem" in bind else "EC256"
    send = "off"
    options: tuple[str, ...] = ()
    m = re.search(r"(send-proxy-v2(?:-ssl(?:-cn)?)?)", server)
    if m:
        send = {"send-proxy-v2": "v2", "send-proxy-v2-ssl": "v2-ssl",
                "send-proxy-v2-ssl-cn": "v2-ssl-cn"}[m.group(1)]
    m = re.search(r"proxy-v2-options (\S+)", server)
    if m:
        options = tuple(m.group(1).split(","))
    alpn = tuple(words[words.index("alpn") + 1].split(",")) if "alpn" in words else ()
    return HAProxy(name="lb", addr="127.0.52.1", port=8883, bind_ssl=True, verify=verify,
                   alpn=alpn,
                   ssl_key=key, ca_file="clients-ca", send_proxy=send, proxy_v2_options=options,
                   crt_ignore_err="crt-ignore-err" in words,
                   ca_ignore_err="ca-ignore-err" in words)


def _session(case: dict[str, Any]) -> TlsSession:
    c = case["client"]
    found = CERTS[c["cert"]]
    cert = None
    if found is not None:
        assert c["cert_cn"] is not None
        cert = Certificate(c["cert_cn"], found[0], found[1])
    alpn = tuple(c["alpn"]) if c["alpn"] else ()
    return TlsSession(bytes.fromhex(c["payload_hex"]), "mqtt", c["sni"], alpn, c["tls"], cert)


def _run(case: dict[str, Any]) -> Any:
    decoded = case.get("decoded") or {}
    src = decoded.get("source", "127.0.52.3:40000")
    host, port = src.rsplit(":", 1)
    return step(_hop(case), Inbound(b"", endpoint(host, int(port)),
                                    endpoint("127.0.52.1", 8883), "client",
                                    endpoint("127.0.52.2", 1883), "dev42", _session(case)))


def test_the_vectors_cover_the_issue() -> None:
    kinds = {c["client"]["cert"] for c in CASES}
    assert {"none", "good", "badca", "badchain", "utf8", "ctrl"} <= kinds
    assert sum(1 for c in CASES if c["header_hex"]) >= 150
    assert any(not c["header_hex"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_simulated_haproxy_sends_what_the_real_one_sent(case: dict[str, Any]) -> None:
    out = _run(case)
    if not case["header_hex"]:
        # refused: HAProxy never connected to the backend; the same connection-error message
        assert not out.ok, out.view.decisions
        logged = [re.sub(r"^.*?: ", "", line.split("] ", 1)[1]) for line in case["haproxy_log"]]
        assert out.view.log in logged
        return
    assert out.ok, (out.view.log, out.view.decisions)
    real = decode(bytes.fromhex(case["header_hex"]), verify_crc32c=False)
    sim = decode(out.parts[0][1], verify_crc32c=False)
    assert [t.type for t in sim.tlvs] == [t.type for t in real.tlvs]
    assert (sim.source, sim.destination.host) == (real.source, real.destination.host)
    for a, b in zip(sim.tlvs, real.tlvs, strict=True):
        if a.type in (0x03, 0x05):  # CRC32C over varying ports, unique-id with a timestamp
            continue
        if a.type == 0x20:
            sa, ra = sim.ssl, real.ssl
            assert sa is not None and ra is not None
            assert (int(sa.client), sa.verify) == (int(ra.client), ra.verify)
            assert [(t.type, t.value) for t in sa.subtlvs] == \
                [(t.type, t.value) for t in ra.subtlvs]
        else:
            assert a.value == b.value, hex(a.type)
    # what follows HAProxy's header is the client's plaintext, unchanged (a PROXY header the
    # client forged inside TLS included: it is only payload here)
    assert b"".join(p for _, p in out.parts[1:]) == bytes.fromhex(case["after_hex"])
