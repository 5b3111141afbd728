"""``realip audit --live``: the audit's battery sent through the live lab — the real nginx /
HAProxy (or the python relays) and the broker on loopback — with the live verdict beside the
simulated one for every row.  The broker is what :class:`~realip.lab.Lab` picks from
:data:`realip.lab.drivers.BROKER_DRIVERS` (*broker* ``"auto"``: the real aedes for an aedes
scenario when node and its packages are installed, else the lab broker playing the model);
:attr:`LiveRow.broker` says which ran.

Every position the simulated audit has runs live: the edge (the client dials the first hop),
each inner hop and the broker (with ``--reach-inner``: the client dials that node straight
from its own loopback address, :meth:`realip.lab.Lab.connect`'s *at*).  The inner hop sees the
attacker's address as its TCP peer, exactly as the simulator's row assumes; the lab's trust
lists are the scenario's mapped onto loopback (:func:`realip.render.map_cidrs`), so a hop
trusts the hop before it and not the attacker, as in the scenario.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..audit import Report, Row, _at, judge_recorded
from .lab import Lab

__all__ = ["LiveRow", "live_audit"]


@dataclass(frozen=True)
class LiveRow:
    """One audit row and what the live lab gave: the recorded peername and the verdict (None
    when the row did not run live), whether live and simulated verdicts agree."""

    row: Row
    live_recorded: str | None
    live_verdict: str | None
    note: str = ""
    #: what ran the broker (``"real aedes 1.2.0"``, ``"lab broker"``)
    broker: str = ""

    @property
    def agree(self) -> bool | None:
        """None when not run live."""
        return None if self.live_verdict is None else self.live_verdict == self.row.verdict


def entry_name(report: Report, row: Row) -> str:
    """The node *row*'s attacker dials: the hop at the row's position, or the broker."""
    topo = report.topology
    nodes = [*(h.name for h in topo.hops), topo.broker.name]
    return nodes[row.position.index]


def live_audit(report: Report, *, proxies: str = "real", progress: str = "none",
               rows: list[Row] | None = None, broker: str = "auto") -> Iterator[LiveRow]:
    """Run *report*'s rows (or the chosen *rows* of it) on the live lab (see the module
    documentation); *broker* is :class:`~realip.lab.Lab`'s (``auto``, ``real``, ``model``)."""
    topo = report.topology
    with Lab(topo, proxies=proxies, progress=progress, broker=broker) as lab:
        attacker = lab.addresses[topo.client.name]
        run = lab.broker_run
        ran = f"real {run.runner} {run.version}" if run.real else run.runner
        for row in report.rows if rows is None else rows:
            # the attacker speaks what that node is spoken to in the honest chain: plain bytes
            # behind a TLS-terminating hop (the audit's own rule, realip.audit._at)
            speaks_tls = _at(topo, row.position.index).client.tls
            probe = lab.connect(headers=row.attack.headers, forge_proxy=row.attack.proxy,
                                at=entry_name(report, row), raw=True,
                                client=None if speaks_tls == topo.client.tls
                                else {"tls": speaks_tls})
            recorded = probe.peername
            if recorded is not None and recorded.rsplit(":", 1)[0] == topo.client.addr:
                # an attack that writes the attacker's own (scenario) address in its header
                # (proxy-v2-ssl-cn): on loopback that address is the attacker's
                recorded = f"{attacker}:{recorded.rsplit(':', 1)[1]}"
            verdict, _ = judge_recorded(recorded, row.attack, attacker,
                                        username=probe.username)
            if probe.down:  # the real broker's process died: the audit's DOWN
                verdict = "DOWN"
            # the simulator on the lab's own addresses, for the same bytes: agreement of the two
            # is the lab's own check; the row's verdict is the one on the scenario's addresses
            note = "" if probe.agree else f"lab prediction {probe.predicted}"
            yield LiveRow(row, probe.peername, verdict, note, ran)
