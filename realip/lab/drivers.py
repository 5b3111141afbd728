"""Real nginx and HAProxy for the live lab: find them, configure them from a topology, start,
health-check, stop, and collect their logs.

Each program runs **privately**, in the foreground, out of its own directory (nothing of the
system's configuration, pid files or logs is touched), with the configuration
:mod:`realip.render` writes for the topology's hops on their loopback addresses:

* nginx (Debian's ``nginx`` with ``libnginx-mod-stream``): ``nginx -p DIR -c DIR/nginx.conf
  -e DIR/startup.log``, ``daemon off; master_process off;``, the stream module loaded by its
  absolute path (:data:`realip.render.NGINX_STREAM_MODULE`) when the binary was not built with
  it, temp paths and ``error.log`` under DIR.  Every nginx hop of a topology is one ``server``
  block of the same process.
* HAProxy (Debian's ``haproxy``): checked with ``haproxy -c -f DIR/haproxy.cfg``, run with
  ``haproxy -db -f DIR/haproxy.cfg``; ``log stdout format raw`` lines go to ``DIR/stdout.log``.
  Every HAProxy hop is one ``frontend``/``backend`` pair of the same process.

A program is healthy when every listening socket it was configured with is in state LISTEN
(``/proc/net/tcp`` on Linux; ``netstat`` elsewhere, or a plain connect as the last resort) and the
process is still running.  :func:`find_nginx` / :func:`find_haproxy` say whether a program is
installed; :func:`require` raises :class:`ProgramMissing`, whose message names the Debian
packages to install.

:func:`tcp_sockets` reads the system's TCP socket table; the lab uses it to learn which source
port a real program picked for its upstream connection (the simulator needs it to predict a
peername that names a proxy).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Literal

from ..errors import ConfigurationError, RealIPError
from ..render import (
    NGINX_STREAM_MODULE,
    haproxy_main,
    haproxy_sections,
    nginx_main,
    nginx_server,
)
from ..topology import HAProxy, NginxHttp, NginxStream, Relay, Topology

__all__ = [
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
    "require",
    "tcp_sockets",
]

ProgramName = Literal["nginx", "haproxy"]

#: The Debian/Ubuntu packages each program comes from (``apt.txt`` lists them all).
PACKAGES: dict[str, str] = {"nginx": "nginx libnginx-mod-stream", "haproxy": "haproxy"}


class ProgramMissing(ConfigurationError):
    """A real program the lab was asked to run is not installed."""

    def __init__(self, program: str, detail: str = "") -> None:
        self.program = program
        self.packages = PACKAGES.get(program, program)
        what = detail or f"{program} is not installed"
        super().__init__(f"{what}. On Debian/Ubuntu: sudo apt-get install {self.packages} "
                         "(the live lab's programs are listed in apt.txt); or run the hops as "
                         "python relays: proxies=\"python\" (or \"auto\")")


class ProgramError(RealIPError):
    """A real program did not start, or stopped: the message holds its own output."""


# ==============================================================================================
# Finding the programs


@dataclass(frozen=True)
class ProgramInfo:
    """An installed program: ``name`` (``nginx``/``haproxy``), ``path``, ``version``
    (``"1.22.1"``), and for nginx the stream module to load (None: built in)."""

    name: str
    path: str
    version: str
    stream_module: str | None = None


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/bin", "/usr/local/bin"):
        path = Path(d) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def _run_text(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout + out.stderr


_CACHE: dict[str, ProgramInfo | None] = {}


def find_nginx(*, refresh: bool = False) -> ProgramInfo | None:
    """nginx with a usable stream module (built in, or Debian's ``libnginx-mod-stream`` at
    :data:`~realip.render.NGINX_STREAM_MODULE`), or None."""
    if "nginx" in _CACHE and not refresh:
        return _CACHE["nginx"]
    info = None
    path = _which("nginx")
    if path is not None:
        build = _run_text([path, "-V"])
        m = re.search(r"nginx/(\d[\w.]*)", build)
        module: str | None = None
        usable = True
        if "--with-stream=dynamic" in build or "--with-stream" not in build:
            usable = Path(NGINX_STREAM_MODULE).exists()
            module = NGINX_STREAM_MODULE if usable else None
        if usable:
            info = ProgramInfo("nginx", path, m.group(1) if m else "unknown", module)
    _CACHE["nginx"] = info
    return info


def find_haproxy(*, refresh: bool = False) -> ProgramInfo | None:
    """HAProxy, or None."""
    if "haproxy" in _CACHE and not refresh:
        return _CACHE["haproxy"]
    info = None
    path = _which("haproxy")
    if path is not None:
        m = re.search(r"version (\d[\w.]*)", _run_text([path, "-v"]))
        info = ProgramInfo("haproxy", path, m.group(1) if m else "unknown")
    _CACHE["haproxy"] = info
    return info


def find_program(name: str, *, refresh: bool = False) -> ProgramInfo | None:
    """:func:`find_nginx` or :func:`find_haproxy` by name."""
    if name == "nginx":
        return find_nginx(refresh=refresh)
    if name == "haproxy":
        return find_haproxy(refresh=refresh)
    raise ConfigurationError(f"unknown program {name!r}: nginx or haproxy")


def require(name: str) -> ProgramInfo:
    """The installed program *name*, or :class:`ProgramMissing` naming its packages."""
    info = find_program(name)
    if info is None:
        detail = ""
        if name == "nginx" and _which("nginx") is not None:
            detail = (f"nginx is installed but its stream module is not "
                      f"({NGINX_STREAM_MODULE} is missing)")
        raise ProgramMissing(name, detail)
    return info


# ==============================================================================================
# The system's TCP sockets


@dataclass(frozen=True)
class TcpSocket:
    """One row of the TCP socket table: local and remote ``(address, port)`` and the state
    (``LISTEN``, ``ESTABLISHED`` …)."""

    local: tuple[str, int]
    remote: tuple[str, int]
    state: str
    inode: int = 0  #: the socket's inode (Linux), to tell whose socket it is


_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
           "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
           "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def _proc_addr(text: str) -> tuple[str, int]:
    hexip, hexport = text.split(":")
    raw = bytes.fromhex(hexip)
    if len(raw) == 4:
        host = socket.inet_ntoa(raw[::-1])
    else:
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip6 = IPv6Address(words)
        host = str(ip6.ipv4_mapped) if ip6.ipv4_mapped is not None else str(ip6)
    return host, int(hexport, 16)


def _from_proc() -> list[TcpSocket] | None:
    rows: list[TcpSocket] = []
    found = False
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            text = Path(name).read_text()
        except OSError:
            continue
        found = True
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) < 4:
                continue
            inode = int(fields[9]) if len(fields) > 9 and fields[9].isdigit() else 0
            rows.append(TcpSocket(_proc_addr(fields[1]), _proc_addr(fields[2]),
                                  _STATES.get(fields[3], fields[3]), inode))
    return rows if found else None


def _netstat_addr(text: str) -> tuple[str, int] | None:
    # macOS/BSD: 127.0.2.116.53211, *.1883, ::1.8083; Linux net-tools: 127.0.2.116:53211
    host, sep, port = text.rpartition("." if text.count(":") != 1 else ":")
    if port == "*":
        port = "0"
    if not sep or not port.isdigit():
        return None
    return host, int(port)


def parse_netstat(text: str) -> list[TcpSocket]:
    """Rows of ``netstat -an`` output (BSD/macOS or Linux net-tools)."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or not fields[0].startswith("tcp"):
            continue
        local, remote = _netstat_addr(fields[3]), _netstat_addr(fields[4])
        if local is None or remote is None:
            continue
        state = fields[5].upper()
        rows.append(TcpSocket(local, remote, "LISTEN" if state == "LISTEN" else state))
    return rows


def tcp_sockets() -> list[TcpSocket] | None:
    """The system's TCP sockets (all processes), or None where they cannot be read."""
    rows = _from_proc()
    if rows is not None:
        return rows
    cmd = ["netstat", "-an", "-p", "tcp"] if sys.platform == "darwin" else ["netstat", "-ant"]
    text = _run_text(cmd)
    return parse_netstat(text) if text else None


def socket_inodes(pid: int) -> set[int] | None:
    """The inodes of the sockets process *pid* holds (Linux), or None."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    out = set()
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    return out


def listening(wanted: Sequence[tuple[str, int]],
              pid: int | None = None) -> set[tuple[str, int]] | None:
    """Which of *wanted* are in state LISTEN — with *pid*, only sockets of that process where
    that can be told (Linux) — or None when the socket table cannot be read."""
    rows = tcp_sockets()
    if rows is None:
        return None
    mine = socket_inodes(pid) if pid is not None else None
    found = {r.local for r in rows if r.state == "LISTEN"
             and (mine is None or not r.inode or r.inode in mine)}
    return {w for w in wanted if w in found}


def _accepts(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        try:
            s.connect((host, port))
        except OSError:
            return False
        return True


# ==============================================================================================
# A running program


class RealProgram:
    """One private instance of a real program: its configuration (:attr:`config`), directory,
    process, log file, and the ``(address, port)`` pairs it must listen on.

    :meth:`start` writes the configuration, validates it with the program's own check, starts
    the process and waits until every socket listens (raising :class:`ProgramError` with the
    program's output otherwise); :meth:`stop` ends it (SIGTERM, then SIGKILL).
    """

    name: str = "program"
    config_name: str = "program.conf"

    def __init__(self, info: ProgramInfo, directory: Path, config: str,
                 listen: Sequence[tuple[str, int]], hops: Sequence[str]) -> None:
        self.info = info
        self.directory = Path(directory)
        self.config = config
        self.listen = list(listen)
        self.hops = tuple(hops)
        self.process: subprocess.Popen[bytes] | None = None
        self._final_log: str | None = None

    # -- what subclasses say -------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.directory / self.config_name

    @property
    def log_path(self) -> Path:
        """The file the program writes its log to."""
        raise NotImplementedError

    def check_command(self) -> list[str]:
        raise NotImplementedError

    def run_command(self) -> list[str]:
        raise NotImplementedError

    # -- life cycle ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config, encoding="utf-8")

    def check(self) -> None:
        """The program's own configuration test (``nginx -t`` / ``haproxy -c``)."""
        try:
            out = subprocess.run(self.check_command(), capture_output=True, text=True,
                                 timeout=30, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ProgramError(f"{self.name} -t did not finish: {exc}") from None
        if out.returncode != 0:
            raise ProgramError(f"{self.name} refuses the configuration {self.config_path}:\n"
                               f"{out.stdout}{out.stderr}")

    def start(self, timeout: float = 15.0) -> None:
        """Write, check, start, and wait until every socket listens."""
        self.write()
        self.check()
        stdout = (self.directory / "stdout.log").open("wb")
        try:
            self.process = subprocess.Popen(
                self.run_command(), stdout=stdout, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=str(self.directory), start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        finally:
            stdout.close()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Until every configured socket listens; :class:`ProgramError` if the process exits
        or *timeout* passes."""
        deadline = time.monotonic() + timeout
        todo = set(self.listen)
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ProgramError(f"{self.name} exited ({code}) while starting:\n"
                                   f"{self.logs()}")
            found = listening(sorted(todo), self.process.pid)
            if found is None:  # no socket table: connect (the program logs the probe)
                found = {w for w in todo if _accepts(*w)}
            todo -= found
            if not todo:
                return
            if time.monotonic() > deadline:
                missing = ", ".join(f"{h}:{p}" for h, p in sorted(todo))
                raise ProgramError(f"{self.name} does not listen on {missing} after "
                                   f"{timeout:g} s:\n{self.logs()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after *timeout*; the process is reaped and its log kept."""
        proc = self.process
        if proc is None:
            return
        try:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout)
        finally:
            if proc.poll() is None:  # interrupted while waiting: do not leave it running
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
            with contextlib.suppress(OSError):
                self._final_log = self.logs()

    # -- logs ----------------------------------------------------------------------------------
    def log_files(self) -> list[Path]:
        return [self.log_path, self.directory / "stdout.log"]

    def logs(self) -> str:
        """Everything the program logged so far (its log file, then anything it printed)."""
        if self._final_log is not None and not self.directory.exists():
            return self._final_log
        parts = []
        seen = set()
        for path in self.log_files():
            if path in seen or not path.exists():
                continue
            seen.add(path)
            text = path.read_text(encoding="utf-8", errors="replace")
            if text:
                parts.append(text)
        return "".join(parts)

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"<{type(self).__name__} {self.name} {self.info.version} {state} {self.hops}>"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the program gets SIGTERM when the lab's process dies (a killed kernel)."""
    import ctypes

    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class NginxDriver(RealProgram):
    """nginx for the nginx hops (``nginx-stream``, ``nginx-http``) of a topology."""

    name = "nginx"
    config_name = "nginx.conf"

    @classmethod
    def for_hops(cls, info: ProgramInfo, topology: Topology, hops: Sequence[str],
                 addresses: Mapping[str, str], ports: Mapping[str, int],
                 directory: Path) -> NginxDriver:
        """One nginx process holding every hop in *hops* (names of *topology*'s nginx hops;
        *topology* has its original addresses, *addresses* is the loopback plan, *ports* the
        listening port of every label)."""
        http: list[str] = []
        stream: list[str] = []
        listen = []
        for name in hops:
            hop = topology.hop(name)
            if not isinstance(hop, NginxStream | NginxHttp | Relay):
                raise ConfigurationError(f"{name} is not an nginx hop")
            kind, server = nginx_server(topology, name, addresses, ports)
            (http if kind == "http" else stream).append(server)
            listen.append((addresses[name], int(ports[name])))
        config = nginx_main(str(directory), http=http, stream=stream,
                            stream_module=info.stream_module)
        return cls(info, directory, config, listen, hops)

    @property
    def log_path(self) -> Path:
        return self.directory / "error.log"

    def log_files(self) -> list[Path]:
        return [self.directory / "startup.log", self.log_path, self.directory / "stdout.log"]

    def _args(self) -> list[str]:
        return ["-p", str(self.directory), "-c", str(self.config_path),
                "-e", str(self.directory / "startup.log")]

    def check_command(self) -> list[str]:
        return [self.info.path, "-t", "-q", *self._args()]

    def run_command(self) -> list[str]:
        return [self.info.path, *self._args()]


class HAProxyDriver(RealProgram):
    """HAProxy for the HAProxy hops of a topology."""

    name = "haproxy"
    config_name = "haproxy.cfg"

    @classmethod
    def for_hops(cls, info: ProgramInfo, topology: Topology, hops: Sequence[str],
                 addresses: Mapping[str, str], ports: Mapping[str, int],
                 directory: Path) -> HAProxyDriver:
        """One HAProxy process holding every hop in *hops* (see :meth:`NginxDriver.for_hops`)."""
        sections = []
        listen = []
        for name in hops:
            if not isinstance(topology.hop(name), HAProxy):
                raise ConfigurationError(f"{name} is not an HAProxy hop")
            sections.append(haproxy_sections(topology, name, addresses, ports))
            listen.append((addresses[name], int(ports[name])))
        return cls(info, directory, haproxy_main(str(directory), sections), listen, hops)

    @property
    def log_path(self) -> Path:
        return self.directory / "stdout.log"

    def check_command(self) -> list[str]:
        return [self.info.path, "-c", "-f", str(self.config_path)]

    def run_command(self) -> list[str]:
        return [self.info.path, "-db", "-f", str(self.config_path)]
