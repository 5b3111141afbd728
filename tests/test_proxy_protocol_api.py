"""The codec's public API beyond vectors: building, constructor checks, Reader timing, CLI."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address

import pytest

from realip import EncodeError, InvalidProxyHeader, Reason
from realip.__main__ import main
from realip.proxy_protocol import (
    TLV,
    Command,
    Endpoint,
    Family,
    ProxyHeader,
    Reader,
    TLVType,
    Transport,
    annotate,
    build,
    decode,
    encode,
    make_header,
)


def test_build_haproxy_style_promotes_mixed_families_to_v4_mapped() -> None:
    v1 = build(("192.0.2.1", 5), ("2001:db8::1", 6), version=1)
    assert v1 == b"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 5 6\r\n"
    v2 = decode(build(("192.0.2.1", 5), ("2001:db8::1", 6)))
    assert v2 is not None and v2.family is Family.INET6
    assert v2.source == Endpoint(IPv6Address("::ffff:192.0.2.1"), 5)


def test_build_nginx_style() -> None:
    # v1: protocol from the source family, addresses printed as they are (spec-invalid)
    line = build(("192.0.2.1", 5), ("2001:db8::1", 6), version=1, style="nginx")
    assert line == b"PROXY TCP4 192.0.2.1 2001:db8::1 5 6\r\n"
    with pytest.raises(InvalidProxyHeader) as exc:
        decode(line)
    assert exc.value.reason is Reason.V1_BAD_ADDRESS
    # v2: two v4-mapped sides are demoted to INET, CRC32C goes last
    h = make_header(("::ffff:192.0.2.1", 5), ("::ffff:198.51.100.1", 6), style="nginx",
                    crc32c="last")
    assert h.family is Family.INET and h.tlvs[-1].type == TLVType.CRC32C
    hp = make_header(("::ffff:192.0.2.1", 5), ("::ffff:198.51.100.1", 6))
    assert hp.family is Family.INET6


def test_nginx_v2_example_bytes() -> None:
    # semantics.md §2.4: nginx v2 for 192.0.2.1:56324 -> 198.51.100.1:1883, CRC32C appended last
    data = build(("192.0.2.1", 56324), ("198.51.100.1", 1883), crc32c="last", style="nginx")
    assert data.hex() == ("0d0a0d0a000d0a515549540a" "2111" "0013" "c0000201" "c6336401" "dc04"
                          "075b" "030004" "6321c984")


def test_unix_client_gives_unknown_or_local() -> None:
    assert build(("/run/client.sock", None), ("192.0.2.1", 1883), version=1) == \
        b"PROXY UNKNOWN\r\n"
    h = decode(build(("/run/client.sock", None), ("192.0.2.1", 1883)))
    assert h is not None and h.command is Command.LOCAL and h.source is None
    u = decode(build(("/run/a.sock", None), ("/run/b.sock", None)))
    assert u is not None and u.family is Family.UNIX
    assert u.source == Endpoint("/run/a.sock", None)


def test_constructor_validates() -> None:
    ok = ProxyHeader(2, Command.PROXY, Family.INET, Transport.STREAM,
                     ("192.0.2.1", 1), ("192.0.2.2", 2))
    assert ok.source == Endpoint(IPv4Address("192.0.2.1"), 1)
    bad = [
        lambda: ProxyHeader(3, 1, 1, 1, ("192.0.2.1", 1), ("192.0.2.2", 2)),
        lambda: ProxyHeader(2, 1, 1, 1, ("2001:db8::1", 1), ("192.0.2.2", 2)),
        lambda: ProxyHeader(2, 1, 1, 1, ("192.0.2.1", 70000), ("192.0.2.2", 2)),
        lambda: ProxyHeader(2, 1, 1, 1, None, None),
        lambda: ProxyHeader(1, 0, 1, 1, ("192.0.2.1", 1), ("192.0.2.2", 2)),
        lambda: ProxyHeader(1, 1, 1, 1, ("192.0.2.1", 1), ("192.0.2.2", 2), tlvs=[(4, b"")]),
        lambda: ProxyHeader(2, 1, 9, 1, None, None),
        lambda: ProxyHeader(2, 0, 1, 1, None, None, tlvs=[(4, b"")]),  # TLVs would be skipped
        lambda: ProxyHeader(2, 0, 1, 1, None, None, skipped=b"\0" * 5),
        lambda: ProxyHeader(2, 1, 1, 1, ("192.0.2.1", 1), ("192.0.2.2", 2), tlvs=[(300, b"")]),
    ]
    for make in bad:
        with pytest.raises(EncodeError):
            make()


def test_equality_ignores_size_and_spelling() -> None:
    a = decode(b"PROXY TCP6 2001:0DB8::1 ::1 1 2\r\n")
    b = decode(b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n")
    assert a == b and hash(a) == hash(b)
    assert a is not None and encode(a) == b"PROXY TCP6 2001:0DB8::1 ::1 1 2\r\n"
    moved = a._replace(source=Endpoint(IPv6Address("2001:db8::2"), 1))
    assert encode(moved) == b"PROXY TCP6 2001:db8::2 ::1 1 2\r\n"
    assert a != (2, 1)  # not equal to a plain tuple


def test_encode_fills_crc_wherever_it_stands_and_can_keep_a_wrong_one() -> None:
    h = make_header(("192.0.2.1", 1), ("192.0.2.2", 2), tlvs=[TLV(TLVType.NOOP, b"xyz")],
                    crc32c="last")
    good = encode(h)
    assert decode(good) == h
    tampered = encode(h._replace(tlvs=(h.tlvs[0], TLV(3, b"\0\0\0\1"))), fill_crc32c=False)
    with pytest.raises(InvalidProxyHeader) as exc:
        decode(tampered)
    assert exc.value.reason is Reason.CRC32C_MISMATCH
    assert decode(tampered, verify_crc32c=False) is not None


def test_reader_times_the_sender() -> None:
    now = [100.0]
    r = Reader(clock=lambda: now[0])
    assert r.feed(b"PROXY ") is None
    now[0] = 102.5
    assert r.waited() == 2.5
    assert not r.expired(3)
    assert r.remaining(3) == 0.5
    now[0] = 103.0
    assert r.expired(3)
    assert r.feed(b"UNKNOWN\r\nhello") is not None
    assert not r.expired(3) and r.trailing == b"hello"
    r.feed(b" world")
    assert r.trailing == b"hello world"


def test_reader_eof_and_sticky_errors() -> None:
    r = Reader()
    r.feed(b"PROXY TCP4 ")
    with pytest.raises(InvalidProxyHeader) as exc:
        r.eof()
    assert exc.value.reason is Reason.TRUNCATED
    r2 = Reader()
    with pytest.raises(InvalidProxyHeader):
        r2.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(InvalidProxyHeader):
        r2.feed(b"more")


def test_reader_v2_size_cap_is_checked_before_waiting() -> None:
    r = Reader(max_v2_size=64)
    head = bytes.fromhex("0d0a0d0a000d0a515549540a" "2111" "0100")
    with pytest.raises(InvalidProxyHeader) as exc:
        r.feed(head)
    assert exc.value.reason is Reason.V2_TOO_LARGE


def test_annotate_never_raises_and_marks_errors() -> None:
    fields = annotate(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 99999\r\n")
    assert fields[-1].verdict == "error" and "v1_bad_port" in fields[-1].meaning
    assert [f.verdict for f in annotate(b"")] == []
    assert annotate(b"\x00")[-1].verdict == "error"


def test_cli_decode_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "50524f585920554e4b4e4f574e0d0a"]) == 0
    out = capsys.readouterr().out
    assert "UNKNOWN" in out and "accepted" in out
    assert main(["decode", "--json", build(("192.0.2.1", 1), ("192.0.2.2", 2)).hex()]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == {"host": "192.0.2.1", "port": 1} and doc["version"] == 2
    assert main(["decode", "--json", "474554"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["reason"] == "not_proxy"
    assert main(["decode", "50524f"]) == 2


def test_v1_address_memo_keeps_families_apart() -> None:
    assert decode(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n") is not None
    with pytest.raises(InvalidProxyHeader) as exc:
        decode(b"PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n")
    assert exc.value.reason is Reason.V1_BAD_ADDRESS
    assert decode(b"PROXY TCP6 ::1 ::2 1 2\r\n") is not None
    with pytest.raises(InvalidProxyHeader):
        decode(b"PROXY TCP4 ::1 ::2 1 2\r\n")
    # many distinct addresses: the memo stays bounded and results stay right
    from realip.proxy_protocol import _codec

    for i in range(5000):
        h = decode(f"PROXY TCP4 10.{i >> 8 & 255}.{i & 255}.1 192.0.2.2 1 2\r\n".encode())
        assert h is not None and str(h.source) == f"10.{i >> 8 & 255}.{i & 255}.1:1"
    assert len(_codec._V1_MEMO4) <= _codec._V1_MEMO_MAX


# -- the v1 fast path for tiny segments never changes a verdict -------------------------------

from hypothesis import given as _given  # noqa: E402
from hypothesis import settings as _settings  # noqa: E402
from hypothesis import strategies as _st  # noqa: E402

_V1_ALPHABET = b"PROXY TCP46UNKOWabcdefABCDEF0123456789:. \r\n"


@_settings(max_examples=3000, deadline=None)
@_given(_st.binary(max_size=60).map(lambda b: bytes(_V1_ALPHABET[x % len(_V1_ALPHABET)]
                                                  for x in b)),
        _st.sampled_from([b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY TCP4 192.168.1",
                          b"PROXY TCP6 2001:db8", b"PROXY TCP6 ::ffff:1.2",
                          b"PROXY TCP6 fe80::1 ", b""]))
def test_bytewise_reader_agrees_with_decode_on_every_prefix(tail: bytes, head: bytes) -> None:
    """Fed one byte at a time (the reader's O(1) path), every prefix gets decode()'s verdict:
    incomplete, the header, or the same error."""
    from realip import InvalidProxyHeader
    from realip.proxy_protocol import Reader, decode

    data = head + tail
    reader = Reader()
    for i in range(len(data)):
        prefix = data[: i + 1]
        try:
            want = decode(prefix)
        except InvalidProxyHeader as exc:
            with pytest.raises(InvalidProxyHeader) as got:
                reader.feed(data[i : i + 1])
            assert got.value.reason == exc.reason
            return
        got_h = reader.feed(data[i : i + 1])
        if want is None:
            assert got_h is None, prefix
        else:
            assert got_h == want and reader.trailing == prefix[want.size:]
            return
