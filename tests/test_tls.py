"""The TLS layer of the simulator (issue 12): the ClientHello realip builds is one a real TLS
stack answers, ssl_preread's reading of it, record framing, and what each program does with
TLS — nginx ``listen … ssl`` / ``ssl_verify_client`` / ``ssl_preread``, HAProxy ``bind … ssl``
and the SSL TLV it writes, EMQX's ssl/wss listeners and the identity it takes from a
certificate or from the PROXY header, per version."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from typing import Any

import pytest

from realip import ScenarioError
from realip.programs import Broker, Inbound, NginxStream, step
from realip.proxy_protocol import SSLClient, decode, forged_header, ssl_tlv
from realip.render import needs_tls
from realip.tls import (
    Certificate,
    ContentType,
    TlsSession,
    client_hello,
    looks_like_tls,
    read_client_hello,
    records,
)
from realip.topology import from_dict, load_scenario, scenarios, simulate
from realip.wire import endpoint, mqtt_connect

CONNECT = mqtt_connect("device-42")


def _topo(client: dict[str, Any], hops: list[dict[str, Any]], broker: dict[str, Any]) -> Any:
    return from_dict({"name": "t", "client": {"addr": "203.0.113.7", "port": 50000, **client},
                      "hops": hops, "broker": {"addr": "10.0.0.5", **broker}})


# ==============================================================================================
# The ClientHello and the records


@pytest.mark.parametrize("version", ["TLSv1.3", "TLSv1.2"])
def test_a_real_tls_server_answers_the_client_hello(version: str) -> None:
    """Python's OpenSSL, as a server on loopback, reads the SNI of realip's ClientHello and
    answers with a ServerHello: the bytes on a simulated link are a real handshake's."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("mqtt.example.com").configure_cert(ctx)
    seen: dict[str, Any] = {}

    def sni(_sock: Any, name: str, _ctx: Any) -> None:
        seen["sni"] = name

    ctx.sni_callback = sni
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(5)

    def serve() -> None:
        conn, _ = srv.accept()
        tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError):
            pass  # the client never finishes: only the server's first flight matters
        finally:
            tls.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(srv.getsockname(), timeout=5) as c:
            c.sendall(client_hello("mqtt.example.com", ("mqtt",), version=version))
            head = c.recv(6)
    finally:
        thread.join(5)
        srv.close()
    assert head[0] == ContentType.HANDSHAKE and head[5] == 2  # a ServerHello
    assert seen["sni"] == "mqtt.example.com"


def test_client_hello_is_read_as_ssl_preread_reads_it() -> None:
    hello = client_hello("mqtt.example.com", ("mqtt", "x-other"))
    info = read_client_hello(hello)
    assert info and info is not True
    assert (info.server_name, info.alpn, info.version, info.size) == (
        "mqtt.example.com", ("mqtt", "x-other"), "TLSv1.3", len(hello))
    old = read_client_hello(client_hello(None, version="TLSv1.2"))
    assert old and old is not True and (old.server_name, old.version) == ("", "TLSv1.2")
    # every proper prefix asks for more; bytes that are not a handshake are refused at once
    assert all(read_client_hello(hello[:n]) is None for n in range(len(hello)))
    assert read_client_hello(CONNECT) is False
    assert read_client_hello(b"PROXY TCP4 ") is False
    assert not looks_like_tls(b"GET / HTTP/1.1\r\n")
    # one ClientHello split over two records (a fragmenting client) reads the same
    body = hello[5:]
    split = (b"\x16\x03\x01" + (40).to_bytes(2, "big") + body[:40]
             + b"\x16\x03\x01" + (len(body) - 40).to_bytes(2, "big") + body[40:])
    again = read_client_hello(split)
    assert again and again is not True and again.server_name == "mqtt.example.com"


def test_client_hello_is_deterministic_per_client() -> None:
    assert client_hello("a.example", seed="c1") == client_hello("a.example", seed="c1")
    assert client_hello("a.example", seed="c1") != client_hello("a.example", seed="c2")
    with pytest.raises(ValueError, match=re.escape("TLSv1.3 or TLSv1.2")):
        client_hello("a", version="SSLv3")


def test_records_have_their_real_framing() -> None:
    session = TlsSession(CONNECT, "mqtt", "mqtt.example.com", cert=Certificate("device-42"))
    recs = records(session, "emqx")
    assert [r.content_type for r in recs] == [ContentType.HANDSHAKE,
                                              ContentType.CHANGE_CIPHER_SPEC,
                                              ContentType.APPLICATION_DATA,
                                              ContentType.APPLICATION_DATA]
    assert recs[0].header + recs[0].clear == session.hello  # type: ignore[operator]
    # TLS 1.3: plaintext + 1 (inner content type) + 16 (AEAD tag), never the ciphertext
    assert recs[-1].length == len(CONNECT) + 17 and recs[-1].clear is None
    assert recs[-1].header == b"\x17\x03\x03" + (len(CONNECT) + 17).to_bytes(2, "big")
    assert "readable only by emqx" in str(recs[-1])
    tls12 = records(TlsSession(CONNECT, version="TLSv1.2"))
    assert tls12[-1].length == len(CONNECT) + 24  # explicit nonce + tag (AES-GCM)


# ==============================================================================================
# nginx


def _ngx(**settings: Any) -> NginxStream:
    return NginxStream(name="lb", addr="10.0.0.2", port=8883, **settings)


def _in(session: TlsSession | None, data: bytes = b"") -> Inbound:
    return Inbound(data, endpoint("203.0.113.7", 50000), endpoint("10.0.0.2", 8883), "client",
                   endpoint("10.0.0.5", 1883), "device-42", session)


@pytest.mark.parametrize(("mode", "cert", "ok", "log"), [
    ("off", None, True, None),
    ("on", Certificate("device-42"), True, None),
    ("on", None, False, "client sent no required SSL certificate while SSL handshaking"),
    ("on", Certificate("evil", "other-ca"), False,
     "client SSL certificate verify error: (21:unable to verify the first certificate)"),
    ("optional", None, True, None),
    ("optional", Certificate("evil", "other-ca"), False, "client SSL certificate verify error"),
    ("optional_no_ca", Certificate("evil", "other-ca"), True, None),
])
def test_nginx_stream_terminates_and_checks_client_certificates(
        mode: str, cert: Certificate | None, ok: bool, log: str | None) -> None:
    node = _ngx(listen_ssl=True, ssl_verify_client=mode, proxy_protocol="on")
    out = step(node, _in(TlsSession(CONNECT, "mqtt", "mqtt.example.com", cert=cert)))
    assert out.ok is ok
    if not ok:
        assert log is not None and out.view.log is not None and out.view.log.startswith(log)
        return
    assert out.view.tls == "terminated" and out.tls is None
    # the upstream gets the PROXY line, then the decrypted CONNECT, in clear
    assert out.data == b"PROXY TCP4 203.0.113.7 10.0.0.2 50000 8883\r\n" + CONNECT
    v = out.view.variables
    # nginx 1.22.1's default ssl_protocols stop at TLSv1.2 (TLSv1.3 joined them in 1.23.4)
    assert v["ssl_protocol"] == "TLSv1.2" and v["ssl_server_name"] == "mqtt.example.com"
    assert v["ssl_cipher"] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    if mode == "off" or cert is None:
        assert v["ssl_client_verify"] == "NONE" and v["ssl_client_s_dn"] == ""
    elif mode == "optional_no_ca":
        assert v["ssl_client_verify"] == "FAILED:unable to verify the first certificate"
    else:
        assert (v["ssl_client_s_dn"], v["ssl_client_verify"]) == ("CN=device-42", "SUCCESS")


@pytest.mark.parametrize(("settings", "offered", "got"), [
    ({}, "TLSv1.3", "TLSv1.2"),
    ({"version": "1.23.4"}, "TLSv1.3", "TLSv1.3"),
    ({"ssl_protocols": ("TLSv1.2", "TLSv1.3")}, "TLSv1.3", "TLSv1.3"),
    ({"ssl_protocols": ("TLSv1.3",)}, "TLSv1.2", None),
])
def test_nginx_ssl_protocols(settings: dict[str, Any], offered: str, got: str | None) -> None:
    out = step(_ngx(listen_ssl=True, **settings), _in(TlsSession(CONNECT, version=offered)))
    if got is None:
        assert not out.ok and "unsupported protocol" in (out.view.log or "")
    else:
        assert out.ok and out.view.variables["ssl_protocol"] == got


def test_nginx_ssl_listener_refuses_bytes_that_are_not_tls() -> None:
    node = _ngx(listen_ssl=True)
    for data, err in ((CONNECT, "wrong version number"), (b"GET / HTTP/1.1\r\n\r\n",
                                                           "http request"),
                      (b"PROXY TCP4 1.2.3.4 10.0.0.2 1 8883\r\n", "wrong version number")):
        out = step(node, _in(None, data))
        assert not out.ok and out.view.log is not None
        assert out.view.log.startswith("SSL_do_handshake() failed (SSL: error:")
        assert err in out.view.log and "while SSL handshaking" in out.view.log
    # a PROXY header in front of the ClientHello, to a listener without proxy_protocol
    out = step(node, _in(TlsSession(CONNECT), b"PROXY TCP4 1.2.3.4 10.0.0.2 1 8883\r\n"))
    assert not out.ok and "wrong version number" in (out.view.log or "")


def test_nginx_http_ssl_listener_answers_plain_http_with_400() -> None:
    t = _topo({"transport": "ws"}, [{"kind": "nginx-http", "name": "lb", "addr": "10.0.0.2",
                                      "port": 8084, "listen_ssl": "on"}],
              {"port": 8083, "listener": "ws"})
    trace = simulate(t)
    assert not trace.connected and trace.failure == (
        "lb: client sent plain HTTP request to HTTPS port while reading client request headers")


def test_nginx_http_ssl_listener_refuses_a_proxy_line_as_a_bad_request_line() -> None:
    """A PROXY line before the ClientHello to ``listen 8084 ssl`` (no proxy_protocol): nginx
    reads plain HTTP, and that request line does not parse — the real 1.22.1 logs "client
    sent invalid request while reading client request line", not the plain-HTTP 400."""
    t = _topo({"transport": "ws", "tls": True,
               "send_proxy": "PROXY TCP4 6.6.6.6 10.0.0.1 1111 8084\r\n"},
              [{"kind": "nginx-http", "name": "lb", "addr": "10.0.0.2", "port": 8084,
                "listen_ssl": "on"}], {"port": 8083, "listener": "ws"})
    trace = simulate(t)
    assert not trace.connected and trace.failure == (
        "lb: client sent invalid request while reading client request line")


def test_nginx_http_ssl_variables_reach_proxy_set_header() -> None:
    t = _topo({"transport": "ws", "tls": True, "cert_cn": "device-42"},
              [{"kind": "nginx-http", "name": "lb", "addr": "10.0.0.2", "port": 8084,
                "listen_ssl": "on", "ssl_verify_client": "on", "proxy_http_version": "1.1",
                "proxy_set_header": [["X-SSL-Client-DN", "$ssl_client_s_dn"],
                                     ["X-SSL-Verify", "$ssl_client_verify"]]}],
              {"port": 8083, "listener": "ws"})
    trace = simulate(t)
    assert ("X-SSL-Client-DN", "CN=device-42") in trace.links[1].http_headers()
    assert ("X-SSL-Verify", "SUCCESS") in trace.links[1].http_headers()
    assert trace.links[0].tls is not None and trace.links[0].tls_holder == "lb"
    assert trace.links[1].tls is None


def test_ssl_preread_reads_sni_and_passes_tls_unread() -> None:
    node = _ngx(ssl_preread=True, proxy_protocol="on")
    session = TlsSession(CONNECT, "mqtt", "mqtt.example.com", ("mqtt",))
    out = step(node, _in(session))
    assert out.ok and out.tls is session and out.view.tls == "preread"
    assert out.data == b"PROXY TCP4 203.0.113.7 10.0.0.2 50000 8883\r\n"
    v = out.view.variables
    assert (v["ssl_preread_server_name"], v["ssl_preread_protocol"],
            v["ssl_preread_alpn_protocols"]) == ("mqtt.example.com", "TLSv1.3", "mqtt")
    # plain bytes: preread finds no ClientHello, variables stay empty, the bytes pass on
    plain = step(node, _in(None, CONNECT))
    assert plain.ok and plain.view.variables["ssl_preread_server_name"] == ""
    assert plain.data.endswith(CONNECT)


def test_a_hop_without_tls_relays_it_or_takes_the_hello_for_a_header() -> None:
    session = TlsSession(CONNECT, "mqtt", "mqtt.example.com")
    relay = step(_ngx(proxy_protocol="on"), _in(session))
    assert relay.ok and relay.tls is session and relay.view.tls == "passed"
    assert relay.data == b"PROXY TCP4 203.0.113.7 10.0.0.2 50000 8883\r\n"
    # a listener expecting a PROXY header reads the ClientHello as one: nginx's broken header
    strict = step(_ngx(listen_proxy_protocol=True), _in(session))
    assert not strict.ok and "broken header" in (strict.view.log or "")
    # EMQX's plain tcp listener reads the ClientHello as MQTT
    emqx = step(Broker(addr="10.0.0.5", port=1883), _in(session))
    assert not emqx.view.accepted and emqx.view.log == "frame_error: malformed packet"


# ==============================================================================================
# HAProxy


def _hap(**hop: Any) -> dict[str, Any]:
    return {"kind": "haproxy", "name": "lb", "addr": "10.0.0.2", "port": 8883, "mode": "tcp",
            "bind_ssl": True, **hop}


def test_haproxy_ssl_tlv_has_haproxys_sub_tlv_order() -> None:
    t = _topo({"tls": True, "sni": "mqtt.example.com", "cert_cn": "device-42"},
              [_hap(verify="required", send_proxy="v2",
                    proxy_v2_options="ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority")],
              {"port": 1883, "proxy_protocol": True})
    trace = simulate(t)
    header = decode(trace.links[1].proxy_header or b"")
    assert header.authority == "mqtt.example.com"
    info = header.ssl
    assert info is not None
    assert info.client == SSLClient.SSL | SSLClient.CERT_CONN | SSLClient.CERT_SESS
    assert info.verify == 0 and info.verified
    assert [t.type for t in info.subtlvs] == [0x21, 0x22, 0x25, 0x24, 0x23]
    assert (info.version, info.cn, info.cipher) == ("TLSv1.3", "device-42",
                                                    "TLS_AES_256_GCM_SHA384")
    assert (info.get(0x25), info.get(0x24)) == (b"EC256", b"ecdsa-with-SHA256")
    assert trace.links[1].part("mqtt") == mqtt_connect("mqttx-client")


def test_haproxy_without_a_client_certificate_still_says_verify_0() -> None:
    t = _topo({"tls": True}, [_hap(verify="optional", send_proxy="v2-ssl-cn")],
              {"port": 1883, "proxy_protocol": True})
    info = decode(simulate(t).links[1].proxy_header or b"").ssl
    assert info is not None and info.client == SSLClient.SSL and info.verify == 0
    assert info.cn is None and not info.verified and info.version == "TLSv1.3"


def test_haproxy_refuses_handshakes_as_its_verify_setting_says() -> None:
    base = _topo({"tls": True, "cert_cn": "evil", "cert_ca": "other-ca"},
                 [_hap(verify="optional", send_proxy="v2-ssl-cn")],
                 {"port": 1883, "proxy_protocol": True, "peer_cert_as_username": "cn"})
    assert simulate(base).failure == "lb: SSL client certificate not trusted"
    assert simulate(base.with_client(cert_cn=None)).connected
    required = base.with_hop("lb", verify="required").with_client(cert_cn=None)
    assert simulate(required).failure == "lb: SSL handshake failure"
    assert simulate(base.with_client(tls=False)).failure == "lb: SSL handshake failure"
    # crt-ignore-err all: the failed certificate's CN goes on, verify 21 beside it — and EMQX,
    # which reads neither verify nor the flags, makes it the username
    ignored = simulate(base.with_hop("lb", crt_ignore_err=True))
    info = decode(ignored.links[1].proxy_header or b"").ssl
    assert info is not None and (info.verify, info.cn) == (21, "evil")
    assert ignored.username == "evil"


def test_haproxy_ssl_option_without_tls_writes_an_empty_ssl_tlv() -> None:
    t = _topo({}, [_hap(bind_ssl=False, send_proxy="v2", proxy_v2_options="ssl")],
              {"port": 1883, "proxy_protocol": True})
    header = decode(simulate(t).links[1].proxy_header or b"")
    assert header.tlv(0x20) == b"\x00\x00\x00\x00\x00"


# ==============================================================================================
# EMQX


def _emqx_ssl(version: str, **broker: Any) -> Any:
    return _topo({"tls": True, "sni": "mqtt.example.com", "cert_cn": "device-42",
                  "send_proxy": {"version": 2, "source": "6.6.6.6:1234",
                                 "destination": "10.0.0.5:8883", "ssl": {"cn": "admin"}}},
                 [{"kind": "nginx-stream", "name": "lb", "addr": "10.0.0.2", "port": 8883}],
                 {"port": 8883, "listener": "ssl", "proxy_protocol": True,
                  "verify": "verify_peer", "peer_cert_as_username": "cn", "version": version,
                  **broker})


@pytest.mark.parametrize(("version", "username"), [
    ("5.8.9", "admin"), ("e5.10.4", "admin"), ("6.2.0", "admin"),
    ("6.2.1", "device-42"), ("6.3.0", "device-42")])
def test_emqx_ssl_listener_behind_a_pass_through_by_version(version: str, username: str) -> None:
    """esockd ≤ 5.16.1 (EMQX ≤ 6.2.0, every e5.x) took the identity of a proxied ssl
    listener from the PROXY header; 5.16.2 (EMQX 6.2.1) reads the verified certificate."""
    trace = simulate(_emqx_ssl(version))
    assert trace.connected and trace.peername == "6.6.6.6:1234"
    assert trace.username == username
    assert trace.links[0].tls_holder == "emqx" and trace.views[0].tls == "passed"


def test_emqx_ssl_listener_verifies_client_certificates() -> None:
    t = _emqx_ssl("6.2.1", fail_if_no_peer_cert=True)
    assert "unknown_ca" in (simulate(t.with_client(cert_ca="other-ca")).failure or "")
    assert "certificate_required" in (simulate(t.with_client(cert_cn=None)).failure or "")
    no_tls = simulate(t.with_client(tls=False))
    assert not no_tls.connected and "not a TLS record" in (no_tls.failure or "")


def test_emqx_tcp_listener_takes_the_username_from_any_ssl_tlv() -> None:
    trace = simulate(load_scenario("tls-forged-cert-cn"))
    assert (trace.peername, trace.username) == ("203.0.113.77:4242", "admin")
    assert trace.expectation is not None and trace.expectation.ok
    # without peer_cert_as_username the TLV is read and ignored
    plain = simulate(load_scenario("tls-forged-cert-cn").with_broker(
        peer_cert_as_username="disabled"))
    assert plain.username is None
    # a v1 header carries no TLV: the certificate is [] and CN undefined
    v1 = simulate(load_scenario("tls-forged-cert-cn").with_client(
        send_proxy="PROXY TCP4 203.0.113.77 172.16.0.71 4242 1883\r\n"))
    assert v1.connected and v1.username is None


@pytest.mark.parametrize(("version", "refused"), [("6.2.0", False), ("6.2.1", True),
                                                  ("e5.10.3", False), ("e5.10.4", True)])
def test_emqx_refuses_control_characters_in_the_cn_from_6_2_1(version: str,
                                                              refused: bool) -> None:
    t = load_scenario("tls-forged-cert-cn").with_broker(version=version).with_client(
        send_proxy=forged_header(source="203.0.113.77:4242", destination="172.16.0.71:1883",
                                 ssl={"cn": "admin\nx"}))
    trace = simulate(t)
    assert trace.connected is not refused
    if refused:
        assert "peercert_field_invalid" in (trace.failure or "")


def test_emqx_wss_with_proxy_protocol_ignores_the_real_certificate() -> None:
    t = _topo({"transport": "ws", "tls": True, "cert_cn": "device-42"},
              [{"kind": "nginx-stream", "name": "lb", "addr": "10.0.0.2", "port": 8084,
                "proxy_protocol": "on"}],
              {"port": 8084, "listener": "wss", "proxy_protocol": True,
               "verify": "verify_peer", "peer_cert_as_username": "cn"})
    trace = simulate(t)
    assert trace.connected and trace.username is None  # a header without SSL TLV: nossl
    direct = simulate(_topo({"transport": "ws", "tls": True, "cert_cn": "device-42"}, [],
                            {"port": 8084, "listener": "wss", "verify": "verify_peer",
                             "peer_cert_as_username": "dn"}))
    assert direct.username == "CN=device-42"


# ==============================================================================================
# Scenarios, the scenario language, the lab


TLS_SCENARIOS = [n for n in scenarios() if n.startswith(("tls-", "wss-"))]


@pytest.mark.parametrize("name", TLS_SCENARIOS)
def test_tls_scenarios_meet_their_expectations(name: str) -> None:
    topo = load_scenario(name)
    assert needs_tls(topo) or topo.client.send_proxy is not None
    expectation = simulate(topo).expectation
    assert expectation is not None and expectation.ok, str(expectation)


def test_there_are_the_issues_topologies() -> None:
    assert {"tls-nginx-terminates", "wss-nginx-terminates", "tls-passthrough-sni",
            "tls-haproxy-client-cert", "tls-forged-cert-cn",
            "tls-passthrough-forged-cn"} <= set(TLS_SCENARIOS)


def test_trace_shows_the_tls_layer() -> None:
    trace = simulate(load_scenario("tls-passthrough-sni"))
    table = trace.table()
    assert "[tls] TLS record handshake" in table and "SNI mqtt.example.com" in table
    assert "readable only by emqx" in table and "username=device-42" in table
    doc = trace.to_dict()
    assert doc["links"][0]["tls"]["holder"] == "emqx"
    assert doc["links"][0]["tls"]["records"][0]["header"].startswith("160301")
    assert doc["hops"][-1]["username"] == "device-42"
    # the load balancer saw the SNI, never the client id
    lb = trace.view("lb1").variables
    assert lb["ssl_preread_server_name"] == "mqtt.example.com"
    assert all("mqttx-client" not in v for v in lb.values())


def test_wrong_expect_username_is_a_cross() -> None:
    topo = load_scenario("tls-haproxy-client-cert")
    from dataclasses import replace

    e = simulate(replace(topo, expect_username="someone-else")).expectation
    assert e is not None and not e.ok and "as username 'someone-else'" in str(e)


def test_scenario_language_for_tls_settings() -> None:
    with pytest.raises(ScenarioError, match="an SNI names a host, not an address"):
        _topo({"tls": True, "sni": "10.0.0.1"}, [], {})
    with pytest.raises(ScenarioError, match="not a DNS host name"):
        _topo({"tls": True, "sni": "bad_name!"}, [], {})
    with pytest.raises(ScenarioError, match=re.escape("off | on | optional | optional_no_ca")):
        _topo({}, [{"kind": "nginx-stream", "name": "lb", "addr": "10.0.0.2", "port": 1,
                    "ssl_verify_client": "maybe"}], {})
    with pytest.raises(ScenarioError, match="proxy_ssl on without listen"):
        _topo({}, [{"kind": "nginx-stream", "name": "lb", "addr": "10.0.0.2", "port": 1,
                    "proxy_ssl": "on"}], {})
    with pytest.raises(ScenarioError, match="a v1 header carries no TLVs"):
        _topo({"send_proxy": {"version": 1, "ssl": {"cn": "x"}}}, [], {})
    with pytest.raises(ScenarioError) as info:
        _topo({"send_proxy": {"version": 2, "ssl": {"common_name": "x"}}}, [], {})
    assert "client, verify, version, cn" in str(info.value)
    with pytest.raises(ScenarioError, match="RSA2048"):
        _topo({}, [_hap(ssl_key="DSA1024")], {})


def test_forged_header_and_ssl_tlv() -> None:
    raw = forged_header(2, "6.6.6.6:1234", "[2001:db8::5]:8883", authority="a.example",
                        ssl={"cn": "admin", "verify": 1, "client": 0x05})
    h = decode(raw)
    assert str(h.source) == "[::ffff:6.6.6.6]:1234"
    assert h.authority == "a.example"
    assert h.ssl is not None and (int(h.ssl.client), h.ssl.verify, h.ssl.cn) == (5, 1, "admin")
    tlv = ssl_tlv(0x07, 0, version="TLSv1.3", cn="c", order=("cn", "version", "cipher",
                                                             "sig_alg", "key_alg"))
    assert tlv.value[5] == 0x22
    with pytest.raises(ValueError, match="must name each"):
        ssl_tlv(order=("cn",))


@pytest.mark.parametrize(("scenario_name", "then", "log"), [
    # what the real programs did (tests/vectors/tls_behaviour.json, E4 cases)
    ("tls-nginx-terminates", "silence", "(no log line: closed when ssl_handshake_timeout"),
    ("tls-nginx-terminates", "close", "peer closed connection in SSL handshake"),
    ("tls-haproxy-client-cert", "silence", "Timeout during SSL handshake"),
    ("tls-haproxy-client-cert", "close", "Connection closed during SSL handshake"),
    ("tls-passthrough-sni", "silence", "(no log line: closed when preread_timeout expires"),
])
def test_a_truncated_handshake(scenario_name: str, then: str, log: str) -> None:
    topo = load_scenario(scenario_name).with_client(tls_truncate=60, tls_then=then)
    trace = simulate(topo)
    assert not trace.connected and (trace.failure or "").startswith(f"lb1: {log}")
    (record,) = trace.links[0].records  # only the part of the ClientHello that was sent
    assert "only 60 of its" in record.carries and len(trace.links) == 1


def test_a_truncated_handshake_reaches_emqx_through_a_relay() -> None:
    topo = load_scenario("tls-passthrough-sni").with_hop("lb1", ssl_preread=False)
    assert "ssl_upgrade_timeout" in (simulate(topo.with_client(tls_truncate=60)).failure or "")
    closed = simulate(topo.with_client(tls_truncate=60, tls_then="close"))
    assert "closed inside the TLS handshake" in (closed.failure or "")


def test_routing_by_sni() -> None:
    topo = load_scenario("tls-passthrough-sni")
    assert simulate(topo).connected
    away = simulate(topo.with_hop("lb1", ssl_preread_default="10.9.9.9:8883")
                    .with_client(sni="other.example.com"))
    assert away.failure == ("lb1: (routed by SNI other.example.com to 10.9.9.9:8883, not to "
                            "this chain's next hop 172.16.0.71:8883)")
    nowhere = simulate(topo.with_client(sni="other.example.com"))
    # the map's value is empty: the real nginx 1.22.1 logs that it has no host to connect to
    assert nowhere.failure == 'lb1: no host in upstream ""'
    # the lab writes routes out of the chain to a loopback port where nothing listens
    from realip.render import loopback_plan, topology_on

    mapped = topology_on(topo.with_hop("lb1", ssl_preread_default="10.9.9.9:8883"),
                         loopback_plan(topo))
    assert mapped.hops[0].ssl_preread_default == "127.0.0.9:9"
    assert mapped.hops[0].ssl_preread_routes[0][1].startswith("127.")
