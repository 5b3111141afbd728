"""Record what real nginx 1.22.1 and HAProxy 2.6 do with TLS (issue 12): tls_behaviour.json.

One nginx (stream + http servers) and one HAProxy run with every listener of the recording on
127.0.53.1 / 127.0.53.2; upstreams (:class:`~._tls_wire.Upstream`, plain or TLS-terminating) on
127.0.53.3, clients connect from 127.0.53.10.  The cases run one after another, so the log lines
written between a case's start and the moment the logs stop growing belong to it.

Log lines and variables are normalised: timestamps and pids go, nginx connection numbers count
from 1 within a case, and every ``address:port`` whose port is one of the recording's gets the
port's name (``127.0.53.1:<ngx_term>``, the client's own port ``<client>``, any other ephemeral
port ``<port>``).  Bytes the client sent that nginx quotes in a log line become
``<client bytes 0..N>``.

Run ``PYTHONPATH=$PWD:$PWD/tests python -m real._tls_record`` to rewrite the vectors;
``tests/real/test_tls_behaviour_real.py`` re-runs every case and compares :func:`stable` fields.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._programs import (
    NGINX_STREAM_MODULE,
    Running,
    free_port,
    haproxy_binary,
    nginx_binary,
    program_version,
    start_haproxy,
    wait_listening,
)
from ._tls_wire import (
    CLIENT_CN,
    CONNECT,
    OTHER_SNI,
    PKI,
    SNI,
    Capture,
    ClientResult,
    Upstream,
    client_context,
    client_hello,
    make_pki,
    raw_client,
    server_context,
    tls_client,
)

NGX = "127.0.53.1"
HAP = "127.0.53.2"
UP = "127.0.53.3"
CLIENT = "127.0.53.10"
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "tls_behaviour.json"

WS_REQUEST = (b"GET /mqtt HTTP/1.1\r\nHost: mqtt.example.test\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
PROXY_V1 = b"PROXY TCP4 203.0.113.7 127.0.53.1 5555 8883\r\n"
PROXY_V2 = bytes.fromhex("0d0a0d0a000d0a515549540a2111000c"
                         "cb007107" "7f003501" "15b3" "22b3")  # 203.0.113.7:5555 → 127.0.53.1:8883

#: ``(addr, port)`` → its name in one recording
Names = dict[tuple[str, int], str]

NGX_TLS_VARS = ("server_port", "remote_addr", "remote_port", "status", "ssl_protocol",
                "ssl_cipher", "ssl_server_name", "ssl_client_s_dn", "ssl_client_i_dn",
                "ssl_client_verify", "proxy_protocol_addr", "proxy_protocol_port")
NGX_PRE_VARS = ("server_port", "remote_addr", "remote_port", "status", "ssl_preread_server_name",
                "ssl_preread_protocol", "ssl_preread_alpn_protocols", "upstream_addr",
                "proxy_protocol_addr", "proxy_protocol_port")
HAP_PASS_VARS = ("f", "ci", "cp", "b", "ts", "var(sess.sni)", "var(sess.ver)")
HAP_TLS_VARS = ("f", "ci", "cp", "b", "ts", "ssl_fc_protocol", "ssl_fc_cipher", "ssl_fc_sni",
                "ssl_c_s_dn", "ssl_c_verify")

# ----------------------------------------------------------------------------------------------
# configurations: @name@ is a port (or a path) filled in at run time, <name> in the vectors

NGX_STREAM_COMMON = """\
log_format tls '$server_port|$remote_addr|$remote_port|$status|$ssl_protocol|$ssl_cipher|$ssl_server_name|$ssl_client_s_dn|$ssl_client_i_dn|$ssl_client_verify|$proxy_protocol_addr|$proxy_protocol_port';
log_format pre '$server_port|$remote_addr|$remote_port|$status|$ssl_preread_server_name|$ssl_preread_protocol|$ssl_preread_alpn_protocols|$upstream_addr|$proxy_protocol_addr|$proxy_protocol_port';
ssl_certificate @cert@;
ssl_certificate_key @key@;
ssl_protocols TLSv1.2 TLSv1.3;
ssl_handshake_timeout 1s;
preread_timeout 1s;
proxy_protocol_timeout 1s;
proxy_connect_timeout 1s;
proxy_timeout 3s;
proxy_bind 127.0.53.1;
upstream up_plain { server 127.0.53.3:@up_plain@; }
upstream up_tls { server 127.0.53.3:@up_tls@; }
upstream up_tls_default { server 127.0.53.3:@up_tls_default@; }
map $ssl_preread_server_name $up {
    mqtt.example.test up_tls;
    default up_tls_default;
}
"""  # noqa: E501

_LOG_TLS = "access_log @dir@/logs/stream.log tls;"
_LOG_PRE = "access_log @dir@/logs/stream.log pre;"

NGX_STREAM: dict[str, str] = {
    "ngx_term": f"""server {{
    listen 127.0.53.1:@ngx_term@ ssl;
    proxy_pass up_plain;
    proxy_protocol on;
    {_LOG_TLS}
}}""",
    "ngx_term_122_default_protocols": f"""server {{
    listen 127.0.53.1:@ngx_term_122_default_protocols@ ssl;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;  # what 1.22.1 uses when ssl_protocols is not set
    proxy_pass up_plain;
    proxy_protocol on;
    {_LOG_TLS}
}}""",
    "ngx_verify_on": f"""server {{
    listen 127.0.53.1:@ngx_verify_on@ ssl;
    ssl_verify_client on;
    ssl_client_certificate @ca@;
    proxy_pass up_plain;
    proxy_protocol on;
    {_LOG_TLS}
}}""",
    "ngx_verify_optional": f"""server {{
    listen 127.0.53.1:@ngx_verify_optional@ ssl;
    ssl_verify_client optional;
    ssl_client_certificate @ca@;
    proxy_pass up_plain;
    proxy_protocol on;
    {_LOG_TLS}
}}""",
    "ngx_verify_optional_no_ca": f"""server {{
    listen 127.0.53.1:@ngx_verify_optional_no_ca@ ssl;
    ssl_verify_client optional_no_ca;
    ssl_client_certificate @ca@;
    proxy_pass up_plain;
    proxy_protocol on;
    {_LOG_TLS}
}}""",
    "ngx_reencrypt": f"""server {{
    listen 127.0.53.1:@ngx_reencrypt@ ssl;
    proxy_pass up_tls;
    proxy_protocol on;
    proxy_ssl on;
    {_LOG_TLS}
}}""",
    "ngx_preread": f"""server {{
    listen 127.0.53.1:@ngx_preread@;
    ssl_preread on;
    proxy_pass $up;
    proxy_protocol on;
    {_LOG_PRE}
}}""",
    "ngx_pp_plain": f"""server {{
    listen 127.0.53.1:@ngx_pp_plain@ proxy_protocol;
    proxy_pass up_plain;
    {_LOG_TLS}
}}""",
    "ngx_ssl_pp": f"""server {{
    listen 127.0.53.1:@ngx_ssl_pp@ ssl proxy_protocol;
    proxy_pass up_plain;
    proxy_protocol on;
    {_LOG_TLS}
}}""",
    "ngx_ssl_pp_realip": f"""server {{
    listen 127.0.53.1:@ngx_ssl_pp_realip@ ssl proxy_protocol;
    set_real_ip_from 127.0.53.0/24;
    proxy_pass up_plain;
    proxy_protocol on;
    {_LOG_TLS}
}}""",
    "ngx_chain": f"""server {{
    listen 127.0.53.1:@ngx_chain@;
    ssl_preread on;
    proxy_pass 127.0.53.1:@ngx_ssl_pp_realip@;
    proxy_protocol on;
    {_LOG_PRE}
}}""",
}

_WS_LOCATION = """location /mqtt {
        proxy_pass http://up;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-SSL-Client-DN $ssl_client_s_dn;
    }"""

NGX_HTTP_COMMON = """\
proxy_bind 127.0.53.1;
upstream up { server 127.0.53.3:@up_plain@; }
"""

NGX_HTTP: dict[str, str] = {
    "ngx_wss": f"""server {{
    listen 127.0.53.1:@ngx_wss@ ssl;
    ssl_certificate @cert@;
    ssl_certificate_key @key@;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_verify_client optional;
    ssl_client_certificate @ca@;
    {_WS_LOCATION}
}}""",
    "ngx_ws": f"""server {{
    listen 127.0.53.1:@ngx_ws@;
    {_WS_LOCATION}
}}""",
}

HAP_GLOBAL = """\
global
    log stdout format raw local0 debug
    nbthread 1
defaults
    log global
    timeout connect 2s
    timeout client 1s
    timeout server 2s
"""

_HAP_PASS_RULES = """\
    tcp-request inspect-delay 5s
    tcp-request content set-var(sess.sni) req_ssl_sni if { req_ssl_hello_type 1 }
    tcp-request content set-var(sess.ver) req_ssl_ver if { req_ssl_hello_type 1 }
    tcp-request content accept if { req_ssl_hello_type 1 }"""
_HAP_PASS_LOG = '    log-format "S|%f|%ci|%cp|%b|%ts|%[var(sess.sni)]|%[var(sess.ver)]"'
_HAP_TLS_LOG = ('    log-format "S|%f|%ci|%cp|%b|%ts|%[ssl_fc_protocol]|%[ssl_fc_cipher]|'
                '%[ssl_fc_sni]|%[ssl_c_s_dn]|%[ssl_c_verify]"')

HAP_FRONTENDS: dict[str, str] = {
    "hap_pass": f"""frontend hap_pass
    mode tcp
    bind 127.0.53.2:@hap_pass@ name pass
{_HAP_PASS_LOG}
{_HAP_PASS_RULES}
    use_backend be_tls if {{ req_ssl_sni -i mqtt.example.test }}
    default_backend be_tls_default""",
    "hap_pp_plain": f"""frontend hap_pp_plain
    mode tcp
    bind 127.0.53.2:@hap_pp_plain@ name pp accept-proxy
{_HAP_PASS_LOG}
    default_backend be_plain""",
    "hap_ssl": f"""frontend hap_ssl
    mode tcp
    bind 127.0.53.2:@hap_ssl@ name ssl ssl crt @combined@
{_HAP_TLS_LOG}
    default_backend be_plain""",
    "hap_ssl_pp": f"""frontend hap_ssl_pp
    mode tcp
    bind 127.0.53.2:@hap_ssl_pp@ name sslpp ssl crt @combined@ accept-proxy
{_HAP_TLS_LOG}
    default_backend be_plain""",
    "hap_chain": f"""frontend hap_chain
    mode tcp
    bind 127.0.53.2:@hap_chain@ name chain
{_HAP_PASS_LOG}
{_HAP_PASS_RULES}
    default_backend be_to_ssl_pp""",
}

HAP_BACKENDS = """\
backend be_tls
    mode tcp
    source 127.0.53.2
    server s 127.0.53.3:@up_tls@ send-proxy-v2
backend be_tls_default
    mode tcp
    source 127.0.53.2
    server s 127.0.53.3:@up_tls_default@ send-proxy-v2
backend be_plain
    mode tcp
    source 127.0.53.2
    server s 127.0.53.3:@up_plain@ send-proxy
backend be_to_ssl_pp
    mode tcp
    source 127.0.53.2
    server s 127.0.53.2:@hap_ssl_pp@ send-proxy-v2
"""


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"@(\w+)@", lambda m: values[m.group(1)], text)


def shown(text: str) -> str:
    """A configuration as the vectors show it: ports and paths as ``<name>``."""
    return re.sub(r"@(\w+)@", lambda m: f"<{m.group(1)}>", text)


# ----------------------------------------------------------------------------------------------
# the running lab


@dataclass
class Lab:
    """Everything one recording needs, started once."""

    directory: Path
    pki: PKI
    ports: dict[str, int]
    nginx: Running
    haproxy: Running
    upstreams: dict[str, Upstream]
    versions: dict[str, str]
    access_log: Path
    names: Names = field(default_factory=dict)

    def port(self, name: str) -> int:
        return self.ports[name]


def _start_nginx(binary: str, directory: Path, values: dict[str, str],
                 wait_on: list[tuple[str, int]]) -> Running:
    """nginx in the foreground with the recording's stream and http servers."""
    for sub in ("logs", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    log = directory / "logs" / "error.log"
    stream = NGX_STREAM_COMMON + "\n".join(NGX_STREAM.values())
    http = NGX_HTTP_COMMON + "\n".join(NGX_HTTP.values())
    conf = f"""load_module {NGINX_STREAM_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {log} info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {directory}/tmp/body;
    proxy_temp_path {directory}/tmp/proxy;
    fastcgi_temp_path {directory}/tmp/fastcgi;
    uwsgi_temp_path {directory}/tmp/uwsgi;
    scgi_temp_path {directory}/tmp/scgi;
{_fill(http, values)}
}}
stream {{
{_fill(stream, values)}
}}
"""
    (directory / "nginx.conf").write_text(conf)
    with (directory / "logs" / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-e", str(directory / "logs" / "startup.log"), "-p", str(directory),
             "-c", str(directory / "nginx.conf")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    running = Running(proc, directory, log)
    try:
        for host, port in wait_on:
            wait_listening(host, port, proc, log=directory / "logs" / "stdout.log")
    except Exception:
        running.stop()
        raise
    running.settle()
    return running


@contextmanager
def lab(directory: Path) -> Iterator[Lab]:
    """Start the PKI, the upstreams, nginx and HAProxy; stop them (by pid) on exit."""
    ngx_bin, hap_bin = nginx_binary(), haproxy_binary()
    if ngx_bin is None or hap_bin is None:
        raise RuntimeError("nginx (with libnginx-mod-stream) and haproxy are needed")
    pki = make_pki(directory / "pki")
    with ExitStack() as stack:
        ups = {"up_plain": Upstream(UP), "up_tls": Upstream(UP, server_context(pki)),
               "up_tls_default": Upstream(UP, server_context(pki))}
        for u in ups.values():
            stack.callback(u.close)
        ports = {n: u.port for n, u in ups.items()}
        for n in (*NGX_STREAM, *NGX_HTTP):
            ports[n] = free_port(NGX)
        for n in HAP_FRONTENDS:
            ports[n] = free_port(HAP)
        values = {n: str(p) for n, p in ports.items()}
        values.update(cert=str(pki.server_cert), key=str(pki.server_key), ca=str(pki.ca),
                      combined=str(pki.server_combined), dir=str(directory / "nginx"))
        nginx = _start_nginx(ngx_bin, directory / "nginx", values,
                             [(NGX, ports[n]) for n in (*NGX_STREAM, *NGX_HTTP)])
        stack.callback(nginx.stop)
        sections = _fill("\n".join(HAP_FRONTENDS.values()) + "\n" + HAP_BACKENDS, values)
        haproxy = start_haproxy(hap_bin, directory / "haproxy", sections,
                                [(HAP, ports[n]) for n in HAP_FRONTENDS])
        stack.callback(haproxy.stop)
        # start_haproxy writes its own global/defaults; ours (HAP_GLOBAL) are what the vectors
        # show — they must agree on what matters: timeout client 1s
        assert "timeout client 1s" in (directory / "haproxy" / "haproxy.cfg").read_text()
        versions = {"nginx": program_version(ngx_bin, "nginx"),
                    "haproxy": program_version(hap_bin, "haproxy")}
        names: Names = {((UP if n.startswith("up_") else NGX if n.startswith("ngx") else HAP),
                          p): f"<{n}>" for n, p in ports.items()}
        time.sleep(0.3)  # the readiness probes' connections end and get logged
        for u in ups.values():
            u.clear()
        yield Lab(directory, pki, ports, nginx, haproxy, ups, versions,
                  directory / "nginx" / "logs" / "stream.log", names)


# ----------------------------------------------------------------------------------------------
# normalisation


_NGX_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (?:\*(\d+) )?")
_HAP_DATE = re.compile(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d\.\d{3}\]")
_ADDR_PORT = re.compile(r"(127\.0\.53\.\d+|127\.0\.0\.1):(\d+)")
_BYTES = re.compile(r"(bytes from/to (?:client|upstream)):\d+/\d+")
#: which side of a pass-through closes first is a race when both close at once
_SIDE = re.compile(r"\b(?:upstream|client) disconnected")
_DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


def _escape(raw: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else f"\\x{b:02x}" for b in raw)


def _mask_sent(raw: bytes, sent: bytes) -> bytes:
    """Replace the longest prefix of *sent* (≥ 8 bytes) quoted in *raw*."""
    if len(sent) < 8 or sent[:8] not in raw:
        return raw
    k = len(sent)
    while k > 8 and sent[:k] not in raw:
        k -= 1
    return raw.replace(sent[:k], f"<client bytes 0..{k}>".encode())


def _port_name(addr: str, port: int, names: Names) -> str:
    name = names.get((addr, port))
    if name is not None:
        return name
    # an ephemeral port (Linux: 32768-60999) varies between runs; a fixed one (a forged
    # header's) does not
    return "<port>" if port >= 32768 else str(port)


def normalise_ports(text: str, names: Names) -> str:
    """``addr:port`` → ``addr:<name>`` for the recording's ports, ``addr:<port>`` for other
    ephemeral ones."""
    return _ADDR_PORT.sub(
        lambda m: f"{m.group(1)}:{_port_name(m.group(1), int(m.group(2)), names)}", text)


def normalise_log(raw: bytes, names: Names, sent: bytes = b"") -> list[str]:
    """nginx error-log / HAProxy stdout lines of one case, normalised (see module doc)."""
    raw = _mask_sent(raw, sent)
    out: list[str] = []
    conn_ids: dict[str, int] = {}
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        text = _escape(line)
        m = _NGX_PREFIX.match(text)
        if m is not None:
            cid = ""
            if m.group(2) is not None:
                conn_ids.setdefault(m.group(2), len(conn_ids) + 1)
                cid = f"*{conn_ids[m.group(2)]} "
            text = f"[{m.group(1)}] {cid}{text[m.end():]}"
        text = _HAP_DATE.sub("[date]", text)
        out.append(normalise_ports(text, names))
    return out


# ----------------------------------------------------------------------------------------------
# running one case


@dataclass(frozen=True)
class Case:
    """One recording: how to drive it and how to describe it."""

    name: str
    program: str  # "nginx" | "haproxy"
    section: str  # "A".."E" of the brief
    listener: str  # the server / frontend the client connects to
    description: str
    drive: Callable[[Lab], ClientResult]
    upstream: str | None = None  # which upstream should see a connection (None: none expected)
    tier2: str | None = None  # a second-tier listener whose variables are recorded too
    config_extra: tuple[str, ...] = ()
    client_hex: Callable[[ClientResult], str | None] | None = None


def _offsets(lb: Lab) -> tuple[int, int, int]:
    acc = lb.access_log.stat().st_size if lb.access_log.exists() else 0
    return lb.nginx.log_size(), acc, lb.haproxy.log_size()


def _settle(paths: list[Path], quiet: float = 0.25, timeout: float = 4.0) -> None:
    def sizes() -> list[int]:
        return [p.stat().st_size if p.exists() else 0 for p in paths]

    deadline = time.monotonic() + timeout
    last, still = sizes(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = sizes()
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= quiet:
            return


def _read_from(path: Path, offset: int) -> bytes:
    if not path.exists():
        return b""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read()


def _variables(lines: list[str], names_: tuple[str, ...], key_field: str, key: str,
               names: Names) -> dict[str, str] | None:
    """The access-log row whose *key_field* (nginx ``$server_port``, HAProxy ``%f``) is *key*,
    ports normalised, the key field dropped; None when the program logged no such row."""
    for line in lines:
        values = line.split("|")
        if values and values[0] == "S":
            values = values[1:]
        if len(values) != len(names_):
            continue
        row = dict(zip(names_, values, strict=True))
        if row[key_field] != key:
            continue
        for k, v in row.items():
            if k in ("remote_port", "cp", "proxy_protocol_port") and v.isdigit():
                row[k] = _port_name(CLIENT, int(v), names)
            else:
                row[k] = normalise_ports(v, names)
        del row[key_field]
        return row
    return None


def _config(case: Case) -> str:
    if case.program == "nginx":
        parts = [NGX_STREAM.get(case.listener) or NGX_HTTP[case.listener]]
        if case.tier2:
            parts.append(NGX_STREAM[case.tier2])
        common = NGX_HTTP_COMMON if case.listener in NGX_HTTP else NGX_STREAM_COMMON
        return shown(common + "\n".join(parts))
    parts = [HAP_FRONTENDS[case.listener]]
    if case.tier2:
        parts.append(HAP_FRONTENDS[case.tier2])
    return shown(HAP_GLOBAL + "\n".join(parts) + "\n" + HAP_BACKENDS)


def _client_saw(res: ClientResult, tls: bool) -> dict[str, Any]:
    saw: dict[str, Any] = {"close": res.close, "after_s": round(res.elapsed, 1)}
    if tls:
        saw.update(handshake=res.handshake, tls_version=res.version, cipher=res.cipher,
                   plaintext_hex=res.received.hex())
        if res.handshake != "ok":
            saw["raw_back_hex"] = res.raw_back.hex() if len(res.raw_back) <= 64 else \
                f"{len(res.raw_back)} bytes"
    else:
        saw["bytes_back_hex"] = res.raw_back.hex()
    return saw


def run_case(lb: Lab, case: Case) -> dict[str, Any]:
    """Drive *case* once and return its vector."""
    for u in lb.upstreams.values():
        u.clear()
    ngx_off, acc_off, hap_off = _offsets(lb)
    res = case.drive(lb)
    names = dict(lb.names)
    names[res.local] = "<client>"
    captures: list[Capture] = []
    if case.upstream is not None:
        captures = lb.upstreams[case.upstream].wait(1)
    else:
        time.sleep(0.2)
    _settle([lb.nginx.log, lb.access_log, lb.haproxy.log])
    others = [c for n, u in lb.upstreams.items() if n != case.upstream for c in u.captures]
    if case.program == "nginx":
        log = normalise_log(_read_from(lb.nginx.log, ngx_off), names, res.sent)
        acc = _read_from(lb.access_log, acc_off).decode("latin-1").splitlines()
        fields = NGX_PRE_VARS if case.listener in ("ngx_preread", "ngx_chain") else NGX_TLS_VARS
        variables = (None if case.listener in NGX_HTTP else
                     _variables(acc, fields, "server_port", str(lb.port(case.listener)), names))
        tier2 = (_variables(acc, NGX_TLS_VARS, "server_port", str(lb.port(case.tier2)), names)
                 if case.tier2 else None)
    else:
        raw = _read_from(lb.haproxy.log, hap_off)
        lines = [ln for ln in raw.decode("latin-1").splitlines() if ln.startswith("S|")]
        log = [ln for ln in normalise_log(raw, names, res.sent) if not ln.startswith("S|")]
        fields = HAP_TLS_VARS if case.listener in ("hap_ssl", "hap_ssl_pp") else HAP_PASS_VARS
        variables = _variables(lines, fields, "f", case.listener, names)
        tier2 = (_variables(lines, HAP_TLS_VARS, "f", case.tier2, names)
                 if case.tier2 else None)
    vec: dict[str, Any] = {
        "name": case.name,
        "program": case.program,
        "version": lb.versions[case.program],
        "section": case.section,
        "rule": RULES[case.name],
        "config": _config(case),
        "client": {
            "description": case.description,
            "hex": case.client_hex(res) if case.client_hex else None,
            "sent_hex": res.sent.hex(),
            "client_hello_hex": res.first_flight.hex() or None,
        },
        "addresses": {
            "client": f"{res.local[0]}:{res.local[1]}",
            "listener": f"{NGX if case.program == 'nginx' else HAP}:{lb.port(case.listener)}",
            "upstream": (f"{UP}:{lb.upstreams[case.upstream].port}" if case.upstream else None),
            "tier2_listener": (f"{NGX if case.program == 'nginx' else HAP}:"
                               f"{lb.port(case.tier2)}" if case.tier2 else None),
        },
        "upstream_peer": None,
        "upstream_hex": None,
        "upstream_plaintext_hex": None,
        "upstream_tls": None,
        "variables": variables,
        "log": log,
        "client_saw": _client_saw(res, bool(res.first_flight) and not case.name.endswith(
            ("half_then_silence", "half_then_close"))),
        "other_upstreams_connected": len(others),
    }
    if tier2 is not None or case.tier2:
        vec["tier2_variables"] = tier2
    if captures:
        cap = captures[0]
        vec["upstream_peer"] = normalise_ports(f"{cap.peer[0]}:{cap.peer[1]}", names)
        vec["upstream_hex"] = cap.raw[:4096].hex()
        if lb.upstreams[case.upstream or ""].tls_ctx is not None:
            vec["upstream_tls"] = {"handshake": cap.tls, "sni": cap.sni}
            vec["upstream_plaintext_hex"] = cap.plaintext.hex()
    return vec


# ----------------------------------------------------------------------------------------------
# the cases


def _tls(listener: str, *, sni: str | None = SNI, cert: str | None = None,
         alpn: list[str] | None = None, tls12: bool = False, prefix: bytes = b"",
         split: int | None = None, app: bytes = CONNECT, host: str | None = None
         ) -> Callable[[Lab], ClientResult]:
    def drive(lb: Lab) -> ClientResult:
        ctx = client_context(lb.pki, sni=sni, cert=cert, alpn=alpn, tls12=tls12)
        h = host or (NGX if listener.startswith("ngx") else HAP)
        return tls_client(h, lb.port(listener), ctx, sni=sni, source=CLIENT, prefix=prefix,
                          split=split, app=app)
    return drive


def _raw(listener: str, *chunks: bytes, close_after: bool = False
         ) -> Callable[[Lab], ClientResult]:
    def drive(lb: Lab) -> ClientResult:
        h = NGX if listener.startswith("ngx") else HAP
        return raw_client(h, lb.port(listener), chunks, source=CLIENT, close_after=close_after)
    return drive


def _hello_then(listener: str, *, half: bool, close_after: bool = False
                ) -> Callable[[Lab], ClientResult]:
    """A real ClientHello (python ssl, SNI mqtt.example.test), whole or its first half only."""
    def drive(lb: Lab) -> ClientResult:
        hello = client_hello(client_context(lb.pki, sni=SNI), SNI)
        data = hello[: len(hello) // 2] if half else hello
        h = NGX if listener.startswith("ngx") else HAP
        res = raw_client(h, lb.port(listener), (data,), source=CLIENT, close_after=close_after)
        res.first_flight = hello
        return res
    return drive


_OPENSSL = ssl.OPENSSL_VERSION.split()[1] if " " in ssl.OPENSSL_VERSION else ssl.OPENSSL_VERSION
_PY_TLS = f"python ssl (OpenSSL {_OPENSSL}), TLS1.3"


def _sent(res: ClientResult) -> str | None:
    return res.sent.hex()


#: the one-line rule each recording shows (for the simulator's TLS layer), by case name
RULES: dict[str, str] = {
    "A_stream_ssl_pp_tls13": "nginx stream `listen … ssl` + `proxy_protocol on`: upstream gets "
    "one v1 line `PROXY TCP4 <client> <listen addr> <cport> <lport>` then the decrypted bytes; "
    "$ssl_server_name = the SNI; nothing TLS goes upstream",
    "A_stream_ssl_122_default_protocols_tls13_client": "nginx 1.22.1 without ssl_protocols "
    "offers TLSv1–1.2 only (TLSv1.3 joined the default in 1.23.4): a TLS-1.3-only client gets "
    "a fatal protocol_version alert (15 03 03 00 02 02 46), logged at info, nothing upstream",
    "A_stream_ssl_pp_tls12": "TLS 1.2: the same bytes upstream; $ssl_protocol TLSv1.2, "
    "$ssl_cipher in OpenSSL naming (ECDHE-ECDSA-AES256-GCM-SHA384)",
    "A_stream_ssl_pp_no_sni": "no SNI: the default certificate, $ssl_server_name empty (logged "
    "'-'), upstream bytes unchanged",
    "A_verify_on_with_cert": "ssl_verify_client on + good cert: $ssl_client_s_dn `CN=device-42` "
    "and $ssl_client_i_dn `CN=realip test CA,O=realip test` (RFC 2253, most specific RDN "
    "first), $ssl_client_verify SUCCESS; the PROXY v1 line carries no certificate data",
    "A_verify_on_no_cert": "on + no cert: TLS 1.3 handshake completes, then nginx logs 'client "
    "sent no required SSL certificate' [info], sends close_notify and closes; no upstream "
    "connection; the client's early app data adds a [crit] SSL_shutdown() line",
    "A_verify_on_rogue_cert": "on + cert from an unknown CA: 'client SSL certificate verify "
    "error: (21:unable to verify the first certificate)' [info], close_notify, no upstream",
    "A_verify_optional_no_cert": "optional + no cert: proxied; verify NONE, DN empty",
    "A_verify_optional_with_cert": "optional + good cert: proxied; SUCCESS, CN=device-42",
    "A_verify_optional_rogue_cert": "optional + bad cert: refused exactly like `on`",
    "A_verify_optional_no_ca_rogue_cert": "optional_no_ca + cert from an unknown CA: proxied; "
    "$ssl_client_verify `FAILED:unable to verify the first certificate`, DN still logged",
    "A_proxy_ssl_reencrypt": "proxy_ssl on + proxy_protocol on: the v1 line goes in clear "
    "first, then nginx's own ClientHello (no SNI: proxy_ssl_server_name off), the client's "
    "plaintext inside nginx's TLS",
    "B_wss_upgrade_with_cert": "http `listen … ssl` + the brief's location: the request "
    "upstream equals the plain-http one plus `X-SSL-Client-DN: CN=device-42` where configured; "
    "Connection `upgrade`, Host $proxy_host (`up`), client headers after the set ones",
    "B_wss_upgrade_no_cert": "no client cert: $ssl_client_s_dn empty → the header line is left "
    "out; byte-identical to the plain-http request",
    "B_ws_upgrade_plain_http": "plain http, same location: what realip's nginx-http model "
    "already writes (Host aside); X-SSL-Client-DN empty → omitted",
    "C_preread_sni": "ssl_preread + proxy_protocol on: upstream gets the v1 line then every "
    "byte the client sent, unchanged; $ssl_preread_server_name = SNI, $ssl_preread_protocol = "
    "the highest version offered (supported_versions, else the hello's legacy version), "
    "$ssl_preread_alpn_protocols = the ALPN list joined by ','",
    "C_preread_other_sni": "another SNI: the map's default upstream; ALPN `mqtt,x-other`",
    "C_preread_no_sni": "no SNI: $ssl_preread_server_name \"\" (found but empty: logged as "
    "nothing, not '-'), the map's default; bytes unchanged",
    "C_preread_tls12": "TLS 1.2 client: $ssl_preread_protocol TLSv1.2; bytes unchanged",
    "C_preread_split_hello": "ClientHello split over two writes 0.3 s apart: preread waits "
    "for the whole hello, then routes by its SNI; bytes unchanged",
    "C_preread_split_in_record_header": "split inside the 5-byte record header: preread waits "
    "too; bytes unchanged",
    "C_preread_mqtt_in_clear": "non-TLS bytes: preread gives up at once (variables not found, "
    "logged '-'), routes via the map's default, sends the v1 line + the bytes unchanged",
    "D_haproxy_pass_sni": "HAProxy mode tcp pass-through: send-proxy-v2 writes a 28-byte v2 "
    "header (INET, no TLVs, client → frontend addr) then every client byte unchanged; "
    "req_ssl_sni routes; req_ssl_ver 0x0303",
    "D_haproxy_pass_other_sni": "unmatched SNI → default_backend; bytes unchanged",
    "D_haproxy_pass_no_sni": "no SNI: req_ssl_sni not found, default_backend; bytes unchanged",
    "D_haproxy_pass_split_hello": "split ClientHello: inspect-delay waits for it, then routes",
    "D_haproxy_pass_split_in_record_header": "split inside the record header: waits too",
    "D_haproxy_pass_mqtt_in_clear": "non-TLS bytes: req_ssl_hello_type fails at once (no "
    "inspect-delay wait), the rules end, default_backend gets the v2 header + the bytes",
    "E1_ngx_client_hello_to_proxy_listener": "nginx `listen … proxy_protocol` + ClientHello: "
    "[error] 'broken header: \"<first 107 bytes>\" while reading PROXY protocol' (binary "
    "quoted raw), closed with RST, nothing sent back, status 400",
    "E1_hap_client_hello_to_proxy_listener": "HAProxy accept-proxy + ClientHello: log 'Received "
    "something which does not look like a PROXY protocol header', RST, nothing sent back",
    "E2_ngx_proxy_v1_to_tls_listener": "nginx `listen … ssl` + PROXY v1 first: [info] "
    "'SSL_do_handshake() failed (… wrong version number) while SSL handshaking'; FIN, no alert; "
    "logged $status 500, $ssl_protocol the server's highest (TLSv1.3), $ssl_cipher (NONE)",
    "E2_ngx_proxy_v2_to_tls_listener": "the same for a v2 header",
    "E2_hap_proxy_v1_to_tls_listener": "HAProxy `bind … ssl crt` + PROXY v1 first: 'SSL "
    "handshake failure'; FIN, no alert",
    "E2_hap_proxy_v2_to_tls_listener": "the same for a v2 header",
    "E3_ngx_proxy_v1_then_tls_to_ssl_pp": "nginx `listen … ssl proxy_protocol`: header read in "
    "clear, then TLS; $proxy_protocol_addr = header source, but without set_real_ip_from the "
    "re-emitted v1 line carries the TCP peer",
    "E3_ngx_proxy_v2_then_tls_to_ssl_pp": "the same with a v2 header (1.22.1 reads v2)",
    "E3_ngx_proxy_v1_then_tls_to_ssl_pp_realip": "with set_real_ip_from covering the sender: "
    "$remote_addr and the re-emitted line carry the header's source and port",
    "E3_ngx_passthrough_chain": "preread tier (proxy_protocol on) → `ssl proxy_protocol` tier "
    "with set_real_ip_from: works; tier 2 logs the client as $proxy_protocol_addr and "
    "re-emits it; tier 2 sees the SNI itself",
    "E3_hap_proxy_v1_then_tls_to_ssl_pp": "HAProxy `bind … ssl crt … accept-proxy`: header "
    "then TLS works; src = header source; send-proxy relays header source AND destination",
    "E3_hap_proxy_v2_then_tls_to_ssl_pp": "the same with a v2 header",
    "E3_hap_passthrough_chain": "pass-through tier send-proxy-v2 → ssl+accept-proxy tier: "
    "works; tier 2 logs the real client and the SNI",
    "E4_ngx_half_hello_then_silence": "half a ClientHello, then nothing: closed (FIN) after "
    "ssl_handshake_timeout (stream has it in 1.22.1), with no log line at info level",
    "E4_ngx_half_hello_then_close": "half then close: [info] 'peer closed connection in SSL "
    "handshake while SSL handshaking'",
    "E4_ngx_preread_half_hello_then_silence": "preread + half a hello: waits preread_timeout, "
    "then closes (FIN) without contacting any upstream and without a log line; status 200",
    "E4_hap_half_hello_then_silence": "HAProxy ssl bind + half a hello: 'Timeout during SSL "
    "handshake' after timeout client (2.6 has no timeout client-hs)",
    "E4_hap_half_hello_then_close": "half then close: 'Connection closed during SSL handshake'",
    "E4_hap_pass_half_hello_then_silence": "pass-through + half a hello: timeout client (1 s) "
    "ends it before inspect-delay (5 s); logged with termination state cR, no server contacted",
    "E5_ngx_mqtt_connect_to_tls_listener": "MQTT CONNECT to `listen … ssl`: 'wrong version "
    "number' [info], FIN at once, nothing back",
    "E5_hap_mqtt_connect_to_tls_listener": "MQTT CONNECT to `bind … ssl`: 'SSL handshake "
    "failure', FIN at once, nothing back",
}


def cases() -> list[Case]:
    """Every recording, in the order it runs."""
    c: list[Case] = []
    both = (("ngx", "nginx"), ("hap", "haproxy"))
    # A — nginx stream terminating TLS
    c += [
        Case("A_stream_ssl_pp_tls13", "nginx", "A", "ngx_term",
             f"{_PY_TLS}, SNI {SNI}, no client cert; then MQTT CONNECT (device-42)",
             _tls("ngx_term"), "up_plain"),
        Case("A_stream_ssl_122_default_protocols_tls13_client", "nginx", "A",
             "ngx_term_122_default_protocols",
             f"{_PY_TLS} only, SNI {SNI}; then MQTT CONNECT",
             _tls("ngx_term_122_default_protocols"), None),
        Case("A_stream_ssl_pp_tls12", "nginx", "A", "ngx_term",
             f"python ssl (OpenSSL {_OPENSSL}), TLS1.2 max, SNI {SNI}; then MQTT CONNECT",
             _tls("ngx_term", tls12=True), "up_plain"),
        Case("A_stream_ssl_pp_no_sni", "nginx", "A", "ngx_term",
             f"{_PY_TLS}, no SNI; then MQTT CONNECT", _tls("ngx_term", sni=None), "up_plain"),
        Case("A_verify_on_with_cert", "nginx", "A", "ngx_verify_on",
             f"{_PY_TLS}, SNI {SNI}, client cert CN={CLIENT_CN} (test CA); then MQTT CONNECT",
             _tls("ngx_verify_on", cert="client"), "up_plain"),
        Case("A_verify_on_no_cert", "nginx", "A", "ngx_verify_on",
             f"{_PY_TLS}, SNI {SNI}, no client cert; then MQTT CONNECT",
             _tls("ngx_verify_on"), None),
        Case("A_verify_on_rogue_cert", "nginx", "A", "ngx_verify_on",
             f"{_PY_TLS}, SNI {SNI}, client cert CN={CLIENT_CN} from an unknown CA",
             _tls("ngx_verify_on", cert="rogue"), None),
        Case("A_verify_optional_no_cert", "nginx", "A", "ngx_verify_optional",
             f"{_PY_TLS}, SNI {SNI}, no client cert; then MQTT CONNECT",
             _tls("ngx_verify_optional"), "up_plain"),
        Case("A_verify_optional_with_cert", "nginx", "A", "ngx_verify_optional",
             f"{_PY_TLS}, SNI {SNI}, client cert CN={CLIENT_CN} (test CA); then MQTT CONNECT",
             _tls("ngx_verify_optional", cert="client"), "up_plain"),
        Case("A_verify_optional_rogue_cert", "nginx", "A", "ngx_verify_optional",
             f"{_PY_TLS}, SNI {SNI}, client cert CN={CLIENT_CN} from an unknown CA",
             _tls("ngx_verify_optional", cert="rogue"), None),
        Case("A_verify_optional_no_ca_rogue_cert", "nginx", "A", "ngx_verify_optional_no_ca",
             f"{_PY_TLS}, SNI {SNI}, client cert CN={CLIENT_CN} from an unknown CA; "
             "then MQTT CONNECT",
             _tls("ngx_verify_optional_no_ca", cert="rogue"), "up_plain"),
        Case("A_proxy_ssl_reencrypt", "nginx", "A", "ngx_reencrypt",
             f"{_PY_TLS}, SNI {SNI}; then MQTT CONNECT; upstream terminates TLS itself",
             _tls("ngx_reencrypt"), "up_tls"),
    ]
    # B — nginx http terminating wss (and the same location over plain http)
    c += [
        Case("B_wss_upgrade_with_cert", "nginx", "B", "ngx_wss",
             f"{_PY_TLS}, SNI {SNI}, client cert CN={CLIENT_CN}; then a WebSocket upgrade "
             "GET /mqtt", _tls("ngx_wss", cert="client", app=WS_REQUEST), "up_plain",
             client_hex=lambda r: WS_REQUEST.hex()),
        Case("B_wss_upgrade_no_cert", "nginx", "B", "ngx_wss",
             f"{_PY_TLS}, SNI {SNI}, no client cert; then a WebSocket upgrade GET /mqtt",
             _tls("ngx_wss", app=WS_REQUEST), "up_plain", client_hex=lambda r: WS_REQUEST.hex()),
        Case("B_ws_upgrade_plain_http", "nginx", "B", "ngx_ws",
             "the same WebSocket upgrade GET /mqtt over plain TCP", _raw("ngx_ws", WS_REQUEST),
             "up_plain", client_hex=_sent),
    ]
    # C — nginx stream ssl_preread pass-through
    c += [
        Case("C_preread_sni", "nginx", "C", "ngx_preread",
             f"{_PY_TLS}, SNI {SNI}, ALPN mqtt; then MQTT CONNECT; upstream terminates TLS",
             _tls("ngx_preread", alpn=["mqtt"]), "up_tls"),
        Case("C_preread_other_sni", "nginx", "C", "ngx_preread",
             f"{_PY_TLS}, SNI {OTHER_SNI}, ALPN mqtt, x-other; then MQTT CONNECT",
             _tls("ngx_preread", sni=OTHER_SNI, alpn=["mqtt", "x-other"]), "up_tls_default"),
        Case("C_preread_no_sni", "nginx", "C", "ngx_preread",
             f"{_PY_TLS}, no SNI, no ALPN; then MQTT CONNECT",
             _tls("ngx_preread", sni=None), "up_tls_default"),
        Case("C_preread_tls12", "nginx", "C", "ngx_preread",
             f"python ssl (OpenSSL {_OPENSSL}), TLS1.2 max, SNI {SNI}; then MQTT CONNECT",
             _tls("ngx_preread", tls12=True), "up_tls"),
        Case("C_preread_split_hello", "nginx", "C", "ngx_preread",
             f"{_PY_TLS}, SNI {SNI}; ClientHello in two TCP writes (first 60 bytes, 0.3 s "
             "pause, the rest)", _tls("ngx_preread", split=60), "up_tls"),
        Case("C_preread_split_in_record_header", "nginx", "C", "ngx_preread",
             f"{_PY_TLS}, SNI {SNI}; the first 3 bytes of the record header, 0.3 s pause, "
             "the rest", _tls("ngx_preread", split=3), "up_tls"),
        Case("C_preread_mqtt_in_clear", "nginx", "C", "ngx_preread",
             "MQTT CONNECT (device-42) in clear, then wait (the TLS upstream fails its "
             "handshake and closes after 1.5 s idle)", _raw("ngx_preread", CONNECT),
             "up_tls_default", client_hex=_sent),
    ]
    # D — HAProxy pass-through
    c += [
        Case("D_haproxy_pass_sni", "haproxy", "D", "hap_pass",
             f"{_PY_TLS}, SNI {SNI}; then MQTT CONNECT; upstream terminates TLS",
             _tls("hap_pass"), "up_tls"),
        Case("D_haproxy_pass_other_sni", "haproxy", "D", "hap_pass",
             f"{_PY_TLS}, SNI {OTHER_SNI}; then MQTT CONNECT",
             _tls("hap_pass", sni=OTHER_SNI), "up_tls_default"),
        Case("D_haproxy_pass_no_sni", "haproxy", "D", "hap_pass",
             f"{_PY_TLS}, no SNI; then MQTT CONNECT", _tls("hap_pass", sni=None),
             "up_tls_default"),
        Case("D_haproxy_pass_split_hello", "haproxy", "D", "hap_pass",
             f"{_PY_TLS}, SNI {SNI}; ClientHello in two TCP writes (first 60 bytes, 0.3 s "
             "pause, the rest)", _tls("hap_pass", split=60), "up_tls"),
        Case("D_haproxy_pass_split_in_record_header", "haproxy", "D", "hap_pass",
             f"{_PY_TLS}, SNI {SNI}; the first 3 bytes of the record header, 0.3 s pause, "
             "the rest", _tls("hap_pass", split=3), "up_tls"),
        Case("D_haproxy_pass_mqtt_in_clear", "haproxy", "D", "hap_pass",
             "MQTT CONNECT (device-42) in clear, then wait", _raw("hap_pass", CONNECT),
             "up_tls_default", client_hex=_sent),
    ]
    # E — bad input, for both programs
    for short, prog in both:
        plain_pp, ssl_l, ssl_pp = f"{short}_pp_plain", (
            "ngx_term" if short == "ngx" else "hap_ssl"), f"{short}_ssl_pp"
        c += [
            Case(f"E1_{short}_client_hello_to_proxy_listener", prog, "E", plain_pp,
                 f"a ClientHello ({_PY_TLS}, SNI {SNI}) where a PROXY header is expected",
                 _hello_then(plain_pp, half=False), None, client_hex=_sent),
            Case(f"E2_{short}_proxy_v1_to_tls_listener", prog, "E", ssl_l,
                 f"PROXY v1 line then a ClientHello ({_PY_TLS}) in one write",
                 _tls(ssl_l, prefix=PROXY_V1), None,
                 client_hex=lambda r: PROXY_V1.hex()),
            Case(f"E2_{short}_proxy_v2_to_tls_listener", prog, "E", ssl_l,
                 f"PROXY v2 header then a ClientHello ({_PY_TLS}) in one write",
                 _tls(ssl_l, prefix=PROXY_V2), None,
                 client_hex=lambda r: PROXY_V2.hex()),
            Case(f"E3_{short}_proxy_v1_then_tls_to_ssl_pp", prog, "E", ssl_pp,
                 f"PROXY v1 line then TLS ({_PY_TLS}, SNI {SNI}) then MQTT CONNECT",
                 _tls(ssl_pp, prefix=PROXY_V1), "up_plain",
                 client_hex=lambda r: PROXY_V1.hex()),
            Case(f"E3_{short}_proxy_v2_then_tls_to_ssl_pp", prog, "E", ssl_pp,
                 f"PROXY v2 header then TLS ({_PY_TLS}, SNI {SNI}) then MQTT CONNECT",
                 _tls(ssl_pp, prefix=PROXY_V2), "up_plain",
                 client_hex=lambda r: PROXY_V2.hex()),
            Case(f"E3_{short}_passthrough_chain", prog, "E", f"{short}_chain",
                 f"{_PY_TLS}, SNI {SNI}, to a pass-through tier whose upstream is the "
                 "TLS+PROXY listener; then MQTT CONNECT",
                 _tls(f"{short}_chain"), "up_plain",
                 tier2="ngx_ssl_pp_realip" if short == "ngx" else "hap_ssl_pp"),
            Case(f"E4_{short}_half_hello_then_silence", prog, "E", ssl_l,
                 f"the first half of a ClientHello ({_PY_TLS}, SNI {SNI}), then nothing",
                 _hello_then(ssl_l, half=True), None, client_hex=_sent),
            Case(f"E4_{short}_half_hello_then_close", prog, "E", ssl_l,
                 f"the first half of a ClientHello ({_PY_TLS}, SNI {SNI}), then close",
                 _hello_then(ssl_l, half=True, close_after=True), None, client_hex=_sent),
            Case(f"E5_{short}_mqtt_connect_to_tls_listener", prog, "E", ssl_l,
                 "MQTT CONNECT (device-42) in clear to the TLS listener",
                 _raw(ssl_l, CONNECT), None, client_hex=_sent),
        ]
        if short == "ngx":
            c += [
                Case("E3_ngx_proxy_v1_then_tls_to_ssl_pp_realip", prog, "E",
                     "ngx_ssl_pp_realip",
                     f"PROXY v1 line then TLS ({_PY_TLS}, SNI {SNI}) then MQTT CONNECT",
                     _tls("ngx_ssl_pp_realip", prefix=PROXY_V1), "up_plain",
                     client_hex=lambda r: PROXY_V1.hex()),
                Case("E4_ngx_preread_half_hello_then_silence", prog, "E", "ngx_preread",
                     f"the first half of a ClientHello ({_PY_TLS}, SNI {SNI}), then nothing",
                     _hello_then("ngx_preread", half=True), None, client_hex=_sent),
            ]
        else:
            c.append(Case("E4_hap_pass_half_hello_then_silence", prog, "E", "hap_pass",
                          f"the first half of a ClientHello ({_PY_TLS}, SNI {SNI}), then "
                          "nothing", _hello_then("hap_pass", half=True), None,
                          client_hex=_sent))
    return c


# ----------------------------------------------------------------------------------------------
# stable projection (what a re-run must reproduce)


def stable(vec: dict[str, Any]) -> dict[str, Any]:
    """The fields of a vector that do not change between runs.

    Random TLS bytes (ClientHello, server flights) are replaced by what they mean: the
    upstream's PROXY header with normalised ports, whether the bytes after it equal what the
    client sent, the plaintext.  Byte counts in nginx's disconnect lines depend on signature
    lengths, so they are masked; times are compared to the tenth with a tolerance by the test.
    """
    from realip.proxy_protocol import decode

    saw = {k: v for k, v in vec["client_saw"].items() if k != "after_s"}
    for k in ("plaintext_hex", "bytes_back_hex"):  # nginx's HTTP Date: header
        if saw.get(k):
            saw[k] = _DATE.sub(b"\r\nDate: <date>\r\n", bytes.fromhex(saw[k])).hex()
    if "raw_back_hex" in saw and not str(saw["raw_back_hex"]).endswith("bytes"):
        pass  # an alert record: stable
    elif "raw_back_hex" in saw:
        saw["raw_back_hex"] = "many bytes"
    up: dict[str, Any] | None = None
    if vec["upstream_hex"] is not None:
        raw = bytes.fromhex(vec["upstream_hex"])
        sent = bytes.fromhex(vec["client"]["sent_hex"])
        h = None
        with suppress(Exception):
            h = decode(raw)
        rest = raw[h.size:] if h is not None else raw
        names = _names_of(vec)
        up = {
            "peer": vec["upstream_peer"],
            "header": None if h is None else normalise_ports(_header_text(h), names),
            "after_header": _after_header(rest, sent),
            "plaintext_hex": vec["upstream_plaintext_hex"],
            "tls": vec["upstream_tls"],
        }
    return {
        "program": vec["program"],
        "rule": vec["rule"],
        "config": vec["config"],
        "variables": vec["variables"],
        "tier2_variables": vec.get("tier2_variables"),
        "log": [_SIDE.sub("<upstream|client> disconnected", _BYTES.sub(r"\1:N/N", ln))
                for ln in vec["log"]],
        "client_saw": saw,
        "upstream": up,
        "other_upstreams_connected": vec["other_upstreams_connected"],
    }


def _after_header(rest: bytes, sent: bytes) -> str:
    """What followed the upstream's PROXY header, as a stable description."""
    if rest and rest == sent:
        return "everything the client sent, unchanged"
    if rest and sent.startswith(rest):
        return "a prefix of what the client sent, unchanged"
    if _is_tls(rest):
        return f"TLS records (first: content type {rest[0]}, handshake type {rest[5]})"
    return rest.hex()


def _is_tls(data: bytes) -> bool:
    return len(data) >= 5 and data[0] in (20, 21, 22, 23) and data[1] == 3


def _names_of(vec: dict[str, Any]) -> Names:
    names: Names = {}
    for key in ("client", "listener", "upstream", "tier2_listener"):
        if vec["addresses"].get(key):
            host, port = vec["addresses"][key].rsplit(":", 1)
            names[(host, int(port))] = f"<{key}>"
    return names


def _header_text(h: Any) -> str:
    if h.source is None:
        return f"v{h.version} {h.command.name}"
    return (f"v{h.version} {h.command.name} {h.family.name} {h.source.host}:{h.source.port} "
            f"{h.destination.host}:{h.destination.port} tlvs={[t.type for t in h.tlvs]}")


def record(directory: Path, only: set[str] | None = None) -> list[dict[str, Any]]:
    """Run every case (or those named in *only*) and return the vectors."""
    out = []
    with lab(directory) as lb:
        for case in cases():
            if only is None or case.name in only:
                out.append(run_case(lb, case))
    return out


def main(argv: list[str]) -> int:
    """Record and rewrite tests/vectors/tls_behaviour.json (or print the named cases)."""
    import tempfile

    only = set(argv) or None
    with tempfile.TemporaryDirectory(prefix="realip-tls-") as tmp:
        start = time.monotonic()
        vectors = record(Path(tmp), only)
        took = time.monotonic() - start
    if only:
        print(json.dumps(vectors, indent=1))
    else:
        VECTORS.write_text(json.dumps(vectors, indent=1) + "\n")
        print(f"{len(vectors)} cases in {took:.1f} s → {VECTORS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
