"""Importing the article's configurations gives the same results as the hand-written scenarios."""

from __future__ import annotations

import re
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
    "tls-nginx-terminates": [("tls-terminate-lb1.conf", "lb1", "172.16.0.116")],
    "wss-nginx-terminates": [("wss-terminate-lb1.conf", "lb1", "172.16.0.116")],
    "tls-passthrough-sni": [("tls-preread-lb1.conf", "lb1", "172.16.0.116")],
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
    assert ours.username == theirs.username == reference.expect_username
    assert [link.data for link in ours.links] == [link.data for link in theirs.links]
    assert [link.records for link in ours.links] == [link.records for link in theirs.links]


def test_sni_routing_map_is_read() -> None:
    text = ("stream { upstream tls { server 172.16.0.71:8883; }\n"
            "map $ssl_preread_server_name $up { mqtt.example.com tls; "
            "other.example.com 10.9.9.9:8883; default 172.16.0.71:8883; }\n"
            "server { listen 8883; ssl_preread on; proxy_pass $up; proxy_protocol on; } }")
    imported = from_nginx_conf(text, addr="172.16.0.116")
    hop = imported.hops[0]
    assert hop.ssl_preread_routes == (("mqtt.example.com", "172.16.0.71:8883"),
                                      ("other.example.com", "10.9.9.9:8883"))
    assert hop.ssl_preread_default == "172.16.0.71:8883"
    assert imported.upstreams == ("172.16.0.71:8883",)
    assert any("routes by SNI to several upstreams" in w for w in imported.warnings)


def test_tls_haproxy_config_imports_as_the_scenario() -> None:
    reference = load(str(DATA / "topologies" / "tls-haproxy-client-cert.yaml"))
    imported = from_haproxy_cfg((DATA / "haproxy" / "tls-client-cert-lb1.cfg").read_text(),
                                name="lb1", addr="172.16.0.116", public="121.36.192.227",
                                source_port=41316)
    assert imported.warnings == () and imported.hops == reference.hops


@pytest.mark.parametrize(("text", "message"), [
    ("stream { server { listen 8883 ssl; proxy_pass 10.0.0.5:1883; } }",
     'no "ssl_certificate" is defined for the "listen ... ssl" directive'),
    ("stream { server { listen 8883; ssl_verify_client maybe; proxy_pass 10.0.0.5:1883; } }",
     'invalid value "maybe" in "ssl_verify_client"'),
    ("http { server { listen 80; ssl_preread on; location / { proxy_pass http://10.0.0.5; } } }",
     '"ssl_preread" directive is not allowed here'),
    ("stream { map $remote_addr $up { default 10.0.0.5:8883; }\n"
     "server { listen 8883; proxy_pass $up; } }",
     "the upstream is chosen per connection"),
])
def test_nginx_tls_refusals(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        from_nginx_conf(text, addr="172.16.0.116")


@pytest.mark.parametrize(("line", "message"), [
    ("bind :8883 ssl", "'ssl' needs a certificate"),
    ("bind :8883 ssl crt a.pem verify required", "needs a 'ca-file'"),
    ("bind :8883 ssl crt a.pem ca-file c.pem verify sometimes", "unknown verify setting"),
])
def test_haproxy_tls_refusals(line: str, message: str) -> None:
    text = f"frontend f\n    {line}\n    default_backend b\nbackend b\n    server s 10.0.0.5:1883\n"
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        from_haproxy_cfg(text, addr="172.16.0.116")


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
            "server { listen 1883 so_keepalive=on; proxy_pass u; proxy_download_rate 1k; } }")
    warnings = " ".join(from_nginx_conf(text, addr="10.0.0.9").warnings)
    assert "so_keepalive" in warnings and "proxy_download_rate" in warnings
    assert "2 servers" in warnings
    hap = from_haproxy_cfg("frontend f\n  bind :1883\n  tcp-request content reject\n"
                           "  default_backend b\nbackend b\n  server s 10.0.0.1:1883\n",
                           addr="10.0.0.9")
    assert any("tcp-request content reject" in w for w in hap.warnings)
    with pytest.raises(ConfigurationError):
        from_nginx_conf("stream { server { listen 1883; ", addr="10.0.0.9")
    with pytest.raises(ConfigurationError):
        from_nginx_conf("events {}", addr="10.0.0.9")


# ----------------------------------------------------------------------------------------------
# The corpus of broken and tricky configurations (tests/vectors/import_corpus.yaml): the verdict
# and the words, without the real programs (tests/real/test_import_verdicts_real.py checks the
# verdicts against nginx -t and haproxy -c).

import yaml  # noqa: E402

CORPUS = yaml.safe_load((Path(__file__).parent / "vectors" / "import_corpus.yaml").read_text())


def _import(program: str, case: dict) -> object:  # type: ignore[type-arg]
    if program == "nginx":
        return from_nginx_conf(case["text"], files=case.get("files"), addr="10.0.0.9")
    return from_haproxy_cfg(case["text"], addr="10.0.0.9")


@pytest.mark.parametrize(("program", "case"),
                         [(p, c) for p in ("nginx", "haproxy") for c in CORPUS[p]],
                         ids=[f"{p}-{c['id']}" for p in ("nginx", "haproxy") for c in CORPUS[p]])
def test_corpus_verdict_and_words(program: str, case: dict) -> None:  # type: ignore[type-arg]
    if case["verdict"] == "ok":
        imported = _import(program, case)
        assert imported.hops  # type: ignore[attr-defined]
    else:
        with pytest.raises(ConfigurationError) as err:
            _import(program, case)
        assert case["error"] in str(err.value)
        assert "/tmp" not in str(err.value)  # the user's file names, not the temporary copy


def test_include_and_map_reach_the_hop() -> None:
    by_id = {c["id"]: c for c in CORPUS["nginx"]}
    hop = _import("nginx", by_id["include-relative"]).hops[0]  # type: ignore[attr-defined]
    assert hop.set_real_ip_from == ("10.0.0.0/8",) and hop.real_ip_header == "X-Forwarded-For"
    hop = _import("nginx", by_id["ws-upgrade-map"]).hops[0]  # type: ignore[attr-defined]
    assert [m.target for m in hop.maps] == ["connection_upgrade"]
    ports = [(h.port, h.listen_proxy_protocol)
             for h in _import("nginx", by_id["several-listens"]).hops]  # type: ignore[attr-defined]
    assert ports == [(1883, False), (1884, True)]


def test_named_acls_and_binds() -> None:
    by_id = {c["id"]: c for c in CORPUS["haproxy"]}
    hop = _import("haproxy", by_id["named-acl"]).hops[0]  # type: ignore[attr-defined]
    assert hop.expect_proxy_from == ("10.0.0.0/8", "192.168.0.0/16") and not hop.accept_proxy
    assert [h.port for h in _import("haproxy", by_id["two-binds"]).hops] == [8083, 8084]  # type: ignore[attr-defined]
    # a condition realip cannot evaluate exactly is refused, never guessed as "always"
    for cond in ("!a", "a b", "{ hdr(host) x }"):
        text = by_id["acl-or"]["text"].replace("if a || b", f"if {cond}")
        with pytest.raises(ConfigurationError, match=r"not modelled|will not guess"):
            from_haproxy_cfg(text, addr="10.0.0.9")


def _ws_chain(lb: str) -> object:
    client = Client(addr="115.236.21.86", port=50412, transport="ws")
    imported = from_nginx_conf(lb, addr="172.16.0.116")
    return simulate(chain(client, [imported], Broker(addr="", listener="ws", port=8083)))


def test_a_lost_upgrade_is_refused_as_emqx_refuses_it() -> None:
    base = CORPUS["nginx"][0]["text"]
    # the upgrade arrives (the map gives "upgrade"); no forwarded header: EMQX sees the LB
    assert _ws_chain(base).peername == "172.16.0.116:40000"  # type: ignore[attr-defined]
    # the commonest mistake: no Upgrade/Connection lines (nginx sends "Connection: close")
    lost = ("http { server { listen 8083; location /mqtt { proxy_pass http://10.0.0.2:8083;"
            " proxy_http_version 1.1; } } }")
    trace = _ws_chain(lost)
    assert trace.peername is None  # type: ignore[attr-defined]
    assert "426 Upgrade Required" in trace.views[-1].log  # type: ignore[attr-defined]
    # nginx's default proxy_http_version 1.0: cowboy answers 400 (426 is for HTTP/1.1 only)
    trace = _ws_chain(base.replace("proxy_http_version 1.1;", ""))
    assert trace.peername is None  # type: ignore[attr-defined]
    assert "400 Bad Request" in trace.views[-1].log  # type: ignore[attr-defined]


def test_chain_follows_every_hop_or_refuses_to_guess() -> None:
    two = ("stream { server { listen 1883; proxy_pass 127.0.0.1:1884; }\n"
           "server { listen 1884; proxy_pass 10.0.0.2:1883; proxy_protocol on; } }")
    imported = from_nginx_conf(two, addr="10.0.0.9")
    topo = chain(Client(addr="203.0.113.7", port=40001), [imported],
                 Broker(addr="", proxy_protocol=True))
    assert [h.port for h in topo.hops] == [1883, 1884] and topo.broker.addr == "10.0.0.2"
    # the first server is a plain relay: the second one's header names the first as client
    assert simulate(topo).peername == "10.0.0.9:40000"
    parallel = ("stream { server { listen 1883; proxy_pass 10.0.0.2:1883; }\n"
                "server { listen 1884; proxy_pass 10.0.0.2:1883; proxy_protocol on; } }")
    with pytest.raises(ConfigurationError, match="ports=") as err:
        chain(Client(addr="203.0.113.7", port=40001), [from_nginx_conf(parallel, addr="10.0.0.9")],
              Broker(addr=""))
    assert "1883, 1884" in str(err.value)
    topo = chain(Client(addr="203.0.113.7", port=40001),
                 [from_nginx_conf(parallel, addr="10.0.0.9")],
                 Broker(addr="", proxy_protocol=True), ports=[1884])
    assert simulate(topo).peername == "203.0.113.7:40001"
