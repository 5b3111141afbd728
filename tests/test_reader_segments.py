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


def _verdicts_byte_by_byte(line: bytes) -> tuple[int, object, object] | None:
    """The first prefix where the Reader fed a byte at a time disagrees with decode() (None:
    they agree on every prefix, up to the first verdict)."""
    reader = Reader()
    for i in range(len(line)):
        want: object
        got: object
        try:
            want = decode(line[: i + 1])
        except InvalidProxyHeader as exc:
            want = exc.reason
        try:
            got = reader.feed(line[i : i + 1])
        except InvalidProxyHeader as exc:
            got = exc.reason
        if want != got:
            return i + 1, want, got
        if want is not None:
            return None
    return None


@pytest.mark.parametrize("line", [
    # a ninth group after a seventh colon: decode() refuses it at its first digit, and the
    # v1 automaton (which took hex digits whatever the colon count) used to say "incomplete"
    b"PROXY TCP6 b8f6:eaeb:fcca:5:8d:6714:8120:ea6:8",
    b"PROXY TCP6 ::97e5 dec9:be64:b:6:41de:3a31:441d:8923:0",
    b"PROXY TCP6 ace:294::17f0:1b17:c213:9b:3a30:0",
    # "::" in both addresses: the destination's is taken by the automaton too
    b"PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::1 56324 1883\r\n",
    b"PROXY TCP6 1:2:3:4:5:6:7:8 ::ffff 1 2\r\n",
])
def test_v1_tcp6_byte_by_byte_agrees_with_decode(line: bytes) -> None:
    assert _verdicts_byte_by_byte(line) is None


def test_v1_tcp6_lines_mutated_agree_with_decode_byte_by_byte() -> None:
    """1500 TCP6 lines (compressed addresses of every shape), half with one byte mutated:
    the Reader fed a byte at a time gives decode()'s verdict on every prefix."""
    import ipaddress
    import random

    rng = random.Random(11)

    def address() -> str:
        bits = rng.getrandbits(128) & ~((1 << rng.choice([0, 16, 32, 64, 96, 112, 120])) - 1)
        return ipaddress.IPv6Address(bits if rng.random() < 0.7 else rng.getrandbits(16)).compressed

    for _ in range(1500):
        line = (f"PROXY TCP6 {address()} {address()} {rng.randint(0, 65535)} "
                f"{rng.randint(0, 65535)}\r\n").encode()
        if rng.random() < 0.5:
            at = rng.randrange(11, len(line))
            line = line[:at] + bytes([rng.choice(b"0123456789abcdef: .\r\nG")]) + line[at + 1 :]
        assert _verdicts_byte_by_byte(line) is None, line


def test_remembered_v2_prefixes_are_bounded_and_keep_verdicts() -> None:
    """The Reader remembers which short v2 prefixes decode() found incomplete (so a header in
    tiny pieces is not decoded per piece): a flood of distinct lengths cannot grow that memory
    past its bound, and a remembered prefix still ends in decode()'s verdict."""
    from realip.proxy_protocol import _reader

    for length in range(0, 6000):
        head = V2_SIGNATURE + b"\x21\x11" + length.to_bytes(2, "big")
        reader = Reader(max_v2_size=65551)
        for i in range(len(head)):
            try:
                reader.feed(head[i : i + 1])
            except InvalidProxyHeader:
                break
    assert len(_reader._V2_INCOMPLETE) <= _reader._V2_REMEMBERED
    good = _GOOD[0]
    for _ in range(2):  # the second time, the fixed part's verdicts are remembered
        reader = Reader()
        got = [reader.feed(good[i : i + 1]) for i in range(len(good))]
        assert got[:-1] == [None] * (len(good) - 1) and got[-1] == decode(good)
