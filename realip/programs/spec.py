"""The specification as a receiver: :func:`realip.proxy_protocol.decode` with its strict grammar.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from ..decisions import Acceptance
from ..decisions import result_maker as _result
from ..errors import InvalidProxyHeader
from ..proxy_protocol import Command, decode
from .base import ReceiverModel

_IP = IPv4Address | IPv6Address


# ==============================================================================================
# spec


def _spec(data: bytes, ver: str, knobs: Mapping[str, Any]) -> Acceptance:
    r = _result("spec", ver)
    try:
        h = decode(data, version=knobs["protocol"])
    except InvalidProxyHeader as e:
        return r(False, f"{e.reason.value}: {e.detail}", log_line=None)
    if h is None:
        return r(False, "incomplete header: a spec receiver may wait for the rest (until its "
                 "timeout) or reject a header not complete in the first read", waiting=True)
    what = "LOCAL" if h.command is Command.LOCAL else h.family.name
    if h.source is None:
        reason = f"v{h.version} {what}: real connection addresses are used"
    else:
        reason = f"v{h.version} {what}: client {h.source}"
    return r(True, reason, h.source, destination=h.destination, consumed=h.size,
             header_version=h.version)


# ==============================================================================================
# The receiver record (realip.receivers.profile reads it)

RECEIVER: Final = ReceiverModel(
    name="spec",
    parse=_spec,
    default_version="auto",
    versions=("auto", "1", "2"),
    knobs=MappingProxyType({"protocol": None}),
    rules=MappingProxyType({
        "program": "HAProxy doc/proxy-protocol.txt (2026/04/27) via realip.proxy_protocol.decode",
        "detection": "auto (version='1'/'2' restricts)",
        "fragmented": "may wait (reported as waiting) or reject",
        "v1_addresses": "strict per family, no leading zeros",
        "v1_ports": "0-65535, no leading zeros",
        "unknown_short": "accept, real peer",
        "unknown_long": "accept, real peer",
        "v1_length": "107 bytes incl. CRLF",
        "v2_length": "4096 bytes (decode's max_v2_size)",
        "v2_bad_command": "reject",
        "v2_local": "accept, real peer, address block ignored",
        "v2_other_families": "UNIX accepted (path as source); UNSPEC: real peer",
        "crc32c": "verified",
        "tlvs": "strict tiling; UNIQUE_ID <= 128; SSL sub-TLVs checked",
        "timeout": "not modelled",
        "reject_log": "realip Reason codes",
        "evidence": "the codec's own test vectors",
    }),
    sources=("realip.proxy_protocol.decode"),
    choices=("auto", "1", "2"),
    choice_error="version must be '1', '2' or None (both / inferred), not {ver!r}",
    select=lambda v: {"protocol": None if v == "auto" else int(v)},
)
