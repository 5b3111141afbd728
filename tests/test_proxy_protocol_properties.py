"""Property tests (Hypothesis) for the PROXY protocol codec.

* Every header the strategies build survives ``encode`` → ``decode`` unchanged, and re-encodes to
  the same bytes.  v2 output is also compared with a reference encoder written here from the
  spec (signature, ver/cmd, fam/transport, length, address block, TLVs, CRC32C over the whole
  header with the field zeroed).
* However the bytes are split, :class:`Reader` returns the same header and keeps every byte
  after it.
* Random bytes and mutated headers make ``decode``/``Reader`` return a header, ``None`` or raise
  :class:`InvalidProxyHeader` — never anything else; ``annotate`` never raises.
"""

from __future__ import annotations

import itertools
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from realip import InvalidProxyHeader
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
    decode,
    encode,
)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
BLOCK = {Family.UNSPEC: 0, Family.INET: 12, Family.INET6: 36, Family.UNIX: 216}
FAM_TRANSPORT = [
    (Family.UNSPEC, Transport.UNSPEC),
    (Family.INET, Transport.STREAM), (Family.INET, Transport.DGRAM),
    (Family.INET6, Transport.STREAM), (Family.INET6, Transport.DGRAM),
    (Family.UNIX, Transport.STREAM), (Family.UNIX, Transport.DGRAM),
]
MAX = 65551

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


# -- strategies --------------------------------------------------------------------------------
ports = st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 80, 443, 65535]))
ipv4 = st.builds(IPv4Address, st.integers(0, 2**32 - 1))
_group = st.one_of(st.just(0), st.just(0), st.just(0xFFFF), st.integers(0, 0xFFFF))
ipv6 = st.one_of(
    st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
    st.builds(lambda gs: IPv6Address(int.from_bytes(struct.pack(">8H", *gs), "big")),
              st.lists(_group, min_size=8, max_size=8)),
    st.builds(lambda v: IPv6Address((0xFFFF << 32) | v), st.integers(0, 2**32 - 1)),  # v4-mapped
    st.builds(IPv6Address, st.integers(0, 2**32 - 1)),  # v4-compatible / ::1 / ::
)
_path_bytes = st.binary(min_size=1, max_size=108).filter(lambda b: b"\x00" not in b)
_abstract = st.binary(min_size=1, max_size=107).filter(lambda b: b"\x00" not in b).map(
    lambda b: b"\x00" + b
)
unix_path = st.one_of(
    st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1, max_size=60)
    .map(lambda s: "/" + s[:107]),
    st.one_of(_path_bytes, _abstract).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
ascii_text = st.text(st.characters(codec="ascii"), max_size=24).map(str.encode)
utf8_text = st.text(st.characters(codec="utf-8"), max_size=12).map(lambda s: s.encode())
small_bin = st.binary(max_size=24)


def _sub(t: int, v: bytes) -> bytes:
    return bytes([t]) + struct.pack(">H", len(v)) + v


ssl_sub = st.one_of(
    st.tuples(st.sampled_from([0x21, 0x23, 0x24, 0x25, 0x26, 0x27]), ascii_text),
    st.tuples(st.just(0x22), utf8_text),
    st.tuples(st.just(0x28), small_bin),
    st.tuples(st.integers(0x29, 0xFF), small_bin),
)
ssl_value = st.builds(
    lambda client, verify, subs: bytes([client]) + struct.pack(">I", verify)
    + b"".join(_sub(t, v) for t, v in subs),
    st.integers(0, 255), st.integers(0, 2**32 - 1), st.lists(ssl_sub, max_size=4),
)
_unassigned = st.one_of(st.integers(0x06, 0x1F), st.integers(0x21, 0x2F), st.integers(0x31, 0xDF))
tlv = st.one_of(
    st.builds(TLV, st.just(int(TLVType.ALPN)), small_bin),
    st.builds(TLV, st.just(int(TLVType.AUTHORITY)), utf8_text),
    st.builds(TLV, st.just(int(TLVType.NOOP)), small_bin),
    st.builds(TLV, st.just(int(TLVType.UNIQUE_ID)), st.binary(max_size=128)),
    st.builds(TLV, st.just(int(TLVType.SSL)), ssl_value),
    st.builds(TLV, st.just(int(TLVType.NETNS)), ascii_text),
    st.builds(TLV, st.just(int(TLVType.AZURE)),
              st.integers(0, 2**32 - 1).map(lambda v: b"\x01" + struct.pack("<I", v))),
    st.builds(TLV, st.just(int(TLVType.GCP)), st.binary(min_size=8, max_size=8)),
    st.builds(TLV, st.just(int(TLVType.AWS)), ascii_text.map(lambda b: b"\x01vpce-" + b)),
    st.builds(TLV, st.integers(0xE0, 0xFF), small_bin),  # custom, experimental, future
    st.builds(TLV, _unassigned, small_bin),
)


@st.composite
def tlv_lists(draw: Any) -> tuple[TLV, ...]:
    items = draw(st.lists(tlv, max_size=6))
    if items and draw(st.booleans()):  # a duplicate of an existing type
        items.append(draw(st.sampled_from(items)))
    if draw(st.booleans()):  # one CRC32C TLV, anywhere, with any placeholder value
        pos = draw(st.integers(0, len(items)))
        items.insert(pos, TLV(int(TLVType.CRC32C), draw(st.binary(min_size=4, max_size=4))))
    return tuple(items)


def endpoints(family: Family) -> Any:
    if family == Family.INET:
        return st.tuples(st.builds(Endpoint, ipv4, ports), st.builds(Endpoint, ipv4, ports))
    if family == Family.INET6:
        return st.tuples(st.builds(Endpoint, ipv6, ports), st.builds(Endpoint, ipv6, ports))
    if family == Family.UNIX:
        return st.tuples(st.builds(Endpoint, unix_path, st.none()),
                         st.builds(Endpoint, unix_path, st.none()))
    return st.just((None, None))


@st.composite
def v1_headers(draw: Any) -> ProxyHeader:
    kind = draw(st.sampled_from(["TCP4", "TCP6", "UNKNOWN"]))
    if kind == "UNKNOWN":
        return ProxyHeader(1, Command.PROXY, Family.UNSPEC, Transport.UNSPEC)
    family = Family.INET if kind == "TCP4" else Family.INET6
    src, dst = draw(endpoints(family))
    return ProxyHeader(1, Command.PROXY, family, Transport.STREAM, src, dst)


@st.composite
def v2_headers(draw: Any) -> ProxyHeader:
    family, transport = draw(st.sampled_from(FAM_TRANSPORT))
    command = draw(st.sampled_from([Command.LOCAL, Command.PROXY]))
    tlvs = draw(tlv_lists())
    if command == Command.LOCAL:
        skipped = b""
        if BLOCK[family] and draw(st.booleans()):
            skipped = draw(st.binary(min_size=BLOCK[family], max_size=BLOCK[family]))
        elif BLOCK[family]:
            tlvs = ()  # without the block, len must stay 0 (TLVs alone would be read as the block)
        return ProxyHeader(2, command, family, transport, None, None, tlvs, skipped=skipped)
    src, dst = draw(endpoints(family))
    return ProxyHeader(2, command, family, transport, src, dst, tlvs)


headers = st.one_of(v1_headers(), v2_headers())


# -- reference encoder (v2) --------------------------------------------------------------------
def _address_block(h: ProxyHeader) -> bytes:
    if h.command == Command.LOCAL:
        return h.skipped
    if h.family in (Family.INET, Family.INET6):
        assert h.source is not None and h.destination is not None
        return (h.source.host.packed + h.destination.host.packed
                + struct.pack(">HH", h.source.port, h.destination.port))
    if h.family == Family.UNIX:
        out = b""
        for ep in (h.source, h.destination):
            assert ep is not None and isinstance(ep.host, str)
            raw = ep.host.encode("utf-8", "surrogateescape")
            out += raw + bytes(108 - len(raw))
        return out
    return b""


def reference_v2(h: ProxyHeader) -> tuple[bytes, ProxyHeader]:
    """Encode *h* from the spec; return the bytes and *h* with its CRC32C value filled in."""
    body = bytearray(_address_block(h))
    crc_at = None
    for t in h.tlvs:
        if t.type == TLVType.CRC32C:
            crc_at = len(body) + 3
            t = TLV(t.type, bytes(4))
        body += bytes([t.type]) + struct.pack(">H", len(t.value)) + t.value
    out = bytearray(SIG + bytes([0x20 | h.command, (h.family << 4) | h.transport])
                    + struct.pack(">H", len(body)) + body)
    if crc_at is None:
        return bytes(out), h
    crc = struct.pack(">I", crc32c_bitwise(bytes(out)))
    out[16 + crc_at : 16 + crc_at + 4] = crc
    tlvs = tuple(TLV(t.type, crc) if t.type == TLVType.CRC32C else t for t in h.tlvs)
    return bytes(out), h._replace(tlvs=tlvs)


def expected(h: ProxyHeader) -> ProxyHeader:
    return reference_v2(h)[1] if h.version == 2 else h


# -- round trips -------------------------------------------------------------------------------
@SETTINGS
@given(headers)
def test_roundtrip(h: ProxyHeader) -> None:
    data = encode(h)
    assert type(data) is bytes
    got = decode(data, max_v2_size=MAX)
    want = expected(h)
    assert got == want
    assert got is not None and got.size == len(data)
    assert encode(got) == data
    assert encode(decode(encode(want), max_v2_size=MAX)) == data  # type: ignore[arg-type]
    if len(data) <= 4096:
        assert decode(data) == want


@SETTINGS
@given(v2_headers())
def test_v2_matches_the_reference_encoder(h: ProxyHeader) -> None:
    ref, _ = reference_v2(h)
    assert encode(h) == ref


@SETTINGS
@given(v1_headers())
def test_v1_line_shape(h: ProxyHeader) -> None:
    data = encode(h)
    assert data.endswith(b"\r\n") and data.count(b"\r\n") == 1
    assert len(data) <= 104
    text = data.decode("ascii")
    if h.family == Family.UNSPEC:
        assert text == "PROXY UNKNOWN\r\n"
        return
    parts = text[:-2].split(" ")
    assert parts[:2] == ["PROXY", "TCP4" if h.family == Family.INET else "TCP6"] and len(parts) == 6
    assert h.source is not None and h.destination is not None
    assert parts[4:] == [str(h.source.port), str(h.destination.port)]
    if h.family == Family.INET:
        assert parts[2:4] == [str(h.source.host), str(h.destination.host)]
    else:
        assert IPv6Address(parts[2]) == h.source.host
        assert IPv6Address(parts[3]) == h.destination.host


@SETTINGS
@given(headers, st.binary(max_size=40), st.lists(st.integers(0, 400), max_size=8))
def test_reader_any_split(h: ProxyHeader, payload: bytes, cuts: list[int]) -> None:
    data = encode(h)
    buf = data + payload
    points = sorted({min(c, len(buf)) for c in cuts} | {0, len(buf)})
    reader = Reader(max_v2_size=MAX)
    got = None
    for a, b in itertools.pairwise(points):
        res = reader.feed(buf[a:b])
        if got is None:
            got = res
            if b < len(data):
                assert res is None
    assert got == expected(h)
    assert reader.header == got
    assert reader.trailing == payload


@SETTINGS
@given(headers, st.binary(max_size=40))
def test_decode_never_consumes_payload(h: ProxyHeader, payload: bytes) -> None:
    data = encode(h)
    got = decode(data + payload, max_v2_size=MAX)
    assert got is not None and got.size == len(data)
    assert got == expected(h)


@SETTINGS
@given(headers)
def test_prefixes_are_incomplete(h: ProxyHeader) -> None:
    data = encode(h)
    for i in range(0, len(data), max(1, len(data) // 40)):
        assert decode(data[:i], max_v2_size=MAX) is None


@SETTINGS
@given(v1_headers(), st.binary(max_size=16))
def test_annotate_tiles_valid_v1_headers(h: ProxyHeader, payload: bytes) -> None:
    check_annotate_tiles(encode(h), payload)


@SETTINGS
@given(v2_headers(), st.binary(max_size=16))
def test_annotate_tiles_valid_v2_headers(h: ProxyHeader, payload: bytes) -> None:
    check_annotate_tiles(encode(h), payload)


def check_annotate_tiles(data: bytes, payload: bytes) -> None:
    fields = annotate(data + payload)
    pos = 0
    for f in sorted((f for f in fields if f.verdict != "payload"), key=lambda f: f.offset):
        assert f.offset == pos, (f, pos)
        assert f.verdict in ("ok", "ignored"), f
        pos += f.length
    assert pos == len(data)
    assert all(f.offset >= len(data) for f in fields if f.verdict == "payload")


@st.composite
def long_ipv6_spelling(draw: Any) -> tuple[str, IPv6Address]:
    """Legal IPv6 text up to 45 characters: zero-padded groups, optionally a dotted-quad tail."""
    addr = draw(ipv6)
    ws = struct.unpack(">8H", addr.packed)
    if draw(st.booleans()):
        quad = ".".join(str(b) for b in addr.packed[12:])
        return ":".join(f"{w:04x}" for w in ws[:6]) + ":" + quad, addr
    return ":".join(f"{w:04x}" for w in ws), addr


@SETTINGS
@given(long_ipv6_spelling(), long_ipv6_spelling(), ports, ports, st.binary(max_size=8))
def test_v1_length_cap(src: tuple[str, IPv6Address], dst: tuple[str, IPv6Address], sport: int,
                       dport: int, payload: bytes) -> None:
    """A legal TCP6 line is accepted iff it fits in 107 bytes (CRLF included)."""
    line = f"PROXY TCP6 {src[0]} {dst[0]} {sport} {dport}\r\n".encode()
    data = line + payload
    if len(line) <= 107:
        h = decode(data)
        assert h is not None and h.size == len(line)
        assert h.source == Endpoint(src[1], sport) and h.destination == Endpoint(dst[1], dport)
        assert encode(h) == line
    else:
        for buf in (data, line[:107]):
            try:
                decode(buf)
            except InvalidProxyHeader as e:
                assert e.reason.value == "v1_too_long", e
            else:
                raise AssertionError(f"{len(line)}-byte v1 line not rejected: {buf!r}")
    check_robust(data)


# -- robustness --------------------------------------------------------------------------------
def check_robust(data: bytes, **opts: Any) -> None:
    """decode/Reader/annotate may return or raise InvalidProxyHeader, nothing else."""
    raised = False
    result = None
    try:
        result = decode(data, **opts)
    except InvalidProxyHeader as e:
        assert str(e) and e.reason is not None
        raised = True
    else:
        if result is not None:
            assert isinstance(result, ProxyHeader)
            assert 0 < result.size <= len(data)
            assert decode(data[: result.size], **opts) == result
            if opts.get("verify_crc32c", True):
                # whatever decode accepts re-encodes byte for byte (UNKNOWN: the short form)
                if result.version == 1 and result.family == Family.UNSPEC:
                    assert encode(result) == b"PROXY UNKNOWN\r\n"
                else:
                    assert encode(result) == data[: result.size]
    reader_opts = {k: v for k, v in opts.items() if k != "verify_crc32c"}
    if opts.get("verify_crc32c", True):
        reader = Reader(**reader_opts)
        try:
            for i in range(0, len(data), 7):
                reader.feed(data[i : i + 7])
        except InvalidProxyHeader:
            assert raised, "Reader rejected what decode accepted (or found incomplete)"
        else:
            assert not raised, "Reader accepted what decode rejected"
            assert reader.header == result
            if result is not None:
                assert reader.trailing == data[result.size :]
    fields = annotate(data)
    assert isinstance(fields, list)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    check_robust(data)


@FUZZ
@given(st.sampled_from([SIG, b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN"]),
       st.binary(max_size=250))
def test_random_bytes_after_a_signature(prefix: bytes, data: bytes) -> None:
    check_robust(prefix + data)
    check_robust(prefix + data, verify_crc32c=False)


@FUZZ
@given(st.sampled_from([b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN "]),
       st.text(st.sampled_from("0123456789abcdefABCDEF:. \r\n%+_-x"), max_size=110))
def test_random_v1_text(prefix: bytes, text: str) -> None:
    check_robust(prefix + text.encode())


@st.composite
def mutated(draw: Any) -> bytes:
    h = draw(headers)
    data = bytearray(encode(h) + draw(st.binary(max_size=8)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "length"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[i] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and data:
            del data[i]
        elif kind == "truncate":
            del data[i:]
        elif kind == "length" and data[:12] == SIG and len(data) >= 16:
            data[14:16] = struct.pack(">H", draw(st.integers(0, 0xFFFF)))
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_headers(data: bytes) -> None:
    check_robust(data)
    check_robust(data, verify_crc32c=False)
    check_robust(data, max_v2_size=MAX)


@FUZZ
@given(st.binary(max_size=64), st.sampled_from([None, 1, 2]), st.integers(64, MAX))
def test_options_never_change_the_error_type(data: bytes, version: int | None, cap: int) -> None:
    for prefix in (b"", SIG, b"PROXY "):
        check_robust(prefix + data, version=version, max_v2_size=cap)


@SETTINGS
@given(v2_headers())
def test_flipped_bit_in_crc_protected_header_is_caught(h: ProxyHeader) -> None:
    assume(any(t.type == TLVType.CRC32C for t in h.tlvs))
    data = bytearray(encode(h))
    # flip a bit in the address block or TLVs (not the fixed part, which changes the structure)
    assume(len(data) > 16)
    data[-1] ^= 0x01
    try:
        decode(bytes(data), max_v2_size=MAX)
    except InvalidProxyHeader:
        pass
    else:
        raise AssertionError("a corrupted header passed its CRC32C check")
