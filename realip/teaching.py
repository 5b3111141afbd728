"""Helpers for the workshop notebooks: the scenarios and configurations in ``data/``, "reveal"
cells, a sandbox for pasted configurations, and self-checking exercises.

:func:`check` answers an exercise with a ✓/✗ table and a hint.  It never raises, whatever the
answer (``None`` means "not answered yet"), so "Run All" stays green on the student notebook.
Every expected value is computed by the simulator or a resolver at check time — nothing is
hard-coded where a computation exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .importers import Imported
    from .topology import Topology, Trace

__all__ = [
    "EXERCISES",
    "CheckResult",
    "Exercise",
    "Exploration",
    "Reveal",
    "check",
    "config",
    "data_dir",
    "explore",
    "reveal",
    "scenario",
    "scenario_table",
]


# ==============================================================================================
# Data


def data_dir() -> Path:
    """The scenarios' and configurations' folder (:func:`realip.topology.data_dir`: the
    package's own data, or ``$REALIP_DATA``)."""
    from .topology import data_dir as folder

    return folder()


def scenario(name: str) -> Topology:
    """The scenario called *name* (or a path to a YAML file):
    :func:`realip.topology.load_scenario`."""
    from .topology import load_scenario

    return load_scenario(name)


class Code:
    """A configuration file's text, shown as a code block."""

    def __init__(self, text: str, title: str = "") -> None:
        self.text = text
        self.title = title

    def __repr__(self) -> str:
        return (f"# {self.title}\n" if self.title else "") + self.text.rstrip("\n")

    def _repr_html_(self) -> str:
        from ._text import esc

        title = f"<div><b>{esc(self.title)}</b></div>" if self.title else ""
        return (f'{title}<pre class="realip-config" style="font-size:85%;background:#f7f7f7;'
                f'padding:6px">{esc(self.text.rstrip())}</pre>')


def config(name: str) -> Code:
    """The configuration file ``data/nginx/<name>`` or ``data/haproxy/<name>`` (the extension
    may be left out), displayed as a code block; ``.text`` is the raw text."""
    base = data_dir()
    for folder, ext in (("nginx", ".conf"), ("haproxy", ".cfg")):
        for candidate in (base / folder / name, base / folder / f"{name}{ext}"):
            if candidate.is_file():
                return Code(candidate.read_text(encoding="utf-8"), f"{folder}/{candidate.name}")
    raise ConfigurationError(f"no configuration {name!r} in data/nginx or data/haproxy")


def scenario_table(names: Sequence[str] | None = None) -> Any:
    """The scenarios *names* (default: every one in ``data/topologies``): title, the peername the
    simulator computes and whether the broker sees the real client (a
    :class:`realip.viz.Table`)."""
    from ._text import Table
    from .topology import simulate

    if names is None:
        names = sorted(p.stem for p in (data_dir() / "topologies").glob("*.yaml"))
    rows, marks = [], []
    for name in names:
        topo = scenario(name)
        trace = simulate(topo)
        good = trace.connected and trace.client_addr == topo.client.addr
        outcome = trace.peername if trace.connected else "connection closed"
        rows.append((name, topo.title, str(outcome), "yes" if good else "no"))
        marks.append("#2e7d32" if good else "#c62828")
    return Table(("scenario", "what it shows", "broker peername", "real client?"), rows,
                 max_width=52, marks=marks)


# ==============================================================================================
# Reveal cells


class Reveal:
    """An answer hidden behind a click (an HTML ``<details>`` element); the text face shows it
    plainly, so a stored notebook still records it."""

    def __init__(self, answer: object, label: str = "Reveal the answer",
                 explanation: str = "") -> None:
        self.answer = answer
        self.label = label
        self.explanation = explanation

    def _body(self) -> str:
        value = self.answer if isinstance(self.answer, str) else repr(self.answer)
        return value + (f"\n{self.explanation}" if self.explanation else "")

    def __repr__(self) -> str:
        return f"{self.label}: {self._body()}"

    def _repr_html_(self) -> str:
        from ._text import esc

        return (f'<details class="realip-reveal"><summary style="cursor:pointer;color:#1565c0">'
                f"{esc(self.label)}</summary><pre>{esc(self._body())}</pre></details>")


def reveal(answer: object, label: str = "Reveal the answer", explanation: str = "") -> Reveal:
    """Show *answer* (computed by the cell) only when the reader opens it."""
    return Reveal(answer, label, explanation)


# ==============================================================================================
# A sandbox for pasted configurations (notebook 09)


@dataclass(frozen=True)
class Exploration:
    """The topology built from pasted configurations, its simulation and what the importers
    could not model."""

    topology: Topology
    trace: Trace
    warnings: tuple[str, ...]

    def __repr__(self) -> str:
        lines = [f"- {w}" for w in self.warnings]
        head = ["not modelled (the prediction ignores these):", *lines, ""] if lines else []
        return "\n".join([*head, self.trace.table()])


_HOP_ADDRS = ("172.16.0.116", "172.16.0.200", "172.16.0.225")
_HOP_PORTS = (41316, 46208, 50112)


def _parse_endpoint(text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest.lstrip(":")) if rest.strip(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def _looks_like_haproxy(text: str) -> bool:
    import re

    return re.search(r"^(frontend|backend|listen|defaults|global)\b", text, re.M) is not None


def explore(configs: str | Sequence[str], *, client: str = "1.94.170.163:50412",
            forge_xff: str | None = None, forge_proxy: str | None = None,
            client_headers: Sequence[tuple[str, str]] = (),
            broker: Mapping[str, Any] | None = None) -> Exploration:
    """Simulate a chain of pasted configurations (nginx.conf or haproxy.cfg, one per hop, in
    order from the client).  The first hop is LB 1 at 172.16.0.116 (public 121.36.192.227); every
    next hop and the broker are where the previous file sends its traffic.  The client is
    *client* (``addr:port``) and speaks WebSocket when any hop is an HTTP proxy, else TCP.  The
    broker is EMQX; *broker* overrides its settings (``proxy_protocol``,
    ``proxy_address_header`` …; by default it reads a PROXY header when the last hop sends one,
    and X-Forwarded-For / X-Forwarded-Port on WebSocket).

    Raises :class:`~realip.ConfigurationError` for a file the importers cannot read."""
    from .importers import chain, from_haproxy_cfg, from_nginx_conf
    from .topology import Broker, Client, HAProxy, NginxHttp, NginxStream, simulate

    texts = [configs] if isinstance(configs, str) else list(configs)
    if not texts:
        raise ConfigurationError("paste at least one configuration")
    imported: list[Imported] = []
    for k, text in enumerate(texts):
        name = f"lb{k + 1}"
        addr = _HOP_ADDRS[k] if k < len(_HOP_ADDRS) else f"172.16.0.{230 + k}"
        port = _HOP_PORTS[k] if k < len(_HOP_PORTS) else 50112 + k
        public = "121.36.192.227" if k == 0 else None
        reader = from_haproxy_cfg if _looks_like_haproxy(text) else from_nginx_conf
        imported.append(reader(text, name=name, addr=addr, public=public, source_port=port))
    hops = [i.hops[0] for i in imported]
    http = any(isinstance(h, NginxHttp) or (isinstance(h, HAProxy) and h.mode == "http")
               for h in hops)
    last = hops[-1]
    sends_proxy = (isinstance(last, NginxStream) and last.proxy_protocol != "off") or (
        isinstance(last, HAProxy) and last.send_proxy != "off")
    host, port = _parse_endpoint(client, 50412)
    transport: Literal["tcp", "ws"] = "ws" if http else "tcp"
    settings: dict[str, Any] = {"addr": "172.16.0.71", "listener": transport,
                                "proxy_protocol": sends_proxy}
    if http:
        settings.update(proxy_address_header="X-Forwarded-For",
                        proxy_port_header="X-Forwarded-Port")
    from .programs import BROKER_KINDS
    from .schema import broker_model, validate_broker

    given = dict(broker or {})
    kind = given.get("kind", Broker.kind)
    if kind in BROKER_KINDS:  # our defaults only where that kind has the setting
        own = broker_model(kind).model_fields
        settings = {k: v for k, v in settings.items() if k in own}
    settings.update(given)
    checked = validate_broker(settings)  # the scenario language's checks (ScenarioError)
    assert checked is not None
    topo = chain(Client(addr=host, port=port, transport=transport,
                        headers=tuple(client_headers)),
                 imported, Broker(**checked), name="pasted").checked()
    trace = simulate(topo, forge_xff=forge_xff or None, forge_proxy=forge_proxy or None)
    warnings = tuple(f"{hops[k].name}: {w}" for k, i in enumerate(imported) for w in i.warnings)
    return Exploration(topo, trace, warnings)


# ==============================================================================================
# Exercises


@dataclass(frozen=True)
class Row:
    """One criterion of a check."""

    passed: bool
    what: str
    detail: str = ""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of :func:`check`: one :class:`Row` per criterion and, unless everything
    passed, the exercise's hint.  ``ok`` is True when every criterion passed."""

    exercise: str
    title: str
    rows: tuple[Row, ...]
    hint: str
    answered: bool = True

    @property
    def ok(self) -> bool:
        return self.answered and bool(self.rows) and all(r.passed for r in self.rows)

    def __bool__(self) -> bool:
        return self.ok

    def text(self) -> str:
        lines = [f"Exercise {self.exercise}: {self.title}"]
        for r in self.rows:
            lines.append(f"  {'✓' if r.passed else '✗'} {r.what}"
                         + (f" — {r.detail}" if r.detail else ""))
        passed = sum(r.passed for r in self.rows)
        if self.ok:
            lines.append(f"Solved: {passed} of {len(self.rows)} checks pass.")
        else:
            lines.append(f"{passed} of {len(self.rows)} checks pass.")
            lines.append(f"Hint: {self.hint}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from ._text import esc

        items = []
        for r in self.rows:
            colour = "#2e7d32" if r.passed else "#c62828"
            items.append(f'<tr><td style="color:{colour};font-weight:bold;padding:2px 6px">'
                         f"{'✓' if r.passed else '✗'}</td><td style='text-align:left;"
                         f"padding:2px 6px'>{esc(r.what)}</td><td style='text-align:left;"
                         f"padding:2px 6px;color:#555'>{esc(r.detail)}</td></tr>")
        passed = sum(r.passed for r in self.rows)
        status = (f'<span style="color:#2e7d32">Solved: {passed} of {len(self.rows)} checks '
                  f"pass.</span>" if self.ok else
                  f"{passed} of {len(self.rows)} checks pass.<br><b>Hint:</b> {esc(self.hint)}")
        return (f'<div class="realip-check"><b>Exercise {esc(self.exercise)}: '
                f"{esc(self.title)}</b><table>{''.join(items)}</table>"
                f"<div>{status}</div></div>")


@dataclass(frozen=True)
class Exercise:
    """An exercise: its question, a hint, and the checker turning an answer into rows."""

    id: str
    title: str
    question: str
    hint: str
    checker: Callable[[Any], list[Row]] = field(repr=False)


def _peer(trace: Trace) -> str:
    if trace.peername is not None:
        return trace.peername
    return f"nothing (closed: {trace.failure})"


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _strs(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(f"{what} should be a list of strings, not {type(value).__name__}")


# -- the exercises -----------------------------------------------------------------------------


def _check_tcp_lb2(answer: Any) -> list[Row]:
    from .topology import NginxStream, simulate

    base = scenario("tcp-multi-regenerate-untrusted")
    if not isinstance(answer, Mapping):
        raise TypeError("give LB 2's settings as a dict, e.g. {'proxy_protocol': 'on'}")
    known = {f.name for f in fields(NginxStream)}
    unknown = sorted(set(answer) - known)
    if unknown:
        return [Row(False, "the settings are nginx stream settings",
                    f"unknown: {', '.join(unknown)}; known: listen_proxy_protocol, "
                    "proxy_protocol, set_real_ip_from")]
    topo = base.with_hop("lb2", **{k: _tuples(v) for k, v in answer.items()})
    trace = simulate(topo)
    client = f"{base.client.addr}:{base.client.port}"
    return [
        Row(True, "the settings are nginx stream settings"),
        Row(trace.connected, "the connection reaches EMQX", "" if trace.connected
            else f"closed: {trace.failure}"),
        Row(trace.client_addr == base.client.addr, "EMQX records the client's address",
            f"it records {_peer(trace)}; the client is {client}"),
    ]


def _check_forge_edge(answer: Any) -> list[Row]:
    from .topology import simulate

    base = scenario("ws-edge-appends")
    if not isinstance(answer, str) or not answer.strip():
        raise TypeError("give the forged X-Forwarded-For value as a string")
    trace = simulate(base, forge_xff=answer)
    mine = {p.strip() for p in answer.replace(" ", ",").split(",") if p.strip()}
    got = trace.client_addr
    return [
        Row(trace.connected, "the connection still reaches EMQX",
            "" if trace.connected else f"closed: {trace.failure}"),
        Row(got is not None and got != base.client.addr,
            "EMQX records an address that is not the client's",
            f"it records {_peer(trace)}; the client is {base.client.addr}"),
        Row(got in mine, "the address EMQX records is one you wrote",
            f"your header holds {', '.join(sorted(mine))}"),
    ]


def _check_fix_edge(answer: Any) -> list[Row]:
    from .topology import NginxHttp, simulate

    base = scenario("ws-edge-appends")
    if not isinstance(answer, Mapping):
        raise TypeError("give LB 1's two proxy_set_header values as a dict "
                        "{'X-Forwarded-For': …, 'X-Forwarded-Port': …}")
    lb1 = base.hop("lb1")
    assert isinstance(lb1, NginxHttp)
    values = {k.lower(): str(v) for k, v in answer.items()}
    headers = tuple((k, values.get(k.lower(), v)) for k, v in lb1.proxy_set_header)
    topo = base.with_hop("lb1", proxy_set_header=headers)
    rows = []
    for forged in ("127.0.0.1", "8.8.8.8, 10.0.0.1"):
        trace = simulate(topo, forge_xff=forged)
        addr_ok = trace.client_addr == base.client.addr
        rows.append(Row(addr_ok, f"the address is the client's when it forges {forged!r}",
                        f"EMQX records {_peer(trace)}"))
    trace = simulate(topo)
    port_ok = trace.connected and trace.peername == f"{base.client.addr}:{base.client.port}"
    rows.append(Row(port_ok, "the port is the client's too (it also forges X-Forwarded-Port)",
                    f"EMQX records {_peer(trace)}; the client is "
                    f"{base.client.addr}:{base.client.port}"))
    return rows


def _check_mistrusted(answer: Any) -> list[Row]:
    from .resolve import nginx_realip
    from .topology import simulate

    base = scenario("ws-trust-covers-clients")
    ranges = _strs(answer, "set_real_ip_from")
    try:
        probe = nginx_realip(base.client.addr, [("X-Forwarded-For", "192.0.2.1")],
                             set_real_ip_from=ranges, real_ip_header="X-Forwarded-For",
                             recursive=True)
    except ConfigurationError as exc:
        return [Row(False, "every entry is a valid set_real_ip_from value", str(exc))]
    client_trusted = bool(probe.trace and probe.trace[0].trusted)
    topo = base.with_hop("lb3", set_real_ip_from=ranges)
    rows = [Row(True, "every entry is a valid set_real_ip_from value"),
            Row(not client_trusted, "the client's own address is not trusted",
                f"{base.client.addr} matches {probe.trace[0].rule}" if client_trusted else "")]
    for forged in (None, "172.16.0.5"):
        trace = simulate(topo, forge_xff=forged)
        what = "EMQX records the client" + (f" even when it forges {forged!r}" if forged
                                            else "")
        rows.append(Row(trace.client_addr == base.client.addr, what,
                        f"EMQX records {_peer(trace)}"))
    return rows


def _check_v1(answer: Any) -> list[Row]:
    from .topology import simulate

    trace = simulate(scenario("tcp-single-tier"))
    expected = trace.links[1].proxy_header or b""
    if isinstance(answer, str):
        answer = answer.encode("latin-1")
    if not isinstance(answer, (bytes, bytearray)):
        raise TypeError("give the header as a string or bytes")
    got = bytes(answer)
    ending = got.endswith(b"\r\n")
    if not ending:
        got += b"\r\n"
    return [
        Row(got.startswith(b"PROXY TCP4 "), "it starts with 'PROXY TCP4 '"),
        Row(ending, "it ends with CRLF (\\r\\n)"),
        Row(got == expected, "it is byte for byte what LB 1 sends",
            "" if got == expected else "compare the order: source, destination, their ports"),
    ]


def _check_v2_size(answer: Any) -> list[Row]:
    from .topology import simulate

    trace = simulate(scenario("haproxy-tcp-accept-proxy-tier"))
    header = trace.links[-1].proxy_header or b""
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise TypeError("give a number of bytes (an int)")
    return [Row(answer == len(header), "the size of the header LB 2 sends to EMQX",
                f"you said {answer}")]


def _predict(scenario_name: str, what: str, pick: Callable[[Trace], str | None]
             ) -> Callable[[Any], list[Row]]:
    def checker(answer: Any) -> list[Row]:
        from .topology import simulate

        if not isinstance(answer, str):
            raise TypeError("give the answer as a string")
        value = pick(simulate(scenario(scenario_name)))
        return [Row(answer.strip() == value, what, f"you said {answer.strip()!r}")]
    return checker


def _check_haproxy(answer: Any) -> list[Row]:
    from .topology import simulate

    base = scenario("haproxy-ws-forwardfor-leftmost")
    if isinstance(answer, Mapping):
        settings = {k: _tuples(v) for k, v in answer.items()}
    elif isinstance(answer, (list, tuple)):
        settings = {"http_request": _tuples(list(answer))}
    else:
        raise TypeError("give LB 1's http-request rules as a list of tuples, e.g. "
                        "[('set-header', 'X-Forwarded-For', '%[src]')]")
    rules = settings.get("http_request", ())
    if not all(isinstance(r, tuple) and r and r[0] in ("set-header", "del-header")
               for r in rules):
        return [Row(False, "every rule is ('set-header', name, value) or ('del-header', "
                    "name)", repr(rules))]
    topo = base.with_hop("lb1", **settings)
    client = f"{base.client.addr}:{base.client.port}"
    rows = [Row(True, "every rule is ('set-header', name, value) or ('del-header', name)")]
    for forged in ("127.0.0.1", "10.0.0.1, 10.0.0.2"):
        trace = simulate(topo, forge_xff=forged)
        rows.append(Row(trace.client_addr == base.client.addr,
                        f"EMQX records the client's address when it forges {forged!r}",
                        f"it records {_peer(trace)}"))
    trace = simulate(topo)
    rows.append(Row(trace.peername == client, "EMQX records the client's port too",
                    f"it records {_peer(trace)}; the client is {client}"))
    return rows


def _check_access(answer: Any) -> list[Row]:
    from .topology import simulate

    rules = _strs(answer, "access_rules") if not isinstance(answer, str) else (answer,)
    attack = scenario("tcp-direct-client-forges-proxy")
    forged = simulate(attack)  # as configured: the forged address is believed
    fixed = simulate(attack.with_broker(access_rules=rules))
    legit_base = scenario("tcp-single-tier")
    legit = simulate(legit_base.with_broker(access_rules=rules))
    return [
        Row(not fixed.connected or fixed.peername != forged.peername,
            "EMQX no longer believes the client's own header",
            f"it records {_peer(fixed)}"),
        Row(legit.client_addr == legit_base.client.addr,
            "a client coming through LB 1 is still recorded correctly",
            f"EMQX records {_peer(legit)}"),
    ]


EXERCISES: dict[str, Exercise] = {e.id: e for e in (
    Exercise("tcp-lb2-trust", "Configure LB 2 so EMQX sees the client",
             "In tcp-multi-regenerate-untrusted LB 2 reads LB 1's PROXY header and writes its "
             "own, but EMQX records LB 1. Give LB 2's settings (a dict of NginxStream fields).",
             "LB 2 must believe LB 1's header: set_real_ip_from must cover LB 1 "
             "(172.16.0.116). Or let LB 2 read and write nothing at all (pass-through).",
             _check_tcp_lb2),
    Exercise("ws-forge-edge", "Forge a header that fools this chain",
             "In ws-edge-appends LB 1 appends to X-Forwarded-For and EMQX takes the leftmost "
             "entry. Which X-Forwarded-For value makes EMQX record an address you chose?",
             "Whatever the client writes stays on the left; EMQX takes the leftmost token.",
             _check_forge_edge),
    Exercise("ws-fix-edge", "Fix the edge LB (method 1)",
             "Give LB 1's proxy_set_header values for X-Forwarded-For and X-Forwarded-Port so "
             "that EMQX records the client's real address and port whatever it forges.",
             "The edge must overwrite, not append: use nginx's variables for the TCP peer "
             "($remote_addr, $remote_port).", _check_fix_edge),
    Exercise("ws-mistrusted-range", "Find the mis-trusted range",
             "In ws-trust-covers-clients LB 3 ends on the forged entry. Give a corrected "
             "set_real_ip_from list for LB 3.",
             "Trust only your own proxies: the LBs all live in 172.16.0.0/24; 0.0.0.0/0 also "
             "covers every client.", _check_mistrusted),
    Exercise("v1-header", "Write LB 1's PROXY v1 header",
             "Write, as a string, the PROXY v1 header LB 1 sends to EMQX in tcp-single-tier.",
             "PROXY TCP4 <source address> <destination address> <source port> <destination "
             "port>\\r\\n — the destination is LB 1's own address and port.", _check_v1),
    Exercise("v2-size", "Size a v2 header",
             "How many bytes is the PROXY v2 header LB 2 sends to EMQX in "
             "haproxy-tcp-accept-proxy-tier (send-proxy-v2 with the crc32c option)?",
             "16 fixed bytes, then the IPv4 address block (4 + 4 + 2 + 2), then each TLV: "
             "3 bytes of type and length plus its value.", _check_v2_size),
    Exercise("predict-untrusted", "Predict the peername",
             "Which peername (address:port) does EMQX record in "
             "tcp-multi-regenerate-untrusted?",
             "Without set_real_ip_from LB 2 keeps its TCP peer as $remote_addr and writes it "
             "into its own header, with that peer's source port.",
             _predict("tcp-multi-regenerate-untrusted", "the peername EMQX records",
                      lambda t: t.peername)),
    Exercise("recursive-off", "real_ip_recursive off",
             "In ws-multi-nonrecursive, which address does LB 3 put in X-Real-IP?",
             "With recursion off nginx takes the rightmost entry without checking it.",
             _predict("ws-multi-nonrecursive", "LB 3's X-Real-IP ($remote_addr)",
                      lambda t: t.view("lb3").variables.get("remote_addr"))),
    Exercise("haproxy-fix", "Make the HAProxy chain safe",
             "In haproxy-ws-forwardfor-leftmost EMQX records the forged 127.0.0.1. Give LB 1's "
             "http-request rules (a list of tuples), or a dict of HAProxy settings, so that "
             "EMQX records the client's address and port.",
             "option forwardfor only adds a line; replace the headers instead: "
             "('set-header', 'X-Forwarded-For', '%[src]') and the same for the port.",
             _check_haproxy),
    Exercise("access-rules", "Shut the side door",
             "In tcp-direct-client-forges-proxy a client reaches EMQX directly and writes its "
             "own PROXY header. Give EMQX access_rules (a list like ['allow …', 'deny all']).",
             "Allow only the load balancers' network (172.16.0.0/24), then deny all.",
             _check_access),
)}


def check(exercise_id: str, answer: Any) -> CheckResult:
    """Check *answer* to exercise *exercise_id*; returns a :class:`CheckResult` (shown as a
    ✓/✗ table with a hint).  Never raises: ``None`` (or ``...``) means "not answered yet", and a
    malformed answer is a ✗ row saying why."""
    ex = EXERCISES.get(exercise_id)
    if ex is None:
        known = ", ".join(EXERCISES)
        return CheckResult(exercise_id, "unknown exercise",
                           (Row(False, "the exercise exists", f"known: {known}"),),
                           "check the exercise name", answered=False)
    if answer is None or answer is ...:
        return CheckResult(ex.id, ex.title, (Row(False, "an answer is given", "not yet"),),
                           ex.hint, answered=False)
    try:
        rows = tuple(ex.checker(answer))
    except Exception as exc:  # a wrong answer is a result, never an exception
        rows = (Row(False, "the answer can be used", f"{type(exc).__name__}: {exc}"),)
    return CheckResult(ex.id, ex.title, rows, ex.hint)

