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

:data:`BROKER_DRIVERS` is the same for brokers: a broker kind with a real driver
(:mod:`.aedes`) can run for real in the lab; any other kind runs as the lab's own broker
(:class:`realip.lab.broker.LabBroker`) modelling it.  :func:`broker_driver` looks one up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from ...errors import ConfigurationError
from .aedes import AedesBroker, find_aedes
from .aedes import missing_detail as _aedes_missing_detail
from .aedes import unsupported as _aedes_unsupported
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
from .brokers import BrokerDriver, BrokerRecord, RealBroker
from .haproxy import HAProxyDriver, find_haproxy
from .nginx import NginxDriver, find_nginx
from .nginx import missing_detail as _nginx_missing_detail

__all__ = [
    "BROKER_DRIVERS",
    "DRIVERS",
    "PACKAGES",
    "AedesBroker",
    "BrokerDriver",
    "BrokerRecord",
    "HAProxyDriver",
    "NginxDriver",
    "ProgramError",
    "ProgramInfo",
    "ProgramMissing",
    "RealBroker",
    "RealProgram",
    "TcpSocket",
    "broker_driver",
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


#: The brokers the lab can run for real: broker kind -> driver.  A kind not listed here runs as
#: the lab broker (realip.lab.broker.LabBroker), which plays the kind's model.
BROKER_DRIVERS: Final[Mapping[str, BrokerDriver]] = MappingProxyType({
    "aedes": BrokerDriver("aedes", AedesBroker, find_aedes, _aedes_missing_detail,
                          _aedes_unsupported),
})


def broker_driver(kind: str) -> BrokerDriver | None:
    """The real driver of broker *kind* (a :data:`BROKER_DRIVERS` entry), or None: the lab
    broker models that kind."""
    return BROKER_DRIVERS.get(kind)
