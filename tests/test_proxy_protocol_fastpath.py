"""decode()'s v1 fast path (one regex, inet_pton, the address and destination memos) against the
careful walker: the same header or the same error for every line, however the memos were filled
before — a destination cached with one port, texts cached for the other family, junk next to
valid texts — and the memos stay bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realip.errors import InvalidProxyHeader
from realip.proxy_protocol import _codec, decode


def _walked(line: bytes) -> object:
    """What the careful path says (a header, None, or the error's reason and message)."""
    try:
        return _codec._walk(line, None, 4096, True, None)
    except InvalidProxyHeader as exc:
        return (exc.reason, str(exc))


def _decoded(line: bytes) -> object:
    try:
        return decode(line)
    except InvalidProxyHeader as exc:
        return (exc.reason, str(exc))


def _same(line: bytes) -> None:
    fast, careful = _decoded(line), _walked(line)
    assert fast == careful, line
    if not isinstance(fast, tuple) and fast is not None:
        assert isinstance(careful, type(fast))
        assert fast.v1_text == careful.v1_text  # type: ignore[union-attr]
        assert fast.size == careful.size  # type: ignore[union-attr]
        assert type(fast.source.host) is type(careful.source.host)  # type: ignore[union-attr]


DESTS = [b"198.51.100.1 40000 1883", b"198.51.100.1 40000 01883", b"198.51.100.1 40000 65536",
         b"198.51.100.1 40000 0", b"198.51.100.1 40000 00", b"198.51.100.1 40000 65535",
         b"198.51.100.1 040000 1883", b"198.51.100.01 40000 1883", b"::1 40000 1883"]


@pytest.mark.parametrize("tail", DESTS)
def test_a_cached_destination_never_lets_a_bad_port_through(tail: bytes) -> None:
    # the destination 198.51.100.1 with port 1883 is in the memo; the same address with another
    # port text must still be checked
    assert decode(b"PROXY TCP4 10.0.0.1 198.51.100.1 1 1883\r\n") is not None
    _same(b"PROXY TCP4 10.9.8.7 " + tail + b"\r\n")
    _same(b"PROXY TCP4 10.9.8.7 " + tail + b"\r\nMQTT")


TCP6 = [b"2001:DB8::7 2001:db8::1 1 2", b"2001:0db8:0000:0000:0000:0000:0000:0007 ::1 1 2",
        b"::ffff:203.0.113.7 ::1 1 2", b"2001:db8::7 2001:db8::1 1 02", b"1.2.3.4 ::1 1 2",
        b"::1 1.2.3.4 1 2", b"fe80::1%eth0 ::1 1 2", b"2001:db8:::7 ::1 1 2",
        b"2001:db8::7 2001:DB8::1 65535 0"]


@pytest.mark.parametrize("body", TCP6)
def test_tcp6_texts_as_written_hit_or_miss(body: bytes) -> None:
    line = b"PROXY TCP6 " + body + b"\r\n"
    _same(line)
    _same(line)  # now from the memos
    _same(line.replace(b"TCP6", b"TCP4"))  # the other family's memo must not answer


def test_junk_in_an_address_is_the_walkers_error_not_a_crash() -> None:
    for junk in (b"1.2.3.4\x00", b"1.2.3.\xff", b"1.2.3.4\r", b"1.2..3", b"01.2.3.4"):
        _same(b"PROXY TCP4 " + junk + b" 198.51.100.1 1 1883\r\n")
        _same(b"PROXY TCP4 10.0.0.1 " + junk + b" 1 1883\r\n")


def test_the_memos_stay_bounded() -> None:
    for i in range(9000):
        h = decode(f"PROXY TCP4 10.0.{i >> 8 & 255}.{i & 255} 192.0.{i >> 8 & 255}.{i & 255} "
                   f"{i} {i + 1}\r\n".encode())
        assert h is not None and h.destination.port == i + 1
        assert str(h.destination.host) == f"192.0.{i >> 8 & 255}.{i & 255}"
    for memo in (_codec._V1_MEMO4, _codec._V1_MEMO6, _codec._V1_DEST4, _codec._V1_DEST6):
        assert len(memo) <= _codec._V1_MEMO_MAX


_octet = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "255", "256", ""]))
_v4 = st.lists(_octet, min_size=3, max_size=5).map(".".join)
_v6 = st.sampled_from(["::1", "2001:db8::1", "2001:DB8::7", "::ffff:1.2.3.4", "1::2::3",
                       "fe80::1", "12345::1", "::"])
_port = st.one_of(st.integers(0, 70000).map(str), st.sampled_from(["00", "01", "065535", ""]))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["TCP4", "TCP6"]), st.one_of(_v4, _v6), st.one_of(_v4, _v6), _port, _port,
       st.sampled_from(["", "MQTT", "\r\n"]))
def test_fast_path_equals_the_walker(proto: str, src: str, dst: str, sport: str, dport: str,
                                     rest: str) -> None:
    line = f"PROXY {proto} {src} {dst} {sport} {dport}\r\n{rest}".encode()
    _same(line)
    _same(line)
