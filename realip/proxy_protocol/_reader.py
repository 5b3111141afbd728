"""An incremental, sans-IO reader for the PROXY protocol header (h11-style).

Feed it whatever the socket produced, in any split; it answers "need more data" (``None``) or the
header, and hands back every byte that followed the header in :attr:`Reader.trailing` — nothing the
peer sent after the header is lost or consumed.

There is deliberately no "optional header" mode here: the specification forbids a receiver to
guess whether a header is present, because a listener that accepts both proxied and direct
connections lets any direct client forge its address with a header of its own.  Whether a header
is required is a per-listener (or per-trusted-peer) decision the I/O layer takes *before* reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import InvalidProxyHeader
from ._codec import _v1_ip6, decode
from ._model import ProxyHeader
from ._spec import V2_DEFAULT_MAX_SIZE, V2_FIXED, V2_MAX_SIZE, V2_SIGNATURE

__all__ = ["Reader"]


class Reader:
    """Accumulates bytes until a complete header has arrived.

    >>> r = Reader()
    >>> r.feed(b"PROXY TCP4 192.0.2.1 ") is None
    True
    >>> str(r.feed(b"198.51.100.1 56324 1883\\r\\n\\x10\\x0c").source)
    '192.0.2.1:56324'
    >>> r.trailing
    b'\\x10\\x0c'

    *version* (1, 2 or None for both), *max_v2_size* and *verify_crc32c* are passed to
    :func:`decode`.  *clock* returns seconds (monotonic); it starts counting when the reader is
    created, i.e. when the connection was accepted.
    """

    def __init__(
        self,
        *,
        version: int | None = None,
        max_v2_size: int = V2_DEFAULT_MAX_SIZE,
        verify_crc32c: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if version not in (None, 1, 2):
            raise ValueError(f"version must be 1, 2 or None, not {version!r}")
        if not V2_FIXED <= max_v2_size <= V2_MAX_SIZE:
            raise ValueError(f"max_v2_size must be in {V2_FIXED}..{V2_MAX_SIZE}")
        self._version = version
        self._max = max_v2_size
        self._verify = verify_crc32c
        self._clock = clock
        self._started = clock()
        self._buf = bytearray()
        self._need = 0  # bytes a v2 header needs in total, once its length field is known
        self._header: ProxyHeader | None = None
        self._error: InvalidProxyHeader | None = None
        self._trailing = bytearray()
        # v1 fast path for tiny segments: the field being read, known to be a valid prefix
        self._v1: _V1Prefix | None = None

    # -- state -----------------------------------------------------------------------------------
    @property
    def header(self) -> ProxyHeader | None:
        """The header, once complete."""
        return self._header

    @property
    def done(self) -> bool:
        """True once the header is complete."""
        return self._header is not None

    @property
    def trailing(self) -> bytes:
        """Every byte received after the header (application data), in order."""
        return bytes(self._trailing)

    @property
    def buffered(self) -> int:
        """Bytes received so far that belong to the (incomplete) header."""
        return len(self._buf)

    def waited(self, now: float | None = None) -> float:
        """Seconds the peer has taken so far (since the reader was created)."""
        return (self._clock() if now is None else now) - self._started

    def remaining(self, timeout: float, now: float | None = None) -> float:
        """Seconds left before *timeout* expires (negative once it has)."""
        return timeout - self.waited(now)

    def expired(self, timeout: float, now: float | None = None) -> bool:
        """True when the header is still incomplete after *timeout* seconds."""
        return self._header is None and self.waited(now) >= timeout

    # -- input -----------------------------------------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> ProxyHeader | None:
        """Add *data*; return the header once complete, else None.

        After the header is complete, further data is appended to :attr:`trailing` and the header
        is returned again.  A malformed header raises :class:`~realip.InvalidProxyHeader`, and so
        does every later call.
        """
        v1 = self._v1
        if v1 is not None and len(data) == 1 and v1.take(data[0], self._buf):
            self._buf += data  # the byte-at-a-time case: O(1), no decode
            return None
        if self._error is not None:
            raise self._error
        if self._header is not None:
            self._trailing += data
            return self._header
        self._buf += data
        if self._need and len(self._buf) < self._need:
            return None
        # A v2 header in tiny pieces: its fixed part is judged without decoding the buffer each
        # time — the signature byte by byte, and the second length byte (bytes 12 and 13 were
        # judged when they came); decode() gives every verdict that can change.
        n = len(self._buf)
        if n < 16 and self._buf[:1] == b"\r" and self._version != 1 and (
                (n <= 12 and V2_SIGNATURE.startswith(self._buf))
                or (n == 15 and n - len(data) == 14)):
            return None
        # A v1 line fed in tiny pieces: each byte that provably keeps the line a valid prefix is
        # taken in O(1) (a digit of an octet, a hex digit of a group…); anything else — a space,
        # a colon after a colon, CR, LF, a byte that could be wrong — goes to decode(), which
        # gives the exact verdict and the error of the shortest invalid prefix.  Without this a
        # line sent a byte at a time cost one full decode per byte.
        if len(data) <= 8 and len(self._buf) < 100:
            if v1 is not None:
                pre = self._buf[: len(self._buf) - len(data)]
                for b in bytes(data):
                    if not v1.take(b, pre):
                        break  # decode() below judges, and sets the state afresh
                    pre.append(b)
                else:
                    return None
            elif self._version != 2 and len(self._buf) <= 11:
                start = bytes(self._buf)
                for lit in _V1_STARTS:  # still spelling "PROXY TCP4 " and the like
                    if lit.startswith(start):
                        if len(start) == 11 and lit != b"PROXY UNKNOWN":
                            self._v1 = _V1Prefix(start[9:10], 0, b"")
                        return None
        buf = self._buf
        key = None
        if n <= V2_FIXED and buf[:1] == b"\r":
            # the fixed part of a v2 header: decode()'s "incomplete" for these few bytes is
            # remembered, so a header in tiny pieces costs no decode per piece (bytes 13, 14
            # and 16 would each need one)
            key = (bytes(buf), self._version, self._max, self._verify)
            if key in _V2_INCOMPLETE:
                if n == V2_FIXED:
                    self._need = V2_FIXED + ((buf[14] << 8) | buf[15])
                return None
        try:
            header = decode(bytes(buf), version=self._version, max_v2_size=self._max,
                            verify_crc32c=self._verify)
        except InvalidProxyHeader as exc:
            self._error = exc
            self._v1 = None
            raise
        if header is None:
            if len(buf) >= V2_FIXED and buf[:12] == V2_SIGNATURE:
                self._need = V2_FIXED + ((buf[14] << 8) | buf[15])
            elif buf[:1] == b"P":
                self._v1 = _V1Prefix.after(bytes(buf))
            if key is not None and len(_V2_INCOMPLETE) < _V2_REMEMBERED:
                _V2_INCOMPLETE[key] = None
            return None
        self._header = header
        self._v1 = None  # from here on every byte is the application's
        self._trailing += self._buf[header.size :]
        self._buf = bytearray()
        return header

    def eof(self) -> None:
        """The peer closed the connection; raises if a header was expected but incomplete."""
        from ..errors import Reason

        if self._header is None and self._error is None:
            self._error = InvalidProxyHeader(
                Reason.TRUNCATED, "the connection ended inside the header", bytes(self._buf[:64]),
                len(self._buf))
            raise self._error


def ipv6_ok(text: bytes) -> bool:
    """Whether *text* is a whole IPv6 address as a v1 line may carry it (decode()'s own test)."""
    return _v1_ip6(text) is not None


_V1_STARTS = (b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN")
#: v2 prefixes of at most 16 bytes (with the reader's options) that decode() found incomplete:
#: the verdict depends on those bytes alone.  Bounded, so a flood of distinct lengths cannot
#: grow it: past the bound, prefixes are simply decoded
_V2_INCOMPLETE: dict[tuple[bytes, int | None, int, bool], None] = {}
_V2_REMEMBERED = 4096
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")


class _V1Prefix:
    """Where a valid, incomplete v1 line stands, and which next bytes provably keep it valid.

    Conservative by construction: :meth:`take` says True only for a byte after which decode()
    would still say "incomplete" (a property test holds it to decode() on every prefix); for any
    other byte it says False and the reader asks decode()."""

    __slots__ = ("colons", "dbl", "field", "first", "glen", "lead", "n", "six", "val")

    def __init__(self, proto: bytes, field: int, text: bytes) -> None:
        self.six = proto == b"6"
        self.field = field  # 0 source, 1 destination (addresses), 2 and 3 ports, 4 after CR
        self._start(text)

    def _start(self, text: bytes) -> None:
        self.n = len(text)  # characters of the field so far
        self.first = text[:2]  # how the field starts (a lone leading ":" needs another)
        self.lead = self.first[:1] != b":" or self.first == b"::"  # a hex digit may follow
        self.colons = text.count(b":")
        self.dbl = b"::" in text
        # the current octet / group / port: its length and (decimal) value
        cur = text.rsplit(b":" if self.six and self.field < 2 else b".", 1)[-1]
        self.glen = len(cur)
        self.val = int(cur) if cur.isdigit() else -1
        if self.field >= 2 or not self.six:
            self.colons = text.count(b".")  # dots, for IPv4

    @classmethod
    def after(cls, buf: bytes) -> _V1Prefix | None:
        """The state after *buf*, a valid prefix decode() has just confirmed (None: not inside
        the fields of a TCP4/TCP6 line; decode() decides those)."""
        if not buf.startswith((b"PROXY TCP4 ", b"PROXY TCP6 ")) or b"\r" in buf:
            return None
        parts = buf[11:].split(b" ")
        if len(parts) > 4:
            return None
        text = parts[-1]
        if len(parts) <= 2 and buf[9:10] == b"6" and b"." in text:
            return None  # an IPv4 tail inside IPv6 text: decode() judges every byte of it
        if len(parts) >= 3 and not text.isdigit() and text:
            return None
        return cls(buf[9:10], len(parts) - 1, text)

    def take(self, b: int, buf: bytearray) -> bool:
        """Whether byte *b*, arriving after *buf* (the line so far), keeps it a valid prefix;
        if so the state moves on."""
        field = self.field
        if b == 0x20:  # the end of a field that is provably complete
            if field >= 2:
                done = self.n > 0 and field < 3
            elif self.six:  # the whole address text, checked as decode() checks it
                done = self.n > 0 and ipv6_ok(bytes(buf[len(buf) - self.n :]))
            else:
                done = self.colons == 3 and self.glen > 0
            if done:
                self.field = field + 1
                self.n = self.glen = self.colons = 0
                self.val = -1
                self.first = b""
                self.lead = True
                self.dbl = False  # a "::" of the source says nothing about the destination
                return True
            return False
        if b == 0x0D:  # CR after the destination port: "…1883\r" is still a valid prefix
            if field == 3 and self.n:
                self.field = 4
                return True
            return False
        if field >= 4:
            return False
        if field >= 2 or not self.six:  # decimal: a port, or an IPv4 octet
            if 0x30 <= b <= 0x39:
                d = b - 0x30
                if self.glen == 0:
                    v = d
                elif self.val == 0:
                    return False  # no leading zeros
                else:
                    v = self.val * 10 + d
                if v > (0xFFFF if field >= 2 else 255):
                    return False
                self.val = v
                self.glen += 1
                self.n += 1
                return True
            if b == 0x2E and field < 2 and self.glen and self.colons < 3:
                self.colons += 1
                self.glen = 0
                self.val = -1
                self.n += 1
                return True
            return False
        # IPv6 text: hex groups of at most four, at most six colons here (more: decode());
        # a hex digit after a seventh colon may make a ninth group: decode() judges it
        if b in _HEX:
            n = self.n
            if self.glen < 4 and n < 39 and self.lead and self.colons < 7:
                self.glen += 1
                self.n = n + 1
                if n < 2:
                    first = self.first = self.first + bytes((b,))
                    self.lead = first[:1] != b":" or first == b"::"
                return True
            return False
        if b == 0x3A and self.colons < 6 and (self.glen or (not self.dbl and self.n and
                                                            buf[-1:] == b":")):
            if not self.glen:
                self.dbl = True  # "::", once per address
            self.colons += 1
            self.glen = 0
            self.n += 1
            return True
        return False
