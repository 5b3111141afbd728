"""The real aedes broker (Node.js) for the live lab and the tests: ``node
realip/lab/node/aedes-server.mjs --listen tcp:HOST:PORT …`` — aedes with aedes-server-factory's
``trustProxy: true`` and aedes-protocol-decoder, as the decoder's README starts it.

:class:`AedesListener` runs that process privately, reads the JSON events it prints on stdout
(a client connected with its ``connDetails``, a client error, a crash) and notices when the
process dies: an exception thrown by aedes-protocol-decoder is uncaught and ends Node, taking
every client with it.  :meth:`AedesListener.restart` starts it again on the same listeners.
The Node packages come from ``realip/lab/node/package-lock.json`` (``npm ci`` in that directory).

:class:`AedesBroker` is the same process as the live lab's broker
(:data:`realip.lab.drivers.BROKER_DRIVERS` ``["aedes"]``): the peername of a client is what
aedes recorded in its ``connDetails``, and a crash is the broker DOWN.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import base
from .base import PACKAGES, ProgramError, ProgramInfo
from .brokers import BrokerRecord, RealBroker

__all__ = ["NODE_DIR", "SERVER", "AedesBroker", "AedesEvent", "AedesListener", "find_aedes",
           "missing_detail", "unsupported"]

PACKAGES["aedes"] = "nodejs npm"

#: Where package.json, the lock file and the server script live.
NODE_DIR = Path(__file__).resolve().parent.parent / "node"
#: The server script.
SERVER = NODE_DIR / "aedes-server.mjs"


def _package_version(name: str) -> str | None:
    path = NODE_DIR / "node_modules" / name / "package.json"
    try:
        return str(json.loads(path.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def find_aedes(*, refresh: bool = False) -> ProgramInfo | None:
    """``node`` with aedes installed under :data:`NODE_DIR` (``npm ci`` there), or None.  The
    info's ``path`` is node, its ``version`` aedes's."""
    if "aedes" in base._CACHE and not refresh:
        return base._CACHE["aedes"]
    node = shutil.which("node")
    version = _package_version("aedes")
    info = ProgramInfo("aedes", node, version) if node and version else None
    base._CACHE["aedes"] = info
    return info


def missing_detail() -> str:
    """Why aedes counts as missing: no node, or its packages are not installed."""
    if shutil.which("node") is None:
        return "node is not installed"
    if _package_version("aedes") is None:
        return f"aedes is not installed: run `npm ci` in {NODE_DIR}"
    return ""


def versions() -> dict[str, str | None]:
    """The installed versions of the Node packages the server uses."""
    return {n: _package_version(n) for n in ("aedes", "aedes-protocol-decoder",
                                              "aedes-server-factory", "ws")}


@dataclass(frozen=True)
class AedesEvent:
    """One line the server printed: ``event`` (``client``, ``clientError``, ``crash``, …),
    its fields, the process generation (0, then +1 per restart) and when it was read."""

    event: str
    fields: dict[str, Any]
    generation: int
    at: float

    @property
    def details(self) -> dict[str, Any] | None:
        """The client's ``connDetails`` (``ipAddress``, ``port``, ``isProxy``, …)."""
        d = self.fields.get("connDetails")
        return d if isinstance(d, dict) else None


class AedesListener:
    """One aedes process with listeners *listens* (``(kind, host, port)``, kind ``tcp`` or
    ``ws``), its events and its crashes."""

    def __init__(self, listens: Sequence[tuple[str, str, int]], *, node: str | None = None,
                 directory: Path | None = None, options: Mapping[str, Any] | None = None
                 ) -> None:
        info = find_aedes()
        self.node = node or (info.path if info else None)
        if self.node is None or info is None:
            from .base import ProgramMissing

            raise ProgramMissing("aedes", missing_detail())
        self.info = info
        self.listens = [(k, h, int(p)) for k, h, p in listens]
        self.directory = directory
        #: createServer's options instead of the lab's ``trustProxy: true`` (JSON data, as in
        #: an options file; ``ws`` follows each listener's kind)
        self.options = None if options is None else dict(options)
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[AedesEvent] = []
        self.generation = -1
        self.crashes = 0
        self.stderr_text = ""
        self.started_versions: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._err_reader: threading.Thread | None = None

    # -- process --------------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The command line that starts the server."""
        assert self.node is not None
        cmd = [self.node, str(SERVER)]
        for kind, host, port in self.listens:
            cmd += ["--listen", f"{kind}:{host}:{port}"]
        if self.options is not None:
            cmd += ["--options", json.dumps(self.options)]
        return cmd

    @property
    def pid(self) -> int | None:
        """The running process's id."""
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        """Whether the Node process is running."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        """Start the process and wait for its ``listening`` line."""
        if self.alive:
            return
        self.generation += 1
        gen = self.generation
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     cwd=str(NODE_DIR), preexec_fn=_die_with_parent)
        proc = self.proc
        self._reader = threading.Thread(target=self._read, args=(proc, gen), daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, args=(proc,), daemon=True)
        self._err_reader.start()
        ev = self.wait_for(lambda e: e.event == "listening" and e.generation == gen, timeout,
                           stop_on_exit=True)
        if ev is None:
            self.stop()
            raise ProgramError(f"aedes did not start ({' '.join(self.command())}):\n"
                               f"{self.stderr_text}")
        self.started_versions = dict(ev.fields.get("versions", {}))

    def _read(self, proc: subprocess.Popen[bytes], gen: int) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            ev = AedesEvent(str(obj.pop("event", "")), obj, gen, time.monotonic())
            with self._cond:
                self.events.append(ev)
                if ev.event == "crash":
                    self.crashes += 1
                self._cond.notify_all()
        proc.wait()
        with self._cond:
            self._cond.notify_all()

    def _read_err(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            self.stderr_text = (self.stderr_text + raw.decode("utf-8", "replace"))[-20000:]

    def restart(self, timeout: float = 15.0) -> None:
        """Start the process again (after a crash) on the same listeners."""
        self.stop()
        self.start(timeout)

    def ensure(self, timeout: float = 15.0) -> bool:
        """Restart the process when it died; True when it had to."""
        if self.alive:
            return False
        self.restart(timeout)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by pid, then SIGKILL."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        # both pipes end with the process: the readers finish (no thread outlives a stop)
        for reader in (self._reader, self._err_reader):
            if reader is not None:
                reader.join(timeout=2)

    close = stop

    # -- events ---------------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in :attr:`events` (for :meth:`since`)."""
        with self._cond:
            return len(self.events)

    def since(self, mark: int) -> list[AedesEvent]:
        """The events read after *mark*."""
        with self._cond:
            return list(self.events[mark:])

    def wait_for(self, pred: Callable[[AedesEvent], bool], timeout: float, *,
                 after: int = 0, stop_on_exit: bool = False) -> AedesEvent | None:
        """The first event after *after* matching *pred*, waiting up to *timeout* s (None on
        timeout, or when the process exited and *stop_on_exit*)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[after:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if stop_on_exit and self.proc is not None and self.proc.poll() is not None:
                    return None
                self._cond.wait(min(left, 0.1))

    def client(self, client_id: str, timeout: float = 3.0, after: int = 0) -> AedesEvent | None:
        """The ``client`` event of *client_id* (None: it never connected)."""
        return self.wait_for(lambda e: e.event == "client" and e.fields.get("id") == client_id,
                             timeout, after=after, stop_on_exit=True)

    def died(self, timeout: float = 1.0) -> bool:
        """Whether the process has exited (waiting up to *timeout* s for it to)."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        if self._reader is not None:
            self._reader.join(timeout=2)
        return True

    def __enter__(self) -> AedesListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"<AedesListener {self.info.version} {state} {self.listens}>"


def unsupported(broker: Any) -> str:
    """Why the real aedes cannot play *broker* ("" when it can): aedes-server.mjs starts aedes
    as aedes-protocol-decoder's README does, with ``trustProxy: true``."""
    if not getattr(broker, "trust_proxy", False):
        return (f"the real aedes runs with trustProxy: true, and {broker.name} has trust_proxy "
                "off")
    return ""


#: the events in which aedes refuses or drops a connection, or dies
_REFUSALS = ("clientError", "connectionError", "crash")


def _line(ev: AedesEvent) -> str:
    return json.dumps({"event": ev.event, **ev.fields}, sort_keys=True)


class AedesBroker(RealBroker):
    """The real aedes as the live lab's broker: one :class:`AedesListener` on the topology's
    broker listener (``tcp`` or ``ws``, with ``trustProxy``)."""

    name = "aedes"

    def __init__(self, info: ProgramInfo, listens: Sequence[tuple[str, str, int]]) -> None:
        super().__init__(info)
        self.listener = AedesListener(listens)

    @classmethod
    def for_broker(cls, info: ProgramInfo, broker: Any,
                   directory: Path | None = None) -> AedesBroker:
        """aedes listening where the lab put *broker* (its ``addr``, ``port``, ``listener``)."""
        why = unsupported(broker)
        if why:
            raise ProgramError(why)
        return cls(info, [(broker.listener, broker.addr, int(broker.port))])

    @property
    def pid(self) -> int | None:
        return self.listener.pid

    @property
    def alive(self) -> bool:
        return self.listener.alive

    def start(self, timeout: float = 15.0) -> None:
        self.listener.start(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.listener.stop(timeout)

    def restart(self, timeout: float = 15.0) -> None:
        self.listener.restart(timeout)

    def mark(self) -> int:
        return self.listener.mark()

    def record(self, client_id: str, after: int, timeout: float = 0.0) -> BrokerRecord | None:
        ev = self.listener.client(client_id, timeout, after=after)
        if ev is None:
            return None
        d = ev.details or {}
        host = d.get("ipAddress")
        port = d.get("port")
        # the text aedes itself would print (`${ipAddress}:${port}`); NaN stays NaN
        peer = f"{'undefined' if host is None else host}:{'undefined' if port is None else port}"
        return BrokerRecord(client_id, peer, dict(d))

    def refusal(self, after: int) -> str | None:
        from ...programs.aedes.broker import CRASH_LOG

        for ev in self.listener.since(after):
            if ev.event == "crash":
                return f"{ev.fields.get('error')}: {CRASH_LOG}"
            if ev.event in _REFUSALS:
                return str(ev.fields.get("error"))
        return None

    def _crash(self, after: int) -> str | None:
        for ev in self.listener.since(after):
            if ev.event == "crash":
                return str(ev.fields.get("error"))
        return None

    def down(self, after: int) -> str | None:
        from ...programs.aedes.broker import CRASH_LOG

        crash = self._crash(after)
        if crash is None and not self.alive:
            self.listener.died(1.0)  # the reader drains stdout: the crash line may still come
            crash = self._crash(after)
        if crash is not None:
            self.listener.died(1.0)  # the crash line comes just before the exit
            return f"{crash}: {CRASH_LOG}"
        if not self.alive:
            proc = self.listener.proc
            code = None if proc is None else proc.returncode
            return f"the node process exited ({code})"
        return None

    def gone(self, client_id: str, after: int, timeout: float = 0.0) -> bool:
        ev = self.listener.wait_for(
            lambda e: e.event in ("clientDisconnect", "clientError")
            and e.fields.get("id") == client_id, timeout, after=after, stop_on_exit=True)
        return ev is not None or not self.alive

    def wait_refusal(self, after: int, timeout: float) -> None:
        ev = self.listener.wait_for(lambda e: e.event in _REFUSALS, timeout, after=after,
                                    stop_on_exit=True)
        # a crash (or an exit before its line was read): until the process and its reader are
        # done, so that down() sees the whole story
        if (ev is not None and ev.event == "crash") or (ev is None and not self.alive):
            self.listener.died(1.0)

    def logs(self) -> str:
        return self.log_since(0) + self.listener.stderr_text

    def log_since(self, after: int) -> str:
        return "".join(_line(ev) + "\n" for ev in self.listener.since(after))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    from .base import _die_with_parent as die

    die()
