"""CRC32C (Castagnoli), as the v2 CRC32C TLV requires.

``google-crc32c`` (Google's C library, hardware-accelerated) is used when it is installed; the
table-driven fallback below computes the same value, so a missing wheel makes the check slower,
never skipped (``proxy-protocol`` 0.11.3 silently skips it — a known bug we do not repeat).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["IMPLEMENTATION", "crc32c", "crc32c_py"]


def _make_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c_py(data: bytes | bytearray | memoryview) -> int:
    """Pure-Python CRC32C (reflected polynomial 0x82F63B78, init and xor-out 0xFFFFFFFF)."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _load() -> tuple[Callable[[bytes], int], str]:
    try:
        import google_crc32c
    except ImportError:  # pragma: no cover - exercised by the fallback test
        return crc32c_py, "python"
    if google_crc32c.implementation != "c":  # its own pure-Python fallback is slower than ours
        return crc32c_py, "python"
    value: Callable[[bytes], int] = google_crc32c.value
    return value, "google-crc32c"


_impl, IMPLEMENTATION = _load()


def crc32c(data: bytes) -> int:
    """CRC32C of *data* with the fastest implementation available."""
    return _impl(data)
