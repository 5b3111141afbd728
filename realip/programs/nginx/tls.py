"""nginx's TLS: ``listen … ssl`` (it terminates TLS and the rest of the server reads the
plaintext), ``ssl_verify_client`` (client certificates), ``ssl_preread`` (stream: it reads the
ClientHello and passes the connection on unread), ``proxy_ssl`` (stream: it opens TLS to its
upstream), and the ``$ssl_*`` variables (sans-IO).

Sources: ``src/event/ngx_event_openssl.c`` (ngx_ssl_handshake, ngx_ssl_connection_error — the
"wrong version number" / "http request" errors are logged at info level), ``src/stream/
ngx_stream_ssl_module.c`` (ngx_stream_ssl_handler: after the handshake, the client
certificate checks), ``src/http/ngx_http_request.c`` (ngx_http_ssl_handshake: the first byte
decides TLS or "plain HTTP request to HTTPS port"; ngx_http_process_request: the certificate
checks and their 400 pages), ``src/stream/ngx_stream_ssl_preread_module.c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...tls import HandshakeResult, TlsSession, handshake, looks_like_tls, read_client_hello

__all__ = ["Terminated", "preread_variables", "terminate", "verify_error_optional"]

#: X509 errors ``ssl_verify_client optional_no_ca`` lets through (ngx_ssl_verify_error_optional)
_OPTIONAL_NO_CA = frozenset({2, 18, 19, 20, 21, 27})


def verify_error_optional(code: int) -> bool:
    """Whether ``optional_no_ca`` accepts a certificate that failed with X509 error *code*."""
    return code in _OPTIONAL_NO_CA


@dataclass(frozen=True)
class Terminated:
    """The outcome of nginx terminating TLS on a connection: ``ok`` with the ``result`` and
    the ``$ssl_*`` variables, or closed with ``log`` (and, for http, the 400 page's ``page``)."""

    ok: bool
    result: HandshakeResult | None
    variables: dict[str, str]
    decisions: tuple[str, ...]
    log: str = ""
    page: str = ""


def _openssl_error(data: bytes) -> str:
    # OpenSSL 3's record layer (ssl3_get_record): an HTTP method first is "http request",
    # anything else that is not a TLS record "wrong version number"
    if data[:4] in (b"GET ", b"POST", b"PUT ", b"HEAD") or data[:5] == b"PATCH":
        return "error:0A00009C:SSL routines::http request"
    return "error:0A00010B:SSL routines::wrong version number"


def default_protocols(version: str) -> tuple[str, ...]:
    """``ssl_protocols``'s default: ``TLSv1 TLSv1.1 TLSv1.2`` up to 1.23.3, ``TLSv1.2 TLSv1.3``
    from 1.23.4 (recorded with 1.22.1: a TLS-1.3-only client gets "unsupported protocol", one
    that also offers 1.2 gets TLSv1.2)."""
    from .grammar import parse_version

    if parse_version(version) >= (1, 23, 4):
        return ("TLSv1.2", "TLSv1.3")
    return ("TLSv1", "TLSv1.1", "TLSv1.2")


def protocols_of(node: Any) -> tuple[str, ...]:
    """A hop's ``ssl_protocols``, or its version's default."""
    return tuple(node.ssl_protocols) if node.ssl_protocols else default_protocols(node.version)


def terminate(session: TlsSession | None, clear: bytes, *, verify_client: str,
              trusted_ca: str, key: str, http: bool,
              protocols: tuple[str, ...] = ("TLSv1.2", "TLSv1.3")) -> Terminated:
    """nginx's handshake on a ``listen … ssl`` connection whose bytes after any PROXY header
    are *clear* then *session*, with ``ssl_protocols`` *protocols*."""
    decisions: list[str] = []
    if session is None or clear:
        first = clear or b""
        if http and first[:1] not in (b"\x16", b"\x80") and first:
            # ngx_http_ssl_handshake peeks one byte: not a handshake → plain HTTP on this port
            decisions.append("listen … ssl: the first byte is not a TLS handshake: nginx "
                             "reads the request as plain HTTP and refuses it")
            return Terminated(False, None, {}, tuple(decisions),
                              "client sent plain HTTP request to HTTPS port while reading "
                              "client request headers",
                              "400 The plain HTTP request was sent to HTTPS port")
        if looks_like_tls(first):
            err = "error:0A00010B:SSL routines::wrong version number"
        else:
            err = _openssl_error(first)
        decisions.append(f"listen … ssl: {first[:16]!r} is not a TLS ClientHello: the handshake "
                         "fails")
        return Terminated(False, None, {}, tuple(decisions),
                          f"SSL_do_handshake() failed (SSL: {err}) while SSL handshaking")
    if session.truncated:
        # recorded on 1.22.1: silence is closed when ssl_handshake_timeout (stream; http:
        # client_header_timeout, 60 s by default) expires, with nothing logged at info level
        if session.then == "close":
            decisions.append("listen … ssl: the client closes before its ClientHello is "
                             "complete")
            return Terminated(False, None, {}, tuple(decisions),
                              "peer closed connection in SSL handshake while SSL handshaking")
        decisions.append("listen … ssl: the ClientHello never completes: nginx waits, then "
                         "closes the connection (ssl_handshake_timeout)")
        return Terminated(False, None, {}, tuple(decisions),
                          "(no log line: closed when ssl_handshake_timeout expires)")
    asks = verify_client != "off"
    result = handshake(session, key=key, asks_cert=asks, trusted_cas=(trusted_ca,),
                       protocols=protocols)
    if result is None:
        decisions.append(f"listen … ssl: ssl_protocols {' '.join(protocols)} and the client "
                         f"(up to {session.version}) share no version: the handshake fails")
        return Terminated(False, None, {}, tuple(decisions),
                          "SSL_do_handshake() failed (SSL: error:0A000102:SSL routines::"
                          "unsupported protocol) while SSL handshaking")
    variables = {"ssl_protocol": result.protocol, "ssl_cipher": result.cipher,
                 "ssl_server_name": session.server_name or "",
                 "ssl_client_s_dn": result.cert.subject_dn if result.cert else "",
                 "ssl_client_verify": result.verify_text}
    decisions.append(f"listen … ssl: terminates TLS ({result.protocol}, {result.cipher}"
                     + (f", SNI {session.server_name}" if session.server_name else ", no SNI")
                     + "): the rest of this server reads the plaintext")
    where = " while reading client request headers" if http else " while SSL handshaking"
    if asks:
        if result.cert is None:
            decisions.append(f"ssl_verify_client {verify_client}: the client sent no "
                             "certificate" + ("" if verify_client != "on" else
                                              ": refused"))
            if verify_client == "on":
                return Terminated(False, result, variables, tuple(decisions),
                                  f"client sent no required SSL certificate{where}",
                                  "400 No required SSL certificate was sent")
        elif result.verify:
            from ...tls import X509_ERRORS

            text = X509_ERRORS.get(result.verify, str(result.verify))
            if verify_client == "optional_no_ca" and verify_error_optional(result.verify):
                decisions.append(f"ssl_verify_client optional_no_ca: certificate "
                                 f"{result.cert.subject_dn} not verified ({text}), accepted")
            else:
                decisions.append(f"ssl_verify_client {verify_client}: certificate "
                                 f"{result.cert.subject_dn} fails verification ({text}): "
                                 "refused")
                return Terminated(False, result, variables, tuple(decisions),
                                  f"client SSL certificate verify error: ({result.verify}:"
                                  f"{text}){where}", "400 The SSL certificate error")
        else:
            decisions.append(f"ssl_verify_client {verify_client}: certificate "
                             f"{result.cert.subject_dn} verified against {trusted_ca}")
    return Terminated(True, result, variables, tuple(decisions))


def preread_variables(session: TlsSession | None, clear: bytes) -> tuple[dict[str, str], str]:
    """``ssl_preread on``: the ``$ssl_preread_*`` variables and a sentence saying what was
    read (empty variables when the bytes are not a ClientHello: preread passes them on)."""
    first = clear + (session.written if session is not None else b"")
    info = read_client_hello(first)
    if info is None:  # an incomplete ClientHello: preread waits for the rest
        return ({}, "ssl_preread: the ClientHello is not complete: nginx waits for the rest "
                "(preread_timeout), and reaches no upstream")
    if not info:
        return ({"ssl_preread_server_name": "", "ssl_preread_protocol": "",
                 "ssl_preread_alpn_protocols": ""},
                "ssl_preread: the first bytes are not a ClientHello: variables stay empty")
    assert info is not True
    return ({"ssl_preread_server_name": info.server_name,
             "ssl_preread_protocol": info.version,
             "ssl_preread_alpn_protocols": ",".join(info.alpn)},
            f"ssl_preread: reads the ClientHello in clear: $ssl_preread_server_name = "
            f"{info.server_name!r}; the TLS connection passes on unread")
