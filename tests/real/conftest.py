"""Fixtures for the tests that drive real nginx and HAProxy on loopback addresses.

A missing program skips its tests — unless ``REALIP_REQUIRE_REAL=1`` (CI), where it fails them.
"""

from __future__ import annotations

import os

import pytest

from ._programs import haproxy_binary, nginx_binary, program_version

REQUIRE = os.environ.get("REALIP_REQUIRE_REAL") == "1"


def _need(path: str | None, what: str) -> str:
    if path is None:
        message = f"{what} is not installed (see the README: apt.txt, or `npm ci` for aedes)"
        if REQUIRE:
            pytest.fail(f"REALIP_REQUIRE_REAL=1 but {message}")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    """Path of nginx with the stream module (skip or fail when missing)."""
    return _need(nginx_binary(), "nginx libnginx-mod-stream")


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    """Path of haproxy (skip or fail when missing)."""
    return _need(haproxy_binary(), "haproxy")


@pytest.fixture(scope="session")
def tshark_bin() -> str:
    """Path of tshark (skip or fail when missing)."""
    import shutil

    return _need(shutil.which("tshark"), "tshark")


@pytest.fixture(scope="session")
def nginx_version(nginx_bin: str) -> str:
    return program_version(nginx_bin, "nginx")


@pytest.fixture(scope="session")
def haproxy_version(haproxy_bin: str) -> str:
    return program_version(haproxy_bin, "haproxy")
