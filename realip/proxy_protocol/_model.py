"""Value types: :class:`Endpoint`, :class:`TLV`, :class:`ProxyHeader`, :class:`SSLInfo`.

They are named tuples underneath because the decoder creates one per connection and tuples are
the cheapest immutable objects CPython builds; the public constructors validate, the decoder
(which has already validated) bypasses them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

from ._spec import (
    AWS_VPCE_ID,
    AZURE_PRIVATE_ENDPOINT_LINKID,
    Command,
    Family,
    SSLClient,
    SSLSubType,
    TLVType,
    Transport,
)

__all__ = ["TLV", "Endpoint", "ProxyHeader", "SSLInfo"]

from ._values import TLV, Endpoint

#: The order each sender writes the SSL sub-TLVs in: HAProxy 2.6 ``make_proxy_line_v2`` (seen in
#: tests/vectors/haproxy_2.6_tls.json) and nginx ``ngx_proxy_protocol_v2_write_ssl``.
SSL_SUB_ORDER: dict[str, tuple[SSLSubType, ...]] = {
    "haproxy": (SSLSubType.VERSION, SSLSubType.CN, SSLSubType.KEY_ALG, SSLSubType.SIG_ALG,
                SSLSubType.CIPHER),
    "nginx": (SSLSubType.VERSION, SSLSubType.CN, SSLSubType.CIPHER, SSLSubType.SIG_ALG,
              SSLSubType.KEY_ALG),
}


class SSLInfo(NamedTuple):
    """The decoded SSL TLV (or one to build: :meth:`make`, :meth:`tlv`)."""

    client: SSLClient
    verify: int
    subtlvs: tuple[TLV, ...]

    @classmethod
    def make(
        cls,
        client: SSLClient | int,
        verify: int = 0,
        *,
        version: str | None = None,
        cn: str | None = None,
        cipher: str | None = None,
        sig_alg: str | None = None,
        key_alg: str | None = None,
        style: Literal["haproxy", "nginx"] = "haproxy",
    ) -> SSLInfo:
        """An SSL TLV as a proxy writes it: the given sub-TLVs in *style*'s order
        (``"haproxy"``: VERSION, CN, KEY_ALG, SIG_ALG, CIPHER; ``"nginx"``: VERSION, CN, CIPHER,
        SIG_ALG, KEY_ALG).  Text is encoded as UTF-8 (CN) or US-ASCII (the others)."""
        from ..errors import EncodeError

        if not 0 <= int(client) <= 0xFF:
            raise EncodeError(f"the SSL client byte holds 0..255, not {int(client)}")
        if not 0 <= verify <= 0xFFFFFFFF:
            raise EncodeError(f"the SSL verify field holds 32 bits, not {verify}")
        if style not in SSL_SUB_ORDER:
            raise EncodeError(f"unknown SSL sub-TLV order {style!r} (haproxy or nginx)")
        given = {SSLSubType.VERSION: version, SSLSubType.CN: cn, SSLSubType.CIPHER: cipher,
                 SSLSubType.SIG_ALG: sig_alg, SSLSubType.KEY_ALG: key_alg}
        subs = []
        for st in SSL_SUB_ORDER[style]:
            text = given[st]
            if text is None:
                continue
            try:
                raw = text.encode("utf-8" if st == SSLSubType.CN else "ascii")
            except UnicodeEncodeError:
                raise EncodeError(f"SSL sub-TLV {st.name} must be US-ASCII: {text!r}") from None
            subs.append(TLV(int(st), raw))
        return cls(SSLClient(int(client)), verify, tuple(subs))

    @property
    def value(self) -> bytes:
        """The TLV's value on the wire: client byte, verify (32-bit big-endian), sub-TLVs."""
        from ..errors import EncodeError

        out = bytearray((int(self.client),))
        out += self.verify.to_bytes(4, "big")
        for t, v in self.subtlvs:
            if len(v) > 0xFFFF:
                raise EncodeError(f"SSL sub-TLV 0x{t:02X} holds at most 65535 bytes, not {len(v)}")
            out += bytes((t,)) + len(v).to_bytes(2, "big") + v
        return bytes(out)

    def tlv(self) -> TLV:
        """This SSL TLV as a :class:`TLV` (type 0x20) for :func:`~realip.proxy_protocol.build`."""
        return TLV(TLVType.SSL, self.value)

    @property
    def verified(self) -> bool:
        """True only if a client certificate was presented *and* verified.

        The spec says ``verify == 0`` means verified, but HAProxy leaves 0 when the client sent no
        certificate at all, so the CERT bits are checked too.
        """
        has_cert = bool(self.client & (SSLClient.CERT_CONN | SSLClient.CERT_SESS))
        return has_cert and self.verify == 0

    def get(self, subtype: int) -> bytes | None:
        """First sub-TLV value of *subtype*, or None."""
        for t in self.subtlvs:
            if t.type == subtype:
                return t.value
        return None

    def _text(self, subtype: int) -> str | None:
        v = self.get(subtype)
        return None if v is None else v.decode("utf-8", "replace")

    @property
    def version(self) -> str | None:
        """TLS version (``TLSv1.3``)."""
        return self._text(SSLSubType.VERSION)

    @property
    def cn(self) -> str | None:
        """Common Name of the client certificate."""
        return self._text(SSLSubType.CN)

    @property
    def cipher(self) -> str | None:
        """Cipher suite name."""
        return self._text(SSLSubType.CIPHER)

    @property
    def sig_alg(self) -> str | None:
        """Algorithm that signed the proxy's certificate."""
        return self._text(SSLSubType.SIG_ALG)

    @property
    def key_alg(self) -> str | None:
        """Key algorithm of the proxy's certificate."""
        return self._text(SSLSubType.KEY_ALG)

    @property
    def group(self) -> str | None:
        """Key-exchange group."""
        return self._text(SSLSubType.GROUP)

    @property
    def sig_scheme(self) -> str | None:
        """Signature scheme used by the proxy."""
        return self._text(SSLSubType.SIG_SCHEME)

    @property
    def client_cert(self) -> bytes | None:
        """The client's certificate, DER."""
        return self.get(SSLSubType.CLIENT_CERT)


class _Fields(NamedTuple):
    version: int
    command: Command
    family: Family
    transport: Transport
    source: Endpoint | None
    destination: Endpoint | None
    tlvs: tuple[TLV, ...] = ()
    size: int = 0
    #: raw address block of a LOCAL header (ignored by receivers, kept to re-encode it exactly)
    skipped: bytes = b""
    #: the v1 address texts as received (kept to re-encode the line exactly); not compared
    v1_text: tuple[str, str] | None = None
    #: a v2 LOCAL header's family/transport byte as received when it was ignored with the whole
    #: address block (spec §2.2: an undefined value, or a block shorter than the family's); the
    #: header then reads ``UNSPEC``/``UNSPEC`` and ``skipped`` holds the whole ignored body
    raw_family_transport: int | None = None


_tuple_new = tuple.__new__


class ProxyHeader(_Fields):
    """A decoded (or to-be-encoded) PROXY protocol header; immutable.

    ``version`` is 1 or 2; ``command``, ``family`` and ``transport`` are enums; ``source`` and
    ``destination`` are :class:`Endpoint` or ``None`` (LOCAL, UNKNOWN, UNSPEC: use the real
    connection's addresses); ``tlvs`` the v2 TLVs in wire order, duplicates included; ``size`` the
    number of bytes the header occupied in the decoded data.  Two headers compare equal when they
    carry the same information (``size``, the v1 text spelling and the CRC32C value, which
    :func:`encode` recomputes, are not compared).
    """

    __slots__ = ()

    def __new__(
        cls,
        version: int,
        command: Command | int,
        family: Family | int,
        transport: Transport | int,
        source: Endpoint | tuple[Any, Any] | None = None,
        destination: Endpoint | tuple[Any, Any] | None = None,
        tlvs: Iterable[TLV | tuple[int, bytes]] = (),
        size: int = 0,
        skipped: bytes = b"",
        v1_text: tuple[str, str] | None = None,
        raw_family_transport: int | None = None,
    ) -> ProxyHeader:
        from ._validate import validate_fields

        fields = validate_fields(
            version, command, family, transport, source, destination, tlvs, size, skipped, v1_text,
            raw_family_transport,
        )
        return _tuple_new(cls, fields)

    # -- equality ignores size and the v1 spelling ---------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        tlvs = self.tlvs
        if any(t.type == TLVType.CRC32C for t in tlvs):
            # The checksum is derived from the other fields (encode() fills it in), so it carries
            # no information of its own: a header built with a placeholder equals its decoding.
            tlvs = tuple(TLV(3, b"") if t.type == TLVType.CRC32C else t for t in tlvs)
        return (*self[:6], tlvs, self[8], self[10])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProxyHeader):
            return NotImplemented
        return self._key() == other._key()

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, ProxyHeader):
            return NotImplemented
        return self._key() != other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [
            f"version={self.version}",
            f"command={self.command.name}",
            f"family={self.family.name}",
            f"transport={self.transport.name}",
            f"source={self.source!r}",
            f"destination={self.destination!r}",
        ]
        if self.tlvs:
            parts.append(f"tlvs={self.tlvs!r}")
        if self.skipped:
            parts.append(f"skipped={self.skipped!r}")
        parts.append(f"size={self.size}")
        return f"ProxyHeader({', '.join(parts)})"

    def _replace(self, **kwargs: Any) -> ProxyHeader:
        """A copy with some fields changed (validated like the constructor)."""
        values = self._asdict()
        if ("source" in kwargs or "destination" in kwargs) and "v1_text" not in kwargs:
            values["v1_text"] = None  # the old spelling no longer describes the new endpoints
        values.update(kwargs)
        return ProxyHeader(**values)

    def _with_size(self, size: int) -> ProxyHeader:
        return _tuple_new(ProxyHeader, (*self[:7], size, *self[8:]))

    # -- convenience ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        """True when receivers must use the real connection endpoints (LOCAL, UNKNOWN, UNSPEC)."""
        return self.source is None

    def tlv(self, tlv_type: int) -> bytes | None:
        """Value of the first TLV of *tlv_type*, or None."""
        for t in self.tlvs:
            if t.type == tlv_type:
                return t.value
        return None

    def tlvs_of(self, tlv_type: int) -> tuple[bytes, ...]:
        """Values of every TLV of *tlv_type*, in wire order."""
        return tuple(t.value for t in self.tlvs if t.type == tlv_type)

    @property
    def alpn(self) -> bytes | None:
        """ALPN TLV value."""
        return self.tlv(TLVType.ALPN)

    @property
    def authority(self) -> str | None:
        """AUTHORITY TLV (host name / SNI), decoded as UTF-8."""
        v = self.tlv(TLVType.AUTHORITY)
        return None if v is None else v.decode("utf-8", "replace")

    @property
    def crc32c(self) -> int | None:
        """The CRC32C TLV value as an int (already verified by the decoder)."""
        v = self.tlv(TLVType.CRC32C)
        return None if v is None or len(v) != 4 else int.from_bytes(v, "big")

    @property
    def unique_id(self) -> bytes | None:
        """UNIQUE_ID TLV value."""
        return self.tlv(TLVType.UNIQUE_ID)

    @property
    def netns(self) -> str | None:
        """NETNS TLV value (network namespace name)."""
        v = self.tlv(TLVType.NETNS)
        return None if v is None else v.decode("ascii", "replace")

    @property
    def ssl(self) -> SSLInfo | None:
        """The decoded SSL TLV, or None."""
        v = self.tlv(TLVType.SSL)
        if v is None or len(v) < 5:
            return None
        from ._tlv import split_tlvs

        subs = split_tlvs(v, 5)
        return SSLInfo(SSLClient(v[0]), int.from_bytes(v[1:5], "big"), subs or ())

    @property
    def aws_vpce_id(self) -> str | None:
        """AWS PrivateLink VPC endpoint id (custom TLV 0xEA, sub-type 0x01)."""
        for v in self.tlvs_of(TLVType.AWS):
            if v[:1] == bytes([AWS_VPCE_ID]):
                return v[1:].decode("ascii", "replace")
        return None

    @property
    def azure_private_endpoint_linkid(self) -> int | None:
        """Azure Private Link LINKID (custom TLV 0xEE, sub-type 0x01, 32-bit little-endian)."""
        for v in self.tlvs_of(TLVType.AZURE):
            if len(v) == 5 and v[0] == AZURE_PRIVATE_ENDPOINT_LINKID:
                return int.from_bytes(v[1:5], "little")
        return None

    @property
    def gcp_psc_connection_id(self) -> int | None:
        """Google Cloud Private Service Connect connection id (custom TLV 0xE0, 8 bytes BE)."""
        for v in self.tlvs_of(TLVType.GCP):
            if len(v) == 8:
                return int.from_bytes(v, "big")
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``python -m realip decode --json`` prints)."""

        def ep(e: Endpoint | None) -> dict[str, Any] | None:
            if e is None:
                return None
            from .._addr import format_ip

            host = e.host if isinstance(e.host, str) else format_ip(e.host)
            return {"host": host, "port": e.port}

        out: dict[str, Any] = {
            "version": self.version,
            "command": self.command.name,
            "family": self.family.name,
            "transport": self.transport.name,
            "source": ep(self.source),
            "destination": ep(self.destination),
            "size": self.size,
            "tlvs": [{"type": t.type, "name": t.name, "value": t.value.hex()} for t in self.tlvs],
        }
        ssl = self.ssl
        if ssl is not None:
            out["ssl"] = {
                "client": int(ssl.client),
                "verify": ssl.verify,
                "verified": ssl.verified,
                "subtlvs": [{"type": t.type, "value": t.value.hex()} for t in ssl.subtlvs],
            }
            # the text sub-TLVs by name too (what a reader of `decode --json` looks for)
            for key in ("version", "cn", "cipher", "sig_alg", "key_alg", "group", "sig_scheme"):
                text = getattr(ssl, key)
                if text is not None:
                    out["ssl"][key] = text
        for key in ("authority", "unique_id", "netns", "aws_vpce_id",
                    "azure_private_endpoint_linkid", "gcp_psc_connection_id", "crc32c", "alpn"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val.hex() if isinstance(val, bytes) else val
        if self.skipped:
            out["skipped"] = self.skipped.hex()
        return out
