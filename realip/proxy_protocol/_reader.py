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
from ._codec import decode
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
        if self._error is not None:
            raise self._error
        if self._header is not None:
            self._trailing += data
            return self._header
        self._buf += data
        if self._need and len(self._buf) < self._need:
            return None
        try:
            header = decode(bytes(self._buf), version=self._version, max_v2_size=self._max,
                            verify_crc32c=self._verify)
        except InvalidProxyHeader as exc:
            self._error = exc
            raise
        if header is None:
            buf = self._buf
            if len(buf) >= V2_FIXED and buf[:12] == V2_SIGNATURE:
                self._need = V2_FIXED + ((buf[14] << 8) | buf[15])
            return None
        self._header = header
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
