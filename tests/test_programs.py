"""The one hop step (``realip.programs.step``) and the registry the generic code asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from realip import programs
from realip.programs import BROKER_KINDS, HOP_KINDS, Inbound, hop_kind, step
from realip.proxy_protocol import decode
from realip.receivers import RECEIVERS
from realip.topology import load, simulate
from realip.wire import endpoint

DATA = Path(__file__).resolve().parent.parent / "data" / "topologies"
SCENARIOS = sorted(DATA.glob("*.yaml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_view_says_whether_it_trusted_its_sender(path: Path) -> None:
    trace = simulate(load(str(path)))
    nodes = [*trace.topology.hops, trace.topology.broker]
    for link, view in zip(trace.links, trace.views, strict=False):
        node = next(n for n in nodes if n.name == view.name)
        assert view.trust is not None
        # the step records the same decision the configuration predicts for that sender
        assert view.trust == programs.trust(node, str(link.src.host))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_structured_fields_agree_with_the_prose(path: Path) -> None:
    trace = simulate(load(str(path)))
    for view in trace.views:
        if view.acceptance is not None and not view.acceptance.accepted:
            assert not view.accepted
        if view.resolution is not None and view.kind == "nginx-http":
            assert view.variables["remote_addr"] == view.resolution.addr
    if trace.connected:
        assert trace.views[-1].peername == trace.peername


def test_the_step_is_what_the_simulator_runs() -> None:
    topo = load(str(DATA / "tcp-multi-regenerate.yaml"))
    trace = simulate(topo)
    lb1, lb2 = topo.hops
    first = trace.links[0]
    out = step(lb1, Inbound(first.data, first.src, first.dst, first.sender,
                            endpoint(lb2.addr, lb2.port), topo.client.client_id))
    assert out.ok and out.parts == trace.links[1].parts
    assert out.view == trace.views[0]
    # the header lb1 writes names the client; lb2 reads it because lb1 is in set_real_ip_from
    header = decode(out.data)
    assert header is not None and str(header.source.host) == topo.client.addr
    assert trace.views[1].acceptance is not None and trace.views[1].acceptance.accepted


def test_registry_names_every_kind_once() -> None:
    assert set(HOP_KINDS) == {"nginx-stream", "nginx-http", "haproxy", "relay"}
    assert set(BROKER_KINDS) >= {"emqx", "mosquitto"}
    for entry in HOP_KINDS.values():
        assert hop_kind(entry.settings(name="x", addr="10.0.0.1", port=1)) is entry
    assert RECEIVERS[:6] == ("spec", "nginx", "haproxy", "emqx-tcp", "emqx-ws", "mosquitto")


def test_unknown_broker_kind_is_a_configuration_error() -> None:
    from realip.errors import ConfigurationError
    from realip.programs import Broker

    with pytest.raises(ConfigurationError, match="broker kind must be one of"):
        hop_kind(Broker(addr="10.0.0.1", kind="vernemq"))  # type: ignore[arg-type]
