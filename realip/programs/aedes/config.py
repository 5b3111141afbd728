"""aedes' options — the object given to aedes-server-factory's ``createServer(aedes, options)``
— read into a broker listener.

The file is JSON or a JavaScript object literal as one writes it next to ``createServer``::

    // aedes.options.js
    module.exports = {
      trustProxy: true,   // read PROXY headers / X-Forwarded-For from any sender
      ws: true,           // an HTTP server wrapped in a WebSocket server
      protocolDecoder,    // aedes-protocol-decoder's own (the default)
    }

Accepted around the object: ``module.exports =``, ``export default``, ``const NAME =`` (or
``let`` / ``var``) and a final ``;``; inside it: ``//`` and ``/* */`` comments, unquoted or
quoted keys, trailing commas, and identifiers as values (a reference such as
``protocolDecoder``: nothing is evaluated).

What aedes-server-factory 0.2.1 does with each option (``Object.assign`` over its defaults,
then plain truthiness tests) and what realip makes of it:

==========================  ====================================================================
``trustProxy``              ``true`` / ``false`` → ``trust_proxy``.  Anything else is refused:
                            the factory tests it for truthiness, so ``"false"`` or ``0`` would
                            mean something the writer may not intend
``ws``                      ``true`` → a WebSocket listener, ``false`` / ``null`` → TCP
``protocolDecoder``,        only aedes-protocol-decoder's own (the default, or a reference to
``extractSocketDetails``    an identifier of that name): a custom decoder is not modelled
``http``                    HTTP server options: read, nothing in them changes the address
``tcp``                     named in a warning: 0.2.1 never passes it to ``net.createServer``
``customWSErrorHandler``    accepted (it sees errors, not addresses)
``tls``, ``https``,         refused unless ``null``: TLS and HTTP/2 listeners are not modelled
``http2``, ``serverFactory``  for aedes; a custom server factory replaces what is modelled
==========================  ====================================================================

Any other key is refused too (the factory would silently ignore it — ``trustproxy: true``
leaves trustProxy off).  Errors name ``file:line`` and what is allowed.  Sans-IO: text in,
settings out.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigurationError

__all__ = ["OPTIONS", "VERSION", "from_aedes_options", "options_file", "parse_options"]

#: The aedes version the options mean (the one observed in the lab: aedes 1.2.0 with
#: aedes-protocol-decoder 2.2.0 and aedes-server-factory 0.2.1); --broker-version overrides it.
VERSION = "1.2.0"

#: The option names aedes-server-factory 0.2.1 knows (its ``defaultOptions``).
OPTIONS = ("trustProxy", "ws", "protocolDecoder", "extractSocketDetails", "http", "tcp",
           "customWSErrorHandler", "tls", "https", "http2", "serverFactory")

_UNMODELLED = {"tls": "a TLS listener", "https": "an HTTPS listener",
               "http2": "an HTTP/2 listener", "serverFactory": "a custom server factory"}


@dataclass(frozen=True)
class Ref:
    """An identifier used as a value (``protocolDecoder``): a reference, never evaluated."""

    name: str


@dataclass(frozen=True)
class Member:
    """One key of the options object: its value (Python data; :class:`Ref` for an identifier)
    and the line it is on."""

    key: str
    value: Any
    line: int


# ----------------------------------------------------------------------------------------------
# The tokenizer and the parser (a JSON superset: what people write as a JavaScript object literal)

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n\ufeff]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))
  | (?P<ident>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)
  | (?P<punct>[{}\[\]:,;=])
""", re.VERBOSE | re.DOTALL)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0",
            "\\": "\\", "'": "'", '"': '"', "/": "/", "\n": ""}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    line: int


def _tokens(text: str, filename: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text.startswith("/*", pos):
                raise ConfigurationError(f"{filename}:{line}: a /* comment is not closed")
            if text[pos] in "\"'":
                raise ConfigurationError(f"{filename}:{line}: a string is not closed on its "
                                         "line")
            raise ConfigurationError(f"{filename}:{line}: unexpected {text[pos]!r} (a JSON or "
                                     "JavaScript object literal of options is expected)")
        kind = m.lastgroup or ""
        if kind not in ("space", "comment"):
            out.append(_Tok(kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    out.append(_Tok("end", "", line))
    return out


def _unquote(tok: _Tok, filename: str) -> str:
    body = tok.text[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        width = {"u": 4, "x": 2}.get(nxt)  # \uXXXX, \xXX
        if width is not None:
            digits = body[i + 2:i + 2 + width]
            if not re.fullmatch(rf"[0-9a-fA-F]{{{width}}}", digits):
                raise ConfigurationError(f"{filename}:{tok.line}: bad \\{nxt} escape in "
                                         f"{tok.text}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


class _Parser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.toks = _tokens(text, filename)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, what: str, tok: _Tok | None = None) -> ConfigurationError:
        tok = tok or self.tok
        got = "the end of the file" if tok.kind == "end" else repr(tok.text)
        return ConfigurationError(f"{self.filename}:{tok.line}: {what}, not {got}")

    def take(self, text: str) -> _Tok:
        tok = self.tok
        if tok.text != text or tok.kind not in ("punct", "ident"):
            raise self.fail(f"expected {text!r}")
        self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("punct", "ident") and self.tok.text in texts

    def document(self) -> list[Member]:
        # the object may be written as a module's export or a variable's value
        if self.at("module.exports", "exports"):
            self.i += 1
            self.take("=")
        elif self.at("export"):
            self.i += 1
            self.take("default")
        elif self.at("const", "let", "var"):
            self.i += 1
            if self.tok.kind != "ident":
                raise self.fail("expected a variable name")
            self.i += 1
            self.take("=")
        if not self.at("{"):
            raise self.fail("expected the options object '{ … }' (JSON, or a JavaScript "
                            "object literal; optionally after module.exports =, export "
                            "default or const NAME =)")
        members = self.object_members()
        if self.at(";"):
            self.i += 1
        if self.tok.kind != "end":
            raise self.fail("expected the end of the file after the options object")
        return members

    def object_members(self) -> list[Member]:
        self.take("{")
        members: list[Member] = []
        while not self.at("}"):
            tok = self.tok
            if tok.kind == "ident":
                key = tok.text
            elif tok.kind == "string":
                key = _unquote(tok, self.filename)
            elif tok.kind == "number":
                key = tok.text
            else:
                raise self.fail("expected an option name or '}'")
            if "." in key and tok.kind == "ident":
                raise self.fail("expected an option name", tok)
            self.i += 1
            if self.at(":"):
                self.i += 1
                value = self.value()
            elif tok.kind == "ident" and self.at(",", "}"):
                value = Ref(key)  # shorthand { protocolDecoder }
            else:
                raise self.fail(f"expected ':' after {key!r}")
            members.append(Member(key, value, tok.line))
            if self.at(","):
                self.i += 1
            elif not self.at("}"):
                raise self.fail("expected ',' or '}'")
        self.i += 1
        return members

    def value(self) -> Any:
        tok = self.tok
        if self.at("{"):
            return {m.key: m.value for m in self.object_members()}
        if self.at("["):
            self.i += 1
            items: list[Any] = []
            while not self.at("]"):
                items.append(self.value())
                if self.at(","):
                    self.i += 1
                elif not self.at("]"):
                    raise self.fail("expected ',' or ']'")
            self.i += 1
            return items
        self.i += 1
        if tok.kind == "string":
            return _unquote(tok, self.filename)
        if tok.kind == "number":
            text = tok.text.lstrip("+")
            if re.fullmatch(r"-?0[xX][0-9a-fA-F]+", text):
                return int(text, 16)
            number = float(text)
            return int(number) if number.is_integer() and re.fullmatch(r"-?\d+", text) \
                else number
        if tok.kind == "ident":
            literal = {"true": True, "false": False, "null": None, "undefined": None}
            if tok.text in literal:
                return literal[tok.text]
            return Ref(tok.text)  # a call (…) cannot follow: '(' is not a token
        self.i -= 1
        raise self.fail("expected a value")


def parse_options(text: str, *, filename: str = "aedes.json") -> list[Member]:
    """The options object's members, in order, with their lines (see the module
    documentation for what is accepted around and inside the object)."""
    return _Parser(text, filename).document()


# ----------------------------------------------------------------------------------------------
# The options → the broker listener


def _js(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, Ref):
        return value.name
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return str(value)


def from_aedes_options(text: str, *, filename: str = "aedes.json", transport: str | None = None
                       ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Keyword arguments for :class:`~realip.programs.base.Broker` (``kind="aedes"``) from the
    ``createServer`` options in *text*, and the warnings.  *transport* (``tcp``/``ws``: how the
    client connects) must match the server the options make (``ws``)."""
    members = parse_options(text, filename=filename)
    seen: dict[str, int] = {}
    warnings: list[str] = []
    trust, ws = False, False
    ws_line: int | None = None
    for m in members:
        where = f"{filename}:{m.line}"
        if m.key in seen:
            raise ConfigurationError(f"{where}: {m.key} is given twice (first on line "
                                     f"{seen[m.key]}; JavaScript would keep the last): give it "
                                     "once")
        seen[m.key] = m.line
        if m.key not in OPTIONS:
            close = difflib.get_close_matches(m.key, OPTIONS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigurationError(
                f"{where}: {m.key!r} is not an aedes-server-factory option (it would ignore "
                f"it{hint}); allowed: {', '.join(OPTIONS)}")
        v = m.value
        if m.key == "trustProxy":
            if not isinstance(v, bool):
                truthy = "on" if _truthy(v) else "off"
                raise ConfigurationError(
                    f"{where}: trustProxy: {_js(v)} — give true or false (aedes-server-factory "
                    f"tests it for truthiness, so this value turns trustProxy {truthy})")
            trust = v
        elif m.key == "ws":
            if v is not None and not isinstance(v, bool):
                raise ConfigurationError(f"{where}: ws: {_js(v)} — give true (a WebSocket "
                                         "server), false or null (a TCP server)")
            ws, ws_line = bool(v), m.line
        elif m.key in ("protocolDecoder", "extractSocketDetails"):
            if not (v is None or (isinstance(v, Ref) and v.name.rsplit(".", 1)[-1] == m.key)):
                raise ConfigurationError(
                    f"{where}: {m.key}: {_js(v)} — only aedes-protocol-decoder's own "
                    f"{m.key} is modelled (leave it out, or write {m.key})")
        elif m.key in _UNMODELLED:
            if v is not None:
                raise ConfigurationError(
                    f"{where}: {m.key}: {_UNMODELLED[m.key]} is not modelled for aedes "
                    f"(allowed: trustProxy, ws, http, tcp, protocolDecoder, "
                    f"extractSocketDetails, customWSErrorHandler; {m.key} only as null)")
        elif m.key in ("http", "tcp"):
            if v is not None and not isinstance(v, dict):
                raise ConfigurationError(f"{where}: {m.key}: {_js(v)} — give an object of "
                                         "server options (or null)")
            if m.key == "tcp" and v:
                warnings.append(f"{where}: tcp: aedes-server-factory 0.2.1 does not pass "
                                "these options to net.createServer (no effect)")
            if m.key == "http" and v and not ws:
                warnings.append(f"{where}: http: used only with ws: true")
        elif m.key == "customWSErrorHandler" and not isinstance(v, Ref | type(None)):
            raise ConfigurationError(f"{where}: customWSErrorHandler: {_js(v)} — give a "
                                     "function's name")
    listener = "ws" if ws else "tcp"
    if transport is not None and transport != listener:
        line = ws_line or 1
        made = "a WebSocket server (ws: true)" if ws else "a TCP server (no ws: true)"
        raise ConfigurationError(f"{filename}:{line}: these options make {made}, but the "
                                 f"client connects over {transport} (--transport {listener}, "
                                 f"or {'leave ws out' if ws else 'add ws: true'})")
    settings: dict[str, Any] = {"kind": "aedes", "name": "aedes", "listener": listener,
                                "trust_proxy": trust, "version": VERSION}
    return settings, tuple(warnings)


def _truthy(value: Any) -> bool:
    """JavaScript's truthiness for the values this reader produces."""
    if isinstance(value, Ref):  # NaN is the one falsy identifier a value can name here
        return value.name != "NaN"
    if isinstance(value, list | dict):
        return True  # every object is truthy, empty or not
    if isinstance(value, str):
        return value != ""
    if isinstance(value, int | float):
        return value != 0
    return bool(value)


def options_file(trust_proxy: bool, listener: str) -> str:
    """The options file for a listener (what :func:`from_aedes_options` reads back): how the
    audit shows an aedes fix as a diff."""
    lines = ["// createServer(aedes, options) — aedes-server-factory",
             "module.exports = {",
             f"  trustProxy: {'true' if trust_proxy else 'false'},"]
    if listener == "ws":
        lines.append("  ws: true,")
    lines.append("  protocolDecoder,  // aedes-protocol-decoder's (the default)")
    lines.append("}")
    return "\n".join(lines) + "\n"
