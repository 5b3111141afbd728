"""EMQX, HAProxy, the safe resolver, the peers' behaviour, trust compilation, header parsing."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realip import ConfigurationError, erlang
from realip.forwarded import ForwardedSyntaxError, parse_forwarded, parse_node, parse_ports
from realip.proxy_protocol import decode
from realip.resolve import (
    client_ip,
    emqx_ws_peer,
    express_trust_proxy,
    haproxy_forwardfor,
    haproxy_hdr_ip,
    haproxy_set_header,
    ipware_leftmost,
    nginx_realip,
    uvicorn_proxy_headers,
    werkzeug_proxy_fix,
)
from realip.trust import Trust

XFF = "X-Forwarded-For"


# -- EMQX ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "port_value", "peername"), [
    ("115.236.21.86", "61813", "115.236.21.86:61813"),  # the article's single tier
    ("127.0.0.1, 1.94.170.163, 172.16.0.116", None, "127.0.0.1:40000"),  # leftmost, forged!
    ("1.2.3.4 5.6.7.8", None, "1.2.3.4:40000"),  # space separates too
    ("1.2.3.4:80", None, "172.16.0.200:40000"),  # ip:port is unparsable → TCP peer
    ("[2001:db8::1]", None, "172.16.0.200:40000"),
    ("010.0.0.1", None, "8.0.0.1:40000"),  # octal!
    ("127.1", "+80", "127.0.0.1:80"),
    ("garbage, 1.2.3.4", None, "172.16.0.200:40000"),  # only the leftmost is tried
    (None, "99999", "172.16.0.200:99999"),  # no range check on the port
    ("1.2.3.4", ", 51234", "1.2.3.4:51234"),  # empty tokens are dropped
    ("fe80::1%eth0", None, "fe80::1:40000"),
])
def test_emqx_ws_leftmost_rule(value: str | None, port_value: str | None, peername: str) -> None:
    headers = []
    if value is not None:
        headers.append((XFF, value))
    if port_value is not None:
        headers.append(("X-Forwarded-Port", port_value))
    r = emqx_ws_peer("172.16.0.200", 40000, headers)
    assert r.peername == peername


def test_emqx_repeated_lines_are_joined_client_line_first() -> None:
    # option forwardfor adds a second line; cowboy joins "client, haproxy" → leftmost = forged
    headers = haproxy_forwardfor([(XFF, "6.6.6.6")], "1.94.170.163")
    assert headers == [(XFF, "6.6.6.6"), ("X-Forwarded-For", "1.94.170.163")]
    assert emqx_ws_peer("172.16.0.200", 1, headers).addr == "6.6.6.6"


def test_emqx_header_names_case_and_empty_default() -> None:
    headers = [("x-real-ip", "1.2.3.4")]
    assert emqx_ws_peer("10.0.0.1", 1, headers, proxy_address_header="X-Real-IP").addr == \
        "1.2.3.4"
    assert emqx_ws_peer("10.0.0.1", 1, [(XFF, "1.2.3.4")], proxy_address_header="").addr == \
        "10.0.0.1"


@pytest.mark.parametrize(("peer", "value", "addr"), [
    ("172.16.0.200", "127.0.0.1, 1.94.170.163, 172.16.0.116", "1.94.170.163"),
    ("8.8.8.8", "1.94.170.163", "8.8.8.8"),  # peer not allowed
    ("172.16.0.200", "172.16.0.5, 172.16.0.116", "172.16.0.5"),  # all allowed → leftmost
    ("172.16.0.200", "junk, 1.94.170.163, 172.16.0.116", "1.94.170.163"),
    ("172.16.0.200", "1.94.170.163, junk", "172.16.0.200"),  # unparsable → TCP peer
])
def test_emqx_64_allow_list(peer: str, value: str, addr: str) -> None:
    r = emqx_ws_peer(peer, 1, [(XFF, value)], proxy_address_allow=["172.16.0.0/24"])
    assert r.addr == addr


def test_emqx_proxy_protocol_wins() -> None:
    h = decode(b"PROXY TCP4 115.236.21.86 172.16.0.71 61177 8083\r\n")
    r = emqx_ws_peer("172.16.0.116", 1, [(XFF, "6.6.6.6")], proxy_protocol=h)
    assert r.peername == "115.236.21.86:61177"
    local = decode(b"PROXY UNKNOWN\r\n")
    assert emqx_ws_peer("172.16.0.116", 1, [(XFF, "6.6.6.6")], proxy_protocol=local).addr == \
        "6.6.6.6"


def test_erlang_grammar_and_ntoa() -> None:
    assert erlang.parse_address("0x7f.1") == IPv4Address("127.0.0.1")
    assert erlang.parse_address("1.2.3.4.5") is None
    assert erlang.parse_address("fe80::1%5") == IPv6Address("fe80:5::1")
    assert erlang.ntoa(IPv6Address("fe80:5::1")) == "fe80::1%5"
    assert erlang.ntoa(IPv6Address("::ffff:1.2.3.4")) == "::ffff:1.2.3.4"
    assert erlang.ntoa(IPv6Address("::2")) == "::0.0.0.2"
    assert erlang.ntoa(IPv6Address("2001:db8:0:0:1:0:0:1")) == "2001:db8::1:0:0:1"


# -- HAProxy ---------------------------------------------------------------------------------------
def test_haproxy_helpers() -> None:
    hs = [(XFF, "1.1.1.1, 2.2.2.2"), ("Host", "x")]
    assert haproxy_forwardfor(hs, "10.0.0.1", except_="10.0.0.0/8") == hs
    assert haproxy_forwardfor(hs, "3.3.3.3", if_none=True) == hs
    assert haproxy_forwardfor([], "2001:db8::1") == [(XFF, "2001:db8::1")]
    assert haproxy_set_header(hs, "x-forwarded-for", "9.9.9.9") == [("Host", "x"),
                                                                   ("x-forwarded-for", "9.9.9.9")]
    assert haproxy_hdr_ip([*hs, (XFF, "4.4.4.4:80")]) == "4.4.4.4"
    assert haproxy_hdr_ip(hs, occ=1) == "1.1.1.1"
    assert haproxy_hdr_ip([(XFF, "junk")]) is None


# -- the safe resolver -----------------------------------------------------------------------------
T = ["10.0.0.0/8"]


@pytest.mark.parametrize(("peer", "headers", "addr", "port"), [
    ("10.0.0.1", [(XFF, "1.2.3.4, 8.8.8.8, 10.0.0.2")], "8.8.8.8", None),
    ("6.6.6.6", [(XFF, "1.2.3.4, 10.0.0.2")], "6.6.6.6", None),  # direct attacker
    ("10.0.0.1", [(XFF, "1.2.3.4, junk")], None, None),  # fails closed at the boundary
    ("10.0.0.1", [(XFF, "junk, 1.2.3.4")], "1.2.3.4", None),  # junk beyond the boundary is fine
    ("10.0.0.1", [(XFF, "8.8.8.8:4444")], "8.8.8.8", 4444),
    ("10.0.0.1", [(XFF, "[2001:db8::1]:443")], "2001:db8::1", 443),
    ("10.0.0.1", [(XFF, "10.0.0.5, 10.0.0.2")], "10.0.0.5", None),  # all trusted → leftmost
    ("10.0.0.1", [(XFF, "1.1.1.1"), (XFF, "10.0.0.3")], "1.1.1.1", None),
    # X-Forwarded-Port is not read unless the configuration says the proxies set it
    ("10.0.0.1", [(XFF, "1.1.1.1, 2.2.2.2"), ("X-Forwarded-Port", "1111, 2222")], "2.2.2.2",
     None),
    ("10.0.0.1", [("Forwarded", 'for=192.0.2.60;proto=http, for="[2001:db8::7]:4711"')],
     "2001:db8::7", 4711),
    ("10.0.0.1", [("Forwarded", "for=unknown")], None, None),
    ("10.0.0.1", [("Forwarded", "for=1.2.3.4"), (XFF, "1.2.3.4")], None, None),  # no mixing
    ("10.0.0.1", [("Forwarded", "for=1.2.3.4;;")], None, None),
    ("10.0.0.1", [], "10.0.0.1", None),
    ("::ffff:10.0.0.1", [(XFF, "1.2.3.4")], "1.2.3.4", None),
    ("10.0.0.1", [(XFF, "fe80::1%eth0")], None, None),
    ("10.0.0.1", [(XFF, "01.2.3.4")], None, None),
])
def test_client_ip(peer: str, headers: list[tuple[str, str]], addr: str | None,
                   port: int | None) -> None:
    r = client_ip(peer, headers, trusted=T)
    assert (r.addr, r.port) == (addr, port), r.reason
    assert r.ok == (addr is not None)
    assert r.trace


def test_client_ip_hops() -> None:
    headers = [(XFF, "6.6.6.6, 1.2.3.4, 5.6.7.8")]
    assert client_ip("9.9.9.9", headers, hops=1).addr == "5.6.7.8"
    assert client_ip("9.9.9.9", headers, hops=2).addr == "1.2.3.4"
    assert client_ip("9.9.9.9", headers, hops=5).addr == "6.6.6.6"
    assert client_ip("9.9.9.9", headers, hops=0).addr == "9.9.9.9"
    both = client_ip("10.0.0.1", [(XFF, "1.2.3.4, 10.0.0.3, 10.0.0.2")], trusted=T, hops=2)
    assert both.addr == "10.0.0.3"


def test_client_ip_bounds_never_raise() -> None:
    big = ", ".join(["10.0.0.2"] * 100_000)
    r = client_ip("10.0.0.1", [(XFF, big)], trusted=T)
    assert r.addr is None and "refusing" in r.reason
    megabyte = "1" * 1_000_000
    r2 = client_ip("10.0.0.1", [(XFF, megabyte + ", 8.8.8.8")], trusted=T)
    assert r2.addr == "8.8.8.8"  # the boundary is near the right end: found within the bound
    r3 = client_ip("10.0.0.1", [(XFF, megabyte)], trusted=T)
    assert r3.addr is None


def test_client_ip_bad_configuration() -> None:
    for kwargs in ({"trusted": ["10.0.0.0/33"]}, {"trusted": ["10.0.0.1/8"]}, {}, {"hops": -1},
                   {"trusted": ["nonsense"]}):
        with pytest.raises(ConfigurationError):
            client_ip("10.0.0.1", [], **kwargs)  # type: ignore[arg-type]


_ENTRY = st.sampled_from(["10.0.0.2", "10.0.0.3", "1.1.1.1", "2.2.2.2", "8.8.8.8:80",
                          "10.9.9.9", "junk", "[2001:db8::1]:1"])


@settings(max_examples=300, deadline=None)
@given(entries=st.lists(_ENTRY, min_size=1, max_size=8), peer=st.sampled_from(
    ["10.0.0.1", "6.6.6.6"]))
def test_client_ip_properties(entries: list[str], peer: str) -> None:
    headers = [(XFF, ", ".join(entries))]
    r = client_ip(peer, headers, trusted=T)
    if peer == "6.6.6.6":
        assert r.addr == peer
    elif r.addr is not None and r.used_header:
        assert any(parse_node(e) is not None and str(parse_node(e).ip) == r.addr  # type: ignore
                   for e in entries)
    wide = client_ip(peer, headers, trusted=["10.0.0.0/8", "1.1.1.1"])
    assert len(wide.trace) >= len(r.trace) or wide.addr is None


# -- peers ----------------------------------------------------------------------------------------
def test_peer_behaviours_from_peers_md() -> None:
    h = [(XFF, "1.2.3.4, 8.8.8.8, 10.0.0.2")]
    assert ipware_leftmost("10.0.0.1", h).addr == "1.2.3.4"
    assert werkzeug_proxy_fix("10.0.0.1", h).addr == "10.0.0.2"
    assert uvicorn_proxy_headers("10.0.0.1", h, forwarded_allow_ips="10.0.0.0/8").addr == \
        "8.8.8.8"
    assert uvicorn_proxy_headers("10.0.0.1", h, forwarded_allow_ips="*").addr == "1.2.3.4"
    attack = [(XFF, "1.2.3.4, 10.0.0.2")]
    assert werkzeug_proxy_fix("6.6.6.6", attack).addr == "10.0.0.2"  # no peer check
    assert uvicorn_proxy_headers("6.6.6.6", attack, forwarded_allow_ips="10.0.0.0/8").addr == \
        "6.6.6.6"
    junk = [(XFF, "1.2.3.4, junk")]
    assert werkzeug_proxy_fix("10.0.0.1", junk).addr == "junk"
    assert uvicorn_proxy_headers("10.0.0.1", junk, forwarded_allow_ips="10.0.0.0/8").addr == \
        "junk"
    assert express_trust_proxy("10.0.0.1", h, hops=1).addr == "10.0.0.2"
    assert express_trust_proxy("10.0.0.1", h, hops=2).addr == "8.8.8.8"


# -- trust and parsing -----------------------------------------------------------------------------
def test_trust_compiles_presets_and_matches_mapped() -> None:
    t = Trust(["loopback", "192.0.2.0/24", "unix:"])
    assert t.rule_for(ip_address("127.0.0.5")) == "127.0.0.0/8 (loopback)"
    assert t(ip_address("::ffff:192.0.2.9"))
    assert t("unix:/run/x.sock")
    assert not t(ip_address("198.51.100.1"))
    assert not Trust(["private"])(ip_address("203.0.113.5"))  # documentation ≠ private here
    with pytest.raises(ConfigurationError, match=r"10\.0\.0\.1/8"):
        Trust(["10.0.0.1/8"])
    assert Trust("10.0.0.0/8, ::1").rules[1].text == "::1"
    hop = Trust(hops=2)
    assert hop("1.2.3.4", 0) and hop("1.2.3.4", 1) and not hop("1.2.3.4", 2)


def test_forwarded_parser() -> None:
    els = parse_forwarded('for="_gazonk", For="[2001:db8:cafe::17]:4711";proto=https, '
                          'for=192.0.2.43;by=203.0.113.60;host="ex\\"ample"')
    assert [e.for_ for e in els] == ["_gazonk", "[2001:db8:cafe::17]:4711", "192.0.2.43"]
    assert els[1].proto == "https" and els[2].host == 'ex"ample' and els[2].by == "203.0.113.60"
    for bad in ("for", "for=", 'for="x', "for=a;for=b", "for=a b"):
        with pytest.raises(ForwardedSyntaxError):
            parse_forwarded(bad)
    assert parse_forwarded("") == []
    node = parse_node("_hidden", forwarded=True)
    assert node is not None and node.obfuscated and node.ip is None
    assert parse_node("2001:db8::1", forwarded=True) is None  # RFC 7239 wants brackets
    assert parse_ports(", 51234, x") == [None, 51234, None]


@settings(max_examples=400, deadline=None)
@given(entries=st.lists(_ENTRY, min_size=0, max_size=40), lines=st.integers(1, 3),
       hops=st.sampled_from([None, 1, 2, 3]), peer=st.sampled_from(["10.0.0.1", "6.6.6.6"]))
def test_client_ip_fast_path_agrees_with_the_traced_walk(
        entries: list[str], lines: int, hops: int | None, peer: str) -> None:
    from realip.resolve import ClientIP, _client_ip

    chunk = max(1, len(entries) // lines)
    headers = [(XFF, ", ".join(entries[i : i + chunk])) for i in range(0, len(entries), chunk)]
    resolver = ClientIP(T, hops=hops)
    fast = resolver(peer, headers, max_entries=16)
    slow = _client_ip(resolver, peer, headers, None, 16, 8192)
    assert (fast.addr, fast.port, fast.code) == (slow.addr, slow.port, slow.code)
    assert fast.reason == slow.reason and fast.trace == slow.trace


_TEXT = st.text(alphabet=st.sampled_from("0123456789abcdefx.:[]%, \t²_-uknow\x00é"), max_size=40)


@settings(max_examples=500, deadline=None)
@given(value=_TEXT, second=_TEXT)
def test_peer_data_never_raises(value: str, second: str) -> None:
    from realip import nginx as ngx

    erlang.parse_address(value)
    ngx.parse_addr_port(value.encode("utf-8"))
    parse_node(value)
    parse_node(value, forwarded=True)
    with contextlib.suppress(ForwardedSyntaxError):
        parse_forwarded(value)
    headers = [(XFF, value), (XFF, second), ("X-Forwarded-Port", second), ("X-Real-IP", value)]
    for recursive in (False, True):
        nginx_r = nginx_realip(
            "10.0.0.1", headers, set_real_ip_from=T, real_ip_header="X-Forwarded-For",
            recursive=recursive)
        assert nginx_r.addr
    assert emqx_ws_peer("10.0.0.1", 1, headers).addr
    assert emqx_ws_peer("10.0.0.1", 1, headers, proxy_address_allow=T).addr
    client_ip("10.0.0.1", headers, trusted=T)
    client_ip("10.0.0.1", [("Forwarded", value)], trusted=T)
    haproxy_hdr_ip(headers)


def test_client_ip_sees_a_trusted_list_changed_in_place() -> None:
    trusted = ["10.0.0.0/8"]
    headers = [(XFF, "1.2.3.4, 172.16.0.9")]
    assert client_ip("10.0.0.1", headers, trusted=trusted).addr == "172.16.0.9"
    trusted.append("172.16.0.0/12")
    assert client_ip("10.0.0.1", headers, trusted=trusted).addr == "1.2.3.4"
    assert client_ip("10.0.0.1", headers, trusted="10.0.0.0/8, 172.16.0.0/12").addr == "1.2.3.4"


# ----------------------------------------------------------------------------------------------
# The port is never the client's choice (issue 11): X-Forwarded-Port only when the configuration
# says the trusted proxies append it, aligned from the right with their part of the list.

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from realip.resolve import ClientIP  # noqa: E402


def test_a_client_sent_port_is_not_returned() -> None:
    r = ClientIP(["10.0.0.0/8"])("10.0.0.5", [("X-Forwarded-For", "203.0.113.7"),
                                              ("X-Forwarded-Port", "31337")])
    assert (r.addr, r.port) == ("203.0.113.7", None)
    with_port = ClientIP(["10.0.0.0/8"], x_forwarded_port=True)
    # the proxy appended 50412 after the client's own claim: the right-aligned element is its
    r = with_port("10.0.0.5", [("X-Forwarded-For", "203.0.113.7"),
                               ("X-Forwarded-Port", "31337, 50412")])
    assert (r.addr, r.port) == ("203.0.113.7", 50412)
    assert client_ip("10.0.0.5", [("X-Forwarded-For", "203.0.113.7"),
                                  ("X-Forwarded-Port", "31337, 50412")], trusted=["10.0.0.0/8"],
                     x_forwarded_port=True).port == 50412


def test_bad_configuration_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match=r"10\.0\.0\.0/8"):
        ClientIP(["::ffff:10.0.0.0/104"])
    with pytest.raises(ConfigurationError, match="hops"):
        ClientIP(["10.0.0.0/8"], hops=True)
    with pytest.raises(ConfigurationError, match="list"):
        ClientIP("10.0.0.0/8")
    with pytest.raises(ConfigurationError, match="x_forwarded_port"):
        ClientIP(["10.0.0.0/8"], x_forwarded_port=1)  # type: ignore[arg-type]


_port = st.integers(1, 65535)


@settings(max_examples=400, deadline=None)
@given(claims=st.lists(st.tuples(st.sampled_from(["198.51.100.66", "10.9.9.9", "127.0.0.1"]),
                                 _port), max_size=4),
       xfp_claims=st.lists(_port, max_size=4), proxies=st.integers(1, 4),
       real_port=_port, with_xfp=st.booleans(), proxies_set_port=st.booleans())
def test_no_client_chosen_port(claims: list[tuple[str, int]], xfp_claims: list[int],
                               proxies: int, real_port: int, with_xfp: bool,
                               proxies_set_port: bool) -> None:
    """A client at 203.0.113.7:real_port sends any X-Forwarded-For / X-Forwarded-Port it likes;
    each trusted proxy (10.0.0.x) appends the address (and, if it does, the port) of whoever
    connected to it. The port client_ip returns is the real one, or unknown — never a claim."""
    xff = [a for a, _ in claims]
    xfp = list(xfp_claims)
    sender, sender_port = "203.0.113.7", real_port
    for i in range(proxies):
        xff.append(sender)
        if proxies_set_port:
            xfp.append(sender_port)
        sender, sender_port = f"10.0.0.{i + 1}", 40000 + i
    headers = [("X-Forwarded-For", ", ".join(xff))]
    if xfp:
        headers.append(("X-Forwarded-Port", ", ".join(map(str, xfp))))
    r = ClientIP(["10.0.0.0/8"], x_forwarded_port=with_xfp)(sender, headers,
                                                             peer_port=sender_port)
    assert r.addr == "203.0.113.7"
    if with_xfp and proxies_set_port:
        assert r.port == real_port
    elif not with_xfp:
        assert r.port is None
    # (x_forwarded_port=True while the proxies do not append one is a false configuration:
    # the docstring says the option asserts that every trusted proxy appends its element)


# The fast path remembers the trusted proxies' part of the last list it walked; one resolver fed
# a sequence of requests (spacing, lines, entry counts and bounds varying) must still give, for
# every request, exactly what the traced walk gives.
_SEQ_ENTRY = st.sampled_from(["10.0.0.2", " 10.0.0.3", "1.1.1.1", " 2.2.2.2", "8.8.8.8:80",
                              "10.9.9.9 ", "junk", "", " [2001:db8::1]:1", "10.0.0.2:7"])


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(st.tuples(st.lists(_SEQ_ENTRY, max_size=9), st.integers(1, 3),
                                   st.sampled_from([2, 3, 5, 16, 32]),
                                   st.sampled_from(["10.0.0.1", "6.6.6.6"])),
                         min_size=1, max_size=12),
       hops=st.sampled_from([None, None, 2]))
def test_client_ip_fast_path_over_a_sequence_agrees_with_the_traced_walk(
        requests: list[tuple[list[str], int, int, str]], hops: int | None) -> None:
    from realip.resolve import _client_ip

    resolver = ClientIP(T, hops=hops)
    for entries, lines, max_entries, peer in requests:
        chunk = max(1, len(entries) // lines)
        headers = [(XFF, ",".join(entries[i : i + chunk]))
                   for i in range(0, len(entries), chunk)]
        for _ in range(2):  # the second time through, the suffix learned from the first
            fast = resolver(peer, headers, max_entries=max_entries)
            slow = _client_ip(resolver, peer, headers, None, max_entries, 8192)
            assert (fast.addr, fast.port, fast.code) == (slow.addr, slow.port, slow.code), \
                (headers, max_entries)
            assert fast.reason == slow.reason


# Over whole header sets: whatever the client writes (X-Forwarded-For entries with ports,
# Forwarded elements with ports, X-Forwarded-Port) — its claims use ports 30000–39999 — and
# however the trusted proxies (10.0.0.x) append what they saw (an address, ip:port, a
# Forwarded for="ip:port", an X-Forwarded-Port element: real ports are 40000+), the port
# returned is the TCP peer's, None, or one a trusted hop wrote: never a claim.
_claim_port = st.integers(30000, 39999)
_claim_addr = st.sampled_from(["198.51.100.66", "10.9.9.9", "127.0.0.1", "2001:db8::66"])


@settings(max_examples=600, deadline=None)
@given(xff_claims=st.lists(st.tuples(_claim_addr, st.none() | _claim_port), max_size=3),
       fwd_claims=st.lists(st.tuples(_claim_addr, st.none() | _claim_port), max_size=3),
       xfp_claims=st.lists(_claim_port, max_size=3), client_header=st.sampled_from(
           ["none", "xff", "fwd", "both"]),
       proxies=st.integers(1, 3), style=st.sampled_from(["ip", "ip:port", "forwarded"]),
       proxies_set_port=st.booleans(), with_xfp=st.booleans(), hops=st.sampled_from([None, 4]),
       real_port=st.integers(40000, 49999))
def test_no_client_chosen_port_over_header_sets(
        xff_claims: list[tuple[str, int | None]], fwd_claims: list[tuple[str, int | None]],
        xfp_claims: list[int], client_header: str, proxies: int, style: str,
        proxies_set_port: bool, with_xfp: bool, hops: int | None, real_port: int) -> None:
    def xff_text(addr: str, port: int | None) -> str:
        if port is None:
            return addr
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

    xff = [xff_text(a, p) for a, p in xff_claims] if client_header in ("xff", "both") else []
    fwd = [f'for="{xff_text(a, p)}"' if p is not None or ":" in a else f"for={a}"
           for a, p in fwd_claims] if client_header in ("fwd", "both") else []
    xfp = [str(p) for p in xfp_claims]
    written: set[int] = set()
    sender, sender_port = "203.0.113.7", real_port
    for i in range(proxies):
        if style == "forwarded":
            fwd.append(f'for="{sender}:{sender_port}"')
        else:
            xff.append(f"{sender}:{sender_port}" if style == "ip:port" else sender)
        if style != "ip":
            written.add(sender_port)
        if proxies_set_port:
            xfp.append(str(sender_port))
            written.add(sender_port)
        sender, sender_port = f"10.0.0.{i + 1}", 40000 + i
    headers = []
    if xff:
        headers.append(("X-Forwarded-For", ", ".join(xff)))
    if fwd:
        headers.append(("Forwarded", ", ".join(fwd)))
    if xfp:
        headers.append(("X-Forwarded-Port", ", ".join(xfp)))
    # x_forwarded_port=True is the configuration's promise that every trusted proxy appends an
    # element: only generated where they do (a false promise hands the client the port)
    with_xfp = with_xfp and proxies_set_port
    resolver = ClientIP(["10.0.0.0/8"], hops=hops, x_forwarded_port=with_xfp)
    r = resolver(sender, headers, peer_port=sender_port)
    assert r.port is None or r.port == sender_port or r.port in written, (headers, r)
    assert r.port is None or r.port >= 40000
    assert client_ip(sender, headers, trusted=["10.0.0.0/8"], hops=hops,
                     x_forwarded_port=with_xfp).port == r.port
