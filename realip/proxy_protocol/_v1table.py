"""A transition table for the common v1 lines, for callers that take a header a byte at a time
(:class:`realip.aio.ProxyProtocol`): one table look-up per byte instead of a call into the
reader.

``V1_TABLE[state][byte]`` is the next state, or 0: "not vouched for — ask the
:class:`~realip.proxy_protocol.Reader`".  ``START[version]`` is the state of an empty buffer
for a reader given that *version* (None: v1 or v2; :data:`V1_START` is ``START[None]``); the
v2 signature is followed too, up to its 12 bytes.
The table is *conservative by construction*: it follows only ``PROXY TCP4 `` / ``PROXY TCP6 ``
lines of the plainest shapes — dotted quads without leading zeros, IPv6 text of hex groups
with at most six colons (and an address is closed by its space only when it holds a ``::``, so
that it is a whole address whatever the groups), ports without leading zeros and below 60000 —
and every state it reaches is a prefix :func:`~realip.proxy_protocol.decode` calls incomplete
(a test walks it at random and asks decode() about every prefix).  Anything else — the final
LF, ``UNKNOWN``, an IPv4 tail in IPv6 text, a seventh colon, a v2 signature — is 0, and the
reader, which has every byte, gives the verdict.
"""

from __future__ import annotations

from array import array

__all__ = ["START", "V1_START", "V1_TABLE"]

_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
_LITERAL = b"PROXY TCP"
_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # the v2 signature: followed, then the reader decides

State = tuple[object, ...]


def _octet(cat: str, b: int) -> str | None:
    """An IPv4 octet without leading zeros, at most 255: its category after digit *b*."""
    d = b - 0x30
    if cat == "E":
        return "Z" if d == 0 else "1" if d == 1 else "2" if d == 2 else "G"
    if cat in ("1", "G", "B", "C"):
        return "B" if cat == "1" else "F"
    if cat == "2":
        return "C" if d <= 4 else "D" if d == 5 else "F"
    if cat == "D":
        return "F" if d <= 5 else None
    return None  # "Z" (a leading zero) or "F" (three digits)


def _port(cat: object, b: int) -> object:
    """A port without leading zeros: ``("n", digits, first digit >= 6)`` below 5 digits, then
    "F" (5 digits, the first 1-5: at most 59999); None where the table gives up."""
    d = b - 0x30
    if cat == "E":
        return "Z" if d == 0 else ("n", 1, d >= 6)
    if isinstance(cat, tuple):
        _, k, high = cat
        if k < 4:
            return ("n", k + 1, high)
        return None if high else "F"
    return None


def _step(s: State, b: int) -> State | None:
    kind = s[0]
    if kind == "B":  # an empty buffer: a v1 line, a v2 signature, or either (s[1])
        if b == 0x50 and s[1] != 2:
            return ("L", 1)
        if b == 0x0D and s[1] != 1:
            return ("S", 1)
        return None
    if kind == "S":  # the v2 signature; its 13th byte is the reader's (decode() judges it)
        n = s[1]
        assert isinstance(n, int)
        return ("S", n + 1) if n < len(_SIGNATURE) and b == _SIGNATURE[n] else None
    if kind == "L":  # the literal
        n = s[1]
        assert isinstance(n, int)
        if n < len(_LITERAL):
            return ("L", n + 1) if b == _LITERAL[n] else None
        if n == 9:
            return ("L", 10, b) if b in b"46" else None
        if b == 0x20:
            return ("A4", 0, 0, "E") if s[2] == 0x34 else ("A6", 0, 0, 0, False, "s")
        return None
    if kind == "A4":
        _, field, dots, cat = s
        assert isinstance(field, int) and isinstance(dots, int) and isinstance(cat, str)
        if b in _DIGITS:
            nxt = _octet(cat, b)
            return None if nxt is None else ("A4", field, dots, nxt)
        if cat == "E":
            return None
        if b == 0x2E and dots < 3:
            return ("A4", field, dots + 1, "E")
        if b == 0x20 and dots == 3:
            return ("A4", 1, 0, "E") if field == 0 else ("P", 2, "E")
        return None
    if kind == "A6":
        _, field, colons, glen, dbl, last = s
        assert isinstance(colons, int) and isinstance(glen, int)
        if b in _HEX:
            if last == "h" and glen >= 4:
                return None
            return ("A6", field, colons, glen + 1 if last == "h" else 1, dbl, "h")
        if b == 0x3A:
            if colons >= 6:
                return None
            if last == "h":
                return ("A6", field, colons + 1, 0, dbl, "c1")
            if last == "c1" and not dbl:
                return ("A6", field, colons + 1, 0, True, "c2")
            return None  # a leading colon, ":::", a second "::"
        if b == 0x20 and dbl and last in ("h", "c2"):
            return ("A6", 1, 0, 0, False, "s") if field == 0 else ("P", 2, "E")
        return None
    if kind == "P":
        _, field, cat = s
        if b in _DIGITS:
            port = _port(cat, b)
            return None if port is None else ("P", field, port)
        if cat == "E":
            return None
        if b == 0x20 and field == 2:
            return ("P", 3, "E")
        if b == 0x0D and field == 3:
            return ("CR",)
        return None
    return None  # "CR": the LF completes the line, which is the reader's to decode


_CANDIDATES = sorted(set(_HEX + _LITERAL + _SIGNATURE + b"46:. \r"))


def _build() -> tuple[list[array[int]], dict[int | None, int]]:
    starts: list[State] = [("B", None), ("B", 1), ("B", 2)]
    ids: dict[State, int] = {st: i + 1 for i, st in enumerate(starts)}
    order = list(starts)
    rows: list[array[int]] = [array("H", bytes(512))]  # state 0: never entered
    i = 0
    while i < len(order):
        s = order[i]
        i += 1
        row = array("H", bytes(512))
        for b in _CANDIDATES:  # no other byte is ever followed (an import-time saving)
            nxt = _step(s, b)
            if nxt is None:
                continue
            if nxt not in ids:
                ids[nxt] = len(order) + 1
                order.append(nxt)
            row[b] = ids[nxt]
        rows.append(row)
    return rows, {None: 1, 1: 2, 2: 3}


#: the rows, and the start state for each ``version`` a reader may be given (None: v1 or v2)
V1_TABLE, START = _build()
V1_START = START[None]
