"""The live lab: a whole topology on real sockets, and the simulator's prediction beside it.

::

    with Lab("tcp-multi-regenerate", proxies="auto") as lab:
        probe = lab.connect()                    # paho-mqtt from the client's own address
        probe.peername, probe.predicted          # ('127.0.1.86:39817', '127.0.1.86:39817')
        lab.connect(forge_xff="6.6.6.6")         # a forged header, through the chain
        lab.connect(direct=True)                 # straight to the broker, past every hop
        lab.connect(at="lb2")                    # straight to an inner hop (an attacker inside)

**Addresses.**  Every host label of the topology gets its own loopback address
(:func:`realip.render.loopback_plan`: the article's client ``115.236.21.86`` is ``127.0.1.86``,
its LAN ``172.16.0.0/24`` is ``127.0.2.0/24``), every hop listens on its address and leaves from
it, and the client connects from its own.  Linux routes all of ``127.0.0.0/8`` to loopback; macOS
has only ``127.0.0.1`` until aliases are added — :class:`Lab` then stops with
:class:`LoopbackUnavailable`, whose message lists the ``sudo ifconfig lo0 alias …`` commands.

**Hops.**  *proxies* chooses what runs each hop: ``"python"`` — every hop is a
:class:`~realip.lab.relay.HopRelay` (the simulator's own hop logic on asyncio sockets);
``"nginx"`` — the nginx hops run in a real nginx, the others as relays; ``"haproxy"`` — the
HAProxy hops in a real HAProxy; ``"real"`` — both; ``"auto"`` — a real program for every hop whose
program is installed, a relay for the rest.  Real programs get the configuration
:mod:`realip.render` writes (:mod:`realip.lab.drivers`); a missing one raises
:class:`~realip.lab.drivers.ProgramMissing` naming the Debian packages (not with ``"auto"``).
**Broker.**  *broker* chooses what runs the broker: ``"model"`` — the lab's
:class:`~realip.lab.broker.LabBroker`, whose listener follows the topology's broker model (EMQX,
Mosquitto, aedes settings) and answers ``$realip/whoami``; ``"real"`` — the real program, for a
broker kind :data:`~realip.lab.drivers.BROKER_DRIVERS` has a driver for (aedes: ``node`` with the
packages of ``realip/lab/node``); ``"auto"`` (the default) — the real program where there is a
driver and the program is installed, else the lab broker modelling it (:meth:`Lab.describe` says
so; under ``REALIP_REQUIRE_REAL=1`` a missing program is an error instead).  A real broker does
not answer ``$realip/whoami``: the probe's peername is what the broker itself recorded for the
client id.  A real broker whose process dies (aedes on a header its decoder throws on) shows as
the broker DOWN in the :class:`Probe` (``down``), and the next probe restarts it
(:meth:`Lab.restart_broker`).

**Probes.**  :meth:`Lab.connect` connects a paho-mqtt client from the client's loopback address
(TCP, or WebSocket with ``ws_set_options(path=, headers=)``; a forged PROXY header is written on
paho's socket before MQTT or the upgrade request), asks the broker ``$realip/whoami``, and
returns a :class:`Probe`: the broker's peername beside :func:`~realip.topology.simulate`'s
prediction for the same topology on the same addresses and ports.  The source ports the hops
chose for their upstream connections are read back (the relays record them; for nginx and
HAProxy the system's TCP socket table is read while the connection is open), so the prediction
is exact even where a peername names a proxy.  The client's own port defaults to the scenario's
(``61177`` …) so printed results repeat; its socket closes with a reset, so the port is free
again at once.

**TLS.**  A topology that uses TLS (:func:`realip.render.needs_tls`) gets a run-time
:class:`~realip.lab.pki.LabPKI` (removed at close): the broker's ssl/wss listeners, the hops
that terminate TLS (their certificate and CA files are linked under the names the rendered
configurations use, :data:`realip.render.TLS_DIR`; a python relay runs a real handshake) and
the client — paho-mqtt over TLS or wss, dialling the loopback address and sending the
scenario's ``sni``, with the client certificate of ``cert_cn`` signed by ``cert_ca``.
``connect(client={...})`` changes the client for one probe (no TLS, no certificate, another
CA).  The :class:`Probe` then also holds the broker's ``username`` and :class:`TlsFacts` —
who terminated TLS (the host whose certificate the client met), the SNI and client CN it saw
(the broker's handshake or SSL TLV, a relay's handshake, or the ``realip-tls`` line the lab
makes nginx and HAProxy log) — beside the simulator's.

**Clean-up.**  Leaving the ``with`` block — normally, by an exception, or by a
``KeyboardInterrupt`` (a notebook's *interrupt kernel*) — stops the programs, closes every
listening socket and connection and ends the lab's thread; so does interpreter exit for a lab
that was never closed.  On Linux the programs also get SIGTERM if the Python process dies.

**Progress.**  While the processes start, a line per step is printed (a terminal), or an
ipywidgets progress bar is shown (a notebook; text when ipywidgets is missing).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from ..errors import ConfigurationError, RealIPError
from ..programs import hop_kind
from ..render import loopback_plan, topology_on
from ..topology import (
    Broker,
    Hop,
    Topology,
    Trace,
    load,
    simulate,
)
from .drivers import (
    DRIVERS,
    ProgramInfo,
    ProgramMissing,
    RealBroker,
    RealProgram,
    broker_driver,
    find_program,
    require,
    tcp_sockets,
)
from .loopback import Background, check_loopback, private_netns

if TYPE_CHECKING:
    from .broker import ClientInfo, LabBroker, Limits
    from .pki import LabPKI
    from .relay import HopRelay

__all__ = [
    "Lab",
    "LoopbackUnavailable",
    "PahoResult",
    "Probe",
    "Progress",
    "TlsFacts",
    "alias_commands",
    "can_bind",
    "missing_loopback",
    "netns_setup",
    "paho_connect",
]

Proxies = Literal["python", "nginx", "haproxy", "real", "auto"]
BrokerChoice = Literal["real", "model", "auto"]
#: What ``broker=`` accepts.
BROKERS: tuple[str, ...] = ("real", "model", "auto")
#: What ``proxies=`` accepts: python relays, one real program (a :data:`DRIVERS` name), all of
#: them (``real``), or each where installed (``auto``).
PROXIES: tuple[str, ...] = ("python", *DRIVERS, "real", "auto")
ProgressLike = str | bool | None | Callable[[int, int, str], object]


# ==============================================================================================
# Loopback addresses


def can_bind(addr: str) -> bool:
    """Whether a TCP socket can be bound to *addr* here (port 0)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
    except OSError:
        return False
    return True


def missing_loopback(addresses: Iterable[str]) -> list[str]:
    """The loopback addresses of *addresses* this system cannot bind (in order, once each).

    Linux routes the whole of 127.0.0.0/8 to ``lo``: nothing is missing.  macOS has only
    127.0.0.1 until aliases are added (detected by trying 127.0.0.2 first)."""
    wanted = list(dict.fromkeys(check_loopback(a) for a in addresses))
    if can_bind("127.0.0.2"):
        return [a for a in wanted if not can_bind(a)]
    return [a for a in wanted if a not in ("127.0.0.1", "::1") and not can_bind(a)]


def alias_commands(addresses: Iterable[str]) -> list[str]:
    """The commands that add *addresses* to the loopback interface ``lo0`` (macOS and the BSDs:
    the systems that lack them; Linux has all of 127.0.0.0/8 already)."""
    return [f"sudo ifconfig lo0 alias {a} up" for a in addresses]


class LoopbackUnavailable(ConfigurationError):
    """The system lacks loopback addresses the lab needs (macOS without aliases)."""

    def __init__(self, missing: Sequence[str], topology: str = "") -> None:
        self.missing = tuple(missing)
        where = f" for {topology}" if topology else ""
        commands = "\n".join(f"    {c}" for c in alias_commands(self.missing))
        super().__init__(
            f"The live lab gives every host its own loopback address, but this system cannot "
            f"use {', '.join(self.missing)}{where} (macOS has only 127.0.0.1 on lo0 until "
            f"aliases are added).  Add them (until the next reboot) with:\n{commands}\n"
            "The simulator notebooks (00–06, 08, 09) need none of this and keep working.")


# ==============================================================================================
# Progress


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class Progress:
    """Progress of a lab's start: ``mode`` ``"auto"`` (a widget in a notebook when ipywidgets
    is installed, else text), ``"text"`` (one line per step on *stream*, default stdout),
    ``"widget"``, ``"none"`` (silent), or a callable ``(done, total, message)``.  Lines never
    show ports or timings, so a notebook's output repeats."""

    def __init__(self, mode: ProgressLike = "auto", *, stream: IO[str] | None = None) -> None:
        self.callback: Callable[[int, int, str], object] | None = None
        if callable(mode):
            self.callback = mode
            mode = "callback"
        elif mode is True or mode is None:
            mode = "auto"
        elif mode is False:
            mode = "none"
        if mode not in ("auto", "text", "widget", "none", "callback"):
            raise ConfigurationError(f"progress must be auto, text, widget, none or a "
                                     f"callable, not {mode!r}")
        self.mode: str = str(mode)
        self.stream = stream
        self.total = 0
        self.done = 0
        self._bar: Any = None
        self._label: Any = None

    def begin(self, total: int, title: str) -> None:
        """*total* steps are coming (*title*: what starts)."""
        self.total, self.done = total, 0
        if self.mode in ("auto", "widget"):
            self.mode = "widget" if self._make_widget(title) else "text"
        if self.mode == "text":
            self._print(f"{title}: starting")

    def _make_widget(self, title: str) -> bool:
        if not _in_notebook():
            return False
        try:
            import ipywidgets as widgets  # type: ignore[import-untyped]
            from IPython.display import display
        except ImportError:
            return False
        self._bar = widgets.IntProgress(value=0, min=0, max=self.total, description=title)
        self._label = widgets.Label(value="")
        display(widgets.HBox([self._bar, self._label]))  # type: ignore[no-untyped-call]
        return True

    def _print(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        print(text, file=stream, flush=True)

    def _emit(self, text: str) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total, text)
        if self.mode == "widget" and self._bar is not None:
            self._bar.value = self.done
            self._label.value = text

    def step(self, text: str) -> None:
        """A step begins."""
        if self.mode == "text":
            self._print(f"  [{self.done + 1}/{self.total}] {text}")
        self._emit(text)
        self.done += 1

    def finish(self, text: str) -> None:
        self.done = self.total
        if self.mode == "widget" and self._bar is not None:
            self._bar.bar_style = "success"
        self._emit(text)
        if self.mode in ("text", "widget"):
            self._print(text)

    def fail(self, text: str) -> None:
        if self.mode == "widget" and self._bar is not None:
            self._bar.bar_style = "danger"
        self._emit(f"failed: {text}")
        if self.mode in ("text", "widget"):
            self._print(f"failed: {text}")


# ==============================================================================================
# Probes


@dataclass(frozen=True)
class TlsFacts:
    """A TLS client's connection as the end that terminated it saw it: ``terminated_by``
    (the host label whose certificate the client's handshake met), ``server_name`` (the SNI
    it received) and ``cert_cn`` (the client certificate's CN it learned).  Live, a fact the
    lab cannot observe is None (nginx and HAProxy do not tell the SNI or CN they saw; the CN a
    terminating HAProxy writes into the PROXY v2 SSL TLV is what the broker reads)."""

    terminated_by: str | None
    server_name: str | None
    cert_cn: str | None

    def text(self) -> str:
        if self.terminated_by is None:
            return "no handshake completed"
        sni = "not observed" if self.server_name is None else repr(self.server_name)
        cn = "not observed / none" if self.cert_cn is None else repr(self.cert_cn)
        return f"terminated by {self.terminated_by}, SNI {sni}, client certificate CN {cn}"


def _predicted_tls(trace: Trace) -> TlsFacts:
    """The simulator's :class:`TlsFacts`: the first end that terminated the client's TLS, the
    SNI and CN its variables hold (or the CN a broker read from a PROXY v2 SSL TLV)."""
    for view in trace.views:
        if view.tls != "terminated":
            continue
        v = view.variables
        sni = v.get("ssl_server_name") or v.get("ssl_fc_sni") or \
            trace.topology.client.sni or None
        dn = v.get("ssl_client_s_dn", "")
        cn = v.get("ssl_c_s_dn(cn)") or v.get("cert_common_name") or \
            (dn[3:] if dn.startswith("CN=") else None) or None
        return TlsFacts(view.name, sni, cn)
    return TlsFacts(None, None, None)


def _facts_agree(live: TlsFacts, predicted: TlsFacts) -> bool:
    """The terminating host agrees, and every fact the lab observed is the predicted one."""
    if live.terminated_by != predicted.terminated_by:
        return False
    return all(got is None or got == want for got, want in
               ((live.server_name, predicted.server_name), (live.cert_cn, predicted.cert_cn)))


@dataclass(frozen=True)
class Probe:
    """One client connection through the lab, beside the simulator's prediction.

    ``peername`` is what the broker recorded (``"ip:port"``, via ``$realip/whoami``), None when
    the connection was refused; ``predicted`` is :func:`~realip.topology.simulate`'s peername for
    the same topology on the same addresses and ports (``trace`` holds the whole prediction);
    ``addresses`` maps every host label to its loopback address."""

    scenario: str
    client: str
    client_id: str
    transport: str
    path: tuple[str, ...]
    peername: str | None
    predicted: str | None
    trace: Trace
    addresses: Mapping[str, str]
    forged: tuple[str, ...] = ()
    refused: str | None = None
    source_ports: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    logs: Mapping[str, str] = field(default_factory=dict)
    #: the real broker's process died during this probe (every client of it is gone)
    down: bool = False
    #: the MQTT username the broker gave the session (EMQX's ``peer_cert_as_username``; None:
    #: the CONNECT packet's, which the lab client leaves empty), and the simulator's
    username: str | None = None
    predicted_username: str | None = None
    #: a TLS client's connection, live and simulated (None: the client spoke no TLS)
    tls: TlsFacts | None = None
    predicted_tls: TlsFacts | None = None
    #: the broker's record of the session (its handshake, the PROXY v2 SSL TLV it read …)
    record: ClientInfo | None = field(default=None, repr=False, compare=False)

    @property
    def predicted_down(self) -> bool:
        """The simulator predicts that the broker's process dies (a header crashes it)."""
        return any(v.acceptance is not None and v.acceptance.crash for v in self.trace.views)

    @property
    def agree(self) -> bool:
        """The broker's peername and username are the predicted ones (both None: both
        refused), and for a TLS client so are who terminated it and what it learned (where the
        lab observed it: :class:`TlsFacts`)."""
        if self.peername != self.predicted or self.username != self.predicted_username:
            return False
        if self.tls is not None and self.predicted_tls is not None and self.connected:
            return _facts_agree(self.tls, self.predicted_tls)
        return True

    @property
    def connected(self) -> bool:
        return self.peername is not None

    def label(self, peername: str | None) -> str:
        """Which host of the lab *peername*'s address is (``"client"``, ``"lb1"``) or a note
        that it is none of them (a forged address)."""
        if peername is None:
            return ""
        addr = peername.rsplit(":", 1)[0]
        names = [k for k, v in self.addresses.items() if v == addr and not k.endswith(".public")]
        return " = " + "/".join(names) if names else " (not a host of the lab)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what ``python -m realip lab run --json`` prints)."""
        return {"scenario": self.scenario, "peername": self.peername,
                "predicted": self.predicted, "agree": self.agree, "client": self.client,
                "client_id": self.client_id, "transport": self.transport,
                "path": list(self.path), "forged": list(self.forged), "refused": self.refused,
                "predicted_failure": self.trace.failure,
                "addresses": dict(self.addresses), "source_ports": dict(self.source_ports),
                "notes": list(self.notes), "broker_down": self.down,
                "predicted_down": self.predicted_down, "username": self.username,
                "predicted_username": self.predicted_username,
                "tls": None if self.tls is None else vars(self.tls),
                "predicted_tls": None if self.predicted_tls is None else
                vars(self.predicted_tls)}

    def lines(self) -> list[str]:
        via = " → ".join(self.path)
        out = [f"{self.scenario}: {via} ({self.transport})"]
        out += [f"  client sends       {f}" for f in self.forged]
        out.append(f"  client             {self.client}")
        if self.peername is not None:
            out.append(f"  broker's peername  {self.peername}{self.label(self.peername)}")
        else:
            out.append(f"  broker's peername  — refused ({self.refused or 'closed'})")
        if self.down:
            out.append("  broker DOWN        its process died: every client is disconnected "
                       "(the next probe restarts it)")
        if self.predicted is not None:
            out.append(f"  simulator predicts {self.predicted}{self.label(self.predicted)}")
        else:
            out.append(f"  simulator predicts — refused ({self.trace.failure})")
        if self.username is not None or self.predicted_username is not None:
            out.append(f"  broker's username  {self.username!r}")
            out.append(f"  simulator predicts {self.predicted_username!r}")
        if self.tls is not None and self.predicted_tls is not None and self.connected:
            out.append(f"  TLS (live)         {self.tls.text()}")
            out.append(f"  TLS (simulated)    {self.predicted_tls.text()}")
        out.append("  ✓ they agree" if self.agree else "  ✗ they DIFFER")
        out += [f"  note: {n}" for n in self.notes]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        import html

        def row(name: str, value: str) -> str:
            return (f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
                    f"<td style='text-align:left'><code>{html.escape(value)}</code></td></tr>")

        rows = [row("path", " → ".join(self.path) + f" ({self.transport})")]
        rows += [row("client sends", f) for f in self.forged]
        rows.append(row("client", self.client))
        rows.append(row("broker's peername",
                        (self.peername + self.label(self.peername)) if self.peername
                        else f"refused ({self.refused or 'closed'})"))
        if self.down:
            rows.append(row("broker", "DOWN: its process died, every client is disconnected"))
        rows.append(row("simulator predicts",
                        (self.predicted + self.label(self.predicted)) if self.predicted
                        else f"refused ({self.trace.failure})"))
        if self.username is not None or self.predicted_username is not None:
            rows.append(row("broker's username", repr(self.username)))
            rows.append(row("simulator predicts", repr(self.predicted_username)))
        if self.tls is not None and self.predicted_tls is not None and self.connected:
            rows.append(row("TLS (live)", self.tls.text()))
            rows.append(row("TLS (simulated)", self.predicted_tls.text()))
        verdict = ("<b style='color:green'>✓ they agree</b>" if self.agree
                   else "<b style='color:red'>✗ they differ</b>")
        notes = "".join(f"<br><i>note: {html.escape(n)}</i>" for n in self.notes)
        return (f"<div><b>{html.escape(self.scenario)}</b><table>{''.join(rows)}</table>"
                f"{verdict}{notes}</div>")


# ==============================================================================================
# Resources (closed by Lab.close, or at interpreter exit)


class _Resources:
    """Everything a lab opened; :meth:`close` releases all of it, even when interrupted."""

    def __init__(self) -> None:
        self.programs: list[RealProgram | RealBroker] = []
        self.servers: list[Any] = []  # HopRelay / LabBroker (closed in this order)
        self.bg: Background | None = None
        self.pki: LabPKI | None = None
        self.directory: str | None = None
        self.keep_files = False
        self.errors: list[BaseException] = []

    def close(self) -> None:
        interrupted: BaseException | None = None

        def attempt(fn: Callable[[], object]) -> None:
            nonlocal interrupted
            try:
                fn()
            except (KeyboardInterrupt, SystemExit) as exc:
                interrupted = interrupted or exc
            except Exception as exc:
                self.errors.append(exc)

        for program in self.programs:
            attempt(program.stop)
        bg = self.bg
        if bg is not None:
            servers, self.servers = self.servers, []

            async def close_all() -> None:
                for server in servers:
                    with contextlib.suppress(Exception):
                        await server.close()

            if servers:
                attempt(lambda: bg.run(close_all(), timeout=10.0))
            attempt(bg.close)
            self.bg = None
        if self.pki is not None:  # after the programs and servers that read its files
            pki, self.pki = self.pki, None
            attempt(pki.close)
        if self.directory is not None and not self.keep_files:
            attempt(lambda: shutil.rmtree(self.directory or "", ignore_errors=True))
        if interrupted is not None:
            raise interrupted


# ==============================================================================================
# The lab


@dataclass(frozen=True)
class HopRun:
    """How one hop runs: ``runner`` ``python`` (a relay) or the program (``nginx``,
    ``haproxy``) with its ``version``."""

    name: str
    kind: str
    runner: str
    version: str = ""


@dataclass(frozen=True)
class BrokerRun:
    """How the broker runs: ``runner`` ``lab broker`` (the lab's broker playing the model of
    ``kind``) or the real program (``aedes``) with its ``version``."""

    name: str
    kind: str
    runner: str
    version: str = ""

    @property
    def real(self) -> bool:
        """Whether a real program runs the broker."""
        return self.runner != LAB_BROKER


#: :attr:`BrokerRun.runner` of the lab's own broker
LAB_BROKER = "lab broker"


def _hop_kind(hop: Hop) -> str:
    entry = hop_kind(hop)
    mode = getattr(hop, "mode", None)
    # HAProxy's kind reads with its mode (haproxy-tcp / haproxy-http)
    return f"{entry.kind}-{mode}" if mode is not None else entry.kind


def _program_of(hop: Hop) -> str | None:
    """The real program that can run *hop* in the lab (None: only a python relay can)."""
    program = hop_kind(hop).program
    return program if program in DRIVERS else None


def _as_topology(topology: Topology | str | os.PathLike[str]) -> Topology:
    if isinstance(topology, Topology):
        return topology
    text = os.fspath(topology)
    if os.path.isfile(text):
        return load(text)
    if os.sep in text or text.endswith((".yaml", ".yml")):
        raise ConfigurationError(f"no topology file {text!r}")
    from ..teaching import scenario

    return scenario(text)


class Lab:
    """A topology running on loopback (see the module documentation).

    *topology* is a :class:`~realip.topology.Topology`, a YAML path, or a scenario name of
    ``data/topologies``.  *ports* pins listening ports by label (others are free ports);
    *addresses* replaces the loopback plan (label → address, e.g. :func:`realip.render.netns_plan`
    inside a namespace prepared by :func:`netns_setup`);
    *progress* is a :class:`Progress` mode; *workdir* holds the programs' directories (a
    temporary directory by default, removed at close unless *keep_files*).  *limits* is what
    one client may cost the lab broker (a :class:`realip.lab.broker.Limits`: packet size,
    topic aliases, inflight window, queue bounds and policy, subscriptions, connections);
    None keeps the defaults, ``Limits()``.  *broker* is ``"auto"``, ``"real"`` or ``"model"``
    (see the module documentation).
    """

    def __init__(self, topology: Topology | str | os.PathLike[str],
                 proxies: Proxies | str = "python", *, progress: ProgressLike | Progress = "auto",
                 progress_stream: IO[str] | None = None, ports: Mapping[str, int] | None = None,
                 workdir: str | os.PathLike[str] | None = None, keep_files: bool = False,
                 start_timeout: float = 15.0, connect_timeout: float = 5.0,
                 addresses: Mapping[str, str] | None = None,
                 limits: Limits | None = None, broker: BrokerChoice | str = "auto") -> None:
        if limits is not None:
            from .broker import Limits as _Limits  # the broker module loads only when used

            if not isinstance(limits, _Limits):
                raise ConfigurationError(f"limits must be a realip.lab.broker.Limits, not "
                                         f"{type(limits).__name__}")
        self.limits = limits
        if proxies not in PROXIES:
            raise ConfigurationError(f"proxies must be one of {', '.join(PROXIES)}, not "
                                     f"{proxies!r}")
        if broker not in BROKERS:
            raise ConfigurationError(f"broker must be one of {', '.join(BROKERS)}, not "
                                     f"{broker!r}")
        self.topology = _as_topology(topology)
        self.proxies = str(proxies)
        self.broker_choice = str(broker)
        # label → address; inside a private network namespace holding the scenario's own
        # addresses (render.netns_plan, netns_setup) nothing needs mapping, IPv6 included
        self.addresses: dict[str, str] = dict(addresses) if addresses is not None \
            else loopback_plan(self.topology)
        self.progress = progress if isinstance(progress, Progress) else \
            Progress(progress, stream=progress_stream)
        self.start_timeout = start_timeout
        self.connect_timeout = connect_timeout
        self._fixed_ports = dict(ports or {})
        self._workdir = None if workdir is None else os.fspath(workdir)
        self.notes: list[str] = []
        self.runs: dict[str, HopRun] = self._plan_runners()
        self.broker_run: BrokerRun = self._plan_broker()
        self.ports: dict[str, int] = {}
        self.mapped: Topology | None = None
        #: the lab's own broker (None when a real broker runs: :attr:`real_broker`)
        self.broker: LabBroker | None = None
        #: the run-time PKI of a topology that uses TLS (None otherwise)
        self.pki: LabPKI | None = None
        #: the real broker's driver (None when the lab broker runs)
        self.real_broker: RealBroker | None = None
        self.relays: dict[str, HopRelay] = {}
        self.programs: dict[str, RealProgram] = {}
        self._res = _Resources()
        self._res.keep_files = keep_files
        self._finalizer = weakref.finalize(self, self._res.close)
        self._lock = threading.Lock()
        self._state = "new"

    # -- planning ------------------------------------------------------------------------------
    def _plan_runners(self) -> dict[str, HopRun]:
        runs: dict[str, HopRun] = {}
        choice: dict[str, set[str]] = {"python": set(), "real": set(DRIVERS),
                                       "auto": set(DRIVERS), **{p: {p} for p in DRIVERS}}
        wanted = choice[self.proxies]
        missing: dict[str, list[str]] = {}
        for hop in self.topology.hops:
            program = _program_of(hop)
            runner, version = "python", ""
            if program is not None and program in wanted:
                info: ProgramInfo | None
                if self.proxies == "auto":
                    info = find_program(program)
                    if info is None:
                        missing.setdefault(program, []).append(hop.name)
                else:
                    info = require(program)
                if info is not None:
                    runner, version = program, info.version
            runs[hop.name] = HopRun(hop.name, _hop_kind(hop), runner, version)
        for program, hops in missing.items():
            self.notes.append(f"{program} is not installed (sudo apt-get install "
                              f"{ProgramMissing(program).packages}): {', '.join(hops)} "
                              f"run{'s' if len(hops) == 1 else ''} as python relay"
                              f"{'s' if len(hops) > 1 else ''}")
        if self.proxies in DRIVERS and not any(
                r.runner == self.proxies for r in runs.values()):
            self.notes.append(f"no {self.proxies} hop in {self.topology.name}: every hop runs "
                              "as a python relay")
        return runs

    def _plan_broker(self) -> BrokerRun:
        b = self.topology.broker
        kind = str(getattr(b, "kind", "") or "")
        version = str(getattr(b, "version", "") or "")
        model = BrokerRun(b.name, kind, LAB_BROKER, version)
        entry = broker_driver(kind) if kind else None
        if self.broker_choice == "model":
            return model
        if entry is None:
            if self.broker_choice == "real":
                raise ConfigurationError(f"broker=\"real\": the lab has no real {kind or 'such'} "
                                         "broker (a driver in realip.lab.drivers."
                                         "BROKER_DRIVERS); use broker=\"model\" or \"auto\"")
            return model
        why = entry.unsupported(b)
        if why:
            if self.broker_choice == "real":
                raise ConfigurationError(why)
            self.notes.append(f"{why}: the lab broker models {kind} {version}")
            return model
        info = entry.find()
        if info is None:
            # under REALIP_REQUIRE_REAL=1 (CI, the real tests) auto never falls back silently
            if self.broker_choice == "real" or os.environ.get("REALIP_REQUIRE_REAL") == "1":
                raise ProgramMissing(kind, entry.missing())
            self.notes.append(f"{entry.missing() or kind + ' is not installed'}: the lab broker "
                              f"models {kind} {version}")
            return model
        if version and info.version != version:
            self.notes.append(f"the real {kind} is {info.version}; the simulator models "
                              f"{kind} {version}")
        return BrokerRun(b.name, kind, entry.kind, info.version)

    @property
    def entry(self) -> tuple[str, int]:
        """Where the client connects: the first hop (or the broker) on loopback."""
        first = self.topology.hops[0].name if self.topology.hops else self.topology.broker.name
        return self.addresses[first], self.ports[first]

    @property
    def pids(self) -> list[int]:
        """Process ids of the real programs, the real broker's last (running or not)."""
        out = [p.pid for p in self.programs.values() if p.pid is not None]
        if self.real_broker is not None and self.real_broker.pid is not None:
            out.append(self.real_broker.pid)
        return out

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def configs(self) -> dict[str, str]:
        """Each real program's configuration text (``nginx``, ``haproxy``)."""
        return {name: p.config for name, p in self.programs.items()}

    def logs(self) -> dict[str, str]:
        """What each real program logged so far (nginx ``error.log``, HAProxy's stdout, the
        real broker's events)."""
        out = {name: p.logs() for name, p in self.programs.items()}
        if self.real_broker is not None:
            out[self.real_broker.name] = self.real_broker.logs()
        return out

    def describe(self) -> str:
        """Every host: its loopback address, the scenario's address, and what runs it."""
        topo = self.topology
        c = topo.client
        tls = (f" over TLS, SNI {c.sni or 'none'}, "
               + (f"certificate CN {c.cert_cn} ({c.cert_ca})" if c.cert_cn else
                  "no certificate")) if c.tls else ""
        rows = [(c.name, self.addresses[c.name], c.addr, f"client ({c.transport}{tls})")]
        for hop in topo.hops:
            run = self.runs[hop.name]
            where = hop.addr + (f", public {hop.public}" if hop.public else "")
            runner = "python relay" if run.runner == "python" else f"{run.runner} {run.version}"
            role = ", terminates TLS" if getattr(hop, "listen_ssl", False) or \
                getattr(hop, "bind_ssl", False) else \
                ", reads the ClientHello" if getattr(hop, "ssl_preread", False) else ""
            rows.append((hop.name, self.addresses[hop.name], where,
                         f"{run.kind}{role} → {runner}"))
        b = topo.broker
        listener = f"{b.kind} {b.version} {b.listener} listener"
        br = self.broker_run
        runner = f"real {br.runner} {br.version}" if br.real else "lab broker"
        rows.append((b.name, self.addresses[b.name], b.addr, f"{listener} → {runner}"))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{topo.name} on loopback"]
        lines += [f"  {a:<{w[0]}}  {b_:<{w[1]}}  ({c}){' ' * (w[2] - len(c))}  {d}"
                  for a, b_, c, d in rows]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        topo = self.topology
        chain = " → ".join(f"{n} {self.addresses[n]}" for n in
                           [topo.client.name, *(h.name for h in topo.hops), topo.broker.name])
        return f"<Lab {topo.name} ({self._state}): {chain}>"

    # -- life cycle ----------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Lab:
        """Start the broker and every hop (idempotent); on any failure — an exception or a
        KeyboardInterrupt — everything already started is closed again."""
        if self._state == "running":
            return self
        if self._state != "new":
            raise ConfigurationError("a closed Lab cannot be restarted: make a new one")
        self._state = "starting"
        try:
            self._start()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.progress.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self.close()
            raise
        self._state = "running"
        return self

    def _start(self) -> None:
        from .broker import LabBroker
        from .relay import HopRelay

        topo = self.topology
        python_hops = [h for h in topo.hops if self.runs[h.name].runner == "python"]
        groups: dict[str, list[str]] = {}
        for h in topo.hops:
            if self.runs[h.name].runner != "python":
                groups.setdefault(self.runs[h.name].runner, []).append(h.name)
        total = 2 + len(python_hops) + len(groups)
        self.progress.begin(total, f"lab {topo.name}")

        plan = "; ".join(f"{k} {v}" for k, v in self.addresses.items()
                         if not k.endswith(".public"))
        self.progress.step(f"loopback addresses: {plan}")
        missing = missing_loopback(self.addresses.values())
        if missing:
            raise LoopbackUnavailable(missing, topo.name)
        labels = [h.name for h in topo.hops] + [topo.broker.name]
        for label in labels:
            self.ports[label] = int(self._fixed_ports.get(label) or 0) or \
                _free_port(self.addresses[label])
        mapped = topology_on(topo, self.addresses, self.ports)
        self.mapped = mapped

        b = mapped.broker
        from ..render import needs_tls

        if needs_tls(topo):
            from .pki import LabPKI

            # every server certificate also covers the names clients send as SNI
            sni = tuple(dict.fromkeys(n for n in (topo.client.sni, "localhost") if n))
            self.pki = self._res.pki = LabPKI(server_names=sni)
        self._res.bg = Background()
        br = self.broker_run
        entry = broker_driver(br.kind) if br.real else None
        if entry is not None:
            info = entry.find()
            if info is None:
                raise ProgramMissing(br.kind, entry.missing())
            self.progress.step(f"broker {b.name}: {br.runner} {info.version} ({b.listener}) on "
                               f"{b.addr}")
            real = entry.driver.for_broker(info, b)
            self._res.programs.append(real)
            self.real_broker = real
            real.start(self.start_timeout)
        else:
            self.progress.step(f"broker {b.name}: lab broker with {b.kind} {b.version}'s "
                               f"{b.listener} listener rules on {b.addr}")
            self.broker = LabBroker(mapped.broker, limits=self.limits, pki=self.pki)
            self._res.servers.insert(0, self.broker)
            self._res.bg.run(self.broker.start(), timeout=self.start_timeout)

        nodes: list[Hop | Broker] = [*mapped.hops, mapped.broker]
        for i in reversed(range(len(mapped.hops))):
            hop = mapped.hops[i]
            if self.runs[hop.name].runner != "python":
                continue
            nxt = nodes[i + 1]
            self.progress.step(f"{hop.name}: {self.runs[hop.name].kind} as a python relay on "
                               f"{hop.addr}")
            relay = HopRelay(hop, (nxt.addr, nxt.port), pin_source_port=False, pki=self.pki)
            self._res.servers.insert(0, relay)
            self._res.bg.run(relay.start(), timeout=self.start_timeout)
            self.relays[hop.name] = relay

        if groups:
            base = self._workdir or tempfile.mkdtemp(prefix="realip-lab-")
            if self._workdir is None:
                self._res.directory = base
            else:
                Path(base).mkdir(parents=True, exist_ok=True)
        tls_dir = self._tls_files(Path(base) / "tls", [n for ns in groups.values() for n in ns]) \
            if groups and self.pki is not None else None
        for program, names in groups.items():
            info = require(program)
            self.progress.step(f"{', '.join(names)}: {program} {info.version} on "
                               + ", ".join(self.addresses[n] for n in names))
            directory = Path(base) / program
            if directory.exists():
                shutil.rmtree(directory)
            cls = DRIVERS[program][0]
            driver = cls.for_hops(info, topo, names, self.addresses, self.ports, directory,
                                  tls_dir=tls_dir)
            self._res.programs.append(driver)
            self.programs[program] = driver
            driver.start(self.start_timeout)

        chain = " → ".join(f"{n} {self.addresses[n]}" for n in
                           [topo.client.name, *labels])
        self.progress.finish(f"ready: {chain}")

    def _tls_files(self, directory: Path, hops: Sequence[str]) -> str:
        """The TLS files the rendered configurations of *hops* name (``<hop>.crt`` /
        ``.key`` / ``.pem``, ``<ca-label>.pem``; :data:`realip.render.TLS_DIR`), as symbolic
        links into the PKI's own directory, so no key is ever copied (they dangle once the PKI
        is closed)."""
        assert self.pki is not None and self.mapped is not None
        directory.mkdir(parents=True, exist_ok=True)

        def link(name: str, target: Path) -> None:
            path = directory / name
            if path.is_symlink() or path.exists():
                path.unlink()
            path.symlink_to(target)

        for name in hops:
            hop = self.mapped.hop(name)
            key = str(getattr(hop, "ssl_key", "EC256"))
            kt: Literal["ec", "rsa"] = "rsa" if key.startswith("RSA") else "ec"
            issued = self.pki.server(hop.addr, key_type=kt)
            link(f"{name}.crt", issued.chain_file)
            link(f"{name}.key", issued.key_file)
            link(f"{name}.pem", issued.pem_file)
            for attr in ("ssl_client_certificate", "ca_file"):
                label = getattr(hop, attr, None)
                if isinstance(label, str) and label:
                    link(f"{label}.pem", self.pki.ca_file(label))
        return str(directory)

    def close(self) -> None:
        """Stop every program, close every socket, end the lab's thread (idempotent; survives
        an interrupt and re-raises it once everything is closed)."""
        self._state = "closed"
        try:
            self._res.close()
        finally:
            self._finalizer.detach()

    @property
    def broker_alive(self) -> bool:
        """Whether the broker runs (the lab broker always does while the lab runs; a real
        broker's process may have died)."""
        if self.real_broker is not None:
            return self.real_broker.alive
        return self.broker is not None and self._state == "running"

    def restart_broker(self) -> bool:
        """Start the real broker again if its process died (True when it had to); the lab
        broker never needs it."""
        self._need_running()
        real = self.real_broker
        if real is None or real.alive:
            return False
        with self._lock:
            real.restart(self.start_timeout)
        return True

    @property
    def cleanup_errors(self) -> list[BaseException]:
        """Errors met while closing (closing goes on past them)."""
        return list(self._res.errors)

    # -- predictions ---------------------------------------------------------------------------
    def predict(self, *, client_port: int | None = None, client_id: str | None = None,
                transport: str | None = None, forge_xff: str | None = None,
                forge_proxy: str | bytes | None = None, direct: bool = False,
                source_ports: Mapping[str, int] | None = None,
                headers: Sequence[tuple[str, str]] | None = None,
                at: str | None = None,
                client: Mapping[str, Any] | None = None) -> Trace:
        """:func:`~realip.topology.simulate` for this lab: the topology on its loopback
        addresses and ports (*client_port*: the client's source port; *source_ports*: each hop's
        upstream source port), real hops at the installed program's version; *direct* leaves
        the hops out (the client dials the broker); *at* (a hop's or the broker's name) leaves
        out the hops before it (the client dials that node); *client* changes the client's
        settings (as :meth:`connect`)."""
        self._need_running()
        start = self._start_index(direct, at)
        topo = self.topology
        ports = dict(self.ports)
        ports[topo.client.name] = topo.client.port if client_port is None else client_port
        mapped = topology_on(topo, self.addresses, ports, source_ports=source_ports or {})
        hops: list[Hop] = []
        for hop in mapped.hops:
            run = self.runs[hop.name]
            if run.runner != "python" and run.version and run.version != "unknown" and \
                    hasattr(hop, "version"):
                hop = replace(cast(Any, hop), version=run.version)
            hops.append(hop)
        mapped = replace(mapped, hops=tuple(hops[start:]))
        changes: dict[str, Any] = dict(client or {})
        if client_id is not None:
            changes["client_id"] = client_id
        if transport is not None:
            changes["transport"] = transport
        if headers is not None:
            changes["headers"] = tuple(tuple(h) for h in headers)
        if changes:
            mapped = mapped.with_client(**changes)
        return simulate(mapped, forge_xff=forge_xff, forge_proxy=forge_proxy)

    def _start_index(self, direct: bool, at: str | None) -> int:
        """The index of the node the client dials (0: the first hop; ``len(hops)``: the
        broker) for *direct* / *at*."""
        hops = self.topology.hops
        if at is None:
            return len(hops) if direct else 0
        names = [h.name for h in hops] + [self.topology.broker.name]
        if at not in names:
            raise ConfigurationError(f"at={at!r}: not a node of {self.topology.name} "
                                     f"(allowed: {', '.join(names)})")
        if direct and at != names[-1]:
            raise ConfigurationError(f"direct=True dials the broker, not {at!r}: give one of "
                                     "direct, at")
        return names.index(at)

    def _need_running(self) -> None:
        if self._state != "running":
            raise ConfigurationError("the lab is not running: use 'with Lab(...) as lab:' or "
                                     "lab.start()")

    # -- probes --------------------------------------------------------------------------------
    def connect(self, client_id: str | None = None, forge_xff: str | None = None,
                forge_proxy: str | bytes | None = None, transport: str | None = None, *,
                direct: bool = False, port: int | None = None, raw: bool = False,
                timeout: float | None = None,
                headers: Sequence[tuple[str, str]] | None = None,
                at: str | None = None,
                client: Mapping[str, Any] | None = None) -> Probe:
        """Connect one client from the client's loopback address and compare.

        *client_id* (default the scenario's), *transport* (``tcp``/``ws``, default the
        scenario's), *forge_xff* (WebSocket: the client's X-Forwarded-For lines are replaced by
        this one), *forge_proxy* (the client writes this PROXY header first: a v1 line or v2
        bytes), *direct* (dial the broker, past every hop), *port* (the client's source port:
        default the scenario's, 0 for any), *raw* (send the simulator's exact first bytes from a
        plain socket instead of paho-mqtt), *headers* (WebSocket: the upgrade request's extra
        header lines instead of the scenario's — any forgery, duplicates and odd names
        included), *at* (a hop's or the broker's name: dial that node straight from the
        client's address, past the hops before it — an attacker inside the network; ``at=``
        the broker is *direct*), *client* the client's settings changed for this probe,
        checked as a scenario's are (bad input: ``{"tls": False}`` — plain bytes to a TLS
        port, ``{"cert_cn": None}`` — no certificate, ``{"cert_ca": "other-ca"}`` — one nobody
        trusts).  A TLS client (``tls: true``) is paho-mqtt over TLS or wss with the lab PKI's
        client certificate of ``cert_cn`` (signed by ``cert_ca``; none when null), dialling the
        loopback address and sending the scenario's ``sni`` as the server name.  The client
        disconnects before this returns."""
        self._need_running()
        with self._lock:
            return self._connect(client_id, forge_xff, forge_proxy, transport,
                                 self._start_index(direct, at), port, raw,
                                 self.connect_timeout if timeout is None else timeout, headers,
                                 dict(client or {}))

    def _connect(self, client_id: str | None, forge_xff: str | None,
                 forge_proxy: str | bytes | None, transport: str | None, start: int,
                 port: int | None, raw: bool, timeout: float,
                 extra: Sequence[tuple[str, str]] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> Probe:
        topo = self.topology
        client = topo.with_client(**overrides).client if overrides else topo.client
        cid = client_id or client.client_id
        transport = transport or client.transport
        if transport not in ("tcp", "ws"):
            raise ConfigurationError(f"transport must be tcp or ws, not {transport!r}")
        if forge_proxy is None:  # the scenario's client may forge one itself
            forge_proxy = client.send_proxy
        forged_proxy = None
        if forge_proxy is not None:
            forged_proxy = (forge_proxy.encode("latin-1") if isinstance(forge_proxy, str)
                            else bytes(forge_proxy))
        headers: list[tuple[str, str]] = list(client.headers if extra is None else extra)
        if forge_xff is not None:
            headers = [h for h in headers if h[0].lower() != "x-forwarded-for"]
            headers.append(("X-Forwarded-For", forge_xff))
        names = [k.lower() for k, _ in headers]
        use_raw = raw or (transport == "ws" and len(set(names)) != len(names)) \
            or not _paho_can_prefix()
        if client.tls and getattr(client, "tls_truncate", None) is not None:
            # refused rather than run: paho always completes its handshake, so the probe would
            # observe something other than the scenario says
            raise ConfigurationError("tls_truncate: the lab's client (paho-mqtt) always sends "
                                     "its whole ClientHello; a truncated handshake is "
                                     "simulated only (realip.topology.simulate)")
        tls_ctx = self._client_context(client) if client.tls else None
        assert self.mapped is not None and (self.broker is not None or
                                            self.real_broker is not None)
        restarted = False
        if self.real_broker is not None and not self.real_broker.alive:
            self.real_broker.restart(self.start_timeout)  # it died in an earlier probe
            restarted = True
        # the node dialled: the first hop, an inner hop (start > 0) or the broker
        target = topo.hops[start].name if start < len(topo.hops) else topo.broker.name
        direct = start == len(topo.hops)
        host, dport = self.addresses[target], self.ports[target]
        src_addr = self.addresses[client.name]
        want_port = client.port if port is None else port
        path = (client.name, *(h.name for h in topo.hops[start:]), topo.broker.name)
        forged = []
        if forged_proxy is not None:
            forged.append(_printable(forged_proxy))
        if forge_xff is not None and transport == "ws":
            forged.append(f"X-Forwarded-For: {forge_xff}")
        if extra is not None and transport == "ws":
            forged += [f"{k}: {v}" for k, v in extra]
        notes: list[str] = []
        if restarted:
            notes.append(f"{topo.broker.name} was DOWN after an earlier probe: restarted")
        if forge_xff is not None and transport == "tcp":
            notes.append("forge_xff has no effect on MQTT over TCP (no HTTP headers)")

        links = self._links(start)
        before = _established(links)
        marks = self._marks()
        sock = _bind_client(src_addr, want_port)
        if sock.getsockname()[1] != want_port and want_port:
            notes.append(f"port {want_port} was busy: the client used another")
        cport = int(sock.getsockname()[1])
        first = self.predict(client_port=cport, client_id=cid, transport=transport,
                             forge_xff=forge_xff, forge_proxy=forged_proxy, at=target,
                             headers=extra, client=overrides)
        outcome = _Outcome()
        last = src_addr if direct else self.addresses[topo.hops[-1].name]

        def seen_refusal() -> bool:
            return self._refused_since(marks, last)

        def recorded(wait: float) -> str | None:
            return self._recorded(cid, marks, wait)

        # a real broker answers no $realip/whoami: the lab reads what it recorded instead
        lookup = None if self.real_broker is None else recorded
        try:
            if use_raw:
                link = first.links[0]
                _raw_client(sock, host, dport, link.data, transport, cid, timeout,
                            outcome, recorded, seen_refusal, tls=tls_ctx,
                            server_name=client.sni,
                            plaintext=link.tls.plaintext if link.tls is not None else b"")
            else:
                _paho_client(sock, host, dport, transport, cid, client.path,
                             dict(headers) if transport == "ws" else {}, forged_proxy, timeout,
                             outcome, lambda: self._observe(links, before, cport, cid,
                                                            outcome), seen_refusal,
                             tls=tls_ctx, server_name=client.sni if client.tls else None,
                             lookup=lookup)
            if outcome.connected and outcome.peername is None:
                seen = recorded(0.0)
                if seen is not None:
                    outcome.peername = seen
                    notes.append(f"{outcome.error}: the broker's record is shown")
            if outcome.connected and outcome.record is None and self.broker is not None:
                outcome.record = self.broker.clients().get(cid)
            if outcome.connected and not outcome.observed:
                self._observe(links, before, cport, cid, outcome)
        finally:
            outcome.close()
            sock.close()
        if outcome.connected:
            self._wait_gone(cid, marks, timeout=1.0)
        else:
            self._wait_refusal(marks, timeout=0.5, broker_only=direct or not topo.hops)
        down = self.real_broker is not None and \
            self.real_broker.down(marks["broker"]) is not None
        unknown = [n for n in outcome.sources if outcome.sources[n] is None]
        sources = {n: p for n, p in outcome.sources.items() if p is not None}
        if unknown:
            notes.append(f"source port of {', '.join(unknown)} not observed: the prediction "
                         "uses the scenario's")
        trace = self.predict(client_port=cport, client_id=cid, transport=transport,
                             forge_xff=forge_xff, forge_proxy=forged_proxy, at=target,
                             source_ports=sources, headers=extra, client=overrides)
        peername = outcome.peername
        refused = None if peername is not None else self._refusal(marks, outcome)
        record = outcome.record
        live_tls = predicted_tls = None
        if client.tls:
            live_tls = self._live_tls(outcome, f"{src_addr}:{cport}")
            predicted_tls = _predicted_tls(trace)
        return Probe(topo.name, f"{src_addr}:{cport}", cid, transport, path, peername,
                     trace.peername, trace, dict(self.addresses), tuple(forged), refused,
                     sources, tuple(notes), self._new_logs(marks), down,
                     username=record.username if record is not None and peername else None,
                     predicted_username=trace.username, tls=live_tls,
                     predicted_tls=predicted_tls, record=record if peername else None)

    def _client_context(self, client: Any) -> ssl.SSLContext:
        """The TLS client's context: trusting the lab's servers-ca, presenting the certificate
        of ``cert_cn`` signed by ``cert_ca`` (none when null; with its CA's certificate after
        it when ``cert_chain``), at the scenario's version and ALPN."""
        if self.pki is None:  # a TLS client in a lab that has none (bad input): made now
            from .pki import LabPKI

            self.pki = self._res.pki = LabPKI()
        ctx = self.pki.client_context(client.cert_cn, cert_ca=client.cert_ca)
        if client.cert_cn is not None and getattr(client, "cert_chain", False):
            # cert_chain: the client sends its CA's certificate after its own
            issued = self.pki.client(client.cert_cn, client.cert_ca)
            ctx.load_cert_chain(issued.chain_file, issued.key_file)
        # tls_version is the highest version offered: OpenSSL's client offers 1.2 as well
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if client.tls_version == "TLSv1.3" \
            else ssl.TLSVersion.TLSv1_2
        if client.alpn:
            ctx.set_alpn_protocols(list(client.alpn))
        return ctx

    def _live_tls(self, outcome: _Outcome, client: str) -> TlsFacts:
        """What the lab saw of the client's TLS: whose certificate the client's handshake
        met (the terminating host), and the SNI and CN the terminating end learned — from the
        broker's own handshake, or the PROXY v2 SSL TLV a terminating hop sent it (None: not
        observable here).  For nginx and HAProxy, the ``realip-tls`` line the lab's
        configuration makes them log (:data:`realip.lab.drivers.base.TLS_LOG_MARK`)."""
        from .pki import common_name

        holder = None
        if outcome.server_cert is not None:
            cn = common_name(outcome.server_cert)
            names = [k for k, v in self.addresses.items()
                     if v == cn and not k.endswith(".public")]
            holder = names[0] if names else f"({cn})"
        rec = outcome.record
        sni = cert = None
        relay = self.relays.get(holder or "")
        shake = next((p.handshake for p in reversed(_since(relay.passages, None))
                      if p.handshake is not None), None) if relay is not None else None
        run = self.runs.get(holder or "")
        program = self.programs.get(run.runner) if run is not None else None
        logged = program.tls_record(client) if program is not None and outcome.connected \
            else None
        if shake is not None:  # a python relay terminated it: its real handshake
            sni = shake.server_name
            cert = shake.cert.cn if shake.cert is not None else None
        elif logged is not None:  # nginx / HAProxy logged what they saw
            sni, cert = logged
        elif rec is not None and rec.tls is not None:
            sni = rec.tls.server_name
            cert = rec.tls.cert.cn if rec.tls.cert is not None else None
        elif rec is not None and rec.pp2_ssl is not None:
            cert = rec.pp2_ssl.cn
        return TlsFacts(holder, sni, cert)

    # -- what the lab saw ----------------------------------------------------------------------
    def _links(self, start: int) -> list[tuple[str, str, int]]:
        """(hop, next address, next port) for every hop of the path from hop *start* on."""
        topo = self.topology
        nodes = [*(h.name for h in topo.hops), topo.broker.name]
        return [(nodes[i], self.addresses[nodes[i + 1]], self.ports[nodes[i + 1]])
                for i in range(start, len(topo.hops))]

    def _observe(self, links: list[tuple[str, str, int]],
                 before: dict[str, set[int]] | None, cport: int, cid: str,
                 outcome: _Outcome) -> None:
        """While the client is connected: which source port each hop used upstream."""
        outcome.observed = True
        # a real broker's record names the client it believes in, not the TCP peer: the
        # socket table tells the last hop's source port then
        info: ClientInfo | None = None if self.broker is None else self.broker.clients().get(cid)
        if info is not None:
            outcome.record = info
        after = _established(links)
        prev: tuple[str, int] = (self.addresses[self.topology.client.name], cport)
        for i, (name, _, _) in enumerate(links):
            port: int | None = None
            relay = self.relays.get(name)
            if relay is not None:
                port = _relay_source(relay, prev)
            if port is None and i == len(links) - 1 and info is not None:
                peer = info.peer
                if str(peer.host) == self.addresses[name] and peer.port:
                    port = int(peer.port)
            if port is None and after is not None:
                fresh = after.get(name, set()) - (before or {}).get(name, set())
                candidates = fresh or after.get(name, set())
                if len(candidates) == 1:
                    port = next(iter(candidates))
            outcome.sources[name] = port
            prev = (self.addresses[name], port or 0)

    def _recorded(self, cid: str, marks: dict[str, Any], wait: float) -> str | None:
        """The peername the broker recorded for *cid* (a real broker: since *marks*)."""
        if self.real_broker is not None:
            rec = self.real_broker.record(cid, marks["broker"], wait)
            return None if rec is None else rec.peername
        assert self.broker is not None
        info = self.broker.clients().get(cid)
        return None if info is None else info.peername

    def _marks(self) -> dict[str, Any]:
        marks: dict[str, Any] = {
            "broker": self.real_broker.mark() if self.real_broker is not None
            else _last(self.broker.refused) if self.broker is not None else None}
        for name, relay in self.relays.items():
            marks[f"relay:{name}"] = _last(relay.passages)
        for name, program in self.programs.items():
            marks[f"log:{name}"] = program.log_size()
        return marks

    def _refused_since(self, marks: dict[str, Any], last: str) -> bool:
        """Whether a relay, or the broker (for a connection from *last*, the hop before it),
        refused a connection since *marks* — the client may not notice at once: a relay
        between them can be slow to close (see realip.lab.relay)."""
        if self.real_broker is not None:
            if self.real_broker.refusal(marks["broker"]) is not None:
                return True
        elif self.broker is not None and any(
                str(r.peer.host) == last for r in _since(self.broker.refused, marks["broker"])):
            return True
        return any(not p.view.accepted for name, relay in self.relays.items()
                   for p in _since(relay.passages, marks[f"relay:{name}"]))

    def _refusal(self, marks: dict[str, Any], outcome: _Outcome) -> str:
        for name, relay in self.relays.items():
            for p in _since(relay.passages, marks[f"relay:{name}"]):
                if not p.view.accepted:
                    return f"{name}: {p.view.log}"
        if self.real_broker is not None:
            why = self.real_broker.refusal(marks["broker"]) or \
                self.real_broker.down(marks["broker"])
            if why is not None:
                return f"{self.topology.broker.name}: {why}"
        elif self.broker is not None:
            for r in _since(self.broker.refused, marks["broker"]):
                return f"{self.topology.broker.name}: {r.log}"
        for name, program in self.programs.items():
            text = program.log_since(marks[f"log:{name}"])
            for line in text.splitlines():
                if "Connection reset by peer" in line:  # the lab's client closes so
                    continue
                if any(w in line for w in _REFUSAL_WORDS):
                    return f"{name}: {line.strip()}"
        return outcome.error or "the connection was closed"

    def _new_logs(self, marks: dict[str, Any]) -> dict[str, str]:
        out = {name: program.log_since(marks[f"log:{name}"])
               for name, program in self.programs.items()}
        if self.real_broker is not None:
            out[self.real_broker.name] = self.real_broker.log_since(marks["broker"])
        return out

    def _wait_gone(self, cid: str, marks: dict[str, Any], timeout: float) -> None:
        if self.real_broker is not None:
            self.real_broker.gone(cid, marks["broker"], timeout)
            return
        assert self.broker is not None
        deadline = time.monotonic() + timeout
        while cid in self.broker.clients() and time.monotonic() < deadline:
            time.sleep(0.005)

    def _wait_refusal(self, marks: dict[str, Any], timeout: float,
                      broker_only: bool = False) -> None:
        """Let the refusing hop record why (relays and the broker log asynchronously);
        *broker_only*: the client dialled the broker itself."""
        real = self.real_broker
        if real is not None and broker_only:
            # only the broker can have refused, and a real one reports every refusal (and its
            # crash) as an event: wait for it, a little longer on a busy machine, never past
            # the process's exit
            real.wait_refusal(marks["broker"], max(timeout, 2.0))
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if real is not None:
                if real.refusal(marks["broker"]) is not None or not real.alive:
                    real.wait_refusal(marks["broker"], 0.0)  # a crash: until the process exits
                    return
            elif self.broker is not None and _since(self.broker.refused, marks["broker"]):
                return
            for name, relay in self.relays.items():
                if any(not p.view.accepted for p in _since(relay.passages,
                                                           marks[f"relay:{name}"])):
                    return
            if self.programs:
                time.sleep(0.05)
                return
            time.sleep(0.005)


# ==============================================================================================
# Helpers

#: Words of the log lines in which nginx and HAProxy refuse a connection.
_REFUSAL_WORDS = ("[error]", "[crit]", "[alert]", "broken header", "invalid", "failed",
                  "does not look like", "PROXY protocol", "timeout", "<BADREQ>", "PR--",
                  # TLS: nginx's info-level certificate refusals, HAProxy's connection errors
                  "no required SSL certificate", "SSL certificate verify error",
                  "plain HTTP request", "SSL handshake failure", "not trusted",
                  "cannot be verified")


def _free_port(addr: str) -> int:
    from .loopback import free_port

    return free_port(addr)


def _printable(raw: bytes) -> str:
    if raw.startswith(b"PROXY"):
        return raw.decode("latin-1").replace("\r", "\\r").replace("\n", "\\n")
    return f"PROXY v2 header ({len(raw)} bytes) {raw.hex()}"


def _last(items: Iterable[Any]) -> Any:
    for _ in range(5):
        try:
            seq = list(items)
        except RuntimeError:  # appended to by the lab's thread meanwhile
            continue
        return seq[-1] if seq else None
    return None


def _since(items: Iterable[Any], mark: Any) -> list[Any]:
    """The entries of a deque appended after *mark* (the last entry seen before)."""
    for _ in range(5):
        try:
            seq = list(items)
        except RuntimeError:
            continue
        if mark is None:
            return seq
        for i in range(len(seq) - 1, -1, -1):
            if seq[i] is mark:
                return seq[i + 1 :]
        return seq
    return []


def _established(links: Sequence[tuple[str, str, int]]) -> dict[str, set[int]] | None:
    """Per hop: the local ports of ESTABLISHED connections to its next hop."""
    if not links:
        return {}
    rows = tcp_sockets()
    if rows is None:
        return None
    out: dict[str, set[int]] = {name: set() for name, _, _ in links}
    targets = {(addr, port): name for name, addr, port in links}
    return _fill(out, rows, targets)


def _fill(out: dict[str, set[int]], rows: Iterable[Any],
          targets: Mapping[tuple[str, int], str]) -> dict[str, set[int]]:
    for row in rows:
        if row.state != "ESTABLISHED":
            continue
        name = targets.get(row.remote)
        if name is not None:
            out[name].add(row.local[1])
    return out


def _relay_source(relay: HopRelay, prev: tuple[str, int]) -> int | None:
    """The source port of the relay's upstream connection for the peer *prev*."""
    passages = _since(relay.passages, None)
    for p in reversed(passages):
        if p.source is not None and str(p.peer.host) == prev[0] and p.peer.port == prev[1]:
            return int(p.source.port or 0) or None
    if prev[1] == 0 and passages and passages[-1].source is not None:
        return int(passages[-1].source.port or 0) or None
    return None


def _bind_client(addr: str, port: int) -> socket.socket:
    """A client socket bound to *addr*:*port* (any port if that one is taken) that closes with
    a reset, so its port is free again at once (no TIME_WAIT)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    for attempt in (port, 0) if port else (0,):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((addr, attempt))
            return sock
        except OSError:
            sock.close()
            if attempt == 0:
                raise
        except BaseException:
            sock.close()
            raise
    raise RealIPError("unreachable")  # pragma: no cover


@dataclass
class _Outcome:
    connected: bool = False
    peername: str | None = None
    error: str | None = None
    observed: bool = False
    sources: dict[str, int | None] = field(default_factory=dict)
    closers: list[Callable[[], object]] = field(default_factory=list)
    #: the server certificate (DER) the client's TLS handshake met
    server_cert: bytes | None = None
    #: the broker's record of the session (while it was connected)
    record: ClientInfo | None = None

    def close(self) -> None:
        for fn in self.closers:
            with contextlib.suppress(Exception):
                fn()
        self.closers.clear()


# -- paho-mqtt ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PahoResult:
    """What :func:`paho_connect` saw: ``connected`` (a CONNACK accepted the session),
    ``peername`` (the broker's ``$realip/whoami`` answer), ``error`` (why not), and the
    client's own ``source`` address."""

    connected: bool
    peername: str | None
    error: str | None
    source: str


def paho_connect(host: str, port: int, *, bind: str, client_id: str,
                 transport: Literal["tcp", "ws"] = "tcp", tls: ssl.SSLContext | None = None,
                 server_name: str | None = None, prefix: bytes | None = None,
                 path: str = "/mqtt", headers: Mapping[str, str] | None = None,
                 username: str | None = None, timeout: float = 3.0) -> PahoResult:
    """Connect one paho-mqtt 2.x client from loopback address *bind* to *host*:*port*, ask the
    broker ``$realip/whoami`` and disconnect (blocking; the broker runs elsewhere, e.g. in a
    :class:`~realip.lab.Background`).

    *transport* ``tcp`` or ``ws``; *tls* a client context (``tls_set_context``: MQTT over TLS
    or wss — :meth:`realip.lab.pki.LabPKI.client_context` makes one, with or without a client
    certificate); *server_name* the name the client believes it dials (SNI, certificate
    check, Host header; default *host*); *prefix* bytes written in clear first (a PROXY
    header — before the ClientHello with *tls*); *username* the CONNECT username."""
    check_loopback(bind)
    check_loopback(host)
    if transport not in ("tcp", "ws"):
        raise ConfigurationError(f"transport must be tcp or ws, not {transport!r}")
    if not _paho_can_prefix():
        raise ConfigurationError("this paho-mqtt has no socket hook (_create_socket_connection)")
    sock = _bind_client(bind, 0)
    source = "{}:{}".format(*sock.getsockname()[:2])
    outcome = _Outcome()
    try:
        _paho_client(sock, host, port, transport, client_id, path, dict(headers or {}), prefix,
                     timeout, outcome, lambda: None, lambda: False, tls=tls,
                     server_name=server_name, username=username)
    finally:
        outcome.close()
        sock.close()
    return PahoResult(outcome.connected, outcome.peername, outcome.error, source)


_PAHO: dict[str, Any] = {}


def _paho_can_prefix() -> bool:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise ConfigurationError("the live lab's client is paho-mqtt: pip install "
                                 "'paho-mqtt>=2,<3' (the [lab] extra)") from exc
    return hasattr(mqtt.Client, "_create_socket_connection")


def _paho_class() -> Any:
    """paho-mqtt's Client, connecting over a socket the lab prepared (bound to the client's
    address and port) and, for a forging client, writing the PROXY header before anything
    else (paho has no hook for that: this overrides its socket factory)."""
    if "cls" in _PAHO:
        return _PAHO["cls"]
    import paho.mqtt.client as mqtt

    class LabClient(mqtt.Client):
        lab_socket: socket.socket | None = None
        lab_prefix: bytes = b""
        #: where to connect when the host paho is given is a name (its TLS SNI, its
        #: certificate check and the WebSocket Host header) rather than the lab's address
        lab_dial: tuple[str, int] | None = None

        def _create_socket_connection(self) -> socket.socket:
            sock = self.lab_socket
            if sock is None:
                raise RealIPError("the lab client has no socket")
            sock.settimeout(self._connect_timeout)
            sock.connect(self.lab_dial or (self._host, self._port))
            if self.lab_prefix:
                sock.sendall(self.lab_prefix)
            return sock

    _PAHO["cls"] = LabClient
    return LabClient


def _paho_client(sock: socket.socket, host: str, port: int, transport: str, cid: str,
                 path: str, headers: dict[str, str], prefix: bytes | None, timeout: float,
                 outcome: _Outcome, observe: Callable[[], None],
                 refused: Callable[[], bool], *, tls: ssl.SSLContext | None = None,
                 server_name: str | None = None, username: str | None = None,
                 lookup: Callable[[float], str | None] | None = None) -> None:
    """One paho-mqtt client over the prepared *sock*: CONNECT, then ``$realip/whoami`` — or,
    with *lookup* (a real broker, which answers no whoami), read the peername the broker
    recorded (waiting up to the given seconds) while the client is still connected.  With
    *tls* the connection is TLS (after *prefix*, which travels in clear: a PROXY header then
    the ClientHello on the same connection); *server_name* is the name paho is given (SNI,
    certificate check, WebSocket Host) while *sock* dials *host*:*port*."""
    import paho.mqtt.client as mqtt

    from .broker import WHOAMI

    cls = _paho_class()
    from paho.mqtt.enums import CallbackAPIVersion

    client = cls(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                 transport="websockets" if transport == "ws" else "tcp",
                 reconnect_on_failure=False)
    client.lab_socket = sock
    client.lab_prefix = prefix or b""
    if server_name is not None:
        client.lab_dial = (host, port)
    if tls is not None:
        client.tls_set_context(tls)
    if username is not None:
        client.username_pw_set(username)
    if transport == "ws":
        client.ws_set_options(path=path, headers=headers or None)
    state: dict[str, Any] = {"connack": None, "closed": False, "reply": None, "subscribed": False}

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        state["connack"] = reason

    def on_disconnect(*args: Any) -> None:
        state["closed"] = True

    def on_subscribe(*args: Any) -> None:
        state["subscribed"] = True

    def on_message(c: Any, u: Any, msg: Any) -> None:
        state["reply"] = msg.payload.decode("utf-8", "replace")

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_subscribe = on_subscribe
    client.on_message = on_message

    def close() -> None:
        with contextlib.suppress(Exception):
            client.disconnect()
        with contextlib.suppress(Exception):
            client.loop(0.01)
        reset = getattr(client, "_reset_sockets", None)
        if reset is not None:
            with contextlib.suppress(Exception):
                reset()

    outcome.closers.append(close)
    deadline = time.monotonic() + timeout

    def pump(until: Callable[[], bool], watch: bool = False) -> bool:
        while not until():
            if state["closed"] or time.monotonic() > deadline or (watch and refused()):
                return until()
            rc = client.loop(0.02)
            if rc != mqtt.MQTT_ERR_SUCCESS and not until():
                state["closed"] = True
                return False
        return True

    try:
        client.connect(server_name or host, port, keepalive=30,
                       bind_address=sock.getsockname()[0], bind_port=sock.getsockname()[1])
    except (OSError, mqtt.WebsocketConnectionError, ValueError) as exc:
        outcome.error = f"the client's connection failed: {exc}"
        return
    if not pump(lambda: state["connack"] is not None, watch=True) or \
            state["connack"].is_failure:
        outcome.error = ("refused with CONNACK " + str(state["connack"])
                         if state["connack"] is not None else "closed before CONNACK")
        return
    outcome.connected = True
    if tls is not None:
        outcome.server_cert = _server_cert(client)
    if lookup is not None:
        outcome.peername = lookup(max(0.0, deadline - time.monotonic()))
        if outcome.peername is not None:
            observe()
        else:
            outcome.error = f"the broker recorded no client {cid}"
        return
    topic = f"{WHOAMI}/{cid}"
    client.subscribe(topic, 0)
    if pump(lambda: state["subscribed"]):
        client.publish(WHOAMI, b"?", 0)
        pump(lambda: state["reply"] is not None)
    if state["reply"] is not None:
        outcome.peername = state["reply"]
        observe()
    else:
        outcome.error = "no answer from $realip/whoami"


def _server_cert(client: Any) -> bytes | None:
    """The server certificate (DER) of paho's TLS connection (its WebSocket wrapper holds the
    TLS socket as ``_socket``)."""
    sock = client.socket()
    sock = getattr(sock, "_socket", sock)
    getter = getattr(sock, "getpeercert", None)
    if getter is None:
        return None
    der = getter(binary_form=True)
    return bytes(der) if der else None


# -- a raw client ------------------------------------------------------------------------------


def _raw_client(sock: socket.socket, host: str, port: int, first: bytes, transport: str,
                cid: str, timeout: float, outcome: _Outcome,
                recorded: Callable[[float], str | None], refused: Callable[[], bool], *,
                tls: ssl.SSLContext | None = None, server_name: str | None = None,
                plaintext: bytes = b"") -> None:
    """Send the simulator's first bytes (PROXY header, then the CONNECT or the upgrade request),
    finish the WebSocket handshake if any, and wait for the CONNACK; the peername is what the
    broker recorded (*recorded*, waiting up to the given seconds).  With *tls*, *first* is
    what goes in clear before the handshake, then the TLS connection (server name
    *server_name*) carries *plaintext* — the simulator's bytes inside it."""
    from ..topology import mqtt_connect

    deadline = time.monotonic() + timeout
    buf = bytearray()

    def need(n: int | None) -> bool:
        """Read until *buf* holds *n* bytes (None: an HTTP head); False if the connection
        ends, the time is up, or the lab saw a refusal first."""
        sock.settimeout(0.05)
        while (len(buf) < n) if n is not None else (b"\r\n\r\n" not in buf):
            if time.monotonic() > deadline or refused():
                return False
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except (ConnectionResetError, ssl.SSLError):
                return False
            if not chunk:
                return False
            buf.extend(chunk)
        return True

    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(first)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname=server_name or host)
            except ssl.SSLError as exc:
                outcome.error = f"the TLS handshake failed: {exc}"
                return
            outcome.closers.append(sock.close)
            der = sock.getpeercert(binary_form=True)
            outcome.server_cert = bytes(der) if der else None
            sock.sendall(plaintext)
        start = 0
        if transport == "ws":
            if not need(None):
                outcome.error = "closed during the WebSocket handshake"
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                outcome.error = "WebSocket handshake refused: " + \
                    bytes(buf).split(b"\r\n", 1)[0].decode("latin-1")
                return
            start = buf.index(b"\r\n\r\n") + 4
            sock.sendall(_ws_frame(mqtt_connect(cid)))
            # the CONNACK may come in several frames (aedes writes the fixed header and the
            # rest apart): read frames until 4 bytes of payload
            payload = bytearray()
            while len(payload) < 4:
                if not need(start + 2):
                    break
                size, head = buf[start + 1] & 0x7F, 2
                if size == 126:
                    head = 4
                elif size == 127:
                    head = 10
                if not need(start + head):
                    break
                if head > 2:
                    size = int.from_bytes(buf[start + 2 : start + head], "big")
                if not need(start + head + size):
                    break
                payload += buf[start + head : start + head + size]
                start += head + size
            ok = len(payload) >= 4 and payload[:2] == b"\x20\x02" and payload[3] == 0
        else:
            ok = need(4) and buf[:2] == b"\x20\x02" and buf[3] == 0
    except OSError as exc:
        outcome.error = f"the client's connection failed: {exc}"
        return
    if not ok:
        outcome.error = "closed before CONNACK"
        return
    outcome.connected = True
    outcome.peername = recorded(max(0.0, deadline - time.monotonic()))


def _ws_frame(payload: bytes, mask: bytes = b"\x5a\x17\xc3\x2e") -> bytes:
    """A masked binary WebSocket frame (what a client sends)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 65536:
        head = bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x82, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def netns_setup(topology: Topology) -> dict[str, str]:
    """Prepare the private network namespace this process runs in (``unshare -n``, as root) for
    *topology*: bring ``lo`` up and put every labelled address on it; return the plan for
    :class:`Lab`'s *addresses*.  Refuses to run outside a fresh namespace — one with any
    interface besides ``lo`` — so the host's real network is never touched."""
    import subprocess

    from ..render import netns_plan

    if not private_netns():
        raise ConfigurationError("netns_setup runs only inside a private network namespace "
                                 "(unshare -n: lo and nothing else)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    plan = netns_plan(topology)
    for addr in sorted(set(plan.values())):
        if addr in ("127.0.0.1", "::1"):
            continue
        # nodad: an IPv6 address is usable at once (no duplicate detection on a lone lo)
        six = ":" in addr
        subprocess.run(["ip", "addr", "add", f"{addr}/{128 if six else 32}", "dev", "lo",
                        *(["nodad"] if six else [])], check=True)
    return plan
