"""Real configuration files for the hops of a :class:`~realip.topology.Topology`, on loopback.

The scenarios in ``data/topologies/`` name hosts by their article addresses (``172.16.0.116``,
``115.236.21.86`` …), which are labels only: nothing may be sent to them.  To run a scenario with
the real programs every host label is mapped to a loopback address (any ``127.x.y.z`` works on
Linux without setup) and, optionally, every listening port to a free one:

* :func:`loopback_plan` — the deterministic label → address map.  Each original ``/24`` gets its
  own loopback ``/24`` in order of appearance (client first, then the hops, then the broker) and
  every host keeps its last octet: the article's client ``115.236.21.86`` becomes
  ``127.0.1.86``, the LAN ``172.16.0.0/24`` (LBs and EMQX) ``127.0.2.0/24`` — ``172.16.0.116``
  is ``127.0.2.116``.  So a trust range of ``/24`` or narrower maps to exactly the same hosts.  A
  hop's ``<name>.public`` label maps to the hop's own address: loopback has no NAT, the client
  dials the address the hop listens on.
* :func:`topology_on` — the same topology with every address (and the given ports) replaced, so
  :func:`~realip.topology.simulate` predicts the loopback run byte for byte.
* :func:`nginx_conf` / :func:`haproxy_cfg` — one program's whole configuration for one hop;
  :func:`nginx_server` / :func:`haproxy_sections` give the bare ``server`` block or
  ``frontend``/``backend`` pair so that many hops can share one process.

Each hop listens on its mapped address and port, leaves from its own mapped address
(``proxy_bind`` / ``source``) and connects to the next hop (or the broker) at its mapped address
and port.

**Trust lists** (``set_real_ip_from``, ``expect_proxy_from``, the broker's ``access_rules`` and
``proxy_address_allow``): an entry keeps its original text — so addresses that are data, not
hosts (a forged ``X-Forwarded-For`` entry, say), are trusted exactly as before — and, when it
contains labelled hosts (client, hops, broker), is followed by its loopback image: the same
prefix inside the host's loopback ``/24`` (``172.16.0.0/24`` → ``127.0.2.0/24``,
``172.16.0.116/32`` → ``127.0.2.116/32``), or for a wider range the loopback ``/24`` of every
labelled host inside it (with any other *addresses* map: the ``/32`` of every such host).  ``/0``
and entries that are not networks (``unix:``, names) are kept alone.  Which labelled hosts are
trusted is therefore preserved; :func:`map_cidrs` checks that and raises
:class:`~realip.ConfigurationError` where it is not.  ``option forwardfor except`` takes a single
network: its loopback image alone (or the smallest network covering the mapped hosts inside,
refused if that catches another labelled host); it stays as it is when no labelled host is
inside.  Everything else — forged headers, ``proxy_set_header`` templates, ``http-request``
values — is data and is left alone.

Nothing here opens a socket or touches a file: the functions return text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)

from .errors import ConfigurationError
from .programs import HOP_KINDS
from .programs.haproxy import config as haproxy_config
from .programs.nginx import config as nginx_config
from .programs.nginx.config import NGINX_STREAM_MODULE, TLS_DIR
from .topology import Broker, Hop, Topology

__all__ = [
    "NGINX_STREAM_MODULE",
    "TLS_DIR",
    "config_file",
    "haproxy_cfg",
    "haproxy_main",
    "haproxy_sections",
    "host_labels",
    "loopback_plan",
    "map_cidrs",
    "needs_netns",
    "needs_tls",
    "netns_plan",
    "nginx_conf",
    "nginx_main",
    "nginx_server",
    "topology_on",
]

#: Where Debian's libnginx-mod-stream puts the stream module (``load_module`` needs a path).

Network = IPv4Network | IPv6Network


# ==============================================================================================
# Addresses


def loopback_plan(topology: Topology) -> dict[str, str]:
    """Label → loopback address: each original ``/24`` becomes ``127.0.N.0/24`` (N = 1, 2, … in
    order of appearance: client, hops, broker), the last octet is kept; ``<hop>.public`` → the
    hop's own address.  IPv6 hosts cannot be placed (loopback has only ``::1``)."""
    nets: dict[int, int] = {}

    def place(label: str, addr: str) -> str:
        ip = ip_address(addr)
        if isinstance(ip, IPv6Address):
            if ip.ipv4_mapped is None:
                raise ConfigurationError(f"{label} has an IPv6 address ({addr}): loopback has "
                                         "only ::1, so it cannot be placed")
            ip = ip.ipv4_mapped
        base = int(ip) >> 8
        if base not in nets:
            if len(nets) == 255:
                raise ConfigurationError("a loopback plan holds at most 255 /24 networks")
            nets[base] = len(nets) + 1
        return f"127.0.{nets[base]}.{int(ip) & 0xFF}"

    plan: dict[str, str] = {}

    def put(label: str, addr: str) -> None:
        if label in plan:
            raise ConfigurationError(f"topology {topology.name}: two hosts are called {label!r}")
        plan[label] = addr

    put(topology.client.name, place(topology.client.name, topology.client.addr))
    for hop in topology.hops:
        put(hop.name, place(hop.name, hop.addr))
        if hop.public:
            put(f"{hop.name}.public", plan[hop.name])
    put(topology.broker.name, place(topology.broker.name, topology.broker.addr))
    return plan


def needs_netns(topology: Topology) -> bool:
    """Whether *topology* has an IPv6 host (not v4-mapped): loopback cannot hold it, a private
    network namespace can (:func:`netns_plan`)."""
    for addr in host_labels(topology).values():
        ip = ip_address(addr)
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is None:
            return True
    return False


def needs_tls(topology: Topology) -> bool:
    """Whether *topology* uses TLS anywhere: the client opens TLS, or a hop or the broker
    terminates it or reads its ClientHello (the live lab then needs a run-time PKI)."""
    from .programs import speaks_tls

    return topology.client.tls or any(speaks_tls(n) for n in (*topology.hops,
                                                               topology.broker))


def netns_plan(topology: Topology) -> dict[str, str]:
    """Label → the host's own address, for a run inside a private network namespace whose
    ``lo`` holds every labelled address (``unshare -n``; see :func:`realip.lab.netns_setup`):
    nothing is mapped, so IPv6 scenarios run with their own addresses, and nothing can leave
    the namespace (it has no other interface and no route)."""
    plan = {}
    for label, addr in host_labels(topology).items():
        if label in plan:
            raise ConfigurationError(f"topology {topology.name}: two hosts are called {label!r}")
        plan[label] = addr
    for hop in topology.hops:
        if hop.public:
            plan[f"{hop.name}.public"] = hop.addr
    return plan


def host_labels(topology: Topology) -> dict[str, str]:
    """The labelled hosts that can be a TCP peer (client, hops, broker) → original address."""
    out = {topology.client.name: topology.client.addr}
    for hop in topology.hops:
        out[hop.name] = hop.addr
    out[topology.broker.name] = topology.broker.addr
    return out


def _net(entry: str) -> Network | None:
    try:
        return ip_network(entry.strip(), strict=False)
    except ValueError:
        return None


def _ip4(addr: str) -> IPv4Address | IPv6Address:
    ip = ip_address(addr)
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _in(addr: str, nets: Iterable[Network]) -> bool:
    ip = _ip4(addr)
    return any(ip.version == n.version and ip in n for n in nets)


def _slash24(ip: IPv4Address | IPv6Address) -> int:
    return int(ip) >> 8


def _image(topology: Topology, addresses: Mapping[str, str], net: Network) -> list[Network]:
    """The loopback image of *net*: its prefix inside the loopback /24 of its original /24
    (prefix 24 or longer), or the loopback /24s of the hosts inside (shorter); a host whose /24
    is not mapped as one block contributes its /32.  Empty when no labelled host is inside."""
    hosts = host_labels(topology)
    inside = [lbl for lbl, orig in hosts.items() if _in(orig, [net])]
    if not inside or net.version != 4:
        return [ip_network(_ip4(addresses[lbl])) for lbl in inside]

    def block(orig24: int) -> int | None:
        """The loopback /24 that original /24 *orig24* maps to as one block, if it does."""
        images = set()
        for lbl, orig in hosts.items():
            ip = _ip4(orig)
            if ip.version == 4 and _slash24(ip) == orig24:
                new = _ip4(addresses[lbl])
                if new.version != 4 or int(new) & 0xFF != int(ip) & 0xFF:
                    return None
                images.add(_slash24(new))
        return images.pop() if len(images) == 1 else None

    out: list[Network] = []
    if net.prefixlen >= 24:
        target = block(int(net.network_address) >> 8)
        if target is not None:
            low = int(net.network_address) & 0xFF
            return [IPv4Network(((target << 8) | low, net.prefixlen))]
    for lbl in inside:
        orig = _ip4(hosts[lbl])
        target = block(_slash24(orig)) if net.prefixlen < 24 else None
        image: Network = (IPv4Network((target << 8, 24)) if target is not None
                          else ip_network(_ip4(addresses[lbl])))
        if image not in out:
            out.append(image)
    return out


def _check(topology: Topology, addresses: Mapping[str, str], before: Sequence[str],
           after: Sequence[str]) -> None:
    old = [n for n in map(_net, before) if n is not None]
    new = [n for n in map(_net, after) if n is not None]
    for label, original in host_labels(topology).items():
        if _in(original, old) != _in(addresses[label], new):
            raise ConfigurationError(
                f"trust {list(before)}: on loopback ({list(after)}) {label} "
                f"({addresses[label]}) would {'not ' if _in(original, old) else ''}be trusted")


def map_cidrs(topology: Topology, addresses: Mapping[str, str],
              entries: Sequence[str]) -> tuple[str, ...]:
    """A trust list on the loopback plan: every entry kept, followed by its loopback image when
    it contains labelled hosts (see the module's documentation).  Raises
    :class:`~realip.ConfigurationError` if the result trusts a different set of labelled hosts
    than the original list."""
    out: list[str] = []
    for entry in entries:
        if entry not in out:
            out.append(entry)
        net = _net(entry)
        if net is None or net.prefixlen == 0:
            continue
        for image in _image(topology, addresses, net):
            text = str(image.network_address) if image.prefixlen == image.max_prefixlen \
                else str(image)
            if text not in out:
                out.append(text)
    _check(topology, addresses, entries, out)
    return tuple(out)


def _map_network(topology: Topology, addresses: Mapping[str, str], entry: str) -> str:
    """A single network (``option forwardfor except``) on the loopback plan."""
    net = _net(entry)
    if net is None or net.prefixlen == 0:
        return entry
    image = _image(topology, addresses, net)
    if not image:
        return entry
    candidate = image[0]
    for other in image[1:]:
        while not (other.network_address in candidate
                   and other.broadcast_address in candidate):
            candidate = candidate.supernet()
    text = str(candidate)
    _check(topology, addresses, [entry], [text])
    return text


def _map_target(topology: Topology, addresses: Mapping[str, str], ports: Mapping[str, int],
                target: str) -> str:
    """An upstream ``addr:port`` on the loopback plan when it names a host of the topology (its
    address and listening port); any other address becomes ``127.0.0.9:9``, where nothing
    listens — a route out of the chain is refused on loopback and never leaves the machine."""
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    for node in (*topology.hops, topology.broker):
        if node.addr == host and str(node.port) == port:
            addr = addresses[node.name]
            shown = f"[{addr}]" if ":" in addr else addr
            return f"{shown}:{ports.get(node.name, node.port)}"
    return "127.0.0.9:9"


def _map_rules(topology: Topology, addresses: Mapping[str, str],
               rules: Sequence[str]) -> tuple[str, ...]:
    """``allow``/``deny`` rules (EMQX ``access_rules``, nginx ``allow``/``deny``) on the loopback
    plan: each CIDR rule followed by its loopback images, in place (first match wins)."""
    out: list[str] = []
    for rule in rules:
        verb, _, target = rule.strip().partition(" ")
        target = target.strip()
        if target == "all" or _net(target) is None:
            out.append(rule)
        else:
            out += [f"{verb} {t}" for t in map_cidrs(topology, addresses, [target])]
    return tuple(out)


def topology_on(topology: Topology, addresses: Mapping[str, str],
                ports: Mapping[str, int] | None = None, *,
                source_ports: Mapping[str, int] | None = None) -> Topology:
    """*topology* with every host address replaced from *addresses* (label → address, e.g.
    :func:`loopback_plan`), listening ports from *ports* (label → port; the client's label sets
    the client's source port) and hops' source ports from *source_ports*.  ``public`` addresses
    are dropped (no NAT on loopback); trust lists are mapped with :func:`map_cidrs`."""
    ports = ports or {}
    source_ports = source_ports or {}
    client = replace(topology.client, addr=addresses[topology.client.name],
                     port=ports.get(topology.client.name, topology.client.port))
    hops: list[Hop] = []
    for hop in topology.hops:
        changes: dict[str, object] = {
            "addr": addresses[hop.name], "public": None,
            "port": ports.get(hop.name, hop.port),
            "source_port": source_ports.get(hop.name, hop.source_port),
        }
        entry = HOP_KINDS_BY_TYPE[type(hop)]
        for setting in entry.cidr_lists:
            changes[setting] = map_cidrs(topology, addresses, getattr(hop, setting))
        for setting in entry.networks:
            if getattr(hop, setting) is not None:
                changes[setting] = _map_network(topology, addresses, getattr(hop, setting))
        for setting in entry.rule_lists:
            changes[setting] = _map_rules(topology, addresses, getattr(hop, setting))
        if getattr(hop, "ssl_preread_routes", ()) or getattr(hop, "ssl_preread_default", None):
            changes["ssl_preread_routes"] = tuple(
                (name, _map_target(topology, addresses, ports, target))
                for name, target in hop.ssl_preread_routes)  # type: ignore[union-attr]
            default = hop.ssl_preread_default  # type: ignore[union-attr]
            changes["ssl_preread_default"] = None if default is None else \
                _map_target(topology, addresses, ports, default)
        hops.append(replace(hop, **changes))  # type: ignore[arg-type]
    broker = topology.broker
    allow = broker.proxy_address_allow
    broker = replace(broker, addr=addresses[broker.name],
                     port=ports.get(broker.name, broker.port),
                     access_rules=_map_rules(topology, addresses, broker.access_rules),
                     proxy_address_allow=None if allow is None
                     else map_cidrs(topology, addresses, allow))
    return replace(topology, client=client, hops=tuple(hops), broker=broker)


HOP_KINDS_BY_TYPE = {entry.settings: entry for entry in HOP_KINDS.values()}


def _next(topology: Topology, hop_name: str) -> Hop | Broker:
    nodes: list[Hop | Broker] = [*topology.hops, topology.broker]
    for i, node in enumerate(nodes[:-1]):
        if node.name == hop_name:
            return nodes[i + 1]
    raise ConfigurationError(f"topology {topology.name} has no hop {hop_name!r}")


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _ends(topology: Topology, hop_name: str, addresses: Mapping[str, str],
          ports: Mapping[str, int] | None, source_ports: Mapping[str, int] | None,
          ) -> tuple[Hop, str, str, str]:
    """(hop on loopback, listen address:port, own address[:pinned source port], upstream
    address:port)."""
    mapped = topology_on(topology, addresses, ports)
    nxt = _next(mapped, hop_name)
    hop = mapped.hop(hop_name)
    own = hop.addr
    if source_ports and hop_name in source_ports:
        own = _hostport(hop.addr, source_ports[hop_name])
    return hop, _hostport(hop.addr, hop.port), own, _hostport(nxt.addr, nxt.port)


# ==============================================================================================
# Each program's files (written by its room, on the loopback plan)


def nginx_server(topology: Topology, hop_name: str, addresses: Mapping[str, str],
                 ports: Mapping[str, int] | None = None, *,
                 source_ports: Mapping[str, int] | None = None,
                 tls_dir: str = TLS_DIR) -> tuple[str, str]:
    """``("http" | "stream", server block)`` for one nginx hop on the loopback plan (a
    :class:`~realip.topology.Relay` becomes a plain stream relay).  With the hop's label in
    *source_ports*, ``proxy_bind`` pins the source port too (``addr:port``).  TLS files are
    named under *tls_dir* (``<hop>.crt``, ``<hop>.key``, ``<ca-label>.pem``)."""
    hop, listen, own, upstream = _ends(topology, hop_name, addresses, ports, source_ports)
    return nginx_config.server_block(hop, topology.name, listen, own, upstream,
                                     tls_dir=tls_dir)


def nginx_main(prefix: str, *, http: Sequence[str] = (), stream: Sequence[str] = (),
               stream_module: str | None = NGINX_STREAM_MODULE, error_level: str = "info",
               ) -> str:
    """A whole ``nginx.conf`` for a private foreground nginx in the existing directory *prefix*
    (pid, error log ``prefix/error.log``, the five temp paths ``prefix/*_temp``, which nginx
    creates) holding the given ``server`` blocks.  *stream_module* is loaded when there are
    stream servers (None: built in)."""
    return nginx_config.main(prefix, http=http, stream=stream, stream_module=stream_module,
                             error_level=error_level)


def nginx_conf(topology: Topology, hop_name: str, addresses: Mapping[str, str], *,
               prefix: str, ports: Mapping[str, int] | None = None,
               source_ports: Mapping[str, int] | None = None,
               stream_module: str | None = NGINX_STREAM_MODULE, tls_dir: str = TLS_DIR) -> str:
    """The whole ``nginx.conf`` of nginx hop *hop_name* on loopback (run it with
    ``nginx -p PREFIX -c PREFIX/nginx.conf``); TLS files under *tls_dir*."""
    kind, server = nginx_server(topology, hop_name, addresses, ports, source_ports=source_ports,
                                tls_dir=tls_dir)
    if kind == "http":
        return nginx_main(prefix, http=[server], stream_module=stream_module)
    return nginx_main(prefix, stream=[server], stream_module=stream_module)


def haproxy_sections(topology: Topology, hop_name: str, addresses: Mapping[str, str],
                     ports: Mapping[str, int] | None = None, *, tag: str = "",
                     source_ports: Mapping[str, int] | None = None,
                     tls_dir: str = TLS_DIR) -> str:
    """The ``frontend``/``backend`` pair of HAProxy hop *hop_name* on loopback (named
    ``<tag><hop>`` and ``<tag><hop>_next``; the bind line is named after the hop, so HAProxy's
    connection errors read ``ip:port [date] <tag><hop>/<hop>: message``).  With the hop's
    label in *source_ports*, ``source`` pins the source port too.  TLS files are named under
    *tls_dir* (``<hop>.pem``: certificate, chain and key; ``<ca-label>.pem``)."""
    hop, listen, own, upstream = _ends(topology, hop_name, addresses, ports, source_ports)
    return haproxy_config.sections(hop, topology.name, listen, own, upstream, tag=tag,
                                   tls_dir=tls_dir)


def haproxy_main(prefix: str, sections: Sequence[str]) -> str:
    """A whole HAProxy configuration holding *sections* (frontends and backends of any number of
    hops): raw log lines on stdout, pid in ``PREFIX/haproxy.pid``, one thread."""
    return haproxy_config.main(prefix, sections)


def haproxy_cfg(topology: Topology, hop_name: str, addresses: Mapping[str, str], *,
                prefix: str, ports: Mapping[str, int] | None = None,
                source_ports: Mapping[str, int] | None = None, tls_dir: str = TLS_DIR) -> str:
    """The whole HAProxy configuration of hop *hop_name* on loopback (run it with
    ``haproxy -db -f PREFIX/haproxy.cfg``); TLS files under *tls_dir*."""
    return haproxy_main(prefix, [haproxy_sections(topology, hop_name, addresses, ports,
                                                  source_ports=source_ports, tls_dir=tls_dir)])


def config_file(topology: Topology, hop_name: str, addresses: Mapping[str, str], *,
                prefix: str, tls_dir: str = TLS_DIR) -> str | None:
    """The whole configuration file realip writes for hop *hop_name* (``nginx.conf``,
    ``haproxy.cfg``; for an aedes broker its ``createServer`` options), or None when its
    program has none here (a plain relay, the other brokers); TLS files are named under
    *tls_dir*."""
    node = next((h for h in topology.hops if h.name == hop_name), None)
    broker = topology.broker
    if node is None and hop_name == broker.name and broker.kind == "aedes":
        from .programs.aedes.config import options_file

        return options_file(broker.trust_proxy, broker.listener)
    if node is None:
        return None
    program = HOP_KINDS_BY_TYPE[type(node)].program
    if program == "nginx":
        return nginx_conf(topology, hop_name, addresses, prefix=prefix, tls_dir=tls_dir)
    if program == "haproxy":
        return haproxy_cfg(topology, hop_name, addresses, prefix=prefix, tls_dir=tls_dir)
    return None
