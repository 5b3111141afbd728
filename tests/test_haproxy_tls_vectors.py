"""realip's codec against the PROXY v2 headers a real HAProxy 2.6 wrote while terminating TLS.

``tests/vectors/haproxy_2.6_tls.json`` was recorded by ``tests/real/_haproxy_tls.py`` (HAProxy
2.6.12, OpenSSL 3.0; ``tests/real/test_haproxy_tls_real.py`` re-runs part of it live).  Each
case's ``decoded`` block was read from the bytes by that recorder's own small decoder, not by
realip.  Here, without any program:

* every header decodes with :func:`realip.proxy_protocol.decode` (whole, with the client's
  plaintext behind it, and byte by byte through :class:`Reader`), and every field the codec
  exposes — addresses, ALPN, AUTHORITY, UNIQUE_ID, CRC32C, the SSL TLV's client flags, verify,
  version, CN, cipher, signature and key algorithms — equals the recorded one;
* :func:`encode` gives HAProxy's bytes back, and so does :func:`build` fed only the recorded
  *fields* (the SSL TLV made with :meth:`SSLInfo.make` in HAProxy's sub-TLV order);
* what the recordings showed about HAProxy is pinned (verify 0 without a certificate, CERT_SESS
  without CERT_CONN on a resumed session, the CN of a certificate that failed verification,
  which handshakes HAProxy refuses and how);
* the wss (``mode http``) requests match realip's ``option forwardfor`` / ``set-header`` models,
  and EMQX's esockd model takes the recorded CN from each header.
"""

from __future__ import annotations

import json
import re
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from realip import EncodeError
from realip.programs.haproxy.http import haproxy_forwardfor, haproxy_set_header
from realip.proxy_protocol import (
    TLV,
    Endpoint,
    Reader,
    SSLClient,
    SSLInfo,
    SSLSubType,
    TLVType,
    annotate,
    build,
    decode,
    encode,
)
from realip.receivers import accepts

DOC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "haproxy_2.6_tls.json").read_text(encoding="utf-8")
)
CASES: list[dict[str, Any]] = DOC["cases"]
TCP = [c for c in CASES if c["header_hex"]]
HTTP = [c for c in CASES if c["header_hex"] == ""]
REFUSED = [c for c in CASES if c["header_hex"] is None]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


def ep(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    return Endpoint(ip_address(host.strip("[]")), int(port))


def verify_mode(case: dict[str, Any]) -> str:
    """``optional-ignore`` …: the frontend's verify setting, from the case name."""
    name: str = case["name"]
    return name.split("/")[0].split("_")[1]


def server_options(case: dict[str, Any]) -> str:
    """What follows ``server s <addr>`` (``""`` for the http backend)."""
    words: list[str] = case["haproxy"]["server"].split(" ", 3)
    return words[3] if len(words) > 3 else ""


def test_the_vectors_are_haproxy_2_6_and_cover_the_matrix() -> None:
    assert DOC["haproxy_version"].startswith("HAProxy version 2.6.")
    assert DOC["openssl_running"].startswith("OpenSSL 3.")
    # every option set the brief asks for, every verify mode, each client certificate, both TLS
    servers = {server_options(c) for c in CASES}
    for opt in ("send-proxy-v2-ssl", "send-proxy-v2-ssl-cn", "proxy-v2-options ssl",
                "proxy-v2-options ssl,cert-cn", "proxy-v2-options ssl,ssl-cipher",
                "proxy-v2-options ssl,cert-sig", "proxy-v2-options ssl,cert-key",
                "proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key",
                "proxy-v2-options authority", "proxy-v2-options crc32c",
                "proxy-v2-options unique-id"):
        assert any(s.endswith(opt) for s in servers), opt
    assert {verify_mode(c) for c in CASES} == {"none", "optional", "required", "optional-ignore",
                                                "required-ignore", "optional-crt-ignore",
                                                "optional-ca-ignore"}
    assert {c["client"]["cert"] for c in TCP} == {"none", "good", "utf8", "badca", "badchain",
                                                  "nocn", "ctrl"}
    assert {c["client"]["tls"] for c in TCP} == {"TLSv1.2", "TLSv1.3"}
    assert len(TCP) > 150 and len(REFUSED) >= 30 and len(HTTP) >= 5


# -- the codec ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", TCP, ids=_ids(TCP))
def test_realip_decodes_each_field_as_recorded(case: dict[str, Any]) -> None:
    header = bytes.fromhex(case["header_hex"])
    after = bytes.fromhex(case["after_hex"])
    want = case["decoded"]
    h = decode(header + after)
    assert h is not None and h.size == len(header) and h.version == 2
    assert (header[12], header[13]) == (want["ver_cmd"], want["fam"])
    assert h.source == ep(want["source"]) and h.destination == ep(want["destination"])
    assert [t.type for t in h.tlvs] == want["tlv_types"]
    assert h.authority == want.get("authority")
    assert (h.alpn.hex() if h.alpn is not None else None) == want.get("alpn")
    assert (h.unique_id.hex() if h.unique_id is not None else None) == want.get("unique_id")
    crc = want["crc32c"]
    if crc is None:
        assert h.crc32c is None
    else:
        assert crc["valid"] and h.crc32c == int(crc["value"], 16)
    ssl = h.ssl
    if "ssl" not in want:
        assert ssl is None
        return
    ws = want["ssl"]
    assert ssl is not None
    assert int(ssl.client) == ws["client"] and ssl.verify == ws["verify"]
    assert [t.type for t in ssl.subtlvs] == ws["sub_types"]
    assert ssl.version == ws.get("version")
    assert ssl.cn == ws.get("cn")
    assert ssl.cipher == ws.get("cipher")
    assert ssl.sig_alg == ws.get("sig_alg")
    assert ssl.key_alg == ws.get("key_alg")
    assert ssl.verified == (bool(ws["client"] & 0x06) and ws["verify"] == 0)
    # python -m realip decode --json shows the same
    shown = h.to_dict()["ssl"]
    assert (shown["client"], shown["verify"]) == (ws["client"], ws["verify"])
    for key in ("version", "cn", "cipher", "sig_alg", "key_alg"):
        assert shown.get(key) == ws.get(key)
    # the plaintext behind the header is the client's own, untouched
    assert after == bytes.fromhex(case["client"]["payload_hex"])


@pytest.mark.parametrize("case", TCP, ids=_ids(TCP))
def test_reader_byte_by_byte(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["header_hex"] + case["after_hex"])
    reader = Reader()
    got = None
    for i in range(len(data)):
        got = reader.feed(data[i : i + 1])
        if got is not None:
            break
    assert got is not None and got == decode(data)
    assert got.size == len(case["header_hex"]) // 2


@pytest.mark.parametrize("case", TCP, ids=_ids(TCP))
def test_encode_and_build_give_haproxys_bytes(case: dict[str, Any]) -> None:
    header = bytes.fromhex(case["header_hex"])
    h = decode(header)
    assert h is not None
    assert encode(h) == header
    # build() from the recorded fields alone, TLVs in the order HAProxy wrote them
    want = case["decoded"]
    tlvs: list[TLV] = []
    for t in want["tlv_types"]:
        if t == TLVType.ALPN:
            tlvs.append(TLV(t, bytes.fromhex(want["alpn"])))
        elif t == TLVType.AUTHORITY:
            tlvs.append(TLV(t, want["authority"].encode()))
        elif t == TLVType.UNIQUE_ID:
            tlvs.append(TLV(t, bytes.fromhex(want["unique_id"])))
        elif t == TLVType.SSL:
            ws = want["ssl"]
            info = SSLInfo.make(ws["client"], ws["verify"], version=ws.get("version"),
                                cn=ws.get("cn"), cipher=ws.get("cipher"),
                                sig_alg=ws.get("sig_alg"), key_alg=ws.get("key_alg"))
            assert [s.type for s in info.subtlvs] == ws["sub_types"]
            assert info == h.ssl
            tlvs.append(info.tlv())
        else:
            assert t == TLVType.CRC32C and want["tlv_types"][0] == t  # HAProxy puts it first
    src, dst = ep(want["source"]), ep(want["destination"])
    built = build(src, dst, tlvs=tlvs, crc32c=TLVType.CRC32C in want["tlv_types"])
    assert built == header


# -- what HAProxy 2.6 does (docs/emqx-peer-cert-behind-a-proxy.md, "Observed with HAProxy 2.6.x")


def _ssl(case: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = case["decoded"]["ssl"]
    return out


SSL_CASES = [c for c in TCP if "ssl" in c["decoded"]]


def test_no_client_certificate_reads_verify_0_with_client_flags_ssl_only() -> None:
    none = [c for c in SSL_CASES if c["client"]["cert"] == "none"]
    assert none
    for c in none:
        assert (_ssl(c)["client"], _ssl(c)["verify"]) == (0x01, 0), c["name"]
        assert "cn" not in _ssl(c)


def test_verify_none_never_asks_for_the_certificate() -> None:
    cases = [c for c in SSL_CASES if verify_mode(c) == "none"]
    assert {c["client"]["cert"] for c in cases} == {"none", "good", "utf8", "badca"}
    for c in cases:
        assert _ssl(c)["client"] == 0x01 and "cn" not in _ssl(c), c["name"]


def test_a_full_handshake_with_a_certificate_sets_cert_conn_and_cert_sess() -> None:
    cases = [c for c in SSL_CASES if c["client"]["cert"] != "none"
             and verify_mode(c) != "none" and not c["client"]["resume"]]
    assert cases
    for c in cases:
        assert _ssl(c)["client"] == 0x07, c["name"]


def test_a_resumed_session_sets_cert_sess_without_cert_conn() -> None:
    resumed = [c for c in SSL_CASES if c["client"]["resume"]]
    assert {c["client"]["tls"] for c in resumed} == {"TLSv1.2", "TLSv1.3"}
    for c in resumed:
        assert c["outcome"]["session_reused"] is True
        want = 0x05 if c["client"]["cert"] != "none" else 0x01
        assert _ssl(c)["client"] == want, c["name"]
        if c["client"]["cert"] != "none":
            assert _ssl(c)["cn"] == "device-42" and _ssl(c)["verify"] == 0


def test_ignore_err_forwards_the_cn_of_a_certificate_that_failed() -> None:
    # badca (a leaf from an unknown CA) fails at depth 0: crt-ignore-err lets it through, verify 21;
    # badchain (the same leaf with its own root) fails at depth 1: ca-ignore-err, verify 19
    passed = {(verify_mode(c), c["client"]["cert"]) for c in SSL_CASES
              if c["client"]["cert"].startswith("bad") and verify_mode(c) != "none"}
    assert passed == {("optional-ignore", "badca"), ("required-ignore", "badca"),
                      ("optional-crt-ignore", "badca"), ("optional-ignore", "badchain"),
                      ("optional-ca-ignore", "badchain")}
    for c in SSL_CASES:
        cert = c["client"]["cert"]
        if not cert.startswith("bad") or verify_mode(c) == "none":
            continue
        assert _ssl(c)["client"] == 0x07
        assert _ssl(c)["verify"] == (21 if cert == "badca" else 19)
        if "cert-cn" in c["haproxy"]["server"] or "ssl-cn" in c["haproxy"]["server"]:
            assert _ssl(c)["cn"] == "device-42"


def test_refused_handshakes() -> None:
    # verify optional without ignore refuses a bad certificate as verify required does
    for c in REFUSED:
        mode, cert = verify_mode(c), c["client"]["cert"]
        assert (mode, cert) in {("optional", "badca"), ("required", "badca"),
                                ("required", "none"), ("required-ignore", "none"),
                                ("optional", "badchain"), ("optional-ca-ignore", "badca"),
                                ("optional-crt-ignore", "badchain")}, c["name"]
        o = c["outcome"]
        assert o["backend_connected"] is False
        if c["client"]["tls"] == "TLSv1.2":
            # TLS 1.2: the client's handshake itself fails with HAProxy's alert
            want = ("SSLError TLSV1_ALERT_UNKNOWN_CA" if cert != "none"
                    else "SSLError SSLV3_ALERT_HANDSHAKE_FAILURE")
            assert o["handshake"] == want
        else:
            # TLS 1.3: the client finishes first; the alert arrives on the first read
            assert o["handshake"] == "ok"
            want = ("SSLError TLSV1_ALERT_UNKNOWN_CA" if cert != "none"
                    else "SSLError TLSV13_ALERT_CERTIFICATE_REQUIRED")
            assert o["after_send"] == want
        (line,) = c["haproxy_log"]
        tail = {"badca": "SSL client certificate not trusted",
                "badchain": "SSL client CA chain cannot be verified",
                "none": "SSL handshake failure"}[cert]
        assert line.endswith(f"/1: {tail}")
    modes = {(verify_mode(c), c["client"]["cert"], c["client"]["tls"]) for c in REFUSED}
    assert ("optional", "badca", "TLSv1.3") in modes and ("required", "none", "TLSv1.2") in modes


def test_sub_tlv_values_by_server_key() -> None:
    for c in SSL_CASES:
        s, key = _ssl(c), c["haproxy"]["bind"].split(" crt ")[1].split()[0]
        if "key_alg" in s:
            assert s["key_alg"] == ("RSA2048" if key == "server-rsa.pem" else "EC256")
        if "sig_alg" in s:
            assert s["sig_alg"] == ("RSA-SHA256" if key == "server-rsa.pem"
                                    else "ecdsa-with-SHA256")
        if "cipher" in s:
            assert s["cipher"] == c["outcome"]["negotiated_cipher"]
        assert s["version"] == c["outcome"]["negotiated_version"] == c["client"]["tls"]


def test_alpn_is_sent_without_any_option() -> None:
    alpn = [c for c in TCP if c["client"]["alpn"]]
    assert alpn
    for c in alpn:
        assert c["decoded"]["alpn"] == b"mqtt".hex()
    plain = [c for c in alpn if c["haproxy"]["server"].endswith(" send-proxy-v2")]
    assert plain and all(c["decoded"]["tlv_types"] == [TLVType.ALPN] for c in plain)
    full = [c for c in alpn if "crc32c" in c["haproxy"]["server"]]
    assert full and all(c["decoded"]["tlv_types"] == [0x03, 0x01, 0x02, 0x05, 0x20] for c in full)


def test_emqx_esockd_model_takes_the_cn_whatever_verify_says() -> None:
    # issue 12's attack surface: esockd stores pp2_ssl_verify and never reads it
    for c in SSL_CASES:
        data = bytes.fromhex(c["header_hex"] + c["after_hex"])
        acc = accepts("emqx-tcp", data)
        assert acc.accepted and acc.source == ep(c["decoded"]["source"])
        got = dict(acc.variables)
        assert got["pp2_ssl_verify"] == ("success" if _ssl(c)["verify"] == 0 else "failed")
        cn = _ssl(c).get("cn")
        if cn is None:
            assert "pp2_ssl_cn" not in got
        elif cn.isascii() and cn.isprintable():
            assert got["pp2_ssl_cn"] == f'<<"{cn}">>'


# -- the wss (mode http) frontend -----------------------------------------------------------------


def _request_lines(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8").split("\r\n")
    return head[0], [(k, v.strip()) for k, v in (ln.split(":", 1) for ln in head[1:])]


@pytest.mark.parametrize("case", HTTP, ids=_ids(HTTP))
def test_wss_request_matches_realips_haproxy_models(case: dict[str, Any]) -> None:
    sent_line, sent = _request_lines(bytes.fromhex(case["client"]["payload_hex"]))
    got_line, got = _request_lines(bytes.fromhex(case["after_hex"]))
    assert got_line == sent_line
    # HAProxy's log-format encoding writes control characters as %XX (UTF-8 passes as it is)
    cn = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"%{ord(m.group()):02X}",
                case["client"]["cert_cn"] or "")
    verify = "21" if case["client"]["cert"] == "badca" else "0"
    # HAProxy runs the http-request rules, then adds option forwardfor's line
    model = haproxy_set_header(sent, "X-SSL-Client-CN", cn)
    model = haproxy_set_header(model, "X-SSL-Client-Verify", verify)
    model = haproxy_forwardfor(model, case["decoded"]["http_headers"][-1][1])
    assert model[-1] == ("X-Forwarded-For", "127.0.52.3")
    assert [(k.lower(), v) for k, v in model] == got  # names leave in lower case
    assert [[got_line, ""]] + [list(x) for x in got] == case["decoded"]["http_headers"]


# -- SSLInfo.make / value / tlv (the builder the comparison above uses) ---------------------------


def test_ssl_info_make_orders_and_serialises() -> None:
    h = SSLInfo.make(SSLClient.SSL | SSLClient.CERT_CONN | SSLClient.CERT_SESS, 21,
                     version="TLSv1.3", cn="Zoë", cipher="C", sig_alg="S", key_alg="K")
    assert [t.type for t in h.subtlvs] == [0x21, 0x22, 0x25, 0x24, 0x23]
    assert h.value == (b"\x07\x00\x00\x00\x15" + b"\x21\x00\x07TLSv1.3" + b"\x22\x00\x04Zo\xc3\xab"
                       + b"\x25\x00\x01K" + b"\x24\x00\x01S" + b"\x23\x00\x01C")
    assert h.tlv() == TLV(TLVType.SSL, h.value)
    n = SSLInfo.make(1, 1, version="TLSv1.2", cipher="C", key_alg="K", style="nginx")
    assert [t.type for t in n.subtlvs] == [SSLSubType.VERSION, SSLSubType.CIPHER,
                                           SSLSubType.KEY_ALG]
    assert SSLInfo.make(0).value == b"\x00\x00\x00\x00\x00"


@pytest.mark.parametrize("kwargs", [
    {"client": 256}, {"client": 1, "verify": -1}, {"client": 1, "verify": 1 << 32},
    {"client": 1, "cipher": "AES-é"}, {"client": 1, "style": "envoy"},
])
def test_ssl_info_make_refuses(kwargs: dict[str, Any]) -> None:
    with pytest.raises(EncodeError):
        SSLInfo.make(**kwargs)


def test_ssl_info_value_round_trips_every_recorded_tlv() -> None:
    for c in SSL_CASES:
        h = decode(bytes.fromhex(c["header_hex"]))
        assert h is not None and h.ssl is not None
        assert h.ssl.value == h.tlv(TLVType.SSL)


def test_annotate_explains_verify_with_the_cert_bits() -> None:
    # verify 0 without a certificate is HAProxy's default, not a verification: say so
    seen = set()
    for c in SSL_CASES:
        notes = {f.name: f.meaning for f in annotate(bytes.fromhex(c["header_hex"]))}
        s = _ssl(c)
        if not s["client"] & 0x06:
            want = f"verify {s['verify']}: no client certificate, so it says nothing"
        elif s["verify"] == 0:
            want = "verify 0: the client certificate was verified"
        else:
            want = f"verify {s['verify']}: the client certificate failed verification"
        assert notes["SSL verify"] == want
        seen.add(want.split(":")[1])
        assert notes.get("SSL CN") == s.get("cn")
    assert len(seen) == 3


def test_a_certificate_without_cn_and_one_with_control_characters() -> None:
    nocn = [c for c in SSL_CASES if c["client"]["cert"] == "nocn"]
    ctrl = [c for c in SSL_CASES if c["client"]["cert"] == "ctrl"]
    assert nocn and ctrl
    for c in nocn:  # no CN sub-TLV at all, the certificate still counts
        assert _ssl(c)["client"] == 0x07 and 0x22 not in _ssl(c)["sub_types"]
    for c in ctrl:  # the TLV carries CR LF NUL raw: only EMQX's own check stands in the way
        assert _ssl(c)["cn"] == "dev\r\nX-Injected: 1\x00z"
        raw = bytes.fromhex(c["header_hex"])
        assert b"\x22\x00\x14dev\r\nX-Injected: 1\x00z" in raw
    (http,) = [c for c in HTTP if c["client"]["cert"] == "ctrl"]
    assert ["x-ssl-client-cn", "dev%0D%0AX-Injected: 1%00z"] in http["decoded"]["http_headers"]
    assert b"\r\nX-Injected" not in bytes.fromhex(http["after_hex"])


def test_a_proxy_header_sent_inside_tls_stays_payload() -> None:
    # a client writes its own PROXY v2 header (CN admin) inside its TLS session: HAProxy relays it
    # as data behind its own header, and a receiver reading one header sees HAProxy's CN
    forged = [c for c in TCP if "forged-proxy" in c["name"]]
    assert {c["client"]["cert"] for c in forged} == {"none", "good"}
    for c in forged:
        data = bytes.fromhex(c["header_hex"] + c["after_hex"])
        h = decode(data)
        assert h is not None and h.size == len(c["header_hex"]) // 2
        assert h.ssl is not None and h.ssl.cn == c["client"]["cert_cn"]
        inner = decode(data[h.size :])
        assert inner is not None and inner.ssl is not None and inner.ssl.cn == "admin"
        got = dict(accepts("emqx-tcp", data).variables)
        assert got.get("pp2_ssl_cn") == (None if c["client"]["cert"] == "none"
                                         else '<<"device-42">>')
