"""The TLS layer as the simulator carries it (sans-IO): the ClientHello in clear, then records
only the key holder can read.

A TLS connection crosses a link as a :class:`TlsSession`: the client's ClientHello (real bytes,
built deterministically by :func:`client_hello`: a pass-through load balancer reads its SNI
exactly as nginx's ``ssl_preread`` or HAProxy's ``req_ssl_sni`` do), the client certificate it
will present (:class:`Certificate`, by label: the simulator signs nothing), and the plaintext
the client writes once the handshake is done — the MQTT CONNECT or the WebSocket upgrade —
which only the end that holds the server's key can read.  On a link it is shown as TLS records
with their real framing (content type, version, length; :func:`records`), never as invented
ciphertext bytes.

:func:`read_client_hello` is the other direction: what ``ssl_preread`` learns from the first
bytes of a connection (server name, ALPN protocols, the highest version offered), or that they
are not a TLS handshake at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "Certificate",
    "ClientHelloInfo",
    "ContentType",
    "ExtensionType",
    "HandshakeResult",
    "TlsRecord",
    "TlsSession",
    "client_hello",
    "handshake",
    "looks_like_tls",
    "read_client_hello",
    "records",
]


class ContentType(IntEnum):
    """TLS record content types (RFC 8446 §5.1)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class ExtensionType(IntEnum):
    """The ClientHello extensions :func:`client_hello` writes (IANA TLS ExtensionType)."""

    SERVER_NAME = 0
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    ALPN = 16
    ENCRYPT_THEN_MAC = 22
    EXTENDED_MASTER_SECRET = 23
    SUPPORTED_VERSIONS = 43
    PSK_KEY_EXCHANGE_MODES = 45
    KEY_SHARE = 51


#: TLS versions by their wire value, as OpenSSL names them (``$ssl_protocol``, HAProxy's
#: ``ssl_fc_protocol`` and the SSL_VERSION sub-TLV).
VERSION_NAMES = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
_VERSION_CODES = {v: k for k, v in VERSION_NAMES.items()}

#: AEAD expansion of a TLS 1.3 record: the inner content type byte and a 16-byte tag
#: (RFC 8446 §5.2, AES-GCM / ChaCha20-Poly1305); TLS 1.2 AES-GCM: 8-byte explicit nonce + tag
_TLS13_OVERHEAD = 1 + 16
_TLS12_GCM_OVERHEAD = 8 + 16


@dataclass(frozen=True)
class Certificate:
    """A client certificate by label: its subject CN and the CA (a label such as
    ``clients-ca``) that signed it.  A receiver verifies it when it trusts that CA.  ``chain``:
    the client sends its CA's (self-signed) certificate too — a failure is then at depth 1
    (X509 error 19) rather than at the leaf (21), which decides which of HAProxy's
    ``ca-ignore-err`` / ``crt-ignore-err`` lets it through."""

    cn: str
    ca: str = "clients-ca"
    chain: bool = False

    @property
    def subject_dn(self) -> str:
        """The subject as nginx's ``$ssl_client_s_dn`` prints it (RFC 2253: ``CN=device-42``)."""
        return f"CN={_rfc2253(self.cn)}"


def _rfc2253(value: str) -> str:
    # RFC 2253 §2.4 escapes; what OpenSSL's XN_FLAG_RFC2253 prints for a plain CN
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class TlsSession:
    """One TLS connection as it crosses links unchanged until the end that holds the key.

    ``server_name`` is the SNI the client sends (None: none), ``alpn`` its ALPN protocols,
    ``version`` the highest version it offers (``TLSv1.3`` / ``TLSv1.2``), ``cert`` the client
    certificate it presents when asked, ``plaintext`` what it writes after the handshake and
    ``kind`` what that is (``mqtt`` or ``http``)."""

    plaintext: bytes
    kind: str = "mqtt"
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    version: str = "TLSv1.3"
    cert: Certificate | None = None
    #: the client's handshake seed: two sessions of the same client look the same
    seed: str = field(default="client", repr=False)
    #: a truncated handshake: only the first ``sent`` bytes of the ClientHello are written,
    #: then the client goes silent (``then="silence"``) or closes (``"close"``)
    sent: int | None = None
    then: str = "silence"

    @property
    def hello(self) -> bytes:
        """The ClientHello record the client writes first (in clear)."""
        return client_hello(self.server_name, self.alpn, version=self.version, seed=self.seed)

    @property
    def truncated(self) -> bool:
        """Whether the client stops before its ClientHello is complete."""
        return self.sent is not None and self.sent < len(self.hello)

    @property
    def written(self) -> bytes:
        """What the client actually writes of its handshake's first flight: the ClientHello,
        or its first ``sent`` bytes."""
        hello = self.hello
        return hello if self.sent is None else hello[: self.sent]


@dataclass(frozen=True)
class TlsRecord:
    """One TLS record as it appears on the wire: its 5-byte header (content type, legacy
    version, length) and what it carries (``clear`` bytes when readable on the link, else a
    description of the protected content)."""

    content_type: ContentType
    length: int
    carries: str
    clear: bytes | None = None
    legacy_version: int = 0x0303

    @property
    def header(self) -> bytes:
        """The record header exactly as on the wire."""
        return bytes([self.content_type]) + self.legacy_version.to_bytes(2, "big") \
            + self.length.to_bytes(2, "big")

    def __str__(self) -> str:
        name = self.content_type.name.lower()
        return f"TLS record {name}, {self.length} bytes: {self.carries}"


def records(session: TlsSession, holder: str | None = None,
            version: str | None = None) -> tuple[TlsRecord, ...]:
    """What the client writes on a link carrying *session*, as records: the ClientHello in
    clear, then (after the server's flight, which travels the other way) the protected
    records — for TLS 1.3 a ChangeCipherSpec for middlebox compatibility, the Finished and the
    client certificate when one is asked for, then the application data (the plaintext's
    length plus the AEAD overhead).  *holder* names who can read them; *version* is the one
    the handshake settled on (default: the highest the client offers)."""
    who = f"readable only by {holder}" if holder else "encrypted"
    hello = session.hello
    if session.truncated:
        part = session.written
        end = "goes silent" if session.then == "silence" else "closes"
        return (TlsRecord(ContentType.HANDSHAKE, len(hello) - 5,
                          f"ClientHello (in clear), only {len(part)} of its {len(hello)} bytes "
                          f"— then the client {end}", part[5:] if len(part) > 5 else None,
                          0x0301),)
    out = [TlsRecord(ContentType.HANDSHAKE, len(hello) - 5,
                     f"ClientHello (in clear){_sni_text(session)}", hello[5:], 0x0301)]
    n = len(session.plaintext)
    what = {"mqtt": "MQTT", "http": "HTTP"}.get(session.kind, session.kind)
    if (version or session.version) == "TLSv1.3":
        out.append(TlsRecord(ContentType.CHANGE_CIPHER_SPEC, 1, "ChangeCipherSpec (in clear, "
                             "middlebox compatibility)", b"\x01"))
        fin = "client Finished" + (" and Certificate" if session.cert else "")
        # Finished carries an HMAC of the suite's hash: 48 bytes for TLS_AES_256_GCM_SHA384
        # (what OpenSSL picks here; recorded: a 69-byte record), then the 4-byte header
        out.append(TlsRecord(ContentType.APPLICATION_DATA, 48 + 4 + _TLS13_OVERHEAD,
                             f"{fin} ({who})"))
        out.append(TlsRecord(ContentType.APPLICATION_DATA, n + _TLS13_OVERHEAD,
                             f"{what}, {n} bytes of plaintext ({who})"))
    else:
        out.append(TlsRecord(ContentType.HANDSHAKE, 0, "ClientKeyExchange"
                             + (" and Certificate" if session.cert else "") + " (in clear)"))
        out.append(TlsRecord(ContentType.CHANGE_CIPHER_SPEC, 1, "ChangeCipherSpec (in clear)",
                             b"\x01"))
        out.append(TlsRecord(ContentType.HANDSHAKE, 16 + _TLS12_GCM_OVERHEAD,
                             f"client Finished ({who})"))
        out.append(TlsRecord(ContentType.APPLICATION_DATA, n + _TLS12_GCM_OVERHEAD,
                             f"{what}, {n} bytes of plaintext ({who})"))
    return tuple(out)


def _sni_text(session: TlsSession) -> str:
    return f", SNI {session.server_name}" if session.server_name else ", no SNI"


# ==============================================================================================
# Building and reading a ClientHello


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _vec16(data: bytes) -> bytes:
    return _u16(len(data)) + data


def _ext(kind: ExtensionType, body: bytes) -> bytes:
    return _u16(kind) + _vec16(body)


def client_hello(server_name: str | None = None, alpn: Sequence[str] = (), *,
                 version: str = "TLSv1.3", seed: str = "client") -> bytes:
    """A ClientHello record as a TLS 1.3 (or 1.2-only) client writes it: deterministic (the
    random, session id and key share come from *seed*), with SNI and ALPN when given, and the
    extensions every OpenSSL client sends.  The bytes parse as a real handshake does."""
    if version not in ("TLSv1.3", "TLSv1.2"):
        raise ValueError(f"version {version!r}: TLSv1.3 or TLSv1.2")
    digest = hashlib.sha256(f"realip-tls:{seed}".encode()).digest()
    random = digest
    session_id = hashlib.sha256(digest).digest() if version == "TLSv1.3" else b""
    share = hashlib.sha256(digest + b"x25519").digest()
    suites = [0x1302, 0x1303, 0x1301] if version == "TLSv1.3" else []
    suites += [0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC02B, 0xC02F, 0x00FF]
    exts = b""
    if server_name:
        name = server_name.encode("idna") if not server_name.isascii() else \
            server_name.encode("ascii")
        entry = b"\x00" + _vec16(name)
        exts += _ext(ExtensionType.SERVER_NAME, _vec16(entry))
    exts += _ext(ExtensionType.EC_POINT_FORMATS, b"\x03\x00\x01\x02")
    exts += _ext(ExtensionType.SUPPORTED_GROUPS, _vec16(b"\x00\x1d\x00\x17\x00\x1e\x00\x18"))
    if alpn:
        protos = b"".join(bytes([len(p)]) + p.encode("ascii") for p in alpn)
        exts += _ext(ExtensionType.ALPN, _vec16(protos))
    exts += _ext(ExtensionType.ENCRYPT_THEN_MAC, b"")
    exts += _ext(ExtensionType.EXTENDED_MASTER_SECRET, b"")
    sigs = [0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501,
            0x0601]
    exts += _ext(ExtensionType.SIGNATURE_ALGORITHMS, _vec16(b"".join(_u16(s) for s in sigs)))
    if version == "TLSv1.3":
        exts += _ext(ExtensionType.SUPPORTED_VERSIONS, b"\x04\x03\x04\x03\x03")
        exts += _ext(ExtensionType.PSK_KEY_EXCHANGE_MODES, b"\x01\x01")
        exts += _ext(ExtensionType.KEY_SHARE, _vec16(b"\x00\x1d" + _vec16(share)))
    body = (b"\x03\x03" + random + bytes([len(session_id)]) + session_id
            + _vec16(b"".join(_u16(s) for s in suites)) + b"\x01\x00" + _vec16(exts))
    handshake_msg = b"\x01" + len(body).to_bytes(3, "big") + body
    return bytes([ContentType.HANDSHAKE]) + b"\x03\x01" + _vec16(handshake_msg)


def looks_like_tls(data: bytes) -> bool:
    """Whether *data* starts as a TLS handshake record does (content type 22, major version 3)
    — the first test both ``ssl_preread`` and HAProxy's ``req_ssl_hello_type`` make."""
    return len(data) >= 3 and data[0] == ContentType.HANDSHAKE and data[1] == 3


@dataclass(frozen=True)
class ClientHelloInfo:
    """What a pass-through load balancer reads from a ClientHello: ``server_name`` (SNI; ""
    when none), ``alpn`` (offered protocols), ``version`` (the highest offered, OpenSSL's
    name) and ``size`` (bytes of the records it spans)."""

    server_name: str
    alpn: tuple[str, ...]
    version: str
    size: int


class _Short(Exception):
    pass


def read_client_hello(data: bytes) -> ClientHelloInfo | bool | None:
    """Read the ClientHello at the start of *data*: its :class:`ClientHelloInfo`, ``False``
    when the bytes are not a TLS handshake (the preread gives up and passes them on), ``None``
    when more bytes are needed (the handshake record is not complete yet)."""
    if len(data) < 3:
        return None if all(a == b for a, b in zip(data, b"\x16\x03", strict=False)) else False
    if not looks_like_tls(data):
        return False
    # the handshake message may span several records: join their fragments
    msg = bytearray()
    pos = 0
    need: int | None = None
    while need is None or len(msg) < need:
        if len(data) < pos + 5:
            return None
        if data[pos] != ContentType.HANDSHAKE or data[pos + 1] != 3:
            return False
        length = int.from_bytes(data[pos + 3:pos + 5], "big")
        if len(data) < pos + 5 + length:
            return None
        msg += data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if need is None and len(msg) >= 4:
            if msg[0] != 1:  # not a ClientHello
                return False
            need = 4 + int.from_bytes(msg[1:4], "big")
    try:
        return _parse_hello(bytes(msg[4:need]), pos)
    except _Short:
        return False


def _take(buf: bytes, pos: int, n: int) -> tuple[bytes, int]:
    if pos + n > len(buf):
        raise _Short
    return buf[pos:pos + n], pos + n


def _parse_hello(body: bytes, size: int) -> ClientHelloInfo:
    legacy, pos = _take(body, 0, 2)
    _, pos = _take(body, pos, 32)
    sid_len, pos = _take(body, pos, 1)
    _, pos = _take(body, pos, sid_len[0])
    n, pos = _take(body, pos, 2)
    _, pos = _take(body, pos, int.from_bytes(n, "big"))
    n, pos = _take(body, pos, 1)
    _, pos = _take(body, pos, n[0])
    server_name = ""
    alpn: list[str] = []
    best = int.from_bytes(legacy, "big")
    if pos < len(body):
        n, pos = _take(body, pos, 2)
        exts, _ = _take(body, pos, int.from_bytes(n, "big"))
        p = 0
        while p < len(exts):
            kind, p = _take(exts, p, 2)
            n, p = _take(exts, p, 2)
            ext, p = _take(exts, p, int.from_bytes(n, "big"))
            code = int.from_bytes(kind, "big")
            if code == ExtensionType.SERVER_NAME and len(ext) >= 5 and ext[2] == 0:
                ln = int.from_bytes(ext[3:5], "big")
                server_name = ext[5:5 + ln].decode("latin-1")
            elif code == ExtensionType.ALPN and len(ext) >= 2:
                q = 2
                while q < len(ext):
                    ln = ext[q]
                    alpn.append(ext[q + 1:q + 1 + ln].decode("latin-1"))
                    q += 1 + ln
            elif code == ExtensionType.SUPPORTED_VERSIONS and ext:
                offered = [int.from_bytes(ext[i:i + 2], "big") for i in range(1, len(ext), 2)]
                known = [v for v in offered if v in VERSION_NAMES]
                if known:
                    best = max(known)
    return ClientHelloInfo(server_name, tuple(alpn), VERSION_NAMES.get(best, hex(best)), size)


# ==============================================================================================
# The handshake's outcome at the end that terminates it


@dataclass(frozen=True)
class HandshakeResult:
    """What the terminating end knows after the handshake: the protocol and cipher OpenSSL
    negotiated, the SNI, the client certificate (None: none sent), and ``verify``: 0 when a
    certificate was sent and verified, OpenSSL's error code otherwise (21 = "unable to verify
    the first certificate" for a leaf alone from a CA the server does not hold, 19 = "self-signed
    certificate in certificate chain" when the client sends that CA too — as OpenSSL 3.0 reports
    them, recorded from HAProxy 2.6 in ``tests/vectors/haproxy_2.6_tls.json``), None when no
    certificate was asked for or sent."""

    protocol: str
    cipher: str
    server_name: str | None
    cert: Certificate | None
    verify: int | None

    @property
    def verify_text(self) -> str:
        """``$ssl_client_verify`` as nginx prints it: ``SUCCESS``, ``FAILED:reason``, ``NONE``."""
        if self.cert is None or self.verify is None:
            return "NONE"
        if self.verify == 0:
            return "SUCCESS"
        return f"FAILED:{X509_ERRORS.get(self.verify, str(self.verify))}"


#: OpenSSL's X509_verify_cert_error_string for the codes a lab handshake can meet.
X509_ERRORS = {
    0: "ok",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
}


def handshake(session: TlsSession, *, key: str = "EC256", asks_cert: bool,
              trusted_cas: Sequence[str] = (), protocols: Sequence[str] | None = None
              ) -> HandshakeResult | None:
    """The outcome when a server whose certificate has key *key* (``EC256`` / ``RSA2048``)
    terminates *session*: OpenSSL's default choice of cipher for the version (the client's
    preference order, as servers do by default), and — when the server asks for a client
    certificate (*asks_cert*) — whether it verifies against *trusted_cas*.  *protocols* are
    the versions the server enables (None: both); the highest one the client also offers is
    used, and None is returned when there is none (OpenSSL: "unsupported protocol")."""
    offered = ("TLSv1.3", "TLSv1.2") if session.version == "TLSv1.3" else ("TLSv1.2",)
    enabled = tuple(protocols) if protocols is not None else ("TLSv1.2", "TLSv1.3")
    version = next((v for v in offered if v in enabled), None)
    if version is None:
        return None
    if version == "TLSv1.3":
        cipher = "TLS_AES_256_GCM_SHA384"
    elif key.startswith("RSA"):
        cipher = "ECDHE-RSA-AES256-GCM-SHA384"
    else:
        cipher = "ECDHE-ECDSA-AES256-GCM-SHA384"
    cert = session.cert if asks_cert else None
    verify = None if cert is None else (0 if cert.ca in trusted_cas else
                                        19 if cert.chain else 21)
    return HandshakeResult(version, cipher, session.server_name, cert, verify)


def version_code(name: str) -> int:
    """The wire value of an OpenSSL version name (``TLSv1.3`` → 0x0304)."""
    return _VERSION_CODES[name]
