"""PROXY protocol v1 and v2 (HAProxy specification, revision 2026/04/27), sans-IO.

* :func:`decode` — one call on the bytes received so far: the header, ``None`` (need more) or
  :class:`~realip.InvalidProxyHeader` with a machine-readable reason.
* :class:`Reader` — the same, incremental, handing back the bytes after the header.
* :func:`encode` / :func:`build` — serialise any header, byte-identical for decoded ones.
* :func:`annotate` — a field-by-field explanation for hex views.

Strict by default: everything the specification forbids is rejected, the CRC32C is verified over
the received bytes, and TLVs are kept in wire order with duplicates.
"""

from ._build import build, forged_header, make_header, ssl_tlv
from ._codec import Field, annotate, decode, encode
from ._crc32c import crc32c
from ._model import TLV, Endpoint, ProxyHeader, SSLInfo
from ._reader import Reader
from ._spec import (
    V1_MAX_LINE,
    V2_DEFAULT_MAX_SIZE,
    V2_MAX_SIZE,
    V2_SIGNATURE,
    Command,
    Family,
    SSLClient,
    SSLSubType,
    TLVType,
    Transport,
)

__all__ = [
    "TLV",
    "V1_MAX_LINE",
    "V2_DEFAULT_MAX_SIZE",
    "V2_MAX_SIZE",
    "V2_SIGNATURE",
    "Command",
    "Endpoint",
    "Family",
    "Field",
    "ProxyHeader",
    "Reader",
    "SSLClient",
    "SSLInfo",
    "SSLSubType",
    "TLVType",
    "Transport",
    "annotate",
    "build",
    "crc32c",
    "decode",
    "encode",
    "forged_header",
    "make_header",
    "ssl_tlv",
]
