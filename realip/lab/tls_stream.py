"""Server-side TLS on a connection that is already open: the lab broker's "PROXY header in
clear first, then TLS on the same connection" (an L4 pass-through load balancer's case).

``asyncio``'s ``start_tls`` cannot be given the bytes the broker has already read past the
PROXY header (the start of the ClientHello often arrives in the same segment), so the
handshake here runs on an :class:`ssl.SSLObject` over memory BIOs: those bytes go in first,
then whatever the connection reads.  After the handshake, :class:`TlsStream` offers an
ordinary ``asyncio.StreamReader`` / ``StreamWriter`` pair carrying the plaintext, so the
broker's MQTT and WebSocket code runs on it unchanged (with the raw connection's flow control:
the writer drains with the TCP transport, the reader pauses it).

A failed handshake is a :class:`TlsRefused` whose ``reason`` is what EMQX (esockd's
``ssl_upgrade/3`` over Erlang's ``ssl``) would report: ``ssl_upgrade_timeout`` (EMQX exits
``{shutdown, ssl_upgrade_timeout}``), ``closed`` (a normal exit: nothing logged) or the TLS
alert (``{ssl_error, {tls_alert, {unknown_ca, ...}}}`` — OpenSSL names the same alerts).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import RealIPError
from ..tls import Certificate, ClientHelloInfo, HandshakeResult, read_client_hello
from .pki import common_name

__all__ = ["TlsRefused", "TlsStream", "alert_of", "server_handshake"]


class TlsRefused(RealIPError):
    """The server side of a TLS handshake failed: ``reason`` is the alert name (``unknown_ca``,
    ``certificate_required``, ``unexpected_message`` …), ``ssl_upgrade_timeout`` or
    ``closed``; the message is the log line; ``received`` how many bytes of the handshake
    arrived."""

    def __init__(self, reason: str, message: str, received: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.received = received


# OpenSSL's reason codes for bytes that are not TLS at all: Erlang's ssl answers them with an
# unexpected_message alert ({unsupported_record_type, Type} / a bad record version)
_NOT_TLS = {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL",
            "RECORD_LAYER_FAILURE", "UNEXPECTED_RECORD", "PACKET_LENGTH_TOO_LONG",
            "UNEXPECTED_MESSAGE", "RECORD_TOO_LARGE", "LENGTH_MISMATCH", "BAD_PACKET_LENGTH"}
_OWN = {"PEER_DID_NOT_RETURN_A_CERTIFICATE": "certificate_required",
        "NO_SHARED_CIPHER": "handshake_failure",
        "UNSUPPORTED_PROTOCOL": "protocol_version",
        "VERSION_TOO_LOW": "protocol_version",
        "NO_APPLICATION_PROTOCOL": "no_application_protocol",
        "CERTIFICATE_VERIFY_FAILED": "unknown_ca"}
# X509 verify codes that are not "unknown CA"
_VERIFY_ALERTS = {10: "certificate_expired", 9: "bad_certificate", 23: "certificate_revoked",
                  26: "unsupported_certificate"}


def alert_of(exc: ssl.SSLError, version: str | None = None) -> tuple[str, str]:
    """The TLS alert a handshake error stands for, and who raised it (``SERVER`` when this
    end refused, ``CLIENT`` when the peer sent the alert), as Erlang's ssl reports them."""
    reason = str(getattr(exc, "reason", "") or "")
    for prefix in ("TLSV13_ALERT_", "TLSV1_ALERT_", "SSLV3_ALERT_"):
        if reason.startswith(prefix):
            return reason[len(prefix):].lower(), "CLIENT"
    if reason == "CERTIFICATE_VERIFY_FAILED":
        code = getattr(exc, "verify_code", None)
        return _VERIFY_ALERTS.get(code, "unknown_ca") if isinstance(code, int) \
            else "unknown_ca", "SERVER"
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE" and version == "TLSv1.2":
        return "handshake_failure", "SERVER"  # TLS 1.2 has no certificate_required alert
    if reason in _OWN:
        return _OWN[reason], "SERVER"
    if reason in _NOT_TLS:
        return "unexpected_message", "SERVER"
    return "handshake_failure", "SERVER"


@dataclass(frozen=True)
class _Handshake:
    result: HandshakeResult
    hello: ClientHelloInfo | None
    alpn: str | None


class _TlsTransport(asyncio.Transport):
    """The plaintext side of a TLS connection: writes are encrypted onto the raw transport,
    everything else (buffer sizes, pausing, closing) is the raw transport's."""

    def __init__(self, raw: asyncio.WriteTransport, sslobj: ssl.SSLObject,
                 outgoing: ssl.MemoryBIO) -> None:
        super().__init__()
        self._raw = raw
        self._ssl = sslobj
        self._out = outgoing
        self._closed = False

    def flush(self) -> None:
        data = self._out.read()
        if data and not self._raw.is_closing():
            self._raw.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._ssl
        if name == "cipher":
            return self._ssl.cipher()
        if name == "peercert":
            return self._ssl.getpeercert()
        return self._raw.get_extra_info(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed or self._raw.is_closing():
            return
        try:
            self._ssl.write(bytes(data))
        except ssl.SSLError:
            self._raw.abort()
            return
        self.flush()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return False  # TLS has no half-close: close_notify ends both directions

    def write_eof(self) -> None:
        raise NotImplementedError("TLS cannot half-close")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # close_notify; unwrap waits for the peer's, which we do not
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._ssl.unwrap()
            self.flush()
        self._raw.close()

    def abort(self) -> None:
        self._closed = True
        self._raw.abort()

    def is_closing(self) -> bool:
        return self._closed or self._raw.is_closing()

    def pause_reading(self) -> None:
        if isinstance(self._raw, asyncio.ReadTransport):
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if isinstance(self._raw, asyncio.ReadTransport) and not self._raw.is_closing():
            self._raw.resume_reading()

    def is_reading(self) -> bool:
        return isinstance(self._raw, asyncio.ReadTransport) and self._raw.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._raw.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._raw.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._raw.get_write_buffer_limits()


class TlsStream:
    """A finished server handshake: :attr:`result` (protocol, cipher, SNI, client certificate
    and whether it verified), :attr:`hello` (the ClientHello as ``ssl_preread`` reads it),
    and the plaintext :attr:`reader` / :attr:`writer`; :meth:`start` runs the task that
    decrypts, :meth:`stop` ends it."""

    def __init__(self, raw_reader: asyncio.StreamReader, raw_writer: asyncio.StreamWriter,
                 sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 shake: _Handshake, limit: int = 2**16) -> None:
        loop = asyncio.get_running_loop()
        self._raw_reader = raw_reader
        self._ssl = sslobj
        self._in = incoming
        self.transport = _TlsTransport(raw_writer.transport, sslobj, outgoing)
        self.reader = asyncio.StreamReader(limit=limit, loop=loop)
        self.reader.set_transport(self.transport)  # a full reader pauses the TCP transport
        # the raw connection's protocol does the write flow control (drain)
        protocol = raw_writer.transport.get_protocol()
        self.writer = asyncio.StreamWriter(self.transport, protocol, self.reader, loop)
        self.result = shake.result
        self.hello = shake.hello
        self.alpn = shake.alpn
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start decrypting into :attr:`reader` (what the handshake left in the BIO first)."""
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def stop(self) -> None:
        """End the decrypting task."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _decrypt(self) -> bool:
        """Move every plaintext byte available to the reader; False once the TLS stream ended
        (close_notify)."""
        while True:
            try:
                data = self._ssl.read(65536)
            except ssl.SSLWantReadError:
                self.transport.flush()  # e.g. a KeyUpdate answer
                return True
            except ssl.SSLZeroReturnError:
                self.reader.feed_eof()
                return False
            if not data:
                self.reader.feed_eof()
                return False
            self.reader.feed_data(data)

    async def _pump(self) -> None:
        try:
            while self._decrypt():
                chunk = await self._raw_reader.read(65536)
                if not chunk:
                    self.reader.feed_eof()
                    return
                self._in.write(chunk)
        except ssl.SSLError as exc:
            self.reader.set_exception(exc)
            self.transport.abort()
        except (ConnectionError, OSError) as exc:
            self.reader.set_exception(exc)


def _cert_facts(sslobj: ssl.SSLObject, ctx: ssl.SSLContext,
                label_of: Callable[[bytes], str | None]) -> tuple[Certificate | None, int | None]:
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None, None
    cn = common_name(der) or ""
    label = label_of(der) or "unknown-ca"
    # OpenSSL with SSL_VERIFY_PEER fails the handshake on a certificate that does not verify:
    # one that is here was verified (verify 0) — a context that verifies nothing has none
    verified = 0 if ctx.verify_mode != ssl.CERT_NONE else None
    return Certificate(cn, label), verified


async def server_handshake(ctx: ssl.SSLContext, raw_reader: asyncio.StreamReader,
                           raw_writer: asyncio.StreamWriter, first: bytes, timeout: float,
                           label_of: Callable[[bytes], str | None]) -> TlsStream:
    """Run the server side of a TLS handshake whose first bytes (*first*, already read) are
    followed by what *raw_reader* reads, within *timeout* seconds; the alert OpenSSL writes on
    failure is sent before :class:`TlsRefused` is raised.  *label_of* names the CA of a client
    certificate (:meth:`realip.lab.pki.LabPKI.label_of`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sslobj = ctx.wrap_bio(incoming, outgoing, server_side=True)
    seen = bytearray(first)
    incoming.write(first)

    def flush() -> None:
        data = outgoing.read()
        if data and not raw_writer.is_closing():
            raw_writer.write(data)

    while True:
        try:
            sslobj.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
        except ssl.SSLError as exc:
            flush()  # the alert, so the client learns why
            hello = read_client_hello(bytes(seen))
            offered = hello.version if isinstance(hello, ClientHelloInfo) else None
            alert, who = alert_of(exc, offered)
            detail = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) \
                or str(exc)
            sender = "the listener sent the alert" if who == "SERVER" else \
                "the client sent the alert"
            # bytes that are not TLS at all: say what they were
            quoted = f"; the first bytes were {bytes(seen[:16])!r}" \
                if alert == "unexpected_message" else ""
            raise TlsRefused(alert, f"ssl_error {{tls_alert,{{{alert},...}}}}: handshake "
                             f"failure, {sender} (OpenSSL: {detail}){quoted}",
                             len(seen)) from None
        left = deadline - loop.time()
        try:
            if left <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(raw_reader.read(65536), left)
        except (TimeoutError, asyncio.TimeoutError):
            raise TlsRefused("ssl_upgrade_timeout", f"ssl_upgrade_timeout: the TLS handshake "
                             f"did not complete within {timeout:g} s ({len(seen)} bytes of it "
                             "received; EMQX exits {shutdown, ssl_upgrade_timeout})",
                             len(seen)) from None
        if not chunk:
            raise TlsRefused("closed", f"closed inside the TLS handshake after {len(seen)} "
                             "bytes (EMQX: {error, closed}, a normal exit)", len(seen))
        if len(seen) < 1 << 16:  # the ClientHello, for its SNI and ALPN
            seen += chunk
        incoming.write(chunk)
    flush()
    info = read_client_hello(bytes(seen))
    hello = info if isinstance(info, ClientHelloInfo) else None
    cert, verify = _cert_facts(sslobj, ctx, label_of)
    cipher = sslobj.cipher()
    result = HandshakeResult(sslobj.version() or "", cipher[0] if cipher else "",
                             (hello.server_name or None) if hello is not None else None,
                             cert, verify)
    stream = TlsStream(raw_reader, raw_writer, sslobj, incoming, outgoing,
                       _Handshake(result, hello, sslobj.selected_alpn_protocol()))
    return stream
