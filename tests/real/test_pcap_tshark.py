"""The simulator's captures, read by the real tshark: PROXY headers and MQTT CONNECTs must be
dissected as such on every link."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from realip.topology import load, simulate

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["tcp-single-tier", "tcp-multi-regenerate", "haproxy-tcp-send-proxy-v2",
             "haproxy-tcp-accept-proxy-tier", "ws-single-tier"]


@pytest.mark.real
@pytest.mark.parametrize("name", SCENARIOS)
def test_tshark_dissects_the_capture(name: str, tshark_bin: str, tmp_path: Path) -> None:
    trace = simulate(load(str(ROOT / "data" / "topologies" / f"{name}.yaml")))
    pcap = tmp_path / f"{name}.pcap"
    trace.to_pcap(str(pcap))
    out = subprocess.run(
        [tshark_bin, "-r", str(pcap), "-o", "tcp.try_heuristic_first:TRUE", "-T", "fields",
         "-E", "separator=|", "-e", "_ws.col.Protocol", "-e", "proxy.src.ipv4",
         "-e", "proxy.srcport", "-e", "mqtt.clientid", "-e", "http.request.uri"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()
    protocols = [line.split("|")[0] for line in out]
    for link in trace.links:
        header = link.proxy_header
        if header is not None:
            kind = "PROXYv1" if header.startswith(b"PROXY") else "PROXYv2"
            assert kind in protocols, (name, out)
    sources = {line.split("|")[1] for line in out if line.split("|")[1]}
    expected = {trace.client_addr} if trace.links[-1].proxy_header else set()
    assert expected <= sources, out
    if trace.topology.client.transport == "tcp":
        assert any(line.split("|")[3] == "mqttx-client" for line in out), out
    else:
        assert any(line.split("|")[4] == "/mqtt" for line in out), out


@pytest.mark.real
@pytest.mark.parametrize("name", ["tls-passthrough-sni", "tls-nginx-terminates"])
def test_tshark_reads_the_sni_of_the_client_hello(name: str, tshark_bin: str,
                                                  tmp_path: Path) -> None:
    """The ClientHello realip writes is one Wireshark dissects: the SNI is there, in clear,
    on the client's link (and no encrypted record is invented)."""
    trace = simulate(load(str(ROOT / "data" / "topologies" / f"{name}.yaml")))
    pcap = tmp_path / f"{name}.pcap"
    trace.to_pcap(str(pcap))
    out = subprocess.run(
        [tshark_bin, "-r", str(pcap), "-d", f"tcp.port=={trace.links[0].dst.port},tls",
         "-T", "fields", "-E", "separator=|", "-e", "tcp.dstport",
         "-e", "tls.handshake.type", "-e", "tls.handshake.extensions_server_name",
         "-e", "tls.record.content_type"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()
    hellos = [line.split("|") for line in out if line.split("|")[1] == "1"]
    assert hellos and hellos[0][2] == trace.topology.client.sni, out
    assert not any("23" in line.split("|")[3].split(",") for line in out), out
