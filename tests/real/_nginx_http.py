"""A private nginx (http realip) for the differential tests of :func:`realip.resolve.nginx_realip`.

One nginx process (``daemon off; master_process off;``) runs in its own directory with one
``http`` block holding one ``server`` per realip configuration.  Every server answers ``GET /``
with the values of :data:`VARIABLES`, one per line between ``BEGIN`` and ``END``: nginx never
stores a CR or LF inside a header value, so a newline-separated body is escape-proof and an empty
value is an empty line.

Clients are raw sockets bound to a chosen loopback source address (any ``127.x.y.z`` on Linux,
``::1``, an unnamed or named UNIX socket), so the test knows exactly which peer nginx sees and
which header bytes it received.  Nothing here listens on or connects to a non-loopback address.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._programs import free_port, stop_process

#: What every server prints, in this order.
VARIABLES: tuple[str, ...] = (
    "remote_addr",
    "remote_port",
    "realip_remote_addr",
    "realip_remote_port",
    "proxy_add_x_forwarded_for",
    "http_x_forwarded_for",
    "http_x_real_ip",
    "http_x_client_ip",
    "proxy_protocol_addr",
    "proxy_protocol_port",
)

V4 = "127.0.0.1"
V6 = "::1"
MAPPED = "::ffff:127.0.0.1"


def nginx_binary() -> str | None:
    """Path of an nginx with the http realip module, or None."""
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                     else None)
    if path is None:
        return None
    out = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10)
    if "--with-http_realip_module" not in out.stdout + out.stderr:
        return None
    return path


def nginx_version(path: str) -> tuple[int, int, int]:
    out = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    if not m:
        raise RuntimeError(f"cannot read the nginx version: {out.stderr!r}")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def ipv6_loopback() -> bool:
    """Whether ``::1`` can be bound here (containers sometimes have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind((V6, 0))
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class ServerConf:
    """One ``server`` block: its realip directives and which extra listeners it has.

    ``real_ip_header``/``recursive`` None = the directive is left out (nginx's defaults,
    ``X-Real-IP`` and ``off``).  Every server listens on ``127.0.0.1``; ``v6`` adds ``[::1]``,
    ``mapped`` adds ``[::ffff:127.0.0.1] ipv6only=off`` (IPv4 clients then appear as
    ``::ffff:127.x.y.z``), ``unix`` adds a UNIX socket; ``proxy_protocol`` puts
    ``proxy_protocol`` on the IPv4 listener (clients then send a PROXY v1 line first).
    """

    name: str
    set_real_ip_from: tuple[str, ...]
    real_ip_header: str | None = None
    recursive: bool | None = None
    v6: bool = False
    mapped: bool = False
    unix: bool = False
    proxy_protocol: bool = False

    @property
    def header(self) -> str:
        return "X-Real-IP" if self.real_ip_header is None else self.real_ip_header

    @property
    def is_recursive(self) -> bool:
        return bool(self.recursive)

    def directives(self) -> str:
        lines = [f"set_real_ip_from {e};" for e in self.set_real_ip_from]
        if self.real_ip_header is not None:
            lines.append(f"real_ip_header {self.real_ip_header};")
        if self.recursive is not None:
            lines.append(f"real_ip_recursive {'on' if self.recursive else 'off'};")
        return "\n        ".join(lines)


@dataclass(frozen=True)
class Reply:
    """One request's outcome: the HTTP status, nginx's variables (only for 200), and the peer
    address/port as the client socket saw itself (what nginx sees as the TCP peer)."""

    status: int
    variables: dict[str, str]
    peer: str
    peer_port: int | None
    raw: bytes


@dataclass
class Listener:
    kind: str  # "v4" | "v6" | "mapped" | "unix"
    address: str | tuple[str, int]


@dataclass
class NginxHTTP:
    """The running nginx: process, directory, listeners per server name."""

    binary: str
    directory: Path
    servers: dict[str, ServerConf]
    proc: subprocess.Popen[bytes] | None = None
    listeners: dict[str, dict[str, Listener]] = field(default_factory=dict)
    version: tuple[int, int, int] = (0, 0, 0)

    # -- life cycle -------------------------------------------------------------------------

    def config(self) -> str:
        d = self.directory
        body = "BEGIN\\n" + "".join(f"${v}\\n" for v in VARIABLES) + "END\\n"
        blocks = []
        for name, conf in self.servers.items():
            listen = []
            for kind, lst in self.listeners[name].items():
                if kind == "unix":
                    listen.append(f"listen unix:{lst.address};")
                elif kind == "mapped":
                    assert isinstance(lst.address, tuple)
                    listen.append(f"listen [{MAPPED}]:{lst.address[1]} ipv6only=off;")
                elif kind == "v6":
                    assert isinstance(lst.address, tuple)
                    listen.append(f"listen [{V6}]:{lst.address[1]};")
                else:
                    assert isinstance(lst.address, tuple)
                    pp = " proxy_protocol" if conf.proxy_protocol else ""
                    listen.append(f"listen {V4}:{lst.address[1]}{pp};")
            blocks.append(f"""
    # {name}
    server {{
        {' '.join(listen)}
        server_name _;
        {conf.directives()}
        location / {{
            return 200 "{body}";
        }}
    }}""")
        return f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp/client_body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type text/plain;
    keepalive_requests 1000;
{''.join(blocks)}
}}
"""

    def _assign(self, with_v6: bool) -> None:
        self.listeners = {}
        for i, (name, conf) in enumerate(self.servers.items()):
            lst = {"v4": Listener("v4", (V4, free_port(V4)))}
            if conf.v6 and with_v6:
                lst["v6"] = Listener("v6", (V6, free_port(V6)))
            if conf.mapped and with_v6:
                lst["mapped"] = Listener("mapped", (V4, free_port(V4)))
            if conf.unix:
                lst["unix"] = Listener("unix", str(self.directory / f"s{i}.sock"))
            self.listeners[name] = lst

    def start(self, with_v6: bool = True, attempts: int = 3) -> None:
        self.version = nginx_version(self.binary)
        d = self.directory
        for sub in ("logs", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(attempts):
            self._assign(with_v6)
            for lst in self._all_listeners():
                if lst.kind == "unix":
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(str(lst.address))
            (d / "nginx.conf").write_text(self.config())
            stderr = (d / "logs" / "stderr.log").open("wb")
            self.proc = subprocess.Popen(
                [self.binary, "-p", str(d), "-c", str(d / "nginx.conf"),
                 "-e", str(d / "logs" / "startup.log")],
                stdout=stderr, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            stderr.close()
            try:
                self._wait_ready()
                return
            except RuntimeError as e:  # most likely a port taken in between: try new ports
                last_error = str(e)
                self.stop()
        raise RuntimeError(f"nginx did not start:\n{last_error}")

    def _all_listeners(self) -> list[Listener]:
        return [lst for per in self.listeners.values() for lst in per.values()]

    def _wait_ready(self, timeout: float = 10.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        pending = self._all_listeners()
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n"
                                   f"{self.startup_log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx is not listening after {timeout}s:\n"
                                   f"{self.startup_log()}")
            lst = pending[0]
            try:
                with _connect(lst, None, 0.2):
                    pending.pop(0)
            except OSError:
                time.sleep(0.05)

    def startup_log(self) -> str:
        """Everything nginx said while starting (config warnings land here)."""
        out = []
        for name in ("stderr.log", "startup.log", "error.log"):
            p = self.directory / "logs" / name
            if p.exists():
                out.append(p.read_text(errors="replace"))
        return "".join(out)

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None

    # -- requests ---------------------------------------------------------------------------

    def has(self, server: str, via: str) -> bool:
        return via in self.listeners[server]

    def request(self, server: str, header_lines: Sequence[bytes], *, source: str = V4,
                via: str = "v4", timeout: float = 5.0, prefix: bytes = b"") -> Reply:
        """One ``GET /`` on a fresh connection from *source* (an address for ``v4``/``v6``/
        ``mapped``; for ``unix`` a path to bind the client socket to, or ``""`` for an unnamed
        one) with exactly *header_lines* (raw, without CRLF) after ``Host``, then
        ``Connection: close``; *prefix* (a PROXY line) goes first."""
        return self.requests(server, [header_lines], source=source, via=via,
                             timeout=timeout, prefix=prefix)[0]

    def requests(self, server: str, requests: Sequence[Sequence[bytes]], *, source: str = V4,
                 via: str = "v4", timeout: float = 5.0, prefix: bytes = b"") -> list[Reply]:
        """Several requests on one keep-alive connection (the last says ``Connection: close``)."""
        lst = self.listeners[server][via]
        data = prefix
        for i, lines in enumerate(requests):
            last = i == len(requests) - 1
            data += build_request(lines, close=last)
        with _connect_retrying(lst, source, timeout) as s:
            if lst.kind == "unix":
                name = s.getsockname()
                peer = f"unix:{name}" if name else "unix:"
                port: int | None = None
            else:
                host, port = s.getsockname()[:2]
                peer = "::ffff:" + host if lst.kind == "mapped" else host
            s.sendall(data)
            raw = _read_all(s)
        replies = []
        rest = raw
        for _ in requests:
            status, body, rest = _split_response(rest)
            replies.append(Reply(status, parse_body(body) if status == 200 else {}, peer, port,
                                 body))
        if rest:
            raise AssertionError(f"unexpected trailing bytes from nginx: {rest!r}")
        return replies


def build_request(lines: Sequence[bytes], *, close: bool = True) -> bytes:
    out = b"GET / HTTP/1.1\r\nHost: realip.test\r\n"
    for line in lines:
        if b"\r" in line or b"\n" in line:
            raise ValueError(f"a header line cannot hold CR/LF: {line!r}")
        out += line + b"\r\n"
    if close:
        out += b"Connection: close\r\n"
    return out + b"\r\n"


def stored(lines: Sequence[bytes]) -> list[tuple[str, str]]:
    """The header lines as nginx stores them: name as sent, value without the spaces around it
    (nginx 1.22 skips only spaces, not tabs), bytes read as Latin-1.  ``Host`` first, as sent."""
    out = [("Host", "realip.test")]
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            raise ValueError(f"not a header line: {line!r}")
        out.append((name.decode("latin-1"), value.strip(b" ").decode("latin-1")))
    return out


def parse_body(body: bytes) -> dict[str, str]:
    parts = body.split(b"\n")
    if len(parts) != len(VARIABLES) + 3 or parts[0] != b"BEGIN" or parts[-2:] != [b"END", b""]:
        raise AssertionError(f"unexpected body from nginx: {body!r}")
    return {k: v.decode("latin-1") for k, v in zip(VARIABLES, parts[1:-2], strict=True)}


def _split_response(raw: bytes) -> tuple[int, bytes, bytes]:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"incomplete response from nginx: {raw!r}")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    length = None
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if length is None:
        return status, rest, b""
    return status, rest[:length], rest[length:]


def _read_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        d = s.recv(65536)
        if not d:
            return b"".join(chunks)
        chunks.append(d)


def _connect_retrying(lst: Listener, source: str | None, timeout: float,
                      attempts: int = 3) -> socket.socket:
    """:func:`_connect`, trying again on a refused connection: after thousands of
    connections from one source address the kernel can pick a source port whose 4-tuple nginx
    still holds in TIME-WAIT (nginx closes first), and the SYN is then answered with a reset."""
    for i in range(attempts):
        try:
            return _connect(lst, source, timeout)
        except ConnectionRefusedError:
            if i == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _connect(lst: Listener, source: str | None, timeout: float) -> socket.socket:
    if lst.kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            if source:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(source)
                s.bind(source)
            s.connect(str(lst.address))
        except OSError:
            s.close()
            raise
        return s
    assert isinstance(lst.address, tuple)
    host, port = lst.address
    fam = socket.AF_INET6 if lst.kind == "v6" else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if source is not None:
            s.bind((source, 0))
        s.connect((host, port))
    except OSError:
        s.close()
        raise
    return s
