"""Helpers for the workshop notebooks: the scenarios and configurations in ``data/``, "reveal"
cells, a sandbox for pasted configurations, and self-checking exercises.

:func:`predict` asks a question and reveals the library's answer (with its trace) once the
learner has committed to a prediction.  :func:`check` answers an exercise with a ✓/✗ table
that says what is wrong with the answer, and hints that appear one by one after wrong
attempts.  It never raises, whatever the answer (``None`` means "not answered yet"), so
"Run All" stays green on the student notebook.
Every expected value is computed by the simulator or a resolver at check time — nothing is
hard-coded where a computation exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._text import NO_MATH
from ._text import esc_math as _md
from .errors import ConfigurationError, RealIPError

if TYPE_CHECKING:
    from .importers import Imported
    from .topology import Topology, Trace

__all__ = [
    "EXERCISES",
    "OUTCOMES",
    "CheckResult",
    "Exercise",
    "Exploration",
    "Prediction",
    "Reveal",
    "check",
    "config",
    "data_dir",
    "exercise",
    "explore",
    "predict",
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


def scenario_table(names: Sequence[str] | None = None, *, outcomes: bool = True) -> Any:
    """The scenarios *names* (default: every one in ``data/topologies``): title, the peername the
    simulator computes and whether the broker sees the real client (a
    :class:`realip.viz.Table`).  ``outcomes=False`` lists name and title only (for a page
    that comes before the notebooks asking you to predict those outcomes)."""
    from ._text import Table
    from .topology import simulate

    if names is None:
        names = sorted(p.stem for p in (data_dir() / "topologies").glob("*.yaml"))
    rows, marks = [], []
    if not outcomes:
        return Table(("scenario", "what it shows"),
                     [(name, scenario(name).title) for name in names], max_width=70)
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
# Predict, commit, reveal


#: The outcomes a "what happens?" question offers (the answer is computed from the trace).
OUTCOMES: tuple[str, ...] = (
    "the broker records the client's real address",
    "the broker records a load balancer's address",
    "the broker records an address the client wrote itself",
    "the broker closes the connection",
)

_SKIP_DECISION = ("proxy_set_header Upgrade", "proxy_set_header Connection",
                  "proxy_set_header Host", "WebSocket CONNECT from")


def _outcome_of(trace: Trace) -> str:
    """Which of :data:`OUTCOMES` a simulated connection ended with."""
    if not trace.connected:
        return OUTCOMES[3]
    addr = trace.client_addr
    if addr == trace.topology.client.addr:
        return OUTCOMES[0]
    if addr in {h.addr for h in trace.topology.hops} | {
            h.public for h in trace.topology.hops if h.public}:
        return OUTCOMES[1]
    return OUTCOMES[2]


def _trace_why(trace: Trace, only: str | None = None) -> tuple[str, ...]:
    """The simulator's own decisions, hop by hop (or of hop *only*), as "host: sentence"."""
    out: list[str] = []
    for v in trace.views:
        if only is not None and v.name != only:
            continue
        for d in v.decisions:
            if not d.startswith(_SKIP_DECISION):
                out.append(f"{v.name}: {d}")
        if v.resolution is not None and v.resolution.trace and (only or v.resolution.code
                                                                 not in ("DECLINED",)):
            for k, step in enumerate(v.resolution.trace, 1):
                out.append(f"{v.name}: step {k}: {step.why}")
        if not v.accepted:
            out.append(f"{v.name} closes the connection: {v.log}")
    return tuple(out)


def _port_why(trace: Trace) -> tuple[str, ...]:
    """Where the peername's port came from when it is the broker's TCP peer's, not the
    client's (no port header was read): a line the broker's own decisions leave implicit."""
    if not trace.peername or not trace.views or not trace.links:
        return ()
    broker, link = trace.views[-1], trace.links[-1]
    port = trace.peername.rsplit(":", 1)[1]
    if port == str(broker.peer.port) and trace.client_addr != str(broker.peer.host):
        return (f"{broker.name}: the port {port} is its TCP peer's — {link.sender}'s own "
                "source port — because no header gave the client's port",)
    return ()


def _bytes_why(data: bytes) -> tuple[str, ...]:
    from .proxy_protocol import annotate

    fields_ = [f for f in annotate(data) if f.verdict != "payload"]
    lines = [f"bytes {f.offset}–{f.offset + f.length - 1} ({f.length} B): {f.name} — "
             f"{f.meaning}" for f in fields_]
    lines.append(" + ".join(str(f.length) for f in fields_) + f" = {len(data)} bytes")
    return tuple(lines)


#: the choice for "the broker takes no username from a certificate"
NO_USERNAME = "none: the CONNECT packet's own username"


def _username_prediction(question: str, trace: Trace) -> Prediction:
    """Which username the broker gives the client: the choices are the CN of the client's own
    certificate, the CN any PROXY header the client wrote claims, and none."""
    from .proxy_protocol import decode

    topo = trace.topology
    choices: list[str] = []
    if topo.client.cert_cn is not None:
        choices += [topo.client.cert_cn, f"CN={topo.client.cert_cn}"]
    forged = topo.client.send_proxy
    if isinstance(forged, bytes):
        try:
            header = decode(forged, verify_crc32c=False)
        except RealIPError:
            header = None
        if header is not None and header.ssl is not None and header.ssl.cn is not None:
            choices.append(header.ssl.cn)
    answer = trace.username if trace.username is not None else (
        NO_USERNAME if trace.connected else f"connection closed ({trace.failure})")
    choices += [NO_USERNAME, answer]
    return Prediction(question, answer, _trace_why(trace), "choice",
                      tuple(dict.fromkeys(choices)), _names(trace))


def _holder_prediction(question: str, trace: Trace) -> Prediction:
    """Who holds the key of the client's TLS connection — who can read the MQTT client id."""
    topo = trace.topology
    first = trace.links[0] if trace.links else None
    nobody = "nobody: the client does not use TLS"
    if first is None or first.tls is None:
        answer = nobody
    else:
        answer = first.tls_holder or "nobody on the path (the connection closed first)"
    choices = (*(h.name for h in topo.hops), topo.broker.name, nobody, answer)
    why = tuple(f"{v.name}: {d}" for v in trace.views for d in v.decisions
                if "TLS" in d or "ssl" in d.lower())
    return Prediction(question, answer, why or _trace_why(trace), "choice",
                      tuple(dict.fromkeys(choices)), _names(trace))


def _names(trace: Trace | None) -> dict[str, str]:
    """Address → the host that owns it, to say whose address a wrong guess is."""
    if trace is None:
        return {}
    topo = trace.topology
    out = {topo.client.addr: "the client's"}
    for h in topo.hops:
        out[h.addr] = f"{h.name}'s"
        if h.public:
            out[h.public] = f"{h.name}'s public"
    out[topo.broker.addr] = f"{topo.broker.name}'s"
    return out


def _split_endpoint(text: str) -> tuple[str, str | None]:
    text = text.strip().strip("[]") if text.count(":") > 1 and "]" not in text else text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest.lstrip(":") or None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host.strip(), port.strip() or None
    return text, None


@dataclass(frozen=True)
class Prediction:
    """A *Predict* question whose answer the library computes: the learner types (or picks) a
    prediction, commits it, and only then sees the answer, a comparison with the prediction and
    *why* — the simulator's or the decoder's own trace, never a sentence typed in a notebook.

    In Jupyter it displays as a widget (an input, a **Reveal** button that stays disabled until
    something is predicted, the verdict); the stored ``text/html`` face (GitHub, nbviewer,
    nbval) is a collapsed ``<details>`` whose summary gives nothing away."""

    question: str
    answer: str
    why: tuple[str, ...]
    kind: Literal["peername", "address", "number", "choice"]
    choices: tuple[str, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict, repr=False)

    def judge(self, guess: object) -> tuple[bool, str]:
        """``(right, sentence)`` for the prediction *guess* (a string, or a number)."""
        text = str(guess).strip() if guess is not None else ""
        if not text:
            return False, "No prediction yet: type (or pick) one first."
        answer = self.answer
        if self.kind == "number":
            try:
                n = int(text.split()[0])
            except ValueError:
                return False, f"{text!r} is not a number of bytes."
            want = int(answer)
            if n == want:
                return True, f"✓ Right: {want}."
            return False, (f"✗ You said {n}; it is {want} ({'more' if want > n else 'fewer'} "
                           f"by {abs(want - n)}). The fields below add up.")
        if self.kind == "choice":
            if text.lower() == answer.lower():
                return True, f"✓ Right: {answer}."
            return False, f"✗ You picked “{text}”; the answer is “{answer}”."
        host, port = _split_endpoint(text)
        want_host, want_port = _split_endpoint(answer)
        if self.kind == "address":
            if host == want_host:
                return True, f"✓ Right: {want_host}."
            whose = self.names.get(host)
            return False, (f"✗ You said {host}" + (f" ({whose} address)" if whose else "")
                           + f"; it is {want_host}" + (
                               f" ({self.names[want_host]} address)"
                               if want_host in self.names else "") + ".")
        # a peername (or "connection closed")
        if want_port is None:  # the connection is closed
            if "clos" in text.lower() or "refus" in text.lower() or "nothing" in text.lower():
                return True, f"✓ Right: {answer}."
            return False, f"✗ You said {text}; the broker records nothing: {answer}."
        if host == want_host and port in (None, want_port):
            extra = "" if port else f" (and the port is {want_port})"
            return True, f"✓ Right: {answer}{extra}."
        if host == want_host:
            return False, (f"✗ The address is right, the port is not: you said {port}, the "
                           f"broker records {want_port}.")
        whose = self.names.get(host)
        right = self.names.get(want_host)
        return False, (f"✗ You said {host}" + (f" ({whose} address)" if whose else "")
                       + f"; the broker records {answer}"
                       + (f" ({right} address)" if right else "") + ".")

    def text(self) -> str:
        """Plain text (a terminal, nbval): the question, the answer, the trace."""
        return "\n".join([f"Predict — {self.question}", f"Answer: {self.answer}", "Why:",
                          *(f"  {w}" for w in self.why)])

    def __repr__(self) -> str:
        return self.text()

    def answer_html(self) -> str:
        """The answer and the trace that explains it (the body of the reveal)."""

        why = "".join(f"<li>{_md(w)}</li>" for w in self.why)
        return (f'<div class="realip-answer {NO_MATH}"><b>Answer:</b> '
                f"<code>{_md(self.answer)}</code>"
                f'<div style="margin-top:4px">Why (the library\'s trace):</div>'
                f'<ul style="margin:2px 0;font-size:90%">{why}</ul></div>')

    def html(self) -> str:
        """The static face: the question, then the answer collapsed behind a neutral summary."""
        from ._text import esc

        options = ("<div>Options: " + " · ".join(esc(c) for c in self.choices) + "</div>"
                   if self.choices else "")
        return (f'<div class="realip-predict-static {NO_MATH}"><b>Predict</b> — '
                f"{_md(self.question)}"
                f"{options}<details class=\"realip-reveal\"><summary style=\"cursor:pointer;"
                f'color:#1565c0">Reveal the answer (write your prediction down first)</summary>'
                f"{self.answer_html()}</details></div>")

    def _repr_html_(self) -> str:
        return self.html()

    def widget(self) -> Any:
        """The ipywidgets view (see :func:`realip.viz.prediction_widget`)."""
        from .viz.predict import prediction_widget

        return prediction_widget(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        try:
            bundle: dict[str, Any] = dict(self.widget()._repr_mimebundle_())
        except ImportError:  # no ipywidgets: the static face only
            bundle = {}
        bundle["text/plain"] = self.text()
        bundle["text/html"] = self.html()
        return bundle


def predict(question: str, subject: Any, what: str = "peername", *, hop: str | None = None
            ) -> Prediction:
    """A *Predict* question about *subject*, answered by the library:

    * a :class:`~realip.topology.Trace` and ``"peername"`` (what the broker records),
      ``"address"`` (its address part only), ``"username"`` (the identity the broker takes
      from a certificate or a PROXY header's SSL TLV — pick one), ``"key holder"`` (who can
      read what the client sends inside TLS — pick one),
      ``"outcome"`` (pick one of :data:`OUTCOMES`), or a variable such as ``"$remote_addr"``
      with *hop* (that hop's value; the why is the hop's decisions and resolution steps);
    * PROXY header bytes and ``"size"`` (the why is the decoder's field list), or
      ``"refused by"`` (pick which receivers refuse them; the why is each one's decision);
    * two headers ``(a, b)`` and ``"difference"`` (pick the field that differs).
    """
    from .topology import Trace

    if isinstance(subject, Trace):
        names = _names(subject)
        if what == "peername":
            answer = subject.peername or f"connection closed ({subject.failure})"
            return Prediction(question, answer, _trace_why(subject) + _port_why(subject),
                              "peername", names=names)
        if what == "address":
            answer = subject.client_addr or f"connection closed ({subject.failure})"
            return Prediction(question, answer, _trace_why(subject), "address", names=names)
        if what == "outcome":
            return Prediction(question, _outcome_of(subject), _trace_why(subject), "choice",
                              OUTCOMES, names)
        if what == "username":
            return _username_prediction(question, subject)
        if what == "key holder":
            return _holder_prediction(question, subject)
        if what.startswith("$"):
            if hop is None:
                raise ConfigurationError(f"predict({what!r}) needs hop=: whose {what}?")
            value = subject.view(hop).variables.get(what[1:])
            if value is None:
                raise ConfigurationError(f"{hop} has no variable {what}")
            return Prediction(question, value, _trace_why(subject, hop), "address",
                              names=names)
        raise ConfigurationError(f"predict on a trace: what is 'peername', 'address', "
                                 f"'outcome', 'username', 'key holder' or a "
                                 f"'$variable', not {what!r}")
    if isinstance(subject, (bytes, bytearray)) and what == "size":
        return Prediction(question, str(len(subject)), _bytes_why(bytes(subject)), "number")
    if isinstance(subject, (bytes, bytearray)) and what == "refused by":
        from .receivers import RECEIVERS, accepts

        decided = [(name, accepts(name, bytes(subject))) for name in RECEIVERS]
        refused = [name for name, acc in decided if not acc.accepted]
        answer = ", ".join(refused) if refused else "none of them"
        if len(refused) == len(decided):
            answer = "all of them"
        choices = tuple(dict.fromkeys(("none of them", "all of them", answer)))
        why = tuple(f"{name}: {acc.describe()}" for name, acc in decided)
        return Prediction(question, answer, why, "choice", choices)
    if isinstance(subject, tuple) and len(subject) == 2 and what == "difference":
        from .proxy_protocol import annotate

        a, b = (annotate(bytes(x)) for x in subject)
        # separators and fixed markers cannot differ between two valid headers
        named = [f for f in a if f.verdict == "ok" and f.name not in ("space", "CRLF")]
        other = {f.name: f for f in b}
        differ = [f.name for f in named if f.name in other and other[f.name].raw != f.raw]
        answer = ", ".join(differ) or "none"
        choices = tuple(dict.fromkeys(f.name for f in named if f.name != "signature"))
        if answer not in choices:
            choices += (answer,)
        why = tuple(f"{f.name}: {f.meaning} → {other[f.name].meaning}" + (
            "  (differs)" if f.name in differ else "  (same)")
            for f in named if f.name in other)
        return Prediction(question, answer, why, "choice", choices)
    raise ConfigurationError(f"predict: cannot ask {what!r} about a {type(subject).__name__}")


# ==============================================================================================
# A sandbox for pasted configurations (notebook 10)


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
    """The outcome of :func:`check`: one :class:`Row` per criterion and, after a wrong attempt,
    the hints earned so far (a nudge first, then where in the course to look — never the
    answer).  ``ok`` is True when every criterion passed."""

    exercise: str
    title: str
    rows: tuple[Row, ...]
    hints: tuple[str, ...] = ()
    answered: bool = True
    more_hints: bool = False

    @property
    def hint(self) -> str:
        """The hints shown, one per line (empty before a wrong attempt)."""
        return "\n".join(self.hints)

    @property
    def ok(self) -> bool:
        return self.answered and bool(self.rows) and all(r.passed for r in self.rows)

    def __bool__(self) -> bool:
        return self.ok

    def text(self) -> str:
        lines = [f"Exercise {self.exercise}: {self.title}"]
        if not self.answered:
            lines.append("  … not answered yet: replace None with your answer and run the cell.")
            return "\n".join(lines)
        for r in self.rows:
            lines.append(f"  {'✓' if r.passed else '✗'} {r.what}"
                         + (f" — {r.detail}" if r.detail else ""))
        passed = sum(r.passed for r in self.rows)
        if self.ok:
            lines.append(f"Solved: {passed} of {len(self.rows)} checks pass.")
        else:
            lines.append(f"{passed} of {len(self.rows)} checks pass.")
            for k, h in enumerate(self.hints, 1):
                lines.append(f"Hint {k}: {h}")
            if self.more_hints:
                lines.append("(Another wrong attempt shows the next hint.)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from ._text import esc

        head = (f'<div class="realip-check {NO_MATH}"><b>Exercise {esc(self.exercise)}: '
                f"{_md(self.title)}</b>")
        if not self.answered:
            return (head + '<div style="color:#555">… not answered yet: replace '
                    "<code>None</code> with your answer and run the cell.</div></div>")
        items = []
        for r in self.rows:
            colour = "#2e7d32" if r.passed else "#c62828"
            items.append(f'<tr><td style="color:{colour};font-weight:bold;padding:2px 6px">'
                         f"{'✓' if r.passed else '✗'}</td><td style='text-align:left;"
                         f"padding:2px 6px'>{_md(r.what)}</td><td style='text-align:left;"
                         f"padding:2px 6px;color:#555'>{_md(r.detail)}</td></tr>")
        passed = sum(r.passed for r in self.rows)
        if self.ok:
            status = (f'<span style="color:#2e7d32">Solved: {passed} of {len(self.rows)} '
                      "checks pass.</span>")
        else:
            hints = "".join(f'<div class="realip-hint"><b>Hint {k}:</b> {_md(h)}</div>'
                            for k, h in enumerate(self.hints, 1))
            more = ('<div style="color:#777">(Another wrong attempt shows the next hint.)</div>'
                    if self.more_hints else "")
            status = f"{passed} of {len(self.rows)} checks pass.{hints}{more}"
        return f"{head}<table>{''.join(items)}</table><div>{status}</div></div>"


@dataclass(frozen=True)
class Exercise:
    """An exercise: its question, stepped hints (a nudge, then a pointer to the section of the
    course that teaches it — never the answer), and the checker turning an answer into rows."""

    id: str
    title: str
    question: str
    hints: tuple[str, ...]
    checker: Callable[[Any], list[Row]] = field(repr=False)
    scenario: str | None = None
    show: str | None = None  # what exercise() displays: "topology" or "hop:<name>"

    @property
    def hint(self) -> str:
        """Every hint, one per line."""
        return "\n".join(self.hints)


#: Wrong attempts per exercise in this kernel (the hints shown grow with them).
_ATTEMPTS: dict[str, int] = {}


def _who(trace: Trace) -> str:
    """Whose address the broker records — a role, not the value (the detail of a ✗ row must
    say what is wrong without handing out another exercise's answer)."""
    if not trace.connected:
        return f"nothing: the connection is closed ({trace.failure})"
    names = _names(trace)
    addr = trace.client_addr or ""
    whose = names.get(addr)
    if whose == "the client's":
        client = trace.topology.client
        if trace.peername == f"{client.addr}:{client.port}":
            return "the client's address and port"
        return "the client's address, but not the client's port"
    if whose:
        return f"{whose} address"
    return "an address the client wrote itself"


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _strs(value: Any, what: str) -> tuple[str, ...]:
    """A list of strings from a list, a tuple, or one string (split on commas)."""
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise TypeError(f"{what} should be a list of strings (or one string), not "
                    f"{type(value).__name__}")


_LIST_FIELDS = ("set_real_ip_from", "access_rules", "proxy_address_allow", "expect_proxy_from")


def _settings(node: Any, answer: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A learner's settings for *node* as ``with_hop``/``with_broker`` changes: list fields may
    be one string, ``proxy_set_header`` a dict merged into the node's own headers."""
    known = {f.name for f in fields(node)}
    unknown = sorted(set(answer) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(known - {'name', 'addr', 'kind'}))}")
    out: dict[str, Any] = {}
    for key, value in answer.items():
        if key in _LIST_FIELDS:
            out[key] = _strs(value, f"{where}.{key}")
        elif key == "proxy_set_header" and isinstance(value, Mapping):
            given = {str(k).lower(): (str(k), str(v)) for k, v in value.items()}
            merged = [given.pop(k.lower(), (k, v)) for k, v in node.proxy_set_header]
            out[key] = (*merged, *given.values())
        else:
            out[key] = _tuples(value)
    return out


def _addr_of(answer: Any) -> tuple[str, str | None]:
    if not isinstance(answer, str):
        raise TypeError("give the answer as a string, e.g. '192.0.2.1:1234'")
    return _split_endpoint(answer)


# -- the exercises -----------------------------------------------------------------------------


def _check_v1(answer: Any) -> list[Row]:
    from .topology import simulate

    trace = simulate(scenario("tcp-single-tier"))
    expected = trace.links[1].proxy_header or b""
    if isinstance(answer, str):
        answer = answer.encode("latin-1", "replace")
    if not isinstance(answer, (bytes, bytearray)):
        raise TypeError("give the header as a string or bytes")
    got = bytes(answer)
    if got.endswith(b"\\r\\n"):  # typed as a raw string: backslash, r, backslash, n
        return [Row(False, "it ends with CRLF (\\r\\n)", "you wrote a backslash and the "
                    "letters r and n; use a normal string \"…\\r\\n\" (not r\"…\")")]
    rows = [Row(got.startswith(b"PROXY TCP4 "), "it starts with 'PROXY TCP4 '"),
            Row(got.endswith(b"\r\n"), "it ends with CRLF (\\r\\n)",
                "" if got.endswith(b"\r\n") else "the line ending is missing")]
    mine = got.rstrip(b"\r\n").split(b" ")
    want = expected.rstrip(b"\r\n").split(b" ")
    names = ("PROXY", "protocol", "source address", "destination address", "source port",
             "destination port")
    wrong = [names[k] if k < len(names) else f"field {k + 1}"
             for k in range(max(len(mine), len(want)))
             if (mine[k] if k < len(mine) else None) != (want[k] if k < len(want) else None)]
    if len(mine) != len(want):
        detail = f"it has {len(mine)} space-separated fields; a TCP4 line has {len(want)}"
    elif wrong:
        detail = "not what LB 1 writes: " + ", ".join(wrong)
        swapped = mine[2:4] == want[3:1:-1] or mine[4:6] == want[5:3:-1]
        if swapped:
            detail += " (the order is source first, then destination)"
    else:
        detail = "" if got == expected else "the fields are right; check the line ending"
    rows.append(Row(got == expected, "it is byte for byte what LB 1 sends", detail))
    return rows


def _check_v2_size(answer: Any) -> list[Row]:
    from .topology import simulate

    trace = simulate(scenario("haproxy-tcp-accept-proxy-tier"))
    header = trace.links[-1].proxy_header or b""
    if isinstance(answer, str) and answer.strip().isdigit():
        answer = int(answer)
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise TypeError("give a number of bytes (an int)")
    if answer == len(header):
        return [Row(True, "the size of the header LB 2 sends to EMQX")]
    without_tlv = 28
    if answer == without_tlv:
        detail = "that is a v2 IPv4 header without TLVs; this one carries a CRC32C TLV"
    elif answer < 16:
        detail = "every v2 header has 16 fixed bytes before the addresses"
    else:
        detail = f"you said {answer}: {'too many' if answer > len(header) else 'too few'}"
    return [Row(False, "the size of the header LB 2 sends to EMQX", detail)]


def _check_peername(answer: Any) -> list[Row]:
    from .topology import simulate

    trace = simulate(scenario("tcp-multi-regenerate-untrusted"))
    host, port = _addr_of(answer)
    want_host, want_port = _split_endpoint(trace.peername or "")
    names = _names(trace)
    if host != want_host:
        whose = names.get(host)
        detail = f"{host} is {whose} address" if whose else f"{host} is not in this chain"
        return [Row(False, "the address EMQX records",
                    detail + " — whom does LB 2 believe it is talking to?")]
    rows = [Row(True, "the address EMQX records")]
    if port is None:
        rows.append(Row(False, "the port EMQX records", "the question asks for address:port; "
                        "which source port goes with that address?"))
    else:
        rows.append(Row(port == want_port, "the port EMQX records",
                        "" if port == want_port else f"{port} is not the source port of the "
                        "connection that address made"))
    return rows


def _check_tcp_lb2(answer: Any) -> list[Row]:
    from .topology import simulate

    base = scenario("tcp-multi-regenerate-untrusted")
    if not isinstance(answer, Mapping):
        raise TypeError("give LB 2's settings as a dict, e.g. {'proxy_protocol': 'on'}")
    try:
        changes = _settings(base.hop("lb2"), answer, "lb2")
    except ValueError as exc:
        return [Row(False, "the settings are nginx stream settings", str(exc))]
    trace = simulate(base.with_hop("lb2", **changes))
    client_ok = trace.peername == f"{base.client.addr}:{base.client.port}"
    return [
        Row(True, "the settings are nginx stream settings"),
        Row(trace.connected, "the connection reaches EMQX", "" if trace.connected
            else f"closed: {trace.failure}"),
        Row(client_ok, "EMQX records the client's address and port",
            "" if client_ok else f"EMQX records {_who(trace)}"),
    ]


def _check_access(answer: Any) -> list[Row]:
    from dataclasses import replace

    from .topology import simulate

    rules = _strs(answer, "access_rules")
    attack = scenario("tcp-direct-client-forges-proxy")
    legit_base = scenario("tcp-single-tier")
    rows: list[Row] = []
    # the attacker may come from anywhere outside the load balancers' network
    for addr in (attack.client.addr, "203.0.113.50", "10.1.2.3"):
        topo = replace(attack, client=replace(attack.client, addr=addr)).with_broker(
            access_rules=rules)
        trace = simulate(topo)
        refused = not trace.connected
        rows.append(Row(refused, f"a direct client at {addr} is refused",
                        "" if refused else f"EMQX lets it in and records {_who(trace)}"))
    legit = simulate(legit_base.with_broker(access_rules=rules))
    ok = legit.peername == f"{legit_base.client.addr}:{legit_base.client.port}"
    rows.append(Row(ok, "a client coming through LB 1 is still recorded correctly",
                    "" if ok else f"EMQX records {_who(legit)}"))
    return rows


def _check_forge_edge(answer: Any) -> list[Row]:
    from .topology import simulate

    base = scenario("ws-edge-appends")
    if not isinstance(answer, str) or not answer.strip():
        raise TypeError("give the forged X-Forwarded-For value as a string")
    trace = simulate(base, forge_xff=answer)
    mine = {p.strip() for p in answer.replace(" ", ",").split(",") if p.strip()}
    got = trace.client_addr
    fooled = got is not None and got != base.client.addr
    return [
        Row(trace.connected, "the connection still reaches EMQX",
            "" if trace.connected else f"closed: {trace.failure}"),
        Row(fooled, "EMQX records an address that is not the client's",
            "" if fooled else f"EMQX records {_who(trace)}"),
        Row(got in mine, "the address EMQX records is one you wrote",
            "" if got in mine else f"EMQX records {_who(trace)}"),
    ]


def _check_fix_edge(answer: Any) -> list[Row]:
    from .topology import simulate

    base = scenario("ws-edge-appends")
    if not isinstance(answer, Mapping):
        raise TypeError("give LB 1's two proxy_set_header values as a dict "
                        "{'X-Forwarded-For': …, 'X-Forwarded-Port': …}")
    changes = _settings(base.hop("lb1"), {"proxy_set_header": answer}, "lb1")
    topo = base.with_hop("lb1", **changes)
    client = f"{base.client.addr}:{base.client.port}"
    rows = []
    for forged in ("127.0.0.1", "8.8.8.8, 10.0.0.1"):
        trace = simulate(topo, forge_xff=forged)
        ok = trace.client_addr == base.client.addr
        rows.append(Row(ok, f"the address is the client's when it forges {forged!r}",
                        "" if ok else f"EMQX records {_who(trace)}"))
    trace = simulate(topo)
    ok = trace.peername == client
    rows.append(Row(ok, "the port is the client's too (it also forges X-Forwarded-Port)",
                    "" if ok else f"EMQX records {_who(trace)}"))
    return rows


def _check_recursive_off(answer: Any) -> list[Row]:
    from .topology import simulate

    trace = simulate(scenario("ws-multi-nonrecursive"))
    want = trace.view("lb3").variables.get("remote_addr", "")
    host, _port = _addr_of(answer)
    names = _names(trace)
    if host == want:
        return [Row(True, "LB 3's X-Real-IP ($remote_addr)")]
    whose = names.get(host)
    return [Row(False, "LB 3's X-Real-IP ($remote_addr)",
                (f"{host} is {whose} address" if whose else f"{host} is not in the header")
                + "; with recursion off, how many entries does nginx look at?")]


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
        ok = trace.client_addr == base.client.addr
        rows.append(Row(ok, what, "" if ok else f"EMQX records {_who(trace)}"))
    return rows


def _check_too_wide(answer: Any) -> list[Row]:
    from .topology import simulate

    trace = simulate(scenario("ws-trust-covers-clients"))
    want = trace.view("lb3").variables.get("remote_addr", "")
    host, _port = _addr_of(answer)
    if host == want:
        return [Row(True, "LB 3's X-Real-IP ($remote_addr)")]
    whose = _names(trace).get(host)
    return [Row(False, "LB 3's X-Real-IP ($remote_addr)",
                (f"{host} is {whose} address" if whose else f"{host} is not in the header")
                + "; which entries does 0.0.0.0/0 trust?")]


def _check_haproxy(answer: Any) -> list[Row]:
    from .topology import simulate

    base = scenario("haproxy-ws-forwardfor-leftmost")
    if isinstance(answer, Mapping):
        settings = {k: _tuples(v) for k, v in answer.items()}
    elif isinstance(answer, (list, tuple)):
        settings = {"http_request": _tuples(list(answer))}
    else:
        raise TypeError("give LB 1's http-request rules as a list of tuples, e.g. "
                        "[('del-header', 'X-Example')]")
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
        ok = trace.client_addr == base.client.addr
        rows.append(Row(ok, f"EMQX records the client's address when it forges {forged!r}",
                        "" if ok else f"it records {_who(trace)}"))
    trace = simulate(topo)
    ok = trace.peername == client
    rows.append(Row(ok, "EMQX records the client's port too",
                    "" if ok else f"it records {_who(trace)}"))
    return rows


def _check_v2_family(answer: Any) -> list[Row]:
    from .proxy_protocol import build

    header = build(("2001:db8::7", 50000), ("2001:db8::1", 1883), version=2)
    want = header[13]
    value: int | None
    if isinstance(answer, bool):
        value = None
    elif isinstance(answer, int):
        value = answer
    elif isinstance(answer, (bytes, bytearray)) and len(answer) == 1:
        value = answer[0]
    elif isinstance(answer, str):
        text = answer.strip().lower().removeprefix("\\x").removeprefix("0x")
        try:
            value = int(text, 16)
        except ValueError:
            value = None
    else:
        value = None
    if value is None:
        raise TypeError("give the byte as an int (0x..) or a hex string such as '0x11'")
    if value == want:
        return [Row(True, "byte 13 of a v2 header for an IPv6 TCP client")]
    detail = f"0x{value:02x}"
    if value == 0x11:
        detail += " is IPv4 (INET) over TCP; the high nibble is the family"
    elif value & 0x0F != want & 0x0F:
        detail += ": the low nibble (transport) is not TCP's"
    else:
        detail += ": the transport nibble is right, the family (high nibble) is not"
    return [Row(False, "byte 13 of a v2 header for an IPv6 TCP client", detail)]


def _check_unspoofable(answer: Any) -> list[Row]:
    from dataclasses import replace

    from .topology import simulate

    base = scenario("ws-edge-appends")
    if not isinstance(answer, Mapping):
        raise TypeError("give a dict {'lb1': {...}, 'lb2': {...}, 'emqx': {...}} (any of them)")
    unknown = sorted(set(answer) - {"lb1", "lb2", "emqx"})
    if unknown:
        return [Row(False, "the settings name lb1, lb2 or emqx", f"unknown: {unknown}")]
    topo = base
    try:
        for name, changes in answer.items():
            if not isinstance(changes, Mapping):
                raise ValueError(f"{name}: give a dict of settings")
            if name == "emqx":
                topo = topo.with_broker(**_settings(topo.broker, changes, name))
            else:
                topo = topo.with_hop(name, **_settings(topo.hop(name), changes, name))
    except (ValueError, TypeError, RealIPError) as exc:
        return [Row(False, "the settings are valid", str(exc))]
    client = replace(topo.client, headers=())
    honest = replace(topo, client=client)
    want = f"{client.addr}:{client.port}"
    rows = [Row(True, "the settings are valid")]
    # the forged headers a client can send through the load balancers
    attacks: list[tuple[str, tuple[tuple[str, str], ...]]] = [
        ("with nothing forged", ()),
        ("forging X-Forwarded-For: 127.0.0.1", (("X-Forwarded-For", "127.0.0.1"),)),
        ("forging X-Forwarded-For: 10.0.0.1, 172.16.0.200 and X-Forwarded-Port: 1",
         (("X-Forwarded-For", "10.0.0.1, 172.16.0.200"), ("X-Forwarded-Port", "1"))),
        ("forging X-Real-IP: 127.0.0.1", (("X-Real-IP", "127.0.0.1"),)),
        ("forging two X-Forwarded-For lines", (("X-Forwarded-For", "127.0.0.1"),
                                       ("X-Forwarded-For", "127.0.0.2"))),
    ]
    for what, headers in attacks:
        trace = simulate(replace(honest, client=replace(client, headers=headers)))
        ok = trace.peername == want
        rows.append(Row(ok, f"through the LBs, {what}: EMQX records the client",
                        "" if ok else f"EMQX records {_who(trace)}"))
    # and one that skips the load balancers
    direct = replace(honest, hops=(), client=replace(
        client, addr="203.0.113.9", headers=(("X-Forwarded-For", "127.0.0.1"),)))
    trace = simulate(direct)
    ok = not trace.connected or trace.peername == f"203.0.113.9:{client.port}"
    rows.append(Row(ok, "a client at 203.0.113.9 dialling EMQX directly with X-Forwarded-For: "
                    "127.0.0.1 is refused or recorded as itself",
                    "" if ok else f"EMQX records {_who(trace)}"))
    # the capstone: realip's whole battery of forgeries from the edge (python -m realip audit)
    from .audit import audit

    report = audit(honest, fix=False)
    bad = [r.attack.name for r in report.rows if r.verdict in ("SPOOFED", "DOWN")]
    rows.append(Row(not bad, f"the audit's {len(report.rows)} forgeries from the edge: nothing "
                    "spoofed",
                    "" if not bad else f"still spoofed by: {', '.join(bad[:4])}"
                    + (" …" if len(bad) > 4 else "")))
    return rows


def _hints(*hints: str) -> tuple[str, ...]:
    return hints


def _check_tls_reader(answer: Any) -> list[Row]:
    from .topology import simulate

    if not isinstance(answer, str) or not answer.strip():
        raise TypeError("give the host's name (as a string: 'lb1' or 'emqx')")
    trace = simulate(scenario("tls-passthrough-sni"))
    holder = trace.links[0].tls_holder or ""
    guess = answer.strip().lower()
    names = [h.name for h in trace.topology.hops] + [trace.topology.broker.name]
    if guess not in names:
        raise TypeError(f"{answer!r} is not a host of this chain ({', '.join(names)})")
    return [Row(guess == holder, "the host you named can read the client id",
                "" if guess == holder else f"{guess} only relays the encrypted records"),
            Row(guess == holder, "only that host can",
                "" if guess == holder else "another host holds the server key")]


def _check_tls_forged_cn(answer: Any) -> list[Row]:
    from dataclasses import replace

    from .topology import simulate

    if not isinstance(answer, Mapping):
        raise TypeError("give EMQX's settings as a dict, e.g. {'setting': value}")
    changes = dict(answer)
    attack = scenario("tls-forged-cert-cn")
    honest = scenario("tls-haproxy-client-cert")
    rows: list[Row] = []
    for addr in (attack.client.addr, "203.0.113.50", "172.16.0.200"):
        topo = replace(attack, client=replace(attack.client, addr=addr)).with_broker(**changes)
        trace = simulate(topo)
        safe = not trace.connected or trace.username != "admin"
        rows.append(Row(safe, f"a client at {addr} that writes its own SSL TLV is not admin",
                        "" if safe else "EMQX gives it the username from its forged TLV"))
    legit = simulate(honest.with_broker(**changes))
    ok = legit.username == honest.client.cert_cn and \
        legit.peername == f"{honest.client.addr}:{honest.client.port}"
    rows.append(Row(ok, "a device behind LB 1 (HAProxy, verify required) still gets its CN",
                    "" if ok else ("the connection closes: " + str(legit.failure))
                    if not legit.connected else f"EMQX records {_who(legit)} as "
                    f"{legit.username!r}"))
    return rows


EXERCISES: dict[str, Exercise] = {e.id: e for e in (
    Exercise("v1-header", "Write LB 1's PROXY v1 header",
             "Write, as a string, the PROXY v1 header LB 1 sends to EMQX in tcp-single-tier.",
             _hints("The header describes the connection the client opened — to whom, from "
                    "where?",
                    "Notebook 01, 'Version 1: one line of text': the annotated view names "
                    "every field in order."),
             _check_v1, "tcp-single-tier", "topology"),
    Exercise("v2-size", "Size a v2 header",
             "How many bytes is the PROXY v2 header LB 2 sends to EMQX in "
             "haproxy-tcp-accept-proxy-tier (send-proxy-v2 with the crc32c option)?",
             _hints("Add up fixed part, address block and each TLV.",
                    "Notebook 01, 'Version 2: binary' (the 16 fixed bytes) and 'TLVs and the "
                    "CRC32C checksum'; notebook 06 counts one."),
             _check_v2_size, "haproxy-tcp-accept-proxy-tier", "hop:lb2"),
    Exercise("predict-untrusted", "Predict the peername",
             "Which peername (address:port) does EMQX record in "
             "tcp-multi-regenerate-untrusted?",
             _hints("LB 2 reads LB 1's header but does not believe it: whom does LB 2 think "
                    "it is talking to?",
                    "Notebook 03, 'Without set_real_ip_from': LB 2's variables."),
             _check_peername, "tcp-multi-regenerate-untrusted", "hop:lb2"),
    Exercise("tcp-lb2-trust", "Configure LB 2 so EMQX sees the client",
             "In tcp-multi-regenerate-untrusted LB 2 reads LB 1's PROXY header and writes its "
             "own, but EMQX records LB 1. Give LB 2's settings (a dict of NginxStream fields).",
             _hints("LB 2 needs a reason to believe the header it reads — or no header to "
                    "read at all.",
                    "Notebook 03: 'Way 2: re-generate the header' (the stream realip module) "
                    "and 'Way 1: pass-through'."),
             _check_tcp_lb2, "tcp-multi-regenerate-untrusted", "hop:lb2"),
    Exercise("access-rules", "Shut the side door",
             "In tcp-direct-client-forges-proxy a client reaches EMQX directly and writes its "
             "own PROXY header. Give EMQX access_rules (a list like ['allow …', 'deny all']) "
             "that admit only the load balancers.",
             _hints("Blocking one address is not enough: every other client can do the same.",
                    "Notebook 02, 'Who may send a header?': which hosts should reach the "
                    "listener at all?"),
             _check_access, "tcp-direct-client-forges-proxy", "topology"),
    Exercise("ws-forge-edge", "Forge a header that fools this chain",
             "In ws-edge-appends LB 1 appends to X-Forwarded-For and EMQX takes the leftmost "
             "entry. Which X-Forwarded-For value makes EMQX record an address you chose?",
             _hints("Appending keeps what the client wrote; which end does EMQX read?",
                    "Notebook 05, 'The attack'; notebook 04, 'EMQX takes the leftmost entry'."),
             _check_forge_edge, "ws-edge-appends", "topology"),
    Exercise("ws-fix-edge", "Fix the edge LB (method 1)",
             "Give LB 1's proxy_set_header values for X-Forwarded-For and X-Forwarded-Port so "
             "that EMQX records the client's real address and port whatever it forges.",
             _hints("The edge must not keep anything the client sent in these two headers.",
                    "Notebook 04, 'Why override?', and notebook 05, 'Method 1: the edge "
                    "overrides' — look at LB 1's configuration there."),
             _check_fix_edge, "ws-edge-appends", "hop:lb1"),
    Exercise("recursive-off", "real_ip_recursive off",
             "In ws-multi-nonrecursive, which address does LB 3 put in X-Real-IP?",
             _hints("Without recursion nginx does not walk: it looks at one entry only.",
                    "Notebook 05, 'real_ip_recursive off', and the stepper with the switch "
                    "unticked."),
             _check_recursive_off, "ws-multi-nonrecursive", "hop:lb3"),
    Exercise("ws-mistrusted-range", "Find the mis-trusted range",
             "In ws-trust-covers-clients LB 3 ends on the forged entry. Give a corrected "
             "set_real_ip_from list for LB 3.",
             _hints("A trusted range must cover your proxies and nothing else.",
                    "Notebook 05, 'A trusted range that covers the clients'; the stepper "
                    "lets you try ranges."),
             _check_mistrusted, "ws-trust-covers-clients", "hop:lb3"),
    Exercise("too-wide", "Trust everyone",
             "In ws-trust-covers-clients (set_real_ip_from 0.0.0.0/0, recursion on), which "
             "address does LB 3 put in X-Real-IP?",
             _hints("If every entry is trusted, where does the walk stop?",
                    "Notebook 05, 'A trusted range that covers the clients'."),
             _check_too_wide, "ws-trust-covers-clients", "topology"),
    Exercise("haproxy-fix", "Make the HAProxy chain safe",
             "In haproxy-ws-forwardfor-leftmost EMQX records the forged 127.0.0.1. Give LB 1's "
             "http-request rules (a list of tuples), or a dict of HAProxy settings, so that "
             "EMQX records the client's address and port.",
             _hints("option forwardfor adds a line and keeps the client's.",
                    "Notebook 06, 'The fix: replace the headers' (and HAProxy's sample "
                    "fetches for the TCP peer)."),
             _check_haproxy, "haproxy-ws-forwardfor-leftmost", "hop:lb1"),
    Exercise("v2-family", "The family byte",
             "Byte 13 of a v2 header is family and transport. What is it (hex) for a client "
             "connecting over TCP from an IPv6 address?",
             _hints("Two nibbles: the address family, then the transport.",
                    "Notebook 01, 'Version 2: binary' (the table of the 16 fixed bytes) and "
                    "the IPv6 example after 'Build your own'."),
             _check_v2_family),
    Exercise("tls-reader", "Who reads the client id?",
             "In tls-passthrough-sni, which host can read the MQTT client id the device sends "
             "(give its name)?",
             _hints("Whoever holds the server's private key decrypts the records.",
                    "Notebook 07, 'Pass-through: nginx reads only the ClientHello'."),
             _check_tls_reader, "tls-passthrough-sni", "topology"),
    Exercise("tls-forged-cn", "Nobody logs in as admin",
             "In tls-forged-cert-cn a client that reaches EMQX writes its own SSL TLV and "
             "becomes admin. Give EMQX settings (a dict) so that no client can do that, while "
             "a device behind the HAProxy of tls-haproxy-client-cert keeps its certificate's "
             "CN as username.",
             _hints("EMQX never checks the TLV: the question is who may send one.",
                    "Notebook 07, 'The fixes', and notebook 02, 'Who may send a header?'."),
             _check_tls_forged_cn, "tls-forged-cert-cn", "topology"),
    Exercise("unspoofable", "A chain that cannot be spoofed",
             "Starting from ws-edge-appends, give settings for lb1, lb2 and/or emqx (a dict of "
             "dicts; proxy_set_header as a dict of the headers you change) so that EMQX "
             "records the client's real address and port whatever the client forges — even "
             "when it dials EMQX directly.",
             _hints("Two doors: what the LBs pass on, and who may talk to EMQX at all.",
                    "Notebook 05, 'Method 1', for the headers; notebook 04, the end of 'A "
                    "client that reaches EMQX directly', and notebook 02, 'Who may send a "
                    "header?', for the broker."),
             _check_unspoofable, "ws-edge-appends", "topology"),
)}


def exercise(exercise_id: str) -> Any:
    """The exercise's question and what it is about — the scenario's topology drawn without
    its outcome, or the configuration of the hop it asks about — without the answer."""
    from ._text import Rendered, esc

    ex = EXERCISES[exercise_id]
    parts = [f"Exercise {ex.id}: {ex.title}", ex.question]
    html = [f"<b>{_md(ex.title)}</b>", f"<div>{_md(ex.question)}</div>"]
    if ex.scenario and ex.show and ex.show.startswith("hop:"):
        topo = scenario(ex.scenario)
        node = topo.hop(ex.show[4:])
        shown = ", ".join(f"{f.name}={getattr(node, f.name)!r}" for f in fields(node)
                          if f.name not in ("name", "kind"))
        parts.append(f"{node.name} in {ex.scenario}: {shown}")
        html.append(f"<pre>{esc(parts[-1])}</pre>")
    if ex.scenario and ex.show == "topology":
        from .viz.flow import draw_topology

        # the figure alone (the question is in the notebook's Markdown): a PNG with the
        # chain's text as its plain-text face
        return draw_topology(scenario(ex.scenario), outcome=False,
                             title=f"{ex.scenario} (outcome hidden)")
    return Rendered("\n".join(parts), f'<div class="{NO_MATH}">{"".join(html)}</div>')


def check(exercise_id: str, answer: Any) -> CheckResult:
    """Check *answer* to exercise *exercise_id*; returns a :class:`CheckResult` (a ✓/✗ table
    saying what is wrong with this answer).  Hints come only after a wrong attempt, one more
    with each: a nudge, then where in the course to look.  Never raises: ``None`` (or ``...``)
    means "not answered yet" (no hint), and a malformed answer is a ✗ row saying why."""
    ex = EXERCISES.get(exercise_id)
    if ex is None:
        known = ", ".join(EXERCISES)
        return CheckResult(exercise_id, "unknown exercise",
                           (Row(False, "the exercise exists", f"known: {known}"),),
                           answered=True)
    if answer is None or answer is ...:
        return CheckResult(ex.id, ex.title, (), answered=False)
    try:
        rows = tuple(ex.checker(answer))
    except Exception as exc:  # a wrong answer is a result, never an exception
        rows = (Row(False, "the answer can be used", f"{type(exc).__name__}: {exc}"),)
    if rows and all(r.passed for r in rows):
        return CheckResult(ex.id, ex.title, rows)
    _ATTEMPTS[ex.id] = _ATTEMPTS.get(ex.id, 0) + 1
    shown = ex.hints[:_ATTEMPTS[ex.id]]
    return CheckResult(ex.id, ex.title, rows, shown, more_hints=len(shown) < len(ex.hints))
