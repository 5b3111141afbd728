"""Which address does each system believe is the client?  One function per system, each
reproducing it exactly, each result carrying a step-by-step trace (sans-IO).

* :func:`nginx_realip` — nginx's ``ngx_http_realip_module`` (``set_real_ip_from``,
  ``real_ip_header``, ``real_ip_recursive``) and the variables it sets.
* :func:`emqx_ws_peer` — EMQX's WebSocket listener (``proxy_address_header`` /
  ``proxy_port_header``; 6.4's ``proxy_address_allow``).
* :func:`haproxy_forwardfor`, :func:`haproxy_set_header`, :func:`haproxy_hdr_ip` — what HAProxy
  adds, replaces and reads.
* :func:`client_ip` — realip's own safe resolver, the one to use in your code.
* :func:`werkzeug_proxy_fix`, :func:`uvicorn_proxy_headers`, :func:`ipware_leftmost`,
  :func:`express_trust_proxy` — what popular libraries do, each with its known weakness.

The trace (:class:`Step` per examined entry) is complete enough to draw the right-to-left walk
without re-implementing any of it.

Where each takes the client's *port* from — the field a forger can choose most easily:

======================  =========================================================================
``client_ip``           the chosen ``ip:port`` entry or ``Forwarded`` ``for="ip:port"``
                        element (written by the trusted proxy that appended it);
                        ``X-Forwarded-Port`` only with ``x_forwarded_port=True`` (the
                        configuration says every trusted proxy appends one element), aligned from
                        the right; otherwise unknown (None) — never the client's own claim
uvicorn                 none (the port of the TCP peer is dropped: ``client=(host, 0)``)
Werkzeug ProxyFix       ``X-Forwarded-Port`` when ``x_port=1``: the value the last proxy sent,
                        whoever wrote it
python-ipware           none
Express                 none (``req.ip`` only)
EMQX (WebSocket)        the leftmost ``X-Forwarded-Port`` token: the client's claim when the
                        proxies append
======================  =========================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import MappingProxyType
from typing import Any

from ._addr import format_ip, ipv4_int
from ._headers import Headers, parse_peer
from .decisions import Entry, Resolution, Step
from .errors import ConfigurationError
from .forwarded import (
    ForwardedSyntaxError,
    Node,
    header_lines,
    parse_forwarded,
    parse_node,
    parse_ports,
)
from .programs.emqx.ws import emqx_ws_peer
from .programs.haproxy.http import haproxy_forwardfor, haproxy_hdr_ip, haproxy_set_header
from .programs.nginx.http_realip import ProxyProtocolInfo, nginx_interpolate, nginx_realip
from .trust import Trust

__all__ = [
    "ClientIP",
    "Entry",
    "ProxyProtocolInfo",
    "Resolution",
    "Step",
    "client_ip",
    "emqx_ws_peer",
    "express_trust_proxy",
    "haproxy_forwardfor",
    "haproxy_hdr_ip",
    "haproxy_set_header",
    "ipware_leftmost",
    "nginx_interpolate",
    "nginx_realip",
    "uvicorn_proxy_headers",
    "werkzeug_proxy_fix",
]

IP = IPv4Address | IPv6Address
_EMPTY: Mapping[str, str] = MappingProxyType({})
_XFF_NAMES = frozenset({"X-Forwarded-For", "x-forwarded-for"})  # skip .lower() for these


# ==============================================================================================
# realip's safe resolver


class ClientIP:
    """The safe resolver with its trust compiled once: ``ClientIP(trusted=[...], hops=N)`` then
    ``resolver(peer, headers)`` — what :func:`client_ip` does, without re-reading the
    configuration on every request.  Bad configuration raises
    :class:`~realip.ConfigurationError` here: a string instead of a list of ranges, a bool or
    non-integer *hops*, an IPv4-mapped range (``::ffff:10.0.0.0/104`` never matches: v4-mapped
    addresses are compared as IPv4 — write ``10.0.0.0/8``).

    Fast path: each list entry's verdict is memoised as it appears (spaces included), and the
    trusted proxies' part of the last list walked is remembered, so a request through the same
    proxies costs one suffix comparison and one memo lookup; anything unusual takes the traced
    walk, which also gives every explanation on demand."""

    __slots__ = ("_cache", "_peers", "_raw", "_rules", "_suffix", "_v4", "hops", "trust",
                 "x_forwarded_port")

    def __init__(self, trusted: Sequence[str] = (), *, hops: int | None = None,
                 x_forwarded_port: bool = False) -> None:
        if isinstance(trusted, str | bytes):
            raise ConfigurationError(
                f"trusted must be a list of ranges, not the string {trusted!r} (a string would "
                f"be read character by character): write [{trusted!r}]")
        if isinstance(hops, bool) or not (hops is None or isinstance(hops, int)):
            raise ConfigurationError(f"hops must be a whole number of proxies or None, not "
                                     f"{hops!r}")
        if not isinstance(x_forwarded_port, bool):
            raise ConfigurationError("x_forwarded_port is True (the trusted proxies append an "
                                     f"X-Forwarded-Port element each) or False, not "
                                     f"{x_forwarded_port!r}")
        trusted = tuple(trusted)
        for entry in trusted:
            _refuse_mapped(entry)
        if not trusted and hops is None:
            raise ConfigurationError("client_ip needs trusted ranges, a hop count, or both")
        self.trust = Trust(trusted, hops=hops)
        self.hops = hops
        #: the trusted proxies append one X-Forwarded-Port element each, so its elements aligned
        #: from the right with the trusted part of X-Forwarded-For are theirs (off: the port is
        #: only what a chosen entry carries itself, else unknown — never the client's claim)
        self.x_forwarded_port = x_forwarded_port
        # token text → (parsed node, matching rule); bounded, so junk cannot grow it forever
        self._cache: dict[str, tuple[Node | None, str | None, str | None]] = {}
        self._peers: dict[str, bool] = {}
        # raw list element (spaces included) → (address text, port, matches a rule)
        self._raw: dict[str, tuple[str | None, int | None, bool]] = {}
        self._rules = bool(self.trust.rules)
        self._v4 = self.trust.ipv4_ranges
        # the trusted proxies' part of the last list walked (hops None): its text (from its
        # leading comma), its length and how many entries it holds — one tuple, replaced whole
        self._suffix: tuple[str, int, int] | None = None

    def judge(self, text: str, forwarded: bool = False) -> tuple[Node | None, str | None]:
        """Parse *text* and find the trust rule it matches (memoised)."""
        node, rule, _ = self._judge(text, forwarded)
        return node, rule

    def _judge(self, text: str, forwarded: bool) -> tuple[Node | None, str | None, str | None]:
        key = text if not forwarded else "\0" + text
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        node = parse_node(text, forwarded=forwarded)
        rule = None if node is None or node.ip is None else self.trust.rule_for(node.ip)
        shown = None if node is None or node.ip is None else format_ip(node.ip)
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[key] = hit = (node, rule, shown)
        return hit

    def __call__(self, peer: str, headers: Headers, *, peer_port: int | None = None,
                 max_entries: int = 32, max_bytes: int = 8192) -> Resolution:
        """Resolve one request (see :func:`client_ip`)."""
        return _resolve(self, peer, headers, peer_port, max_entries, max_bytes)

    def _judge_peer(self, peer: str) -> bool | None:
        """Whether the TCP peer is trusted (memoised); None: not an address (traced walk)."""
        try:
            pip: IP | str = parse_peer(peer)
        except ConfigurationError:
            return None
        ok = self.trust(pip, 0)
        if len(self._peers) >= 4096:
            self._peers.clear()
        self._peers[peer] = ok
        return ok

    def _walk(self, xff: str, max_entries: int) -> tuple[str | None, int | None, bool] | None:
        """The client of a plain X-Forwarded-For list, or None where the traced walk must
        decide (a malformed entry, more than *max_entries* entries to read)."""
        # C-level splits from the right: first just a few entries (the boundary is usually near
        # the right end), the rest only if the walk gets that far; never more than max_entries.
        cache = self._raw
        hops = self.hops
        rules = self._rules
        limit = 4 if max_entries > 4 else max_entries
        parts = xff.rsplit(",", limit)
        while True:
            n = len(parts)
            truncated = n > limit
            stop = 1 if truncated else 0  # parts[0] is then the unread rest
            for k in range(n - 1, stop - 1, -1):
                hit = cache.get(parts[k]) or self._judge_raw(parts[k])
                if hit[0] is None:
                    return None
                trusted = hit[2] if hops is None else (hit[2] or not rules) and n - k < hops
                if trusted and (k or truncated):
                    continue
                if hops is None and not trusted:
                    # remember the trusted part (the proxies' entries, a comma before each)
                    # for the next request through the same proxies
                    cut = sum(map(len, parts[k + 1 :])) + n - 1 - k
                    self._suffix = (xff[len(xff) - cut :] if cut else "", cut, n - 1 - k)
                return hit
            if not truncated or limit >= max_entries:
                return None
            limit = max_entries
            parts = xff.rsplit(",", limit)

    def _judge_raw(self, raw: str) -> tuple[str | None, int | None, bool]:
        text = raw.strip(" \t")
        v4 = ipv4_int(text)
        hit: tuple[str | None, int | None, bool]
        if v4 is not None:
            # a strict dotted quad (the usual new client) is its own canonical text
            hit = (text, None, any(v4 & mask == net for net, mask in self._v4))
        else:
            node, rule, shown = self._judge(text, False)
            hit = (shown, None if node is None else node.port, rule is not None)
        if len(self._raw) >= 4096:
            self._raw.clear()
        self._raw[raw] = hit
        return hit


_tuple_new = tuple.__new__


def _resolve(comp: ClientIP, peer: str, headers: Headers, peer_port: int | None,
             max_entries: int, max_bytes: int) -> Resolution:
    """:class:`ClientIP`'s resolution, positional (what :func:`client_ip` calls directly)."""
    # Fast path for the common case (X-Forwarded-For lines, nothing unusual), compiled down
    # to C-level operations: no trace is built and nothing is parsed twice.  Everything else,
    # and every explanation (reason, trace), comes from the traced walk, on demand; a
    # property test holds the two paths to the same answers.
    xff = None
    for name, value in headers:
        size = len(name)
        if size == 15:
            if name in _XFF_NAMES or name.lower() == "x-forwarded-for":
                xff = value if xff is None else f"{xff}, {value}"
        elif (size == 9 or size == 16) and name.lower() in ("forwarded", "x-forwarded-port"):
            break  # the traced walk reads those
    else:
        if xff is not None:
            peer_ok = comp._peers.get(peer)
            if peer_ok is None:
                peer_ok = comp._judge_peer(peer)
            size = len(xff)
            if peer_ok and size <= max_bytes:
                hit: tuple[str | None, int | None, bool] | None = None
                suffix = comp._suffix  # one read: another thread may replace it meanwhile
                if suffix is not None and xff.endswith(suffix[0]) and suffix[2] < max_entries:
                    # The usual case, at C speed: the list ends with the trusted proxies'
                    # part seen last time (their entries are trusted whatever precedes
                    # them), so the entry just before it is the candidate; a memo of
                    # verdicts says at once whether it is an untrusted, well-formed client.
                    end = size - suffix[1]
                    raw = xff[xff.rfind(",", 0, end) + 1 : end]
                    hit = comp._raw.get(raw) or comp._judge_raw(raw)
                    if hit[2] or hit[0] is None:
                        hit = None  # trusted or malformed: the walk decides
                if hit is None:
                    hit = comp._walk(xff, max_entries)
                if hit is not None:
                    # (addr, port, mode, used_header, code, reason, trace, entries, header,
                    #  nginx fields…, explain): the explanation is recomputed on demand
                    return _tuple_new(Resolution, (
                        hit[0], hit[1], "realip", True, "HEADER", "", (), (),
                        "X-Forwarded-For", "", None, "", _EMPTY, (),
                        (_client_ip, comp, peer, headers, peer_port, max_entries,
                         max_bytes)))
    return _client_ip(comp, peer, headers, peer_port, max_entries, max_bytes)


def _refuse_mapped(entry: str) -> None:
    """An IPv4-mapped IPv6 range can never match: v4-mapped peers and entries are compared as
    IPv4 (so ``::ffff:10.0.0.5`` is 10.0.0.5).  Say so instead of compiling a dead rule."""
    from ipaddress import IPv6Network, ip_network

    try:
        net = ip_network(str(entry).strip(), strict=False)
    except ValueError:
        return  # Trust names malformed entries itself
    if isinstance(net, IPv6Network) and net.prefixlen >= 96 and \
            net.network_address.ipv4_mapped is not None:
        v4 = ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}", strict=False)
        raise ConfigurationError(
            f"trusted entry {entry!r} is an IPv4-mapped range: it never matches, because "
            f"v4-mapped addresses are compared as IPv4 — write {v4} instead")


_COMPILED: dict[tuple[tuple[str, ...], int | None, bool], ClientIP] = {}
_LAST: tuple[Any, ...] = (None, None, None, None, None)


def _compiled(trusted: tuple[str, ...], hops: int | None, xfp: bool) -> ClientIP:
    comp = _COMPILED.get((trusted, hops, xfp))
    if comp is None:
        comp = ClientIP(trusted, hops=hops, x_forwarded_port=xfp)
        if len(_COMPILED) >= 64:
            _COMPILED.clear()
        _COMPILED[(trusted, hops, xfp)] = comp
    return comp


def client_ip(
    peer: str,
    headers: Headers,
    *,
    trusted: Sequence[str] = (),
    hops: int | None = None,
    peer_port: int | None = None,
    max_entries: int = 32,
    max_bytes: int = 8192,
    x_forwarded_port: bool = False,
) -> Resolution:
    """The client address, the safe way — the resolver realip recommends.

    1. The TCP *peer* must be trusted first (in *trusted*, and within *hops* if given);
       otherwise the headers are ignored, whatever they say.
    2. ``X-Forwarded-For`` (all lines, as one list) or ``Forwarded`` (``for=``) is walked right
       to left; an entry is skipped while it is trusted (CIDR match, and hop index < *hops* when
       a hop count is given); the first untrusted entry is the client.  If every entry is
       trusted, the leftmost is used.
    3. It **fails closed** (``addr`` None) on a malformed entry at or before the boundary, when
       both ``Forwarded`` and ``X-Forwarded-For`` are present (they would disagree), and when the
       walk would need more than *max_entries* entries or *max_bytes* bytes.
    4. The port is never the client's claim: it comes from the chosen entry itself when that
       entry is ``ip:port`` (written by the trusted proxy that appended it), else — only with
       *x_forwarded_port* True, i.e. when the configuration says every trusted proxy appends one
       ``X-Forwarded-Port`` element — from the element aligned with it counting from the right
       (the trusted proxies' part of the list); otherwise it is unknown (None).  A client that
       sends ``X-Forwarded-Port: 31337`` itself chooses nothing.

    Peer data never raises; a bad configuration raises :class:`~realip.ConfigurationError`.
    The configuration is compiled once and cached; :class:`ClientIP` does the same explicitly.
    """
    global _LAST
    # The same configuration object as last time (the usual case: a module-level list) skips
    # even the dictionary lookup; the copy comparison catches a list changed in place.
    last = _LAST  # one read: another thread may replace it meanwhile
    comp: ClientIP
    if trusted is last[0] and hops == last[1] and x_forwarded_port is last[4] and \
            trusted == last[2]:
        comp = last[3]
    else:
        if isinstance(trusted, str):  # "10.0.0.0/8, ::1" as a convenience
            trusted = tuple(t.strip() for t in trusted.split(",") if t.strip())
        comp = _compiled(trusted if type(trusted) is tuple else tuple(trusted), hops,
                         x_forwarded_port)
        _LAST = (trusted, hops, trusted if type(trusted) is tuple else list(trusted), comp,
                 x_forwarded_port)
    return _resolve(comp, peer, headers, peer_port, max_entries, max_bytes)


def _fail(peer: str, peer_port: int | None, reason: str, steps: list[Step],
          entries: tuple[Entry, ...] = (), header: str = "") -> Resolution:
    return Resolution(None, None, "realip", False, "FAIL", reason, tuple(steps), entries, header)


def _client_ip(comp: ClientIP, peer: str, headers: Headers, peer_port: int | None,
               max_entries: int, max_bytes: int) -> Resolution:
    trust = comp.trust
    xff: list[str] = []
    fwd: list[str] = []
    xfp: list[str] = []
    for name, value in headers:
        lname = name.lower()
        if lname == "x-forwarded-for":
            xff.append(value)
        elif lname == "forwarded":
            fwd.append(value)
        elif lname == "x-forwarded-port":
            xfp.append(value)
    steps: list[Step] = []
    try:
        peer_ip: IP | str = parse_peer(peer)
    except ConfigurationError:
        return _fail(peer, peer_port, f"the peer {peer!r} is not an address", steps)
    peer_text = peer if isinstance(peer_ip, str) else format_ip(peer_ip)
    peer_rule = trust.rule_for(peer_ip) if trust.rules else "hop count"
    peer_ok = trust(peer_ip, 0)
    if not peer_ok:
        why = (f"the peer {peer_text} is not a trusted proxy: headers ignored, the peer is the"
               " client")
        steps.append(Step(None, peer_text, peer_text, peer_port, None, False, None, "peer", why))
        return Resolution(peer_text, peer_port, "realip", False, "PEER", why, tuple(steps))
    steps.append(Step(None, peer_text, peer_text, peer_port, None, True, peer_rule, "peer",
                      f"the peer {peer_text} is a trusted proxy ({peer_rule}): read the header"))
    if xff and fwd:
        return _fail(peer, peer_port, "both Forwarded and X-Forwarded-For are present: refusing"
                     " to guess which one the proxies maintain", steps)
    forwarded = bool(fwd)
    if not xff and not fwd:
        why = "no forwarding header: the trusted peer itself is the client"
        return Resolution(peer_text, peer_port, "realip", False, "PEER", why, tuple(steps))
    joined = ", ".join(fwd if forwarded else xff)
    header = "Forwarded" if forwarded else "X-Forwarded-For"
    # Only the tail that the walk can need is split (a 1 MB header costs no more than the bound).
    tail = joined[-max_bytes:] if len(joined) > max_bytes else joined
    truncated = len(tail) < len(joined)
    if forwarded:
        try:
            elements = parse_forwarded(tail if not truncated else tail[tail.find(",") + 1 :])
        except ForwardedSyntaxError as exc:
            return _fail(peer, peer_port, f"malformed Forwarded header: {exc}", steps,
                         header=header)
        tokens = [(e.for_ or "", e.text) for e in elements]
        if truncated:
            tokens = tokens[1:] if tokens else tokens
    else:
        parts = tail.rsplit(",", max_entries)
        if len(parts) > max_entries or truncated:
            parts = parts[1:]  # the first piece may be cut in the middle
            truncated = True
        tokens = [(p.strip(" \t"), p.strip(" \t")) for p in parts]
    if len(tokens) > max_entries:
        tokens = tokens[-max_entries:]
        truncated = True
    entries = tuple(Entry(0, 0, 0, t[1]) for t in tokens)
    ports: list[int | None] = []
    if xfp:
        ports = parse_ports(", ".join(xfp))
    n = len(tokens)
    for k in range(n - 1, -1, -1):
        text = tokens[k][0]
        hop = n - k
        node, rule = comp.judge(text, forwarded)
        if node is None:
            return _fail(peer, peer_port,
                         f"entry {text!r} is malformed: refusing to guess the client", steps,
                         entries, header)
        if node.ip is None:
            kind = "obfuscated" if node.obfuscated else "unknown"
            return _fail(peer, peer_port, f"entry {text!r} hides the address ({kind}): no client"
                         " can be named", steps, entries, header)
        addr_text = format_ip(node.ip)
        is_trusted = (rule is not None if trust.rules else True) and trust(node.ip, hop) \
            if trust.hops is not None else rule is not None
        if is_trusted and k > 0:
            steps.append(Step(k, text, addr_text, node.port, None, True, rule or "hop count",
                              "skip", f"{addr_text} is trusted ({rule or f'hop {hop}'}): keep "
                              "walking left"))
            continue
        port = node.port
        if port is None and ports and comp.x_forwarded_port and not forwarded:
            # one element per trusted proxy, appended in step with X-Forwarded-For: count from
            # the right, so elements a client put in front never line up with the client entry
            at = len(ports) - (n - k)
            if at >= 0:
                port = ports[at]
        if is_trusted:
            if truncated:
                return _fail(peer, peer_port, f"more than {max_entries} entries or {max_bytes}"
                             " bytes would have to be read: refusing", steps, entries, header)
            why = f"{addr_text} is the leftmost entry and all were trusted: it is used"
            steps.append(Step(k, text, addr_text, port, None, True, rule, "leftmost", why))
            return Resolution(addr_text, port, "realip", True, "HEADER", why, tuple(steps),
                              entries, header)
        why = f"{addr_text} is not trusted: it is the client"
        steps.append(Step(k, text, addr_text, port, None, False, None, "client", why))
        return Resolution(addr_text, port, "realip", True, "HEADER", why, tuple(steps), entries,
                          header)
    return _fail(peer, peer_port, "the header is empty", steps, entries, header)


# ==============================================================================================
# What popular libraries do (for contrast in the notebooks)


def werkzeug_proxy_fix(peer: str, headers: Headers, *, x_for: int = 1) -> Resolution:
    """Werkzeug ``ProxyFix(x_for=N)``: the N-th value from the right of X-Forwarded-For, copied
    as it is.  Weakness: the TCP peer is never checked, and the value is not validated."""
    values = [v.strip() for v in ",".join(header_lines(headers, "x-forwarded-for")).split(",")]
    values = [v for v in values if v] if any(values) else []
    if x_for < 1 or len(values) < x_for:
        why = f"fewer than {x_for} X-Forwarded-For values: REMOTE_ADDR unchanged"
        return Resolution(peer, None, "werkzeug", False, "PEER", why, ())
    value = values[-x_for]
    why = (f"values[-{x_for}] = {value!r} is taken verbatim (no peer check, no validation)")
    step = Step(len(values) - x_for, value, value, None, None, None, None, "rightmost", why)
    return Resolution(value, None, "werkzeug", True, "HEADER", why, (step,))


def uvicorn_proxy_headers(peer: str, headers: Headers, *,
                          forwarded_allow_ips: Sequence[str] | str = ("127.0.0.1", "::1")
                          ) -> Resolution:
    """uvicorn ``ProxyHeadersMiddleware``: if the peer is in *forwarded_allow_ips*, walk
    X-Forwarded-For right to left skipping trusted hosts; ``"*"`` returns the leftmost.
    Weaknesses: ``*`` is spoofable, junk entries are returned as the client."""
    allow = [forwarded_allow_ips] if isinstance(forwarded_allow_ips, str) else \
        list(forwarded_allow_ips)
    allow = [a.strip() for item in allow for a in item.split(",")]
    everyone = "*" in allow
    nets = Trust([a for a in allow if a != "*" and _is_net(a)]) if not everyone else None

    def trusted(host: str) -> bool:
        if everyone:
            return True
        assert nets is not None
        try:
            return nets(ip_address(host))
        except ValueError:
            return host in allow  # uvicorn keeps unparsable entries as literal strings
    if not trusted(peer):
        return Resolution(peer, None, "uvicorn", False, "PEER", "peer not in forwarded_allow_ips",
                          ())
    lines = header_lines(headers, "x-forwarded-for")
    if not lines:
        return Resolution(peer, None, "uvicorn", False, "PEER", "no X-Forwarded-For", ())
    hosts = [h.strip() for h in ",".join(lines).split(",")]
    if everyone:
        why = "forwarded_allow_ips='*': the leftmost entry is the client"
        return Resolution(hosts[0], None, "uvicorn", True, "HEADER", why, ())
    for h in reversed(hosts):
        if not trusted(h):
            return Resolution(h, None, "uvicorn", True, "HEADER",
                              f"{h!r} is the first untrusted entry (returned as it is)", ())
    return Resolution(hosts[0], None, "uvicorn", True, "HEADER", "all trusted: leftmost", ())


def _is_net(text: str) -> bool:
    try:
        Trust([text])
    except ConfigurationError:
        return False
    return True


def ipware_leftmost(peer: str, headers: Headers) -> Resolution:
    """python-ipware's default (``leftmost``): the first public address of X-Forwarded-For.
    Weakness: the client writes that entry itself, and the peer is never checked."""
    for line in header_lines(headers, "x-forwarded-for"):
        for raw in line.split(","):
            node = parse_node(raw.strip())
            if node is not None and node.ip is not None and node.ip.is_global:
                why = f"{format_ip(node.ip)} is the leftmost public entry (client-supplied!)"
                return Resolution(format_ip(node.ip), None, "ipware", True, "HEADER", why, ())
    return Resolution(peer, None, "ipware", False, "PEER", "no public entry: the peer", ())


def express_trust_proxy(peer: str, headers: Headers, *, hops: int) -> Resolution:
    """Express ``app.set('trust proxy', N)``: the peer plus N-1 entries are trusted by position,
    so the N-th address from the right is the client.  Weakness: a hop count goes stale when
    the chain changes, and entries are not validated."""
    values = [v.strip() for v in ",".join(header_lines(headers, "x-forwarded-for")).split(",")
              if v.strip()]
    chain = [*values, peer]
    k = max(len(chain) - 1 - hops, 0)
    why = f"trust proxy {hops}: position {len(chain) - 1 - k} from the right is the client"
    return Resolution(chain[k], None, "express", k < len(values), "HEADER", why, ())


