"""IPv6 end to end: the IPv6 scenarios run with the real nginx and the lab's broker inside a
private network namespace (``unshare -n``: only ``lo``, no route anywhere) holding the
scenarios' own addresses; what the broker records is what the simulator predicted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from realip.render import needs_netns
from realip.topology import load

ROOT = Path(__file__).resolve().parents[2]
IPV6 = [p.stem for p in sorted((ROOT / "data" / "topologies").glob("*.yaml"))
        if needs_netns(load(str(p)))]

pytestmark = pytest.mark.real


def test_there_are_ipv6_scenarios() -> None:
    assert {"ipv6-tcp-single-tier", "ipv6-ws-single-tier"} <= set(IPV6)


@pytest.mark.parametrize("proxies", ["python", "real"])
@pytest.mark.parametrize("name", IPV6)
def test_ipv6_scenario_in_a_private_namespace(name: str, proxies: str, nginx_bin: str) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        msg = "needs root, unshare and ip to create a private network namespace"
        if os.environ.get("REALIP_REQUIRE_REAL") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    done = subprocess.run(["unshare", "-n", sys.executable, str(Path(__file__).with_name(
        "_netns_lab.py")), name, proxies], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    probes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(probes) == 2, done.stdout
    for p in probes:
        assert p["peername"] == p["predicted"], p["trace"]
        assert p["notes"] == [], p["notes"]
    assert probes[0]["peername"] == load(str(ROOT / "data" / "topologies" / f"{name}.yaml")).expect
