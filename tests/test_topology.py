"""The simulator: every scenario in data/topologies/ gives its known result."""

from __future__ import annotations

from pathlib import Path

import pytest

from realip import ConfigurationError
from realip.proxy_protocol import decode
from realip.topology import from_dict, load, mqtt_connect, simulate

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "data" / "topologies").glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_gives_its_expected_peername(path: Path) -> None:
    topology = load(str(path))
    trace = simulate(topology)
    assert trace.peername == topology.expect, trace.table()
    assert trace.connected == (topology.expect is not None)
    assert len(trace.links) == len(trace.views)
    assert trace.to_dict()["peername"] == trace.peername


def test_article_results() -> None:
    def peer(name: str) -> str | None:
        return simulate(load(str(ROOT / "data" / "topologies" / f"{name}.yaml"))).client_addr

    for name in ("tcp-single-tier", "tcp-multi-passthrough", "tcp-multi-regenerate",
                 "ws-single-tier"):
        assert peer(name) == "115.236.21.86"
    for name in ("ws-multi-override", "ws-multi-recursive"):
        assert peer(name) == "1.94.170.163"
    assert peer("ws-multi-nonrecursive") == "172.16.0.116"


def test_single_tier_bytes_on_the_wire() -> None:
    trace = simulate(load(str(ROOT / "data" / "topologies" / "tcp-single-tier.yaml")))
    link = trace.links[1]
    assert link.proxy_header == b"PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883\r\n"
    assert link.part("mqtt") == mqtt_connect("mqttx-client")
    assert trace.links[0].proxy_header is None
    assert trace.view("lb1").variables["remote_addr"] == "115.236.21.86"


def test_regeneration_rewrites_the_destination_and_passthrough_does_not() -> None:
    regen = simulate(load(str(ROOT / "data" / "topologies" / "tcp-multi-regenerate.yaml")))
    assert regen.links[2].proxy_header == \
        b"PROXY TCP4 115.236.21.86 172.16.0.200 39817 1883\r\n"
    passthrough = simulate(load(str(ROOT / "data" / "topologies" /
                                    "tcp-multi-passthrough.yaml")))
    assert passthrough.links[2].proxy_header == passthrough.links[1].proxy_header


def test_forging_from_the_command_line_options() -> None:
    topo = load(str(ROOT / "data" / "topologies" / "ws-multi-recursive.yaml"))
    assert simulate(topo, forge_xff="6.6.6.6, 172.16.0.9").client_addr == "1.94.170.163"
    single = load(str(ROOT / "data" / "topologies" / "tcp-single-tier.yaml"))
    forged = simulate(single, forge_proxy="PROXY TCP4 6.6.6.6 1.1.1.1 1 2\r\n")
    # nginx's stream listener has no proxy_protocol: the forged header is just data to it, and
    # EMQX reads nginx's header first, then fails on the forged one.
    assert not forged.connected


def test_haproxy_v2_header_with_crc() -> None:
    trace = simulate(load(str(ROOT / "data" / "topologies" / "haproxy-tcp-accept-proxy-tier.yaml")))
    header = decode(trace.links[2].proxy_header or b"")
    assert header is not None and header.crc32c is not None
    assert str(header.source) == "115.236.21.86:39817"
    assert str(header.destination) == "172.16.0.116:1883"  # HAProxy relays the original dst


def test_unknown_settings_are_refused() -> None:
    doc = {"client": {"addr": "192.0.2.1", "port": 1},
           "hops": [{"kind": "nginx-stream", "name": "lb", "addr": "10.0.0.1",
                     "proxy_protocl": "on"}],
           "broker": {"addr": "10.0.0.2"}}
    with pytest.raises(ConfigurationError, match="proxy_protocl"):
        from_dict(doc)
    with pytest.raises(ConfigurationError, match="kind"):
        from_dict({**doc, "hops": [{"kind": "squid", "name": "x", "addr": "10.0.0.1"}]})


def test_pcap_is_deterministic(tmp_path: Path) -> None:
    trace = simulate(load(str(ROOT / "data" / "topologies" / "haproxy-tcp-send-proxy-v2.yaml")))
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    trace.to_pcap(str(a))
    trace.to_pcap(str(b))
    assert a.read_bytes() == b.read_bytes() and a.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"


def test_cli_simulate(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from realip.__main__ import main

    path = str(ROOT / "data" / "topologies" / "ws-multi-recursive.yaml")
    assert main(["simulate", path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["peername"] == "1.94.170.163:39872" and len(doc["links"]) == 4
    assert main(["simulate", path, "--forge-xff", "172.16.0.1"]) == 0
    assert capsys.readouterr().out.strip().endswith("peername=1.94.170.163:39872")
    tcp = str(ROOT / "data" / "topologies" / "tcp-direct-client-forges-proxy.yaml")
    assert main(["simulate", tcp, "--forge-proxy", "PROXY TCP4 192.0.2.9 172.16.0.71 9 1883",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["peername"] == "192.0.2.9:9"
