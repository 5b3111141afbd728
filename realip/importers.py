"""Building simulator hops from real configuration files: ``nginx.conf`` (parsed with NGINX's own
Python parser, crossplane) and ``haproxy.cfg`` (the directives the simulator models).

Nothing is dropped silently: every directive the simulator does not model is named in
:attr:`Imported.warnings`, so a learner pasting a configuration sees what the prediction does
not take into account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .programs.base import Imported
from .programs.haproxy.config import from_haproxy_cfg
from .programs.nginx.config import from_nginx_conf
from .topology import Broker, Client, Hop, Topology

__all__ = ["Imported", "chain", "from_haproxy_cfg", "from_nginx_conf"]


# ----------------------------------------------------------------------------------------------


def chain(client: Client, configs: Sequence[Imported], broker: Broker, *,
          name: str = "imported") -> Topology:
    """A topology from hops read from configuration files, in order.  Each hop after the first
    takes its address and port from where the previous one sends its traffic (the file's
    ``upstream``/``server`` line), and so does the broker."""
    hops: list[Hop] = []
    for k, imported in enumerate(configs):
        hop = imported.hops[0]
        if k > 0:
            host, _, port = configs[k - 1].upstreams[0].rpartition(":")
            hop = replace(hop, addr=host or hop.addr, port=int(port) if port else hop.port)
        hops.append(hop)
    if configs:
        host, _, port = configs[-1].upstreams[0].rpartition(":")
        broker = replace(broker, addr=host, port=int(port) if port else broker.port)
    return Topology(name=name, client=client, hops=tuple(hops), broker=broker)
