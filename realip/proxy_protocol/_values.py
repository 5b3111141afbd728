"""The small value types every part of the codec shares: :class:`Endpoint` and :class:`TLV`.

They live apart from :mod:`._model` so that the validator and the TLV reader, which
:class:`~._model.ProxyHeader` uses, need not import the module that uses them (no import
circle).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

from ._spec import TLVType

__all__ = ["TLV", "Endpoint", "Host"]

Host = IPv4Address | IPv6Address | str


class Endpoint(NamedTuple):
    """One side of a connection: ``host`` is an ``ipaddress`` object (or a ``str`` UNIX path),
    ``port`` an int (``None`` for UNIX sockets).  It unpacks like a socket address tuple."""

    host: Host
    port: int | None

    def __str__(self) -> str:
        from .._addr import format_ip

        if isinstance(self.host, str):
            return self.host
        text = format_ip(self.host)
        if isinstance(self.host, IPv6Address):
            text = f"[{text}]"
        return text if self.port is None else f"{text}:{self.port}"


class TLV(NamedTuple):
    """One type-length-value record of a v2 header, kept raw and in wire order."""

    type: int
    value: bytes

    @property
    def name(self) -> str:
        """The registered name of the type (``"CRC32C"``), or its hex code (``"0xF1"``)."""
        try:
            return TLVType(self.type).name
        except ValueError:
            return f"0x{self.type:02X}"
