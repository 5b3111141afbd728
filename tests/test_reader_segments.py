"""The Reader's shortcut for a v2 header's fixed part fed in tiny pieces (issue 11) never changes a
verdict: every prefix, fed a byte at a time or in small pieces, gets decode()'s verdict."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realip import InvalidProxyHeader
from realip.proxy_protocol import V2_SIGNATURE, Command, Reader, build, decode

_GOOD = [build(("192.0.2.1", 56324), ("198.51.100.1", 1883)),
         build(("2001:db8::7", 1), ("2001:db8::1", 2), tlvs=[(0x01, b"h2")], crc32c=True),
         build(None, None, version=2, command=Command.LOCAL)]


def _mutated(data: bytes, at: int, value: int) -> bytes:
    return data[:at] + bytes([value]) + data[at + 1 :] if at < len(data) else data


@settings(max_examples=1500, deadline=None)
@given(base=st.sampled_from(_GOOD), at=st.integers(0, 40), value=st.integers(0, 255),
       extra=st.binary(max_size=8), pieces=st.lists(st.integers(1, 3), max_size=80),
       version=st.sampled_from([None, 2, 1]))
def test_v2_in_pieces_agrees_with_decode_on_every_prefix(
        base: bytes, at: int, value: int, extra: bytes, pieces: list[int],
        version: int | None) -> None:
    data = _mutated(base, at, value) + extra
    reader = Reader(version=version)
    pos = 0
    sizes = iter(pieces)
    while pos < len(data):
        step = next(sizes, 1)
        chunk = data[pos : pos + step]
        pos += len(chunk)
        try:
            want = decode(data[:pos], version=version)
        except InvalidProxyHeader as exc:
            with pytest.raises(InvalidProxyHeader) as got:
                reader.feed(chunk)
            assert got.value.reason == exc.reason
            return
        got_h = reader.feed(chunk)
        if want is None:
            assert got_h is None, data[:pos]
        else:
            assert got_h == want and reader.trailing == data[want.size : pos]
            return


def test_the_signature_byte_by_byte_then_a_bad_version_fails_at_that_byte() -> None:
    reader = Reader()
    for b in V2_SIGNATURE:
        assert reader.feed(bytes([b])) is None
    with pytest.raises(InvalidProxyHeader):
        reader.feed(b"\x31")
