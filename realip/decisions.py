"""What a receiver or a resolver decided, with its trace: the result types every program shares.

* :class:`Acceptance` — what one PROXY protocol receiver decided about the first bytes of a
  connection (:func:`realip.receivers.accepts`).
* :class:`Resolution` with its :class:`Step` trace and :class:`Entry` spans — which address a
  system believes is the client after walking forwarded headers (:mod:`realip.resolve`).

They live below every program room so that no room imports another (sans-IO, data only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from .proxy_protocol import Endpoint

__all__ = ["Acceptance", "Entry", "Resolution", "Step", "result_maker"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Acceptance:
    """What one receiver decided about one header (see the module docstring for conventions)."""

    receiver: str  #: which model answered (a :data:`RECEIVERS` name)
    version: str  #: the program version (or mode) modelled
    accepted: bool  #: the program goes on with the connection
    source: Endpoint | None  #: client address it uses from now on; None = the real peer
    reason: str  #: the program's own log message on rejection, else a short description
    destination: Endpoint | None = None  #: server address it records; None = the real one
    consumed: int | None = None  #: bytes taken as the header (None when rejected or waiting)
    header_version: int | None = None  #: 1 or 2 when the program recognised a version
    waiting: bool = False  #: it would wait for more bytes (until its timeout)
    log_line: str | None = None  #: exact rejection message, None = silent or not modelled
    logged_source: Endpoint | None = None  #: client printed in the rejection log; None = peer
    #: program variables this header sets, e.g. nginx ``proxy_protocol_addr`` (name, value)
    variables: tuple[tuple[str, str], ...] = field(default=())
    #: the header made the whole program die (aedes: an uncaught exception ends the Node
    #: process and every client connected to it is disconnected), not only this connection
    crash: bool = False

    def variable(self, name: str) -> str | None:
        """Value of a program variable (``"remote_addr"``, ``"proxy_protocol_port"``, ...)."""
        for k, v in self.variables:
            if k == name:
                return v
        return None

    @property
    def uses_real_peer(self) -> bool:
        """True when the connection goes on with the real TCP peer as the client."""
        return self.accepted and self.source is None

    def describe(self) -> str:
        """One line for tables: ``accept 203.0.113.7:56324`` / ``reject: <reason>`` / ``wait``."""
        if self.crash:
            return f"crash: {self.reason}"
        if self.waiting:
            return f"wait: {self.reason}"
        if not self.accepted:
            return f"reject: {self.reason}"
        return f"accept {self.source}" if self.source is not None else "accept (real peer)"


def result_maker(receiver: str, version: str) -> Callable[..., Acceptance]:
    """A constructor of :class:`Acceptance` for one receiver and version (what every parser
    returns through)."""

    def make(accepted: bool, reason: str, source: Endpoint | None = None,
             **kw: Any) -> Acceptance:
        return Acceptance(receiver=receiver, version=version, accepted=accepted, source=source,
                          reason=reason, **kw)
    return make



class Entry(NamedTuple):
    """One element of the examined header, for drawing: which header line (0 = first received),
    its character span in that line, and its text."""

    line: int
    start: int
    end: int
    text: str


class Step(NamedTuple):
    """One step of a walk.

    ``position`` is the index of the examined entry in :attr:`Resolution.entries` (``None`` for
    the TCP peer or a PROXY-protocol address); ``text`` the raw token; ``address``/``port`` what the
    system parsed (printed its way), or ``error`` why it could not; ``trusted`` whether it matched a
    trusted range (``None``: not checked) and ``rule`` which one; ``verdict`` a machine word
    (``peer``, ``skip``, ``client``, ``rightmost``, ``leftmost``, ``unparsable``, ``ignored``,
    ``bound``) and ``why`` the sentence a notebook shows.
    """

    position: int | None
    text: str
    address: str | None
    port: int | None
    error: str | None
    trusted: bool | None
    rule: str | None
    verdict: str
    why: str
    line: int | None = None
    start: int | None = None
    end: int | None = None


class _ResolutionFields(NamedTuple):
    addr: str | None
    port: int | None
    mode: str
    used_header: bool
    code: str
    reason: str
    trace: tuple[Step, ...]
    entries: tuple[Entry, ...] = ()
    header: str = ""
    realip_remote_addr: str = ""
    realip_remote_port: int | None = None
    proxy_add_x_forwarded_for: str = ""
    variables: Mapping[str, str] = _EMPTY
    warnings: tuple[str, ...] = ()
    #: for results built on a fast path: what recomputes the explanation on demand (a callable,
    #: or a tuple of a function and its arguments)
    explain: Callable[[], Resolution] | tuple[Any, ...] | None = None


class Resolution(_ResolutionFields):
    """The outcome of a resolution (immutable).

    ``addr`` is the client as the system prints it (``None`` when the safe resolver fails closed)
    and ``port`` its port (``None`` where the system has none); ``used_header`` says whether a
    header (rather than the TCP peer) supplied it; ``code`` is the system's own result code;
    ``reason`` says why the walk stopped; ``trace`` has one :class:`Step` per examined entry and
    ``entries`` the header's elements for drawing.  nginx results also carry
    ``realip_remote_addr``/``_port``, ``proxy_add_x_forwarded_for``, ``variables`` and the
    configuration ``warnings``.
    """

    __slots__ = ()

    def _explained(self) -> Resolution:
        how = self.explain
        if how is None:
            return self
        if isinstance(how, tuple):
            # (function, *arguments): the walk is recomputed with its trace on demand
            return how[0](*how[1:])  # type: ignore[no-any-return]
        return how()

    @property
    def reason(self) -> str:
        """Why the walk stopped, in one sentence."""
        return self._explained()[5]

    @property
    def trace(self) -> tuple[Step, ...]:
        """Every step of the walk, in the order it was taken."""
        return self._explained()[6]

    @property
    def entries(self) -> tuple[Entry, ...]:
        """The examined header's elements, left to right."""
        return self._explained()[7]

    @property
    def peername(self) -> str:
        """``addr:port`` as a broker prints it (``emqx ctl clients show``)."""
        return f"{self.addr}:{'' if self.port is None else self.port}"

    @property
    def ok(self) -> bool:
        """False only when the safe resolver refused to name a client (fail closed)."""
        return self.addr is not None

    def __repr__(self) -> str:
        return (f"Resolution(addr={self.addr!r}, port={self.port!r}, mode={self.mode!r}, "
                f"code={self.code!r}, reason={self.reason!r})")
