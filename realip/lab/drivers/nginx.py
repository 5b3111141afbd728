"""The real nginx for the live lab's nginx hops (Debian's ``nginx`` with ``libnginx-mod-stream``):
``nginx -p DIR -c DIR/nginx.conf -e DIR/startup.log``, ``daemon off; master_process off;``, the
stream module loaded by absolute path when the binary was not built with it; every nginx hop of a
topology is one ``server`` block of the same process."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import ConfigurationError
from ...programs import hop_kind
from ...render import NGINX_STREAM_MODULE, TLS_DIR, nginx_main, nginx_server
from ...topology import Topology
from . import base
from .base import PACKAGES, TLS_LOG_MARK, ProgramInfo, RealProgram, run_text, which

__all__ = ["NginxDriver", "find_nginx"]

PACKAGES["nginx"] = "nginx libnginx-mod-stream"


def find_nginx(*, refresh: bool = False) -> ProgramInfo | None:
    """nginx with a usable stream module (built in, or Debian's ``libnginx-mod-stream`` at
    :data:`~realip.render.NGINX_STREAM_MODULE`), or None."""
    if "nginx" in base._CACHE and not refresh:
        return base._CACHE["nginx"]
    info = None
    path = which("nginx")
    if path is not None:
        build = run_text([path, "-V"])
        m = re.search(r"nginx/(\d[\w.]*)", build)
        module: str | None = None
        usable = True
        if "--with-stream=dynamic" in build or "--with-stream" not in build:
            usable = Path(NGINX_STREAM_MODULE).exists()
            module = NGINX_STREAM_MODULE if usable else None
        if usable:
            info = ProgramInfo("nginx", path, m.group(1) if m else "unknown", module)
    base._CACHE["nginx"] = info
    return info


def missing_detail() -> str:
    """Why nginx counts as missing although a binary is there (no stream module)."""
    if which("nginx") is not None:
        return (f"nginx is installed but its stream module is not "
                f"({NGINX_STREAM_MODULE} is missing)")
    return ""


class NginxDriver(RealProgram):
    """nginx for the nginx hops (``nginx-stream``, ``nginx-http``) of a topology."""

    name = "nginx"
    config_name = "nginx.conf"

    @classmethod
    def for_hops(cls, info: ProgramInfo, topology: Topology, hops: Sequence[str],
                 addresses: Mapping[str, str], ports: Mapping[str, int],
                 directory: Path, *, tls_dir: str | None = None) -> NginxDriver:
        """One nginx process holding every hop in *hops* (names of *topology*'s nginx hops;
        *topology* has its original addresses, *addresses* is the loopback plan, *ports* the
        listening port of every label; *tls_dir* the TLS files' directory)."""
        http: list[str] = []
        stream: list[str] = []
        listen = []
        logs: set[str] = set()
        for name in hops:
            hop = topology.hop(name)
            if hop_kind(hop).program not in ("nginx", "relay"):
                raise ConfigurationError(f"{name} is not an nginx hop")
            kind, server = nginx_server(topology, name, addresses, ports,
                                        tls_dir=tls_dir or TLS_DIR)
            if getattr(hop, "listen_ssl", False):
                # the lab's own access log: the SNI and client certificate nginx saw
                cut = server.rindex("\n}")
                server = (f"{server[:cut]}\n    access_log {directory}/tls.log realip_tls;"
                          f"{server[cut:]}")
                logs.add(kind)
            (http if kind == "http" else stream).append(server)
            listen.append((addresses[name], int(ports[name])))
        fmt = (f"log_format realip_tls '{TLS_LOG_MARK} $remote_addr:$remote_port $ssl_protocol "
               "sni=$ssl_server_name cn=$ssl_client_s_dn';")
        http = [fmt, *http] if "http" in logs else http
        stream = [fmt, *stream] if "stream" in logs else stream
        config = nginx_main(str(directory), http=http, stream=stream,
                            stream_module=info.stream_module)
        return cls(info, directory, config, listen, hops)

    @property
    def log_path(self) -> Path:
        return self.directory / "error.log"

    @property
    def tls_log_path(self) -> Path:
        return self.directory / "tls.log"

    def log_files(self) -> list[Path]:
        return [self.directory / "startup.log", self.log_path, self.directory / "stdout.log"]

    def _args(self) -> list[str]:
        return ["-p", str(self.directory), "-c", str(self.config_path),
                "-e", str(self.directory / "startup.log")]

    def check_command(self) -> list[str]:
        return [self.info.path, "-t", "-q", *self._args()]

    def run_command(self) -> list[str]:
        return [self.info.path, *self._args()]


