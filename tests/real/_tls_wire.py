"""The client and upstream sides of the TLS recordings (issue 12), on loopback sockets.

* :func:`make_pki` — a test CA, a server certificate and client certificates (``CN=device-42``
  from the CA, and one from a second, unknown CA), generated at run time with ``cryptography``;
  nothing here is ever committed.
* :func:`tls_client` — a TLS client driven through :class:`ssl.MemoryBIO`, so every byte it writes
  is known exactly (the ClientHello a pass-through proxy must forward unchanged), optionally after
  a prefix (a PROXY header) or with its first flight split across two TCP writes.
* :func:`raw_client` — bytes in, what came back and how the server ended the connection.
* :class:`Upstream` — a capture server standing in for the broker: it reads an optional PROXY
  header, then either plain bytes or a TLS handshake of its own (MemoryBIO again), answers an MQTT
  CONNECT with a CONNACK (or a WebSocket upgrade with 101) and closes; every connection's raw
  bytes, header and plaintext are recorded.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from realip.errors import RealIPError
from realip.proxy_protocol import ProxyHeader, decode

#: an MQTT 3.1.1 CONNECT, client id ``device-42``, clean session, keep-alive 60 s
CONNECT = bytes.fromhex("101500044d5154540402003c0009") + b"device-42"
CONNACK = bytes.fromhex("20020000")
SNI = "mqtt.example.test"
OTHER_SNI = "other.example.test"
CLIENT_CN = "device-42"

# ----------------------------------------------------------------------------------------------
# PKI


@dataclass(frozen=True)
class PKI:
    """Paths of the run-time certificates (PEM files in a private directory)."""

    ca: Path
    server_cert: Path
    server_key: Path
    server_combined: Path  # cert + key, for HAProxy's ``crt``
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # CN=device-42 as well, but issued by a CA nobody trusts
    rogue_key: Path


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org is not None:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, sans: list[str] | None = None,
          client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                          False), critical=True)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]),
                            critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_pki(directory: Path) -> PKI:
    """A CA (``O=realip test, CN=realip test CA``), a server certificate for the test names and
    two client certificates with subject ``CN=device-42`` (one from the CA, one from a rogue CA)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("realip test CA", "realip test")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    rogue_ca_key = ec.generate_private_key(ec.SECP256R1())
    rogue_ca_name = _name("rogue CA", "rogue")
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert(_name(SNI), srv_key, ca_name, ca_key, ca=False,
                sans=[SNI, OTHER_SNI, "upstream.example.test"])
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert(_name(CLIENT_CN), cli_key, ca_name, ca_key, ca=False, client=True)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _cert(_name(CLIENT_CN), rogue_key, rogue_ca_name, rogue_ca_key, ca=False, client=True)

    def pem(c: x509.Certificate) -> bytes:
        return c.public_bytes(serialization.Encoding.PEM)

    files = {
        "ca.pem": pem(ca), "server.pem": pem(srv), "server.key": _pem_key(srv_key),
        "server-combined.pem": pem(srv) + _pem_key(srv_key), "client.pem": pem(cli),
        "client.key": _pem_key(cli_key), "rogue.pem": pem(rogue), "rogue.key": _pem_key(rogue_key),
    }
    for n, data in files.items():
        (directory / n).write_bytes(data)
    d = directory
    return PKI(d / "ca.pem", d / "server.pem", d / "server.key", d / "server-combined.pem",
               d / "client.pem", d / "client.key", d / "rogue.pem", d / "rogue.key")


# ----------------------------------------------------------------------------------------------
# clients


@dataclass
class ClientResult:
    """What a client did and saw.

    ``sent`` is every byte it wrote, in order; ``first_flight`` its ClientHello (TLS clients);
    ``handshake`` ``"ok"`` or the OpenSSL reason of the failure; ``received`` the plaintext it
    read after the handshake (TLS) or the raw bytes (raw clients); ``raw_back`` every byte that
    came back on the socket; ``close`` how the connection ended: ``FIN``, ``RST``,
    ``close_notify`` (a TLS close_notify arrived; the client then closes at once), ``open`` (the
    server still held it when the client gave up) or ``client closed``.
    """

    sent: bytes = b""
    first_flight: bytes = b""
    handshake: str | None = None
    version: str | None = None
    cipher: str | None = None
    received: bytes = b""
    raw_back: bytes = b""
    close: str = "open"
    elapsed: float = 0.0
    local: tuple[str, int] = ("", 0)


def _connect(host: str, port: int, source: str, timeout: float) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def client_context(pki: PKI, *, sni: str | None, cert: str | None = None,
                   alpn: list[str] | None = None, tls12: bool = False) -> ssl.SSLContext:
    """A client context trusting the test CA; *cert* ``"client"`` or ``"rogue"`` presents one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca)
    if sni is None:
        ctx.check_hostname = False  # the default certificate comes back; its names don't matter
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert == "client":
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    elif cert == "rogue":
        ctx.load_cert_chain(pki.rogue_cert, pki.rogue_key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def client_hello(ctx: ssl.SSLContext, sni: str | None) -> bytes:
    """The first flight (the ClientHello record) *ctx* would send, without any network."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def _read_end(s: socket.socket, sink: bytearray, on_data: Callable[[bytes], bool] | None = None
              ) -> str:
    """Read until the server ends the connection (FIN/RST) or the socket times out (open).
    *on_data* may return True to stop early (e.g. the TLS layer saw close_notify)."""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            return "RST"
        except TimeoutError:
            return "open"
        if not d:
            return "FIN"
        sink += d
        if on_data is not None and on_data(d):
            return "close_notify"


def tls_client(host: str, port: int, ctx: ssl.SSLContext, *, sni: str | None,
               source: str, prefix: bytes = b"", split: int | None = None, pause: float = 0.3,
               app: bytes = CONNECT, timeout: float = 3.0) -> ClientResult:
    """Connect from *source*, write *prefix* and the ClientHello in one write (or the ClientHello
    in two writes split at byte *split* with *pause* between), finish the handshake, send *app*,
    read what comes back until the server closes."""
    res = ClientResult()
    start = time.monotonic()
    s = _connect(host, port, source, timeout)
    res.local = (str(s.getsockname()[0]), int(s.getsockname()[1]))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    sent = bytearray()
    raw_back = bytearray()

    def flush() -> None:
        data = out.read()
        if not data:
            return
        if not res.first_flight:
            res.first_flight = data
            if split is not None:
                s.sendall(prefix + data[:split])
                time.sleep(pause)
                s.sendall(data[split:])
            else:
                s.sendall(prefix + data)
            sent.extend(prefix + data)
            return
        with contextlib.suppress(OSError):
            s.sendall(data)
            sent.extend(data)

    try:
        while True:
            try:
                obj.do_handshake()
                flush()
                res.handshake = "ok"
                break
            except ssl.SSLWantReadError:
                flush()
                try:
                    d = s.recv(65536)
                except ConnectionResetError:
                    res.handshake, res.close = "connection reset during the handshake", "RST"
                    break
                except TimeoutError:
                    res.handshake, res.close = "no answer during the handshake", "open"
                    break
                if not d:
                    res.handshake, res.close = "EOF during the handshake", "FIN"
                    inc.write_eof()
                    break
                raw_back += d
                inc.write(d)
            except ssl.SSLError as e:
                with contextlib.suppress(OSError):
                    flush()
                res.handshake = e.reason or str(e)
                res.close = _read_end(s, raw_back)
                break
        if res.handshake == "ok":
            res.version, res.cipher = obj.version(), (obj.cipher() or ("",))[0]
            got = bytearray()

            def feed(d: bytes) -> bool:
                inc.write(d)
                while True:
                    try:
                        chunk = obj.read(65536)
                    except ssl.SSLWantReadError:
                        return False
                    except ssl.SSLZeroReturnError:
                        return True
                    except ssl.SSLError as e:
                        got.extend(f"<alert: {e.reason}>".encode())
                        return False
                    if not chunk:  # close_notify read (SSLObject returns b"" for it)
                        return True
                    got.extend(chunk)

            try:
                obj.write(app)
                flush()
            except ssl.SSLError as e:
                res.handshake = f"ok, then {e.reason}"
            # a TLS 1.3 server's verdict on a client certificate arrives only now
            res.close = _read_end(s, raw_back, feed)
            # on close_notify the client closes at once without answering, as paho does (its
            # socket's recv() returns b""); the server's FIN/RST after it would be a race
            res.received = bytes(got)
    finally:
        s.close()
    res.sent, res.raw_back = bytes(sent), bytes(raw_back)
    res.elapsed = time.monotonic() - start
    return res


def raw_client(host: str, port: int, writes: tuple[bytes, ...], *, source: str,
               pause: float = 0.3, close_after: bool = False, timeout: float = 3.0
               ) -> ClientResult:
    """Write each chunk (pausing between), optionally close right after, and read the end."""
    res = ClientResult()
    start = time.monotonic()
    s = _connect(host, port, source, timeout)
    res.local = (str(s.getsockname()[0]), int(s.getsockname()[1]))
    back = bytearray()
    try:
        for i, w in enumerate(writes):
            if i:
                time.sleep(pause)
            s.sendall(w)
            res.sent += w
        if close_after:
            res.close = "client closed"
            # give the server a moment to log what it makes of the half message
            time.sleep(0.05)
        else:
            res.close = _read_end(s, back)
    finally:
        s.close()
    res.raw_back = res.received = bytes(back)
    res.elapsed = time.monotonic() - start
    return res


# ----------------------------------------------------------------------------------------------
# upstream capture


@dataclass
class Capture:
    """One connection an :class:`Upstream` accepted."""

    peer: tuple[str, int]
    raw: bytes = b""
    header: ProxyHeader | None = None
    header_error: str | None = None
    plaintext: bytes = b""
    tls: str | None = None  # None (plain), "ok", or the reason the handshake failed
    sni: str | None = None


def _reply(body: bytes) -> bytes | None:
    if CONNECT in body:
        return CONNACK
    if body.startswith(b"GET ") and b"\r\n\r\n" in body:
        return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                b"\r\n")
    return None


@dataclass
class Upstream:
    """A capture server on *host*; ``tls`` makes it terminate TLS after the optional header."""

    host: str
    tls_ctx: ssl.SSLContext | None = None
    idle: float = 1.5
    captures: list[Capture] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, 0))
        self.sock.listen(32)
        self.port = int(self.sock.getsockname()[1])
        self.sock.settimeout(0.2)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn, peer), daemon=True).start()

    def _handle(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        cap = Capture((str(peer[0]), int(peer[1])))
        conn.settimeout(self.idle)
        raw = bytearray()
        body_at: int | None = None
        obj: ssl.SSLObject | None = None
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        plain = bytearray()
        replied = False
        try:
            while True:
                try:
                    d = conn.recv(65536)
                except OSError:
                    break
                if not d:
                    break
                raw += d
                if body_at is None:
                    body_at = self._header(cap, bytes(raw))
                    if body_at is None:
                        continue
                    d = bytes(raw[body_at:])
                if self.tls_ctx is None:
                    plain += d
                    answer = None if replied else _reply(bytes(plain))
                    if answer is not None:
                        conn.sendall(answer)
                        replied = True
                        conn.shutdown(socket.SHUT_WR)
                    continue
                if cap.tls not in (None, "ok"):
                    continue  # the handshake failed: just record the rest
                if obj is None:
                    obj = self.tls_ctx.wrap_bio(inc, out, server_side=True)
                inc.write(d)
                if cap.tls is None:
                    try:
                        obj.do_handshake()
                        cap.tls = "ok"
                        cap.sni = getattr(obj, "_realip_sni", None)
                    except ssl.SSLWantReadError:
                        pass
                    except ssl.SSLError as e:
                        cap.tls = e.reason or str(e)
                    conn.sendall(out.read())
                    if cap.tls != "ok":
                        continue
                while True:
                    try:
                        chunk = obj.read(65536)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        break
                    except ssl.SSLError:
                        break
                    if not chunk:
                        break
                    plain += chunk
                answer = None if replied else _reply(bytes(plain))
                if answer is not None:
                    obj.write(answer)
                    with contextlib.suppress(ssl.SSLError):
                        obj.unwrap()
                    conn.sendall(out.read())
                    replied = True
                    conn.shutdown(socket.SHUT_WR)
        finally:
            conn.close()
            cap.raw, cap.plaintext = bytes(raw), bytes(plain)
            with self._cond:
                self.captures.append(cap)
                self._cond.notify_all()

    @staticmethod
    def _header(cap: Capture, raw: bytes) -> int | None:
        """Where the bytes after the PROXY header start, or None to read more."""
        if not (raw.startswith(b"PROXY"[:len(raw)]) or raw.startswith(b"\r\n\r\n\x00"[:len(raw)])):
            return 0
        try:
            h = decode(raw)
        except RealIPError as e:
            cap.header_error = str(e)
            return 0
        if h is None:
            return None
        cap.header = h
        return h.size

    def wait(self, count: int, timeout: float = 4.0) -> list[Capture]:
        """Block until *count* connections ended; return them (fewer when *timeout* passes)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.captures) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.captures)

    def clear(self) -> None:
        with self._cond:
            self.captures.clear()

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.close()
        self._thread.join(timeout=2)


def server_context(pki: PKI) -> ssl.SSLContext:
    """The upstream's TLS context; it remembers the SNI it was offered (for the vectors)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)

    def note(obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> None:
        obj._realip_sni = name  # type: ignore[union-attr]
    ctx.sni_callback = note  # type: ignore[assignment]
    return ctx
