"""Run nginx and HAProxy privately for the tests: own directory, foreground, loopback only.

Every process started here is registered with the caller's finaliser and killed by its pid; the
programs write their logs into the private directory, where the tests read them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def nginx_binary() -> str | None:
    """Path of nginx with a loadable stream module, or None."""
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)
    if path is None:
        return None
    if not NGINX_STREAM_MODULE.exists() and "--with-stream" not in _nginx_build(path):
        return None
    return path


def _nginx_build(path: str) -> str:
    out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10)
    return out.stdout + out.stderr


def haproxy_binary() -> str | None:
    """Path of haproxy, or None."""
    return shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists()
                                       else None)


def program_version(path: str, kind: str) -> str:
    """``"1.22.1"`` / ``"2.6.12"``: the version the binary reports."""
    if kind == "nginx":
        text = _nginx_build(path)
        m = re.search(r"nginx/(\S+)", text)
    else:
        out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
        m = re.search(r"version (\d[\w.]*)", out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM *proc*, then SIGKILL if it has not exited within 5 s."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on *host* right now."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0,
                   log: Path | None = None) -> None:
    """Wait until something accepts on host:port (or fail with the program's output)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace") if log and log.exists() else ""
            raise RuntimeError(f"program exited with {proc.returncode}:\n{text}")
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            try:
                s.connect((host, port))
                return
            except OSError:
                time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class Running:
    """A started program: its process, private directory and log file."""

    proc: subprocess.Popen[bytes]
    directory: Path
    log: Path
    ports: dict[str, int] = field(default_factory=dict)

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int) -> bytes:
        with self.log.open("rb") as f:
            f.seek(offset)
            return f.read()

    def settle(self, quiet: float = 0.2, timeout: float = 3.0) -> None:
        """Wait until the log stopped growing for *quiet* seconds (the readiness probes'
        connections are logged asynchronously)."""
        deadline = time.monotonic() + timeout
        size = self.log_size()
        still = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.log_size()
            if now != size:
                size, still = now, time.monotonic()
            elif time.monotonic() - still >= quiet:
                return

    def stop(self) -> None:
        stop_process(self.proc)


def start_nginx(binary: str, directory: Path, stream_servers: str,
                wait_on: list[tuple[str, int]]) -> Running:
    """Start nginx in the foreground (single process) with *stream_servers* inside ``stream``."""
    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "tmp"):
        (directory / sub).mkdir(exist_ok=True)
    log = directory / "logs" / "error.log"
    load = f"load_module {NGINX_STREAM_MODULE};" if NGINX_STREAM_MODULE.exists() else ""
    conf = f"""{load}
daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {log} info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {directory}/tmp/body;
    proxy_temp_path {directory}/tmp/proxy;
    fastcgi_temp_path {directory}/tmp/fastcgi;
    uwsgi_temp_path {directory}/tmp/uwsgi;
    scgi_temp_path {directory}/tmp/scgi;
}}
stream {{
{stream_servers}
}}
"""
    (directory / "nginx.conf").write_text(conf)
    out = (directory / "logs" / "stdout.log").open("wb")
    proc = subprocess.Popen(
        [binary, "-e", str(directory / "logs" / "startup.log"), "-p", str(directory),
         "-c", str(directory / "nginx.conf")],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    out.close()
    running = Running(proc, directory, log)
    try:
        for host, port in wait_on:
            wait_listening(host, port, proc, log=directory / "logs" / "stdout.log")
    except Exception:
        running.stop()
        raise
    running.settle()
    return running


def start_haproxy(binary: str, directory: Path, sections: str,
                  wait_on: list[tuple[str, int]]) -> Running:
    """Start HAProxy in the foreground (``-db``), logging raw lines to its stdout (a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "haproxy.log"
    cfg = f"""global
    log stdout format raw local0 debug
    nbthread 1
defaults
    log global
    timeout connect 2s
    timeout client 1s
    timeout server 2s
{sections}
"""
    path = directory / "haproxy.cfg"
    path.write_text(cfg)
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True,
                           timeout=20)
    if check.returncode != 0:
        raise RuntimeError(f"haproxy -c failed:\n{check.stdout}{check.stderr}")
    out = log.open("wb")
    proc = subprocess.Popen([binary, "-db", "-f", str(path)], stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out.close()
    running = Running(proc, directory, log)
    try:
        for host, port in wait_on:
            wait_listening(host, port, proc, log=log)
    except Exception:
        running.stop()
        raise
    running.settle()
    return running


# -- client and capture backend ------------------------------------------------------------------


@dataclass
class Exchange:
    """What a client saw: the bytes it got back, whether the peer reset, its own address."""

    response: bytes
    reset: bool
    local: tuple[str, int]
    elapsed: float


def exchange(host: str, port: int, writes: tuple[bytes, ...], *, pause: float = 0.25,
             source: str | None = None, timeout: float = 4.0,
             after: bytes | None = None, half_close: bool = False) -> Exchange:
    """Connect, send each write (pausing between them), optionally send *after* following a
    pause, optionally shut down the sending side, and read until the server closes."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    start = time.monotonic()
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            s.bind((source, 0))
        s.settimeout(timeout)
        s.connect((host, port))
        local = s.getsockname()[:2]
        for i, w in enumerate(writes):
            if i:
                time.sleep(pause)
            try:
                s.sendall(w)
            except OSError:
                break
        if after is not None:
            time.sleep(pause)
            with contextlib.suppress(OSError):
                s.sendall(after)
        if half_close:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_WR)
        chunks: list[bytes] = []
        reset = False
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                reset = True
                break
            except TimeoutError:
                break
            if not d:
                break
            chunks.append(d)
        return Exchange(b"".join(chunks), reset, (str(local[0]), int(local[1])),
                        time.monotonic() - start)
    finally:
        s.close()


class CaptureServer:
    """A plain TCP server on a loopback address that records every connection's bytes."""

    def __init__(self, host: str = "127.0.0.3", idle: float = 1.5) -> None:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(32)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.idle = idle
        self.captures: list[tuple[tuple[str, int], bytes]] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn, peer), daemon=True).start()

    def _read(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        conn.settimeout(self.idle)
        chunks: list[bytes] = []
        try:
            while True:
                d = conn.recv(65536)
                if not d:
                    break
                chunks.append(d)
        except OSError:
            pass
        finally:
            conn.close()
        with self._cond:
            self.captures.append(((str(peer[0]), int(peer[1])), b"".join(chunks)))
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[tuple[tuple[str, int], bytes]]:
        """Block until *count* connections were recorded; return all recorded so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.captures) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.captures)} of {count} captures on "
                                       f"{self.host}:{self.port}")
                self._cond.wait(left)
            return list(self.captures)

    def clear(self) -> None:
        with self._cond:
            self.captures.clear()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.close()
        self._thread.join(timeout=2)


@contextlib.contextmanager
def capture_server(host: str = "127.0.0.3") -> Iterator[CaptureServer]:
    server = CaptureServer(host)
    try:
        yield server
    finally:
        server.close()


def proxied_scenarios() -> list[Any]:
    """The scenarios of data/topologies/ that have at least one nginx or HAProxy hop and run on
    loopback (IPv6 ones run in a private network namespace: test_ipv6_lab_real.py).  TLS
    scenarios are not among them: the lab cannot terminate TLS yet (issue 12 is open; their
    simulated behaviour is checked in tests/test_tls.py)."""
    from realip.render import needs_netns, needs_tls
    from realip.topology import HAProxy, NginxHttp, NginxStream, load

    root = Path(__file__).resolve().parents[2] / "data" / "topologies"
    out = []
    for path in sorted(root.glob("*.yaml")):
        topo = load(str(path))
        # a Relay runs as a plain nginx stream server; relay-only chains test nothing real
        if any(isinstance(h, NginxStream | NginxHttp | HAProxy) for h in topo.hops) and \
                not needs_netns(topo) and not needs_tls(topo):
            out.append(topo)
    return out
