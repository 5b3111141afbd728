"""Validation behind the public :class:`ProxyHeader` constructor."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from ..errors import EncodeError
from ._spec import ADDRESS_BLOCK, UNIX_PATH_LEN, Command, Family, Transport
from ._values import TLV, Endpoint

_tuple_new = tuple.__new__


def _endpoint(value: Any, family: Family, what: str) -> Endpoint | None:
    if value is None:
        return None
    try:
        host, port = value
    except (TypeError, ValueError):
        raise EncodeError(f"{what} must be an Endpoint(host, port), not {value!r}") from None
    if family is Family.UNIX:
        if not isinstance(host, str):
            raise EncodeError(f"{what}: a UNIX endpoint's host is a path string, not {host!r}")
        if len(host.encode("utf-8", "surrogateescape")) > UNIX_PATH_LEN:
            raise EncodeError(f"{what}: UNIX path longer than {UNIX_PATH_LEN} bytes: {host!r}")
        if port is not None:
            raise EncodeError(f"{what}: UNIX endpoints have no port, got {port!r}")
        return _tuple_new(Endpoint, (host, None))
    if isinstance(host, str):
        try:
            host = ip_address(host)
        except ValueError:
            raise EncodeError(f"{what}: {host!r} is not an IP address") from None
    want = IPv4Address if family is Family.INET else IPv6Address
    if not isinstance(host, want):
        raise EncodeError(f"{what}: {host} is not an address of family {family.name}")
    if isinstance(host, IPv6Address) and host.scope_id:
        raise EncodeError(f"{what}: zone ids cannot be carried: {host}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 0xFFFF:
        raise EncodeError(f"{what}: port must be an int in 0..65535, got {port!r}")
    return _tuple_new(Endpoint, (host, port))


def validate_fields(
    version: int,
    command: Command | int,
    family: Family | int,
    transport: Transport | int,
    source: Any,
    destination: Any,
    tlvs: Iterable[TLV | tuple[int, bytes]],
    size: int,
    skipped: bytes,
    v1_text: tuple[str, str] | None,
    raw_family_transport: int | None = None,
) -> tuple[Any, ...]:
    """Check and normalise the fields of a ProxyHeader; raise :class:`EncodeError`."""
    if version not in (1, 2):
        raise EncodeError(f"version must be 1 or 2, not {version!r}")
    try:
        command = Command(command)
        family = Family(family)
        transport = Transport(transport)
    except ValueError as exc:
        raise EncodeError(str(exc)) from None
    tlv_list: list[TLV] = []
    for t in tlvs:
        try:
            kind, value = t
        except (TypeError, ValueError):
            raise EncodeError(f"a TLV is a (type, value) pair, not {t!r}") from None
        if not isinstance(kind, int) or not 0 <= kind <= 0xFF:
            raise EncodeError(f"TLV type must be an int in 0..255, not {kind!r}")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"TLV value must be bytes, not {type(value).__name__}")
        value = bytes(value)
        if len(value) > 0xFFFF:
            raise EncodeError(f"TLV 0x{kind:02X} value is longer than 65535 bytes")
        tlv_list.append(_tuple_new(TLV, (int(kind), value)))
    skipped = bytes(skipped)
    if version == 1:
        if command is not Command.PROXY:
            raise EncodeError("a v1 header is always PROXY; LOCAL needs version 2")
        if tlv_list or skipped:
            raise EncodeError("v1 headers carry no TLVs")
        if family is Family.UNSPEC:
            if transport is not Transport.UNSPEC and transport is not Transport.STREAM:
                raise EncodeError("v1 UNKNOWN has no transport")
            transport = Transport.UNSPEC
        elif family in (Family.INET, Family.INET6):
            if transport is not Transport.STREAM:
                raise EncodeError("v1 TCP4/TCP6 headers are STREAM")
        else:
            raise EncodeError("v1 headers carry only TCP4, TCP6 or UNKNOWN")
    if command is Command.LOCAL or family is Family.UNSPEC:
        if source is not None or destination is not None:
            raise EncodeError(
                f"{command.name}/{family.name} headers carry no endpoints (receivers use the real"
                " ones); put an ignored address block in 'skipped'"
            )
        src = dst = None
    else:
        if source is None or destination is None:
            raise EncodeError(f"a PROXY {family.name} header needs both endpoints")
        src = _endpoint(source, family, "source")
        dst = _endpoint(destination, family, "destination")
    if skipped and command is not Command.LOCAL:
        raise EncodeError("only LOCAL headers have an ignored address block")
    if raw_family_transport is not None:
        # a LOCAL header whose family and address block were ignored as a whole (spec §2.2)
        if version != 2 or command is not Command.LOCAL or family is not Family.UNSPEC or \
                transport is not Transport.UNSPEC or tlv_list:
            raise EncodeError("raw_family_transport belongs to a v2 LOCAL UNSPEC header without "
                              "TLVs (its whole body is in 'skipped')")
        if not isinstance(raw_family_transport, int) or not 0 <= raw_family_transport <= 255:
            raise EncodeError(f"raw_family_transport is a byte, not {raw_family_transport!r}")
        if not isinstance(size, int) or size < 0:
            raise EncodeError(f"size must be a non-negative int, not {size!r}")
        return (version, command, family, transport, None, None, (), size, bytes(skipped),
                v1_text, raw_family_transport)
    block = ADDRESS_BLOCK[family]
    if skipped and len(skipped) != block:
        raise EncodeError(
            f"a LOCAL {family.name} address block is {block} bytes, 'skipped' has {len(skipped)}"
        )
    if version == 2 and command is Command.LOCAL and block and tlv_list and not skipped:
        # Receivers skip a LOCAL header's address block before the TLVs: without the block the
        # first TLV bytes would be skipped as addresses.
        raise EncodeError(f"a LOCAL {family.name} header with TLVs needs its {block}-byte block")
    if not isinstance(size, int) or size < 0:
        raise EncodeError(f"size must be a non-negative int, not {size!r}")
    return (version, command, family, transport, src, dst, tuple(tlv_list), size, skipped, v1_text,
            None)
