"""The only names the sans-IO core takes from :mod:`socket`: the address text conversions
``inet_pton`` / ``inet_ntop``, which are pure functions (C, no I/O) — glibc's strict
parsers, several times faster than parsing IPv6 text in Python.  ``tests/test_layout.py``
allows exactly these names, from this module only."""

from __future__ import annotations

from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

__all__ = ["AF_INET", "AF_INET6", "inet_ntop", "inet_pton"]
