"""Real programs for the live lab: find them, configure them from a topology, start, health-check,
stop, and collect their logs — one module per program (:mod:`.nginx`, :mod:`.haproxy`), the
process handling they share in :mod:`.base`.

Each program runs **privately**, in the foreground, out of its own directory (nothing of the
system's configuration, pid files or logs is touched), with the configuration its room writes for
the topology's hops on their loopback addresses.  A program is healthy when every listening
socket it was configured with is in state LISTEN (``/proc/net/tcp`` on Linux; ``netstat``
elsewhere, or a plain connect as the last resort) and the process is still running.
:func:`find_program` says whether a program is installed; :func:`require` raises
:class:`ProgramMissing`, whose message names the Debian packages to install.

:func:`tcp_sockets` reads the system's TCP socket table; the lab uses it to learn which source
port a real program picked for its upstream connection (the simulator needs it to predict a
peername that names a proxy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from ...errors import ConfigurationError
from .base import (
    PACKAGES,
    ProgramError,
    ProgramInfo,
    ProgramMissing,
    RealProgram,
    TcpSocket,
    listening,
    parse_netstat,
    socket_inodes,
    tcp_sockets,
)
from .haproxy import HAProxyDriver, find_haproxy
from .nginx import NginxDriver, find_nginx
from .nginx import missing_detail as _nginx_missing_detail

__all__ = [
    "DRIVERS",
    "PACKAGES",
    "HAProxyDriver",
    "NginxDriver",
    "ProgramError",
    "ProgramInfo",
    "ProgramMissing",
    "RealProgram",
    "TcpSocket",
    "find_haproxy",
    "find_nginx",
    "find_program",
    "listening",
    "parse_netstat",
    "require",
    "socket_inodes",
    "tcp_sockets",
]

#: The hop programs the lab can run for real: name -> (driver class, finder, why-missing).
DRIVERS: Final[Mapping[str, tuple[type[RealProgram], Callable[..., ProgramInfo | None],
                                  Callable[[], str]]]] = MappingProxyType({
    "nginx": (NginxDriver, find_nginx, _nginx_missing_detail),
    "haproxy": (HAProxyDriver, find_haproxy, lambda: ""),
})


def find_program(name: str, *, refresh: bool = False) -> ProgramInfo | None:
    """The installed program *name* (a :data:`DRIVERS` key), or None."""
    if name not in DRIVERS:
        raise ConfigurationError(f"unknown program {name!r}: {' or '.join(DRIVERS)}")
    return DRIVERS[name][1](refresh=refresh)


def require(name: str) -> ProgramInfo:
    """The installed program *name*, or :class:`ProgramMissing` naming its packages."""
    info = find_program(name)
    if info is None:
        raise ProgramMissing(name, DRIVERS[name][2]())
    return info
