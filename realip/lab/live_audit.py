"""``realip audit --live``: the audit's battery sent through the live lab — the real nginx /
HAProxy (or the python relays) and the lab's broker on loopback — with the live verdict beside
the simulated one for every row.

The lab dials the first hop or the broker, so the edge rows and the "broker directly" rows run
live; rows that start at an inner hop are listed as not run (the lab cannot dial into the middle
of a chain).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..audit import Report, Row, judge_recorded
from .lab import Lab

__all__ = ["LiveRow", "live_audit"]


@dataclass(frozen=True)
class LiveRow:
    """One audit row and what the live lab gave: the recorded peername and the verdict (None
    when the row cannot run live), whether live and simulated verdicts agree."""

    row: Row
    live_recorded: str | None
    live_verdict: str | None
    note: str = ""

    @property
    def agree(self) -> bool | None:
        """None when not run live."""
        return None if self.live_verdict is None else self.live_verdict == self.row.verdict


def live_audit(report: Report, *, proxies: str = "real", progress: str = "none"
               ) -> Iterator[LiveRow]:
    """Run *report*'s rows on the live lab (see the module documentation)."""
    topo = report.topology
    last = len(topo.hops)
    with Lab(topo, proxies=proxies, progress=progress) as lab:
        attacker = lab.addresses[topo.client.name]
        for row in report.rows:
            if row.position.index not in (0, last):
                yield LiveRow(row, None, None, "not run live: the lab dials only the first hop "
                              "or the broker")
                continue
            probe = lab.connect(headers=row.attack.headers, forge_proxy=row.attack.proxy,
                                direct=row.position.index == last and last > 0, raw=True)
            verdict, _ = judge_recorded(probe.peername, row.attack, attacker)
            # the simulator on the lab's own addresses, for the same bytes: agreement of the two
            # is the lab's own check; the row's verdict is the one on the scenario's addresses
            yield LiveRow(row, probe.peername, verdict,
                          "" if probe.agree else f"lab prediction {probe.predicted}")
