"""``realip audit --live``: for every bundled scenario with a real proxy, the whole battery sent
through the real nginx / HAProxy and the lab's broker gives the same verdict as the simulator,
row by row, from every position the attacker model has with --reach-inner: the edge, each
inner hop dialled straight from the attacker's own address (``Lab.connect(at=…)``), and the
broker.  No row is left out, and the setups with every computed fix applied are run the same
way: the whole file takes about 60 s here (21 scenarios, 875 rows, then the fixed setups)."""

from __future__ import annotations

import pytest

from realip.audit import audit
from realip.lab.live_audit import live_audit
from realip.topology import Topology, load_scenario

from ._programs import proxied_scenarios

pytestmark = pytest.mark.real

SCENARIOS = proxied_scenarios()


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_live_verdicts_agree_with_the_simulated_ones(request: pytest.FixtureRequest,
                                                     topo: Topology) -> None:
    request.getfixturevalue("nginx_bin")
    request.getfixturevalue("haproxy_bin")
    report = audit(topo, reach_inner=True, fix=False)
    # --reach-inner adds one position per inner hop and one for the broker
    positions = {r.position.index for r in report.rows}
    assert positions == set(range(len(topo.hops) + 1))
    rows = list(live_audit(report, proxies="real"))
    assert len(rows) == len(report.rows)
    assert all(r.live_verdict is not None for r in rows)
    differ = [(r.row.position.name, r.row.attack.name, r.row.verdict, r.live_verdict,
               r.live_recorded) for r in rows if not r.agree]
    assert differ == []
    # the lab's own prediction (the simulator on the lab's loopback addresses and ports) is
    # what the broker recorded, row by row
    assert [r.note for r in rows if r.note] == []


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_the_fixed_setup_holds_live(request: pytest.FixtureRequest, topo: Topology) -> None:
    """The setup with every computed fix applied (report.fixed: up to four changes per row,
    e.g. ws-edge-appends' lb2 trusting lb1's X-Real-IP) runs on the real programs and gives
    the re-audit's verdicts, row by row — the fixes are real configuration, not a model's."""
    request.getfixturevalue("nginx_bin")
    request.getfixturevalue("haproxy_bin")
    report = audit(topo, reach_inner=True)
    if report.fixed is None:
        assert report.ok or all(r.fix is None for r in report.rows
                                if r.verdict in ("SPOOFED", "DOWN"))
        return
    again = audit(report.fixed, reach_inner=True, fix=False)
    rows = list(live_audit(again, proxies="real"))
    assert len(rows) == len(again.rows)
    differ = [(r.row.position.name, r.row.attack.name, r.row.verdict, r.live_verdict,
               r.live_recorded) for r in rows if not r.agree]
    assert differ == []


def test_inner_positions_give_their_own_verdicts(nginx_bin: str) -> None:
    """The inner rows are not the edge's again: in ws-multi-nonrecursive an edge forgery is
    LOST (lb3 does not walk back past lb2), while an attacker that dials lb2 or lb3 itself is
    named by its own address (SAFE) — live as simulated."""

    report = audit(load_scenario("ws-multi-nonrecursive"), reach_inner=True, fix=False)
    chosen = [r for r in report.rows if r.attack.name == "xff-one"]
    live = {lr.row.position.index: lr.live_verdict
            for lr in live_audit(report, proxies="real", rows=chosen)}
    assert live == {0: "LOST", 1: "SAFE", 2: "SAFE", 3: "SAFE"}


def test_cli_live_runs_every_position(nginx_bin: str, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    """``python -m realip audit ws-multi-recursive --live --reach-inner --json``: every row of
    every position has a live verdict that agrees (exit 1: something is SPOOFED, not 4)."""
    import json

    from realip.__main__ import main

    code = main(["audit", "ws-multi-recursive", "--live", "--reach-inner", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 1
    assert {r["position"] for r in rows} == {"the edge (→ lb1)", "inside (→ lb2 directly)",
                                             "inside (→ lb3 directly)",
                                             "inside (→ emqx directly)"}
    report = audit(load_scenario("ws-multi-recursive"), reach_inner=True, fix=False)
    assert len(rows) == len(report.rows) >= 100 and all(r["agree"] is True for r in rows)
