"""The scenario language: what a scenario file may say, checked once for YAML, dicts and copies.

A scenario is a mapping with ``name``, ``title``, ``description``, ``expect``, ``client``,
``hops`` (each with a ``kind``) and ``broker`` (with a ``kind``).  Each hop and broker kind's
settings are declared by its program's room (``realip/programs/<program>/settings.py``) as a
pydantic model; this module asks the registry (:data:`realip.programs.HOP_KINDS`,
:data:`~realip.programs.BROKER_KINDS`) for them, validates, and turns every failure into a
:class:`~realip.errors.ScenarioError` naming the file, line and column (YAML), the setting's path
(``hops[1].real_ip_recursive``) and what is allowed.  Unknown keys are errors at every level;
duplicate host names and duplicate YAML keys are errors; the programs' warnings (nginx's "low
address bits of … are meaningless") are returned as :class:`~realip.errors.ScenarioProblem`
warnings.

:func:`parse_yaml` reads YAML keeping every node's position; :func:`validate` checks a document
and returns plain validated data that :mod:`realip.topology` builds its dataclasses from.
:func:`markdown` writes ``docs/scenario-language.md`` from the same declarations.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, create_model

from .errors import ScenarioError, ScenarioProblem
from .programs import BROKER_KINDS, HOP_KINDS, Broker
from .programs.settings import (
    Address,
    Allowed,
    AlpnNames,
    CaLabel,
    Flag,
    HeaderLines,
    Name,
    Port,
    ServerName,
    Settings,
    Warn,
    error,
)

__all__ = [
    "ClientSettings",
    "Marks",
    "ScenarioSettings",
    "Validated",
    "broker_model",
    "hop_model",
    "markdown",
    "parse_yaml",
    "validate",
    "validate_broker",
    "validate_client",
    "validate_hop",
]

Path = tuple[str | int, ...]


# ==============================================================================================
# The generic parts of a scenario


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise error("path", f"{value!r} is not a URI path (it starts with /)")
    return value


def _send_proxy(value: Any) -> Any:
    if value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Mapping):
        from .proxy_protocol import forged_header

        try:
            return forged_header(**value)
        except TypeError as exc:
            raise error("send_proxy", f"{exc}; a header to build takes version, source, "
                        "destination, authority, ssl (client, verify, version, cn, cipher)"
                        ) from None
        except ValueError as exc:
            raise error("send_proxy", str(exc)) from None
    raise error("send_proxy", f"{value!r} is not a PROXY header (a v1 line as text, or a "
                "header to build: {version: 2, source: …, destination: …, ssl: {cn: …}})")


def _cn(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and 0 < len(value) <= 64):
        return value
    raise error("cn", f"{value!r} is not a certificate common name (1 to 64 characters) or "
                "null (no client certificate)")


class ClientSettings(Settings):
    """The MQTT client."""

    name: Name = Field("client", description="the client's label")
    addr: Address = Field(description="the address the first hop sees (its public address)")
    port: Port = Field(description="its source port")
    transport: Literal["tcp", "ws"] = Field("tcp", description="MQTT over TCP, or over "
                                            "WebSocket on path")
    path: Annotated[str, BeforeValidator(_path), Allowed("a URI path, e.g. /mqtt")] = Field(
        "/mqtt", description="the WebSocket path")
    client_id: Annotated[str, Field(strict=True)] = Field("mqttx-client",
                                                          description="the MQTT client id")
    send_proxy: Annotated[str | bytes | None, BeforeValidator(_send_proxy),
                          Allowed("a PROXY v1 line, or null")] = Field(
        None, description="a PROXY header the client forges itself")
    headers: HeaderLines = Field((), description="extra (possibly forged) header lines of the "
                                 "WebSocket upgrade request")
    tls: Flag = Field(False, description="MQTT over TLS (or wss): the client opens a TLS "
                      "connection to the first hop")
    sni: ServerName = Field(None, description="the server name the ClientHello carries (null: "
                            "none)")
    alpn: AlpnNames = Field((), description="the ALPN protocols the ClientHello offers")
    tls_version: Literal["TLSv1.3", "TLSv1.2"] = Field(
        "TLSv1.3", description="the highest TLS version the client offers")
    cert_cn: Annotated[str | None, BeforeValidator(_cn),
                       Allowed("a common name, or null (no client certificate)")] = Field(
        None, description="the common name of the client certificate it presents when asked")
    cert_ca: CaLabel = Field("clients-ca", description="the CA (a label) that signed the "
                             "client certificate")
    cert_chain: Flag = Field(False, description="the client sends its CA's certificate with "
                             "its own")
    tls_truncate: Annotated[int | None, Field(strict=True, ge=1)] = Field(
        None, description="a truncated handshake: the client writes only this many bytes of "
        "its ClientHello")
    tls_then: Literal["silence", "close"] = Field(
        "silence", description="after a truncated handshake: the client goes silent or closes")


def _expect(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or ":" not in value:
        raise error("expect", f"{value!r} is not a peername (addr:port, quoted) or null")
    return value


class ScenarioSettings(Settings):
    """The top level of a scenario file."""

    name: Annotated[str | None, Field(strict=True)] = Field(
        None, description="the scenario's name (default: the file name)")
    title: Annotated[str, Field(strict=True)] = Field("", description="one line")
    description: Annotated[str, Field(strict=True)] = Field("", description="what it shows")
    expect: Annotated[str | None, BeforeValidator(_expect),
                      Allowed("addr:port (quoted), or null for a closed connection")] = Field(
        None, description="the peername the broker must record; checked by `simulate`")
    expect_username: Annotated[str | None, Field(strict=True)] = Field(
        None, description="the username the broker must give the client from its certificate "
        "(EMQX `peer_cert_as_username`); checked with `expect`")
    client: dict[str, Any] = Field(description="the client (see below)")
    hops: list[Any] = Field([], description="the hops from the client to the broker, each "
                            "with a kind")
    broker: dict[str, Any] = Field(description="the broker listener, with a kind")


# ==============================================================================================
# Models from the registry


def hop_model(kind: str) -> type[BaseModel]:
    """The settings model of hop *kind* (its room's declaration)."""
    entry = HOP_KINDS[kind]
    if entry.schema is not None:
        return typing.cast(type[BaseModel], entry.schema())
    return _generic_model(entry.settings)


def broker_model(kind: str) -> type[BaseModel]:
    """The settings model of broker *kind* (its room's declaration)."""
    entry = BROKER_KINDS[kind]
    if entry.schema is not None:
        return typing.cast(type[BaseModel], entry.schema())
    return _generic_model(Broker, exclude=("kind",))


_GENERIC: dict[type, type[BaseModel]] = {}


def _generic_model(cls: type, exclude: tuple[str, ...] = ()) -> type[BaseModel]:
    """A model read off a settings dataclass, for a kind whose room declares none yet."""
    if cls not in _GENERIC:
        hints = typing.get_type_hints(cls)
        spec: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in exclude:
                continue
            default = ... if f.default is dataclasses.MISSING else f.default
            spec[f.name] = (hints[f.name], default)
        _GENERIC[cls] = create_model(f"{cls.__name__}Settings", __base__=Settings, **spec)
    return _GENERIC[cls]


def _default_broker_kind() -> str:
    for f in dataclasses.fields(Broker):
        if f.name == "kind" and isinstance(f.default, str):
            return f.default
    return next(iter(BROKER_KINDS))  # pragma: no cover


# ==============================================================================================
# YAML with positions


@dataclass
class Marks:
    """Where each value (and each mapping key) of a YAML document starts: 1-based (line,
    column) by path."""

    file: str | None = None
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def find(self, path: Path, key: bool = False) -> tuple[int | None, int | None]:
        """The position of *path* (its key when *key*), else of its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        p = path
        while True:
            if p in self.values:
                return self.values[p]
            if not p:
                return None, None
            p = p[:-1]


def parse_yaml(text: str, file: str | None = None) -> tuple[Any, Marks]:
    """Read a YAML document keeping positions; a syntax error or a duplicate key is a
    :class:`~realip.errors.ScenarioError` with its line and column."""
    import yaml

    marks = Marks(file)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, marks
        data = _build(loader, node, (), marks)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ScenarioError([ScenarioProblem("", f"YAML syntax: {what}", None, file,
                                             *where)]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([ScenarioProblem("", f"YAML: {exc}", None, file)]) from None
    finally:
        loader.dispose()
    return data, marks


def _build(loader: Any, node: Any, path: Path, marks: Marks) -> Any:
    import yaml

    marks.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                key = str(key)
            here: Path = (*path, key)
            if key in out:
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                first = marks.keys[here]
                raise ScenarioError([ScenarioProblem(
                    _format(here), f"the key {key!r} is given twice (first on line "
                    f"{first[0]}); YAML would keep only the last", None, marks.file, line,
                    col)])
            marks.keys[here] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _build(loader, value_node, here, marks)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, n, (*path, i), marks) for i, n in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


# ==============================================================================================
# Validation


@dataclass(frozen=True)
class Validated:
    """A validated scenario as plain data: the top-level fields, the client's settings, each
    hop's kind and settings, the broker's settings (with its ``kind``) and the warnings."""

    name: str | None
    title: str
    description: str
    expect: str | None
    expect_given: bool
    client: dict[str, Any]
    hops: tuple[tuple[str, dict[str, Any]], ...]
    broker: dict[str, Any]
    warnings: tuple[ScenarioProblem, ...]
    expect_username: str | None = None


def _format(path: Sequence[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _allowed_of(model: type[BaseModel], name: str) -> str | None:
    info = model.model_fields.get(name)
    if info is None:
        return None
    for meta in info.metadata:
        if isinstance(meta, Allowed):
            return meta.text
    return _describe_type(info.annotation)


def _describe_type(annotation: Any) -> str | None:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if annotation is bool:
        return "true | false"
    if annotation is int:
        return "a whole number"
    if annotation is float:
        return "a number"
    if annotation is str:
        return "text"
    if origin is Annotated:
        return _describe_type(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        parts = [_describe_type(a) or "" for a in args if a is not type(None)]
        return " or ".join(parts) + (", or null" if type(None) in args else "")
    if origin is tuple:
        return "a list"
    if origin in (dict,) or annotation is dict:
        return "a mapping"
    if origin is list:
        return "a list"
    return None


class _Collector:
    """Problems found so far, located through the document's marks."""

    def __init__(self, marks: Marks | None) -> None:
        self.marks = marks or Marks()
        self.problems: list[ScenarioProblem] = []
        self.warnings: list[ScenarioProblem] = []

    def add(self, path: Path, message: str, allowed: str | None = None, *, key: bool = False,
            severity: str = "error") -> None:
        line, col = self.marks.find(path, key)
        problem = ScenarioProblem(_format(path), message, allowed, self.marks.file, line, col,
                                  severity)
        (self.warnings if severity == "warning" else self.problems).append(problem)

    def model(self, model: type[BaseModel], values: Any, prefix: Path, what: str,
              hint: Mapping[str, str] | None = None) -> BaseModel | None:
        """Validate *values* with *model*; record every error and the model's warnings."""
        if not isinstance(values, Mapping):
            self.add(prefix, f"{what} must be a mapping of settings, not {values!r}")
            return None
        try:
            obj = model.model_validate(dict(values))
        except ValidationError as exc:
            for err in exc.errors():
                self._pydantic(model, err, prefix, what, hint or {})
            return None
        self._warnings(model, obj, prefix)
        return obj

    def _pydantic(self, model: type[BaseModel], err: Any, prefix: Path, what: str,
                  hint: Mapping[str, str]) -> None:
        loc = tuple(err["loc"])
        path = (*prefix, *loc)
        name = str(loc[0]) if loc else ""
        kind = err["type"]
        if kind == "extra_forbidden":
            known = sorted(model.model_fields)
            close = difflib.get_close_matches(name, known, n=1)
            article = "an" if what[:1] in "aeiou" else "a"
            text = f"unsupported setting {name!r}: not {article} {what} setting"
            if name in hint:
                text += f" ({hint[name]})"
            elif close:
                text += f" — did you mean {close[0]!r}?"
            self.add(path, text, ", ".join(known), key=True)
        elif kind == "missing":
            self.add(path, f"{what} needs {name!r}", _allowed_of(model, name))
        elif kind.endswith("_type") or kind in ("literal_error", "greater_than_equal",
                                                 "less_than_equal", "int_parsing"):
            self.add(path, f"{err['input']!r}: {err['msg']}", _allowed_of(model, name))
        else:  # our own errors (the room's words) and model-level checks
            self.add(path, str(err["msg"]), _allowed_of(model, name) if name else None)

    def _warnings(self, model: type[BaseModel], obj: BaseModel, prefix: Path) -> None:
        for name, info in model.model_fields.items():
            for meta in info.metadata:
                if isinstance(meta, Warn):
                    for index, text in meta.check(getattr(obj, name)):
                        path = (*prefix, name) if index is None else (*prefix, name, index)
                        self.add(path, text, severity="warning")

    def raise_if_any(self) -> None:
        if self.problems:
            raise ScenarioError(self.problems)


def _fields_of(models: Iterable[type[BaseModel]]) -> set[str]:
    return {n for m in models for n in m.model_fields}


def validate(doc: Any, *, marks: Marks | None = None) -> Validated:
    """Check a scenario document (from YAML or a dict); every problem at once in one
    :class:`~realip.errors.ScenarioError`."""
    c = _Collector(marks)
    if not isinstance(doc, Mapping):
        c.add((), f"a scenario is a mapping with client, hops and broker, not {doc!r}")
        c.raise_if_any()
    # a key indented one level too little lands at the top: say where it belongs
    hint: dict[str, str] = {}
    for n in _fields_of(broker_model(k) for k in BROKER_KINDS):
        hint[n] = "a broker setting: indent it under broker"
    for n in _fields_of(hop_model(k) for k in HOP_KINDS):
        hint.setdefault(n, "a hop setting: indent it under one of hops")
    for n in ClientSettings.model_fields:
        hint.setdefault(n, "a client setting: indent it under client")
    for n in ScenarioSettings.model_fields:
        hint.pop(n, None)
    top = c.model(ScenarioSettings, doc, (), "scenario", hint)
    expect_given = isinstance(doc, Mapping) and "expect" in doc
    client_doc = doc.get("client") if isinstance(doc, Mapping) else None
    client = validate_client(client_doc, c) if client_doc is not None else None
    hops: list[tuple[str, dict[str, Any]]] = []
    raw_hops = doc.get("hops", []) if isinstance(doc, Mapping) else []
    if isinstance(raw_hops, list):
        for i, h in enumerate(raw_hops):
            got = _hop(h, i, c)
            if got is not None:
                hops.append(got)
    broker_doc = doc.get("broker") if isinstance(doc, Mapping) else None
    broker = validate_broker(broker_doc, c) if broker_doc is not None else None
    _unique_names(doc, c)
    c.raise_if_any()
    assert top is not None and client is not None and broker is not None
    return Validated(getattr(top, "name", None), getattr(top, "title", ""),
                     getattr(top, "description", ""), getattr(top, "expect", None),
                     expect_given, client, tuple(hops), broker, tuple(c.warnings),
                     getattr(top, "expect_username", None))


def _hop(h: Any, i: int, c: _Collector) -> tuple[str, dict[str, Any]] | None:
    prefix: Path = ("hops", i)
    if not isinstance(h, Mapping):
        c.add(prefix, f"a hop is a mapping with a kind, not {h!r}")
        return None
    kind = h.get("kind")
    if not isinstance(kind, str) or kind not in HOP_KINDS:
        c.add((*prefix, "kind"), f"hop kind {kind!r} is unknown" if "kind" in h
              else "a hop needs a kind", " | ".join(HOP_KINDS))
        return None
    values = validate_hop(kind, {k: v for k, v in h.items() if k != "kind"}, prefix, c)
    return None if values is None else (kind, values)


def validate_hop(kind: str, values: Mapping[str, Any], prefix: Path = ("hop",),
                 collector: _Collector | None = None) -> dict[str, Any] | None:
    """Check one hop's settings (without ``kind``); the validated settings.  Without a
    *collector* a problem raises :class:`~realip.errors.ScenarioError`."""
    c = collector or _Collector(None)
    obj = c.model(hop_model(kind), values, prefix, kind)
    if collector is None:
        c.raise_if_any()
    return None if obj is None else dict(obj)


def validate_broker(values: Any, collector: _Collector | None = None,
                    prefix: Path = ("broker",)) -> dict[str, Any] | None:
    """Check the broker's settings (``kind`` included, default the registry's first); the
    validated settings with their ``kind``."""
    c = collector or _Collector(None)
    out: dict[str, Any] | None = None
    if not isinstance(values, Mapping):
        c.add(prefix, f"the broker is a mapping of settings, not {values!r}")
    else:
        kind = values.get("kind", _default_broker_kind())
        if kind not in BROKER_KINDS:
            c.add((*prefix, "kind"), f"broker kind {kind!r} is unknown", " | ".join(BROKER_KINDS))
        else:
            obj = c.model(broker_model(kind), values, prefix, f"{kind} broker")
            out = None if obj is None else {**dict(obj), "kind": kind}
    if collector is None:
        c.raise_if_any()
    return out


def validate_client(values: Any, collector: _Collector | None = None,
                    prefix: Path = ("client",)) -> dict[str, Any] | None:
    """Check the client's settings; the validated settings."""
    c = collector or _Collector(None)
    obj = c.model(ClientSettings, values, prefix, "client")
    if collector is None:
        c.raise_if_any()
    return None if obj is None else dict(obj)


def _unique_names(doc: Any, c: _Collector) -> None:
    """Every host label once (read off the document, so it is checked even when a hop has
    other problems)."""
    if not isinstance(doc, Mapping):
        return
    entries: list[tuple[Path, Any]] = []
    client, broker, hops = doc.get("client"), doc.get("broker"), doc.get("hops")
    if isinstance(client, Mapping):
        entries.append((("client",), client.get("name", ClientSettings.model_fields["name"]
                                                 .default)))
    if isinstance(hops, list):
        entries += [(("hops", i), h.get("name")) for i, h in enumerate(hops)
                    if isinstance(h, Mapping)]
    if isinstance(broker, Mapping):
        kind = broker.get("kind", _default_broker_kind())
        default = (broker_model(kind).model_fields["name"].default if kind in BROKER_KINDS
                   else None)
        entries.append((("broker",), broker.get("name", default)))
    seen: dict[str, Path] = {}
    for path, name in entries:
        if not isinstance(name, str):
            continue
        if name in seen:
            c.add((*path, "name"), f"the name {name!r} is already {_format(seen[name])}'s: "
                  "every host needs its own name (traces and the live lab tell them apart by it)")
        else:
            seen[name] = path


# ==============================================================================================
# The reference, generated


def _default_text(info: Any, allowed: str) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if value is None:
        return "null"
    if isinstance(value, bool) and allowed == "on | off":  # nginx's words
        return "`on`" if value else "`off`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == ():
        return "[]"
    return f"`{value}`" if value != "" else '""'


def _table(model: type[BaseModel], skip: Sequence[str] = ()) -> list[str]:
    rows = ["| key | allowed | default | what |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        allowed = _allowed_of(model, name) or ""
        default = _default_text(info, allowed)
        what = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {allowed.replace('|', chr(92) + '|')} | {default} | {what} |")
    return rows


def markdown() -> str:
    """``docs/scenario-language.md``: every key of a scenario, per hop and broker kind, with its
    allowed values, default and meaning (generated from the rooms' declarations)."""
    out = ["# The scenario language", "",
           "<!-- generated by `python tools/scenario_doc.py` from realip/schema.py and the "
           "rooms' settings.py; tests/test_schema.py checks it is current -->", "",
           "A scenario is a YAML file (or a Python dict) with the keys below. Unknown keys are "
           "errors at every level, host names must be unique, and every error names the file, "
           "line and column, the setting's path (such as `hops[1].real_ip_recursive`) and what "
           "is allowed.", "",
           "- A list written as one string is that one item (`set_real_ip_from: 10.0.1.0/24`)"
           " — never split into characters.",
           "- Header lines (`headers`, `proxy_set_header`) are `[name, value]` pairs, `{name: "
           "value}` items, or one `{name: value, …}` mapping (its order is kept); values are "
           "text, so quote numbers.",
           "- Flags take the program's words: nginx `on`/`off`, EMQX's HOCON `true`/`false`; "
           "a quoted `\"off\"` is off and a quoted `\"false\"` false; anything else is "
           "refused.",
           "- Versions are quoted (`version: \"2.10\"`: unquoted YAML reads 2.10 as 2.1).",
           "- A YAML key given twice is an error (YAML alone would keep the last).",
           "- What a program only warns about is a warning (nginx: `low address bits of "
           "10.0.1.1/24 are meaningless`), printed by `simulate` and kept in "
           "`Topology.warnings`.",
           "", "`python -m realip simulate NAME|FILE` plays a scenario and checks its `expect` "
           "(✗ with both values and exit status 1 when it does not hold; a scenario that does "
           "not validate exits 2). `python -m realip scenarios` lists the bundled names; "
           "`REALIP_DATA=/some/folder` (holding `topologies/`, `nginx/`, `haproxy/`) is used "
           "instead of the bundled data. In Python: `realip.topology.load_scenario(name or "
           "path)`, `scenarios()`, `from_dict(dict)`, `check_expect(topology)`; "
           "`Topology.with_hop(name, **settings)`, `with_broker`, `with_client` are checked "
           "the same way.", "",
           "## Top level", "", *_table(ScenarioSettings), "",
           "## `client`", "", *_table(ClientSettings), ""]
    out += ["## Hops", "", "Each item of `hops` has a `kind`: "
            + ", ".join(f"`{k}`" for k in HOP_KINDS) + ".", ""]
    for kind in HOP_KINDS:
        model = hop_model(kind)
        out += [f"### `kind: {kind}`", "", _first_line(model), "", *_table(model), ""]
    out += ["## `broker`", "", f"`kind` is one of {', '.join(f'`{k}`' for k in BROKER_KINDS)} "
            f"(default `{_default_broker_kind()}`).", ""]
    for kind in BROKER_KINDS:
        model = broker_model(kind)
        out += [f"### `kind: {kind}`", "", _first_line(model), "", *_table(model), ""]
    return "\n".join(out)


def _first_line(model: type[BaseModel]) -> str:
    return (model.__doc__ or "").strip().splitlines()[0].replace("``", "`")
