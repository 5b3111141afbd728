"""EMQX's TLS listeners (``ssl`` 8883, ``wss`` 8084) and the client identity it takes from a
certificate: the real one from its own handshake, or the PROXY v2 SSL TLV (sans-IO).

The rules, with files, functions and versions, are in ``docs/emqx-peer-cert-behind-a-proxy.md``
(read from esockd 5.9.3 … 5.17.0 and emqx v5.0.0 … 6.3.0-beta.2):

* ``peercert`` (esockd_transport:peercert/1, emqx_ws_connection:get_peer_info/4): a tcp
  listener with ``proxy_protocol`` gives the header's SSL TLV as a property list — ``[]`` for a
  header without one (every v1 line) —, never checked against anything; an ssl listener with
  ``proxy_protocol`` did the same up to esockd 5.16.1 (EMQX ≤ 6.2.0, every e5.x) and gives the
  real certificate from esockd 5.16.2 (EMQX 6.2.1) on; ws/wss with ``proxy_protocol``:
  ``[{pp2_ssl_cn, CN}]`` from a header with an SSL TLV, ``nossl`` from one without (even on wss),
  the real certificate (wss) without a header.
* ``peer_cert_as_username`` / ``peer_cert_as_clientid`` = ``cn`` | ``dn``
  (emqx_channel:set_peercert_infos/3): from a TLV both are the TLV's CN; the certificate's
  values win over the CONNECT packet's.
* From e5.10.4 and 6.2.1 a CN or DN with control characters closes the connection
  (``peercert_field_invalid``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...proxy_protocol import ProxyHeader
from ...tls import HandshakeResult, TlsSession, handshake
from ...wire import printable

__all__ = ["Identity", "emqx_version", "peer_identity", "terminate"]


def emqx_version(text: str) -> tuple[tuple[int, ...], bool]:
    """``"e5.10.4"`` → ((5, 10, 4), True) (enterprise), ``"6.2.1"`` → ((6, 2, 1), False)."""
    m = re.match(r"\s*([ev]?)(\d+(?:\.\d+)*)", text)
    if m is None:
        return (0,), False
    return tuple(int(x) for x in m.group(2).split(".")), m.group(1) == "e"


def real_cert_behind_proxy(version: str) -> bool:
    """Whether an ssl listener with ``proxy_protocol`` reads the real TLS certificate (esockd
    5.16.2, commit 2a69d615: EMQX 6.2.1 and later) rather than the PROXY header's TLV."""
    ver, enterprise = emqx_version(version)
    return not enterprise and ver >= (6, 2, 1)


def checks_cert_bytes(version: str) -> bool:
    """Whether EMQX refuses a CN/DN with control characters (e5.10.4, 6.2.1 and later)."""
    ver, enterprise = emqx_version(version)
    return ver >= (5, 10, 4) if enterprise else ver >= (6, 2, 1)


@dataclass(frozen=True)
class Identity:
    """Where EMQX's ``peercert`` came from (``source``: ``tls`` the listener's own handshake,
    ``proxy_protocol_v2`` the SSL TLV, ``none``) and the CN and DN it gives (None: undefined)."""

    source: str
    cn: str | None
    dn: str | None
    why: str


def peer_identity(listener: str, *, header: ProxyHeader | None, read_header: bool,
                  handshake_result: HandshakeResult | None, version: str) -> Identity:
    """EMQX's ``peercert`` for a connection on *listener* (``tcp``/``ssl``/``ws``/``wss``):
    *header* is the PROXY header it read (``read_header``: ``proxy_protocol`` is on),
    *handshake_result* its own TLS handshake (ssl/wss)."""
    real = handshake_result.cert if handshake_result is not None and \
        handshake_result.verify == 0 else None
    ssl = header.ssl if header is not None else None

    def from_tlv(why: str) -> Identity:
        if ssl is None:
            return Identity("proxy_protocol_v2", None, None, why + ": the header has no SSL "
                            "TLV, so the certificate is [] (CN and DN undefined)")
        cn = ssl.cn
        return Identity("proxy_protocol_v2", cn, cn, why + f": the header's SSL TLV "
                        f"(client flags {int(ssl.client):#04x}, verify {ssl.verify}, CN "
                        f"{cn!r}) — nothing checks verify or the flags")

    def from_tls(why: str) -> Identity:
        if real is None:
            return Identity("tls", None, None, why + ": no verified client certificate")
        return Identity("tls", real.cn, real.subject_dn, why + f": the certificate "
                        f"{real.subject_dn} from its own TLS handshake")

    if listener == "tcp":
        if read_header and header is not None and header.source is not None:
            return from_tlv("tcp listener with proxy_protocol: esockd's peercert is the PROXY "
                            "header's")
        return Identity("none", None, None, "tcp listener: no certificate (nossl)")
    if listener == "ssl":
        if read_header and header is not None and header.source is not None:
            if real_cert_behind_proxy(version):
                return from_tls(f"ssl listener with proxy_protocol, EMQX {version} (esockd ≥ "
                                "5.16.2): peercert from the inner TLS socket")
            return from_tlv(f"ssl listener with proxy_protocol, EMQX {version} (esockd ≤ "
                            "5.16.1): peercert from the PROXY header, the real certificate "
                            "ignored")
        return from_tls("ssl listener")
    # ws / wss (cowboy + ranch)
    if read_header and header is not None:
        if ssl is not None:
            cn = ssl.cn
            return Identity("proxy_protocol_v2", cn, cn, "ws listener with proxy_protocol: "
                            f"[{{pp2_ssl_cn, {cn!r}}}] from the header's SSL TLV (ranch's "
                            "verified flag is not read)")
        return Identity("none", None, None, "ws listener with proxy_protocol: a header without "
                        "SSL TLV gives nossl, even on wss")
    if listener == "wss":
        return from_tls("wss listener: cowboy_req:cert/1")
    return Identity("none", None, None, "ws listener: no certificate")


@dataclass(frozen=True)
class Handshake:
    """EMQX's (OTP ssl's) handshake on an ssl/wss listener: ``ok`` with the result, or the
    reason the connection closed."""

    ok: bool
    result: HandshakeResult | None
    decision: str
    log: str = ""


def terminate(session: TlsSession | None, clear: bytes, *, verify: str,
              fail_if_no_peer_cert: bool, cacertfile: str) -> Handshake:
    """OTP ssl's server handshake with ``ssl_options`` ``verify`` / ``fail_if_no_peer_cert``
    / ``cacertfile`` (a CA label) on bytes *clear* then *session*."""
    if session is None or clear:
        first = clear
        return Handshake(False, None, f"ssl: {printable(first[:16])!r} is not a TLS "
                         "ClientHello: the handshake fails", "ssl handshake failed: the first "
                         "bytes are not a TLS record (OTP ssl sends a fatal alert and closes)")
    if session.truncated:
        # esockd's ssl upgrade (ssl:handshake/2 with the listener's handshake_timeout)
        if session.then == "close":
            return Handshake(False, None, "ssl: the client closes inside the handshake",
                             "closed inside the TLS handshake (a normal exit: nothing logged)")
        return Handshake(False, None, "ssl: the ClientHello never completes: the handshake "
                         "times out", "ssl_upgrade_timeout: EMQX exits {shutdown, "
                         "ssl_upgrade_timeout}")
    asks = verify == "verify_peer"
    result = handshake(session, key="EC256", asks_cert=asks, trusted_cas=(cacertfile,))
    assert result is not None  # OTP's ssl enables TLS 1.2 and 1.3, what every client offers
    if asks and result.cert is not None and result.verify:
        return Handshake(False, result, f"ssl verify_peer: the client certificate "
                         f"{result.cert.subject_dn} is not signed by {cacertfile}: handshake "
                         "fails", "ssl handshake failed: {tls_alert, {unknown_ca, …}}")
    if asks and result.cert is None and fail_if_no_peer_cert:
        return Handshake(False, result, "ssl verify_peer, fail_if_no_peer_cert = true: the "
                         "client sent no certificate: handshake fails",
                         "ssl handshake failed: {tls_alert, {certificate_required, …}}")
    said = (f"ssl: terminates TLS ({result.protocol}"
            + (f", SNI {session.server_name}" if session.server_name else "") + ")")
    if asks:
        said += (f"; client certificate {result.cert.subject_dn} verified against {cacertfile}"
                 if result.cert is not None else "; no client certificate")
    return Handshake(True, result, said)


def bad_bytes(text: str | None) -> bool:
    """Control characters EMQX's validate_peercert_string/3 refuses (0x00–0x1F, 0x7F–0x9F)."""
    return text is not None and any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text)


