"""``realip.receivers``: each receiver model against recorded behaviour, no programs needed.

* :data:`OBSERVED` is what Debian nginx 1.22.1 and HAProxy 2.6.12 did with every edge case of
  :data:`realip.receivers.EDGE_CASES` (``tests/real`` sends the same table to the programs and
  compares them with the model live).
* :data:`MATRIX` is the comparison table of semantics.md §7, one representative input per row,
  for all six receivers.  The EMQX and Mosquitto columns are derived from their sources (see
  ``PROFILES``), not from running them.
* The address grammars are checked against glibc (``socket.inet_pton``) where they should agree
  and against examples where the programs differ from it.
* Property tests: no receiver raises on any bytes; ``consumed`` never exceeds the data.
"""

from __future__ import annotations

import ast
import json
import socket
from dataclasses import FrozenInstanceError
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realip import erlang
from realip import nginx as ngx
from realip import receivers as rc
from realip._addr import ipv4_int, ipv6_int
from realip.errors import InvalidProxyHeader
from realip.proxy_protocol import V2_SIGNATURE, Endpoint, decode, encode
from realip.receivers import (
    ASPECTS,
    EDGE_CASES,
    PROFILES,
    RECEIVERS,
    Acceptance,
    accepts,
    compare,
    profile,
    profile_table,
)

VECTORS = Path(__file__).resolve().parent / "vectors" / "captured.json"
SETTINGS = settings(max_examples=400, deadline=None)

# ------------------------------------------------------------------------------------------------
# What the real programs did (tests/real/test_receivers_real.py).  Per case: (nginx, haproxy),
# each either the client address used ("peer" = the real TCP peer), or the logged message on
# rejection ("silent" = closed without an error line).

OBSERVED: dict[str, tuple[str, str]] = {
    "v1-tcp4": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v1-tcp4-no-payload": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v1-tcp6": ("[2001:db8::7]:56324", "[2001:db8::7]:56324"),
    "v1-tcp6-mapped": ("[::ffff:203.0.113.7]:1", "[::ffff:203.0.113.7]:1"),
    "v1-unknown-short": ("peer", "peer"),
    "v1-unknown-long": ("peer", "Received an unhandled protocol in the PROXY protocol header"),
    "v1-unknown-short-ipv6": ("peer", "peer"),
    "v1-tcp4-ipv6-peer": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v1-leading-zeros": ("10.1.2.3:56324", "10.1.2.3:56324"),
    "v1-octet-256": ("peer", "203.0.114.0:56324"),
    "v1-octet-1004": ("peer", "203.0.113.4:56324"),
    "v1-three-octets": ("peer", "203.0.113.0:56324"),
    "v1-empty-octet": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v1-empty-source": ("peer", "0.0.0.0:56324"),
    "v1-hex-letters": ("peer", "Received an invalid PROXY protocol header"),
    "v1-v4-in-tcp6": ("203.0.113.7:56324", "Received an invalid PROXY protocol header"),
    "v1-v6-in-tcp4": ("[2001:db8::7]:56324", "Received an invalid PROXY protocol header"),
    "v1-tcp6-255": ("peer", "[::ffff:255.255.255.255]:56324"),
    "v1-five-octets": ("peer", "Received an invalid PROXY protocol header"),
    "v1-tcp6-zone": ('broken header: "PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 1883\r\n'
                     'GET / HTTP/1.0\r\n\r\n"', "Received an invalid PROXY protocol header"),
    "v1-tcp6-uppercase": ("[2001:db8::7]:56324", "[2001:db8::7]:56324"),
    "v1-unknown-lone-lf": ("peer", "Received an unhandled protocol in the PROXY protocol header"),
    "v1-port-0": ("203.0.113.7:0", "203.0.113.7:0"),
    "v1-port-65536": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 65536 1883\r\n'
                      'GET / HTTP/1.0\r\n\r\n"', "203.0.113.7:0"),
    "v1-port-99999999999": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 99999999999 '
                            '1883\r\nGET / HTTP/1.0\r\n\r\n"', "203.0.113.7:59391"),
    "v1-port-plus": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 +80 1883\r\n'
                     'GET / HTTP/1.0\r\n\r\n"', "Received an invalid PROXY protocol header"),
    "v1-port-leading-zeros": ("203.0.113.7:80", "203.0.113.7:80"),
    "v1-port-empty": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1  1883\r\n'
                      'GET / HTTP/1.0\r\n\r\n"', "203.0.113.7:0"),
    "v1-double-space": ('broken header: "PROXY TCP4 203.0.113.7  198.51.100.1 56324 1883\r\n'
                        'GET / HTTP/1.0\r\n\r\n"', "Received an invalid PROXY protocol header"),
    "v1-trailing-space": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883 \r\n'
                          'GET / HTTP/1.0\r\n\r\n"', "Received an invalid PROXY protocol header"),
    "v1-extra-field-tcp4": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883 7'
                            '\r\nGET / HTTP/1.0\r\n\r\n"',
                            "Received an invalid PROXY protocol header"),
    "v1-extra-field-tcp6": ('broken header: "PROXY TCP6 2001:db8::7 2001:db8::1 56324 1883 7'
                            '\r\nGET / HTTP/1.0\r\n\r\n"', "[2001:db8::7]:56324"),
    "v1-tcp6-nul-in-port": ('broken header: "PROXY TCP6 2001:db8::7 2001:db8::1 56324\x00x 1883'
                            '\r\nGET / HTTP/1.0\r\n\r\n"', "[2001:db8::7]:56324"),
    "v1-lone-lf": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\n'
                   'GET / HTTP/1.0\r\n\r\n"', "Received an invalid PROXY protocol header"),
    "v1-lone-lf-no-payload": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\n"',
                              "Truncated PROXY protocol header received"),
    "v1-lone-cr": ('broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\rX\r\n'
                   'GET / HTTP/1.0\r\n\r\n"', "Received an invalid PROXY protocol header"),
    "v1-lowercase": ('broken header: "proxy TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n'
                     'GET / HTTP/1.0\r\n\r\n"',
                     "Received something which does not look like a PROXY protocol header"),
    "v1-tcp5": ('broken header: "PROXY TCP5 203.0.113.7 198.51.100.1 56324 1883\r\n'
                'GET / HTTP/1.0\r\n\r\n"',
                "Received an unhandled protocol in the PROXY protocol header"),
    "v1-proxy-only": ('broken header: "PROXY \r\nGET / HTTP/1.0\r\n\r\n"',
                      "Received an unhandled protocol in the PROXY protocol header"),
    "v1-too-long-tcp6": ('broken header: "PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0001 '
                         '0000:0000:0000:0000:0000:ffff:198.151.100.100 56324 1883"',
                         "[::1]:56324"),
    "v1-too-long-unknown": ('broken header: "PROXY UNKNOWN ' + "f" * 93 + '"',
                            "Received an unhandled protocol in the PROXY protocol header"),
    "v1-split": ('broken header: "PROXY TCP4 203.0.113.7 198.5"',
                 "Truncated PROXY protocol header received"),
    "not-proxy": ('broken header: "GET / HTTP/1.0\r\n\r\n"',
                  "Received something which does not look like a PROXY protocol header"),
    "short-garbage": ('broken header: "hello\n"', "Truncated PROXY protocol header received"),
    "v2-inet": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v2-inet-no-payload": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v2-inet6": ("[2001:db8::7]:56324", "[2001:db8::7]:56324"),
    "v2-inet6-mapped": ("[::ffff:203.0.113.7]:56324", "[::ffff:203.0.113.7]:56324"),
    "v2-inet6-compat": ("[::102]:56324", "[::102]:56324"),
    "v2-local": ("peer", "peer"),
    "v2-local-ipv6": ("peer", "peer"),
    "v2-local-inet-block": ("peer", "peer"),
    "v2-local-bad-crc": ("peer", "peer"),
    "v2-unspec": ("peer", "Received an invalid PROXY protocol header"),
    "v2-unix": ("header is too large", "Received an invalid PROXY protocol header"),
    "v2-dgram": ("peer", "Received an invalid PROXY protocol header"),
    "v2-version-1": ("unknown PROXY protocol version: 1",
                     "Received something which does not look like a PROXY protocol header"),
    "v2-command-2": ("peer", "Received an invalid PROXY protocol header"),
    "v2-family-4": ("peer", "Received an invalid PROXY protocol header"),
    "v2-short-block": ("silent", "Received an invalid PROXY protocol header"),
    "v2-crc-good": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v2-crc-bad": ("203.0.113.7:56324", "Received an invalid PROXY protocol header"),
    "v2-crc-3-bytes": ("203.0.113.7:56324", "Received an invalid PROXY protocol header"),
    "v2-noop": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v2-tlv-overrun": ("203.0.113.7:56324", "Received an invalid PROXY protocol header"),
    "v2-tlv-2-bytes": ("203.0.113.7:56324", "Received an invalid PROXY protocol header"),
    "v2-unique-id-64": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v2-unique-id-128": ("header is too large", "203.0.113.7:56324"),
    "v2-unique-id-129": ("header is too large", "Received an invalid PROXY protocol header"),
    "v2-authority-256": ("header is too large", "Received an invalid PROXY protocol header"),
    "v2-unique-id-empty": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v2-noop-2000": ("header is too large", "203.0.113.7:56324"),
    "v2-107-bytes": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v2-108-bytes": ("header is too large", "203.0.113.7:56324"),
    "v2-ssl": ("203.0.113.7:56324", "203.0.113.7:56324"),
    "v2-split-10": ('broken header: "\r\n\r\n\x00\r\nQUI"',
                    "Truncated PROXY protocol header received"),
    "v2-split-20": ("header is too large", "Truncated PROXY protocol header received"),
}

#: HAProxy logs these rejections with the header's (forged) source: the addresses were applied
#: before a TLV check failed.
HAPROXY_FORGED_IN_LOG = {"v2-crc-bad", "v2-crc-3-bytes", "v2-tlv-overrun", "v2-tlv-2-bytes",
                         "v2-unique-id-129", "v2-authority-256"}

#: nginx's PROXY parser took the text, its realip could not: $proxy_protocol_addr keeps it.
NGINX_TEXT_ONLY = {"v1-octet-256": "203.0.113.256", "v1-octet-1004": "203.0.113.1004",
                   "v1-three-octets": "203.0.113", "v1-empty-source": "",
                   "v1-hex-letters": "abc.def.1.2", "v1-tcp6-255": "::ffff:255.255.255.255",
                   "v1-five-octets": "203.0.113.7.9"}


def _pton4(t: bytes) -> int | None:
    """glibc ``inet_pton(AF_INET)`` as the programs that use it read the bytes."""
    return ipv4_int(t.decode("latin-1"))


def _pton6(t: bytes) -> int | None:
    """glibc ``inet_pton(AF_INET6)`` as the programs that use it read the bytes."""
    return ipv6_int(t.decode("latin-1"))


def summary(a: Acceptance) -> str:
    if a.accepted:
        return "peer" if a.source is None else str(a.source)
    return "silent" if a.log_line is None else a.log_line


def test_observed_table_covers_every_case() -> None:
    assert set(OBSERVED) == set(EDGE_CASES)
    assert len(EDGE_CASES) >= 40


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_models_reproduce_observed(name: str) -> None:
    data = EDGE_CASES[name].first_read()
    nginx, haproxy = accepts("nginx", data), accepts("haproxy", data)
    assert (summary(nginx), summary(haproxy)) == OBSERVED[name]
    assert not nginx.waiting and not haproxy.waiting  # both decide on the first read
    assert (haproxy.logged_source is not None) == (name in HAPROXY_FORGED_IN_LOG)
    if name in NGINX_TEXT_ONLY:
        assert nginx.accepted and nginx.source is None
        assert nginx.variable("proxy_protocol_addr") == NGINX_TEXT_ONLY[name]
        assert nginx.variable("remote_addr") is None


def test_nginx_variables_as_printed() -> None:
    a = accepts("nginx", EDGE_CASES["v2-inet6-compat"].first_read())
    assert a.variable("remote_addr") == "::0.0.1.2"  # ngx_inet6_ntop, glibc prints ::102
    a = accepts("nginx", EDGE_CASES["v1-port-0"].first_read())
    assert a.variable("remote_port") == "" and a.source == Endpoint(IPv4Address("203.0.113.7"), 0)
    a = accepts("nginx", EDGE_CASES["v1-tcp6-uppercase"].first_read())
    assert a.variable("proxy_protocol_addr") == "2001:DB8::7"
    assert a.variable("remote_addr") == "2001:db8::7"


def test_haproxy_port_zero_fetch_is_empty() -> None:
    a = accepts("haproxy", EDGE_CASES["v1-port-0"].first_read())
    assert dict(a.variables)["src_port"] == ""


def test_payload_is_not_consumed() -> None:
    for name in ("v1-tcp4", "v2-inet", "v2-crc-good"):
        case = EDGE_CASES[name]
        for r in ("spec", "nginx", "haproxy", "emqx-ws"):
            assert accepts(r, case.first_read()).consumed == len(case.data), (name, r)
    # nginx skips an UNKNOWN line up to the first CRLF, even one inside the payload
    case = EDGE_CASES["v1-unknown-lone-lf"]
    assert accepts("nginx", case.first_read()).consumed == len(b"PROXY UNKNOWN\nGET / HTTP/1.0\r\n")


# ------------------------------------------------------------------------------------------------
# Versions

def test_nginx_versions() -> None:
    long_v1 = EDGE_CASES["v1-too-long-tcp6"].first_read()
    assert not accepts("nginx", long_v1).accepted
    assert accepts("nginx", long_v1, version="1.23.3").source == Endpoint(IPv6Address("::1"),
                                                                          56324)
    big = EDGE_CASES["v2-unique-id-128"].first_read()
    assert accepts("nginx", big, version="1.31").accepted
    assert not accepts("nginx", big, version="1.23.2").accepted
    broken = EDGE_CASES["v1-lone-cr"].first_read()
    assert accepts("nginx", broken, version="1.23.2").log_line == (
        'broken header: "PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883"')
    assert "GET" in (accepts("nginx", broken).log_line or "")
    assert profile("nginx", "1.31").knobs["max_header"] == 4096
    assert profile("nginx").knobs["max_header"] == 107


def test_haproxy_versions() -> None:
    local = EDGE_CASES["v2-local-bad-crc"].first_read()
    assert accepts("haproxy", local).accepted
    assert not accepts("haproxy", local, version="3.0").accepted
    block = EDGE_CASES["v2-local-inet-block"].first_read()
    # 3.0 parses the LOCAL address block as TLVs: 0xCB 0x0071 overruns -> rejected
    assert not accepts("haproxy", block, version="3.0").accepted
    noop = EDGE_CASES["v2-noop-2000"].first_read()
    assert accepts("haproxy", noop).accepted
    assert not accepts("haproxy", noop, version="2.9").accepted


def test_bad_names_raise_value_error() -> None:
    with pytest.raises(ValueError):
        accepts("apache", b"")
    with pytest.raises(ValueError):
        accepts("nginx", b"", version="latest")
    with pytest.raises(ValueError):
        accepts("mosquitto", b"", version="3")
    with pytest.raises(ValueError):
        accepts("emqx-tcp", b"", version="5.17")


# ------------------------------------------------------------------------------------------------
# The comparison table (§7), one representative input per row, all receivers.

CONNECT = bytes.fromhex("101000044d5154540402003c0004746573")  # start of an MQTT CONNECT
V4 = rc._V4


def v2(vc: int, ft: int, body: bytes) -> bytes:
    return rc._v2(vc, ft, body)


# expected per receiver, in RECEIVERS order: "wait", "reject", "peer" or the client address
MATRIX: dict[str, tuple[bytes, tuple[str, str, str, str, str, str]]] = {
    "fragmented v1": (b"PROXY TCP4 203.0.113.7 198.5",
                      ("wait", "reject", "reject", "wait", "reject", "reject")),
    "fragmented v2": (v2(0x21, 0x11, V4)[:20],
                      ("wait", "reject", "reject", "wait", "reject", "wait")),
    "leading zeros": (b"PROXY TCP4 010.0.0.1 198.51.100.1 56324 1883\r\n" + CONNECT,
                      ("reject", "10.0.0.1:56324", "10.0.0.1:56324", "8.0.0.1:56324", "reject",
                       "reject")),
    "short IPv4 127.1": (b"PROXY TCP4 127.1 198.51.100.1 56324 1883\r\n" + CONNECT,
                         ("reject", "peer", "127.1.0.0:56324", "127.0.0.1:56324", "reject",
                          "reject")),
    "IPv6 text in TCP4": (b"PROXY TCP4 2001:db8::7 2001:db8::1 56324 1883\r\n" + CONNECT,
                          ("reject", "[2001:db8::7]:56324", "reject", "[2001:db8::7]:56324",
                           "reject", "reject")),
    "port 0": (b"PROXY TCP4 203.0.113.7 198.51.100.1 0 1883\r\n" + CONNECT,
               ("203.0.113.7:0", "203.0.113.7:0", "203.0.113.7:0", "203.0.113.7:0", "reject",
                "reject")),
    "port 99999": (b"PROXY TCP4 203.0.113.7 198.51.100.1 99999 1883\r\n" + CONNECT,
                   ("reject", "reject", "203.0.113.7:34463", "203.0.113.7:99999", "reject",
                    "reject")),
    "port 80abc": (b"PROXY TCP4 203.0.113.7 198.51.100.1 80abc 1883\r\n" + CONNECT,
                   ("reject", "reject", "reject", "reject", "reject", "203.0.113.7:80")),
    "double space": (b"PROXY TCP4 203.0.113.7  198.51.100.1 56324 1883\r\n" + CONNECT,
                     ("reject", "reject", "reject", "reject", "reject", "203.0.113.7:56324")),
    "UNKNOWN short": (b"PROXY UNKNOWN\r\n" + CONNECT,
                      ("peer", "peer", "peer", "peer", "peer", "reject")),
    "UNKNOWN long": (b"PROXY UNKNOWN 203.0.113.7 198.51.100.1 56324 1883\r\n" + CONNECT,
                     ("peer", "peer", "reject", "peer", "peer", "peer")),
    "lone LF": (b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\n" + CONNECT,
                ("reject", "reject", "reject", "reject", "reject", "reject")),
    "v2 command 2": (v2(0x22, 0x11, V4) + CONNECT,
                     ("reject", "peer", "reject", "reject", "reject", "reject")),
    "v2 LOCAL": (v2(0x20, 0x00, b"") + CONNECT,
                 ("peer", "peer", "peer", "peer", "peer", "reject")),
    "v2 LOCAL + INET block": (v2(0x20, 0x11, V4) + CONNECT,
                              ("peer", "peer", "peer", "peer", "peer", "203.0.113.7:56324")),
    "v2 UNIX": (v2(0x21, 0x31, rc._UNIX) + CONNECT,
                ("/run/client.sock", "reject", "reject", "reject", "peer", "reject")),
    "v2 DGRAM": (v2(0x21, 0x12, V4) + CONNECT,
                 ("203.0.113.7:56324", "peer", "reject", "reject", "203.0.113.7:56324",
                  "reject")),
    "v2 UNSPEC": (v2(0x21, 0x00, b"") + CONNECT,
                  ("peer", "peer", "reject", "reject", "peer", "reject")),
    "bad CRC32C": (rc._with_crc(v2(0x21, 0x11, V4), good=False) + CONNECT,
                   ("reject", "203.0.113.7:56324", "reject", "203.0.113.7:56324", "reject",
                    "203.0.113.7:56324")),
    "UNIQUE_ID 129": (v2(0x21, 0x11, V4 + rc._tlv(5, b"u" * 129)) + CONNECT,
                      ("reject", "reject", "reject", "203.0.113.7:56324", "reject",
                       "203.0.113.7:56324")),
    "SSL TLV of 3 bytes": (v2(0x21, 0x11, V4 + rc._tlv(0x20, b"\x01\0\0")) + CONNECT,
                           ("reject", "203.0.113.7:56324", "203.0.113.7:56324", "reject",
                            "reject", "reject")),
    "SSL sub-TLV 0x26": (v2(0x21, 0x11, V4 + rc._tlv(0x20, b"\x01\0\0\0\0"
                                                     + rc._tlv(0x26, b"x25519"))) + CONNECT,
                         ("203.0.113.7:56324", "203.0.113.7:56324", "203.0.113.7:56324",
                          "203.0.113.7:56324", "reject", "203.0.113.7:56324")),
}


#: the aedes column (the real aedes 1.2.0 confirmed these in tests/vectors/aedes_1.2.0.json):
#: "crash" is the whole Node process dying; a verbatim text address prints without its port
AEDES_MATRIX: dict[str, str] = {
    'fragmented v1': 'crash',
    'fragmented v2': 'reject',
    'leading zeros': '010.0.0.1',
    'short IPv4 127.1': '127.1',
    'IPv6 text in TCP4': '[2001:db8::7]:56324',
    'port 0': '203.0.113.7:0',
    'port 99999': '203.0.113.7:99999',
    'port 80abc': 'crash',
    'double space': 'crash',
    'UNKNOWN short': 'crash',
    'UNKNOWN long': '203.0.113.7:56324',
    'lone LF': 'crash',
    'v2 command 2': 'crash',
    'v2 LOCAL': 'peer',
    'v2 LOCAL + INET block': '203.0.113.7:56324',
    'v2 UNIX': 'peer',
    'v2 DGRAM': '203.0.113.7:56324',
    'v2 UNSPEC': 'peer',
    'bad CRC32C': 'reject',
    'UNIQUE_ID 129': 'reject',
    'SSL TLV of 3 bytes': 'reject',
    'SSL sub-TLV 0x26': 'reject',
}


def outcome(a: Acceptance) -> str:
    if a.crash:
        return "crash"
    if a.waiting:
        return "wait"
    if not a.accepted:
        return "reject"
    return "peer" if a.source is None else str(a.source)


@pytest.mark.parametrize("row", list(MATRIX))
def test_comparison_matrix(row: str) -> None:
    data, want = MATRIX[row]
    got = tuple(outcome(a) for a in compare(data).values())
    assert got == (*want, AEDES_MATRIX[row])


def test_profile_table_shape() -> None:
    rows = profile_table()
    assert rows[0][0] == "aspect" and len(rows) == len(ASPECTS) + 1
    assert all(len(r) == len(RECEIVERS) + 1 for r in rows)
    assert all(isinstance(c, str) and c for r in rows for c in r)
    assert set(PROFILES) == set(RECEIVERS)
    assert "4096" in profile("nginx", "1.23.3").rules["v2_length"]


# ------------------------------------------------------------------------------------------------
# EMQX and Mosquitto details (derived from their sources)

def test_esockd_length_zero_swallows_the_next_bytes() -> None:
    local = v2(0x20, 0x00, b"")
    a = accepts("emqx-tcp", local + CONNECT)
    assert a.accepted and a.consumed == len(local) + len(CONNECT)
    assert accepts("emqx-tcp", local).waiting


def test_esockd_waits_for_fragments_and_backends_differ() -> None:
    line = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n"
    for cut in range(1, len(line)):
        a = accepts("emqx-tcp", line[:cut])
        assert a.waiting or not a.accepted
    assert accepts("emqx-tcp", line).source == Endpoint(IPv4Address("203.0.113.7"), 56324)
    sock = accepts("emqx-tcp", line + CONNECT, version="socket")
    assert sock.source == Endpoint(IPv4Address("203.0.113.7"), 56324)
    assert sock.consumed == len(line)
    # gen_tcp takes a bare LF as the end of the first line, the socket backend wants CRLF
    lf = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\n"
    assert not accepts("emqx-tcp", lf).accepted and not accepts("emqx-tcp", lf).waiting
    assert accepts("emqx-tcp", lf, version="socket").waiting
    assert not accepts("emqx-tcp", b"PROXY UNKNOWN " + b"x" * 200, version="socket").waiting


def test_ranch_strict_and_crc() -> None:
    good = rc._with_crc(v2(0x21, 0x11, V4))
    assert accepts("emqx-ws", good).source == Endpoint(IPv4Address("203.0.113.7"), 56324)
    crc3 = v2(0x21, 0x11, V4 + rc._tlv(3, b"abc"))
    assert accepts("emqx-ws", crc3).accepted  # a CRC32C TLV not of 4 bytes is kept as raw
    tcp6 = b"PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 1883\r\n"
    assert accepts("emqx-ws", tcp6).source == Endpoint(IPv6Address("fe80::1"), 56324)


def test_mosquitto_modes() -> None:
    v1 = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n"
    assert accepts("mosquitto", v1, version="1").accepted
    assert not accepts("mosquitto", v1, version="2").accepted
    assert accepts("mosquitto", v1).version == "auto:1"
    local = v2(0x20, 0x00, b"")
    assert accepts("mosquitto", local).reason.startswith("v2 LOCAL")
    # UNIX: the TLV walk starts at offset 109, inside the destination path
    unix = accepts("mosquitto", v2(0x21, 0x31, rc._UNIX))
    assert unix.log_line == "Connection from /run/client.sock:0 rejected, corrupt PROXY header."
    assert unix.logged_source == Endpoint("/run/client.sock", None)
    # a corrupt TLV is logged with the header's source
    bad = accepts("mosquitto", v2(0x21, 0x11, V4 + b"\x04\x00"))
    assert bad.log_line == "Connection from 203.0.113.7:56324 rejected, corrupt PROXY header."
    # atoi: 4294967297 wraps to 1
    wrap = b"PROXY TCP4 203.0.113.7 198.51.100.1 4294967297 1883\r\n"
    assert accepts("mosquitto", wrap).source == Endpoint(IPv4Address("203.0.113.7"), 1)
    # 108 bytes without CRLF
    assert accepts("mosquitto", b"PROXY UNKNOWN " + b"x" * 100).log_line == (
        "Connection rejected, corrupt PROXY header.")


# ------------------------------------------------------------------------------------------------
# Address grammars

def _glibc(family: int, text: bytes) -> int | None:
    try:
        return int.from_bytes(socket.inet_pton(family, text.decode("latin-1")), "big")
    except (OSError, ValueError, UnicodeError):
        return None


ADDR_CHARS = st.text(alphabet="0123456789abcdefABCDEFx:.% ", max_size=48).map(
    lambda s: s.encode("latin-1"))


@SETTINGS
@given(ADDR_CHARS)
def test_pton_matches_glibc(text: bytes) -> None:
    assert _pton6(text) == _glibc(socket.AF_INET6, text)
    assert _pton4(text) == _glibc(socket.AF_INET, text)


@SETTINGS
@given(st.ip_addresses())
def test_pton_on_real_addresses(addr: IPv4Address | IPv6Address) -> None:
    text = str(addr).encode()
    if isinstance(addr, IPv6Address):
        assert _pton6(text) == int(addr)
        assert ngx.inet6_addr(text) == int(addr)
        assert erlang.parse_ipv6(str(addr)) == int(addr)
    else:
        assert _pton4(text) == int(addr)
        expected = None if int(addr) == 0xFFFFFFFF else int(addr)
        assert ngx.inet_addr(text) == expected
        assert erlang.parse_ipv4(str(addr)) == int(addr)


@pytest.mark.parametrize(("text", "want"), [
    ("010.001.002.003", "10.1.2.3"),
    ("1..2.3", "1.0.2.3"),
    (".1.2.3", "0.1.2.3"),
    ("1.2.3.", "1.2.3.0"),
    ("255.255.255.255", None),
    ("1.2.3", None),
    ("1.2.3.4.5", None),
    ("256.1.1.1", None),
    (":1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
    ("::ffff:01.2.3.4", "::ffff:1.2.3.4"),
    ("::ffff:255.255.255.255", None),
    ("fe80::1%eth0", None),
    ("1::2::3", None),
    ("1:2:3:4:5:6:7:8:9", None),
    ("", None),
])
def test_nginx_parse_addr(text: str, want: str | None) -> None:
    got = ngx.parse_addr(text.encode())
    assert got == (None if want is None else ip_address(want))


@pytest.mark.parametrize(("text", "want"), [
    ("::102", "::0.0.1.2"),
    ("::101", "::101"),
    ("::1", "::1"),
    ("::", "::"),
    ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
    ("::1.2.3.4", "::1.2.3.4"),
    ("2001:db8::1", "2001:db8::1"),
    ("1::", "1::"),
    ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
    ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
])
def test_nginx_ntop(text: str, want: str) -> None:
    assert ngx.format_addr(IPv6Address(text)) == want


@pytest.mark.parametrize(("text", "want"), [
    ("127.1", "127.0.0.1"),
    ("010.0.0.1", "8.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0x7F000001", "127.0.0.1"),
    ("1.2.65535", "1.2.255.255"),
    ("1.2.65536", None),
    ("08.1.1.1", None),
    ("1.2.3.4.", None),
    ("+1.2.3.4", None),
    ("1.2.3.4.5", None),
    ("::1", "::1"),
    (":1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ("fe80::1%eth0", "fe80::1"),
    ("fe80::1%3", "fe80:3::1"),
    ("2001:db8::1%3", None),
    ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
    ("::ffff:01.2.3.4", None),
    ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"),
    ("1:2:3:4:5:6:7:8::", None),
    ("1::2::3", None),
    ("12345::", None),
])
def test_erlang_parse_address(text: str, want: str | None) -> None:
    got = erlang.parse_address(text)
    assert got == (None if want is None else ip_address(want))


# ------------------------------------------------------------------------------------------------
# Properties

def _mutations() -> st.SearchStrategy[bytes]:
    seeds = [c.first_read() for c in EDGE_CASES.values()]

    def mutate(seed: bytes, pos: int, byte: int, cut: int) -> bytes:
        if not seed:
            return bytes((byte,))
        pos %= len(seed)
        changed = seed[:pos] + bytes((byte,)) + seed[pos + 1 :]
        return changed[: max(cut, 1)]

    return st.builds(mutate, st.sampled_from(seeds), st.integers(0, 300), st.integers(0, 255),
                     st.integers(0, 400))


ANY_BYTES = st.one_of(st.binary(max_size=300), _mutations(),
                      st.binary(max_size=200).map(lambda b: V2_SIGNATURE + b),
                      st.binary(max_size=120).map(lambda b: b"PROXY " + b))

VERSIONS = [(r, v) for r in RECEIVERS for v in (None, *profile(r).versions)]


@settings(max_examples=300, deadline=None)
@given(ANY_BYTES)
def test_no_receiver_raises(data: bytes) -> None:
    for receiver, version in VERSIONS:
        a = accepts(receiver, data, version=version)
        assert isinstance(a, Acceptance)
        assert a.receiver == receiver
        if a.accepted:
            assert a.consumed is not None and 0 <= a.consumed <= len(data)
            # consumed 0: no header, and the program reads none (aedes: the header is optional)
            assert a.consumed > 0 or a.header_version is None
            assert not a.waiting
        else:
            assert a.consumed is None and a.source is None
        if a.waiting:
            assert not a.accepted


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(EDGE_CASES)), st.integers(0, 200))
def test_prefixes_of_a_header(name: str, cut: int) -> None:
    data = EDGE_CASES[name].data
    prefix = data[: cut % (len(data) + 1)]
    for receiver in RECEIVERS:
        a = accepts(receiver, prefix)
        if a.accepted:
            assert a.consumed is not None and a.consumed <= len(prefix)


def test_spec_receiver_is_the_codec() -> None:
    for case in EDGE_CASES.values():
        data = case.first_read()
        a = accepts("spec", data)
        try:
            h = decode(data)
        except InvalidProxyHeader:
            assert not a.accepted and not a.waiting
            continue
        if h is None:
            assert a.waiting
        else:
            assert a.accepted and a.source == h.source and a.consumed == h.size


def test_acceptance_is_frozen() -> None:
    a = accepts("nginx", EDGE_CASES["v1-tcp4"].first_read())
    with pytest.raises(FrozenInstanceError):
        a.accepted = False  # type: ignore[misc]
    assert a.describe() == "accept 203.0.113.7:56324"
    hash(a)


def test_module_is_sans_io() -> None:
    tree = ast.parse(Path(rc.__file__).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    assert not names & {"socket", "asyncio", "selectors", "ssl", "subprocess", "threading"}


# ------------------------------------------------------------------------------------------------
# tests/vectors/captured.json (written by tests/real/test_senders_real.py)

def _ep(text: str | None) -> Endpoint | None:
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    return Endpoint(ip_address(host.strip("[]")), int(port))


def test_captured_vectors_still_decode() -> None:
    entries = json.loads(VECTORS.read_text())
    assert {e["program"] for e in entries} == {"nginx", "haproxy"}
    keys = {"name", "program", "version", "hex", "source", "destination", "notes"}
    for e in entries:
        assert keys <= set(e), e
        raw = bytes.fromhex(e["hex"])
        if not e.get("spec_valid", True):
            with pytest.raises(InvalidProxyHeader):
                decode(raw)
            continue
        h = decode(raw)
        assert h is not None and h.size == len(raw), e["name"]
        assert h.source == _ep(e["source"]), e["name"]
        assert h.destination == _ep(e["destination"]), e["name"]
        assert encode(h) == raw, e["name"]
        # what the receivers make of what the senders send
        assert accepts("haproxy", raw).accepted, e["name"]
        assert accepts("nginx", raw).accepted, e["name"]


def test_later_reads() -> None:
    """``later=``: Mosquitto models a second read; the other receivers decide on the first."""
    header = v2(0x21, 0x11, V4)
    # the 16-byte fixed part alone: dropped at once, whatever comes later
    for later in (None, header[16:]):
        alone = accepts("mosquitto", header[:16], version="2", later=later)
        assert not alone.accepted and not alone.waiting
        assert alone.variable("disconnect") == (
            "Client (null) [(null):0] disconnected: connection closed by client.")
    # a body in two reads: the second lands on the start of the buffer
    assert accepts("mosquitto", header[:20], version="2").waiting
    split = accepts("mosquitto", header[:20], version="2", later=header[20:])
    assert split.accepted and split.consumed == len(header)
    assert (split.variable("address"), split.variable("remote_port")) == ("198.51.100.1", "0")
    for receiver in ("spec", "nginx", "haproxy", "emqx-tcp", "emqx-ws"):
        assert accepts(receiver, header[:20], later=header[20:]) == accepts(receiver, header[:20])
    # the releases: 2.1.2 (default) walks a UNIX block's TLVs from the path's end, master from 109
    unix = v2(0x21, 0x31, b"/var/pgsql_sock".ljust(108, b"\0") + b"/x".ljust(108, b"\0"))
    assert accepts("mosquitto", unix, version="2").version == "2"
    assert accepts("mosquitto", unix, version="2.1.2:2").accepted
    assert not accepts("mosquitto", unix, version="master:2").accepted
    with pytest.raises(ValueError, match=r"2\.0 has none"):
        accepts("mosquitto", unix, version="2.0:2")
    v1 = b"PROXY TCP6 2001:DB8::7 2001:db8::1 56324 1883\r\n"
    assert accepts("mosquitto", v1, version="master:1").variable("address") == "2001:DB8::7"
