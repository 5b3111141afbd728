"""``realip._addr`` (strict address text, no ``socket`` in the library) against the C library.

glibc's ``inet_pton`` implements exactly the grammar the PROXY protocol asks for: dotted quads
without leading zeros, RFC 4291 IPv6 text (at most one ``::``, 1-4 hex digits per group, an
optional dotted-quad tail), no zone ids.  ``inet_ntop`` is how nginx and HAProxy print IPv6.
"""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realip._addr import format_ip, format_ipv6, parse_ipv4, parse_ipv6

SETTINGS = settings(max_examples=500, deadline=None)


def pton(family: int, text: str) -> bytes | None:
    try:
        return socket.inet_pton(family, text)
    except (OSError, ValueError, UnicodeError):
        return None


def check4(text: str) -> None:
    want = pton(socket.AF_INET, text)
    got = parse_ipv4(text)
    if want is None:
        assert got is None, text
    else:
        assert isinstance(got, IPv4Address), text
        assert got.packed == want, text


def check6(text: str) -> None:
    want = pton(socket.AF_INET6, text)
    got = parse_ipv6(text)
    if want is None:
        assert got is None, text
    else:
        assert isinstance(got, IPv6Address), text
        assert got.packed == want, text


# -- text generators -----------------------------------------------------------------------------
octet_text = st.one_of(
    st.integers(0, 255).map(str),
    st.integers(0, 999).map(str),
    st.integers(0, 255).map(lambda n: f"0{n}"),  # leading zero
    st.sampled_from(["", "00", "0x1", "-1", "+1", " 1", "1 ", "256", "1e2", "٣"]),
)
ipv4_text = st.lists(octet_text, min_size=1, max_size=6).map(".".join)

_word = st.one_of(st.just(0), st.just(0), st.just(0xFFFF), st.integers(0, 0xFFFF))
words = st.lists(_word, min_size=8, max_size=8)
ipv6_int = st.one_of(
    st.integers(0, 2**128 - 1),
    words.map(lambda ws: int.from_bytes(struct.pack(">8H", *ws), "big")),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1).map(lambda v: (0xFFFF << 32) | v),
    st.integers(0, 2**48 - 1),
)


@st.composite
def ipv6_spellings(draw: st.DrawFn) -> str:
    """Several legal (and some illegal) ways of writing an address."""
    value = draw(ipv6_int)
    ws = list(struct.unpack(">8H", value.to_bytes(16, "big")))
    style = draw(st.sampled_from(["ntop", "full", "padded", "upper", "compress", "dotted", "raw"]))
    if style == "ntop":
        return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))
    if style == "full":
        return ":".join(f"{w:x}" for w in ws)
    if style == "padded":
        return ":".join(f"{w:04x}" for w in ws)
    if style == "upper":
        return ":".join(f"{w:X}" for w in ws)
    if style == "compress":  # '::' over any run (possibly of non-zero words: then it is wrong)
        i = draw(st.integers(0, 8))
        j = draw(st.integers(i, 8))
        left = ":".join(f"{w:x}" for w in ws[:i])
        right = ":".join(f"{w:x}" for w in ws[j:])
        return f"{left}::{right}"
    if style == "dotted":
        quad = ".".join(str(b) for b in value.to_bytes(16, "big")[12:])
        head = ws[: draw(st.integers(0, 6))]
        text = ":".join(f"{w:x}" for w in head)
        sep = draw(st.sampled_from([":", "::"]))
        return f"{text}{sep}{quad}" if text else f"::{quad}"
    return draw(st.text(st.sampled_from("0123456789abcdefABCDEF:."), max_size=45))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str], alphabet: str) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        i = draw(st.integers(0, len(text)))
        ch = draw(st.sampled_from(alphabet))
        if kind == "insert":
            text = text[:i] + ch + text[i:]
        elif kind == "delete":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + ch + text[i + 1 :]
    return text


MUTATION_ALPHABET = "0123456789abcdefABCDEFg:.%x -[]\x00\n"


# -- parse_ipv4 ----------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_parse_ipv4_canonical(value: int) -> None:
    text = socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    assert parse_ipv4(text) == IPv4Address(value)
    check4(text)


@SETTINGS
@given(ipv4_text)
def test_parse_ipv4_like_inet_pton(text: str) -> None:
    check4(text)


@SETTINGS
@given(mutated(st.integers(0, 2**32 - 1).map(lambda v: str(IPv4Address(v))), MUTATION_ALPHABET))
def test_parse_ipv4_mutations(text: str) -> None:
    check4(text)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("0.0.0.0", True), ("255.255.255.255", True), ("192.168.0.1", True),
        ("192.168.01.1", False), ("256.1.1.1", False), ("1.2.3", False), ("1.2.3.4.5", False),
        ("1..2.3", False), ("", False), (" 1.2.3.4", False), ("1.2.3.4\n", False),
        ("0x7f.0.0.1", False), ("١.٢.٣.٤", False), ("::1", False), ("1.2.3.4/8", False),
    ],
)
def test_parse_ipv4_examples(text: str, ok: bool) -> None:
    assert (parse_ipv4(text) is not None) is ok
    check4(text)


# -- parse_ipv6 ----------------------------------------------------------------------------------
@SETTINGS
@given(ipv6_spellings())
def test_parse_ipv6_like_inet_pton(text: str) -> None:
    check6(text)


@SETTINGS
@given(mutated(ipv6_spellings(), MUTATION_ALPHABET))
def test_parse_ipv6_mutations(text: str) -> None:
    check6(text)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("::", True), ("::1", True), ("1::", True), ("2001:db8::1", True),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", True), ("1:2:3:4:5:6:7:8", True),
        ("1:2:3:4:5:6:7::", True), ("::2:3:4:5:6:7:8", True), ("::ffff:192.0.2.1", True),
        ("::192.0.2.1", True), ("1:2:3:4:5:6:1.2.3.4", True), ("1:2:3:4:5::1.2.3.4", True),
        ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", True),
        ("fe80::1%eth0", False), ("fe80::1%2", False), ("1::2::3", False),
        ("1:2:3:4:5:6:7:8:9", False),
        ("1:2:3:4:5:6:7", False), ("12345::", False), ("[::1]", False), (":::", False),
        (":1:2:3:4:5:6:7", False), ("1:2:3:4:5:6:7:", False), ("1::2:3:4:5:6:7:8", False),
        ("::ffff:1.2.3.256", False), ("::ffff:01.2.3.4", False), ("1.2.3.4", False),
        ("1:2:3:4:5:6:7:1.2.3.4", False), ("::1.2.3", False), ("::1.2.3.4:5", False), ("", False),
        ("g::", False), (" ::1", False), ("::1 ", False),
        ("0000:0000:0000:0000:0000:0000:0000:00001", False),
    ],
)
def test_parse_ipv6_examples(text: str, ok: bool) -> None:
    assert (parse_ipv6(text) is not None) is ok, text
    check6(text)


# -- format_ipv6 ---------------------------------------------------------------------------------
@SETTINGS
@given(ipv6_int)
def test_format_ipv6_like_inet_ntop(value: int) -> None:
    addr = IPv6Address(value)
    text = format_ipv6(addr)
    assert text == socket.inet_ntop(socket.AF_INET6, addr.packed)
    assert format_ip(addr) == text
    assert parse_ipv6(text) == addr


@pytest.mark.parametrize(
    "text",
    ["::", "::1", "::2", "::ffff:0.0.0.0", "::ffff:1.2.3.4", "::1.2.3.4", "::0.1.0.0", "1::",
     "1:0:0:1::", "1:0:0:1:0:0:0:1", "1::1:0:0:1", "0:1::", "2001:db8:0:1:1:1:1:1",
     "::ffff:0:1.2.3.4", "64:ff9b::1.2.3.4", "ffff::", "0:0:1::"],
)
def test_format_ipv6_examples(text: str) -> None:
    addr = IPv6Address(text)
    assert format_ipv6(addr) == socket.inet_ntop(socket.AF_INET6, addr.packed)


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_format_ip_v4(value: int) -> None:
    addr = IPv4Address(value)
    assert format_ip(addr) == socket.inet_ntop(socket.AF_INET, addr.packed)
    assert parse_ipv4(format_ip(addr)) == addr


def test_library_does_not_import_socket() -> None:
    import ast
    from pathlib import Path

    import realip._addr as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert "socket" not in imported
