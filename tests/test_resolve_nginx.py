"""nginx realip, table-driven (semantics.md §1.6 and more); the real-nginx differential suite is
in tests/real/."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realip import ConfigurationError
from realip import nginx as ngx
from realip.resolve import ProxyProtocolInfo, nginx_interpolate, nginx_realip

TRUST = ["10.0.0.0/8"]

# (XFF line(s), recursive, $remote_addr, $remote_port or None, nginx code)
TABLE = [
    ("1.2.3.4", False, "1.2.3.4", None, "OK"),
    ("1.1.1.1, 2.2.2.2", False, "2.2.2.2", None, "OK"),
    ("1.1.1.1, 10.0.0.2", False, "10.0.0.2", None, "OK"),
    ("1.1.1.1, 2.2.2.2, 10.0.0.2", True, "2.2.2.2", None, "DONE"),
    ("10.0.0.5, 10.0.0.2", True, "10.0.0.5", None, "OK"),
    ("garbage, 10.0.0.2", True, "10.0.0.2", None, "DONE"),
    ("1.1.1.1, garbage", True, "10.0.0.1", 5555, "DECLINED"),
    ("1.1.1.1 ,, ", False, "1.1.1.1", None, "OK"),
    (", ,10.0.0.7", True, "10.0.0.7", None, "DONE"),
    ("1.1.1.1:8080", False, "1.1.1.1", 8080, "OK"),
    ("1.1.1.1:0", False, "10.0.0.1", 5555, "DECLINED"),
    ("[2001:db8::1]:443", False, "2001:db8::1", 443, "OK"),
    ("[2001:db8::1]", False, "10.0.0.1", 5555, "DECLINED"),  # 1.22: needs a port
    ("2001:db8::1", False, "2001:db8::1", None, "OK"),
    ("1.1.1.1, ::ffff:10.0.0.9", True, "1.1.1.1", None, "OK"),
    ("255.255.255.255", False, "10.0.0.1", 5555, "DECLINED"),
    ("010.001.002.003", False, "10.1.2.3", None, "OK"),
    ("1..2.3", False, "1.0.2.3", None, "OK"),
    ("1.1.1.1,\t2.2.2.2", False, "10.0.0.1", 5555, "DECLINED"),
    (["1.1.1.1", "2.2.2.2"], False, "2.2.2.2", None, "OK"),
    (["1.1.1.1", "10.0.0.3"], True, "1.1.1.1", None, "OK"),
    (["1.1.1.1, 10.0.0.4", "10.0.0.3"], True, "1.1.1.1", None, "OK"),
    (["", "10.0.0.3"], True, "10.0.0.3", None, "DONE"),
    ("", False, "10.0.0.1", 5555, "DECLINED"),
    (", ,", False, "10.0.0.1", 5555, "DECLINED"),
    ("example.com", False, "10.0.0.1", 5555, "DECLINED"),
    ("unknown", False, "10.0.0.1", 5555, "DECLINED"),
    (",1.2.3.4", False, "10.0.0.1", 5555, "DECLINED"),  # byte 0 is never a separator to nginx
    ("::ffff:1.2.3.4", False, "::ffff:1.2.3.4", None, "OK"),
    ("1.2.3.4:80:90", False, "10.0.0.1", 5555, "DECLINED"),
    ("[1.2.3.4]:80", False, "1.2.3.4", 80, "OK"),
    ("fe80::1%eth0", False, "10.0.0.1", 5555, "DECLINED"),
    (":1:2:3:4:5:6:7:8", False, "1:2:3:4:5:6:7:8", None, "OK"),
    ("1.2.3.4:+80", False, "10.0.0.1", 5555, "DECLINED"),
    ("1.2.3.4:0080", False, "1.2.3.4", 80, "OK"),
    ("1.2.3.4:65536", False, "10.0.0.1", 5555, "DECLINED"),
]


def _headers(value: str | list[str]) -> list[tuple[str, str]]:
    values = [value] if isinstance(value, str) else value
    return [("X-Forwarded-For", v) for v in values]


@pytest.mark.parametrize(("value", "recursive", "addr", "port", "code"), TABLE)
def test_semantics_table(value: str | list[str], recursive: bool, addr: str, port: int | None,
                         code: str) -> None:
    r = nginx_realip("10.0.0.1", _headers(value), set_real_ip_from=TRUST,
                     real_ip_header="X-Forwarded-For", recursive=recursive, peer_port=5555)
    assert (r.addr, r.port, r.code) == (addr, port, code)
    assert r.realip_remote_addr == "10.0.0.1" and r.realip_remote_port == 5555
    assert r.trace and r.trace[0].verdict == "peer"


def test_untrusted_peer_changes_nothing() -> None:
    r = nginx_realip("8.8.8.8", _headers("1.2.3.4"), set_real_ip_from=TRUST,
                     real_ip_header="X-Forwarded-For", recursive=True, peer_port=1)
    assert (r.addr, r.port, r.code) == ("8.8.8.8", 1, "DECLINED")
    assert r.trace[0].trusted is False and len(r.trace) == 1


def test_brackets_without_port_from_1_27_3() -> None:
    r = nginx_realip("10.0.0.1", _headers("[2001:db8::1]"), set_real_ip_from=TRUST,
                     real_ip_header="X-Forwarded-For", version="1.27.3")
    assert r.addr == "2001:db8::1" and r.port is None


def test_header_keywords_are_case_sensitive() -> None:
    headers = [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2")]
    keyword = nginx_realip("10.0.0.1", headers, set_real_ip_from=TRUST,
                           real_ip_header="X-Forwarded-For")
    generic = nginx_realip("10.0.0.1", headers, set_real_ip_from=TRUST,
                           real_ip_header="x-forwarded-for")
    assert keyword.addr == "2.2.2.2"  # the last line
    assert generic.addr == "1.1.1.1"  # a generic header: its first line only


def test_x_real_ip_first_line_is_a_list_too() -> None:
    headers = [("X-Real-IP", "1.1.1.1, 2.2.2.2"), ("X-Real-IP", "3.3.3.3")]
    r = nginx_realip("10.0.0.1", headers, set_real_ip_from=TRUST)
    assert r.addr == "2.2.2.2"


def test_no_set_real_ip_from_means_no_realip() -> None:
    r = nginx_realip("10.0.0.1", _headers("1.2.3.4"), set_real_ip_from=[],
                     real_ip_header="X-Forwarded-For", peer_port=7)
    assert (r.addr, r.port, r.code) == ("10.0.0.1", 7, "DECLINED")


def test_proxy_add_x_forwarded_for_uses_post_realip_address_and_keeps_empty_lines() -> None:
    r = nginx_realip("10.0.0.1", [("X-Forwarded-For", ""), ("X-Forwarded-For", "1.2.3.4")],
                     set_real_ip_from=TRUST, real_ip_header="X-Forwarded-For")
    assert r.addr == "1.2.3.4"
    assert r.proxy_add_x_forwarded_for == ", 1.2.3.4, 1.2.3.4"
    none = nginx_realip("10.0.0.1", [], set_real_ip_from=TRUST)
    assert none.proxy_add_x_forwarded_for == "10.0.0.1"
    assert none.variables["realip_remote_addr"] == "10.0.0.1"


def test_article_method_two_header_rebuild() -> None:
    # LB3 of the article: trust 172.16.0.0/24, recursion on, then rebuild XFF and X-Real-IP.
    headers = [("X-Forwarded-For", "127.0.0.1, 1.94.170.163, 172.16.0.116"),
               ("X-Forwarded-Port", ", 39872, 51234")]
    r = nginx_realip("172.16.0.200", headers, set_real_ip_from=["172.16.0.0/24"],
                     real_ip_header="X-Forwarded-For", recursive=True, peer_port=41000)
    assert r.addr == "1.94.170.163"
    assert nginx_interpolate("$remote_addr", r.variables) == "1.94.170.163"
    assert nginx_interpolate("$http_x_forwarded_for, $realip_remote_addr", r.variables) == \
        "127.0.0.1, 1.94.170.163, 172.16.0.116, 172.16.0.200"
    off = nginx_realip("172.16.0.200", headers, set_real_ip_from=["172.16.0.0/24"],
                       real_ip_header="X-Forwarded-For", recursive=False)
    assert off.addr == "172.16.0.116"  # the nearest proxy
    assert nginx_interpolate("${http_x_forwarded_port}|$nosuchvar|", r.variables) == \
        ", 39872, 51234||"


def test_proxy_protocol_header_mode_takes_its_port() -> None:
    pp = ProxyProtocolInfo("115.236.21.86", 61177, "172.16.0.116", 1883)
    r = nginx_realip("172.16.0.116", [], set_real_ip_from=["172.16.0.0/24"],
                     real_ip_header="proxy_protocol", proxy_protocol=pp, peer_port=40000)
    assert (r.addr, r.port) == ("115.236.21.86", 61177)
    assert r.variables["proxy_protocol_server_addr"] == "172.16.0.116"
    missing = nginx_realip("172.16.0.116", [], set_real_ip_from=["172.16.0.0/24"],
                           real_ip_header="proxy_protocol", peer_port=40000)
    assert missing.addr == "172.16.0.116" and missing.code == "DECLINED"


def test_unix_peers_and_unix_rule() -> None:
    r = nginx_realip("unix:", _headers("1.2.3.4"), set_real_ip_from=["unix:"],
                     real_ip_header="X-Forwarded-For")
    assert r.addr == "1.2.3.4"
    r2 = nginx_realip("unix:", _headers("1.2.3.4"), set_real_ip_from=["0.0.0.0/0"],
                      real_ip_header="X-Forwarded-For")
    assert r2.addr == "unix:"


def test_v4_mapped_peer_matches_ipv4_rule_and_ipv6_rule_never_matches_mapped() -> None:
    r = nginx_realip("::ffff:10.0.0.1", _headers("1.2.3.4"), set_real_ip_from=TRUST,
                     real_ip_header="X-Forwarded-For")
    assert r.addr == "1.2.3.4"
    r2 = nginx_realip("::ffff:10.0.0.1", _headers("1.2.3.4"), set_real_ip_from=["::ffff:0:0/96"],
                      real_ip_header="X-Forwarded-For")
    assert r2.addr == "::ffff:10.0.0.1"


def test_host_bits_warn_like_nginx() -> None:
    r = nginx_realip("10.0.0.1", _headers("1.2.3.4"), set_real_ip_from=["10.0.0.5/8"],
                     real_ip_header="X-Forwarded-For")
    assert r.addr == "1.2.3.4"
    assert r.warnings == ("low address bits of 10.0.0.5/8 are meaningless",)


def test_bad_configuration_raises_at_call() -> None:
    for bad in (["example.invalid"], ["10.0.0.0/33"], ["10.0.0.0/x"]):
        with pytest.raises(ConfigurationError):
            nginx_realip("10.0.0.1", [], set_real_ip_from=bad)
    with pytest.raises(ConfigurationError):
        nginx_realip("not-an-address", [], set_real_ip_from=TRUST)


# -- grammar and printing --------------------------------------------------------------------
@pytest.mark.parametrize(("text", "value"), [
    (b"1.2.3.4", "1.2.3.4"), (b"010.001.002.003", "10.1.2.3"), (b"1..2.3", "1.0.2.3"),
    (b".1.2.3", "0.1.2.3"), (b"1.2.3.", "1.2.3.0"), (b"255.255.255.255", None), (b"1.2.3", None),
    (b"1.2.3.256", None), (b"::1", "::1"), (b":1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    (b"::ffff:1.2.3.4", "::ffff:1.2.3.4"), (b"1:2:3:4:5:6:7:8:9", None), (b"1::2::3", None),
    (b"fe80::1%eth0", None), (b"12345::", None), (b"::ffff:010.1.2.3", "::ffff:10.1.2.3"),
    (b"", None), (b"1:2:3:4:5:6:7::", None), (b"::", "::"),  # "::" for one group: no
])
def test_parse_addr(text: bytes, value: str | None) -> None:
    got = ngx.parse_addr(text)
    assert (None if got is None else ngx.format_addr(got)) == value


@pytest.mark.parametrize(("addr", "text"), [
    ("::ffff:1.2.3.4", "::ffff:1.2.3.4"), ("::1.2.3.4", "::1.2.3.4"), ("::102", "::0.0.1.2"),
    ("::1", "::1"), ("::2", "::2"), ("::", "::"), ("2001:db8::1", "2001:db8::1"),
    ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"), ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
    ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("1::", "1::"), ("0:0:1::", "0:0:1::"),
])
def test_nginx_prints_ipv6_its_way(addr: str, text: str) -> None:
    assert ngx.format_ipv6(IPv6Address(addr)) == text


# -- properties --------------------------------------------------------------------------------
_ADDRS = st.sampled_from(["10.0.0.2", "10.0.0.3", "1.1.1.1", "2.2.2.2", "10.9.9.9", "3.3.3.3:80",
                          "junk", "", "[2001:db8::1]:1", "::ffff:10.0.0.7"])
_LINES = st.lists(st.lists(_ADDRS, max_size=6).map(", ".join), min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(lines=_LINES, recursive=st.booleans())
def test_result_is_peer_or_an_entry(lines: list[str], recursive: bool) -> None:
    r = nginx_realip("10.0.0.1", _headers(lines), set_real_ip_from=TRUST,
                     real_ip_header="X-Forwarded-For", recursive=recursive, peer_port=9)
    if r.code == "DECLINED":
        assert (r.addr, r.port) == ("10.0.0.1", 9)
    else:
        assert any(s.address == r.addr for s in r.trace[1:])
    untrusted = nginx_realip("8.8.8.8", _headers(lines), set_real_ip_from=TRUST,
                             real_ip_header="X-Forwarded-For", recursive=recursive)
    assert untrusted.addr == "8.8.8.8"


@settings(max_examples=300, deadline=None)
@given(lines=_LINES)
def test_trusting_more_never_moves_the_result_right(lines: list[str]) -> None:
    headers = _headers(lines)
    narrow = nginx_realip("10.0.0.1", headers, set_real_ip_from=["10.0.0.0/24"],
                          real_ip_header="X-Forwarded-For", recursive=True)
    wide = nginx_realip("10.0.0.1", headers, set_real_ip_from=["10.0.0.0/8"],
                        real_ip_header="X-Forwarded-For", recursive=True)
    # The walk with more trust examines a superset of the entries (it stops no earlier).
    assert len(wide.trace) >= len(narrow.trace)


def test_walk_is_linear_in_entries() -> None:
    for n in (10, 100, 1000):
        value = ", ".join(["10.0.0.2"] * n)
        r = nginx_realip("10.0.0.1", _headers(value), set_real_ip_from=TRUST,
                         real_ip_header="X-Forwarded-For", recursive=True)
        assert r.addr == "10.0.0.2" and len(r.trace) == n + 1
