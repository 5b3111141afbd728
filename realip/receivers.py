"""What real PROXY protocol receivers do with a given header — one model per program, sans-IO.

:func:`accepts` answers, for the bytes a receiver finds in its **first read** of a fresh
connection, what that program decides: accept or reject, which client address it will use from
then on, how many bytes it takes as the header, and — for a rejection — the message it logs, in
its own words.  Each receiver is its own parser reproducing that program's grammar; they differ
from the specification (and from each other) on purpose::

    >>> from realip.receivers import accepts
    >>> line = b"PROXY TCP4 203.0.113.256 198.51.100.1 56324 1883\\r\\n"
    >>> accepts("spec", line).accepted
    False
    >>> accepts("nginx", line).source is None      # accepted, but realip cannot parse the text
    True
    >>> str(accepts("haproxy", line).source)       # the octet overflow carries
    '203.0.114.0:56324'

Receivers (:data:`RECEIVERS`) and the versions modelled (``version=`` picks another one):

* ``spec`` — the specification, via :func:`realip.proxy_protocol.decode` (v1 and v2).
* ``nginx`` — nginx ``stream`` ``listen … proxy_protocol`` with stream realip; default
  ``1.22.1`` (Debian 12), also ``1.23.2``, ``1.23.3``, ``1.31``.
* ``haproxy`` — HAProxy ``bind … accept-proxy``; default ``2.6.12``, also ``2.9``, ``3.0``.
* ``emqx-tcp`` — EMQX tcp/ssl listeners (esockd 5.17); the version names esockd and its
  backend, ``5.17 gen_tcp`` (default) or ``5.17 socket`` (EMQX 6.3's tcp default).
* ``emqx-ws`` — EMQX ws/wss listeners (cowboy reading with ranch 2.2 ``ranch_proxy_header``).
* ``mosquitto`` — Mosquitto ``enable_proxy_protocol 1|2``; default release ``2.1.2`` (also
  ``master`` at the commit its room names, and ``2.0`` without PROXY support); ``version="1"``/
  ``"2"`` (or ``"master:2"`` …), or inferred from the data when not given.

Conventions (the same for every receiver):

* *data* is what the program finds in its first read (nginx and HAProxy peek once, ranch reads
  once).  A header split across two TCP writes is modelled by passing the first fragment.
* ``accepted`` — the program goes on with the connection.  ``source``/``destination`` are the
  addresses it uses from then on; ``None`` means "the real TCP endpoints" (LOCAL, UNKNOWN,
  skipped families — or a rejection).  For nginx, ``source`` is the address **stream realip**
  sets (the peer is assumed to be in ``set_real_ip_from``); text its PROXY parser accepted but
  realip cannot parse leaves the peer in place (``source is None`` while
  ``variable("proxy_protocol_addr")`` still holds the text).
* ``waiting`` — the program would block for more bytes until its timeout (esockd waits for the
  rest of a fragmented header; everyone waits when nothing arrived at all).  Such a result is
  ``accepted=False`` with ``waiting=True`` and a reason saying what happens on timeout.
* ``log_line`` — the exact message the program logs for the rejection (without its timestamp
  and connection prefix; for ``waiting``, the one it logs when the timeout strikes), or
  ``None`` when it closes silently or the text is not modelled exactly; ``reason`` is the log
  line when there is one, else a short description.
* ``logged_source`` — HAProxy prints a client address in front of its rejection message; when
  the header's addresses were already applied before a TLV check failed, that is the *forged*
  address (this field), else the real peer (``None``).
* A receiver never raises on any input: every outcome is an :class:`Acceptance`.

The nginx and HAProxy models are checked against the real programs by ``tests/real`` (Debian
nginx 1.22.1 and HAProxy 2.6.12, every case of :data:`EDGE_CASES`), ``emqx-tcp`` against the
recorded esockd 5.17.0 (both backends, ``tests/vectors/esockd_5.17.0.json``), ``mosquitto``
against Mosquitto 2.1.2 and master built from source (``tests/vectors/mosquitto_*.json``,
checked by ``tests/test_mosquitto_vectors.py``); their other versions, and the other EMQX
models, are ports of the sources named in :data:`PROFILES`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from types import MappingProxyType
from typing import Any, Final

from .decisions import Acceptance
from .programs import RECEIVER_MODELS, ReceiverModel
from .programs.base import version_tuple
from .proxy_protocol import V2_SIGNATURE, TLVType, crc32c

__all__ = [
    "ASPECTS",
    "EDGE_CASES",
    "PAYLOAD",
    "PROFILES",
    "RECEIVERS",
    "Acceptance",
    "EdgeCase",
    "Profile",
    "accepts",
    "compare",
    "profile",
    "profile_table",
]

_IP = IPv4Address | IPv6Address

#: Names accepted by :func:`accepts`, in the order the comparison table prints them (each
#: program's room declares its receivers; :data:`realip.programs.RECEIVER_MODELS` lists them).
RECEIVERS: Final[tuple[str, ...]] = tuple(RECEIVER_MODELS)


# ==============================================================================================
# Profiles: the comparison table (semantics.md §7, corrected by the real programs), as data

#: Rows of :func:`profile_table`, in print order: (key, heading).
ASPECTS: Final[tuple[tuple[str, str], ...]] = (
    ("program", "program and configuration"),
    ("detection", "v1/v2 selection"),
    ("fragmented", "header split over two reads"),
    ("v1_addresses", "v1 address validation"),
    ("v1_ports", "v1 port range"),
    ("unknown_short", "PROXY UNKNOWN\\r\\n"),
    ("unknown_long", "PROXY UNKNOWN <addrs>\\r\\n"),
    ("v1_length", "v1 line length cap"),
    ("v2_length", "v2 header size cap"),
    ("v2_bad_command", "v2 command 2..15"),
    ("v2_local", "v2 LOCAL"),
    ("v2_other_families", "v2 PROXY with UNSPEC/UNIX/DGRAM"),
    ("crc32c", "CRC32C TLV"),
    ("tlvs", "TLV checks"),
    ("timeout", "waiting for the header"),
    ("reject_log", "rejection log"),
    ("evidence", "how this row set was established"),
)


@dataclass(frozen=True)
class Profile:
    """One receiver's behaviour, as printable rules (``rules``) and parser settings (``knobs``).

    ``knobs`` are the values the model's parser reads (buffer sizes, version-dependent switches),
    so the version differences are data, not code paths scattered through the parser.
    """

    receiver: str
    version: str
    versions: tuple[str, ...]  #: version strings with distinct behaviour (others round down)
    rules: Mapping[str, str]  #: aspect key (see :data:`ASPECTS`) -> description
    knobs: Mapping[str, Any]
    sources: str  #: where the rules were read (repository path :: function)


def _model(receiver: str) -> ReceiverModel:
    model = RECEIVER_MODELS.get(receiver)
    if model is None:
        raise ValueError(f"unknown receiver {receiver!r}; choose one of {', '.join(RECEIVERS)}")
    return model


def _resolve(receiver: str, version: str | None) -> tuple[str, Mapping[str, Any]]:
    """Normalise *version* and compute the parser knobs for it (the room's record decides)."""
    return _model(receiver).settings(version)


def profile(receiver: str, version: str | None = None) -> Profile:
    """The :class:`Profile` of *receiver* at *version* (default: the modelled default)."""
    ver, knobs = _resolve(receiver, version)
    model = _model(receiver)
    rules = dict(model.rules)
    vt = version_tuple(ver)
    for rule in model.version_rules:
        if vt is not None and vt >= rule.first and rule.aspect:
            rules[rule.aspect] = rule.text
    return Profile(receiver, ver, model.versions, MappingProxyType(rules), knobs, model.sources)


#: The default profile of every receiver.
PROFILES: Final[Mapping[str, Profile]] = MappingProxyType({r: profile(r) for r in RECEIVERS})


def profile_table(receivers: tuple[str, ...] = RECEIVERS,
                  versions: Mapping[str, str] | None = None) -> list[tuple[str, ...]]:
    """The comparison table as rows: a header row, then one row per aspect of :data:`ASPECTS`.

    *versions* maps receiver names to versions other than the default.  Every cell is plain
    text, so a notebook can print it with any table formatter.
    """
    versions = versions or {}
    profs = [profile(r, versions.get(r)) for r in receivers]
    rows: list[tuple[str, ...]] = [("aspect", *(f"{p.receiver} {p.version}" for p in profs))]
    for key, heading in ASPECTS:
        rows.append((heading, *(p.rules[key] for p in profs)))
    return rows


# ==============================================================================================
# Entry points

def accepts(receiver: str, data: bytes | bytearray | memoryview, *,
            version: str | None = None,
            later: bytes | bytearray | memoryview | None = None) -> Acceptance:
    """What *receiver* does when its first read of a new connection returns *data*.

    *later* is what a later read returns (the rest of a header sent in two writes); ``None``
    (the default) means everything arrived in the first read.  Mosquitto models it (its v2
    reader drops a header whose body is not there yet, and writes a body read twice over the
    start of its buffer); the other receivers decide on the first read and ignore it.

    *receiver* is one of :data:`RECEIVERS`.  *version* selects the behaviour modelled:

    * ``nginx``: a release such as ``"1.22.1"`` (default, Debian 12), ``"1.23.2"`` (first-line
      log quoting), ``"1.23.3"``/``"1.31"`` (4096-byte header cap).
    * ``haproxy``: ``"2.6.12"`` (default), ``"2.9"`` (1024-byte TLV cap), ``"3.0"`` (LOCAL
      TLVs parsed).
    * ``emqx-tcp``: esockd and its backend, ``"5.17 gen_tcp"`` (default) or ``"5.17 socket"``
      (``"gen_tcp"`` / ``"socket"`` also read).
    * ``emqx-ws``: ranch ``"2.2"``.
    * ``spec``: the PROXY protocol version accepted, ``"1"`` or ``"2"``; ``None`` accepts both.
    * ``mosquitto``: the listener's ``enable_proxy_protocol``, ``"1"`` or ``"2"`` (``None``
      infers it from the data; Mosquitto's listeners never auto-detect), optionally after the
      release: ``"2.1.2:2"`` (the default release), ``"master:1"`` (2.0 has no PROXY reader).

    Raises :class:`ValueError` only for an unknown receiver or version; never for the data.
    """
    model = _model(receiver)
    return model.accepts(bytes(data), version,
                         later=None if later is None else bytes(later))


def compare(data: bytes | bytearray | memoryview,
            receivers: tuple[str, ...] = RECEIVERS) -> dict[str, Acceptance]:
    """:func:`accepts` for several receivers at their default versions."""
    return {name: accepts(name, data) for name in receivers}


# ==============================================================================================
# A catalogue of edge cases (the table tests/real runs against the real programs)

#: What follows the header in the edge cases: an HTTP request (HAProxy's test frontend answers
#: it; for nginx it is just application data after the header).
PAYLOAD: Final[bytes] = b"GET / HTTP/1.0\r\n\r\n"


@dataclass(frozen=True)
class EdgeCase:
    """One input for the receivers: ``data`` is sent in one write, or in two with a pause when
    ``split`` is set (the receiver's first read then holds ``data[:split]``).  ``payload``
    appends :data:`PAYLOAD` to the (last) write; ``ipv6`` sends from ``::1``."""

    name: str
    data: bytes
    note: str
    split: int | None = None
    payload: bool = True
    ipv6: bool = False

    def writes(self) -> tuple[bytes, ...]:
        """The TCP writes a client makes, in order."""
        tail = PAYLOAD if self.payload else b""
        if self.split is None:
            return (self.data + tail,)
        return (self.data[: self.split], self.data[self.split :] + tail)

    def first_read(self) -> bytes:
        """What the receiver sees in its first read (the input of :func:`accepts`)."""
        return self.writes()[0]


def _v2(vc: int, ft: int, body: bytes, length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return V2_SIGNATURE + bytes((vc, ft)) + n.to_bytes(2, "big") + body


def _tlv(t: int, value: bytes, length: int | None = None) -> bytes:
    n = len(value) if length is None else length
    return bytes((t,)) + n.to_bytes(2, "big") + value


def _with_crc(header: bytes, good: bool = True) -> bytes:
    """Append a CRC32C TLV to a v2 header (fixing the length), correct or off by one."""
    body = header[16:] + _tlv(TLVType.CRC32C, bytes(4))
    h = header[:14] + len(body).to_bytes(2, "big") + body
    value = crc32c(h) ^ (0 if good else 1)
    return h[:-4] + value.to_bytes(4, "big")


_V4 = bytes((203, 0, 113, 7)) + bytes((198, 51, 100, 1)) + (56324).to_bytes(2, "big") + (
    1883).to_bytes(2, "big")
_V6 = (IPv6Address("2001:db8::7").packed + IPv6Address("2001:db8::1").packed
       + (56324).to_bytes(2, "big") + (1883).to_bytes(2, "big"))
_V6_MAPPED = (IPv6Address("::ffff:203.0.113.7").packed
              + IPv6Address("::ffff:198.51.100.1").packed + _V6[32:])
_V6_COMPAT = IPv6Address("::102").packed + IPv6Address("::1").packed + _V6[32:]
_UNIX = b"/run/client.sock".ljust(108, b"\0") + b"/run/broker.sock".ljust(108, b"\0")
_L4 = b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n"


def _cases() -> Iterator[EdgeCase]:
    c = EdgeCase
    yield c("v1-tcp4", _L4, "plain valid TCP4 line")
    yield c("v1-tcp4-no-payload", _L4, "valid line, nothing after it in the first read",
            payload=False)
    yield c("v1-tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 1883\r\n", "valid TCP6 line")
    yield c("v1-tcp6-mapped", b"PROXY TCP6 ::ffff:203.0.113.7 ::ffff:198.51.100.1 1 2\r\n",
            "v4-mapped addresses in TCP6")
    yield c("v1-unknown-short", b"PROXY UNKNOWN\r\n", "UNKNOWN, short form")
    yield c("v1-unknown-long", b"PROXY UNKNOWN 203.0.113.7 198.51.100.1 56324 1883\r\n",
            "UNKNOWN with addresses (legal per spec)")
    yield c("v1-unknown-short-ipv6", b"PROXY UNKNOWN\r\n", "UNKNOWN from an IPv6 peer",
            ipv6=True)
    yield c("v1-tcp4-ipv6-peer", _L4, "TCP4 line received from an IPv6 peer", ipv6=True)
    yield c("v1-leading-zeros", b"PROXY TCP4 010.001.002.003 198.51.100.1 56324 1883\r\n",
            "leading zeros (spec: invalid; nginx/HAProxy: decimal)")
    yield c("v1-octet-256", b"PROXY TCP4 203.0.113.256 198.51.100.1 56324 1883\r\n",
            "octet out of range")
    yield c("v1-octet-1004", b"PROXY TCP4 203.0.113.1004 198.51.100.1 56324 1883\r\n",
            "four-digit octet")
    yield c("v1-three-octets", b"PROXY TCP4 203.0.113 198.51.100.1 56324 1883\r\n",
            "a missing octet")
    yield c("v1-empty-octet", b"PROXY TCP4 203..113.7 198.51.100.1 56324 1883\r\n",
            "an empty octet")
    yield c("v1-empty-source", b"PROXY TCP4  198.51.100.1 56324 1883\r\n",
            "empty source field (two spaces) with one field fewer")
    yield c("v1-hex-letters", b"PROXY TCP4 abc.def.1.2 198.51.100.1 56324 1883\r\n",
            "hex letters in a TCP4 address")
    yield c("v1-v4-in-tcp6", b"PROXY TCP6 203.0.113.7 198.51.100.1 56324 1883\r\n",
            "IPv4 text announced as TCP6")
    yield c("v1-v6-in-tcp4", b"PROXY TCP4 2001:db8::7 2001:db8::1 56324 1883\r\n",
            "IPv6 text announced as TCP4")
    yield c("v1-tcp6-255", b"PROXY TCP6 ::ffff:255.255.255.255 ::1 56324 1883\r\n",
            "v4-mapped broadcast")
    yield c("v1-five-octets", b"PROXY TCP4 203.0.113.7.9 198.51.100.1 56324 1883\r\n",
            "a fifth dotted field")
    yield c("v1-tcp6-zone", b"PROXY TCP6 fe80::1%eth0 2001:db8::1 56324 1883\r\n",
            "an IPv6 zone id")
    yield c("v1-tcp6-uppercase", b"PROXY TCP6 2001:DB8::7 2001:DB8::1 56324 1883\r\n",
            "upper-case IPv6 text")
    yield c("v1-unknown-lone-lf", b"PROXY UNKNOWN\n", "UNKNOWN ended by a lone LF; the "
            "payload holds the next CRLF")
    yield c("v1-port-0", b"PROXY TCP4 203.0.113.7 198.51.100.1 0 1883\r\n", "source port 0")
    yield c("v1-port-65536", b"PROXY TCP4 203.0.113.7 198.51.100.1 65536 1883\r\n",
            "source port 65536")
    yield c("v1-port-99999999999", b"PROXY TCP4 203.0.113.7 198.51.100.1 99999999999 1883\r\n",
            "source port far beyond 16 bits")
    yield c("v1-port-plus", b"PROXY TCP4 203.0.113.7 198.51.100.1 +80 1883\r\n",
            "a signed port")
    yield c("v1-port-leading-zeros", b"PROXY TCP4 203.0.113.7 198.51.100.1 00080 01883\r\n",
            "ports with leading zeros")
    yield c("v1-port-empty", b"PROXY TCP4 203.0.113.7 198.51.100.1  1883\r\n",
            "empty source port")
    yield c("v1-double-space", b"PROXY TCP4 203.0.113.7  198.51.100.1 56324 1883\r\n",
            "two spaces between the addresses")
    yield c("v1-trailing-space", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883 \r\n",
            "a space before CRLF")
    yield c("v1-extra-field-tcp4", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883 7\r\n",
            "a fifth field (TCP4)")
    yield c("v1-extra-field-tcp6", b"PROXY TCP6 2001:db8::7 2001:db8::1 56324 1883 7\r\n",
            "a fifth field (TCP6)")
    yield c("v1-tcp6-nul-in-port", b"PROXY TCP6 2001:db8::7 2001:db8::1 56324\0x 1883\r\n",
            "a NUL byte inside the source port (TCP6)")
    yield c("v1-lone-lf", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\n",
            "LF without CR, payload follows")
    yield c("v1-lone-lf-no-payload", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\n",
            "LF without CR, nothing follows", payload=False)
    yield c("v1-lone-cr", b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 1883\rX\r\n",
            "CR not followed by LF")
    yield c("v1-lowercase", b"proxy TCP4 203.0.113.7 198.51.100.1 56324 1883\r\n",
            "lower-case keyword")
    yield c("v1-tcp5", b"PROXY TCP5 203.0.113.7 198.51.100.1 56324 1883\r\n",
            "unknown protocol")
    yield c("v1-proxy-only", b"PROXY \r\n", "keyword and CRLF only")
    yield c("v1-too-long-tcp6",
            b"PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0001 "
            b"0000:0000:0000:0000:0000:ffff:198.151.100.100 56324 1883\r\n",
            "a valid-looking 109-byte TCP6 line (over the 107-byte limit)")
    yield c("v1-too-long-unknown", b"PROXY UNKNOWN " + b"f" * 120 + b"\r\n",
            "a 136-byte UNKNOWN line")
    yield c("v1-split", _L4, "line split over two TCP writes", split=28)
    yield c("not-proxy", b"", "an HTTP request without any header")
    yield c("short-garbage", b"hello\n", "six bytes that are no header", payload=False)
    yield c("v2-inet", _v2(0x21, 0x11, _V4), "v2 PROXY TCP over IPv4")
    yield c("v2-inet-no-payload", _v2(0x21, 0x11, _V4), "v2 INET, nothing after it",
            payload=False)
    yield c("v2-inet6", _v2(0x21, 0x21, _V6), "v2 PROXY TCP over IPv6")
    yield c("v2-inet6-mapped", _v2(0x21, 0x21, _V6_MAPPED), "v2 INET6 with v4-mapped addresses")
    yield c("v2-inet6-compat", _v2(0x21, 0x21, _V6_COMPAT), "v2 INET6 source ::102")
    yield c("v2-local", _v2(0x20, 0x00, b""), "v2 LOCAL, empty")
    yield c("v2-local-ipv6", _v2(0x20, 0x00, b""), "v2 LOCAL from an IPv6 peer", ipv6=True)
    yield c("v2-local-inet-block", _v2(0x20, 0x11, _V4), "LOCAL carrying an INET address block")
    yield c("v2-local-bad-crc", _with_crc(_v2(0x20, 0x00, b""), good=False),
            "LOCAL with a wrong CRC32C TLV")
    yield c("v2-unspec", _v2(0x21, 0x00, b""), "PROXY with family UNSPEC")
    yield c("v2-unix", _v2(0x21, 0x31, _UNIX), "PROXY over a UNIX stream socket")
    yield c("v2-dgram", _v2(0x21, 0x12, _V4), "PROXY over UDP/IPv4")
    yield c("v2-version-1", _v2(0x11, 0x11, _V4), "version nibble 1")
    yield c("v2-command-2", _v2(0x22, 0x11, _V4), "command nibble 2")
    yield c("v2-family-4", _v2(0x21, 0x41, _V4), "family nibble 4")
    yield c("v2-short-block", _v2(0x21, 0x11, _V4[:11]), "INET with an 11-byte block")
    yield c("v2-crc-good", _with_crc(_v2(0x21, 0x11, _V4)), "INET with a correct CRC32C")
    yield c("v2-crc-bad", _with_crc(_v2(0x21, 0x11, _V4), good=False), "INET, wrong CRC32C")
    yield c("v2-crc-3-bytes", _v2(0x21, 0x11, _V4 + _tlv(TLVType.CRC32C, b"abc")),
            "CRC32C TLV of 3 bytes")
    yield c("v2-noop", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, b"\0\0\0\0")), "a NOOP TLV")
    yield c("v2-tlv-overrun", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, b"\0\0", 10)),
            "a TLV longer than the header")
    yield c("v2-tlv-2-bytes", _v2(0x21, 0x11, _V4 + b"\x04\x00"), "two stray bytes after "
            "the addresses")
    yield c("v2-unique-id-64", _v2(0x21, 0x11, _V4 + _tlv(TLVType.UNIQUE_ID, b"u" * 64)),
            "UNIQUE_ID of 64 bytes (95-byte header)")
    yield c("v2-unique-id-128", _v2(0x21, 0x11, _V4 + _tlv(TLVType.UNIQUE_ID, b"u" * 128)),
            "UNIQUE_ID of 128 bytes (159-byte header)")
    yield c("v2-unique-id-129", _v2(0x21, 0x11, _V4 + _tlv(TLVType.UNIQUE_ID, b"u" * 129)),
            "UNIQUE_ID of 129 bytes")
    yield c("v2-authority-256", _v2(0x21, 0x11, _V4 + _tlv(TLVType.AUTHORITY, b"a" * 256)),
            "AUTHORITY of 256 bytes")
    yield c("v2-unique-id-empty", _v2(0x21, 0x11, _V4 + _tlv(TLVType.UNIQUE_ID, b"")),
            "an empty UNIQUE_ID (what HAProxy sends without unique-id-format)")
    yield c("v2-noop-2000", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, bytes(2000))),
            "a 2000-byte NOOP TLV (HAProxy >= 2.9 caps TLV values at 1024)")
    yield c("v2-107-bytes", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, bytes(76))),
            "a 107-byte header")
    yield c("v2-108-bytes", _v2(0x21, 0x11, _V4 + _tlv(TLVType.NOOP, bytes(77))),
            "a 108-byte header")
    yield c("v2-ssl", _v2(0x21, 0x11, _V4 + _tlv(TLVType.SSL, b"\x01\0\0\0\0"
                                                 + _tlv(0x21, b"TLSv1.3"))),
            "an SSL TLV with a version sub-TLV")
    yield c("v2-split-10", _v2(0x21, 0x11, _V4), "v2 split after 10 bytes", split=10)
    yield c("v2-split-20", _v2(0x21, 0x11, _V4), "v2 split after 20 bytes", split=20)


#: The edge cases, by name.
EDGE_CASES: Final[Mapping[str, EdgeCase]] = MappingProxyType({c.name: c for c in _cases()})
