"""The simulator's nginx TLS model against what the real nginx 1.22.1 did
(``tests/vectors/tls_behaviour.json``, recorded by ``tests/real/_tls_record.py``).

For every recorded nginx stream case the same configuration and client in the simulator give
the same decision — the same refusal message (nginx's error-log text without its ``*N`` and
``client: …, server: …`` parts), or the same bytes upstream and the same ``$ssl_*``
variables — and realip's ClientHello reader, fed the real client's ClientHello, gives the
``$ssl_preread_*`` values nginx logged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from realip.programs import Inbound, NginxStream, step
from realip.proxy_protocol import decode
from realip.tls import Certificate, TlsSession, read_client_hello
from realip.wire import endpoint

VECTORS = json.loads((Path(__file__).parent / "vectors" / "tls_behaviour.json").read_text())
NGINX = [c for c in VECTORS if c["program"] == "nginx"]
# cases the simulator does not model: a TLS-1.3-only client (realip's clients offer 1.2 too),
# partial handshakes (a TlsSession is a whole connection), http servers (B, checked below)
SKIP = re.compile(r"(tls13_client|half_hello|^B_|passthrough_chain)")


def _server(case: dict[str, Any]) -> str:
    return case["config"].split("server {")[-1]


def _hop(case: dict[str, Any]) -> NginxStream:
    text = case["config"]
    server = _server(case)
    listen = re.search(r"listen \S+((?: \w+)*);", server)
    assert listen is not None
    flags = listen.group(1).split()
    verify = re.search(r"ssl_verify_client (\S+);", server)
    protocols = re.search(r"ssl_protocols ([^;]+);", server) or \
        re.search(r"^ssl_protocols ([^;]+);", text, re.M)
    realip = re.findall(r"set_real_ip_from (\S+);", server)
    host = case["addresses"]["listener"].rsplit(":", 1)[0]
    return NginxStream(
        name="ngx", addr=host, port=int(case["addresses"]["listener"].rsplit(":", 1)[1]),
        listen_ssl="ssl" in flags, listen_proxy_protocol="proxy_protocol" in flags,
        ssl_verify_client=verify.group(1) if verify else "off",
        ssl_client_certificate="clients-ca",
        ssl_protocols=tuple(protocols.group(1).split()) if protocols else None,
        ssl_preread="ssl_preread on;" in server,
        proxy_protocol="on" if "proxy_protocol on;" in server else "off",
        proxy_ssl="proxy_ssl on;" in server, set_real_ip_from=tuple(realip))


def _cert(description: str) -> Certificate | None:
    if "client cert CN=device-42" not in description:
        return None
    return Certificate("device-42", "other-ca" if "unknown CA" in description else "clients-ca")


def _inbound(case: dict[str, Any], hop: NginxStream) -> Inbound:
    client = case["client"]
    sent = bytes.fromhex(client["sent_hex"])
    hello_hex = client["client_hello_hex"]
    host, port = case["addresses"]["client"].rsplit(":", 1)
    listener = case["addresses"]["listener"].rsplit(":", 1)
    peer, local = endpoint(host, int(port)), endpoint(listener[0], int(listener[1]))
    if hello_hex is None or not (hop.listen_ssl or hop.ssl_preread):
        # bytes in clear only, or a server that reads TLS as bytes: the very bytes sent
        return Inbound(sent, peer, local, "client", None, "device-42")
    hello = bytes.fromhex(hello_hex)
    start = sent.index(hello[:16])
    info = read_client_hello(hello)
    assert info and info is not True
    plaintext = bytes.fromhex(case["upstream_plaintext_hex"] or "") or _after_header(case)
    offered = "TLSv1.2" if "TLS1.2 max" in client["description"] else "TLSv1.3"
    session = TlsSession(plaintext, "mqtt", info.server_name or None, info.alpn, offered,
                         _cert(client["description"]))
    return Inbound(sent[:start], peer, local, "client", None, "device-42", session)


def _after_header(case: dict[str, Any]) -> bytes:
    up = bytes.fromhex(case["upstream_hex"] or "")
    if up.startswith(b"PROXY"):
        up = up[up.index(b"\r\n") + 2:]
    return up if not up.startswith(b"\x16\x03") else b""


def _message(line: str) -> str:
    # nginx's message without its level and connection number, its ", client: …" tail and
    # the " while …" context (the receiver models give the message alone)
    text = re.sub(r"^\[\w+\] \*\d+ ", "", line)
    text = re.sub(r", client: .*$", "", text, flags=re.S)
    return re.sub(r" while [a-zA-Z ]+$", "", text)


def _quoted(log: str, sent: bytes) -> str:
    """nginx quotes what it read in a broken-header line; the recorder wrote the client's
    bytes as ``<client bytes 0..N>``: the model's quote must be those very bytes."""
    m = re.match(r'broken header: "(.*)"$', log, re.S)
    if m is None:
        return log
    quoted = m.group(1).encode("latin-1")
    assert sent.startswith(quoted), "the model quotes other bytes than the client sent"
    return log.replace(m.group(1), f"<client bytes 0..{len(quoted)}>")


CASES = [c for c in NGINX if not SKIP.search(c["name"])]


def test_the_vectors_cover_the_issue() -> None:
    sections = {c["section"] for c in CASES}
    assert {"A", "C", "E"} <= sections and len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_simulated_nginx_does_what_the_real_one_did(case: dict[str, Any]) -> None:
    hop = _hop(case)
    out = step(hop, _inbound(case, hop))
    logged = [_message(line) for line in case["log"]]
    reached = case["upstream_hex"] is not None or case["upstream_plaintext_hex"] is not None
    if not reached:
        assert not out.ok, out.view.decisions
        assert out.view.log is not None
        sent = bytes.fromhex(case["client"]["sent_hex"])
        assert _quoted(_message(out.view.log), sent) in logged, logged
        return
    assert out.ok, (out.view.log, out.view.decisions)
    real = bytes.fromhex(case["upstream_hex"] or "")
    sim = out.data
    # the PROXY line nginx wrote upstream, byte for byte (addresses and ports as recorded)
    if real.startswith(b"PROXY"):
        end = real.index(b"\r\n") + 2
        assert sim[:end] == real[:end]
    elif real.startswith(b"\r\n\r\n\x00\r\nQUIT\n"):
        assert decode(sim) == decode(real)
    v, want = out.view.variables, case["variables"] or {}
    for name in ("ssl_protocol", "ssl_cipher", "ssl_server_name", "ssl_client_s_dn",
                 "ssl_client_verify", "ssl_preread_server_name", "ssl_preread_protocol",
                 "ssl_preread_alpn_protocols", "remote_addr"):
        if name in want and name in v:
            assert (v[name] or "-") == want[name] or v[name] == want[name], name
    if hop.ssl_preread and case["client"]["client_hello_hex"]:
        assert out.tls is not None  # relayed unread
    elif hop.listen_ssl and not hop.proxy_ssl:
        # what follows the line is the decrypted CONNECT
        assert sim.endswith(_after_header(case))
    if hop.proxy_ssl:
        assert out.tls is not None and out.tls.server_name is None  # proxy_ssl_server_name off


@pytest.mark.parametrize("case", [c for c in NGINX if c["client"]["client_hello_hex"] and
                                  "ssl_preread_server_name" in (c["variables"] or {})],
                         ids=lambda c: c["name"])
def test_client_hello_reader_agrees_with_ssl_preread(case: dict[str, Any]) -> None:
    """realip's reader on the real client's ClientHello gives what nginx's preread logged."""
    want = case["variables"]
    if "half" in case["name"]:
        # only part of it was sent: preread waits (nginx logged nothing it had read)
        assert read_client_hello(bytes.fromhex(case["client"]["sent_hex"])) is None
        return
    info = read_client_hello(bytes.fromhex(case["client"]["client_hello_hex"]))
    assert info and info is not True

    def logged(name: str) -> str:
        return "" if want[name] == "-" else want[name]

    assert info.server_name == logged("ssl_preread_server_name")
    assert info.version == logged("ssl_preread_protocol")
    assert ",".join(info.alpn) == logged("ssl_preread_alpn_protocols")


TRUNCATED = [c for c in VECTORS if "half_hello" in c["name"] and "_pass_" not in c["name"]]


@pytest.mark.parametrize("case", TRUNCATED, ids=[c["name"] for c in TRUNCATED])
def test_a_truncated_handshake_ends_as_it_did_on_the_real_program(case: dict[str, Any]) -> None:
    """Half a ClientHello, then silence or a close: the simulator closes at the same hop with
    the same connection error (nginx, HAProxy), or — where the real program logged nothing
    beyond the connection — with a '(no log line …)' outcome."""
    from realip.programs import HAProxy

    sent = bytes.fromhex(case["client"]["sent_hex"])
    hello = read_client_hello(bytes.fromhex(case["client"]["client_hello_hex"]))
    assert hello and hello is not True
    then = "close" if case["name"].endswith("then_close") else "silence"
    session = TlsSession(b"", "mqtt", hello.server_name or None, hello.alpn, "TLSv1.3",
                         sent=len(sent), then=then)
    peer, local = endpoint("127.0.53.10", 40000), endpoint("127.0.53.1", 8883)
    if case["program"] == "nginx":
        node: Any = _hop(case)
    else:
        node = HAProxy(name="hap", addr="127.0.53.1", port=8883, bind_ssl=True,
                       send_proxy="v2")
    out = step(node, Inbound(b"", peer, local, "client", None, "c", session))
    assert not out.ok and out.view.log is not None
    logged = [_message(re.sub(r"^\S+ \[date\] \S+: ", "", line)) for line in case["log"]
              if "connected to" not in line]
    if logged:
        assert _message(out.view.log) in logged
    else:
        assert out.view.log.startswith("(no log line")
