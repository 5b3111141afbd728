"""The EMQX broker listener: ``access_rules`` on the raw TCP peer, ``proxy_protocol`` (esockd on
tcp/ssl, ranch on ws/wss), and on WebSocket the ``proxy_address_header`` rules; the peername as
``emqx ctl clients show`` prints it."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from ..._addr import format_ip
from ...errors import InvalidProxyHeader
from ...proxy_protocol import Endpoint, decode
from ...wire import parse_http
from ..base import Broker, HopView, Inbound, Outbound, TrustDecision, access_allowed, covers
from . import erlang
from .esockd import RECEIVER as ESOCKD
from .esockd import backend_for
from .ranch import RECEIVER as RANCH
from .tls import bad_bytes, checks_cert_bytes, peer_identity, terminate
from .ws import emqx_ws_peer

__all__ = ["access_allowed", "admits", "peername", "step", "trust"]

IP = IPv4Address | IPv6Address


def peername(ip: IP | str, port: int | None) -> str:
    """``addr:port`` as EMQX prints it (``inet:ntoa``)."""
    text = ip if isinstance(ip, str) else erlang.ntoa(ip)
    return f"{text}:{port}"


def _v6_note(name: str) -> str:
    # the trace writes endpoints as [v6]:port; EMQX's own text has no brackets — say so once
    # where both appear, so a learner does not read two different clients
    return " (EMQX prints an IPv6 peer as inet:ntoa gives it, without brackets)" \
        if name.count(":") > 1 else ""


def admits(node: Broker, peer: Endpoint) -> bool:
    """``access_rules`` on the raw TCP peer, before a byte is read (a UNIX peer is admitted)."""
    if not node.access_rules or isinstance(peer.host, str):
        return True
    return access_allowed(node.access_rules, peer.host)


def step(node: Broker, conn: Inbound) -> Outbound:
    """One connection arriving at an EMQX listener (tcp or ws)."""
    decisions: list[str] = []
    variables: dict[str, str] = {}
    data = conn.data
    kind = f"{node.kind}-{node.listener}"

    def closed(log: str) -> Outbound:
        return Outbound.refusal(node.name, kind, conn, variables, decisions, log)

    if node.access_rules:
        allowed = access_allowed(node.access_rules, conn.peer.host)  # type: ignore[arg-type]
        decisions.append(f"access_rules on the raw TCP peer {format_ip(conn.peer.host)}: "  # type: ignore[arg-type]
                         f"{'allow' if allowed else 'deny'}")
        if not allowed:
            return closed("connection refused by access_rules")
    src: Endpoint = conn.peer
    pp_source: Endpoint | None = None
    pp_header = None
    if node.proxy_protocol:
        if node.listener in ("ws", "wss"):
            acc = RANCH.accepts(data)
        else:
            # the tcp listener's esockd backend: EMQX's tcp_backend default for this version
            acc = ESOCKD.accepts(data, backend_for(node.version))
        if not acc.accepted:
            decisions.append(f"proxy_protocol = true: {acc.reason}")
            if acc.waiting:
                crash = acc.variable("esockd_crash")
                end = (f"connection process crashed with {crash}" if crash is not None
                       else acc.variable("esockd_error") or "proxy_proto_timeout")
                return closed(f"{end} after {node.proxy_protocol_timeout:g}s "
                              "(no complete header)")
            return closed(acc.log_line or acc.reason)
        pp_header = data[: acc.consumed or 0]
        data = data[acc.consumed or 0 :]
        if acc.source is not None:
            pp_source = src = acc.source
            decisions.append(f"proxy_protocol = true: peername from the PROXY header: {src}")
        else:
            decisions.append("proxy_protocol = true: header without addresses: the TCP peer")
    elif data[:5] == b"PROXY" or data[:12] == b"\r\n\r\n\x00\r\nQUIT\n":
        guess = "proxy_protocol_v1" if data[:5] == b"PROXY" else "proxy_protocol_v2"
        decisions.append("proxy_protocol = false: the PROXY header is parsed as MQTT/HTTP and "
                         f"fails (resemble_protocol => {guess})")
        return closed(f"frame_error: malformed packet, resemble_protocol => {guess}")
    result = None
    if node.listener in ("ssl", "wss"):
        hs = terminate(conn.tls, data, verify=node.verify,
                       fail_if_no_peer_cert=node.fail_if_no_peer_cert,
                       cacertfile=node.cacertfile)
        decisions.append(hs.decision)
        if not hs.ok:
            return closed(hs.log)
        assert conn.tls is not None
        data, result = conn.tls.plaintext, hs.result
    header_obj = None
    if pp_header:
        try:
            header_obj = decode(pp_header, verify_crc32c=False)
        except InvalidProxyHeader as exc:
            # esockd took a header the specification's decoder refuses: its TLVs are not
            # read as the spec lays them out, so no certificate comes from them
            decisions.append(f"(the header esockd accepted is not one realip's strict decoder "
                             f"reads: {exc.reason.value}; its TLVs give no certificate)")
    ident = peer_identity(node.listener, header=header_obj, read_header=node.proxy_protocol,
                          handshake_result=result, version=node.version)
    who: dict[str, str | None] = {}
    for setting, value in (("peer_cert_as_username", node.peer_cert_as_username),
                           ("peer_cert_as_clientid", node.peer_cert_as_clientid)):
        if value == "disabled":
            continue
        got = ident.cn if value == "cn" else ident.dn
        decisions.append(f"{setting} = {value}: {ident.why}")
        if checks_cert_bytes(node.version) and bad_bytes(got):
            decisions.append(f"the certificate's {value.upper()} {got!r} has control "
                             f"characters: EMQX {node.version} refuses it")
            return closed("peer_certificate_field_rejected: {shutdown, peercert_field_invalid}"
                          f" (source => {ident.source})")
        who[setting] = got
    username = who.get("peer_cert_as_username")
    clientid = who.get("peer_cert_as_clientid")
    if result is not None:
        variables.update(ssl_protocol=result.protocol, ssl_cipher=result.cipher)
        if result.cert is not None:
            variables["cert_common_name"] = result.cert.cn
    if username is not None:
        variables["username"] = username
        decisions.append(f"username = {username!r} (the certificate's value wins over the "
                         "CONNECT packet's)")
    if clientid is not None:
        variables["clientid"] = clientid
        decisions.append(f"clientid = {clientid!r} (the certificate's value wins over the "
                         "CONNECT packet's)")
    tls_state = "terminated" if result is not None else None
    if node.listener in ("tcp", "ssl"):
        if data[:1] != b"\x10":
            decisions.append(f"first bytes {data[:8]!r} are not an MQTT CONNECT")
            return closed("frame_error: malformed packet")
        name = peername(src.host, src.port)
        decisions.append(f"MQTT CONNECT from {clientid or conn.client_id}: peername={name}"
                         f"{_v6_note(name)}")
        return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables,
                                tuple(decisions), peername=name, username=username,
                                clientid=clientid, tls=tls_state))
    parsed = parse_http(data)
    if parsed is None:
        decisions.append("not an HTTP upgrade request: 400")
        return closed("400 Bad Request")
    request, headers, _ = parsed
    refused = _cowboy_not_upgrade(request, headers)
    if refused is not None:
        decisions.append(refused)
        return closed(refused.split(": ", 1)[1])
    defaults = ("", "") if node.version.startswith("6.3") else ("x-forwarded-for",
                                                                 "x-forwarded-port")
    addr_header = node.proxy_address_header if node.proxy_address_header is not None \
        else defaults[0]
    port_header = node.proxy_port_header if node.proxy_port_header is not None else defaults[1]
    pp_obj = header_obj if pp_source else None  # decoded once, above
    peer_ip = conn.peer.host
    res = emqx_ws_peer(format_ip(peer_ip), conn.peer.port or 0,  # type: ignore[arg-type]
                       headers, proxy_address_header=addr_header.lower(),
                       proxy_port_header=port_header.lower(),
                       proxy_address_allow=node.proxy_address_allow, proxy_protocol=pp_obj)
    shown = addr_header or '""'
    decisions.append(f"websocket.proxy_address_header={shown}: {res.reason}")
    name = f"{res.addr}:{res.port}"
    decisions.append(f"WebSocket CONNECT from {clientid or conn.client_id}: peername={name}"
                     f"{_v6_note(name)}")
    variables.update(proxy_address_header=addr_header, proxy_port_header=port_header)
    return Outbound(HopView(node.name, kind, conn.peer, conn.local, variables, tuple(decisions),
                            resolution=res, peername=name, username=username,
                            clientid=clientid, tls=tls_state))


def _tokens(headers: list[tuple[str, str]], name: str) -> set[str]:
    return {t.strip().lower() for k, v in headers if k.lower() == name for t in v.split(",")}


def _cowboy_not_upgrade(request: str, headers: list[tuple[str, str]]) -> str | None:
    """cowboy_websocket:upgrade/5 (the listener EMQX's ws runs on): a request that is not a
    WebSocket upgrade — not ``GET … HTTP/1.1`` with ``upgrade`` among the Connection tokens and
    ``websocket`` among the Upgrade ones (is_upgrade_request/1) — is answered ``426 Upgrade
    Required`` on HTTP/1.1 and ``400 Bad Request`` on any other version (nginx's default
    ``proxy_http_version 1.0``), and the MQTT connection never starts."""
    method, _, rest = request.partition(" ")
    version = rest.rpartition(" ")[2]
    if method == "GET" and version == "HTTP/1.1" and "upgrade" in _tokens(headers, "connection") \
            and "websocket" in _tokens(headers, "upgrade"):
        return None
    missing = [h for h, tok in (("Connection: upgrade", "connection"), ("Upgrade: websocket",
                                                                        "upgrade"))
               if (tok == "connection" and "upgrade" not in _tokens(headers, "connection"))
               or (tok == "upgrade" and "websocket" not in _tokens(headers, "upgrade"))]
    why = f"{version} request" + (f" without {' and '.join(missing)}" if missing else "")
    if version == "HTTP/1.1":
        return f"not a WebSocket upgrade ({why}): 426 Upgrade Required"
    return f"not a WebSocket upgrade ({why}; cowboy sends 426 only on HTTP/1.1): 400 Bad Request"


def trust(node: Broker, sender_addr: str) -> TrustDecision:
    """Whether the listener takes the client address from what *sender_addr* sends."""
    if node.listener in ("tcp", "ssl"):
        if not node.proxy_protocol:
            return TrustDecision(None, "proxy_protocol = false")
        if node.access_rules:
            return TrustDecision(True, "proxy_protocol = true; access_rules "
                                       + ", ".join(node.access_rules))
        return TrustDecision(True, "proxy_protocol = true: any sender's header")
    header = node.proxy_address_header
    if node.proxy_address_allow is not None:
        ok = covers(tuple(node.proxy_address_allow), sender_addr)
        return TrustDecision(ok, f"{header}, proxy_address_allow "
                                 f"{', '.join(node.proxy_address_allow)}")
    if header:
        return TrustDecision(True, f"{header}: leftmost, from any sender")
    return TrustDecision(None, "no proxy_address_header")
