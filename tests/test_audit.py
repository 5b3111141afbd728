"""realip.audit: every verdict agrees with its own trace, every fix it prints works when
applied, and the CLI's exit status is what an operator's CI needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from realip.audit import BATTERY_CLAIM, audit, battery
from realip.topology import load, simulate

ROOT = Path(__file__).resolve().parents[1]
PATHS = sorted((ROOT / "data" / "topologies").glob("*.yaml"))


def _host(peername: str) -> str:
    return peername.rpartition(":")[0]


def test_the_battery_is_data() -> None:
    attacks = battery(load(str(ROOT / "data" / "topologies" / "ws-single-tier.yaml")))
    names = [a.name for a in attacks]
    assert len(names) == len(set(names)) >= 25
    families = {a.family for a in attacks}
    assert {"xff", "x-real-ip", "forwarded", "port", "proxy", "dos"} <= families
    for a in attacks:
        assert a.headers or a.proxy is not None
        assert a.claim is not None or a.claim_port is not None or a.family == "dos"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_verdict_agrees_with_its_trace(path: Path) -> None:
    report = audit(load(str(path)), reach_inner=True, fix=False)
    assert report.rows
    attacker = report.attacker.addr
    for row in report.rows:
        rec = row.trace.peername
        assert row.recorded == rec
        if row.verdict == "REFUSED":
            assert rec is None
        elif row.verdict == "SAFE":
            assert rec is not None and _host(rec) == attacker
        elif row.verdict == "SPOOFED":
            assert rec is not None
            claimed = row.attack.claim
            assert (claimed is not None and _host(rec).split("%")[0] in
                    (claimed, f"::ffff:{claimed}")) or \
                rec.endswith(f":{row.attack.claim_port}")
            assert row.culprit in [v.name for v in row.trace.views]
        elif row.verdict == "LOST":
            assert rec is not None and _host(rec) != attacker


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_printed_fix_closes_its_row_and_keeps_honest_clients(path: Path) -> None:
    from realip.audit import _run, _with  # the same application the report describes

    topo = load(str(path))
    report = audit(topo)
    honest = simulate(report.topology).peername
    for row in report.rows:
        if row.fix is None:
            continue
        fixed = report.topology
        for f in row.fix.fixes:
            fixed = _with(fixed, f)
        after = _run(fixed, row.attack, row.position)
        assert after.peername is None or BATTERY_CLAIM not in after.peername
        if honest is not None and _host(honest) == report.attacker.addr:
            assert simulate(fixed).peername == honest
        assert row.fix.words and row.fix.diff
    if report.reaudit is not None:
        assert report.reaudit.count("SPOOFED") <= report.count("SPOOFED")


def test_the_article_mistake_and_its_fix() -> None:
    """An edge that appends to X-Forwarded-For lets any client choose EMQX's leftmost entry;
    the fix is to override the header at the edge — shown as a diff of nginx.conf."""
    report = audit(load(str(ROOT / "data" / "topologies" / "ws-edge-appends.yaml")))
    row = next(r for r in report.rows if r.attack.name == "xff-one")
    assert row.verdict == "SPOOFED" and row.recorded is not None
    assert _host(row.recorded) == BATTERY_CLAIM
    assert row.fix is not None and row.fix.after == "SAFE"
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in row.fix.words
    assert '+            proxy_set_header X-Forwarded-For "$remote_addr";' in row.fix.diff
    assert not report.ok
    assert report.reaudit is not None and report.reaudit.ok


def test_a_correct_chain_is_safe_from_the_edge_and_isolation_is_the_fix_inside() -> None:
    topo = load(str(ROOT / "data" / "topologies" / "ws-single-tier.yaml"))
    edge = audit(topo)
    assert edge.ok and edge.count("SPOOFED") == 0 and edge.count("SAFE") > 0
    inner = audit(topo, reach_inner=True)
    direct = [r for r in inner.rows if r.position.index == len(topo.hops)]
    assert any(r.verdict == "SPOOFED" and r.culprit == topo.broker.name for r in direct)
    fix = next(r.fix for r in direct if r.verdict == "SPOOFED")
    assert fix is not None and fix.fixes[0].setting == "access_rules"
    assert inner.reaudit is not None and inner.reaudit.ok


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realip", "audit", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_cli_exit_status_table_and_json() -> None:
    bad = _cli("ws-edge-appends")
    assert bad.returncode == 1 and "SPOOFED" in bad.stdout and "fix 1" in bad.stdout
    good = _cli("ws-single-tier")
    assert good.returncode == 0, good.stdout
    doc = json.loads(_cli("tcp-single-tier", "--reach-inner", "--json").stdout)
    assert doc["ok"] is False and doc["counts"]["SPOOFED"] > 0
    assert {r["verdict"] for r in doc["rows"]} <= {"SAFE", "SPOOFED", "REFUSED", "DOWN", "LOST"}
    missing = _cli("no-such-scenario")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
