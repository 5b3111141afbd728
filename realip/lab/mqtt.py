"""A small sans-IO MQTT codec (3.1, 3.1.1 and 5.0): the packets a broker reads and writes.

:class:`PacketReader` frames a byte stream into packets (any split, a size cap); :func:`parse`
turns one into a typed value (:class:`Connect`, :class:`Publish`, :class:`Subscribe`,
:class:`Unsubscribe`, :class:`Ack`, :class:`Disconnect`, :class:`Simple`); the ``encode_*``
functions build what a broker sends (and :func:`encode_connect`, :func:`encode_subscribe`,
:func:`encode_publish`, :func:`encode_ack` what a client sends, for tests and benchmarks).
Malformed input raises :class:`MalformedPacket` with the MQTT 5 reason code (0x81 malformed
packet, 0x82 protocol error).  Only what the lab broker needs is here: no AUTH exchange, no
persistence.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import RealIPError

__all__ = [
    "Ack",
    "Connect",
    "Disconnect",
    "MalformedPacket",
    "PacketReader",
    "PacketType",
    "Publish",
    "Simple",
    "Subscribe",
    "Unsubscribe",
    "Will",
    "encode_ack",
    "encode_connack",
    "encode_connect",
    "encode_disconnect",
    "encode_publish",
    "encode_suback",
    "encode_subscribe",
    "encode_unsuback",
    "parse",
    "set_packet_id",
    "topic_matches",
    "valid_filter",
    "valid_topic",
]


class PacketType(enum.IntEnum):
    """Control packet types (the high nibble of the first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


#: Reason codes used here (MQTT 5 §2.4).
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
NOT_AUTHORIZED = 0x87
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
SHARED_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1
#: The largest packet MQTT can frame: a 4-byte remaining length of 268 435 455, and 5 bytes
MAX_PACKET = 268_435_455 + 5


class MalformedPacket(RealIPError):
    """The peer sent bytes that are not a valid MQTT packet; ``code`` is the MQTT 5 reason."""

    def __init__(self, detail: str, code: int = MALFORMED) -> None:
        self.code = code
        super().__init__(detail)


def _utf8(raw: bytes) -> str:
    """An MQTT UTF-8 string: valid UTF-8 and no U+0000 [MQTT-1.5.4-1, -2]."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket(f"not UTF-8: {raw[:32]!r}") from None
    if "\x00" in text:
        raise MalformedPacket("U+0000 in a UTF-8 string")
    return text


# -- properties (MQTT 5 §2.2.2.2) --------------------------------------------------------------

_BYTE, _INT2, _INT4, _VARINT, _STR, _BIN, _PAIR = range(7)
#: property identifier → (value type, name)
PROPERTIES: dict[int, tuple[int, str]] = {
    0x01: (_BYTE, "payload_format"), 0x02: (_INT4, "message_expiry"),
    0x03: (_STR, "content_type"), 0x08: (_STR, "response_topic"),
    0x09: (_BIN, "correlation_data"), 0x0B: (_VARINT, "subscription_id"),
    0x11: (_INT4, "session_expiry"), 0x12: (_STR, "assigned_client_id"),
    0x13: (_INT2, "server_keep_alive"), 0x15: (_STR, "auth_method"),
    0x16: (_BIN, "auth_data"), 0x17: (_BYTE, "request_problem_info"),
    0x18: (_INT4, "will_delay"), 0x19: (_BYTE, "request_response_info"),
    0x1A: (_STR, "response_info"), 0x1C: (_STR, "server_reference"),
    0x1F: (_STR, "reason_string"), 0x21: (_INT2, "receive_maximum"),
    0x22: (_INT2, "topic_alias_maximum"), 0x23: (_INT2, "topic_alias"),
    0x24: (_BYTE, "maximum_qos"), 0x25: (_BYTE, "retain_available"),
    0x26: (_PAIR, "user_property"), 0x27: (_INT4, "maximum_packet_size"),
    0x28: (_BYTE, "wildcard_available"), 0x29: (_BYTE, "subscription_ids_available"),
    0x2A: (_BYTE, "shared_available"),
}
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
TOPIC_ALIAS = 0x23
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
MAXIMUM_PACKET_SIZE = 0x27
SUBSCRIPTION_IDS_AVAILABLE = 0x29
SHARED_AVAILABLE = 0x2A

Properties = tuple[tuple[int, Any], ...]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str) -> bytes:
    raw = text.encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw


def _bin(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def encode_properties(props: Iterable[tuple[int, Any]]) -> bytes:
    """The property block (its length first) for *props*, in the given order."""
    body = bytearray()
    for ident, value in props:
        kind = PROPERTIES[ident][0]
        body += _varint(ident)
        if kind == _BYTE:
            body.append(value)
        elif kind == _INT2:
            body += value.to_bytes(2, "big")
        elif kind == _INT4:
            body += value.to_bytes(4, "big")
        elif kind == _VARINT:
            body += _varint(value)
        elif kind == _STR:
            body += _str(value)
        elif kind == _BIN:
            body += _bin(value)
        else:
            body += _str(value[0]) + _str(value[1])
    return _varint(len(body)) + bytes(body)


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if self.left() < n:
            raise MalformedPacket(f"packet ends {n - self.left()} bytes early")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def varint(self) -> int:
        value = 0
        for shift in range(0, 28, 7):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise MalformedPacket("variable byte integer longer than 4 bytes")

    def string(self) -> str:
        return _utf8(self.take(self.u16()))

    def binary(self) -> bytes:
        return self.take(self.u16())

    def properties(self) -> Properties:
        length = self.varint()
        end = self.pos + length
        if end > len(self.data):
            raise MalformedPacket("property block overruns the packet")
        out: list[tuple[int, Any]] = []
        while self.pos < end:
            ident = self.varint()
            if ident not in PROPERTIES:
                raise MalformedPacket(f"unknown property 0x{ident:02X}")
            kind = PROPERTIES[ident][0]
            value: Any
            if kind == _BYTE:
                value = self.u8()
            elif kind == _INT2:
                value = self.u16()
            elif kind == _INT4:
                value = self.u32()
            elif kind == _VARINT:
                value = self.varint()
            elif kind == _STR:
                value = self.string()
            elif kind == _BIN:
                value = self.binary()
            else:
                value = (self.string(), self.string())
            out.append((ident, value))
        if self.pos != end:
            raise MalformedPacket("a property overruns the property block")
        return tuple(out)


def prop(props: Properties, ident: int) -> Any:
    """The first value of property *ident*, or None."""
    for k, v in props:
        if k == ident:
            return v
    return None


# -- framing -----------------------------------------------------------------------------------


class PacketReader:
    """Frames a byte stream: :meth:`feed` returns the complete packets as ``(first byte, body)``;
    a packet over *max_size* bytes raises :class:`MalformedPacket` (0x95).  An error found after
    complete packets in the same data is raised by the next call (``feed(b"")``), so the packets
    before it are still processed (or by :meth:`check`)."""

    def __init__(self, max_size: int = 1 << 20) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._error: MalformedPacket | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete packet held."""
        return len(self._buf)

    def check(self) -> None:
        """Raise the error found after the packets the last :meth:`feed` returned, if any."""
        if self._error is not None:
            raise self._error

    def feed(self, data: bytes | bytearray) -> list[tuple[int, bytes]]:
        if self._error is not None:
            raise self._error
        out: list[tuple[int, bytes]] = []
        try:
            self._frame(data, out)
        except MalformedPacket as exc:
            if not out:
                raise
            self._error = exc
        return out

    def _frame(self, data: bytes | bytearray, out: list[tuple[int, bytes]]) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while len(buf) - pos >= 2:
            length = 0
            i = pos + 1
            for shift in range(0, 28, 7):
                if i >= len(buf):
                    length = -1
                    break
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
            else:
                del buf[:pos]
                raise MalformedPacket("remaining length longer than 4 bytes")
            if length < 0:
                break
            if i - pos + length > self.max_size:
                del buf[:pos]
                raise MalformedPacket(f"packet of {i - pos + length} bytes is over the "
                                      f"{self.max_size}-byte cap", PACKET_TOO_LARGE)
            if len(buf) - i < length:
                break
            out.append((buf[pos], bytes(buf[i : i + length])))
            pos = i + length
        del buf[:pos]


# -- packets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties = ()


@dataclass(frozen=True)
class Connect:
    protocol: str  #: ``MQTT`` (3.1.1, 5.0) or ``MQIsdp`` (3.1)
    level: int  #: 3 (3.1), 4 (3.1.1) or 5 (5.0)
    clean: bool
    keepalive: int
    client_id: str
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    properties: Properties = ()


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = ()


@dataclass(frozen=True)
class Subscribe:
    packet_id: int
    #: (filter, options byte): bits 0-1 QoS, 2 no-local, 3 retain-as-published, 4-5 retain
    #: handling (MQTT 5; 3.1.1 only has the QoS bits)
    topics: tuple[tuple[str, int], ...]
    properties: Properties = ()


@dataclass(frozen=True)
class Unsubscribe:
    packet_id: int
    topics: tuple[str, ...]
    properties: Properties = ()


@dataclass(frozen=True)
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP."""

    type: PacketType
    packet_id: int
    reason: int = 0
    properties: Properties = ()


@dataclass(frozen=True)
class Disconnect:
    reason: int = 0
    properties: Properties = ()


@dataclass(frozen=True)
class Simple:
    """PINGREQ, PINGRESP, AUTH and the server-to-client packets (kept whole)."""

    type: PacketType
    flags: int = 0
    body: bytes = field(default=b"", repr=False)


Packet = Connect | Publish | Subscribe | Unsubscribe | Ack | Disconnect | Simple

_FIXED_FLAGS = {PacketType.PUBREL: 2, PacketType.SUBSCRIBE: 2, PacketType.UNSUBSCRIBE: 2}


def parse(first: int, body: bytes, level: int = 4) -> Packet:
    """One framed packet (``first`` byte and body) as sent by a client speaking protocol
    *level* (the CONNECT's level; 4 before CONNECT is known)."""
    try:
        ptype = PacketType(first >> 4)
    except ValueError:
        raise MalformedPacket(f"reserved packet type 0 (first byte 0x{first:02X})") from None
    flags = first & 0x0F
    if ptype != PacketType.PUBLISH and flags != _FIXED_FLAGS.get(ptype, 0):
        raise MalformedPacket(f"{ptype.name} with flags {flags:#x}")
    cur = _Cursor(body)
    v5 = level == 5
    if ptype == PacketType.CONNECT:
        return _connect(cur)
    if ptype == PacketType.PUBLISH:
        qos = (flags >> 1) & 3
        if qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3")
        topic = cur.string()
        pid = cur.u16() if qos else None
        if pid == 0:
            raise MalformedPacket("packet identifier 0", PROTOCOL_ERROR)
        props = cur.properties() if v5 else ()
        return Publish(topic, cur.take(cur.left()), qos, bool(flags & 1), bool(flags & 8), pid,
                       props)
    if ptype in (PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL, PacketType.PUBCOMP):
        pid = cur.u16()
        reason = cur.u8() if v5 and cur.left() else 0
        props = cur.properties() if v5 and cur.left() else ()
        return Ack(ptype, pid, reason, props)
    if ptype == PacketType.SUBSCRIBE:
        pid = cur.u16()
        props = cur.properties() if v5 else ()
        topics = _filters(body, cur.pos)
        if not topics:
            raise MalformedPacket("SUBSCRIBE without a topic filter", PROTOCOL_ERROR)
        return Subscribe(pid, tuple(topics), props)
    if ptype == PacketType.UNSUBSCRIBE:
        pid = cur.u16()
        props = cur.properties() if v5 else ()
        names = []
        while cur.left():
            names.append(cur.string())
        if not names:
            raise MalformedPacket("UNSUBSCRIBE without a topic filter", PROTOCOL_ERROR)
        return Unsubscribe(pid, tuple(names), props)
    if ptype == PacketType.DISCONNECT:
        reason = cur.u8() if v5 and cur.left() else 0
        props = cur.properties() if v5 and cur.left() else ()
        return Disconnect(reason, props)
    return Simple(ptype, flags, body)


def _filters(body: bytes, pos: int) -> list[tuple[str, int]]:
    """SUBSCRIBE's (filter, options) list: one tight loop, since a hostile SUBSCRIBE carries
    tens of thousands of them."""
    out: list[tuple[str, int]] = []
    end = len(body)
    while pos < end:
        if pos + 2 > end:
            raise MalformedPacket("packet ends inside a topic filter's length")
        stop = pos + 2 + ((body[pos] << 8) | body[pos + 1])
        if stop >= end:  # the options byte must follow
            raise MalformedPacket(f"packet ends {stop + 1 - end} bytes early")
        out.append((_utf8(body[pos + 2 : stop]), body[stop]))
        pos = stop + 1
    return out


def _connect(cur: _Cursor) -> Connect:
    name = cur.string()
    level = cur.u8()
    if (name, level) not in (("MQTT", 4), ("MQTT", 5), ("MQIsdp", 3)):
        raise MalformedPacket(f"unsupported protocol {name!r} level {level}", 0x84)
    flags = cur.u8()
    if flags & 1:
        raise MalformedPacket("CONNECT reserved flag set")
    keepalive = cur.u16()
    v5 = level == 5
    props = cur.properties() if v5 else ()
    client_id = cur.string()
    will = None
    if flags & 0x04:
        wprops = cur.properties() if v5 else ()
        will = Will(cur.string(), cur.binary(), (flags >> 3) & 3, bool(flags & 0x20), wprops)
        if will.qos == 3:
            raise MalformedPacket("will QoS 3")
    elif flags & 0x38:
        raise MalformedPacket("will QoS/retain without a will")
    username = cur.string() if flags & 0x80 else None
    password = cur.binary() if flags & 0x40 else None
    if cur.left():
        raise MalformedPacket(f"{cur.left()} bytes after the CONNECT payload")
    return Connect(name, level, bool(flags & 2), keepalive, client_id, will, username, password,
                   props)


# -- encoders (server to client) ---------------------------------------------------------------


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def encode_connack(level: int, code: int = 0, session_present: bool = False,
                   properties: Sequence[tuple[int, Any]] = ()) -> bytes:
    body = bytes([1 if session_present else 0, code])
    if level == 5:
        body += encode_properties(properties)
    return _packet(0x20, body)


def encode_publish(level: int, p: Publish) -> bytes:
    first = 0x30 | (p.qos << 1) | (1 if p.retain else 0) | (8 if p.dup else 0)
    body = _str(p.topic)
    if p.qos:
        assert p.packet_id is not None
        body += p.packet_id.to_bytes(2, "big")
    if level == 5:
        body += encode_properties(p.properties)
    return _packet(first, body + p.payload)


def set_packet_id(packet: bytearray, packet_id: int) -> None:
    """Write *packet_id* into an encoded QoS 1/2 PUBLISH (encoded with a placeholder id, so a
    queued message gets its identifier only when it is sent)."""
    i = 1
    while packet[i] & 0x80:
        i += 1
    i += 1
    i += 2 + int.from_bytes(packet[i : i + 2], "big")
    packet[i : i + 2] = packet_id.to_bytes(2, "big")


def encode_ack(level: int, ptype: PacketType, packet_id: int, reason: int = 0) -> bytes:
    first = (ptype << 4) | (2 if ptype == PacketType.PUBREL else 0)
    body = packet_id.to_bytes(2, "big")
    if level == 5 and reason:
        body += bytes([reason])
    return _packet(first, body)


def encode_suback(level: int, packet_id: int, codes: Sequence[int]) -> bytes:
    body = packet_id.to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    return _packet(0x90, body + bytes(codes))


def encode_unsuback(level: int, packet_id: int, count: int) -> bytes:
    body = packet_id.to_bytes(2, "big")
    if level == 5:
        body += b"\x00" + bytes(count)  # 0x00 success for each filter
    return _packet(0xB0, body)


def encode_disconnect(level: int, reason: int = 0) -> bytes | None:
    """A server DISCONNECT exists only in MQTT 5 (None otherwise)."""
    if level != 5:
        return None
    return _packet(0xE0, bytes([reason]) if reason else b"")


PINGRESP = b"\xd0\x00"


# -- encoders (client to server: for tests, benchmarks and hostile clients) --------------------


def encode_connect(client_id: str, level: int = 4, *, keepalive: int = 0, clean: bool = True,
                   properties: Sequence[tuple[int, Any]] = (), will: Will | None = None) -> bytes:
    """A client's CONNECT (MQTT 3.1.1 when *level* is 4, 5.0 when 5)."""
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        if level == 5:
            payload += encode_properties(will.properties)
        payload += _str(will.topic) + _bin(will.payload)
    body = _str("MQTT") + bytes([level, flags]) + keepalive.to_bytes(2, "big")
    if level == 5:
        body += encode_properties(properties)
    return _packet(0x10, body + payload)


def encode_subscribe(level: int, packet_id: int, filters: Sequence[tuple[str, int]],
                     properties: Sequence[tuple[int, Any]] = ()) -> bytes:
    """A client's SUBSCRIBE: *filters* are ``(filter, options byte)`` (the QoS in bits 0-1)."""
    body = bytearray(packet_id.to_bytes(2, "big"))
    if level == 5:
        body += encode_properties(properties)
    for filt, opts in filters:
        body += _str(filt)
        body.append(opts)
    return _packet(0x82, bytes(body))


# -- topics ------------------------------------------------------------------------------------


def valid_topic(topic: str) -> bool:
    """A topic name a client may publish to: not empty, no wildcards."""
    return bool(topic) and "+" not in topic and "#" not in topic


def valid_filter(filt: str) -> bool:
    """A topic filter: ``#`` only as the whole last level, ``+`` only as a whole level."""
    if not filt:
        return False
    if "+" not in filt and "#" not in filt:
        return True
    levels = filt.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def topic_matches(filt: str, topic: str) -> bool:
    """Whether *topic* matches *filt*; wildcards at the first level never match ``$`` topics."""
    if topic.startswith("$") and filt[:1] in ("+", "#"):
        return False
    f = filt.split("/")
    t = topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)
