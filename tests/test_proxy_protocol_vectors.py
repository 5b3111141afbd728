"""The PROXY protocol codec against test vectors written from the specification.

The vectors live in ``tests/vectors/*.json`` (hex + expected result or expected ``Reason``) and
come from the spec (HAProxy ``doc/proxy-protocol.txt``), other implementations' suites (esockd,
ranch, proxy-protocol-rs), nginx/HAProxy sender behaviour and the bugs other libraries have
(``shared/reference/peers.md`` §A).  Every valid vector is fed whole, with a payload behind it,
as every truncated prefix, byte by byte through :class:`Reader`, re-encoded, and as
``bytearray``/``memoryview``; every malformed one must raise :class:`InvalidProxyHeader` with
exactly the expected reason, however it is delivered.

The CRC32C values are checked with the bit-wise implementation below, written from the spec
(reflected polynomial 0x82F63B78), not with the library's.
"""

from __future__ import annotations

import ipaddress
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from realip import InvalidProxyHeader, RealIPError
from realip.errors import Reason
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

VECTORS = Path(__file__).parent / "vectors"
VALID: list[dict[str, Any]] = json.loads((VECTORS / "proxy_protocol_valid.json").read_text())
MALFORMED: list[dict[str, Any]] = json.loads(
    (VECTORS / "proxy_protocol_malformed.json").read_text()
)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
ADDRESS_BLOCK = {0: 0, 1: 12, 2: 36, 3: 216}
#: Options the Reader takes (it has no verify_crc32c switch).
READER_OPTIONS = {"version", "max_v2_size", "verify_crc32c"}
PAYLOADS = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04clid",  # an MQTT CONNECT
    b"PROXY TCP4 6.6.6.6 7.7.7.7 1 2\r\n",  # a second (spoofed) header is payload, not parsed
    SIG + b"\x21\x11\x00\x0c" + bytes(12),
    b"\r",
    b"\x00" * 3,
]


# -- independent helpers ------------------------------------------------------------------------
def crc32c_bitwise(data: bytes) -> int:
    """CRC32C bit by bit: reflected polynomial 0x82F63B78, init and xor-out 0xFFFFFFFF."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def v2_tlv_offsets(header: bytes) -> list[tuple[int, int, int]]:
    """(type, value offset, value length) of each TLV of a well-formed v2 header."""
    family = header[13] >> 4
    length = struct.unpack(">H", header[14:16])[0]
    local = header[12] & 0xF == 0
    if local and (family > 3 or header[13] & 0xF > 2 or (family == 0) != (header[13] & 0xF == 0)
                  or 0 < length < ADDRESS_BLOCK[family]):
        return []  # spec §2.2: a LOCAL header's family and body are ignored, TLVs included
    block = ADDRESS_BLOCK[family]
    pos = 16 + (block if length >= block else 0)
    out = []
    while pos < 16 + length:
        t = header[pos]
        n = struct.unpack(">H", header[pos + 1 : pos + 3])[0]
        out.append((t, pos + 3, n))
        pos += 3 + n
    assert pos == 16 + length
    return out


def fill_crc(header: bytes) -> bytes:
    """*header* with every CRC32C TLV set to the CRC of the header with those fields zeroed."""
    offsets = [off for t, off, n in v2_tlv_offsets(header) if t == 0x03 and n == 4]
    buf = bytearray(header)
    for off in offsets:
        buf[off : off + 4] = bytes(4)
    crc = struct.pack(">I", crc32c_bitwise(bytes(buf)))
    for off in offsets:
        buf[off : off + 4] = crc
    return bytes(buf)


def host_of(family: str, text: str) -> Any:
    if family == "UNIX":
        return text
    return ipaddress.ip_address(text)


def endpoint_of(family: str, value: list[Any] | None) -> Endpoint | None:
    if value is None:
        return None
    return Endpoint(host_of(family, value[0]), value[1])


def expected_header(vec: dict[str, Any]) -> ProxyHeader:
    e = vec["expect"]
    return ProxyHeader(
        e["version"],
        Command[e["command"]],
        Family[e["family"]],
        Transport[e["transport"]],
        endpoint_of(e["family"], e["source"]),
        endpoint_of(e["family"], e["destination"]),
        tuple(TLV(t, bytes.fromhex(v)) for t, v in e["tlvs"]),
        size=e["size"],
        skipped=bytes.fromhex(e.get("skipped", "")),
        raw_family_transport=e.get("raw_family_transport"),
    )


def data_of(case: dict[str, Any]) -> bytes:
    return bytes.fromhex(case["hex"])


def is_unknown_long_form(vec: dict[str, Any]) -> bool:
    return vec["expect"]["version"] == 1 and vec["expect"]["family"] == "UNSPEC" and (
        data_of(vec) != b"PROXY UNKNOWN\r\n"
    )


def expected_reencoding(vec: dict[str, Any]) -> bytes:
    data = data_of(vec)
    if is_unknown_long_form(vec):
        return b"PROXY UNKNOWN\r\n"
    if data.startswith(SIG):
        return fill_crc(data)  # identical unless the vector was accepted with a wrong CRC
    return data


def reader_options(case: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = case.get("options", {})
    assert set(opts) <= READER_OPTIONS, opts  # every decode option is a Reader option too
    return opts


def feed_bytewise(reader: Reader, data: bytes) -> ProxyHeader | None:
    """Feed one byte at a time; return the header from the feed that completed it."""
    got = None
    for i in range(len(data)):
        res = reader.feed(data[i : i + 1])
        if res is not None:
            assert got is None
            got = res
            rest = data[i + 1 :]
            for j in range(len(rest)):
                reader.feed(rest[j : j + 1])
            break
    return got


def check_tiling(fields: list[Any], data: bytes, size: int) -> None:
    """Header fields tile [0, size) contiguously; payload fields (if any) tile the rest."""
    head = [f for f in fields if f.verdict != "payload"]
    tail = [f for f in fields if f.verdict == "payload"]
    pos = 0
    for f in sorted(head, key=lambda f: f.offset):
        assert f.offset == pos, (f, pos)
        assert f.length >= 0, f  # an empty TLV value may be a zero-length field
        assert bytes(f.raw) == data[f.offset : f.offset + f.length], f
        assert isinstance(f.name, str) and f.name
        assert isinstance(f.meaning, str)
        pos = f.offset + f.length
    assert pos == size, (pos, size)
    if tail:
        pos = size
        for f in sorted(tail, key=lambda f: f.offset):
            assert f.offset == pos
            pos += f.length
        assert pos == len(data)


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


def case_id(case: dict[str, Any]) -> str:
    return str(case["name"])


# -- the vector files themselves ----------------------------------------------------------------
def test_vector_files_are_complete() -> None:
    assert len(VALID) >= 35
    assert len(MALFORMED) >= 80
    assert len({c["name"] for c in VALID}) == len(VALID)
    assert len({c["name"] for c in MALFORMED}) == len(MALFORMED)
    covered = {c["reason"] for c in MALFORMED}
    # TRUNCATED is the Reader's end-of-stream verdict (test_reader_eof_inside_a_header) and
    # TIMEOUT the I/O layer's deadline (tests/test_aio.py); decode itself answers None for a
    # valid prefix.
    wanted = {r.value for r in Reason} - {"truncated", "timeout"}
    assert covered == wanted, wanted ^ covered
    for case in MALFORMED:
        Reason(case["reason"])  # a real member value


def test_crc32c_reference_check_value() -> None:
    assert crc32c_bitwise(b"123456789") == 0xE3069283
    assert crc32c_bitwise(b"") == 0


def test_aws_nlb_vector_is_the_published_header() -> None:
    vec = next(v for v in VALID if v["name"].startswith("AWS NLB"))
    data = data_of(vec)
    assert len(data) == 100
    assert data.hex() == (
        "0d0a0d0a000d0a515549540a" "21110054" "ac1f0771" "ac1f0a1f" "c8f2" "0050"
        "03" "0004" "e8d6892d"
        "ea" "0017" "01" + b"vpce-08d2bf15fac5001c9".hex() + "04" "0024" + "00" * 36
    )
    zeroed = data[:31] + bytes(4) + data[35:]
    assert crc32c_bitwise(zeroed) == 0xE8D6892D


@pytest.mark.parametrize("vec", [v for v in VALID if data_of(v).startswith(SIG)], ids=case_id)
def test_v2_vector_crcs_are_right(vec: dict[str, Any]) -> None:
    data = data_of(vec)
    if vec.get("options", {}).get("verify_crc32c") is False:
        assert fill_crc(data) != data
    else:
        assert fill_crc(data) == data


# -- valid vectors ------------------------------------------------------------------------------
@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_valid_whole(vec: dict[str, Any]) -> None:
    data = data_of(vec)
    opts = vec.get("options", {})
    h = decode(data, **opts)
    assert isinstance(h, ProxyHeader)
    e = vec["expect"]
    assert h.version == e["version"]
    assert h.command == Command[e["command"]] and isinstance(h.command, Command)
    assert h.family == Family[e["family"]] and isinstance(h.family, Family)
    assert h.transport == Transport[e["transport"]] and isinstance(h.transport, Transport)
    for side in ("source", "destination"):
        got = getattr(h, side)
        want = endpoint_of(e["family"], e[side])
        if want is None:
            assert got is None
        else:
            assert isinstance(got, Endpoint)
            assert type(got.host) is type(want.host)
            assert got.host == want.host
            assert got.port == want.port
    assert h.tlvs == tuple(TLV(t, bytes.fromhex(v)) for t, v in e["tlvs"])
    assert all(isinstance(t, TLV) and type(t.value) is bytes for t in h.tlvs)
    assert h.size == e["size"] == len(data)
    assert h.skipped == bytes.fromhex(e.get("skipped", ""))
    assert h.raw_family_transport == e.get("raw_family_transport")
    assert h == expected_header(vec)
    for name, want in e.get("props", {}).items():
        if name.startswith("tlvs_of."):
            got = [v.hex() for v in h.tlvs_of(int(name.split(".")[1]))]
        else:
            got = h
            for part in name.split("."):
                got = getattr(got, part)
            if isinstance(got, bytes):
                got = {"hex": got.hex()}
        assert got == want, name


@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_valid_with_payload(vec: dict[str, Any]) -> None:
    data = data_of(vec)
    opts = vec.get("options", {})
    alone = decode(data, **opts)
    for payload in PAYLOADS:
        buf = data + payload
        h = decode(buf, **opts)
        assert h is not None
        assert h.size == len(data)
        assert buf[h.size :] == payload
        assert h == alone


@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_valid_every_prefix_is_incomplete(vec: dict[str, Any]) -> None:
    data = data_of(vec)
    opts = vec.get("options", {})
    for i in range(len(data)):
        assert decode(data[:i], **opts) is None, (i, data[:i])


@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_valid_reader_bytewise(vec: dict[str, Any]) -> None:
    opts = reader_options(vec)
    data = data_of(vec)
    payload = PAYLOADS[0] + PAYLOADS[2]
    reader = Reader(**opts)
    h = feed_bytewise(reader, data + payload)
    assert h == expected_header(vec)
    assert h.size == len(data)
    assert reader.header == h
    assert reader.trailing == payload


@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_valid_reader_whole_and_after(vec: dict[str, Any]) -> None:
    opts = reader_options(vec)
    data = data_of(vec)
    reader = Reader(**opts)
    h = reader.feed(data + b"abc")
    assert h == expected_header(vec)
    assert reader.header == h
    assert reader.trailing == b"abc"
    reader.feed(b"def")
    reader.feed(b"")
    reader.feed(data)
    assert reader.trailing == b"abcdef" + data  # later bytes are payload, never parsed again
    assert reader.header == h


@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_valid_reencoding(vec: dict[str, Any]) -> None:
    data = data_of(vec)
    h = decode(data, **vec.get("options", {}))
    assert h is not None
    out = encode(h)
    assert type(out) is bytes
    assert out == expected_reencoding(vec)
    # and a header built from the expectations encodes the same way (v1 text spelling aside)
    if not (data.startswith(b"PROXY TCP6") or is_unknown_long_form(vec)):
        assert encode(expected_header(vec)) == expected_reencoding(vec)


@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_valid_buffer_types(vec: dict[str, Any]) -> None:
    data = data_of(vec)
    opts = vec.get("options", {})
    want = decode(data, **opts)
    assert decode(bytearray(data), **opts) == want
    assert decode(memoryview(data), **opts) == want
    view = memoryview(b"junk" + data + b"tail")[4:]  # a view that does not start at 0
    got = decode(view, **opts)
    assert got == want and got is not None and got.size == len(data)
    # results never share memory with the caller's mutable buffer
    buf = bytearray(data)
    got = decode(buf, **opts)
    assert got is not None
    buf[:] = bytes(len(buf))
    assert got == want
    assert all(type(t.value) is bytes for t in got.tlvs)


@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_valid_annotate(vec: dict[str, Any]) -> None:
    opts = vec.get("options", {})
    data = data_of(vec)
    fields = annotate(data, **opts)
    check_tiling(fields, data, len(data))
    for f in fields:
        assert f.verdict in ("ok", "ignored"), f
    with_payload = data + PAYLOADS[0]
    fields = annotate(with_payload, **opts)
    check_tiling(fields, with_payload, len(data))
    assert not any(f.verdict in ("error", "incomplete") for f in fields)


@pytest.mark.parametrize("vec", VALID, ids=ids(VALID))
def test_annotate_prefixes_say_incomplete(vec: dict[str, Any]) -> None:
    """A cut header, wherever the cut falls, shows an "incomplete" field and no "error"."""
    data = data_of(vec)
    cuts = range(1, len(data)) if len(data) <= 300 else (1, 13, 14, 16, len(data) // 2)
    for cut in cuts:
        fields = annotate(data[:cut], **vec.get("options", {}))
        assert any(f.verdict == "incomplete" for f in fields), (cut, fields)
        assert not any(f.verdict == "error" for f in fields), (cut, fields)


def test_annotate_marks_ignored_parts() -> None:
    local = next(v for v in VALID if v["name"] == "LOCAL with an INET address block (skipped)")
    fields = annotate(data_of(local))
    ignored = [f for f in fields if f.verdict == "ignored"]
    assert ignored and sum(f.length for f in ignored) >= 12  # the skipped address block
    aws = next(v for v in VALID if v["name"].startswith("AWS NLB"))
    fields = annotate(data_of(aws))
    assert any(f.verdict == "ignored" and f.offset >= 64 for f in fields)  # the NOOP padding


# -- malformed vectors --------------------------------------------------------------------------
def check_error(err: InvalidProxyHeader, reason: str) -> None:
    assert isinstance(err, InvalidProxyHeader)
    assert isinstance(err, ValueError)
    assert isinstance(err, RealIPError)
    assert isinstance(err.reason, Reason)
    assert err.reason == Reason(reason), (err.reason, reason, str(err))
    message = str(err)
    assert "b'" in message or 'b"' in message or "\\x" in message, message


@pytest.mark.parametrize("case", MALFORMED, ids=ids(MALFORMED))
def test_malformed_decode(case: dict[str, Any]) -> None:
    data = data_of(case)
    with pytest.raises(InvalidProxyHeader) as info:
        decode(data, **case["options"])
    check_error(info.value, case["reason"])
    for buf in (bytearray(data), memoryview(data)):
        with pytest.raises(InvalidProxyHeader) as info:
            decode(buf, **case["options"])
        check_error(info.value, case["reason"])


@pytest.mark.parametrize("case", MALFORMED, ids=ids(MALFORMED))
def test_malformed_with_payload(case: dict[str, Any]) -> None:
    """The error is provable from the bytes given, so more bytes behind them change nothing."""
    data = data_of(case)
    for payload in PAYLOADS[:3]:
        with pytest.raises(InvalidProxyHeader) as info:
            decode(data + payload, **case["options"])
        check_error(info.value, case["reason"])


@pytest.mark.parametrize("case", MALFORMED, ids=ids(MALFORMED))
def test_malformed_reader_bytewise(case: dict[str, Any]) -> None:
    opts = reader_options(case)
    data = data_of(case)
    reader = Reader(**opts)
    with pytest.raises(InvalidProxyHeader) as info:
        for i in range(len(data)):
            assert reader.feed(data[i : i + 1]) is None, "a malformed header was accepted"
    check_error(info.value, case["reason"])


@pytest.mark.parametrize("case", MALFORMED, ids=ids(MALFORMED))
def test_malformed_reader_whole(case: dict[str, Any]) -> None:
    reader = Reader(**case["options"])
    with pytest.raises(InvalidProxyHeader) as info:
        reader.feed(data_of(case) + b"payload")
    check_error(info.value, case["reason"])


@pytest.mark.parametrize("case", MALFORMED, ids=case_id)
def test_malformed_annotate(case: dict[str, Any]) -> None:
    fields = annotate(data_of(case), **case["options"])
    assert any(f.verdict == "error" for f in fields), fields


# -- early rejection ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (b"G", Reason.NOT_PROXY),
        (b"PROXX", Reason.NOT_PROXY),
        (b"\r\n\r\n\x00\r\nQUIX", Reason.NOT_PROXY),
        (b"PROXY TCPX", Reason.V1_BAD_PROTOCOL),
        (b"PROXY TCP4 1.2.3.400", Reason.V1_BAD_ADDRESS),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01", Reason.V1_BAD_PORT),
        (b"PROXY UNKNOWN " + b"x" * 93, Reason.V1_TOO_LONG),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 80 81\n", Reason.V1_BAD_TERMINATOR),
        (SIG + b"\x11", Reason.V2_BAD_VERSION),
        (SIG + b"\x23", Reason.V2_BAD_COMMAND),
        (SIG + b"\x21\x41", Reason.V2_BAD_FAMILY),
        (SIG + b"\x21\x14", Reason.V2_BAD_TRANSPORT),
        (SIG + b"\x21\x10", Reason.V2_BAD_FAMILY_TRANSPORT),
        (SIG + b"\x21\x11\x10\x00", Reason.V2_TOO_LARGE),
        (SIG + b"\x21\x11\x00\x04", Reason.V2_ADDRESS_TRUNCATED),
    ],
)
def test_rejects_as_soon_as_provably_invalid(prefix: bytes, reason: Reason) -> None:
    with pytest.raises(InvalidProxyHeader) as info:
        decode(prefix)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "prefix",
    [
        b"", b"P", b"PROXY", b"PROXY ", b"PROXY T", b"PROXY TCP4 ",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80 81\r",
        b"PROXY UNKNOWN", b"PROXY UNKNOWN\r", b"PROXY UNKNOWN ", b"\r", b"\r\n\r\n\x00",
        SIG, SIG + b"\x21",
        SIG + b"\x21\x11", SIG + b"\x21\x11\x00", SIG + b"\x21\x11\x00\x0c",
        SIG + b"\x20\x00\x00\x07\x03\x00\x04\x00\x00\x00",
        b"PROXY TCP6 ::ffff:1.2.3.", b"PROXY TCP4 255.255.255.25",
    ],
)
def test_valid_prefixes_are_incomplete(prefix: bytes) -> None:
    assert decode(prefix) is None
    assert Reader().feed(prefix) is None


def test_version_option_selects_the_decoder() -> None:
    v1 = b"PROXY TCP4 1.2.3.4 5.6.7.8 80 81\r\n"
    v2 = data_of(next(v for v in VALID if v["name"] == "esockd v2 TCP4"))
    assert decode(v1, version=1) == decode(v1)
    assert decode(v2, version=2) == decode(v2)
    for data, version in ((v1, 2), (v2, 1)):
        with pytest.raises(InvalidProxyHeader) as info:
            decode(data, version=version)
        assert info.value.reason == Reason.WRONG_VERSION
        with pytest.raises(InvalidProxyHeader) as info:
            Reader(version=version).feed(data)
        assert info.value.reason == Reason.WRONG_VERSION


# -- encode ------------------------------------------------------------------------------------
A4 = Endpoint(ipaddress.IPv4Address("192.0.2.1"), 56324)
B4 = Endpoint(ipaddress.IPv4Address("198.51.100.1"), 1883)


def test_encode_unknown_is_the_short_form() -> None:
    # proxy-protocol 0.11.3 packs b"PROXY UNKNOWN    \r\n"
    h = ProxyHeader(1, Command.PROXY, Family.UNSPEC, Transport.UNSPEC)
    assert encode(h) == b"PROXY UNKNOWN\r\n"


def test_encode_v1_tcp4() -> None:
    h = ProxyHeader(1, Command.PROXY, Family.INET, Transport.STREAM, A4, B4)
    assert encode(h) == b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 1883\r\n"


@pytest.mark.parametrize("placeholder", [bytes(4), b"\xde\xad\xbe\xef"])
@pytest.mark.parametrize("position", [0, 1, 2, 3])
@pytest.mark.parametrize(
    ("command", "family", "transport", "src", "dst"),
    [
        (Command.PROXY, Family.INET, Transport.STREAM, A4, B4),
        (Command.PROXY, Family.INET6, Transport.DGRAM,
         Endpoint(ipaddress.IPv6Address("2001:db8::1"), 1),
         Endpoint(ipaddress.IPv6Address("::1"), 2)),
        (Command.PROXY, Family.UNIX, Transport.STREAM, Endpoint("/a", None), Endpoint("/b", None)),
        (Command.LOCAL, Family.UNSPEC, Transport.UNSPEC, None, None),
        (Command.PROXY, Family.UNSPEC, Transport.UNSPEC, None, None),
    ],
)
def test_encode_fills_the_crc32c_wherever_it_sits(
    placeholder: bytes, position: int, command: Command, family: Family, transport: Transport,
    src: Endpoint | None, dst: Endpoint | None,
) -> None:
    others = [
        TLV(TLVType.ALPN, b"h2"), TLV(TLVType.AUTHORITY, b"example.com"), TLV(TLVType.NOOP, b"")
    ]
    tlvs = [*others[:position], TLV(TLVType.CRC32C, placeholder), *others[position:]]
    h = ProxyHeader(2, command, family, transport, src, dst, tuple(tlvs))
    out = encode(h)
    assert out.startswith(SIG)
    assert fill_crc(out) == out
    got = decode(out)
    assert got is not None and got.size == len(out)
    crc_field = [off for t, off, _ in v2_tlv_offsets(out) if t == 0x03]
    assert len(crc_field) == 1
    assert got.crc32c == int.from_bytes(out[crc_field[0] : crc_field[0] + 4], "big")
    assert [t.type for t in got.tlvs] == [t.type for t in tlvs]
    assert encode(got) == out


def test_encode_v2_matches_the_nginx_example() -> None:
    # semantics.md §2.4: the CRC32C there was re-derived independently (fill_crc) and agrees.
    h = ProxyHeader(2, Command.PROXY, Family.INET, Transport.STREAM, A4, B4,
                    (TLV(TLVType.CRC32C, bytes(4)),))
    assert encode(h).hex() == (
        "0d0a0d0a000d0a515549540a" "21110013" "c0000201c6336401" "dc04075b" "030004" "6321c984"
    )
    local = ProxyHeader(2, Command.LOCAL, Family.UNSPEC, Transport.UNSPEC,
                        tlvs=(TLV(TLVType.CRC32C, bytes(4)),))
    assert encode(local).hex() == "0d0a0d0a000d0a515549540a" "20000007" "030004" "a9b87e8f"


# -- model details other libraries got wrong ---------------------------------------------------
def test_ssl_info_compares_by_value() -> None:
    # proxy-protocol 0.11.3: SSLTLV(version='TLSv1.3') == SSLTLV(version='TLSv1.2') was True
    def with_version(v: bytes) -> ProxyHeader:
        ssl = bytes([1]) + bytes(4) + bytes([0x21]) + struct.pack(">H", len(v)) + v
        h = ProxyHeader(2, Command.PROXY, Family.INET, Transport.STREAM, A4, B4,
                        (TLV(TLVType.SSL, ssl),))
        got = decode(encode(h))
        assert got is not None
        return got

    a, b = with_version(b"TLSv1.3"), with_version(b"TLSv1.2")
    assert a != b
    assert a.ssl != b.ssl
    assert a.ssl is not None and a.ssl.version == "TLSv1.3" and not a.ssl.verified
    assert a == with_version(b"TLSv1.3")


def test_equality_ignores_size() -> None:
    vec = VALID[0]
    h = decode(data_of(vec) + b"xyz")
    assert h is not None
    assert h == expected_header(vec)._replace(size=0)
    assert hash(h) == hash(expected_header(vec))


def test_reader_waited_uses_the_clock() -> None:
    now = [100.0]
    reader = Reader(clock=lambda: now[0])
    assert reader.waited() == 0.0
    reader.feed(b"PROXY TCP4 ")
    now[0] = 103.5
    assert reader.waited() == pytest.approx(3.5)
    assert reader.feed(b"1.2.3.4 5.6.7.8 80 81\r\n") is not None


def test_reader_eof_inside_a_header() -> None:
    reader = Reader()
    reader.feed(b"PROXY TCP4 1.2.3.4 5.6")
    with pytest.raises(InvalidProxyHeader) as info:
        reader.eof()
    check_error(info.value, "truncated")
    done = Reader()
    assert done.feed(b"PROXY UNKNOWN\r\n") is not None
    done.eof()  # nothing missing


def test_reader_incomplete_state() -> None:
    reader = Reader()
    assert reader.feed(b"PROXY TCP4 1.2.3.4") is None
    assert reader.header is None
    assert reader.feed(b" 5.6.7.8 80 81\r") is None
    h = reader.feed(b"\nGET")
    assert h is not None and reader.header == h and reader.trailing == b"GET"


# -- CRC32C implementations ---------------------------------------------------------------------
def test_crc32c_implementations_agree() -> None:
    import random

    google_crc32c = pytest.importorskip("google_crc32c")
    from realip.proxy_protocol import _crc32c

    rng = random.Random(1234)
    aws = next(v for v in VALID if v["name"].startswith("AWS NLB"))
    samples = [b"", b"123456789", bytes(32), b"\xff" * 32, data_of(aws)]
    samples += [rng.randbytes(rng.randrange(0, 300)) for _ in range(200)]
    for s in samples:
        want = crc32c_bitwise(s)
        assert _crc32c.crc32c_py(s) == want
        assert _crc32c.crc32c(s) == want
        assert google_crc32c.value(s) == want
    assert _crc32c.crc32c_py(bytearray(b"123456789")) == 0xE3069283
    assert _crc32c.crc32c_py(memoryview(b"123456789")) == 0xE3069283


def test_crc32c_verified_without_google_crc32c() -> None:
    """proxy-protocol 0.11.3 silently skips the check when its crc32c module is missing."""
    aws = next(v for v in VALID if v["name"].startswith("AWS NLB"))["hex"]
    bad = next(c for c in MALFORMED if c["name"] == "AWS NLB header with one CRC bit flipped")
    bad = bad["hex"]
    script = f"""
import sys
sys.modules["google_crc32c"] = None  # import fails
from realip.proxy_protocol import decode, _crc32c
from realip import InvalidProxyHeader
assert _crc32c.crc32c(b"123456789") == 0xE3069283
assert decode(bytes.fromhex("{aws}")).crc32c == 0xE8D6892D
try:
    decode(bytes.fromhex("{bad}"))
except InvalidProxyHeader as e:
    assert e.reason.value == "crc32c_mismatch", e
else:
    raise SystemExit("bad CRC accepted without google_crc32c")
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
