"""The v1 transition table realip.aio follows a byte at a time (issue 11) vouches only for
prefixes decode() calls incomplete; everything else is left to the Reader, so
ProxyProtocolFactory's verdicts, byte by byte, are decode()'s."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from test_aio import _App, _deliver_segments

from realip import InvalidProxyHeader
from realip.aio import ProxyProtocolFactory
from realip.proxy_protocol import V2_SIGNATURE, decode
from realip.proxy_protocol._v1table import START, V1_START, V1_TABLE


def _walk(rng: random.Random, start: int = V1_START) -> bytes:
    """A random path through the table, as far as it goes or a random length."""
    st, out = start, bytearray()
    stop = rng.randint(1, 100)
    while len(out) < stop:
        row = V1_TABLE[st]
        choices = [b for b in range(256) if row[b]]
        if not choices:
            break
        b = rng.choice(choices)
        out.append(b)
        st = row[b]
    return bytes(out)


@pytest.mark.parametrize("version", [None, 1, 2])
def test_every_prefix_the_table_takes_is_incomplete_for_decode(version: int | None) -> None:
    rng = random.Random(13)
    seen_states = set()
    for _ in range(3000 if version is None else 300):
        line = _walk(rng, START[version])
        st = START[version]
        for i, b in enumerate(line):
            st = V1_TABLE[st][b]
            seen_states.add(st)
            assert decode(line[: i + 1], version=version) is None, line[: i + 1]
    if version != 2:
        assert len(seen_states) > 150  # the walks cover most of the table's states
    else:
        assert len(seen_states) == 12  # the signature, and nothing of a v1 line


def test_what_the_table_leaves_to_the_reader() -> None:
    def follows(text: bytes) -> bool:
        st = V1_START
        for b in text:
            st = V1_TABLE[st][b]
            if not st:
                return False
        return True

    assert follows(b"PROXY TCP4 192.168.100.200 10.0.0.1 56324 1883\r")
    assert follows(b"PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::1 56324 1883\r")
    for text in (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  # the LF: the reader decodes
                 b"PROXY UNKNOWN", b"PROXY TCP4 01", b"PROXY TCP4 256",
                 b"PROXY TCP4 1.2.3.4 5.6.7.8 65535",  # a 5-digit port from 6: the reader
                 b"PROXY TCP6 1:2:3:4:5:6:7:",  # a seventh colon
                 b"PROXY TCP6 1:2:3:4:5:6:7:8 ",  # closed without "::": the reader checks it
                 b"PROXY TCP6 ::1", b"PROXY TCP6 ::ffff:1.2",
                 V2_SIGNATURE + b"\x21"):  # the 13th v2 byte: decode() judges it
        assert not follows(text), text
    assert follows(V2_SIGNATURE)
    assert not V1_TABLE[START[1]][0x0D] and not V1_TABLE[START[2]][0x50]


def _verdict(factory: ProxyProtocolFactory, data: bytes) -> tuple[str, Any]:
    """Feed *data* a byte at a time through ProxyProtocolFactory: the outcome and where."""
    errors: list[Exception] = []
    factory.on_error = lambda peer, exc: errors.append(exc)
    proto, transport = _deliver_segments(factory, [data[i : i + 1] for i in range(len(data))])
    if isinstance(getattr(transport, "protocol", None), _App):
        return "header", transport.protocol.transport.get_extra_info("proxy_result").header
    if errors:
        assert isinstance(errors[0], InvalidProxyHeader)
        return "error", (errors[0].reason, proto._received)
    return "incomplete", proto._received


def test_byte_by_byte_through_the_factory_is_decode_s_verdict() -> None:
    """Random table walks, completed or mutated at one byte: the factory gives the header, the
    error at the byte decode() first refuses, or waits, exactly as decode() says."""
    rng = random.Random(17)

    async def go() -> None:
        factory = ProxyProtocolFactory(_App, timeout=30)
        for _ in range(600):
            line = _walk(rng)
            if line.endswith(b"\r"):
                line += b"\n"
            if rng.random() < 0.5 and len(line) > 11:
                at = rng.randrange(11, len(line))
                line = line[:at] + bytes([rng.choice(b"0123456789abcdefG:. \r\n")]) + \
                    line[at + 1 :]
            want: tuple[str, Any] = ("incomplete", len(line))
            for i in range(len(line)):
                try:
                    header = decode(line[: i + 1])
                except InvalidProxyHeader as exc:
                    want = ("error", (exc.reason, i + 1))
                    break
                if header is not None:
                    want = ("header", header)
                    break
            assert _verdict(factory, line) == want, line

    asyncio.run(go())
