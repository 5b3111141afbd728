"""HAProxy's TLS: ``bind … ssl crt … [ca-file …] [verify none|optional|required]
[crt-ignore-err all]`` terminates TLS; ``server … send-proxy-v2-ssl[-cn]`` /
``proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority`` describe it to the
next hop in the PROXY v2 SSL TLV; the ``ssl_fc_*`` / ``ssl_c_*`` sample fetches (sans-IO).

Sources: ``src/ssl_sock.c`` (ssl_sock_bind_verifycbk: a certificate error at depth 0 fails the
handshake with "SSL client certificate not trusted" unless ``crt-ignore-err``; the handshake
error "SSL handshake failure"), ``src/connection.c`` make_proxy_line_v2 (the SSL TLV: client
flags SSL, then CERT_SESS with the real verify result — and CERT_CONN when the certificate was
sent on this connection — only when a certificate was used; sub-TLVs VERSION, CN, KEY_ALG,
SIG_ALG, CIPHER in that order, KEY_ALG and SIG_ALG being those of HAProxy's *own*
certificate), ``src/server.c`` srv_parse_proxy_v2_options (every ``cert-*`` / ``ssl-cipher``
option implies ``ssl``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...proxy_protocol import TLV, SSLInfo
from ...tls import HandshakeResult, TlsSession, handshake

__all__ = ["SIG_ALGS", "Terminated", "ssl_tlv_for", "terminate"]

#: The signature algorithm of a certificate whose CA key is of this type (``cert-sig``), as
#: OBJ_nid2sn names it — the lab's CA signs with a key of the same type as the leaf's.
SIG_ALGS = {"RSA": "RSA-SHA256", "EC": "ecdsa-with-SHA256"}


@dataclass(frozen=True)
class Terminated:
    """HAProxy terminating TLS on a ``bind … ssl`` connection: ``ok`` with the ``result``
    and the sample fetches, or closed with the connection error ``log``."""

    ok: bool
    result: HandshakeResult | None
    variables: dict[str, str]
    decisions: tuple[str, ...]
    log: str = ""


def terminate(session: TlsSession | None, clear: bytes, *, verify: str, ca_file: str,
              key: str, crt_ignore_err: bool, ca_ignore_err: bool = False) -> Terminated:
    """``bind … ssl``'s handshake on bytes *clear* then *session*."""
    if session is None or clear:
        return Terminated(False, None, {}, (f"bind … ssl: {clear[:16]!r} is not a TLS "
                                            "ClientHello: the handshake fails",),
                          "SSL handshake failure")
    if session.truncated:
        # recorded on 2.6: silence ends when 'timeout client' expires (2.6 has no timeout
        # client-hs), a close inside the handshake is its own connection error
        if session.then == "close":
            return Terminated(False, None, {}, ("bind … ssl: the client closes before its "
                                                "ClientHello is complete",),
                              "Connection closed during SSL handshake")
        return Terminated(False, None, {}, ("bind … ssl: the ClientHello never completes: "
                                            "HAProxy waits for 'timeout client'",),
                          "Timeout during SSL handshake")
    asks = verify in ("optional", "required")
    result = handshake(session, key=key, asks_cert=asks, trusted_cas=(ca_file,))
    assert result is not None  # HAProxy 2.6 enables TLS 1.2 and 1.3 by default
    decisions = [f"bind … ssl: terminates TLS ({result.protocol}, {result.cipher}"
                 + (f", SNI {session.server_name}" if session.server_name else ", no SNI")
                 + ")"]
    if verify == "required" and result.cert is None:
        decisions.append("verify required: the client sent no certificate: handshake fails")
        return Terminated(False, result, {}, tuple(decisions), "SSL handshake failure")
    if result.cert is not None and result.verify:
        # ssl_sock_bind_verifycbk: an error at depth 0 (the leaf: 21) is the certificate's,
        # at depth > 0 (the client's own root in the chain: 19) the CA chain's
        at_leaf = result.verify != 19
        ignored, which = (crt_ignore_err, "crt-ignore-err") if at_leaf else \
            (ca_ignore_err, "ca-ignore-err")
        if not ignored:
            decisions.append(f"verify {verify}: the certificate {result.cert.subject_dn} is "
                             f"not signed by {ca_file} (error {result.verify}"
                             f"{'' if at_leaf else ', in the chain'}): handshake fails")
            return Terminated(False, result, {}, tuple(decisions),
                              "SSL client certificate not trusted" if at_leaf
                              else "SSL client CA chain cannot be verified")
        decisions.append(f"verify {verify}, {which} all: the certificate "
                         f"{result.cert.subject_dn} fails verification (error "
                         f"{result.verify}) and is let through")
    elif result.cert is not None:
        decisions.append(f"verify {verify}: certificate {result.cert.subject_dn} verified "
                         f"against {ca_file}")
    variables = {"ssl_fc": "1", "ssl_fc_protocol": result.protocol,
                 "ssl_fc_cipher": result.cipher, "ssl_fc_sni": session.server_name or "",
                 "ssl_c_used": "1" if result.cert is not None else "0",
                 "ssl_c_verify": str(result.verify or 0),
                 "ssl_c_s_dn": f"/CN={result.cert.cn}" if result.cert is not None else "",
                 "ssl_c_s_dn(cn)": result.cert.cn if result.cert is not None else ""}
    return Terminated(True, result, variables, tuple(decisions))


def ssl_tlv_for(options: set[str], result: HandshakeResult | None, key: str) -> TLV:
    """The SSL TLV ``make_proxy_line_v2`` writes for *options* when the frontend's handshake
    gave *result* (None: the client did not use TLS — client byte 0, verify 0, no sub-TLVs)."""
    if result is None:
        return SSLInfo.make(0, 0).tlv()
    client = 0x01
    verify = 0
    if result.cert is not None:
        client |= 0x04 | 0x02  # CERT_SESS, and CERT_CONN: sent on this (unresumed) connection
        verify = result.verify or 0
    return SSLInfo.make(client, verify, version=result.protocol,
                        cn=result.cert.cn if "cert-cn" in options and result.cert else None,
                        key_alg=key if "cert-key" in options else None,
                        sig_alg=SIG_ALGS["RSA" if key.startswith("RSA") else "EC"]
                        if "cert-sig" in options else None,
                        cipher=result.cipher if "ssl-cipher" in options else None,
                        style="haproxy").tlv()
