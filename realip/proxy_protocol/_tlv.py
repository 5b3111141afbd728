"""Splitting and checking the TLVs of a v2 header."""

from __future__ import annotations

from ..errors import InvalidProxyHeader, Reason
from ._crc32c import crc32c
from ._spec import SSL_ASCII_SUBTYPES, UNIQUE_ID_MAX, SSLSubType, TLVType
from ._values import TLV

_tuple_new = tuple.__new__


def split_tlvs(buf: bytes, start: int, end: int | None = None, base: int = 0) -> tuple[TLV, ...]:
    """Split ``buf[start:end]`` into TLVs, in wire order.

    *base* is added to offsets in error messages (the position of *buf* in the received data).
    A TLV whose 3-byte head or value does not fit before *end* raises ``TLV_TRUNCATED``.
    """
    if end is None:
        end = len(buf)
    out = []
    i = start
    while i < end:
        if i + 3 > end:
            raise InvalidProxyHeader(
                Reason.TLV_TRUNCATED,
                f"{end - i} byte(s) left where a 3-byte TLV head must start",
                buf[i:end], base + i,
            )
        t = buf[i]
        n = (buf[i + 1] << 8) | buf[i + 2]
        j = i + 3 + n
        if j > end:
            raise InvalidProxyHeader(
                Reason.TLV_TRUNCATED,
                f"TLV 0x{t:02X} declares {n} byte(s) but only {end - i - 3} remain in the header",
                buf[i:end], base + i,
            )
        out.append(_tuple_new(TLV, (t, buf[i + 3 : j])))
        i = j
    return tuple(out)


def _check_text(value: bytes, encoding: str, what: str, offset: int) -> None:
    try:
        value.decode(encoding)
    except UnicodeDecodeError:
        raise InvalidProxyHeader(
            Reason.TLV_BAD_VALUE, f"{what} is not valid {encoding.upper()}", value, offset
        ) from None


def check_tlvs(header: bytes, tlvs: tuple[TLV, ...], tlv_start: int, verify_crc32c: bool) -> None:
    """Apply each registered type's rules to *tlvs* (which start at *tlv_start* in *header*);
    verify the CRC32C over the raw *header* bytes with the field zeroed."""
    crc_at = -1
    pos = tlv_start
    for t, v in tlvs:
        vpos = pos + 3
        if t == TLVType.CRC32C:
            if len(v) != 4:
                raise InvalidProxyHeader(
                    Reason.TLV_BAD_LENGTH, f"CRC32C TLV carries {len(v)} bytes instead of 4",
                    header[pos : vpos + len(v)], pos,
                )
            if crc_at >= 0:
                raise InvalidProxyHeader(
                    Reason.CRC32C_DUPLICATE, "a second CRC32C TLV (which one would count?)",
                    header[pos : vpos + 4], pos,
                )
            crc_at = vpos
        elif t == TLVType.UNIQUE_ID:
            if len(v) > UNIQUE_ID_MAX:
                raise InvalidProxyHeader(
                    Reason.TLV_BAD_LENGTH,
                    f"UNIQUE_ID TLV carries {len(v)} bytes (at most {UNIQUE_ID_MAX})",
                    header[pos : pos + 8], pos,
                )
        elif t == TLVType.AUTHORITY:
            _check_text(v, "utf-8", "AUTHORITY TLV", vpos)
        elif t == TLVType.NETNS:
            _check_text(v, "ascii", "NETNS TLV", vpos)
        elif t == TLVType.SSL:
            check_ssl(v, vpos, header[pos : vpos + len(v)])
        pos = vpos + len(v)
    if crc_at >= 0 and verify_crc32c:
        zeroed = b"".join((header[:crc_at], b"\0\0\0\0", header[crc_at + 4 :]))
        want = int.from_bytes(header[crc_at : crc_at + 4], "big")
        got = crc32c(zeroed)
        if got != want:
            raise InvalidProxyHeader(
                Reason.CRC32C_MISMATCH,
                f"CRC32C field says 0x{want:08X}, the received header hashes to 0x{got:08X}",
                header[crc_at - 3 : crc_at + 4], crc_at - 3,
            )


def check_ssl(value: bytes, offset: int, whole: bytes = b"") -> tuple[TLV, ...]:
    """Check an SSL TLV value (client byte, verify word, sub-TLVs tiling it exactly); *whole* is
    the TLV with its head, quoted when the value is too short to show anything."""
    if len(value) < 5:
        raise InvalidProxyHeader(
            Reason.TLV_BAD_LENGTH,
            f"SSL TLV carries {len(value)} bytes; client (1) and verify (4) need 5",
            whole or value, offset - 3 if whole else offset,
        )
    subs = split_tlvs(value, 5, base=offset)
    pos = offset + 5
    for t, v in subs:
        if t in SSL_ASCII_SUBTYPES:
            _check_text(v, "ascii", f"SSL sub-TLV {SSLSubType(t).name}", pos + 3)
        elif t == SSLSubType.CN:
            _check_text(v, "utf-8", "SSL sub-TLV CN", pos + 3)
        pos += 3 + len(v)
    return subs
