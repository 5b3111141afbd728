"""Can my setup be spoofed?  Every known forgery against a topology, the verdict of each, and —
for every one that works — the smallest configuration change that closes it, computed on the
simulator (never looked up in a table of advice).

The attacker model is explicit (:class:`Attacker`): an ordinary client at the edge; optionally
it can also reach every inner tier and the broker directly (a common network mistake).  Each
position it can speak from is a row group of the report.

The battery (:func:`battery`) is data: each :class:`Attack` says what it sends (header lines for
the WebSocket upgrade, a PROXY header written first) and what it tries to make the broker
record.  Verdicts:

=========  ======================================================================================
SAFE       the broker records the attacker's real address
SPOOFED    it records the address (or port) the attacker chose — with the hop whose decision let
           it through, and the bytes on every link in the trace
REFUSED    the connection is refused somewhere on the way
DOWN       a receiver or the broker stops serving everybody (its process dies)
LOST       not spoofed, but the broker records a proxy's address, not the client's
=========  ======================================================================================

For a SPOOFED (or DOWN) row every change the programs' rooms propose
(:func:`realip.programs.fixes`) is tried on the simulator, smallest first, starting with the hop
that was fooled: a change is the fix when the attack stops *and* an honest client is still named
as before.  One change, else two; where no pair does it, a best-first search combines up to
:data:`_MAX_CHANGES` (it ranks first what stops the attack but loses the honest client, and
repairs that from the nodes before; bounded by a count of judged states, so a report repeats).
The report applies all the fixes together — one row at a time, each change kept only when fewer
rows fail after it — and audits the result again.

Sans-IO: only the simulator runs; a full audit of a bundled scenario takes well under a second
(``benchmarks/bench_audit.py``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal

from .errors import ConfigurationError
from .programs import Fix, FixContext, fixes
from .proxy_protocol import Endpoint, SSLInfo, build
from .topology import Topology, Trace, simulate

__all__ = ["BATTERY_CLAIM", "Attack", "Attacker", "Position", "Report", "Row", "audit",
           "battery", "judge_recorded"]

Verdict = Literal["SAFE", "SPOOFED", "REFUSED", "DOWN", "LOST"]

#: The address every forgery tries to make the broker record (a documentation address that no
#: scenario labels: a match can only come from the forgery).
BATTERY_CLAIM = "198.51.100.66"
_CLAIM6 = "2001:db8:bad::66"
_CLAIM_PORT = 31337


@dataclass(frozen=True)
class Attack:
    """One forgery: its *name* and *family* (``xff``, ``x-real-ip``, ``forwarded``, ``port``,
    ``proxy``, ``dos``), the transports it applies to, the header lines it adds to the WebSocket
    upgrade and/or the PROXY header it writes first, and what it tries to make the broker
    record (*claim*: an address; *claim_port*: a port; *claim_username*: the identity a
    forged certificate CN gives, where the broker takes one — EMQX ``peer_cert_as_username``)."""

    name: str
    family: str
    description: str
    transports: tuple[str, ...] = ("ws",)
    headers: tuple[tuple[str, str], ...] = ()
    proxy: bytes | None = None
    claim: str | None = BATTERY_CLAIM
    claim_port: int | None = None
    #: the other addresses the forgery writes (recording one of those is a spoof too)
    decoys: tuple[str, ...] = ()
    claim_username: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "family": self.family, "description": self.description,
                "headers": [list(h) for h in self.headers],
                "proxy": None if self.proxy is None else self.proxy.hex(),
                "claim": self.claim, "claim_port": self.claim_port, "decoys": list(self.decoys),
                "claim_username": self.claim_username}


def battery(topology: Topology) -> tuple[Attack, ...]:
    """The forgeries worth trying against *topology* (some use its own addresses: a forged list
    that ends with the trusted proxies' addresses walks further)."""
    c = BATTERY_CLAIM
    proxies = ", ".join(h.addr for h in topology.hops)
    xff = "X-Forwarded-For"
    attacks = [
        Attack("xff-one", "xff", "X-Forwarded-For: one forged address", headers=((xff, c),)),
        Attack("xff-several", "xff", "X-Forwarded-For: a forged address, then another",
               headers=((xff, f"{c}, 192.0.2.1"),), decoys=("192.0.2.1",)),
        Attack("xff-trusted-tail", "xff", "X-Forwarded-For: a forged address followed by the "
               "trusted proxies' own addresses", headers=((xff, f"{c}, {proxies}"),)),
        Attack("xff-loopback", "xff", "X-Forwarded-For: 127.0.0.1 (the article's forgery)",
               headers=((xff, "127.0.0.1"),), claim="127.0.0.1"),
        Attack("xff-100", "xff", "X-Forwarded-For: 100 entries, the forged one first",
               headers=((xff, ", ".join([c, *(f"192.0.2.{i}" for i in range(1, 100))])),),
               decoys=tuple(f"192.0.2.{i}" for i in range(1, 100))),
        Attack("xff-two-lines", "xff", "two X-Forwarded-For lines, the forged one last",
               headers=((xff, "192.0.2.1"), (xff, c)), decoys=("192.0.2.1",)),
        Attack("xff-two-lines-first", "xff", "two X-Forwarded-For lines, the forged one first",
               headers=((xff, c), (xff, "192.0.2.1")), decoys=("192.0.2.1",)),
        Attack("xff-lower-case", "xff", "x-forwarded-for in lower case",
               headers=(("x-forwarded-for", c),)),
        Attack("xff-upper-case", "xff", "X-FORWARDED-FOR in upper case",
               headers=(("X-FORWARDED-FOR", c),)),
        Attack("xff-underscore", "xff", "X_Forwarded_For (underscores: some programs map them "
               "to dashes)", headers=(("X_Forwarded_For", c),)),
        Attack("xff-empty-elements", "xff", "X-Forwarded-For with empty elements",
               headers=((xff, f", ,{c}, "),)),
        Attack("xff-ipv6", "xff", "X-Forwarded-For: an IPv6 address", headers=((xff, _CLAIM6),),
               claim=_CLAIM6),
        Attack("xff-v4-mapped", "xff", "X-Forwarded-For: an IPv4-mapped IPv6 address",
               headers=((xff, f"::ffff:{c}"),)),
        Attack("xff-zone-id", "xff", "X-Forwarded-For: an IPv6 address with a zone id",
               headers=((xff, "fe80::66%eth0"),), claim="fe80::66"),
        Attack("xff-with-port", "xff", "X-Forwarded-For: address:port",
               headers=((xff, f"{c}:{_CLAIM_PORT}"),)),
        Attack("x-real-ip", "x-real-ip", "X-Real-IP: a forged address",
               headers=(("X-Real-IP", c),)),
        Attack("forwarded", "forwarded", "Forwarded: for=<forged>",
               headers=(("Forwarded", f"for={c}"),)),
        Attack("forwarded-quoted-v6", "forwarded", 'Forwarded: for="[v6]:port"',
               headers=(("Forwarded", f'for="[{_CLAIM6}]:{_CLAIM_PORT}"'),), claim=_CLAIM6),
        Attack("forwarded-obfuscated", "forwarded", "Forwarded: an obfuscated id, then the "
               "forged address", headers=(("Forwarded", f"for=_hidden, for={c}"),)),
        Attack("x-forwarded-port", "port", "X-Forwarded-Port: a port of the attacker's choice",
               headers=(("X-Forwarded-Port", str(_CLAIM_PORT)),), claim=None,
               claim_port=_CLAIM_PORT),
    ]
    attacks += _proxy_attacks(topology)
    return tuple(attacks)


# PP2_TYPE_AUTHORITY, PP2_TYPE_UNIQUE_ID and PP2_TYPE_SSL (client: SSL + cert on connection +
# cert in session, verify 0 = "verified", sub-TLV PP2_SUBTYPE_SSL_CN "admin")
_CN = b"admin"
_FORGED_TLVS = ((0x02, b"broker.example"), (0x05, b"forged-id"),
                (0x20, SSLInfo.make(0x07, 0, cn=_CN.decode()).value))


def _proxy_attacks(topology: Topology) -> list[Attack]:
    first = topology.hops[0] if topology.hops else topology.broker
    dst = Endpoint(ip_address(first.addr), first.port)
    six = isinstance(dst.host, IPv6Address)
    src = Endpoint(ip_address(_CLAIM6 if six else BATTERY_CLAIM), _CLAIM_PORT)
    claim = _CLAIM6 if six else BATTERY_CLAIM
    fam = "TCP6" if six else "TCP4"
    both = ("tcp", "ws")
    return [
        Attack("proxy-v1", "proxy", "a forged PROXY v1 header sent first", both,
               proxy=f"PROXY {fam} {claim} {first.addr} {_CLAIM_PORT} {first.port}\r\n"
               .encode(), claim=claim),
        Attack("proxy-v2", "proxy", "a forged PROXY v2 header sent first", both,
               proxy=build(src, dst), claim=claim),
        Attack("proxy-v2-tlvs", "proxy", "a forged PROXY v2 header with authority, unique-id "
               "and SSL (CN) TLVs", both,
               proxy=build(src, dst, tlvs=_FORGED_TLVS), claim=claim,
               claim_username=_CN.decode()),
        Attack("proxy-v2-ssl-cn", "identity", "a PROXY v2 header with the attacker's own "
               "address and an SSL TLV saying 'certificate verified, CN admin': does the "
               "broker give it the username admin?", both,
               proxy=build(Endpoint(ip_address(topology.client.addr), topology.client.port),
                           dst, tlvs=[(0x20, _FORGED_TLVS[2][1])]),
               claim=None, claim_username=_CN.decode()),
        Attack("proxy-malformed", "dos", "a malformed PROXY line (an address no parser "
               "accepts): does it take a receiver down?", both,
               proxy=b"PROXY TCP4 999.0.0.1 " + first.addr.encode() + b" 1 1\r\n", claim=None,
               decoys=("999.0.0.1",)),
        Attack("proxy-unknown", "dos", "PROXY UNKNOWN (valid, but rarely handled): does it "
               "take a receiver down?", both, proxy=b"PROXY UNKNOWN\r\n", claim=None),
    ]


@dataclass(frozen=True)
class Attacker:
    """Where the attacker can speak from: always the edge (an ordinary client of the first
    hop); with *reach_inner*, also straight to every inner hop and to the broker."""

    addr: str
    port: int
    reach_inner: bool = False

    def describe(self, topology: Topology) -> str:
        """One paragraph for the report's head."""
        first = topology.hops[0].name if topology.hops else topology.broker.name
        text = (f"The attacker is an ordinary client at {self.addr}:{self.port} that connects "
                f"to {first} and writes any bytes it likes (headers, PROXY lines).")
        if self.reach_inner:
            text += (" It can also reach every inner tier and the broker directly (a network "
                     "that does not isolate them).")
        else:
            text += " It cannot reach the inner tiers or the broker (--reach-inner to assume so)."
        return text


@dataclass(frozen=True)
class Position:
    """Where an attack is sent from: *index* of the first node it talks to (0 = the first hop;
    ``len(hops)`` = the broker)."""

    name: str
    index: int


@dataclass(frozen=True)
class FixFound:
    """The smallest change (one setting, or several together) that closed one row, the
    configuration diff, and the verdict after it."""

    fixes: tuple[Fix, ...]
    diff: str
    after: str

    @property
    def words(self) -> str:
        """The change(s) in the programs' own words."""
        return " + ".join(f"{f.node}: {f.words}" for f in self.fixes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"changes": [{"node": f.node, "setting": f.setting, "value": _jsonable(f.value),
                             "words": f.words} for f in self.fixes],
                "diff": self.diff, "after": self.after}


@dataclass(frozen=True)
class Row:
    """One attack from one position: the verdict, what the broker recorded, the hop whose
    decision let a forgery through, the sentence why, the trace, and the fix."""

    attack: Attack
    position: Position
    verdict: Verdict
    recorded: str | None
    culprit: str | None
    why: str
    trace: Trace = field(repr=False, compare=False)
    fix: FixFound | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the trace as :meth:`realip.topology.Trace.to_dict` gives it)."""
        return {"attack": self.attack.to_dict(), "position": self.position.name,
                "verdict": self.verdict, "recorded": self.recorded,
                "username": self.trace.username if self.trace is not None else None,
                "culprit": self.culprit,
                "why": self.why, "fix": None if self.fix is None else self.fix.to_dict(),
                "trace": self.trace.to_dict()}


@dataclass(frozen=True)
class Report:
    """The audit of one topology (see the module documentation)."""

    topology: Topology
    attacker: Attacker
    honest: Trace = field(repr=False)
    rows: tuple[Row, ...]
    #: the topology with every fix applied, and its own audit (None when nothing was SPOOFED)
    fixed: Topology | None = field(default=None, repr=False)
    reaudit: Report | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Nothing SPOOFED and nothing DOWN."""
        return not any(r.verdict in ("SPOOFED", "DOWN") for r in self.rows)

    def count(self, verdict: str) -> int:
        """How many rows have *verdict*."""
        return sum(r.verdict == verdict for r in self.rows)

    def summary(self) -> str:
        """``SAFE 20 · SPOOFED 3 · REFUSED 2 · DOWN 0 · LOST 0``."""
        return " · ".join(f"{v} {self.count(v)}" for v in
                          ("SAFE", "SPOOFED", "REFUSED", "DOWN", "LOST"))

    def table(self) -> str:
        """The report as text (what ``python -m realip audit`` prints)."""
        t = self.topology
        lines = [f"audit of {t.name}: {self.summary()}", self.attacker.describe(t),
                 f"an honest client is recorded as {_named(self.honest) or '— (refused)'}", ""]
        width = max(len(r.attack.name) for r in self.rows) if self.rows else 10
        numbers: dict[tuple[Fix, ...], int] = {}
        for r in self.rows:
            if r.fix is not None:
                numbers.setdefault(r.fix.fixes, len(numbers) + 1)
        for pos in dict.fromkeys(r.position for r in self.rows):
            lines.append(f"from {pos.name}:")
            for r in (r for r in self.rows if r.position == pos):
                rec = r.recorded or "—"
                if r.trace is not None and r.trace.username is not None:
                    rec += f" as username {r.trace.username!r}"
                lines.append(f"  {r.verdict:<8} {r.attack.name:<{width}}  records {rec}"
                             + (f"  (taken by {r.culprit})" if r.culprit else "")
                             + (f"  → fix {numbers[r.fix.fixes]}" if r.fix else ""))
                if r.verdict in ("DOWN", "LOST"):
                    lines.append(f"           {r.why}")
                if r.verdict == "SPOOFED" and r.fix is None:
                    lines.append(f"           no change of up to {_MAX_CHANGES} settings the "
                                 "programs propose closes it while an honest client is still "
                                 "named (see the re-audit)")
            lines.append("")
        for combo, n in numbers.items():
            first = next(r.fix for r in self.rows if r.fix and r.fix.fixes == combo)
            assert first is not None
            closes = sum(1 for r in self.rows if r.fix and r.fix.fixes == combo)
            lines.append(f"fix {n} (closes {closes} row{'s' if closes > 1 else ''}, then "
                         f"{first.after}): {first.words}")
            lines += ["    " + d for d in first.diff.splitlines()]
            lines.append("")
        if self.reaudit is not None:
            lines.append(f"with every fix applied: {self.reaudit.summary()}")
            left = [r for r in self.reaudit.rows if r.verdict in ("SPOOFED", "DOWN")]
            for r in left:
                lines.append(f"  still {r.verdict}: {r.attack.name} from {r.position.name}")
        return "\n".join(lines).rstrip() + "\n"

    def __repr__(self) -> str:
        # what a notebook's plain-text view (nbval, GitHub) shows: the report, not the fields
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what ``--json`` prints)."""
        return {"topology": self.topology.name, "ok": self.ok,
                "attacker": self.attacker.describe(self.topology),
                "honest": self.honest.peername,
                "counts": {v: self.count(v) for v in
                           ("SAFE", "SPOOFED", "REFUSED", "DOWN", "LOST")},
                "rows": [r.to_dict() for r in self.rows],
                "reaudit": None if self.reaudit is None else self.reaudit.to_dict()}

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    def _repr_html_(self) -> str:
        from ._text import esc

        colour = {"SAFE": "#d9f2d9", "SPOOFED": "#f8d0d0", "REFUSED": "#e6e6e6",
                  "DOWN": "#f4b6b6", "LOST": "#fbeccb"}
        rows = []
        for r in self.rows:
            fix = "" if r.fix is None else f"<br><code>{esc(r.fix.words)}</code>"
            rows.append(
                f"<tr style='background:{colour[r.verdict]}'><td>{esc(r.position.name)}</td>"
                f"<td><b>{r.verdict}</b></td><td>{esc(r.attack.name)}</td>"
                f"<td>{esc(r.recorded or '—')}</td><td>{esc(r.culprit or '')}</td>"
                f"<td><details><summary>{esc(r.why)}</summary><pre>"
                f"{esc(r.trace.table())}</pre></details>{fix}</td></tr>")
        head = (f"<p><b>audit of {esc(self.topology.name)}</b>: {esc(self.summary())}<br>"
                f"{esc(self.attacker.describe(self.topology))}</p>")
        return (head + "<table><tr><th>from</th><th>verdict</th><th>attack</th>"
                "<th>recorded</th><th>taken by</th><th>why / fix</th></tr>"
                + "".join(rows) + "</table>")


# ==============================================================================================


def _norm(addr: str | None) -> IPv4Address | IPv6Address | str | None:
    if addr is None:
        return None
    text = addr.strip().strip("[]").split("%", 1)[0]
    if text.count(":") == 1 and "." in text:  # an IPv4 address with a port (taken verbatim)
        text = text.split(":", 1)[0]
    try:
        ip = ip_address(text)
    except ValueError:
        return text
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _split(peername: str) -> tuple[str, int | None]:
    host, _, port = peername.rpartition(":")
    return host, int(port) if port.isdigit() else None


def _positions(topology: Topology, attacker: Attacker) -> list[Position]:
    out = [Position(f"the edge (→ {(topology.hops[0] if topology.hops else topology.broker).name})",
                    0)]
    if attacker.reach_inner:
        for i, hop in enumerate(topology.hops[1:], 1):
            out.append(Position(f"inside (→ {hop.name} directly)", i))
        if topology.hops:
            out.append(Position(f"inside (→ {topology.broker.name} directly)",
                                len(topology.hops)))
    return out


def _at(topology: Topology, index: int) -> Topology:
    """The chain an attacker at position *index* talks to.  It speaks what that node is
    spoken to in the honest chain: TLS only where the client's own TLS connection still
    travels (a plain listener behind a TLS-terminating proxy gets plain bytes)."""
    cut = replace(topology, hops=topology.hops[index:])
    if index and topology.client.tls:
        honest = simulate(topology)
        carried = index < len(honest.links) and honest.links[index].tls is not None and \
            honest.links[index].tls is honest.links[0].tls
        if not carried:
            cut = replace(cut, client=replace(cut.client, tls=False))
    return cut


def _run(topology: Topology, attack: Attack | None, position: Position) -> Trace:
    t = _at(topology, position.index)
    if attack is not None:
        client = replace(t.client, headers=(*t.client.headers, *attack.headers),
                         send_proxy=attack.proxy)
        t = replace(t, client=client)
    return simulate(t)


def _crashed(trace: Trace) -> str | None:
    for v in trace.views:
        acc = v.acceptance
        if acc is not None and getattr(acc, "crash", False):
            return v.name
    return None


def _believed(trace: Trace, attack: Attack) -> str | None:
    """The first node (from the attacker's side) whose own decision took the forged value."""
    want = _norm(attack.claim)
    for v in trace.views:
        res = v.resolution
        if res is not None and want is not None and _norm(res.addr) == want:
            return v.name
        if res is not None and attack.claim_port is not None and res.port == attack.claim_port:
            return v.name
        acc = v.acceptance
        if acc is not None and acc.source is not None and want is not None and \
                _norm(str(acc.source.host)) == want:
            return v.name
    return trace.views[-1].name if trace.views else None


def _judge(trace: Trace, attack: Attack | None, attacker: Attacker
           ) -> tuple[Verdict, str | None, str]:
    down = _crashed(trace)
    if down is not None:
        return "DOWN", None, (f"{down} stops: the process serving every client dies "
                              f"({trace.failure or 'crash'})")
    if trace.peername is None:
        return "REFUSED", None, trace.failure or "refused"
    verdict, why = judge_recorded(trace.peername, attack, attacker.addr, trace.username)
    if verdict == "SPOOFED" and attack is not None and attack.claim_username is not None \
            and trace.username == attack.claim_username:
        who = next((v.name for v in trace.views if v.username is not None), None)
        return "SPOOFED", who, why
    if verdict != "SPOOFED" or attack is None:
        return verdict, None, why
    host, _ = _split(trace.peername)
    if _norm(host) in {_norm(a) for a in (attack.claim, *attack.decoys) if a}:
        who = _believed(trace, replace(attack, claim=host))
        who = who or (trace.views[-1].name if trace.views else None)
        return "SPOOFED", who, (f"the broker records the forged {host}: {who} took it "
                                "from what the attacker sent")
    who = _believed(trace, attack)
    return "SPOOFED", who, (f"the broker records the forged port {attack.claim_port}: "
                            f"{who} took it from what the attacker sent")


def judge_recorded(peername: str | None, attack: Attack | None, attacker_addr: str,
                   username: str | None = None) -> tuple[Verdict, str]:
    """The verdict for what a broker recorded (*peername*, None = refused; *username*, the
    identity it gave from a certificate) after *attack* from *attacker_addr* — the same rule
    for the simulator and for a live run."""
    if peername is None:
        return "REFUSED", "refused"
    if attack is not None and attack.claim_username is not None and \
            username == attack.claim_username:
        return "SPOOFED", (f"the broker gives the username {username!r} from the forged SSL "
                           "TLV (no certificate was shown)")
    host, port = _split(peername)
    forged = {_norm(a) for a in (attack.claim, *attack.decoys) if a} if attack else set()
    if attack is not None and (_norm(host) in forged or
                               (attack.claim_port is not None and port == attack.claim_port)):
        return "SPOOFED", f"the broker records the forged {peername}"
    if _norm(host) == _norm(attacker_addr):
        return "SAFE", "the broker records the attacker's real address"
    return "LOST", (f"not spoofed, but the broker records {peername} (a proxy), not the "
                    "client")


def _nodes(topology: Topology) -> list[Any]:
    return [*topology.hops, topology.broker]


def _with(topology: Topology, fix: Fix) -> Topology:
    hops = tuple(fix.apply(h) if h.name == fix.node else h for h in topology.hops)
    broker = fix.apply(topology.broker) if topology.broker.name == fix.node \
        else topology.broker
    return replace(topology, hops=hops, broker=broker)


def _context(topology: Topology, index: int, attacker: Attacker) -> FixContext:
    sender = topology.client.addr if index == 0 else _nodes(topology)[index - 1].addr
    upstream = tuple(h.addr for h in topology.hops[:index])
    return FixContext(index, sender, attacker.addr, upstream)


def _candidates(topology: Topology, culprit: str | None, attacker: Attacker) -> list[Fix]:
    nodes = _nodes(topology)
    order = sorted(range(len(nodes)), key=lambda i: (nodes[i].name != culprit, i))
    out: list[Fix] = []
    for i in order:
        try:
            out += fixes(nodes[i], _context(topology, i, attacker))
        except ConfigurationError:  # a room without fixes for this configuration
            continue
    return out


def _still_honest(topology: Topology, honest: str | None) -> bool:
    """An honest client from the edge is still recorded as *honest* (its address and port, as
    before the change; None: it was not named right before, nothing to keep) — a fix that
    breaks the chain, or names the client with a proxy's port, is no fix."""
    if honest is None:
        return True
    return _named(simulate(topology)) == honest


def _named(trace: Trace) -> str | None:
    """How a trace names its client: the peername, and the username the broker gives it from
    a certificate (a fix that loses a device's certificate identity is no fix either)."""
    if trace.peername is None:
        return None
    return trace.peername + ("" if trace.username is None else f" as {trace.username!r}")


def _diff(before: Topology, after: Topology, fix: Fix) -> str:
    """The change as a unified diff of the hop's configuration file (with the scenario's own
    addresses), or as the setting's old and new value where the program has none here."""
    from .render import config_file, netns_plan

    plan = netns_plan(before)
    try:
        a = config_file(before, fix.node, plan, prefix="/etc/realip")
        b = config_file(after, fix.node, plan, prefix="/etc/realip")
    except (ConfigurationError, KeyError, ValueError):
        a = b = None
    if a is None or b is None:
        node = next(n for n in _nodes(before) if n.name == fix.node)
        old = getattr(node, fix.setting)
        return f"- {fix.node}.{fix.setting}: {old!r}\n+ {fix.node}.{fix.setting}: {fix.value!r}"
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), f"{fix.node} (now)",
                                 f"{fix.node} (fixed)", n=1, lineterm="")
    return "\n".join(lines)


def _works(topology: Topology, fixed: Topology, row: Row, honest: str | None,
           attacker: Attacker) -> str | None:
    try:
        trace = _run(fixed, row.attack, row.position)
    except ConfigurationError:
        return None
    verdict = _judge(trace, row.attack, attacker)[0]
    if verdict in ("SPOOFED", "DOWN") or not _still_honest(fixed, honest):
        return None
    return verdict


@dataclass
class _Budget:
    """How many more states (a fixed topology judged against one row and an honest client)
    the deep search may judge in one audit: counted, not timed, so a report repeats."""

    left: int
    #: (position, culprit, attack family) of rows the deep search found nothing for: the other
    #: forgeries of that family the same node takes from the same position are not searched
    #: again
    failed: set[tuple[int, str | None, str]] = field(default_factory=set)
    #: the same for rows the pair search found no SAFE pair for: the pair search is not
    #: repeated for the others (the changes found so far, *known*, are still tried)
    no_pair: set[tuple[int, str | None, str]] = field(default_factory=set)


def _find_fix(topology: Topology, row: Row, honest: str | None, attacker: Attacker,
              known: Sequence[tuple[Fix, ...]] = (), budget: _Budget | None = None
              ) -> tuple[tuple[Fix, ...], str] | None:
    """The smallest change after which *row*'s attack stops and an honest client is still
    named as before: one setting, else two (changes already found for other rows, *known*,
    first among those of the same size), else — while *budget* lasts — a best-first search
    over up to :data:`_MAX_CHANGES` changes (:func:`_deep_fix`).  A change after which the
    broker records a proxy (LOST) is kept only when the deep search finds nothing better."""
    where = (row.position.index, row.culprit, row.attack.family)
    pairs = budget is None or where not in budget.no_pair
    hit = _shallow_fix(topology, row, honest, attacker, known, pairs)
    if budget is not None and (hit is None or hit[1] == "LOST"):
        budget.no_pair.add(where)
    if (hit is None or hit[1] == "LOST") and budget is not None and budget.left > 0 and \
            where not in budget.failed:
        deep = _deep_fix(topology, row, honest, attacker, known, budget)
        if deep is not None and (hit is None or deep[1] != "LOST"):
            return deep
        budget.failed.add(where)
    return hit


def _shallow_fix(topology: Topology, row: Row, honest: str | None, attacker: Attacker,
                 known: Sequence[tuple[Fix, ...]] = (), pairs: bool = True
                 ) -> tuple[tuple[Fix, ...], str] | None:
    """One change, else two (*pairs*: the first candidates of each side only; the known pairs
    are always tried)."""
    # a change after which the broker records a proxy (LOST) closes the forgery but loses the
    # client: it is kept only when no change of the same size does better
    fallback: tuple[tuple[Fix, ...], str] | None = None

    def good(combo: tuple[Fix, ...], fixed: Topology) -> bool:
        nonlocal fallback
        after = _works(topology, fixed, row, honest, attacker)
        if after is None:
            return False
        if after == "LOST":
            fallback = fallback or (combo, after)
            return False
        found[:] = [(combo, after)]
        return True

    found: list[tuple[tuple[Fix, ...], str]] = []
    for combo in (k for k in known if len(k) == 1):
        if good(combo, _with(topology, combo[0])):
            return found[0]
    singles: list[tuple[Fix, Topology]] = []
    for fix in _candidates(topology, row.culprit, attacker):
        try:
            fixed = _with(topology, fix)
        except ConfigurationError:
            continue
        if good((fix,), fixed):
            return found[0]
        singles.append((fix, fixed))
    if fallback is not None:
        return fallback
    for pair in (k for k in known if len(k) == 2):
        fixed = topology
        for f in pair:
            fixed = _with(fixed, f)
        if good(pair, fixed):
            return found[0]
    # two changes together: only the first candidates of each side (the culprit's own changes
    # come first), so an audit stays well under a second
    for i, (first, once) in enumerate(singles if pairs else []):
        for second in _candidates(once, row.culprit, attacker)[: _PAIR_LIMIT]:
            if second.node == first.node and second.setting == first.setting:
                continue
            try:
                twice = _with(once, second)
            except ConfigurationError:
                continue
            if good((first, second), twice):
                return found[0]
        if i >= _PAIR_LIMIT:
            break
    return fallback


#: How many candidates each side of a pair search tries (keeps an audit well under a second).
_PAIR_LIMIT = 8

#: The most changes the deep search combines into one fix.
_MAX_CHANGES = 4

#: States the deep search may judge for one row, and in one whole audit (each state is two
#: simulations: the row's attack and an honest client; about 0.6 ms each for a 3-hop chain).
_ROW_STATES = 250
_AUDIT_STATES = 800


def _key(t: Topology) -> tuple[Any, ...]:
    return (t.hops, t.broker)


def _deep_fix(topology: Topology, row: Row, honest: str | None, attacker: Attacker,
              known: Sequence[tuple[Fix, ...]], budget: _Budget
              ) -> tuple[tuple[Fix, ...], str] | None:
    """Best-first search over sets of changes, for rows no one or two changes close.

    A state is the topology with some changes made, ranked by (the attack still works, an
    honest client is no longer named, the number of changes, the broker records a proxy):
    states that stop the attack but lose the honest client come first — what they need is a
    repair, searched among the nodes up to the last one changed (the hops that must pass or
    trust what the changed hop now needs).  Every expansion tries each change the rooms
    propose on that state; a state that opens the attack again is dropped.  The search ends at
    the first state where the attack stops and an honest client is named as before (SAFE or
    REFUSED), after :data:`_ROW_STATES` states for this row, or when the audit's *budget* is
    spent; a LOST state (the attack stops, a proxy is recorded) is the fallback."""
    import heapq

    names = [n.name for n in _nodes(topology)]
    seen: set[tuple[Any, ...]] = {_key(topology)}
    spent = 0

    def judge(fixed: Topology) -> tuple[int, int, int, str] | None:
        nonlocal spent
        spent += 1
        budget.left -= 1
        try:
            trace = _run(fixed, row.attack, row.position)
        except ConfigurationError:
            return None
        verdict = _judge(trace, row.attack, attacker)[0]
        bad = int(verdict in ("SPOOFED", "DOWN"))
        return bad, int(not _still_honest(fixed, honest)), int(verdict == "LOST"), verdict

    for combo in sorted((k for k in known if len(k) > 2), key=len):
        fixed = topology
        for f in combo:
            fixed = _with(fixed, f)
        got = judge(fixed)
        if got is not None and got[:3] == (0, 0, 0):
            return combo, got[3]
    fallback: tuple[tuple[Fix, ...], str] | None = None
    frontier: list[tuple[tuple[int, int, int, int], int, tuple[Fix, ...], Topology]] = []
    order = 0
    heapq.heappush(frontier, ((1, 0, 0, 0), order, (), topology))
    while frontier and spent < _ROW_STATES and budget.left > 0:
        (row_bad, honest_bad, size, _), _, combo, state = heapq.heappop(frontier)
        if size >= _MAX_CHANGES:
            continue
        last = max((names.index(f.node) for f in combo), default=len(names) - 1)
        for fix in _candidates(state, row.culprit, attacker):
            if not row_bad and honest_bad and names.index(fix.node) > last:
                continue  # a repair comes from the nodes that feed the changed one
            try:
                fixed = _with(state, fix)
            except ConfigurationError:
                continue
            if _key(fixed) in seen:
                continue
            seen.add(_key(fixed))
            got = judge(fixed)
            if got is None or got[0] > row_bad:
                continue
            bad, lost_honest, lost, verdict = got
            new = (*combo, fix)
            if (bad, lost_honest) == (0, 0):
                if not lost:
                    return new, verdict
                fallback = fallback or (new, verdict)
            order += 1
            heapq.heappush(frontier, ((bad, lost_honest, len(new), lost), order, new, fixed))
            if spent >= _ROW_STATES or budget.left <= 0:
                break
    return fallback


def _found(topology: Topology, fixes_: tuple[Fix, ...], after: str) -> FixFound:
    fixed = topology
    diffs = []
    for f in fixes_:
        nxt = _with(fixed, f)
        diffs.append(_diff(fixed, nxt, f))
        fixed = nxt
    return FixFound(fixes_, "\n".join(diffs), after)


def audit(topology: Topology, *, reach_inner: bool = False,
          attacks: Iterable[Attack] | None = None, fix: bool = True) -> Report:
    """Run the battery (or *attacks*) against *topology* from every position the attacker
    model allows, judge each, and (with *fix*) find the smallest change for every SPOOFED row,
    apply them all and audit the result again."""
    # the scenario's own client may forge already: the audit starts from an honest one, and
    # every attack adds its forgery to that
    topology = replace(topology, client=replace(topology.client, headers=(), send_proxy=None))
    attacker = Attacker(topology.client.addr, topology.client.port, reach_inner)
    chosen: Sequence[Attack] = tuple(attacks) if attacks is not None else battery(topology)
    honest = simulate(topology)
    # what an honest client must still be recorded as after a fix (None: it was not named)
    honest_verdict = _named(honest) if _judge(honest, None, attacker)[0] == "SAFE" else None
    rows: list[Row] = []
    for position in _positions(topology, attacker):
        for attack in chosen:
            if topology.client.transport not in attack.transports:
                continue
            trace = _run(topology, attack, position)
            verdict, culprit, why = _judge(trace, attack, attacker)
            rows.append(Row(attack, position, verdict, trace.peername, culprit, why, trace))
    if not fix:
        return Report(topology, attacker, honest, tuple(rows))
    found = []
    known: list[tuple[Fix, ...]] = []
    budget = _Budget(_AUDIT_STATES)
    for r in rows:
        if r.verdict in ("SPOOFED", "DOWN"):
            hit = _find_fix(topology, r, honest_verdict, attacker, known, budget)
            if hit is not None and hit[0] not in known:
                known.append(hit[0])
            r = replace(r, fix=None if hit is None else _found(topology, *hit))
        found.append(r)
    # every fix together: apply the rows' fixes in turn, then keep closing what is left on the
    # fixed setup (a change can need another one first) until nothing is SPOOFED or no change
    # helps any more
    # (a row no change closes is passed over, not the end: the next one may have a fix; a change
    # is taken only when fewer rows are SPOOFED or DOWN after it, so the result never worsens)
    def failing(t: Topology) -> list[Row]:
        return [r for r in audit(t, reach_inner=reach_inner, attacks=chosen, fix=False).rows
                if r.verdict in ("SPOOFED", "DOWN")]

    fixed = topology
    left = failing(fixed)
    hopeless: set[tuple[str, int]] = set()
    for _ in range(12):
        better = None
        for r in left:
            if (r.attack.name, r.position.index) in hopeless:
                continue
            # no *known* here: a known change was computed on the unfixed setup and sets a whole
            # setting (a hop's header list), so on the fixed one it could undo an earlier fix
            hit = _find_fix(fixed, r, honest_verdict, attacker, (), budget)
            if hit is not None:
                after = fixed
                for f in hit[0]:
                    after = _with(after, f)
                now = failing(after)
                if len(now) < len(left):
                    better = (after, now)
                    break
            hopeless.add((r.attack.name, r.position.index))
        if better is None:
            break
        fixed, left = better
        hopeless.clear()
        if not left:
            break
    if fixed is topology:
        return Report(topology, attacker, honest, tuple(found))
    reaudit = audit(fixed, reach_inner=reach_inner, attacks=chosen, fix=False)
    return Report(topology, attacker, honest, tuple(found), fixed, reaudit)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value
