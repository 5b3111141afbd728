"""How :class:`realip.lab.Lab` picks its broker from :data:`realip.lab.drivers.BROKER_DRIVERS`
(no program runs here: the choice is made when the lab is planned).  The real aedes itself is
driven in tests/real/test_lab_aedes_real.py."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

import realip.lab.drivers as drivers
from realip.errors import ConfigurationError
from realip.lab import Lab, ProgramMissing
from realip.lab.drivers import BROKER_DRIVERS, AedesBroker, RealBroker, broker_driver
from realip.lab.drivers.aedes import find_aedes

AEDES = "aedes-malformed-header-down"


def test_the_registry_names_the_real_brokers() -> None:
    entry = broker_driver("aedes")
    assert entry is not None and entry is BROKER_DRIVERS["aedes"]
    assert entry.driver is AedesBroker and issubclass(AedesBroker, RealBroker)
    assert entry.find is find_aedes
    # every other broker kind is played by the lab broker
    assert broker_driver("emqx") is None and broker_driver("mosquitto") is None


@pytest.fixture
def no_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry's aedes as if node or its packages were missing."""
    entry = replace(BROKER_DRIVERS["aedes"], find=lambda **kw: None,
                    missing=lambda: "node is not installed")
    monkeypatch.setattr(drivers, "BROKER_DRIVERS", MappingProxyType({"aedes": entry}))


def test_auto_without_node_falls_back_to_the_lab_broker_and_says_so(
        no_node: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REALIP_REQUIRE_REAL", raising=False)
    lab = Lab(AEDES, progress="none")
    assert lab.broker_choice == "auto" and not lab.broker_run.real
    text = lab.describe()
    assert "aedes 1.2.0 tcp listener → lab broker" in text
    assert "note: node is not installed: the lab broker models aedes 1.2.0" in text


def test_require_real_makes_a_missing_node_an_error(no_node: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALIP_REQUIRE_REAL", "1")
    with pytest.raises(ProgramMissing, match=r"node is not installed.*nodejs npm"):
        Lab(AEDES, progress="none")
    monkeypatch.delenv("REALIP_REQUIRE_REAL")
    with pytest.raises(ProgramMissing, match="node is not installed"):
        Lab(AEDES, broker="real", progress="none")
    assert not Lab(AEDES, broker="model", progress="none").broker_run.real


def test_model_and_kinds_without_a_driver() -> None:
    lab = Lab(AEDES, broker="model", progress="none")
    assert lab.broker_run.runner == "lab broker" and lab.notes == []
    assert "→ lab broker" in lab.describe()
    emqx = Lab("tcp-multi-regenerate", progress="none")
    assert not emqx.broker_run.real and emqx.notes == []  # as before: no note
    with pytest.raises(ConfigurationError, match="no real emqx broker"):
        Lab("tcp-multi-regenerate", broker="real", progress="none")
    with pytest.raises(ConfigurationError, match="broker must be one of real, model, auto"):
        Lab(AEDES, broker="node", progress="none")


def test_a_broker_the_real_program_cannot_play_is_modelled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REALIP_REQUIRE_REAL", raising=False)
    from realip.teaching import scenario

    topo = scenario(AEDES)
    off = replace(topo, broker=replace(topo.broker, trust_proxy=False))
    lab = Lab(off, progress="none")
    assert not lab.broker_run.real
    assert any("trust_proxy off: the lab broker models aedes" in n for n in lab.notes)
    with pytest.raises(ConfigurationError, match="trustProxy: true"):
        Lab(off, broker="real", progress="none")


def test_the_model_lab_still_plays_aedes_live() -> None:
    """broker="model": the lab broker playing aedes (no node needed) — the crash is predicted
    and refused, but nothing dies."""
    with Lab(AEDES, broker="model", progress="none") as lab:
        probe = lab.connect()
        assert probe.agree and probe.peername is None and probe.predicted_down
        assert not probe.down and lab.broker_alive and not lab.restart_broker()
