"""``realip audit --live``: for every bundled scenario with a real proxy, the battery sent
through the real nginx / HAProxy and the lab's broker gives the same verdict as the simulator,
row by row (from the edge and, with --reach-inner, straight to the broker)."""

from __future__ import annotations

import pytest

from realip.audit import audit
from realip.lab.live_audit import live_audit
from realip.topology import Topology

from ._programs import proxied_scenarios

pytestmark = pytest.mark.real

SCENARIOS = proxied_scenarios()


@pytest.mark.parametrize("topo", SCENARIOS, ids=[t.name for t in SCENARIOS])
def test_live_verdicts_agree_with_the_simulated_ones(request: pytest.FixtureRequest,
                                                     topo: Topology) -> None:
    request.getfixturevalue("nginx_bin")
    request.getfixturevalue("haproxy_bin")
    report = audit(topo, reach_inner=True, fix=False)
    rows = list(live_audit(report, proxies="real"))
    ran = [r for r in rows if r.live_verdict is not None]
    assert len(ran) >= len(report.rows) // 2 and ran
    differ = [(r.row.position.name, r.row.attack.name, r.row.verdict, r.live_verdict,
               r.live_recorded) for r in ran if not r.agree]
    assert differ == []
    skipped = [r for r in rows if r.live_verdict is None]
    assert all(0 < r.row.position.index < len(topo.hops) for r in skipped)
