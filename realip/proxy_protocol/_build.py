"""Building headers from endpoints, the way real senders do (HAProxy or nginx style)."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal

from .._addr import format_ip
from ..errors import EncodeError
from ._codec import encode
from ._model import TLV, Endpoint, ProxyHeader, SSLInfo
from ._spec import Command, Family, SSLClient, TLVType, Transport

__all__ = ["build", "make_header"]

Style = Literal["haproxy", "nginx"]
_IP = IPv4Address | IPv6Address


def _coerce(ep: Any) -> tuple[_IP | str, int | None]:
    host, port = ep
    if isinstance(host, str):
        try:
            host = ip_address(host)
        except ValueError:
            return host, None  # a UNIX socket path
    return host, port


def _mapped(a: _IP) -> IPv6Address:
    return a if isinstance(a, IPv6Address) else IPv6Address(0xFFFF00000000 | int(a))


def make_header(
    source: Endpoint | tuple[Any, Any] | None,
    destination: Endpoint | tuple[Any, Any] | None,
    *,
    version: int = 2,
    command: Command = Command.PROXY,
    transport: Transport = Transport.STREAM,
    tlvs: Iterable[TLV | tuple[int, bytes]] = (),
    crc32c: bool | Literal["first", "last"] = False,
    style: Style = "haproxy",
) -> ProxyHeader:
    """The header a proxy would send for a connection from *source* to *destination*.

    Hosts may be ``ipaddress`` objects, address strings or UNIX paths.  Families are reconciled
    like the chosen *style*:

    * ``"haproxy"`` — an IPv4 side next to an IPv6 one becomes ``::ffff:a.b.c.d`` (TCP6/INET6);
      a UNIX side makes v1 ``UNKNOWN`` and v2 ``LOCAL``.
    * ``"nginx"`` — v2 as HAProxy, except that two v4-mapped sides are demoted to INET; v1 picks
      TCP4/TCP6 from the source alone, which :func:`build` writes but a ProxyHeader cannot hold
      (it is spec-invalid), so this function raises :class:`~realip.EncodeError` for it.

    *crc32c* adds a CRC32C TLV: ``True``/``"first"`` before the other TLVs (HAProxy, AWS NLB),
    ``"last"`` after them (nginx); :func:`encode` fills in its value.
    """
    extra = [TLV(int(t), bytes(v)) for t, v in tlvs]
    if crc32c:
        crc = TLV(TLVType.CRC32C, b"\0\0\0\0")
        extra = [*extra, crc] if crc32c == "last" else [crc, *extra]
    if command is Command.LOCAL or source is None or destination is None:
        if version == 1:
            return ProxyHeader(1, Command.PROXY, Family.UNSPEC, Transport.UNSPEC)
        return ProxyHeader(2, Command.LOCAL, Family.UNSPEC, Transport.UNSPEC, tlvs=extra)
    (sh, sp), (dh, dp) = _coerce(source), _coerce(destination)
    if isinstance(sh, str) or isinstance(dh, str):
        if isinstance(sh, str) and isinstance(dh, str) and version == 2:
            return ProxyHeader(2, command, Family.UNIX, transport, Endpoint(sh, None),
                               Endpoint(dh, None), tlvs=extra)
        if version == 1:
            return ProxyHeader(1, Command.PROXY, Family.UNSPEC, Transport.UNSPEC)
        return ProxyHeader(2, Command.LOCAL, Family.UNSPEC, Transport.UNSPEC, tlvs=extra)
    if isinstance(sh, IPv4Address) and isinstance(dh, IPv4Address):
        family = Family.INET
    else:
        sh, dh = _mapped(sh), _mapped(dh)
        family = Family.INET6
        if style == "nginx":
            if version == 1:
                raise EncodeError("nginx writes mixed-family v1 lines, which a ProxyHeader cannot"
                                  " hold: use build(..., style='nginx')")
            s4, d4 = sh.ipv4_mapped, dh.ipv4_mapped
            if s4 is not None and d4 is not None:
                sh, dh, family = s4, d4, Family.INET
    if version == 1 and transport is not Transport.STREAM:
        raise EncodeError("v1 carries only TCP (STREAM)")
    return ProxyHeader(version, command, family, transport, Endpoint(sh, sp), Endpoint(dh, dp),
                       tlvs=extra if version == 2 else ())


def build(
    source: Endpoint | tuple[Any, Any] | None,
    destination: Endpoint | tuple[Any, Any] | None,
    *,
    version: int = 2,
    command: Command = Command.PROXY,
    transport: Transport = Transport.STREAM,
    tlvs: Iterable[TLV | tuple[int, bytes]] = (),
    crc32c: bool | Literal["first", "last"] = False,
    style: Style = "haproxy",
) -> bytes:
    """The bytes of :func:`make_header`'s header.  With ``style="nginx"`` and ``version=1`` a
    mixed-family connection is written as nginx does: the protocol comes from the source's family
    and each address is printed as it is (``PROXY TCP4 192.0.2.1 2001:db8::1 ...``), which
    strict receivers (HAProxy, ranch, realip's decoder) reject."""
    if style == "nginx" and version == 1 and source is not None and destination is not None:
        (sh, sp), (dh, dp) = _coerce(source), _coerce(destination)
        ips = (IPv4Address, IPv6Address)
        if isinstance(sh, ips) and isinstance(dh, ips) and type(sh) is not type(dh):
            proto = "TCP4" if isinstance(sh, IPv4Address) else "TCP6"
            return (f"PROXY {proto} {format_ip(sh)} {format_ip(dh)} {sp} {dp}\r\n").encode()
    return encode(make_header(source, destination, version=version, command=command,
                              transport=transport, tlvs=tlvs, crc32c=crc32c, style=style))


#: The SSL sub-TLVs :func:`ssl_tlv` writes, in the order HAProxy's make_proxy_line_v2 and
#: nginx's ngx_proxy_protocol_v2_write append them.
_SSL_SUBS = (("version", 0x21), ("cn", 0x22), ("cipher", 0x23), ("sig_alg", 0x24),
             ("key_alg", 0x25))


def ssl_tlv(client: int = 0x01, verify: int = 0, *, version: str | None = None,
            cn: str | None = None, cipher: str | None = None, sig_alg: str | None = None,
            key_alg: str | None = None,
            order: tuple[str, ...] = ("version", "cn", "cipher", "sig_alg", "key_alg")) -> TLV:
    """The SSL TLV (0x20): *client* flags (``SSLClient`` bits), *verify* (0 = verified), then
    the sub-TLVs given, in *order* (the sub-TLV numbering by default, as nginx writes them;
    HAProxy's make_proxy_line_v2 writes version, cn, key_alg, sig_alg, cipher)."""
    if not 0 <= client <= 0xFF:
        raise ValueError(f"ssl client flags {client!r} do not fit one byte")
    if not 0 <= verify <= 0xFFFFFFFF:
        raise ValueError(f"ssl verify {verify!r} does not fit 32 bits")
    values = {"version": version, "cn": cn, "cipher": cipher, "sig_alg": sig_alg,
              "key_alg": key_alg}
    codes = dict(_SSL_SUBS)
    if sorted(order) != sorted(codes):
        raise ValueError(f"order {order!r} must name each of {sorted(codes)} once")
    subs = tuple(TLV(codes[name], values[name].encode("utf-8"))  # type: ignore[union-attr]
                 for name in order if values[name] is not None)
    # SSLInfo writes the wire form (client byte, verify, sub-TLVs) for every builder
    return SSLInfo(SSLClient(client), verify, subs).tlv()


def _endpoint_text(text: Any, what: str) -> tuple[Any, int]:
    if isinstance(text, (tuple, list)) and len(text) == 2:
        return ip_address(str(text[0])), int(text[1])
    if not isinstance(text, str) or ":" not in text:
        raise ValueError(f"{what} {text!r} is not addr:port ([v6]:port for IPv6)")
    host, _, port = text.rpartition(":")
    try:
        return ip_address(host.strip("[]")), int(port)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not addr:port ([v6]:port for IPv6)") from None


def forged_header(version: int = 2, source: Any = "192.0.2.1:40000",
                  destination: Any = "198.51.100.1:1883", *, authority: str | None = None,
                  ssl: dict[str, Any] | None = None, crc32c: bool = False) -> bytes:
    """A PROXY header built from a few words, as an attacker writes one (scenario files give
    ``send_proxy: {version: 2, source: 6.6.6.6:1234, ssl: {cn: admin}}``): *source* and
    *destination* as ``addr:port``; *ssl* the SSL TLV's fields (``client`` flags — default
    SSL|CERT_CONN|CERT_SESS when a CN is given —, ``verify`` default 0, ``version``, ``cn``,
    ``cipher``, ``sig_alg``, ``key_alg``).  v1 takes no TLVs."""
    if version not in (1, 2):
        raise ValueError(f"version {version!r}: 1 or 2")
    src = _endpoint_text(source, "source")
    dst = _endpoint_text(destination, "destination")
    tlvs: list[TLV] = []
    if authority is not None:
        tlvs.append(TLV(TLVType.AUTHORITY, str(authority).encode("utf-8")))
    if ssl is not None:
        if not isinstance(ssl, dict):
            raise ValueError(f"ssl {ssl!r} is not a mapping of SSL TLV fields")
        fields = dict(ssl)
        default_client = 0x07 if fields.get("cn") is not None else 0x01
        try:
            tlvs.append(ssl_tlv(int(fields.pop("client", default_client)),
                                int(fields.pop("verify", 0)), **fields))
        except TypeError as exc:
            raise ValueError(f"ssl: {exc} (fields: client, verify, version, cn, cipher, "
                             "sig_alg, key_alg)") from None
    if version == 1 and (tlvs or crc32c):
        raise ValueError("a v1 header carries no TLVs (authority, ssl, crc32c need version 2)")
    return build(src, dst, version=version, tlvs=tlvs, crc32c=crc32c)
