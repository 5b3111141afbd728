"""realip.render: loopback plans, mapped topologies and the configuration text (no programs).

``tests/real/test_topology_real.py`` runs these configurations with the real nginx and HAProxy;
here the text itself is checked, and what :func:`~realip.topology.simulate` predicts for a
loopback run (facts first seen in those real runs).
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realip import ConfigurationError
from realip.render import (
    haproxy_cfg,
    haproxy_main,
    haproxy_sections,
    host_labels,
    loopback_plan,
    map_cidrs,
    needs_netns,
    netns_plan,
    nginx_conf,
    nginx_main,
    nginx_server,
    topology_on,
)
from realip.topology import (
    Broker,
    Client,
    HAProxy,
    NginxHttp,
    NginxStream,
    Relay,
    Topology,
    load,
    simulate,
)

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "data" / "topologies"


def scenario(name: str) -> Topology:
    return load(str(TOPOLOGIES / f"{name}.yaml"))


# -- the plan ----------------------------------------------------------------------------------


def test_plan_keeps_each_24_together_and_the_last_octet() -> None:
    topo = scenario("ws-multi-recursive")
    assert loopback_plan(topo) == {
        "client": "127.0.1.163", "lb1": "127.0.2.116", "lb1.public": "127.0.2.116",
        "lb2": "127.0.2.200", "lb3": "127.0.2.225", "emqx": "127.0.2.71",
    }
    assert loopback_plan(topo) == loopback_plan(scenario("ws-multi-recursive"))


def test_plan_gives_every_24_its_own_block() -> None:
    topo = Topology(name="t", client=Client(addr="192.0.2.9", port=1),
                    hops=(Relay(name="a", addr="10.0.0.1", port=1),
                          Relay(name="b", addr="10.0.1.1", port=1),
                          Relay(name="c", addr="10.0.0.2", port=1)),
                    broker=Broker(addr="192.0.2.10"))
    assert loopback_plan(topo) == {"client": "127.0.1.9", "a": "127.0.2.1", "b": "127.0.3.1",
                                   "c": "127.0.2.2", "emqx": "127.0.1.10"}


def test_plan_refuses_ipv6_hosts_and_duplicate_names() -> None:
    v6 = Topology(name="t", client=Client(addr="2001:db8::1", port=1), hops=(),
                  broker=Broker(addr="10.0.0.1"))
    with pytest.raises(ConfigurationError, match="IPv6"):
        loopback_plan(v6)
    dup = Topology(name="t", client=Client(addr="192.0.2.1", port=1),
                   hops=(Relay(name="emqx", addr="10.0.0.2", port=1),),
                   broker=Broker(addr="10.0.0.1"))
    with pytest.raises(ConfigurationError, match="emqx"):
        loopback_plan(dup)


# -- trust lists ---------------------------------------------------------------------------------


def test_trust_lists_keep_the_original_and_add_the_loopback_image() -> None:
    topo = scenario("ws-multi-recursive")
    plan = loopback_plan(topo)
    assert map_cidrs(topo, plan, ["172.16.0.0/24"]) == ("172.16.0.0/24", "127.0.2.0/24")
    assert map_cidrs(topo, plan, ["172.16.0.116"]) == ("172.16.0.116", "127.0.2.116")
    assert map_cidrs(topo, plan, ["172.16.0.192/26"]) == ("172.16.0.192/26", "127.0.2.192/26")
    assert map_cidrs(topo, plan, ["172.16.0.0/16"]) == ("172.16.0.0/16", "127.0.2.0/24")
    assert map_cidrs(topo, plan, ["10.0.0.0/8", "unix:", "0.0.0.0/0"]) == \
        ("10.0.0.0/8", "unix:", "0.0.0.0/0")
    assert topology_on(topo, plan).hop("lb3").set_real_ip_from == ("172.16.0.0/24",
                                                                    "127.0.2.0/24")


def test_a_trust_list_that_cannot_keep_its_hosts_is_refused() -> None:
    topo = scenario("ws-multi-recursive")
    plan = {**loopback_plan(topo), "client": "127.0.2.5"}  # the client inside the LAN's image
    with pytest.raises(ConfigurationError, match="client"):
        map_cidrs(topo, plan, ["172.16.0.0/24"])


_TOPO = scenario("ws-multi-recursive")
_PLAN = loopback_plan(_TOPO)
_HOSTS = list(host_labels(_TOPO).values())


@given(st.sampled_from(_HOSTS), st.integers(min_value=1, max_value=32))
def test_trust_mapping_preserves_which_labelled_hosts_are_inside(host: str, prefix: int) -> None:
    entry = str(ip_network(f"{host}/{prefix}", strict=False))
    try:
        mapped = map_cidrs(_TOPO, _PLAN, [entry])
    except ConfigurationError:
        return
    nets = [ip_network(e) for e in mapped]
    for label, original in host_labels(_TOPO).items():
        before = ip_address(original) in ip_network(entry)
        after = any(ip_address(_PLAN[label]) in n for n in nets)
        assert before == after, (entry, label, mapped)


def test_forwardfor_except_becomes_one_loopback_network() -> None:
    topo = scenario("haproxy-ws-set-header").with_hop("lb1", forwardfor=True,
                                                      forwardfor_except="172.16.0.0/24")
    plan = loopback_plan(topo)
    assert topology_on(topo, plan).hop("lb1").forwardfor_except == "127.0.2.0/24"  # type: ignore[union-attr]
    other = topo.with_hop("lb1", forwardfor_except="10.0.0.0/8")
    assert topology_on(other, plan).hop("lb1").forwardfor_except == "10.0.0.0/8"  # type: ignore[union-attr]


def test_broker_rules_are_mapped_too() -> None:
    topo = scenario("tcp-single-tier").with_broker(access_rules=("allow 172.16.0.0/24",
                                                                 "deny all"))
    mapped = topology_on(topo, loopback_plan(topo))
    assert mapped.broker.access_rules == ("allow 172.16.0.0/24", "allow 127.0.2.0/24",
                                          "deny all")


# -- the mapped topology -----------------------------------------------------------------------


def test_topology_on_replaces_addresses_ports_and_source_ports() -> None:
    topo = scenario("tcp-single-tier")
    plan = loopback_plan(topo)
    mapped = topology_on(topo, plan, {"client": 50001, "lb1": 21883, "emqx": 31883},
                         source_ports={"lb1": 40001})
    assert (mapped.client.addr, mapped.client.port) == ("127.0.1.86", 50001)
    lb1 = mapped.hop("lb1")
    assert (lb1.addr, lb1.public, lb1.port, lb1.source_port) == ("127.0.2.116", None, 21883,
                                                                 40001)
    assert (mapped.broker.addr, mapped.broker.port) == ("127.0.2.71", 31883)
    trace = simulate(mapped)
    assert trace.links[1].proxy_header == \
        b"PROXY TCP4 127.0.1.86 127.0.2.116 50001 21883\r\n"
    assert trace.peername == "127.0.1.86:50001"


@pytest.mark.parametrize("path", sorted(TOPOLOGIES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_scenario_maps_and_renders(path: Path) -> None:
    topo = load(str(path))
    # IPv6 hosts cannot be placed on loopback: they run with their own addresses in a private
    # network namespace (tests/real/test_ipv6_lab_real.py)
    plan = netns_plan(topo) if needs_netns(topo) else loopback_plan(topo)
    mapped = topology_on(topo, plan)
    assert simulate(mapped).connected == simulate(topo).connected
    for hop in topo.hops:
        text = (haproxy_cfg(topo, hop.name, plan, prefix="/run/x") if isinstance(hop, HAProxy)
                else nginx_conf(topo, hop.name, plan, prefix="/run/x"))
        assert plan[hop.name] in text


# -- nginx ---------------------------------------------------------------------------------------


def test_nginx_stream_configuration() -> None:
    topo = scenario("tcp-multi-regenerate")
    conf = nginx_conf(topo, "lb2", loopback_plan(topo), prefix="/run/lab")
    assert conf.startswith("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n")
    for line in ("daemon off;", "pid /run/lab/nginx.pid;", "error_log /run/lab/error.log info;",
                 "listen 127.0.2.200:1883 proxy_protocol;", "set_real_ip_from 172.16.0.0/24;",
                 "set_real_ip_from 127.0.2.0/24;", "proxy_pass 127.0.2.71:1883;",
                 "proxy_bind 127.0.2.200;", "proxy_protocol on;"):
        assert f"{line}\n" in conf, line
    assert "http {" not in conf


def test_nginx_http_configuration_keeps_the_header_order() -> None:
    topo = scenario("ws-multi-recursive")
    kind, server = nginx_server(topo, "lb3", loopback_plan(topo), {"lb3": 28083, "emqx": 38083},
                                source_ports={"lb3": 45000})
    assert kind == "http"
    lines = [ln.strip() for ln in server.splitlines()]
    assert "listen 127.0.2.225:28083;" in lines
    assert "real_ip_header X-Forwarded-For;" in lines and "real_ip_recursive on;" in lines
    assert "proxy_pass http://127.0.2.71:38083;" in lines
    assert "proxy_bind 127.0.2.225:45000;" in lines
    assert "proxy_http_version 1.1;" in lines
    psh = [ln for ln in lines if ln.startswith("proxy_set_header")]
    assert psh == ['proxy_set_header Upgrade "$http_upgrade";',
                   'proxy_set_header Connection "Upgrade";', 'proxy_set_header Host "$host";',
                   'proxy_set_header X-Forwarded-For "$http_x_forwarded_for, $realip_remote_addr";',
                   'proxy_set_header X-Forwarded-Port "$http_x_forwarded_port, '
                   '$realip_remote_port";',
                   'proxy_set_header X-Real-IP "$remote_addr";']
    whole = nginx_main("/p", http=[server])
    assert "load_module" not in whole and "proxy_temp_path /p/proxy_temp;" in whole


def test_nginx_values_are_quoted() -> None:
    topo = scenario("ws-single-tier").with_hop(
        "lb1", proxy_set_header=(("X-A", 'say "hi" \\ $remote_addr'), ("X-Empty", "")))
    _, server = nginx_server(topo, "lb1", loopback_plan(topo))
    assert 'proxy_set_header X-A "say \\"hi\\" \\\\ $remote_addr";' in server
    assert 'proxy_set_header X-Empty "";' in server


def test_a_relay_is_a_plain_stream_server() -> None:
    topo = Topology(name="r", client=Client(addr="192.0.2.1", port=1),
                    hops=(Relay(name="socat", addr="10.0.0.5", port=1883),),
                    broker=Broker(addr="10.0.0.6"))
    kind, server = nginx_server(topo, "socat", loopback_plan(topo))
    assert kind == "stream" and "proxy_protocol" not in server
    assert "proxy_pass 127.0.2.6:1883;" in server


def test_nginx_1_22_has_no_proxy_protocol_v2() -> None:
    from dataclasses import replace

    from realip.errors import ScenarioError

    base = scenario("tcp-single-tier")
    # the scenario language refuses it as nginx -t does ...
    with pytest.raises(ScenarioError, match=r"1\.31\.4") as info:
        base.with_hop("lb1", proxy_protocol="v2")
    assert info.value.path == "hops[0].proxy_protocol"
    # ... and a hop built directly is still refused by the writer and the step
    topo = replace(base, hops=(replace(base.hops[0], proxy_protocol="v2"),))
    with pytest.raises(ConfigurationError, match="v2"):
        nginx_conf(topo, "lb1", loopback_plan(topo), prefix="/p")
    with pytest.raises(ConfigurationError, match=r"1\.31\.4"):
        simulate(topo)
    newer = topo.with_hop("lb1", version="1.31.4")
    assert "proxy_protocol v2;" in nginx_conf(newer, "lb1", loopback_plan(newer), prefix="/p")
    assert simulate(newer).links[1].proxy_header is not None


# -- HAProxy -------------------------------------------------------------------------------------


def test_haproxy_tcp_configuration() -> None:
    topo = scenario("haproxy-tcp-accept-proxy-tier")
    cfg = haproxy_cfg(topo, "lb2", loopback_plan(topo), prefix="/run/lab",
                      ports={"lb2": 21883}, source_ports={"lb2": 41000})
    lines = [ln.strip() for ln in cfg.splitlines()]
    assert "pidfile /run/lab/haproxy.pid" in lines and "log global" in lines
    assert "frontend lb2" in lines and "backend lb2_next" in lines
    assert "option tcplog" in lines
    assert "bind 127.0.2.200:21883 name lb2" in lines
    assert "tcp-request connection expect-proxy layer4 if { src 172.16.0.0/24 127.0.2.0/24 }" \
        in lines
    assert ("server next 127.0.2.71:1883 source 127.0.2.200:41000 send-proxy-v2 "
            "proxy-v2-options crc32c") in lines


def test_haproxy_http_configuration() -> None:
    topo = scenario("haproxy-ws-set-header").with_hop(
        "lb1", accept_proxy=True, forwardfor=True, forwardfor_if_none=True,
        forwardfor_header="X-Client-IP", forwardfor_except="10.0.0.0/8",
        http_request=(("set-header", "X-Forwarded-For", "%[src]"),
                      ("set-header", "X-Two", "%[src], %[src_port]"),
                      ("del-header", "X-Forwarded-Port")))
    text = haproxy_sections(topo, "lb1", loopback_plan(topo), tag="c1_")
    lines = [ln.strip() for ln in text.splitlines()]
    assert "frontend c1_lb1" in lines and "option httplog" in lines
    assert "bind 127.0.2.116:8083 name lb1 accept-proxy" in lines
    assert "http-request set-header X-Forwarded-For %[src]" in lines
    assert "http-request set-header X-Two '%[src], %[src_port]'" in lines
    assert "http-request del-header X-Forwarded-Port" in lines
    assert "option forwardfor except 10.0.0.0/8 header X-Client-IP if-none" in lines
    assert lines.index("http-request del-header X-Forwarded-Port") < \
        lines.index("option forwardfor except 10.0.0.0/8 header X-Client-IP if-none")
    assert "server next 127.0.2.71:8083 source 127.0.2.116" in lines
    assert haproxy_main("/p", [text]).endswith(text)


def test_only_the_right_program_renders_a_hop() -> None:
    topo = scenario("haproxy-ws-set-header")
    with pytest.raises(ConfigurationError):
        nginx_server(topo, "lb1", loopback_plan(topo))
    other = scenario("ws-single-tier")
    with pytest.raises(ConfigurationError):
        haproxy_sections(other, "lb1", loopback_plan(other))
    with pytest.raises(ConfigurationError, match="no hop"):
        nginx_server(other, "emqx", loopback_plan(other))


# -- what the simulator predicts for a loopback run (seen in the real runs first) ----------------


def _ws(hops: tuple[NginxStream | NginxHttp | HAProxy, ...],
        headers: tuple[tuple[str, str], ...] = ()) -> Topology:
    return Topology(name="t", client=Client(addr="127.0.1.1", port=50000, transport="ws",
                                            headers=headers),
                    hops=hops, broker=Broker(addr="127.0.9.1", port=8083, listener="ws"))


def test_haproxy_http_writes_lower_case_names_and_cleans_connection() -> None:
    topo = _ws((NginxHttp(name="lb1", addr="127.0.2.1", port=8083, source_port=40001,
                          proxy_set_header=(("X-Forwarded-For", "$remote_addr"),)),
                HAProxy(name="lb2", addr="127.0.3.1", port=8083, source_port=40002,
                        mode="http", forwardfor=True)))
    trace = simulate(topo)
    assert trace.links[1].http_headers()[:3] == [("X-Forwarded-For", "127.0.1.1"),
                                                 ("Host", "127.0.3.1:8083"),
                                                 ("Connection", "close")]
    # HTTP/1.0 from nginx: "close" is dropped, keep-alive added last, every name lower case
    assert trace.links[2].part("http") == (
        b"GET /mqtt HTTP/1.0\r\nx-forwarded-for: 127.0.1.1\r\nhost: 127.0.3.1:8083\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
        b"sec-websocket-protocol: mqtt\r\nx-forwarded-for: 127.0.2.1\r\n"
        b"connection: keep-alive\r\n\r\n")


@pytest.mark.parametrize(("value", "kept"), [
    ("Upgrade", "Upgrade"), ("keep-alive, Upgrade", "Upgrade"), ("close", None),
    ("foo,close ,  bar", "foo,bar"), ("foo ,  close, bar", "foo ,bar"),
    ("foo , bar,   close", "foo , bar"), ("Keep-Alive , Close", None),
    (",,upgrade,,", ",,upgrade"), ("a,,b", "a,,b"), ("close,,a", "a"), ("a,,", "a"),
    (",,", None),
])
def test_haproxy_connection_tokens(value: str, kept: str | None) -> None:
    topo = _ws((NginxHttp(name="lb1", addr="127.0.2.1", port=8083, proxy_http_version="1.1",
                          proxy_set_header=(("Connection", value),)),
                HAProxy(name="lb2", addr="127.0.3.1", port=8083, mode="http")))
    got = [v for k, v in simulate(topo).links[2].http_headers() if k == "connection"]
    assert got == ([] if kept is None else [kept])


def test_nginx_drops_header_names_with_underscores_and_uses_proxy_host() -> None:
    topo = _ws((NginxHttp(name="lb1", addr="127.0.2.1", port=8083, source_port=40001,
                          set_real_ip_from=("127.0.1.1",), real_ip_header="X_Real_IP"),),
               headers=(("X_Real_IP", "6.6.6.6"), ("X-Ok", "1")))
    trace = simulate(topo)
    names = [k for k, _ in trace.links[1].http_headers()]
    assert names == ["Host", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                     "Sec-WebSocket-Protocol", "X-Ok"]
    assert trace.links[1].http_headers()[0] == ("Host", "127.0.9.1:8083")
    assert trace.view("lb1").variables["remote_addr"] == "127.0.1.1"


def test_rejections_carry_the_programs_log_lines() -> None:
    pp = "PROXY TCP4 6.6.6.6 127.0.2.1 1 2\r\n"
    ngx = simulate(_ws((NginxHttp(name="lb1", addr="127.0.2.1", port=8083),)), forge_proxy=pp)
    assert ngx.view("lb1").log == "client sent invalid request while reading client request line"
    hap = simulate(_ws((HAProxy(name="lb1", addr="127.0.2.1", port=8083, mode="http"),)),
                   forge_proxy=pp)
    assert hap.view("lb1").log == '<NOSRV> … 400 … PR-- … "<BADREQ>"'
    broken = simulate(_ws((NginxHttp(name="lb1", addr="127.0.2.1", port=8083,
                                     listen_proxy_protocol=True),)))
    log = broken.view("lb1").log or ""
    # the http listener quotes everything it read (1.22), not the stream module's 107 bytes
    assert log.startswith('broken header: "GET /mqtt HTTP/1.1\r\n') and len(log) > 200
    assert log.endswith('Sec-WebSocket-Protocol: mqtt\r\n\r\n"')
