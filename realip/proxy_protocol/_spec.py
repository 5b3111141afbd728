"""The PROXY protocol's registries and fixed sizes, as data (HAProxy doc/proxy-protocol.txt,
revision 2026/04/27).  Values are IntEnums so that ``Family(1).name == "INET"``."""

from __future__ import annotations

import enum

#: The 12-byte v2 signature; it contains a NUL so that no text protocol can start with it.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: Every v1 line starts with these six bytes.
V1_PREFIX = b"PROXY "
#: Longest legal v1 line, CRLF included (``PROXY UNKNOWN`` + two full IPv6 texts + ports).
V1_MAX_LINE = 107
#: Fixed part of a v2 header: signature, ver/cmd, fam/transport, 16-bit length.
V2_FIXED = 16
#: Largest v2 header the 16-bit length allows.
V2_MAX_SIZE = V2_FIXED + 0xFFFF
#: Default cap on a v2 header (HAProxy, nginx ≥ 1.23.3 and go-proxyproto use 4 KiB too).
V2_DEFAULT_MAX_SIZE = 4096
#: Length of a UNIX path field in a v2 address block (``sun_path``).
UNIX_PATH_LEN = 108
#: Most bytes a UNIQUE_ID TLV may carry.
UNIQUE_ID_MAX = 128


class Command(enum.IntEnum):
    """Low nibble of byte 13 of a v2 header (v1 lines are always PROXY)."""

    LOCAL = 0x0  #: the proxy's own connection (health check): use the real endpoints
    PROXY = 0x1  #: relayed on behalf of another node: the address block describes it


class Family(enum.IntEnum):
    """High nibble of byte 14 of a v2 header; v1 TCP4/TCP6/UNKNOWN map to INET/INET6/UNSPEC."""

    UNSPEC = 0x0  #: unknown or unsupported: no addresses
    INET = 0x1  #: IPv4, 4-byte addresses
    INET6 = 0x2  #: IPv6, 16-byte addresses
    UNIX = 0x3  #: AF_UNIX, 108-byte paths, no ports


class Transport(enum.IntEnum):
    """Low nibble of byte 14 of a v2 header."""

    UNSPEC = 0x0  #: unknown or unsupported
    STREAM = 0x1  #: SOCK_STREAM (TCP, stream UNIX sockets)
    DGRAM = 0x2  #: SOCK_DGRAM (UDP, datagram UNIX sockets)


#: Size of the v2 address block for each family.
ADDRESS_BLOCK: dict[Family, int] = {
    Family.UNSPEC: 0,
    Family.INET: 12,
    Family.INET6: 36,
    Family.UNIX: 2 * UNIX_PATH_LEN,
}

#: The family/transport bytes the specification defines (all others must be rejected).
VALID_FAMILY_TRANSPORT = frozenset({0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32})


class TLVType(enum.IntEnum):
    """Types of the TLVs that may follow the v2 address block."""

    ALPN = 0x01  #: application protocol (usually the negotiated TLS ALPN), bytes
    AUTHORITY = 0x02  #: host name the client asked for (TLS SNI), UTF-8
    CRC32C = 0x03  #: CRC32C of the whole header with this field zeroed, 4 bytes big-endian
    NOOP = 0x04  #: padding, ignored
    UNIQUE_ID = 0x05  #: opaque connection id, at most 128 bytes
    SSL = 0x20  #: client flags (1 byte) + verify (4 bytes) + sub-TLVs
    NETNS = 0x30  #: network namespace name, US-ASCII
    GCP = 0xE0  #: Google Cloud Private Service Connect: 8-byte connection id (custom range)
    AWS = 0xEA  #: AWS VPC endpoint: sub-type 0x01 + endpoint id (custom range)
    AZURE = 0xEE  #: Azure Private Link: sub-type 0x01 + 32-bit LINKID little-endian (custom range)


class SSLSubType(enum.IntEnum):
    """Sub-TLVs nested in the SSL TLV."""

    VERSION = 0x21  #: TLS version, US-ASCII (e.g. ``TLSv1.3``)
    CN = 0x22  #: Common Name of the client certificate's subject, UTF-8
    CIPHER = 0x23  #: cipher name, US-ASCII (e.g. ``ECDHE-RSA-AES128-GCM-SHA256``)
    SIG_ALG = 0x24  #: algorithm that signed the proxy's certificate, US-ASCII
    KEY_ALG = 0x25  #: key algorithm of the proxy's certificate, US-ASCII (e.g. ``RSA2048``)
    GROUP = 0x26  #: key-exchange group, US-ASCII (e.g. ``secp256r1``)
    SIG_SCHEME = 0x27  #: signature scheme used by the proxy, US-ASCII
    CLIENT_CERT = 0x28  #: the client's certificate, raw DER


class SSLClient(enum.IntFlag):
    """Bits of the SSL TLV's ``client`` byte."""

    SSL = 0x01  #: the client connected over TLS
    CERT_CONN = 0x02  #: the client sent a certificate on this connection
    CERT_SESS = 0x04  #: the client sent a certificate at least once in this TLS session


#: Sub-types whose values are US-ASCII text; CN is UTF-8; CLIENT_CERT and unknown ones are bytes.
SSL_ASCII_SUBTYPES = frozenset(
    {SSLSubType.VERSION, SSLSubType.CIPHER, SSLSubType.SIG_ALG, SSLSubType.KEY_ALG,
     SSLSubType.GROUP, SSLSubType.SIG_SCHEME}
)

#: AWS 0xEA sub-type carrying the VPC endpoint id; Azure 0xEE sub-type carrying the LINKID.
AWS_VPCE_ID = 0x01
AZURE_PRIVATE_ENDPOINT_LINKID = 0x01


def tlv_range(tlv_type: int) -> str:
    """Name the part of the type space *tlv_type* falls in (for annotations)."""
    if 0xE0 <= tlv_type <= 0xEF:
        return "custom"
    if 0xF0 <= tlv_type <= 0xF7:
        return "experimental"
    if tlv_type >= 0xF8:
        return "future"
    return "registered" if tlv_type in TLVType._value2member_map_ else "unassigned"
