"""Building simulator hops from real configuration files: ``nginx.conf`` (parsed with NGINX's own
Python parser, crossplane) and ``haproxy.cfg`` (the directives the simulator models).

Nothing is dropped silently: every directive the simulator does not model is named in
:attr:`Imported.warnings`, so a learner pasting a configuration sees what the prediction does
not take into account.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from .errors import ConfigurationError
from .programs.base import Imported
from .programs.haproxy.config import from_haproxy_cfg
from .programs.nginx.config import from_nginx_conf
from .topology import Broker, Client, Hop, Topology

__all__ = ["Imported", "chain", "from_haproxy_cfg", "from_nginx_conf", "read_config"]


# ----------------------------------------------------------------------------------------------


_HAPROXY_SECTION = re.compile(r"^(frontend|backend|listen|defaults|global)\b[^{\n]*$", re.M)
_NGINX_BLOCK = re.compile(r"^\s*(http|stream|events|server|upstream)\s*\{", re.M)


def read_config(text: str, *, filename: str, name: str, addr: str,
                source_port: int = 40000) -> Imported:
    """An ``nginx.conf`` or a ``haproxy.cfg``, told apart by nginx's ``http {``/``stream {``
    blocks and HAProxy's section keywords at the start of a line."""
    if not _NGINX_BLOCK.search(text) and _HAPROXY_SECTION.search(text):
        return from_haproxy_cfg(text, name=name, addr=addr, source_port=source_port,
                                filename=filename)
    return from_nginx_conf(text, filename=filename, name=name, addr=addr,
                           source_port=source_port)


def _split(upstream: str) -> tuple[str, int | None]:
    host, _, port = upstream.rpartition(":")
    if not host or not port.isdigit():  # no port ("unix:…" or a bare host)
        return upstream, None
    return host.strip("[]"), int(port)


def _inner(imported: Imported, start: int) -> list[int]:
    """Hop *start* and the hops of the same file its traffic goes through next (an upstream on
    this host — loopback, no host or the host's own address — whose port another hop of the
    file listens on)."""
    path = [start]
    while True:
        host, port = _split(imported.upstreams[path[-1]])
        own = {"", "127.0.0.1", "::1", "localhost", imported.hops[path[-1]].addr}
        nxt = [i for i, h in enumerate(imported.hops)
               if i not in path and host in own and h.port == port]
        if len(nxt) != 1:
            return path
        path.append(nxt[0])


def chain(client: Client, configs: Sequence[Imported], broker: Broker, *,
          name: str = "imported", ports: Sequence[int | None] | None = None) -> Topology:
    """A topology from hops read from configuration files, in order.  In each file the hop the
    traffic enters is the one listening on the port the previous file sends to (for the first
    file: the only one no other hop of the file feeds, or ``ports[0]``); from there it follows
    the file's own hops while one sends to another on the same host.  Each hop after the first
    takes its address from where the previous one sends (``upstream``/``server`` line), and so
    does the broker.  When the entry is ambiguous or missing, :class:`ConfigurationError` says
    which ports were found — realip does not guess."""
    hops: list[Hop] = []
    prev: tuple[str, int | None] | None = None
    for k, imported in enumerate(configs):
        want = ports[k] if ports is not None and k < len(ports) else None
        if want is None and prev is not None:
            want = prev[1]
        fed = {j for i in range(len(imported.hops)) for j in _inner(imported, i)[1:]}
        if want is not None:
            candidates = [i for i, h in enumerate(imported.hops) if h.port == want]
        else:
            candidates = [i for i in range(len(imported.hops)) if i not in fed]
        listening = ", ".join(str(h.port) for h in imported.hops)
        if not candidates:
            raise ConfigurationError(
                f"configuration {k + 1}: no server listens on port {want} (the previous hop "
                f"sends there); it listens on {listening}")
        if len(candidates) > 1:
            raise ConfigurationError(
                f"configuration {k + 1}: traffic could enter on any of ports {listening}; "
                "say which with ports=[…] (one entry port per configuration)")
        for j, i in enumerate(_inner(imported, candidates[0])):
            hop = imported.hops[i]
            if j == 0 and prev is not None:
                hop = replace(hop, addr=prev[0] or hop.addr)
            hops.append(hop)
            prev = _split(imported.upstreams[i])
    if prev is not None:
        broker = replace(broker, addr=prev[0], port=prev[1] if prev[1] else broker.port)
    taken: set[str] = set()
    for i, hop in enumerate(hops):  # names stay unique across files
        if hop.name in taken:
            hops[i] = replace(hop, name=f"{hop.name}-{i + 1}")
        taken.add(hops[i].name)
    return Topology(name=name, client=client, hops=tuple(hops), broker=broker)
