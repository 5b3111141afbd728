"""Importing the article's configurations gives the same results as the hand-written scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from realip import ConfigurationError
from realip.importers import chain, from_haproxy_cfg, from_nginx_conf
from realip.topology import Broker, Client, load, simulate

DATA = Path(__file__).resolve().parent.parent / "data"


def _nginx(name: str, host: str, addr: str, port: int, public: str | None = None):  # type: ignore[no-untyped-def]
    return from_nginx_conf((DATA / "nginx" / name).read_text(), name=host, addr=addr,
                           public=public, source_port=port)


@pytest.mark.parametrize("path", sorted((DATA / "nginx").glob("*.conf")),
                         ids=lambda p: p.stem)
def test_every_article_config_loads_without_warnings(path: Path) -> None:
    imported = from_nginx_conf(path.read_text(), addr="172.16.0.116")
    assert imported.hops and imported.upstreams and imported.warnings == ()


@pytest.mark.parametrize("path", sorted((DATA / "haproxy").glob("*.cfg")),
                         ids=lambda p: p.stem)
def test_every_haproxy_config_loads_without_warnings(path: Path) -> None:
    imported = from_haproxy_cfg(path.read_text(), addr="172.16.0.116")
    assert imported.hops and imported.warnings == ()


SCENARIOS = {
    "tcp-single-tier": [("tcp-single-lb1.conf", "lb1", "172.16.0.116")],
    "tcp-multi-passthrough": [("tcp-multi-lb1.conf", "lb1", "172.16.0.116"),
                              ("tcp-passthrough-lb2.conf", "lb2", "")],
    "tcp-multi-regenerate": [("tcp-multi-lb1.conf", "lb1", "172.16.0.116"),
                             ("tcp-regenerate-lb2.conf", "lb2", "")],
    "ws-single-tier": [("ws-single-lb1.conf", "lb1", "172.16.0.116")],
    "ws-multi-override": [("ws-method1-lb1.conf", "lb1", "172.16.0.116"),
                          ("ws-method1-lb2.conf", "lb2", "")],
    "ws-multi-recursive": [("ws-method2-lb1.conf", "lb1", "172.16.0.116"),
                           ("ws-method2-lb2.conf", "lb2", ""),
                           ("ws-method2-lb3.conf", "lb3", "")],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_imported_chain_simulates_like_the_scenario(scenario: str) -> None:
    reference = load(str(DATA / "topologies" / f"{scenario}.yaml"))
    ports = [h.source_port for h in reference.hops]
    configs = [_nginx(f, name, addr, ports[i], "121.36.192.227" if i == 0 else None)
               for i, (f, name, addr) in enumerate(SCENARIOS[scenario])]
    topology = chain(reference.client, configs, reference.broker)
    assert [h.addr for h in topology.hops] == [h.addr for h in reference.hops]
    assert topology.broker.addr == reference.broker.addr
    ours, theirs = simulate(topology), simulate(reference)
    assert ours.peername == theirs.peername == reference.expect
    assert [link.data for link in ours.links] == [link.data for link in theirs.links]


def test_haproxy_chain() -> None:
    first = from_haproxy_cfg((DATA / "haproxy" / "tcp-send-proxy-v2-to-lb2.cfg").read_text(),
                             name="lb1", addr="172.16.0.116", source_port=41316)
    second = from_haproxy_cfg((DATA / "haproxy" / "tcp-accept-proxy-lb2.cfg").read_text(),
                              name="lb2", addr="", source_port=46208)
    topology = chain(Client(addr="115.236.21.86", port=39817), [first, second],
                     Broker(addr="", proxy_protocol=True))
    assert simulate(topology).peername == "115.236.21.86:39817"


def test_unsupported_directives_are_named() -> None:
    text = ("stream { upstream u { server 10.0.0.1:1883; server 10.0.0.2:1883; } "
            "server { listen 1883 so_keepalive=on; proxy_pass u; ssl_preread on; } }")
    warnings = " ".join(from_nginx_conf(text, addr="10.0.0.9").warnings)
    assert "so_keepalive" in warnings and "ssl_preread" in warnings and "2 servers" in warnings
    hap = from_haproxy_cfg("frontend f\n  bind :1883\n  tcp-request content reject\n"
                           "  default_backend b\nbackend b\n  server s 10.0.0.1:1883\n",
                           addr="10.0.0.9")
    assert any("tcp-request content reject" in w for w in hap.warnings)
    with pytest.raises(ConfigurationError):
        from_nginx_conf("stream { server { listen 1883; ", addr="10.0.0.9")
    with pytest.raises(ConfigurationError):
        from_nginx_conf("events {}", addr="10.0.0.9")
