"""How long a full audit takes: every bundled scenario, all positions (--reach-inner), the whole
battery and the fix search; prints the time per scenario and the slowest (the issue's target:
under 2 s each, simulated)."""

from __future__ import annotations

import time
from pathlib import Path

from realip.audit import audit
from realip.topology import load

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    times = []
    for path in sorted((ROOT / "data" / "topologies").glob("*.yaml")):
        topo = load(str(path))
        best = min(_timed(topo) for _ in range(3))
        times.append((best, path.stem))
        report = audit(topo, reach_inner=True)
        print(f"{path.stem:34s} {best * 1000:7.1f} ms  {len(report.rows):3d} rows  "
              f"{report.summary()}")
    worst = max(times)
    print(f"\nslowest: {worst[1]} {worst[0]:.2f} s (target < 2 s); "
          f"all {len(times)}: {sum(t for t, _ in times):.2f} s")


def _timed(topo: object) -> float:
    t0 = time.perf_counter()
    audit(topo, reach_inner=True)  # type: ignore[arg-type]
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
