"""Real brokers for the live lab: what :class:`~realip.lab.Lab` needs of a broker program it runs
instead of the lab's own :class:`~realip.lab.broker.LabBroker`.

A real broker does not answer the lab's ``$realip/whoami``: its driver reads what the broker
itself recorded for a client (its events or its log) and tells the lab, in the terms of this
module: :meth:`RealBroker.record` (the peername it recorded for a client id),
:meth:`RealBroker.refusal` (why it refused or dropped a connection), :meth:`RealBroker.down`
(its process died — every client of it is gone) and :meth:`RealBroker.restart`.

:data:`realip.lab.drivers.BROKER_DRIVERS` maps a broker kind (``aedes``) to its
:class:`BrokerDriver`; a kind without one runs as the lab broker modelling it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import ProgramInfo

__all__ = ["BrokerDriver", "BrokerRecord", "RealBroker"]


@dataclass(frozen=True)
class BrokerRecord:
    """What a real broker recorded for one client: its ``peername`` (``"ip:port"`` in the
    broker's own notation) and the raw ``details`` it gave."""

    client_id: str
    peername: str
    details: dict[str, Any] = field(default_factory=dict)


class RealBroker:
    """One private process of a real broker on the lab's loopback listener (subclasses: one per
    program).  Positions in its event stream (:meth:`mark`) delimit one probe."""

    #: the program's name (``aedes``)
    name: str = "broker"

    def __init__(self, info: ProgramInfo) -> None:
        self.info = info

    @classmethod
    def for_broker(cls, info: ProgramInfo, broker: Any,
                   directory: Path | None = None) -> RealBroker:
        """A broker process for *broker* (the topology's broker node on its loopback address and
        port, as :func:`realip.render.topology_on` maps it)."""
        raise NotImplementedError(f"{cls.__name__} does not run brokers")

    # -- life cycle ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The running (or last) process's id."""
        raise NotImplementedError

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        """Start the process and wait until it listens."""
        raise NotImplementedError

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the process by its pid (SIGTERM, then SIGKILL)."""
        raise NotImplementedError

    def restart(self, timeout: float = 15.0) -> None:
        """Start the process again on the same listener (after it died)."""
        self.stop()
        self.start(timeout)

    # -- what the broker recorded --------------------------------------------------------------
    def mark(self) -> int:
        """A position in what the broker reported (for the methods below' *after*)."""
        raise NotImplementedError

    def record(self, client_id: str, after: int, timeout: float = 0.0) -> BrokerRecord | None:
        """The client *client_id* the broker accepted after *after* (waiting up to *timeout* s;
        None at once when the process died)."""
        raise NotImplementedError

    def refusal(self, after: int) -> str | None:
        """Why the broker refused or dropped a connection after *after* (None: it did not)."""
        raise NotImplementedError

    def down(self, after: int) -> str | None:
        """Why the broker's process died after *after* (None: it did not)."""
        raise NotImplementedError

    def gone(self, client_id: str, after: int, timeout: float = 0.0) -> bool:
        """Whether the client *client_id* has disconnected after *after* (waiting up to
        *timeout* s)."""
        raise NotImplementedError

    def wait_refusal(self, after: int, timeout: float) -> None:
        """Until the broker reports a refusal or a crash after *after*, at most *timeout* s."""
        raise NotImplementedError

    def logs(self) -> str:
        """Everything the broker reported so far."""
        raise NotImplementedError

    def log_since(self, after: int) -> str:
        """What the broker reported after *after*."""
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"<{type(self).__name__} {self.name} {self.info.version} {state}>"


@dataclass(frozen=True)
class BrokerDriver:
    """How the lab runs one broker kind for real: the ``driver`` class, the ``find`` function
    (the installed program, or None), ``missing`` (why it counts as missing) and
    ``unsupported`` (why the real program cannot play a given broker node: "" when it can)."""

    kind: str
    driver: type[RealBroker]
    find: Callable[..., ProgramInfo | None]
    missing: Callable[[], str]
    unsupported: Callable[[Any], str] = lambda broker: ""
