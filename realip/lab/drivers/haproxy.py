"""The real HAProxy for the live lab's HAProxy hops (Debian's ``haproxy``): checked with ``haproxy
-c -f DIR/haproxy.cfg``, run with ``haproxy -db -f DIR/haproxy.cfg``; ``log stdout format raw``
lines go to ``DIR/stdout.log``; every HAProxy hop is one ``frontend``/``backend`` pair of the same
process."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...errors import ConfigurationError
from ...programs import hop_kind
from ...render import TLS_DIR, haproxy_main, haproxy_sections
from ...topology import Topology
from . import base
from .base import PACKAGES, TLS_LOG_MARK, ProgramInfo, RealProgram, run_text, which

__all__ = ["HAProxyDriver", "find_haproxy"]

PACKAGES["haproxy"] = "haproxy"


def find_haproxy(*, refresh: bool = False) -> ProgramInfo | None:
    """HAProxy, or None."""
    if "haproxy" in base._CACHE and not refresh:
        return base._CACHE["haproxy"]
    info = None
    path = which("haproxy")
    if path is not None:
        m = re.search(r"version (\d[\w.]*)", run_text([path, "-v"]))
        info = ProgramInfo("haproxy", path, m.group(1) if m else "unknown")
    base._CACHE["haproxy"] = info
    return info


class HAProxyDriver(RealProgram):
    """HAProxy for the HAProxy hops of a topology."""

    name = "haproxy"
    config_name = "haproxy.cfg"

    @classmethod
    def for_hops(cls, info: ProgramInfo, topology: Topology, hops: Sequence[str],
                 addresses: Mapping[str, str], ports: Mapping[str, int],
                 directory: Path, *, tls_dir: str | None = None) -> HAProxyDriver:
        """One HAProxy process holding every hop in *hops* (see :meth:`NginxDriver.for_hops`)."""
        sections = []
        listen = []
        for name in hops:
            if hop_kind(topology.hop(name)).program != "haproxy":
                raise ConfigurationError(f"{name} is not an HAProxy hop")
            text = haproxy_sections(topology, name, addresses, ports,
                                    tls_dir=tls_dir or TLS_DIR)
            if getattr(topology.hop(name), "bind_ssl", False):
                # the lab's own log line per connection: the SNI and client CN HAProxy saw
                fmt = (f'    log-format "{TLS_LOG_MARK} %ci:%cp %sslv sni=%[ssl_fc_sni] '
                       'cn=%[ssl_c_s_dn(cn)]"\n')
                for opt in ("    option tcplog\n", "    option httplog\n"):
                    text = text.replace(opt, opt + fmt, 1)
            sections.append(text)
            listen.append((addresses[name], int(ports[name])))
        return cls(info, directory, haproxy_main(str(directory), sections), listen, hops)

    @property
    def log_path(self) -> Path:
        return self.directory / "stdout.log"

    @property
    def tls_log_path(self) -> Path:
        return self.log_path

    def check_command(self) -> list[str]:
        return [self.info.path, "-c", "-f", str(self.config_path)]

    def run_command(self) -> list[str]:
        return [self.info.path, "-db", "-f", str(self.config_path)]
