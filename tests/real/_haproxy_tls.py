"""Record what a real HAProxy writes when it terminates TLS: the PROXY v2 header with its SSL TLV.

Everything is made at run time: a client CA, a second ("other") CA that HAProxy does not trust,
server certificates with an RSA and an EC key (the SIG_ALG / KEY_ALG sub-TLVs describe them),
client certificates (:data:`CLIENT_CERTS`: CN ``device-42``; a CN in UTF-8; ``device-42`` signed
by the other CA, alone or sent with that CA's root; no CN; a CN with CR LF NUL), and a
``haproxy.cfg`` with one ``mode tcp`` frontend per (server options, verify mode — ``verify
none|optional|required`` with and without ``crt-ignore-err`` / ``ca-ignore-err`` — server key)
plus a ``mode http`` frontend for the wss case; :func:`all_cases` is the matrix.  HAProxy runs
in the foreground (``-db``) through :func:`tests.real._programs.start_haproxy` (kept by pid,
stopped by pid).  A Python client connects with the :mod:`ssl` module (TLS 1.2 or 1.3, with
or without a certificate, optionally resuming a session); a plain TCP server on each backend
address keeps exactly the bytes HAProxy wrote: the PROXY header (framed by its own length
field) and the client's plaintext behind it.

The header is decoded here by :func:`hand_decode`, a few lines written from the specification
that do not use realip, so that ``tests/test_haproxy_tls_vectors.py`` compares realip's codec with
an independent reading.

Run as a module to (re)write the vectors::

    PYTHONPATH=. python -m tests.real._haproxy_tls tests/vectors/haproxy_2.6_tls.json
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import trustme

from ._programs import Running, haproxy_binary, start_haproxy

#: The loopback addresses of this recorder (brief C: 127.0.52.0/24).
PROXY = "127.0.52.1"
BACKEND = "127.0.52.2"
CLIENT = "127.0.52.3"
SNI = "mqtt.example.test"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

#: An MQTT 3.1.1 CONNECT (client id ``dev42``): the plaintext the client sends inside TLS.
MQTT_CONNECT = b"\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05dev42"

#: What a client that wants to be ``admin`` writes inside its TLS session: a PROXY v2 header
#: (203.0.113.66:40000 -> 198.51.100.1:8883) whose SSL TLV says client 0x07, verify 0, CN admin.
def _tlv(t: int, value: bytes) -> bytes:
    return bytes((t,)) + len(value).to_bytes(2, "big") + value


def _forged_proxy() -> bytes:
    ssl_tlv = _tlv(0x20, b"\x07\x00\x00\x00\x00" + _tlv(0x21, b"TLSv1.3") + _tlv(0x22, b"admin"))
    body = (bytes((203, 0, 113, 66, 198, 51, 100, 1)) + (40000).to_bytes(2, "big")
            + (8883).to_bytes(2, "big") + ssl_tlv)
    return V2_SIGNATURE + b"\x21\x11" + len(body).to_bytes(2, "big") + body


FORGED_PROXY = _forged_proxy()

#: ``server`` options under test: name -> what follows ``server s <addr>``.
SERVER_OPTIONS: dict[str, str] = {
    "v2": "send-proxy-v2",
    "v2-ssl": "send-proxy-v2-ssl",
    "v2-ssl-cn": "send-proxy-v2-ssl-cn",
    "opt-ssl": "send-proxy-v2 proxy-v2-options ssl",
    "opt-ssl-cn": "send-proxy-v2 proxy-v2-options ssl,cert-cn",
    "opt-ssl-cipher": "send-proxy-v2 proxy-v2-options ssl,ssl-cipher",
    "opt-ssl-sig": "send-proxy-v2 proxy-v2-options ssl,cert-sig",
    "opt-ssl-key": "send-proxy-v2 proxy-v2-options ssl,cert-key",
    "opt-ssl-all": "send-proxy-v2 proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key",
    "opt-authority": "send-proxy-v2 proxy-v2-options authority",
    "opt-crc32c": "send-proxy-v2 proxy-v2-options crc32c",
    "opt-unique-id": "send-proxy-v2 proxy-v2-options unique-id",
    "opt-everything": "send-proxy-v2 proxy-v2-options "
                      "ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority,crc32c,unique-id",
    "http": "",
}

#: ``bind`` verify settings: name -> the words after ``ca-file <ca>``.
VERIFY: dict[str, str] = {
    "none": "verify none",
    "optional": "verify optional",
    "required": "verify required",
    "optional-ignore": "verify optional crt-ignore-err all ca-ignore-err all",
    "optional-crt-ignore": "verify optional crt-ignore-err all",
    "optional-ca-ignore": "verify optional ca-ignore-err all",
    "required-ignore": "verify required crt-ignore-err all ca-ignore-err all",
}

#: The HAProxy documentation's example format; it carries ports, a timestamp and the pid.
UNIQUE_ID_FORMAT = "%{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid"
#: The http frontend's request rules (the wss case).
HTTP_RULES = ("option forwardfor",
              "http-request set-header X-SSL-Client-CN %{+Q}[ssl_c_s_dn(cn)]",
              "http-request set-header X-SSL-Client-Verify %[ssl_c_verify]")

#: Client certificates: name -> (common name, issuer); "none" sends none.
CLIENT_CERTS: dict[str, tuple[str, str]] = {
    "good": ("device-42", "clients CA"),
    "utf8": ("capteur-Zoë-設備-42", "clients CA"),
    "badca": ("device-42", "other CA"),
    # the same kind of certificate, sent with the untrusted root behind it: the error is then
    # at depth 1 (the root), which ca-ignore-err governs
    "badchain": ("device-42", "other CA, root sent"),
    # a subject without CN, and a CN with CR LF and NUL (what EMQX >= e5.10.4 / 6.2.1 rejects)
    "nocn": ("", "clients CA"),
    "ctrl": ("dev\r\nX-Injected: 1\x00z", "clients CA"),
}


@dataclass(frozen=True)
class Frontend:
    """One frontend + backend pair of the generated configuration."""

    server: str  #: key of SERVER_OPTIONS
    verify: str  #: key of VERIFY
    key: str = "rsa"  #: the server certificate's key: "rsa" (signed by an RSA CA) or "ec"
    alpn: str | None = None  #: ``bind ... alpn <list>``

    @property
    def name(self) -> str:
        alpn = f"-alpn-{self.alpn}" if self.alpn else ""
        return f"{self.server}_{self.verify}_{self.key}{alpn}"

    @property
    def mode(self) -> str:
        return "http" if self.server == "http" else "tcp"

    def extra(self) -> list[str]:
        """Frontend lines besides bind/mode/default_backend."""
        # tcplog / httplog: without a log format HAProxy 2.6 logs no line for a refused handshake
        if self.mode == "http":
            return ["option httplog", *HTTP_RULES]
        if self.server in ("opt-unique-id", "opt-everything"):
            return ["option tcplog", f"unique-id-format {UNIQUE_ID_FORMAT}"]
        return ["option tcplog"]


@dataclass(frozen=True)
class Case:
    """One connection: which frontend, what the client does."""

    frontend: Frontend
    cert: str = "none"  #: "none" or a key of CLIENT_CERTS
    tls: str = "1.3"  #: "1.2" or "1.3"
    resume: bool = False  #: prime a session, then resume it
    alpn: tuple[str, ...] = ()
    forged_headers: bool = False  #: http only: the client sends its own XFF / X-SSL-Client-CN
    #: tcp only: inside TLS the client first writes its own PROXY v2 header (FORGED_PROXY)
    forged_proxy: bool = False

    @property
    def name(self) -> str:
        parts = [self.frontend.name, f"cert-{self.cert}", f"tls{self.tls}"]
        if self.resume:
            parts.append("resumed")
        if self.alpn:
            parts.append("alpn-" + "+".join(self.alpn))
        if self.forged_proxy:
            parts.append("forged-proxy")
        if self.forged_headers:
            parts.append("forged")
        return "/".join(parts)


def all_cases() -> list[Case]:
    """The recorded matrix (see the module docstring of the vectors test for what it covers)."""
    certs = ["none", "good", "utf8", "badca"]
    out: list[Case] = []
    for key in ("rsa", "ec"):
        for verify in ("none", "optional", "required", "optional-ignore", "required-ignore"):
            for cert in certs:
                for tls in ("1.2", "1.3"):
                    out.append(Case(Frontend("opt-ssl-all", verify, key), cert, tls))
    # which of the two ignore lists lets a certificate from an unknown CA through
    for verify in ("optional-crt-ignore", "optional-ca-ignore", "optional", "optional-ignore"):
        certs_here = ("good", "badca", "badchain") if "-c" in verify else ("badchain",)
        for cert in certs_here:
            for tls in ("1.2", "1.3"):
                out.append(Case(Frontend("opt-ssl-all", verify), cert, tls))
    for server in ("v2-ssl-cn", "v2-ssl"):
        for verify in ("none", "optional", "required", "optional-ignore", "required-ignore"):
            for cert in certs if server == "v2-ssl-cn" else ["none", "good", "badca"]:
                for tls in ("1.2", "1.3"):
                    out.append(Case(Frontend(server, verify), cert, tls))
    for server in ("v2", "opt-ssl", "opt-ssl-cn", "opt-ssl-cipher", "opt-ssl-sig", "opt-ssl-key",
                   "opt-authority", "opt-crc32c", "opt-unique-id"):
        keys = ("rsa", "ec") if server in ("opt-ssl-sig", "opt-ssl-key") else ("rsa",)
        for key in keys:
            for cert in ("none", "good"):
                for tls in ("1.2", "1.3"):
                    out.append(Case(Frontend(server, "optional", key), cert, tls))
    for verify in ("optional", "required-ignore"):
        for cert in certs:
            for tls in ("1.2", "1.3"):
                out.append(Case(Frontend("opt-everything", verify), cert, tls))
    for tls in ("1.2", "1.3"):
        for cert in ("none", "good"):
            out.append(Case(Frontend("opt-ssl-all", "optional"), cert, tls, resume=True))
        out.append(Case(Frontend("v2", "optional", alpn="mqtt"), "good", tls, alpn=("mqtt",)))
        out.append(Case(Frontend("opt-everything", "optional", alpn="mqtt"), "good", tls,
                        alpn=("mqtt",)))
    for server in ("opt-ssl-all", "v2-ssl-cn", "http"):
        for cert in ("nocn", "ctrl"):
            out.append(Case(Frontend(server, "optional" if server != "http" else
                                     "optional-ignore"), cert, "1.3"))
    for cert in certs:
        out.append(Case(Frontend("http", "optional-ignore"), cert, "1.3"))
    out.append(Case(Frontend("http", "optional-ignore"), "good", "1.3", forged_headers=True))
    for cert in ("none", "good"):
        out.append(Case(Frontend("opt-ssl-all", "optional"), cert, "1.3", forged_proxy=True))
    out.append(Case(Frontend("http", "optional-ignore"), "none", "1.3", forged_headers=True))
    return out


# -- certificates ---------------------------------------------------------------------------------


@dataclass
class Pki:
    """The CAs and certificates of one run, written as PEM files into *directory*."""

    directory: Path
    files: dict[str, Path] = field(default_factory=dict)
    server_ca_pem: bytes = b""

    @classmethod
    def make(cls, directory: Path) -> Pki:
        pki = cls(directory)
        rsa_ca = trustme.CA(key_type=trustme.KeyType.RSA, organization_name="realip server CA RSA")
        ec_ca = trustme.CA(key_type=trustme.KeyType.ECDSA, organization_name="realip server CA EC")
        clients = trustme.CA(key_type=trustme.KeyType.RSA, organization_name="realip clients CA")
        other = trustme.CA(key_type=trustme.KeyType.RSA, organization_name="realip other CA")
        for name, ca, kt in (("rsa", rsa_ca, trustme.KeyType.RSA),
                             ("ec", ec_ca, trustme.KeyType.ECDSA)):
            leaf = ca.issue_cert(SNI, common_name=SNI, key_type=kt)
            pki._write(f"server-{name}.pem", leaf.private_key_and_cert_chain_pem.bytes())
        pki.server_ca_pem = rsa_ca.cert_pem.bytes() + ec_ca.cert_pem.bytes()
        pki._write("clients-ca.pem", clients.cert_pem.bytes())
        issuers = {"clients CA": clients, "other CA": other, "other CA, root sent": other}
        for name, (cn, issuer) in CLIENT_CERTS.items():
            ca = issuers[issuer]
            leaf = ca.issue_cert(f"{name}@devices.example.test", common_name=cn or None,
                                 key_type=trustme.KeyType.ECDSA)
            pem = leaf.private_key_and_cert_chain_pem.bytes()
            if issuer.endswith("root sent"):
                pem += ca.cert_pem.bytes()
            pki._write(f"client-{name}.pem", pem)
        return pki

    def _write(self, name: str, data: bytes) -> None:
        path = self.directory / name
        path.write_bytes(data)
        self.files[name] = path


# -- the independent decoder --------------------------------------------------------------------


def crc32c_bitwise(data: bytes) -> int:
    """CRC32C bit by bit (reflected polynomial 0x82F63B78, init and xor-out 0xFFFFFFFF)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _tlvs(buf: bytes) -> list[tuple[int, int, bytes]]:
    """(type, offset of the value in *buf*, value) of each TLV tiling *buf*."""
    out = []
    i = 0
    while i < len(buf):
        t, n = buf[i], struct.unpack(">H", buf[i + 1 : i + 3])[0]
        if i + 3 + n > len(buf):
            raise ValueError(f"TLV 0x{t:02x} at {i} overruns ({n} bytes)")
        out.append((t, i + 3, buf[i + 3 : i + 3 + n]))
        i += 3 + n
    return out


_SSL_NAMES = {0x21: "version", 0x22: "cn", 0x23: "cipher", 0x24: "sig_alg", 0x25: "key_alg"}
_TLV_NAMES = {0x01: "alpn", 0x02: "authority", 0x05: "unique_id"}


def hand_decode(header: bytes) -> dict[str, Any]:
    """Read a v2 header field by field, straight from the specification (no realip)."""
    if header[:12] != V2_SIGNATURE:
        raise ValueError("not a v2 header")
    ver_cmd, fam = header[12], header[13]
    length = struct.unpack(">H", header[14:16])[0]
    if len(header) != 16 + length:
        raise ValueError(f"length field {length} but {len(header) - 16} bytes follow")
    body = header[16:]
    out: dict[str, Any] = {"ver_cmd": ver_cmd, "fam": fam, "length": length}
    if fam == 0x11:
        src, dst = IPv4Address(body[0:4]), IPv4Address(body[4:8])
        sport, dport = struct.unpack(">HH", body[8:12])
        out["source"], out["destination"] = f"{src}:{sport}", f"{dst}:{dport}"
        tstart = 12
    elif fam == 0x21:
        src6, dst6 = IPv6Address(body[0:16]), IPv6Address(body[16:32])
        sport, dport = struct.unpack(">HH", body[32:36])
        out["source"], out["destination"] = f"[{src6}]:{sport}", f"[{dst6}]:{dport}"
        tstart = 36
    else:
        raise ValueError(f"family 0x{fam:02x} not expected from this recorder")
    tlvs = _tlvs(body[tstart:])
    out["tlv_types"] = [t for t, _, _ in tlvs]
    out["crc32c"] = None
    for t, at, v in tlvs:
        if t == 0x03:
            pos = 16 + tstart + at
            zeroed = header[:pos] + b"\0\0\0\0" + header[pos + 4 :]
            want = struct.unpack(">I", v)[0]
            out["crc32c"] = {"value": f"{want:08x}", "valid": crc32c_bitwise(zeroed) == want}
        elif t in _TLV_NAMES:
            name = _TLV_NAMES[t]
            out[name] = v.decode("utf-8") if t == 0x02 else v.hex()
            if t == 0x05:
                out["unique_id_text"] = v.decode("ascii", "replace")
        elif t == 0x20:
            ssl_out: dict[str, Any] = {"client": v[0], "verify": struct.unpack(">I", v[1:5])[0]}
            subs = _tlvs(v[5:])
            ssl_out["sub_types"] = [st for st, _, _ in subs]
            for st, _, sv in subs:
                ssl_out[_SSL_NAMES.get(st, f"0x{st:02x}")] = sv.decode("utf-8")
            out["ssl"] = ssl_out
    return out


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """A v2 header (framed by its length field) and the bytes behind it."""
    if data[:12] != V2_SIGNATURE or len(data) < 16:
        return b"", data
    end = 16 + struct.unpack(">H", data[14:16])[0]
    return data[:end], data[end:]


# -- the backend ----------------------------------------------------------------------------------


class Backend:
    """A plain TCP server that keeps, per connection, the PROXY header HAProxy wrote and the
    plaintext behind it (*after* bytes for tcp, the request head for http), then closes."""

    def __init__(self, host: str, mode: str, after: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.mode, self.after = mode, after
        self.got: queue.Queue[bytes] = queue.Queue()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _enough(self, data: bytes) -> bool:
        if self.mode == "http":
            return b"\r\n\r\n" in data
        header, rest = split_header(data)
        return bool(header) and len(rest) >= self.after

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2.0)
            data = b""
            with contextlib.suppress(OSError):
                while not self._enough(data):
                    d = conn.recv(65536)
                    if not d:
                        break
                    data += d
            conn.close()
            self.got.put(data)

    def take(self, timeout: float) -> bytes | None:
        try:
            return self.got.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.close()
        self._thread.join(timeout=2)


# -- the client -----------------------------------------------------------------------------------


def _ssl_error(e: BaseException) -> str:
    """``SSLError TLSV1_ALERT_UNKNOWN_CA``: OpenSSL's reason, which names the alert received."""
    if isinstance(e, ssl.SSLError):
        return f"SSLError {e.reason or type(e).__name__}"
    return type(e).__name__


def client_context(pki: Pki, case: Case) -> ssl.SSLContext:
    """The client's TLS settings for *case*: one TLS version, its certificate, its ALPN."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pki.server_ca_pem.decode())
    version = ssl.TLSVersion.TLSv1_2 if case.tls == "1.2" else ssl.TLSVersion.TLSv1_3
    ctx.minimum_version = ctx.maximum_version = version
    if case.cert != "none":
        ctx.load_cert_chain(str(pki.files[f"client-{case.cert}.pem"]))
    if case.alpn:
        ctx.set_alpn_protocols(list(case.alpn))
    return ctx


def http_request(forged: bool) -> bytes:
    """The WebSocket upgrade an MQTT-over-wss client sends (key fixed: it is only compared)."""
    lines = [
        "GET /mqtt HTTP/1.1",
        f"Host: {SNI}:8084",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: mqtt",
    ]
    if forged:
        lines += ["X-Forwarded-For: 6.6.6.6", 'X-SSL-Client-CN: "admin"']
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Attempt:
    """What one client connection did and saw."""

    local_port: int = 0
    handshake: str = "ok"
    version: str | None = None
    cipher: str | None = None
    reused: bool | None = None
    read: str = ""
    response: bytes = b""
    session: ssl.SSLSession | None = None


def _http_complete(data: bytes) -> bool:
    """A whole HTTP/1.1 response (head and Content-Length body) is in *data*."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return m is None or len(body) >= int(m.group(1))


def connect(ctx: ssl.SSLContext, port: int, payload: bytes,
            session: ssl.SSLSession | None = None, timeout: float = 3.0,
            http: bool = False) -> Attempt:
    """Connect from CLIENT, handshake, send *payload*, read until the proxy closes (or, with
    *http*, until a whole response is in)."""
    att = Attempt()
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        raw.bind((CLIENT, 0))
        raw.settimeout(timeout)
        raw.connect((PROXY, port))
    except OSError:
        raw.close()
        raise
    att.local_port = int(raw.getsockname()[1])
    s = ctx.wrap_socket(raw, server_hostname=SNI, session=session,
                        do_handshake_on_connect=False)
    try:
        try:
            s.do_handshake()
        except (ssl.SSLError, OSError) as e:
            att.handshake = _ssl_error(e)
            return att
        att.version, att.cipher = s.version(), (s.cipher() or (None,))[0]
        att.reused = s.session_reused
        try:
            s.sendall(payload)
        except (ssl.SSLError, OSError) as e:
            att.read = f"send: {_ssl_error(e)}"
            return att
        chunks = []
        while True:
            try:
                d = s.recv(65536)
            except ssl.SSLZeroReturnError:
                att.read = "close_notify"
                break
            except ssl.SSLEOFError:
                att.read = "eof without close_notify"
                break
            except ssl.SSLError as e:
                att.read = _ssl_error(e)
                break
            except ConnectionResetError:
                att.read = "reset"
                break
            except TimeoutError:
                att.read = "timeout"
                break
            if not d:
                att.read = "eof"
                break
            chunks.append(d)
            if http and _http_complete(b"".join(chunks)):
                att.read = "http response"  # HAProxy keeps the connection open after it
                break
        att.response = b"".join(chunks)
        att.session = s.session
        return att
    finally:
        s.close()


# -- running ---------------------------------------------------------------------------------


def haproxy_versions(binary: str) -> dict[str, str]:
    """``haproxy -v`` first line and the OpenSSL HAProxy was built with / runs on."""
    vv = subprocess.run([binary, "-vv"], capture_output=True, text=True, timeout=10).stdout
    first = vv.splitlines()[0] if vv else ""
    built = re.search(r"Built with OpenSSL version : (.+)", vv)
    running = re.search(r"Running on OpenSSL version : (.+)", vv)
    return {"haproxy_version": first,
            "openssl_built": built.group(1).strip() if built else "",
            "openssl_running": running.group(1).strip() if running else "",
            "python_ssl": ssl.OPENSSL_VERSION}


@dataclass
class Rig:
    """A running HAProxy with its frontends, backends and certificates."""

    running: Running
    pki: Pki
    ports: dict[str, int]
    backends: dict[str, Backend]
    lines: dict[str, dict[str, Any]]


def _config(pki: Pki, frontends: list[Frontend], ports: dict[str, int],
            backends: dict[str, Backend]) -> tuple[str, dict[str, dict[str, Any]]]:
    sections = []
    lines: dict[str, dict[str, Any]] = {}
    for fe in frontends:
        alpn = f" alpn {fe.alpn}" if fe.alpn else ""
        bind = (f"bind {PROXY}:{ports[fe.name]} ssl crt {pki.files[f'server-{fe.key}.pem']}"
                f" ca-file {pki.files['clients-ca.pem']} {VERIFY[fe.verify]}{alpn}")
        server = f"server s {BACKEND}:{backends[fe.name].port}"
        if SERVER_OPTIONS[fe.server]:
            server += " " + SERVER_OPTIONS[fe.server]
        extra = fe.extra()
        body = "\n".join(f"    {x}" for x in [f"mode {fe.mode}", bind, *extra,
                                                f"default_backend b_{fe.name}"])
        sections.append(f"frontend f_{fe.name}\n{body}\n")
        sections.append(f"backend b_{fe.name}\n    mode {fe.mode}\n    {server}\n")
        # the paths of this run's files are replaced by their roles in the vectors
        shown = {"bind": re.sub(r" crt \S+", f" crt server-{fe.key}.pem",
                                re.sub(r" ca-file \S+", " ca-file clients-ca.pem", bind)),
                 "frontend": [f"mode {fe.mode}", *extra], "server": server}
        lines[fe.name] = shown
    return "\n".join(sections), lines


def distinct_ports(host: str, count: int) -> list[int]:
    """*count* different free ports on *host*.  Drawn with every socket still open: HAProxy binds
    with SO_REUSEPORT, so two frontends given the same port would both start and share its
    connections at random."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def rig(binary: str, directory: Path, frontends: list[Frontend]) -> Iterator[Rig]:
    """Certificates, backends and one HAProxy serving *frontends*; stopped (by pid) on exit."""
    pki = Pki.make(directory)
    uniq = list(dict.fromkeys(frontends))
    ports = dict(zip([fe.name for fe in uniq], distinct_ports(PROXY, len(uniq)), strict=True))
    backends = {fe.name: Backend(BACKEND, fe.mode, len(MQTT_CONNECT)) for fe in uniq}
    try:
        sections, lines = _config(pki, uniq, ports, backends)
        running = start_haproxy(binary, directory, sections, [(PROXY, ports[uniq[0].name])])
        try:
            yield Rig(running, pki, ports, backends, lines)
        finally:
            running.stop()
    finally:
        for b in backends.values():
            b.close()


def _log_lines(r: Rig, offset: int, port: int, timeout: float = 1.0) -> list[str]:
    """HAProxy's log lines about the client connection from *port* (it writes them when the
    stream ends, which may be just after the client saw the close)."""
    mark = f"{CLIENT}:{port} "
    deadline = time.monotonic() + timeout
    while True:
        text = r.running.log_since(offset).decode("utf-8", "replace")
        lines = [line for line in text.splitlines() if mark in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


def run_case(r: Rig, case: Case) -> dict[str, Any]:
    """Make the connection of *case* and return its vector entry."""
    fe = case.frontend
    port, backend = r.ports[fe.name], r.backends[fe.name]
    ctx = client_context(r.pki, case)
    payload = (http_request(case.forged_headers) if fe.mode == "http"
               else FORGED_PROXY + MQTT_CONNECT if case.forged_proxy else MQTT_CONNECT)
    backend.after = len(payload)
    session = None
    primed: dict[str, Any] | None = None
    if case.resume:
        first = connect(ctx, port, payload, http=fe.mode == "http")
        backend.take(2.0)
        session = first.session
        primed = {"handshake": first.handshake, "session_reused": first.reused,
                  "session_ticket": bool(session and session.has_ticket)}
    log_at = r.running.log_size()
    att = connect(ctx, port, payload, session=session, http=fe.mode == "http")
    data = backend.take(2.0 if att.handshake == "ok" and not att.read.startswith("SSLError")
                        else 0.3)
    entry: dict[str, Any] = {
        "name": case.name,
        "haproxy": r.lines[fe.name],
        "client": {
            "tls": f"TLSv{case.tls}",
            "cert": case.cert,
            "cert_cn": CLIENT_CERTS[case.cert][0] or None if case.cert != "none" else None,
            "cert_issuer": CLIENT_CERTS[case.cert][1] if case.cert != "none" else None,
            "sni": SNI,
            "alpn": list(case.alpn) or None,
            "resume": case.resume,
            "payload_hex": payload.hex(),
        },
        "outcome": {
            "handshake": att.handshake,
            "negotiated_version": att.version,
            "negotiated_cipher": att.cipher,
            "session_reused": att.reused,
            "after_send": att.read,
            "response_head": att.response.split(b"\r\n", 1)[0].decode("latin-1") or None,
            "backend_connected": data is not None,
        },
    }
    if primed is not None:
        entry["client"]["primed"] = primed
    entry["haproxy_log"] = _log_lines(r, log_at, att.local_port)
    entry["header_hex"] = entry["after_hex"] = None
    if data is not None:
        if fe.mode == "http":
            entry["header_hex"] = ""
            entry["after_hex"] = data.hex()
            entry["decoded"] = {"http_headers": _http_headers(data)}
            entry["varies"] = []
        else:
            header, rest = split_header(data)
            entry["header_hex"], entry["after_hex"] = header.hex(), rest.hex()
            decoded = hand_decode(header)
            if not decoded["source"].endswith(f":{att.local_port}"):
                raise AssertionError(f"{case.name}: capture from another connection: {decoded}")
            entry["decoded"] = decoded
            entry["varies"] = _varies(decoded)
    return entry


def _http_headers(data: bytes) -> list[list[str]]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    lines = head.split("\r\n")
    return [[lines[0], ""]] + [list(map(str.strip, ln.split(":", 1))) for ln in lines[1:]]


def _varies(decoded: dict[str, Any]) -> list[str]:
    """Fields that differ from run to run (the live test compares the others)."""
    out = ["source port", "destination port"]
    if decoded.get("crc32c"):
        out.append("crc32c value")
    if "unique_id" in decoded:
        out += ["unique_id", "length"]
    return out


def record(binary: str, cases: list[Case], directory: Path | None = None) -> dict[str, Any]:
    """Run *cases* against one HAProxy and return the vectors document."""
    with contextlib.ExitStack() as stack:
        d = directory or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        with rig(binary, d, [c.frontend for c in cases]) as r:
            entries = [run_case(r, c) for c in cases]
    return {**haproxy_versions(binary), "recorder": "tests/real/_haproxy_tls.py",
            "recorded": time.strftime("%Y-%m-%d", time.gmtime()),
            "addresses": {"client": CLIENT, "proxy": PROXY, "backend": BACKEND},
            "notes": NOTES, "cases": entries}


#: What a reader of the vectors needs to know (the fields are described in the module docstring).
NOTES = [
    "Each case: haproxy = the bind / frontend / server lines (file names stand for this run's "
    "generated PEM files); client = what the Python ssl client did; outcome = what it saw; "
    "header_hex = the PROXY v2 header the backend received (null: HAProxy never connected, "
    "'' for the http frontend, which sends none); after_hex = the bytes behind it (for http the "
    "request head HAProxy forwarded); decoded = those bytes read field by field by "
    "hand_decode(), independently of realip.",
    "varies lists what changes from run to run: the ports (so the CRC32C value) and the "
    "unique-id (ports, timestamp, pid in the format; its length too). Two recordings agreed "
    "on every other field, TLS 1.3 cipher (TLS_AES_256_GCM_SHA384) included.",
    "verify 21 = X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE (cert badca: a leaf from a CA the "
    "ca-file does not hold, an error at depth 0, let through by crt-ignore-err); verify 19 = "
    "X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN (cert badchain: the same kind of leaf sent with its "
    "own root, an error at depth 1, let through by ca-ignore-err).",
    "ssl_c_s_dn(cn) behind %{+Q} is written without quotes by http-request set-header.",
]


def dumps(doc: dict[str, Any]) -> str:
    """JSON with one line per list of numbers (the TLV type lists)."""
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    return re.sub(r"\[\s*((?:\d+,\s*)*\d+)\s*\]",
                  lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]",
                  text) + "\n"


def main(argv: list[str]) -> int:
    """``python -m tests.real._haproxy_tls OUT.json``: record every case into OUT.json."""
    binary = haproxy_binary()
    if binary is None:
        print("haproxy is not installed", file=sys.stderr)
        return 1
    doc = record(binary, all_cases())
    out = dumps(doc)
    if argv:
        Path(argv[0]).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
