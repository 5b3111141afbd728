"""What every real program of the live lab shares: finding it (:class:`ProgramInfo`), running it
privately in the foreground out of its own directory (:class:`RealProgram`: write the
configuration, check it with the program's own check, start, wait until every socket listens,
stop by PID, collect the logs), and the system's TCP socket table (:func:`tcp_sockets`)."""

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
from typing import Any

from ...errors import ConfigurationError, RealIPError

__all__ = [
    "PACKAGES",
    "ProgramError",
    "ProgramInfo",
    "ProgramMissing",
    "RealProgram",
    "TcpSocket",
    "tcp_sockets",
]

#: The Debian/Ubuntu packages each program comes from (``apt.txt`` lists them all); each
#: program's driver module adds its entry.
PACKAGES: dict[str, str] = {}


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


def which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/bin", "/usr/local/bin"):
        path = Path(d) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def run_text(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout + out.stderr


#: What the finders found (``refresh=True`` looks again).
_CACHE: dict[str, ProgramInfo | None] = {}


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
    text = run_text(cmd)
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

    @classmethod
    def for_hops(cls, info: ProgramInfo, topology: Any, hops: Sequence[str],
                 addresses: Mapping[str, str], ports: Mapping[str, int],
                 directory: Path, *, tls_dir: str | None = None) -> RealProgram:
        """One process holding every hop in *hops* (names of *topology*'s hops this program
        runs; *topology* has its original addresses, *addresses* is the loopback plan, *ports*
        the listening port of every label; *tls_dir* the directory holding the TLS files the
        configuration names, see :data:`realip.render.TLS_DIR`).  Each program's driver writes
        its own files."""
        raise NotImplementedError(f"{cls.__name__} does not run hops")

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

    # -- TLS facts -----------------------------------------------------------------------------
    @property
    def tls_log_path(self) -> Path | None:
        """Where the program logs a ``realip-tls`` line per TLS connection it terminated
        (:data:`TLS_LOG_MARK`), None when it keeps none."""
        return None

    def tls_record(self, client: str, timeout: float = 1.0) -> tuple[str | None, str | None] | None:
        """``(SNI, client certificate CN)`` the program logged for the TLS connection from
        *client* (``ip:port``; None for a field it logged empty), waiting up to *timeout*
        for the line — nginx and HAProxy write it when the connection ends; None if none."""
        path = self.tls_log_path
        if path is None:
            return None
        pattern = re.compile(rf"{TLS_LOG_MARK} {re.escape(client)} \S+ sni=(\S*) cn=(.*)$",
                             re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            text = path.read_text("utf-8", "replace") if path.exists() else ""
            found = pattern.findall(text)
            if found:
                sni, cn = found[-1]
                m = re.search(r"(?:^|,)CN=((?:[^,\\]|\\.)*)", cn)  # nginx: the subject DN
                cn = m.group(1) if m else cn
                return (None if sni in ("", "-") else sni,
                        None if cn.strip() in ("", "-") else cn.strip())
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"<{type(self).__name__} {self.name} {self.info.version} {state} {self.hops}>"


#: The first word of the access-log lines the lab adds to a TLS-terminating hop's configuration
#: (``realip-tls <client ip:port> <protocol> sni=<SNI> cn=<client CN or subject DN>``).
TLS_LOG_MARK = "realip-tls"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the program gets SIGTERM when the lab's process dies (a killed kernel)."""
    import ctypes

    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
