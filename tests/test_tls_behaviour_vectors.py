"""The TLS recordings of real nginx 1.22.1 and HAProxy 2.6.12 (tests/vectors/tls_behaviour.json).

No program is needed here: the file is checked for shape, every upstream byte string is parsed
(the PROXY header with :func:`realip.proxy_protocol.decode`, the TLS ClientHello's SNI with the
small parser below), and the cases are checked against each other and against what the client
sent — pass-through forwards the client's bytes unchanged, terminating tiers forward the
plaintext, the logged variables name the SNI the ClientHello carried.  The rules a simulator of
the TLS layer must follow are spelled out as assertions (``test_rule_*``).  The recordings are
re-made live by tests/real/test_tls_behaviour_real.py.
"""

from __future__ import annotations

import json
import re
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from realip.proxy_protocol import decode
from realip.topology import load, simulate

VECTORS = Path(__file__).parent / "vectors" / "tls_behaviour.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text())
BY_NAME = {c["name"]: c for c in CASES}
CONNECT = bytes.fromhex("101500044d5154540402003c0009") + b"device-42"
CONNACK = bytes.fromhex("20020000")
KEYS = {"name", "program", "version", "section", "rule", "config", "client", "addresses",
        "upstream_peer", "upstream_hex", "upstream_plaintext_hex", "upstream_tls", "variables",
        "log", "client_saw", "other_upstreams_connected"}


# -- a tiny TLS ClientHello reader -------------------------------------------------------------


def client_hello_sni(data: bytes) -> tuple[str | None, int]:
    """The server_name in the TLS ClientHello at the start of *data* (None when absent) and the
    length of the record that carries it.  Raises ValueError when *data* is no ClientHello."""
    if len(data) < 5 or data[0] != 0x16 or data[1] != 3:
        raise ValueError(f"not a TLS handshake record: {data[:5].hex()}")
    rec_len = int.from_bytes(data[3:5], "big")
    body = data[5:5 + rec_len]
    if len(body) != rec_len or body[0] != 1:
        raise ValueError("not a complete ClientHello record")
    hs_len = int.from_bytes(body[1:4], "big")
    hello = body[4:4 + hs_len]
    at = 2 + 32  # legacy_version, random
    at += 1 + hello[at]  # session id
    at += 2 + int.from_bytes(hello[at:at + 2], "big")  # cipher suites
    at += 1 + hello[at]  # compression methods
    ext_end = at + 2 + int.from_bytes(hello[at:at + 2], "big")
    at += 2
    while at < ext_end:
        etype, elen = int.from_bytes(hello[at:at + 2], "big"), int.from_bytes(
            hello[at + 2:at + 4], "big")
        ext = hello[at + 4:at + 4 + elen]
        if etype == 0:  # server_name: list length, type 0 (host_name), name length, name
            if ext[2] != 0:
                raise ValueError("server_name of an unknown type")
            n = int.from_bytes(ext[3:5], "big")
            return ext[5:5 + n].decode("ascii"), 5 + rec_len
        at += 4 + elen
    return None, 5 + rec_len


def test_sni_parser_on_a_handmade_hello() -> None:
    name = b"mqtt.example.test"
    sni = (len(name) + 3).to_bytes(2, "big") + b"\x00" + len(name).to_bytes(2, "big") + name
    exts = b"\x00\x00" + len(sni).to_bytes(2, "big") + sni
    hello = (b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
             + len(exts).to_bytes(2, "big") + exts)
    hs = b"\x01" + len(hello).to_bytes(3, "big") + hello
    rec = b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs
    assert client_hello_sni(rec + b"tail") == ("mqtt.example.test", len(rec))
    with pytest.raises(ValueError):
        client_hello_sni(CONNECT)


# -- helpers -----------------------------------------------------------------------------------


def _hex(value: str | None) -> bytes:
    return bytes.fromhex(value) if value else b""


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _upstream(case: dict[str, Any]) -> tuple[Any, bytes]:
    """The upstream's PROXY header (decoded) and the bytes after it."""
    raw = _hex(case["upstream_hex"])
    h = decode(raw)
    assert h is not None, f"{case['name']}: incomplete PROXY header {raw[:60]!r}"
    return h, raw[h.size:]


def _ep(ep: Any) -> tuple[str, int]:
    return str(ep.host), int(ep.port)


def _sent_sni(case: dict[str, Any]) -> str | None:
    return client_hello_sni(_hex(case["client"]["client_hello_hex"]))[0]


def _cases(pred: Any) -> list[dict[str, Any]]:
    return [c for c in CASES if pred(c)]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


PASS_THROUGH = _cases(lambda c: c["section"] in "CD" and c["upstream_tls"] is not None
                      and c["client"]["client_hello_hex"])
TERMINATED = _cases(lambda c: c["upstream_hex"] is not None and c["upstream_tls"] is None
                    and c["section"] in "AE")
ALL_UPSTREAM = _cases(lambda c: c["upstream_hex"] is not None and c["section"] != "B")
NO_UPSTREAM = _cases(lambda c: c["upstream_hex"] is None)


# -- shape ---------------------------------------------------------------------------------------


def test_file_shape() -> None:
    assert isinstance(CASES, list) and len(CASES) >= 40
    assert len(BY_NAME) == len(CASES), "case names must be unique"
    for c in CASES:
        assert set(c) >= KEYS, (c["name"], KEYS - set(c))
        assert c["program"] in ("nginx", "haproxy")
        assert c["version"] == {"nginx": "1.22.1", "haproxy": "2.6.12"}[c["program"]]
        assert c["section"] in ("A", "B", "C", "D", "E") and c["name"].startswith(c["section"])
        assert isinstance(c["config"], str) and c["config"]
        assert isinstance(c["rule"], str) and len(c["rule"]) > 20
        assert not re.search(r"/tmp/|\.pem|\.key", c["config"]), "paths must be placeholders"
        assert isinstance(c["log"], list) and all(isinstance(ln, str) for ln in c["log"])
        for ln in c["log"]:
            assert not re.search(r"\d{4}/\d\d/\d\d \d\d:|#\d+: \*|\d\d/\w{3}/\d{4}:", ln), ln
        assert c["client"]["description"]
        for h in ("hex", "sent_hex", "client_hello_hex"):
            _hex(c["client"][h])  # valid hex or null
        _addr(c["addresses"]["client"])
        _addr(c["addresses"]["listener"])
        assert c["client_saw"]["close"] in ("FIN", "RST", "open", "client closed",
                                            "close_notify")


def test_every_section_covered_for_each_program() -> None:
    sections = {(c["program"], c["section"]) for c in CASES}
    assert sections >= {("nginx", s) for s in "ABCE"} | {("haproxy", s) for s in "DE"}
    for n in (1, 2, 3, 4, 5):
        for prog in ("ngx", "hap"):
            assert any(c["name"].startswith(f"E{n}_{prog}_") for c in CASES), (n, prog)


def test_addresses_are_the_briefs_loopback_range() -> None:
    for c in CASES:
        for key in ("client", "listener", "upstream"):
            if c["addresses"].get(key):
                host = _addr(c["addresses"][key])[0]
                assert host.startswith("127.0.53."), (c["name"], key, host)


def test_client_hello_is_what_the_client_sent_first() -> None:
    for c in CASES:
        hello, sent = _hex(c["client"]["client_hello_hex"]), _hex(c["client"]["sent_hex"])
        if not hello:
            continue
        prefix = _hex(c["client"]["hex"]) if c["name"].startswith(("E2_", "E3_")) else b""
        if c["name"].endswith("half_hello_then_silence") or c["name"].endswith(
                "half_hello_then_close"):
            assert sent == hello[: len(hello) // 2], c["name"]
            continue
        assert sent.startswith(prefix + hello), c["name"]
        client_hello_sni(hello)  # parses


# -- upstream bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ALL_UPSTREAM, ids=_ids(ALL_UPSTREAM))
def test_upstream_starts_with_a_proxy_header(case: dict[str, Any]) -> None:
    h, rest = _upstream(case)
    assert rest, "something follows the header"
    # nginx 1.22.1 writes only v1; HAProxy's send-proxy-v2 backends v2, send-proxy v1
    if case["program"] == "nginx":
        assert h.version == 1
    else:
        want = 2 if "send-proxy-v2" in _backend_of(case) else 1
        assert h.version == want


def _backend_of(case: dict[str, Any]) -> str:
    """The server line of the HAProxy backend whose server is the case's upstream."""
    backend = (case.get("tier2_variables") or case["variables"])["b"]
    m = re.search(rf"backend {backend}\n(?:    .*\n)*?    server (.*)", case["config"])
    assert m is not None, backend
    return m.group(1)


@pytest.mark.parametrize("case", PASS_THROUGH, ids=_ids(PASS_THROUGH))
def test_pass_through_forwards_the_client_bytes_unchanged(case: dict[str, Any]) -> None:
    h, rest = _upstream(case)
    sent = _hex(case["client"]["sent_hex"])
    hello = _hex(case["client"]["client_hello_hex"])
    if hello:
        # the client's ClientHello (and everything after it) arrives byte for byte
        assert rest == sent
        sni, length = client_hello_sni(rest)
        assert rest[:length] == hello[:length]
        assert sni == _sent_sni(case)
        assert case["upstream_tls"]["sni"] == sni
        assert case["upstream_tls"]["handshake"] == "ok"
        assert _hex(case["upstream_plaintext_hex"]) == CONNECT
        assert _hex(case["client_saw"]["plaintext_hex"]) == CONNACK
    # the header carries the real client and the address the client dialled
    assert _ep(h.source) == _addr(case["addresses"]["client"])
    assert _ep(h.destination) == _addr(case["addresses"]["listener"])


@pytest.mark.parametrize("case", TERMINATED, ids=_ids(TERMINATED))
def test_terminating_tiers_forward_the_plaintext(case: dict[str, Any]) -> None:
    _, rest = _upstream(case)
    assert rest == CONNECT
    assert _hex(case["client_saw"]["plaintext_hex"]) == CONNACK
    assert case["client_saw"]["handshake"] == "ok"


def test_rule_nginx_stream_ssl_proxy_protocol_header() -> None:
    """nginx stream ssl + proxy_protocol on: one v1 line, TCP4 client → listen address, then the
    decrypted bytes; the line goes out before any TLS towards the upstream."""
    for c in _cases(lambda c: c["section"] == "A" and c["upstream_hex"]):
        h, rest = _upstream(c)
        raw = _hex(c["upstream_hex"])
        assert raw.startswith(b"PROXY TCP4 127.0.53.10 127.0.53.1 ")
        assert _ep(h.source) == _addr(c["addresses"]["client"])
        assert _ep(h.destination) == _addr(c["addresses"]["listener"])
        if c["upstream_tls"] is None:
            assert rest == CONNECT


def test_rule_nginx_proxy_ssl_sends_the_line_in_clear_then_its_own_hello() -> None:
    c = BY_NAME["A_proxy_ssl_reencrypt"]
    h, rest = _upstream(c)
    assert h.version == 1
    sni, _ = client_hello_sni(rest)  # a fresh ClientHello from nginx, right after the line
    assert sni is None  # proxy_ssl_server_name is off by default
    assert rest != _hex(c["client"]["sent_hex"])[: len(rest)]
    assert c["upstream_tls"] == {"handshake": "ok", "sni": None}
    assert _hex(c["upstream_plaintext_hex"]) == CONNECT


def test_rule_nginx_ssl_variables() -> None:
    """$ssl_server_name is the client's SNI; $ssl_client_s_dn / _i_dn are RFC 2253
    (``CN=device-42``, ``CN=realip test CA,O=realip test``); $ssl_client_verify NONE /
    SUCCESS / FAILED:<reason>; empty variables are logged as ``-``."""
    for c in _cases(lambda c: c["section"] == "A" and c["client_saw"]["handshake"] == "ok"):
        v = c["variables"]
        assert v["ssl_server_name"] == (_sent_sni(c) or "-")
        assert v["ssl_protocol"] == c["client_saw"]["tls_version"]
        assert v["ssl_cipher"] == c["client_saw"]["cipher"]
        assert v["remote_addr"] == "127.0.53.10" and v["proxy_protocol_addr"] == "-"
        cert = "client cert CN=" in c["client"]["description"]
        if not cert:
            assert (v["ssl_client_s_dn"], v["ssl_client_verify"]) == ("-", "NONE")
        else:
            assert v["ssl_client_s_dn"] == "CN=device-42"
            rogue = "unknown CA" in c["client"]["description"]
            assert v["ssl_client_i_dn"] == ("CN=rogue CA,O=rogue" if rogue else
                                            "CN=realip test CA,O=realip test")
            assert v["ssl_client_verify"] == (
                "FAILED:unable to verify the first certificate" if rogue else "SUCCESS")
        # the session reached the upstream exactly when nginx's verdict let it
        refused = v["status"] != "200"
        assert refused == (c["upstream_hex"] is None)


def test_rule_nginx_verify_refusals() -> None:
    """on: no cert or a bad one → handshake completes (TLS 1.3), then nginx logs why and
    closes with close_notify; nothing reaches the upstream. optional: only a bad cert is
    refused. optional_no_ca: a cert from an unknown CA is let through as FAILED:…"""
    want = {
        "A_verify_on_no_cert": "client sent no required SSL certificate while SSL handshaking",
        "A_verify_on_rogue_cert": "client SSL certificate verify error: (21:unable to verify the "
                                  "first certificate) while SSL handshaking",
        "A_verify_optional_rogue_cert": "client SSL certificate verify error: (21:unable to "
                                        "verify the first certificate) while SSL handshaking",
    }
    for name, msg in want.items():
        c = BY_NAME[name]
        assert c["upstream_hex"] is None and c["variables"]["status"] == "500"
        assert any(f"[info] *1 {msg}" in ln for ln in c["log"]), c["log"]
        assert c["client_saw"]["close"] == "close_notify"
        assert c["client_saw"]["plaintext_hex"] == ""
    assert BY_NAME["A_verify_optional_no_cert"]["upstream_hex"] is not None
    assert BY_NAME["A_verify_optional_no_ca_rogue_cert"]["upstream_hex"] is not None


def test_rule_nginx_122_has_no_tls13_by_default() -> None:
    c = BY_NAME["A_stream_ssl_122_default_protocols_tls13_client"]
    assert "ssl_protocols TLSv1 TLSv1.1 TLSv1.2;" in c["config"]
    assert c["client_saw"]["handshake"] == "TLSV1_ALERT_PROTOCOL_VERSION"
    assert c["client_saw"]["raw_back_hex"] == "15030300020246"  # alert: fatal protocol_version
    assert any("unsupported protocol" in ln for ln in c["log"])


# -- B: wss ----------------------------------------------------------------------------------------


def _request(case: dict[str, Any]) -> list[bytes]:
    raw = _hex(case["upstream_hex"])
    assert raw.endswith(b"\r\n\r\n")
    return raw[:-4].split(b"\r\n")


def test_rule_wss_differs_from_plain_only_in_the_tls_header() -> None:
    plain = _request(BY_NAME["B_ws_upgrade_plain_http"])
    assert _request(BY_NAME["B_wss_upgrade_no_cert"]) == plain
    with_cert = _request(BY_NAME["B_wss_upgrade_with_cert"])
    assert [ln for ln in with_cert if not ln.startswith(b"X-SSL-Client-DN:")] == plain
    assert b"X-SSL-Client-DN: CN=device-42" in with_cert
    # the header goes where the configuration puts it: after X-Real-IP
    assert with_cert.index(b"X-SSL-Client-DN: CN=device-42") == plain.index(
        b"X-Real-IP: 127.0.53.10") + 1


def test_plain_ws_bytes_match_the_simulator(tmp_path: Path) -> None:
    """The project's nginx http model, given the brief's location, writes what the real nginx
    wrote over TLS without a client certificate (Host aside: the recording used ``upstream up``,
    the simulator proxies to an address, so ``$proxy_host`` differs)."""
    topo = tmp_path / "wss.yaml"
    topo.write_text("""name: wss-probe
title: the recording's location
description: the brief's B configuration
client: {addr: 127.0.53.10, port: 50000, transport: ws}
hops:
  - kind: nginx-http
    name: lb1
    addr: 127.0.53.1
    port: 8084
    source_port: 41316
    proxy_http_version: "1.1"
    proxy_set_header:
      - [Upgrade, $http_upgrade]
      - [Connection, upgrade]
      - [X-Forwarded-For, $proxy_add_x_forwarded_for]
      - [X-Real-IP, $remote_addr]
      - [X-SSL-Client-DN, $ssl_client_s_dn]
broker: {name: emqx, addr: 127.0.53.3, port: 8083, listener: ws}
""")
    sim = simulate(load(str(topo))).links[1].data
    sim_lines = [ln for ln in sim[:-4].split(b"\r\n") if not ln.startswith(b"Host:")]
    for name in ("B_wss_upgrade_no_cert", "B_ws_upgrade_plain_http"):
        real = [ln for ln in _request(BY_NAME[name]) if not ln.startswith(b"Host:")]
        assert real == sim_lines, name
        assert b"Host: up" in _request(BY_NAME[name])


# -- C / D: pass-through -------------------------------------------------------------------------


def test_rule_preread_variables() -> None:
    """$ssl_preread_server_name = the ClientHello's SNI ("" without one; "-" when the bytes are
    no ClientHello), $ssl_preread_protocol the highest version offered, ALPN joined by ','."""
    for c in _cases(lambda c: c["section"] == "C"):
        v = c["variables"]
        if c["client"]["client_hello_hex"]:
            assert v["ssl_preread_server_name"] == (_sent_sni(c) or "")
            assert v["ssl_preread_protocol"] == ("TLSv1.2" if "TLS1.2" in c["client"][
                "description"] else "TLSv1.3")
            want_up = "<up_tls>" if _sent_sni(c) == "mqtt.example.test" else "<up_tls_default>"
            assert v["upstream_addr"] == f"127.0.53.3:{want_up}"
        else:
            assert (v["ssl_preread_server_name"], v["ssl_preread_protocol"],
                    v["ssl_preread_alpn_protocols"]) == ("-", "-", "-")
    assert BY_NAME["C_preread_sni"]["variables"]["ssl_preread_alpn_protocols"] == "mqtt"
    assert BY_NAME["C_preread_other_sni"]["variables"]["ssl_preread_alpn_protocols"] == \
        "mqtt,x-other"


def test_rule_non_tls_bytes_pass_through_at_once() -> None:
    """nginx preread and HAProxy req_ssl_hello_type: MQTT in clear is not waited on — it goes
    to the default upstream at once, after the PROXY header, unchanged."""
    for name in ("C_preread_mqtt_in_clear", "D_haproxy_pass_mqtt_in_clear"):
        c = BY_NAME[name]
        h, rest = _upstream(c)
        assert rest == CONNECT
        assert _ep(h.source) == _addr(c["addresses"]["client"])
        assert c["upstream_tls"]["handshake"] == "WRONG_VERSION_NUMBER"
    assert BY_NAME["D_haproxy_pass_mqtt_in_clear"]["variables"]["b"] == "be_tls_default"


def test_rule_split_hello_is_waited_for() -> None:
    for name in ("C_preread_split_hello", "D_haproxy_pass_split_hello",
                 "C_preread_split_in_record_header", "D_haproxy_pass_split_in_record_header"):
        c = BY_NAME[name]
        assert c["client_saw"]["after_s"] >= 0.3
        assert c["upstream_tls"]["sni"] == "mqtt.example.test"
        if c["program"] == "nginx":
            assert c["variables"]["upstream_addr"].endswith("<up_tls>")
        else:
            assert c["variables"]["b"] == "be_tls"


def test_rule_haproxy_pass_through_v2() -> None:
    """send-proxy-v2: a 28-byte INET header (no TLVs), client → frontend address, then the
    client's bytes; the SNI routes; req_ssl_ver logs 0x0303 (the record layer's 3.3)."""
    for c in _cases(lambda c: c["section"] == "D" and c["client"]["client_hello_hex"]):
        h, _ = _upstream(c)
        assert (h.version, h.family.name, h.size, h.tlvs) == (2, "INET", 28, ())
        assert c["variables"]["var(sess.ver)"] == str(0x030003)
        want = "be_tls" if _sent_sni(c) == "mqtt.example.test" else "be_tls_default"
        assert c["variables"]["b"] == want
        assert c["variables"]["var(sess.sni)"] == (_sent_sni(c) or "-")


# -- E: bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", NO_UPSTREAM, ids=_ids(NO_UPSTREAM))
def test_refused_cases_reach_no_upstream(case: dict[str, Any]) -> None:
    assert case["upstream_peer"] is None and case["upstream_plaintext_hex"] is None
    assert case["other_upstreams_connected"] == 0
    assert case["log"] or case["program"] == "haproxy" or "silence" in case["name"]


def test_rule_e1_hello_to_proxy_listener() -> None:
    ngx, hap = BY_NAME["E1_ngx_client_hello_to_proxy_listener"], BY_NAME[
        "E1_hap_client_hello_to_proxy_listener"]
    # nginx 1.22.1 quotes the first 107 bytes it read (the ClientHello, binary and all)
    assert any('broken header: "<client bytes 0..107>" while reading PROXY protocol' in ln
               for ln in ngx["log"])
    assert len(_hex(ngx["client"]["sent_hex"])) > 107
    assert ngx["variables"]["status"] == "400"
    assert hap["log"] == ["127.0.53.10:<client> [date] hap_pp_plain/pp: Received something "
                          "which does not look like a PROXY protocol header"]
    for c in (ngx, hap):
        assert c["client_saw"]["close"] == "RST"  # closed with the hello unread
        assert c["client_saw"]["raw_back_hex"] == ""


def test_rule_e2_header_to_tls_listener() -> None:
    for c in _cases(lambda c: c["name"].startswith("E2_")):
        assert c["client_saw"]["handshake"] == "EOF during the handshake"
        assert c["client_saw"]["raw_back_hex"] == "" and c["client_saw"]["close"] == "FIN"
        if c["program"] == "nginx":
            assert any("wrong version number) while SSL handshaking" in ln for ln in c["log"])
            v = c["variables"]
            assert (v["status"], v["ssl_protocol"], v["ssl_cipher"]) == ("500", "TLSv1.3",
                                                                         "(NONE)")
        else:
            assert c["log"][-1].endswith("hap_ssl/ssl: SSL handshake failure")


def test_rule_e3_header_then_tls() -> None:
    """``ssl proxy_protocol`` / ``ssl crt … accept-proxy``: the header is read in clear, then
    TLS; nginx logs $proxy_protocol_addr but re-emits its TCP peer unless set_real_ip_from
    covers it; HAProxy relays the header's source *and* destination."""
    forged = ("203.0.113.7", 5555)
    for prog in ("ngx", "hap"):
        for v in ("v1", "v2"):
            c = BY_NAME[f"E3_{prog}_proxy_{v}_then_tls_to_ssl_pp"]
            h, rest = _upstream(c)
            assert rest == CONNECT
            if prog == "ngx":
                assert c["variables"]["proxy_protocol_addr"] == forged[0]
                assert _ep(h.source) == _addr(c["addresses"]["client"])
                assert _ep(h.destination) == _addr(c["addresses"]["listener"])
            else:
                assert c["variables"]["ci"] == forged[0]
                assert (_ep(h.source), _ep(h.destination)) == (forged, ("127.0.53.1", 8883))
    c = BY_NAME["E3_ngx_proxy_v1_then_tls_to_ssl_pp_realip"]
    h, _ = _upstream(c)
    assert _ep(h.source) == forged and c["variables"]["remote_addr"] == forged[0]
    for prog in ("ngx", "hap"):
        c = BY_NAME[f"E3_{prog}_passthrough_chain"]
        h, rest = _upstream(c)
        assert rest == CONNECT
        assert str(h.source.host) == "127.0.53.10"
        assert h.source.port == _addr(c["addresses"]["client"])[1]
        t2 = c["tier2_variables"]
        assert t2 is not None
        if prog == "ngx":
            assert (t2["proxy_protocol_addr"], t2["remote_addr"]) == ("127.0.53.10",) * 2
        else:
            assert t2["ci"] == "127.0.53.10"
            assert t2["ssl_fc_sni"] == "mqtt.example.test"


def test_rule_e4_truncated_handshake() -> None:
    """Half a ClientHello: silence → closed (FIN) after the handshake timeout (nginx
    ssl_handshake_timeout / preread_timeout, HAProxy timeout client: 1 s here); close →
    logged at once."""
    for name in ("E4_ngx_half_hello_then_silence", "E4_hap_half_hello_then_silence",
                 "E4_ngx_preread_half_hello_then_silence", "E4_hap_pass_half_hello_then_silence"):
        saw = BY_NAME[name]["client_saw"]
        assert saw["close"] == "FIN" and 0.9 <= saw["after_s"] <= 1.5, (name, saw)
    assert BY_NAME["E4_hap_half_hello_then_silence"]["log"][-1].endswith(
        "hap_ssl/ssl: Timeout during SSL handshake")
    assert BY_NAME["E4_hap_half_hello_then_close"]["log"][-1].endswith(
        "hap_ssl/ssl: Connection closed during SSL handshake")
    assert any("peer closed connection in SSL handshake while SSL handshaking" in ln
               for ln in BY_NAME["E4_ngx_half_hello_then_close"]["log"])


def test_rule_e5_mqtt_to_tls_listener() -> None:
    for prog in ("ngx", "hap"):
        c = BY_NAME[f"E5_{prog}_mqtt_connect_to_tls_listener"]
        assert _hex(c["client"]["sent_hex"]) == CONNECT
        assert c["client_saw"]["bytes_back_hex"] == "" and c["client_saw"]["close"] == "FIN"
        assert c["client_saw"]["after_s"] < 0.5


def test_proxy_v2_prefix_constant_decodes() -> None:
    c = BY_NAME["E2_ngx_proxy_v2_to_tls_listener"]
    h = decode(_hex(c["client"]["hex"]))
    assert h is not None
    assert (_ep(h.source), _ep(h.destination)) == (("203.0.113.7", 5555), ("127.0.53.1", 8883))
    assert ip_address("203.0.113.7") == h.source.host
