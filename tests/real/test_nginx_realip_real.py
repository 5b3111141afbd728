"""Differential tests: :func:`realip.resolve.nginx_realip` against the real nginx realip module.

One private nginx (see :mod:`._nginx_http`) runs per module with one ``server`` per realip
configuration (:data:`SERVERS`).  Each case sends a raw HTTP/1.1 request from a chosen loopback
source address with chosen header lines, reads back nginx's ``$remote_addr``, ``$remote_port``,
``$realip_remote_addr``, ``$realip_remote_port``, ``$proxy_add_x_forwarded_for``,
``$http_x_forwarded_for``, ``$http_x_real_ip`` and ``$http_x_client_ip``, and asserts that
``nginx_realip(peer=<source>, headers=<lines as nginx stores them>, peer_port=<source port>, ...)``
predicts every one of them, and that its ``code`` says "address replaced" exactly when nginx
replaced it.  The real nginx is the specification: a failing case here is a bug in the model.

Rows marked ``semantics`` additionally pin nginx's own answer to the row of
``semantics.md`` §1.6 they adapt (trusted ``10.0.0.0/8`` → ``127.0.0.1`` + ``127.0.1.0/24``, peer
``10.0.0.1`` → ``127.0.1.1``, ``10.0.0.n`` → ``127.0.1.n``, untrusted peer ``8.8.8.8`` →
``127.8.8.8``).

Marked ``real``: skipped without nginx, failed when ``REALIP_REQUIRE_REAL=1``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from realip.errors import ConfigurationError
from realip.resolve import ProxyProtocolInfo, Resolution, nginx_realip

from ._nginx_http import (
    V6,
    NginxHTTP,
    Reply,
    ServerConf,
    ipv6_loopback,
    nginx_binary,
    stored,
)

pytestmark = pytest.mark.real

REQUIRE_REAL = os.environ.get("REALIP_REQUIRE_REAL") == "1"
#: Hypothesis examples per run (raise locally to hunt for more disagreements).
EXAMPLES = int(os.environ.get("REALIP_NGINX_EXAMPLES", "300"))

XFF = "X-Forwarded-For"
LOOP = ("127.0.0.0/8",)
NARROW = ("127.0.0.1", "127.0.1.0/24")

SERVERS: dict[str, ServerConf] = {c.name: c for c in (
    ServerConf("xff_r", LOOP, XFF, True, v6=True, mapped=True, unix=True),
    ServerConf("xff", LOOP, XFF, False),
    # Both directives left out: the defaults are X-Real-IP and off.
    ServerConf("xrip", LOOP),
    ServerConf("xrip_r", LOOP, "X-Real-IP", True),
    # Lower case is not the keyword: a generic header, of which only the first line counts.
    ServerConf("lower_xff_r", LOOP, "x-forwarded-for", True),
    ServerConf("custom_r", LOOP, "X-Client-IP", True),
    ServerConf("narrow_r", NARROW, XFF, True),
    ServerConf("narrow", NARROW, XFF, False),
    ServerConf("v6_r", ("::1", "127.0.0.0/8"), XFF, True, v6=True, mapped=True),
    # Host bits set: nginx warns and trusts 127.0.0.4/30.
    ServerConf("hostbits_r", ("127.0.0.5/30",), XFF, True),
    ServerConf("unix_r", ("unix:",), XFF, True, unix=True),
    # No set_real_ip_from: realip does nothing at all.
    ServerConf("none", (), XFF, True),
    # An IPv6 CIDR covering ::ffff:0:0/96 never matches: mapped addresses are compared as IPv4.
    ServerConf("mapped6_r", ("127.0.0.1", "::ffff:0:0/96"), XFF, True, mapped=True),
    ServerConf("all_r", ("0.0.0.0/0", "::/0"), XFF, True, v6=True),
    # ``listen … proxy_protocol``: the address from the PROXY line, or X-Forwarded-For.
    ServerConf("pp", NARROW, "proxy_protocol", None, proxy_protocol=True),
    ServerConf("pp_xff_r", NARROW, XFF, True, proxy_protocol=True),
    # An underscore in a header name: nginx drops such request lines (ignore_invalid_headers).
    ServerConf("underscore_r", LOOP, "X_Client_IP", True),
    # Leading zeros are decimal to nginx: this trusts 177.0.0.1, not 127.0.0.1.
    ServerConf("octal_r", ("0177.0.0.1", "127.0.1.0/24"), XFF, True),
    # proxy_protocol as the header on a listener without PROXY: nothing to read.
    ServerConf("pp_nolisten", NARROW, "proxy_protocol"),
    # Not the keyword spelling: a generic header (first line), which behaves like X-Real-IP.
    ServerConf("xrip_case_r", LOOP, "X-Real-Ip", True),
)}

#: Servers whose configuration nginx_realip may refuse (it does no DNS); probed separately.
EXTRA_SERVERS: dict[str, ServerConf] = {c.name: c for c in (
    ServerConf("localhost_r", ("localhost",), XFF, True),
    ServerConf("bcast_r", ("255.255.255.255", "127.0.0.0/8"), XFF, True),
    ServerConf("aton_r", ("127.1", "0x7f.0.0.2"), XFF, True),
)}


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nginx_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxHTTP]:
    """The module's private nginx (http realip), killed when the module is done."""
    binary = nginx_binary()
    if binary is None:
        message = "nginx with the http realip module is not installed (apt-get install nginx)"
        if REQUIRE_REAL:
            pytest.fail(f"REALIP_REQUIRE_REAL=1 but {message}")
        pytest.skip(message)
    directory = tmp_path_factory.mktemp("nginx-realip")
    server = NginxHTTP(binary, directory, {**SERVERS, **EXTRA_SERVERS})
    try:
        server.start(with_v6=ipv6_loopback())
        yield server
    finally:
        server.stop()


# -- comparing -----------------------------------------------------------------------------------


def proxy_info(prefix: bytes) -> ProxyProtocolInfo | None:
    """What nginx 1.22 keeps of a PROXY v1 line (only well-formed lines are sent here):
    the address texts as received and the ports; nothing for ``UNKNOWN``."""
    if not prefix:
        return None
    fields = prefix.rstrip(b"\r\n").decode("ascii").split(" ")
    if fields[1] == "UNKNOWN":
        return None
    src, dst, sport, dport = fields[2:6]
    return ProxyProtocolInfo(src, int(sport), dst, int(dport))


def model(conf: ServerConf, reply: Reply, lines: list[bytes], prefix: bytes = b"",
          version: tuple[int, ...] | None = None) -> Resolution:
    """nginx_realip for this server, peer and request, for the nginx *version* running."""
    return nginx_realip(
        reply.peer, stored(lines), set_real_ip_from=list(conf.set_real_ip_from),
        real_ip_header=conf.header, recursive=conf.is_recursive, peer_port=reply.peer_port,
        proxy_protocol=proxy_info(prefix), version=version or None,
    )


def model_variables(r: Resolution) -> dict[str, str]:
    """What nginx_realip says nginx prints, from its attributes and from ``variables``."""
    out = {
        "remote_addr": r.addr or "",
        "remote_port": "" if r.port is None else str(r.port),
        "realip_remote_addr": r.realip_remote_addr,
        "realip_remote_port": "" if r.realip_remote_port is None else str(r.realip_remote_port),
        "proxy_add_x_forwarded_for": r.proxy_add_x_forwarded_for,
        "http_x_forwarded_for": r.variables.get("http_x_forwarded_for", ""),
        "http_x_real_ip": r.variables.get("http_x_real_ip", ""),
        "http_x_client_ip": r.variables.get("http_x_client_ip", ""),
        "proxy_protocol_addr": r.variables.get("proxy_protocol_addr", ""),
        "proxy_protocol_port": r.variables.get("proxy_protocol_port", ""),
    }
    for name in ("remote_addr", "remote_port", "realip_remote_addr", "realip_remote_port",
                 "proxy_add_x_forwarded_for"):
        via_mapping = r.variables.get(name)
        if via_mapping != out[name]:
            out[f"variables[{name}]"] = repr(via_mapping)
    return out


def replaced(vars_: dict[str, str]) -> bool:
    """Whether nginx replaced the address.  Observable because every case's header ports stay
    outside the kernel's ephemeral range, and a header can never name the UNIX peer."""
    return ((vars_["remote_addr"], vars_["remote_port"])
            != (vars_["realip_remote_addr"], vars_["realip_remote_port"]))


def check(nginx_http: NginxHTTP, server: str, lines: list[bytes], *, source: str = "127.0.0.1",
          via: str = "v4", prefix: bytes = b"") -> Reply:
    """Send one request and assert nginx_realip agrees with nginx on every variable."""
    conf = nginx_http.servers[server]
    reply = nginx_http.request(server, lines, source=source, via=via, prefix=prefix)
    assert reply.status == 200, f"nginx answered {reply.status}: {reply.raw!r}"
    compare(conf, reply, lines, nginx_http.version, prefix)
    return reply


def compare(conf: ServerConf, reply: Reply, lines: list[bytes],
            version: tuple[int, ...] = (), prefix: bytes = b"") -> None:
    try:
        r = model(conf, reply, lines, prefix, version)
    except ConfigurationError as e:
        pytest.fail(f"nginx loaded set_real_ip_from {list(conf.set_real_ip_from)} and answered"
                    f" {reply.variables}, but nginx_realip refused the configuration: {e}",
                    pytrace=False)
    want = dict(reply.variables)
    want["<replaced>"] = str(replaced(reply.variables))
    got = model_variables(r)
    got["<replaced>"] = str(r.code != "DECLINED")
    if got != want:
        diff = "\n".join(f"    {k}: nginx={want.get(k)!r} nginx_realip={got.get(k)!r}"
                         for k in sorted(set(want) | set(got)) if want.get(k) != got.get(k))
        trace = "\n".join(f"    {s.verdict}: {s.text!r} -> {s.address} ({s.why})"
                          for s in r.trace)
        pytest.fail(
            f"nginx_realip disagrees with nginx {'.'.join(map(str, version))}\n"
            f"  server {conf.name}: set_real_ip_from {list(conf.set_real_ip_from)},"
            f" real_ip_header {conf.header}, real_ip_recursive"
            f" {'on' if conf.is_recursive else 'off'}\n"
            f"  peer {reply.peer} port {reply.peer_port}"
            f"{f', PROXY line {prefix!r}' if prefix else ''}\n"
            f"  header lines {lines!r}\n{diff}\n  code {r.code}: {r.reason}\n{trace}",
            pytrace=False)


def x(value: str, name: str = XFF) -> bytes:
    """A header line ``name: value`` (Latin-1)."""
    return f"{name}: {value}".encode("latin-1")


# -- the table of cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    server: str
    lines: tuple[bytes, ...]
    source: str = "127.0.1.1"
    via: str = "v4"
    #: semantics.md's answer, adapted: ("peer",) = unchanged, else ($remote_addr, $remote_port).
    semantics: tuple[str, ...] | None = None
    #: a PROXY v1 line sent before the request (servers with ``proxy_protocol`` only).
    prefix: bytes = b""


PEER = ("peer",)


def pp_line(src: str, dst: str, sport: int, dport: int, family: int = 4) -> bytes:
    """A PROXY v1 line."""
    return f"PROXY TCP{family} {src} {dst} {sport} {dport}\r\n".encode("ascii")


CASES: list[Case] = [
    # semantics.md §1.6, row by row (trusted 127.0.0.1 + 127.0.1.0/24, peer 127.0.1.1).
    Case("s01", "narrow", (x("1.2.3.4"),), semantics=("1.2.3.4", "")),
    Case("s02", "narrow", (x("1.1.1.1, 2.2.2.2"),), semantics=("2.2.2.2", "")),
    Case("s03", "narrow", (x("1.1.1.1, 127.0.1.2"),), semantics=("127.0.1.2", "")),
    Case("s04", "narrow_r", (x("1.1.1.1, 2.2.2.2, 127.0.1.2"),), semantics=("2.2.2.2", "")),
    Case("s05", "narrow_r", (x("127.0.1.5, 127.0.1.2"),), semantics=("127.0.1.5", "")),
    Case("s06", "narrow_r", (x("garbage, 127.0.1.2"),), semantics=("127.0.1.2", "")),
    Case("s07", "narrow_r", (x("1.1.1.1, garbage"),), semantics=PEER),
    Case("s08", "narrow", (x("1.1.1.1 ,, "),), semantics=("1.1.1.1", "")),
    Case("s09", "narrow_r", (x(", ,127.0.1.7"),), semantics=("127.0.1.7", "")),
    Case("s10", "narrow", (x("1.1.1.1:8080"),), semantics=("1.1.1.1", "8080")),
    Case("s11", "narrow", (x("1.1.1.1:0"),), semantics=PEER),
    Case("s12", "narrow", (x("[2001:db8::1]:443"),), semantics=("2001:db8::1", "443")),
    # 1.22.1 predates "[v6]" without a port (1.27.3): unparsable, peer kept.
    Case("s13", "narrow", (x("[2001:db8::1]"),), semantics=PEER),
    Case("s14", "narrow", (x("2001:db8::1"),), semantics=("2001:db8::1", "")),
    Case("s15", "narrow_r", (x("1.1.1.1, ::ffff:127.0.1.9"),), semantics=("1.1.1.1", "")),
    Case("s16", "narrow", (x("255.255.255.255"),), semantics=PEER),
    Case("s17", "narrow", (x("010.001.002.003"),), semantics=("10.1.2.3", "")),
    Case("s18", "narrow", (x("1..2.3"),), semantics=("1.0.2.3", "")),
    Case("s19", "narrow", (x("1.1.1.1,\t2.2.2.2"),), semantics=PEER),
    Case("s20", "narrow", (x("1.1.1.1"), x("2.2.2.2")), semantics=("2.2.2.2", "")),
    Case("s21", "narrow_r", (x("1.1.1.1"), x("127.0.1.3")), semantics=("1.1.1.1", "")),
    Case("s22", "narrow_r", (x("1.1.1.1, 127.0.1.4"), x("127.0.1.3")),
         semantics=("1.1.1.1", "")),
    Case("s23", "narrow_r", (x(""), x("127.0.1.3")), semantics=("127.0.1.3", "")),
    Case("s24a", "narrow", (x(""),), semantics=PEER),
    Case("s24b", "narrow", (x(", ,"),), semantics=PEER),
    Case("s24c", "narrow", (x("example.com"),), semantics=PEER),
    Case("s24d", "narrow", (x("unknown"),), semantics=PEER),
    Case("s25a", "narrow", (x("1.2.3.4"),), source="127.8.8.8", semantics=PEER),
    Case("s25b", "narrow_r", (x("1.2.3.4, 127.0.1.2"),), source="127.8.8.8", semantics=PEER),
    # §10: a separator glued to byte 0 is never skipped.
    Case("s10-comma", "narrow", (x(",1.2.3.4"),), semantics=PEER),
    Case("s10-comma-r", "narrow_r", (x(",1.2.3.4"),), semantics=PEER),
    # ---- ports --------------------------------------------------------------------------------
    Case("port-8080", "xff", (x("1.2.3.4:8080"),), semantics=("1.2.3.4", "8080")),
    Case("port-1", "xff", (x("1.2.3.4:1"),), semantics=("1.2.3.4", "1")),
    Case("port-65535", "xff", (x("1.2.3.4:65535"),), semantics=("1.2.3.4", "65535")),
    Case("port-65536", "xff", (x("1.2.3.4:65536"),), semantics=PEER),
    Case("port-0", "xff", (x("1.2.3.4:0"),), semantics=PEER),
    Case("port-00080", "xff", (x("1.2.3.4:00080"),), semantics=("1.2.3.4", "80")),
    Case("port-huge", "xff", (x("1.2.3.4:99999999999999999999999"),), semantics=PEER),
    Case("port-plus", "xff", (x("1.2.3.4:+80"),), semantics=PEER),
    Case("port-minus", "xff", (x("1.2.3.4:-1"),), semantics=PEER),
    Case("port-empty", "xff", (x("1.2.3.4:"),), semantics=PEER),
    Case("port-only", "xff", (x(":80"),), semantics=PEER),
    Case("port-two", "xff", (x("1.2.3.4:80:81"),), semantics=PEER),
    Case("port-v6", "xff", (x("[2001:db8::7]:443"),), semantics=("2001:db8::7", "443")),
    Case("port-v6-0", "xff", (x("[2001:db8::7]:0"),), semantics=PEER),
    Case("port-v6-bare", "xff", (x("[2001:db8::7]"),), semantics=PEER),
    Case("port-v6-junk", "xff", (x("[2001:db8::7]x80"),), semantics=PEER),
    Case("port-v6-open", "xff", (x("[2001:db8::7"),), semantics=PEER),
    Case("port-v6-close", "xff", (x("2001:db8::7]:80"),), semantics=PEER),
    Case("port-v4-brackets", "xff", (x("[1.2.3.4]:80"),), semantics=("1.2.3.4", "80")),
    Case("port-v4-brackets-bare", "xff", (x("[1.2.3.4]"),), semantics=PEER),
    Case("port-v6-unbracketed", "xff", (x("::1:80"),), semantics=("::0.1.0.128", "")),
    Case("port-v6-unbracketed-2", "xff", (x("2001:db8::1:443"),),
         semantics=("2001:db8::1:443", "")),
    Case("port-mapped", "xff", (x("[::ffff:1.2.3.4]:80"),), semantics=("::ffff:1.2.3.4", "80")),
    Case("port-recursive", "xff_r", (x("1.2.3.4:81, 127.0.0.9:82"),),
         semantics=("1.2.3.4", "81")),
    Case("port-recursive-trusted-left", "xff_r", (x("127.0.0.7:83, 127.0.0.9:82"),),
         semantics=("127.0.0.7", "83")),
    # ---- IPv4 grammar -------------------------------------------------------------------------
    Case("v4-leading-zeros", "xff", (x("127.000.000.001"),), semantics=("127.0.0.1", "")),
    Case("v4-leading-zeros-big", "xff", (x("0001.0002.0003.0255"),), semantics=("1.2.3.255", "")),
    Case("v4-octet-256", "xff", (x("1.2.3.256"),), semantics=PEER),
    Case("v4-empty-first", "xff", (x(".1.2.3"),), semantics=("0.1.2.3", "")),
    Case("v4-empty-last", "xff", (x("1.2.3."),), semantics=("1.2.3.0", "")),
    Case("v4-all-empty", "xff", (x("..."),), semantics=("0.0.0.0", "")),
    Case("v4-all-empty-port", "xff", (x("...:80"),), semantics=("0.0.0.0", "80")),
    Case("v4-three", "xff", (x("1.2.3"),), semantics=PEER),
    Case("v4-five", "xff", (x("1.2.3.4.5"),), semantics=PEER),
    Case("v4-hex", "xff", (x("0x7f.0.0.1"),), semantics=PEER),
    Case("v4-bcast-port", "xff", (x("255.255.255.255:80"),), semantics=PEER),
    Case("v4-bcast-brackets", "xff", (x("[255.255.255.255]:80"),), semantics=PEER),
    Case("v4-254", "xff", (x("255.255.255.254"),), semantics=("255.255.255.254", "")),
    Case("v4-zero", "xff", (x("0.0.0.0"),), semantics=("0.0.0.0", "")),
    Case("v4-cidr", "xff", (x("1.2.3.4/24"),), semantics=PEER),
    Case("v4-bcast-r", "xff_r", (x("1.2.3.4, 255.255.255.255, 127.0.0.3"),),
         semantics=("127.0.0.3", "")),
    # ---- IPv6 grammar and printing ------------------------------------------------------------
    Case("v6-upper", "xff", (x("2001:DB8:0:0:0:0:0:1"),), semantics=("2001:db8::1", "")),
    Case("v6-full-zero", "xff", (x("0:0:0:0:0:0:0:0"),), semantics=("::", "")),
    Case("v6-loopback", "xff", (x("0:0:0:0:0:0:0:1"),), semantics=("::1", "")),
    Case("v6-compat-print", "xff", (x("::102"),)),
    Case("v6-compat-101", "xff", (x("::101"),)),
    Case("v6-compat-ffff", "xff", (x("::ffff"),)),
    Case("v6-compat-dotted", "xff", (x("::1.2.3.4"),)),
    Case("v6-mapped-hex", "xff", (x("::ffff:102:304"),), semantics=("::ffff:1.2.3.4", "")),
    Case("v6-mapped-zero", "xff", (x("0:0:0:0:0:ffff:0:0"),)),
    Case("v6-two-runs", "xff", (x("1:0:0:2:0:0:0:3"),), semantics=("1:0:0:2::3", "")),
    Case("v6-tie-runs", "xff", (x("1:0:0:2:0:0:3:4"),), semantics=("1::2:0:0:3:4", "")),
    Case("v6-single-zero", "xff", (x("1:0:2:3:4:5:6:7"),), semantics=("1:0:2:3:4:5:6:7", "")),
    Case("v6-leading-colon", "xff", (x(":1:2:3:4:5:6:7:8"),), semantics=("1:2:3:4:5:6:7:8", "")),
    Case("v6-trailing-colon", "xff", (x("1:2:3:4:5:6:7:"),), semantics=PEER),
    Case("v6-nine-groups", "xff", (x("1:2:3:4:5:6:7:8:9"),), semantics=PEER),
    Case("v6-two-double", "xff", (x("1::2::3"),), semantics=PEER),
    Case("v6-five-nibbles", "xff", (x("12345::1"),), semantics=PEER),
    Case("v6-v4-tail-bcast", "xff", (x("::ffff:255.255.255.255"),), semantics=PEER),
    Case("v6-v4-tail-zeros", "xff", (x("::ffff:010.0.0.1"),), semantics=("::ffff:10.0.0.1", "")),
    Case("v6-v4-tail-7", "xff", (x("1:2:3:4:5:6:7:1.2.3.4"),), semantics=PEER),
    Case("v6-v4-tail-6", "xff", (x("1:2:3:4:5:6:1.2.3.4"),), semantics=("1:2:3:4:5:6:102:304", "")),
    Case("v6-zone", "xff", (x("fe80::1%eth0"),), semantics=PEER),
    Case("v6-zone-port", "xff", (x("[fe80::1%eth0]:80"),), semantics=PEER),
    Case("v6-zone-numeric", "xff", (x("fe80::1%1"),), semantics=PEER),
    # ---- IPv4-mapped addresses and trust ------------------------------------------------------
    Case("mapped-trusted-r", "xff_r", (x("1.2.3.4, ::ffff:127.0.0.5"),),
         semantics=("1.2.3.4", "")),
    Case("mapped-hex-trusted-r", "xff_r", (x("1.2.3.4, ::FFFF:7f00:5"),),
         semantics=("1.2.3.4", "")),
    Case("mapped-rightmost", "xff", (x("::ffff:127.0.0.5"),), semantics=("::ffff:127.0.0.5", "")),
    Case("mapped-untrusted-r", "xff_r", (x("1.2.3.4, ::ffff:192.0.2.1"),),
         semantics=("::ffff:192.0.2.1", "")),
    Case("mapped6-cidr-r", "mapped6_r", (x("1.2.3.4, ::ffff:10.0.0.1"),),
         source="127.0.0.1", semantics=("::ffff:10.0.0.1", "")),
    Case("mapped6-cidr-v6-entry-r", "mapped6_r", (x("1.2.3.4, ::ffff:127.0.0.1"),),
         source="127.0.0.1", semantics=("1.2.3.4", "")),
    # ---- tabs, spaces, separators -------------------------------------------------------------
    Case("tab-leading", "xff", (b"X-Forwarded-For:\t1.2.3.4",), semantics=PEER),
    Case("tab-trailing", "xff", (b"X-Forwarded-For: 1.2.3.4\t",), semantics=PEER),
    Case("tab-trailing-r", "xff_r", (b"X-Forwarded-For: 1.2.3.4, 127.0.0.2\t",),
         semantics=PEER),
    Case("tab-inner-r", "xff_r", (b"X-Forwarded-For: 1.2.3.4\t127.0.0.2",), semantics=PEER),
    Case("spaces-none", "xff", (b"X-Forwarded-For:1.2.3.4",), semantics=("1.2.3.4", "")),
    Case("spaces-many", "xff", (b"X-Forwarded-For:      1.2.3.4      ",),
         semantics=("1.2.3.4", "")),
    Case("spaces-only", "xff", (b"X-Forwarded-For:     ",), semantics=PEER),
    Case("sep-space-list-r", "xff_r", (x("1.2.3.4 127.0.0.2 127.0.0.3"),),
         semantics=("1.2.3.4", "")),
    Case("sep-commas-r", "xff_r", (x("1.2.3.4,,,127.0.0.2,,,"),), semantics=("1.2.3.4", "")),
    Case("sep-leading-comma-r", "xff_r", (x(",127.0.0.2"),), semantics=PEER),
    Case("sep-leading-comma2-r", "xff_r", (x(",,127.0.0.2"),), semantics=("127.0.0.2", "")),
    Case("sep-leading-comma-left-r", "xff_r", (x(",1.2.3.4, 127.0.0.2"),),
         semantics=("127.0.0.2", "")),
    Case("sep-leading-space-comma-r", "xff_r", (x(" ,1.2.3.4"),), semantics=PEER),
    Case("sep-semicolon", "xff", (x("1.2.3.4;5.6.7.8"),), semantics=PEER),
    # ---- empty values and several lines -------------------------------------------------------
    Case("empty", "xff", (b"X-Forwarded-For:",), semantics=PEER),
    Case("empty-r", "xff_r", (b"X-Forwarded-For:",), semantics=PEER),
    Case("empty-last-r", "xff_r", (x("1.2.3.4"), b"X-Forwarded-For:"), semantics=PEER),
    Case("empty-middle-r", "xff_r", (x("1.2.3.4"), x(""), x("127.0.0.3")),
         semantics=("127.0.0.3", "")),
    Case("empty-three", "xff_r", (x(""), x(""), x("")), semantics=PEER),
    Case("lines-off-last", "xff", (x("1.2.3.4"), x("127.0.0.9"), x("5.6.7.8, 9.9.9.9")),
         semantics=("9.9.9.9", "")),
    Case("lines-r-all-trusted", "xff_r", (x("127.0.0.7"), x("127.0.0.8, 127.0.0.9")),
         semantics=("127.0.0.7", "")),
    Case("lines-r-stop", "xff_r", (x("1.1.1.1"), x("2.2.2.2, 127.0.0.8"), x("127.0.0.9")),
         semantics=("2.2.2.2", "")),
    Case("lines-r-garbage-first", "xff_r", (x("garbage"), x("127.0.0.8")),
         semantics=("127.0.0.8", "")),
    Case("lines-r-garbage-line", "xff_r", (x("1.2.3.4"), x("junk, 127.0.0.8")),
         semantics=("127.0.0.8", "")),
    Case("lines-case", "xff_r", (b"x-forwarded-for: 1.2.3.4", b"X-FORWARDED-FOR: 127.0.0.8"),
         semantics=("1.2.3.4", "")),
    Case("lines-interleaved", "xff_r",
         (x("1.2.3.4"), x("9.9.9.9", "X-Real-IP"), x("127.0.0.8"), x("8.8.8.8", "X-Client-IP")),
         semantics=("1.2.3.4", "")),
    Case("lines-many", "xff_r", (*(x(f"127.0.{i}.{i}") for i in range(1, 40)), x("1.0.0.1")),
         semantics=("1.0.0.1", "")),
    # ---- X-Real-IP and generic headers --------------------------------------------------------
    Case("xrip-default", "xrip", (x("1.2.3.4", "X-Real-IP"),), semantics=("1.2.3.4", "")),
    Case("xrip-list", "xrip", (x("1.2.3.4, 5.6.7.8", "X-Real-IP"),), semantics=("5.6.7.8", "")),
    Case("xrip-lower-name", "xrip", (x("1.2.3.4", "x-real-ip"),), semantics=("1.2.3.4", "")),
    Case("xrip-first-line", "xrip", (x("1.2.3.4", "X-Real-IP"), x("5.6.7.8", "X-Real-IP")),
         semantics=("1.2.3.4", "")),
    Case("xrip-first-line-bad", "xrip", (x("bad", "X-Real-IP"), x("5.6.7.8", "X-Real-IP")),
         semantics=PEER),
    Case("xrip-ignores-xff", "xrip", (x("1.2.3.4"),), semantics=PEER),
    Case("xrip-r-list", "xrip_r", (x("1.2.3.4, 127.0.0.2", "X-Real-IP"),),
         semantics=("1.2.3.4", "")),
    Case("xrip-r-first-line-only", "xrip_r",
         (x("127.0.0.2", "X-Real-IP"), x("1.2.3.4", "X-Real-IP")), semantics=("127.0.0.2", "")),
    Case("xrip-port", "xrip", (x("[2001:db8::5]:8443", "X-Real-IP"),),
         semantics=("2001:db8::5", "8443")),
    Case("lower-xff-first-line", "lower_xff_r", (x("1.2.3.4"), x("5.6.7.8")),
         semantics=("1.2.3.4", "")),
    Case("lower-xff-first-line-r", "lower_xff_r", (x("5.5.5.5, 127.0.0.6"), x("5.6.7.8")),
         semantics=("5.5.5.5", "")),
    Case("custom", "custom_r", (x("1.2.3.4, 127.0.0.2", "X-Client-IP"),),
         semantics=("1.2.3.4", "")),
    Case("custom-lower", "custom_r", (x("1.2.3.4", "x-client-ip"),), semantics=("1.2.3.4", "")),
    Case("custom-first-line", "custom_r",
         (x("1.2.3.4", "X-Client-IP"), x("5.6.7.8", "X-Client-IP")), semantics=("1.2.3.4", "")),
    Case("custom-ignores-xff", "custom_r", (x("1.2.3.4"),), semantics=PEER),
    Case("custom-underscore-dropped", "custom_r", (x("1.2.3.4", "X_Client_IP"),),
         semantics=PEER),
    # ---- trust sets ---------------------------------------------------------------------------
    Case("narrow-untrusted-peer", "narrow_r", (x("1.2.3.4"),), source="127.0.0.2",
         semantics=PEER),
    Case("narrow-peer-127.0.0.1", "narrow_r", (x("1.2.3.4, 127.0.1.200"),), source="127.0.0.1",
         semantics=("1.2.3.4", "")),
    Case("narrow-stops-at-127.0.2", "narrow_r", (x("1.2.3.4, 127.0.2.1, 127.0.1.200"),),
         semantics=("127.0.2.1", "")),
    Case("hostbits-trusted", "hostbits_r", (x("1.2.3.4, 127.0.0.4"),), source="127.0.0.7",
         semantics=("1.2.3.4", "")),
    Case("hostbits-peer-outside", "hostbits_r", (x("1.2.3.4"),), source="127.0.0.8",
         semantics=PEER),
    Case("hostbits-entry-outside", "hostbits_r", (x("1.2.3.4, 127.0.0.3"),), source="127.0.0.4",
         semantics=("127.0.0.3", "")),
    Case("none", "none", (x("1.2.3.4"),), semantics=PEER),
    Case("all-trusted", "all_r", (x("1.2.3.4, 2001:db8::1, 5.6.7.8"),),
         semantics=("1.2.3.4", "")),
    Case("all-trusted-garbage", "all_r", (x("junk, 2001:db8::1, 5.6.7.8"),),
         semantics=("2001:db8::1", "")),
    Case("unix-untrusted-tcp", "unix_r", (x("1.2.3.4"),), semantics=PEER),
    Case("octal-not-127", "octal_r", (x("1.2.3.4"),), source="127.0.0.1", semantics=PEER),
    Case("octal-chain", "octal_r", (x("1.2.3.4, 177.0.0.1"),), semantics=("1.2.3.4", "")),
    # ---- peers that are not plain IPv4 --------------------------------------------------------
    Case("peer-unix", "unix_r", (x("1.2.3.4, 127.0.0.2"),), source="", via="unix",
         semantics=("127.0.0.2", "")),
    Case("peer-unix-off-tcp-list", "xff_r", (x("1.2.3.4"),), source="", via="unix",
         semantics=PEER),
    Case("peer-mapped", "xff_r", (x("1.2.3.4, 127.0.0.2"),), source="127.0.0.5", via="mapped",
         semantics=("1.2.3.4", "")),
    Case("peer-mapped-untrusted", "mapped6_r", (x("1.2.3.4"),), source="127.0.0.5", via="mapped",
         semantics=PEER),
    Case("peer-mapped-127.0.0.1", "mapped6_r", (x("1.2.3.4"),), source="127.0.0.1",
         via="mapped", semantics=("1.2.3.4", "")),
    Case("peer-v6", "v6_r", (x("1.2.3.4, ::1, 127.0.0.3"),), source=V6, via="v6",
         semantics=("1.2.3.4", "")),
    Case("peer-v6-untrusted", "xff_r", (x("1.2.3.4"),), source=V6, via="v6", semantics=PEER),
    Case("peer-v6-all", "all_r", (x("[2001:db8::9]:4000"),), source=V6, via="v6",
         semantics=("2001:db8::9", "4000")),
    # ---- hostnames, garbage, non-ASCII, long ---------------------------------------------------
    Case("host-localhost", "xff", (x("localhost"),), semantics=PEER),
    Case("host-port", "xff", (x("example.com:80"),), semantics=PEER),
    Case("garbage-forwarded-syntax", "xff", (x("for=1.2.3.4"),), semantics=PEER),
    Case("garbage-quoted", "xff", (x('"1.2.3.4"'),), semantics=PEER),
    Case("garbage-obfuscated", "xff", (x("_hidden"),), semantics=PEER),
    Case("garbage-latin1", "xff", (x("1.2.3.4, caf\xe9"),), semantics=PEER),
    Case("garbage-latin1-r", "xff_r", (x("caf\xe9, 1.2.3.\xb9, 127.0.0.2"),),
         semantics=("127.0.0.2", "")),
    Case("garbage-ctrl", "xff", (b"X-Forwarded-For: 1.2.3.4\x01",), semantics=PEER),
    Case("garbage-del", "xff", (b"X-Forwarded-For: \x7f",), semantics=PEER),
    Case("garbage-dash", "xff", (x("-"),), semantics=PEER),
    Case("long-trusted-chain", "xff_r",
         (x(", ".join(["203.0.113.77"] + [f"127.{i // 250}.{i % 250}.1" for i in range(450)])),),
         semantics=("203.0.113.77", "")),
    Case("long-garbage", "xff", (x("9" * 7000 + ", 1.2.3.4"),), semantics=("1.2.3.4", "")),
    Case("long-garbage-r", "xff_r", (x("9" * 7000 + ", 127.0.0.2"),),
         semantics=("127.0.0.2", "")),
    # ---- header names nginx drops (underscore: ignore_invalid_headers is on by default) ------
    Case("underscore-header", "underscore_r", (x("1.2.3.4", "X_Client_IP"),), semantics=PEER),
    Case("underscore-xff", "xff", (x("1.2.3.4", "X_Forwarded_For"),), semantics=PEER),
    # ---- real_ip_header proxy_protocol and PROXY listeners (peer 127.0.1.1 trusted) ----------
    Case("pp-tcp4", "pp", (), prefix=pp_line("1.2.3.4", "127.0.0.1", 1111, 80),
         semantics=("1.2.3.4", "1111")),
    Case("pp-tcp6", "pp", (), prefix=pp_line("2001:db8::1", "2001:db8::2", 443, 80, 6),
         semantics=("2001:db8::1", "443")),
    Case("pp-port-0", "pp", (), prefix=pp_line("1.2.3.4", "127.0.0.1", 0, 80),
         semantics=("1.2.3.4", "")),
    Case("pp-leading-zeros", "pp", (), prefix=pp_line("010.001.002.003", "127.0.0.1", 5, 80),
         semantics=("10.1.2.3", "5")),
    Case("pp-octet-256", "pp", (), prefix=pp_line("203.0.113.256", "127.0.0.1", 5, 80),
         semantics=PEER),
    Case("pp-hex-words", "pp", (), prefix=pp_line("abc.def.1.2", "127.0.0.1", 5, 80),
         semantics=PEER),
    Case("pp-empty-addr", "pp", (), prefix=pp_line("", "127.0.0.1", 5, 80), semantics=PEER),
    Case("pp-mapped-in-tcp4", "pp", (), prefix=pp_line("::ffff:1.2.3.4", "127.0.0.1", 5, 80),
         semantics=("::ffff:1.2.3.4", "5")),
    Case("pp-unknown", "pp", (), prefix=b"PROXY UNKNOWN\r\n", semantics=PEER),
    Case("pp-untrusted-peer", "pp", (), source="127.0.0.2",
         prefix=pp_line("1.2.3.4", "127.0.0.1", 1111, 80), semantics=PEER),
    Case("pp-ignores-xff", "pp", (x("5.6.7.8"),), prefix=pp_line("1.2.3.4", "127.0.0.1", 1111, 80),
         semantics=("1.2.3.4", "1111")),
    Case("pp-xff-from-tcp-peer", "pp_xff_r", (x("5.6.7.8, 127.0.1.9"),),
         prefix=pp_line("1.2.3.4", "127.0.0.1", 1111, 80), semantics=("5.6.7.8", "")),
    Case("pp-no-listener", "pp_nolisten", (x("1.2.3.4"), x("5.6.7.8", "X-Real-IP")),
         semantics=PEER),
    Case("xrip-case-generic", "xrip_case_r",
         (x("1.2.3.4, 127.0.0.9", "x-real-ip"), x("5.6.7.8", "X-Real-IP")),
         semantics=("1.2.3.4", "")),
    Case("pp-xff-untrusted-tcp-peer", "pp_xff_r", (x("5.6.7.8"),), source="127.0.0.2",
         prefix=pp_line("127.0.1.5", "127.0.0.1", 1111, 80), semantics=PEER),
]


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_nginx_realip_matches_nginx(nginx_http: NginxHTTP, case: Case) -> None:
    if not nginx_http.has(case.server, case.via):
        pytest.skip(f"no {case.via} listener here (no IPv6 loopback?)")
    check(nginx_http, case.server, list(case.lines), source=case.source, via=case.via,
          prefix=case.prefix)


SEMANTIC_CASES = [c for c in CASES if c.semantics is not None]


@pytest.mark.parametrize("case", SEMANTIC_CASES, ids=[c.id for c in SEMANTIC_CASES])
def test_nginx_behaves_as_documented(nginx_http: NginxHTTP, case: Case) -> None:
    """nginx's own answer equals the one semantics.md (§1.6, §10, §1.4) predicts."""
    if not nginx_http.has(case.server, case.via):
        pytest.skip(f"no {case.via} listener here (no IPv6 loopback?)")
    reply = nginx_http.request(case.server, list(case.lines), source=case.source, via=case.via,
                               prefix=case.prefix)
    assert reply.status == 200
    got = (reply.variables["remote_addr"], reply.variables["remote_port"])
    if case.semantics == PEER:
        assert got == (reply.variables["realip_remote_addr"],
                       reply.variables["realip_remote_port"])
        assert not replaced(reply.variables)
    else:
        assert got == case.semantics


def test_keep_alive_requests_are_resolved_one_by_one(nginx_http: NginxHTTP) -> None:
    """realip restores the connection address when a request ends: each keep-alive request is
    resolved from the TCP peer again."""
    requests = [[x("1.2.3.4")], [], [x("5.6.7.8:99"), x("127.0.0.2")], [x("garbage")]]
    replies = nginx_http.requests("xff_r", requests, source="127.0.0.77")
    for lines, reply in zip(requests, replies, strict=True):
        assert reply.status == 200
        compare(nginx_http.servers["xff_r"], reply, lines, nginx_http.version)
    assert replies[1].variables["remote_addr"] == "127.0.0.77"


def test_hostbits_warning_matches_nginx(nginx_http: NginxHTTP) -> None:
    r = nginx_realip("127.0.0.4", [], set_real_ip_from=["127.0.0.5/30"])
    assert r.warnings == ("low address bits of 127.0.0.5/30 are meaningless",)
    log = nginx_http.startup_log()
    for w in r.warnings:
        assert w in log


# -- set_real_ip_from values the model refuses but nginx loads -----------------------------------


def test_localhost_in_set_real_ip_from(nginx_http: NginxHTTP) -> None:
    """nginx resolves a host name when it loads the configuration (here: 127.0.0.1 from
    /etc/hosts); nginx_realip documents that it refuses host names instead (it does no DNS)."""
    a = nginx_http.request("localhost_r", [x("1.2.3.4")], source="127.0.0.1")
    b = nginx_http.request("localhost_r", [x("1.2.3.4")], source="127.0.0.2")
    assert a.variables["remote_addr"] == "1.2.3.4"
    assert b.variables["remote_addr"] == "127.0.0.2"
    with pytest.raises(ConfigurationError):
        nginx_realip("127.0.0.1", [], set_real_ip_from=["localhost"])


def test_aton_shorthand_in_set_real_ip_from(nginx_http: NginxHTTP) -> None:
    """``127.1`` and ``0x7f.0.0.2`` fail ngx_ptocidr; getaddrinfo reads them as inet_aton
    shorthand (127.0.0.1, 127.0.0.2) without any DNS, and nginx trusts those addresses."""
    lines = [x("1.2.3.4")]
    for source, trusted in (("127.0.0.1", True), ("127.0.0.2", True), ("127.0.0.3", False)):
        reply = nginx_http.request("aton_r", lines, source=source)
        assert (reply.variables["remote_addr"] == "1.2.3.4") is trusted
        compare(nginx_http.servers["aton_r"], reply, lines, nginx_http.version)


def test_broadcast_address_in_set_real_ip_from(nginx_http: NginxHTTP) -> None:
    """``set_real_ip_from 255.255.255.255;`` is an address, not a host name: ngx_ptocidr fails
    on it (INADDR_NONE) but the host-name fallback's numeric lookup accepts it, so nginx loads
    the configuration and keeps the other entries working.  nginx_realip should accept it too."""
    reply = nginx_http.request("bcast_r", [x("1.2.3.4, 127.0.0.2")], source="127.0.0.3")
    assert reply.variables["remote_addr"] == "1.2.3.4"
    compare(nginx_http.servers["bcast_r"], reply, [x("1.2.3.4, 127.0.0.2")], nginx_http.version)


# -- configuration acceptance: nginx -t versus ngx.ptocidr ---------------------------------------

CONFIG_ENTRIES = [
    "127.0.0.0/8", "127.0.0.5/30", "0.0.0.0/0", "::/0", "::1", "::1/64", "::ffff:0:0/96",
    "010.0.0.1/8", "1..2.3", "127.0.0.1/33", "::1/129", "127.0.0.1/", "127.0.0.1/-1",
    "127.0.0.1/+8", "255.255.255.255/32", "0177.0.0.1", "::ffff:127.0.0.1", "unix:",
    "127.0.0.1/08", "1.2.3.4/0", "::1/0", "not-a-host.invalid",
    # Not ngx_ptocidr syntax, but nginx's host-name fallback (getaddrinfo) takes them without DNS.
    "255.255.255.255", "fe80::1%lo", "127.1", "0x7f.0.0.1", "2130706433",
]


@pytest.mark.parametrize("entry", CONFIG_ENTRIES)
def test_set_real_ip_from_config_matches_nginx(nginx_http: NginxHTTP, tmp_path: Path,
                                               entry: str) -> None:
    """``nginx -t`` accepts/rejects/warns exactly where nginx_realip does (no host names
    here: every entry is either an address/CIDR or not resolvable)."""
    d = tmp_path
    (d / "logs").mkdir()
    conf = d / "t.conf"
    conf.write_text(f"""daemon off; master_process off; pid {d}/p.pid; error_log {d}/e.log;
events {{}}
http {{ access_log off; client_body_temp_path {d}/b; proxy_temp_path {d}/p;
  fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
  server {{ listen unix:{d}/t.sock; set_real_ip_from {entry}; }} }}
""")
    out = subprocess.run([nginx_http.binary, "-t", "-p", str(d), "-c", str(conf),
                          "-e", str(d / "logs" / "startup.log")],
                         capture_output=True, text=True, timeout=30)
    text = out.stdout + out.stderr + (d / "logs" / "startup.log").read_text(errors="replace")
    nginx_ok = out.returncode == 0
    try:
        r = nginx_realip("127.0.0.1", [], set_real_ip_from=[entry])
    except ConfigurationError as e:
        model_ok, warnings, why = False, (), str(e)
    else:
        model_ok, warnings, why = True, r.warnings, ""
    assert model_ok == nginx_ok, f"nginx -t: {text!r}; nginx_realip: {why}"
    nginx_warned = "are meaningless" in text
    assert bool(warnings) == nginx_warned, text
    for w in warnings:
        assert w in text


# -- Hypothesis: generated header lines ------------------------------------------------------------

TRUSTED_HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.5", "127.0.1.7", "127.0.1.200", "127.9.9.9",
                 "127.000.000.001", "127..0.3", "::ffff:127.0.0.8", "::1", "127.0.0.4"]
UNTRUSTED_HOSTS = ["192.0.2.1", "198.51.100.23", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.9",
                   "0.0.0.0", "...", "::", "fe80::1", "203.0.113.255", "1.2.3.4", "::102"]
JUNK = ["", "unknown", "garbage", "example.com", "_hidden", "255.255.255.255", "1.2.3",
        "1.2.3.4.5", "256.1.1.1", "[::1", "::1]", "fe80::1%eth0", "\t192.0.2.1", "1.2.3.4:0",
        "1.2.3.4:65536", ":80", "for=192.0.2.1", '"192.0.2.1"', "-", "[::1]", "[127.0.0.1]",
        "1.2.3.4\t", "caf\xe9", "[::1]:", "127.0.0.1:x"]
#: Ports outside Linux's ephemeral range (32768-60999) so a header port never equals the peer's.
PORTS = [1, 80, 443, 8080, 9999, 32767, 65535]
SEPARATORS = [", ", ",", " ", ",,", " , ", ", ,", "  ", ",  ,"]
XFF_NAMES = ["X-Forwarded-For", "x-forwarded-for", "X-FORWARDED-FOR"]
OTHER_NAMES = ["X-Real-IP", "x-real-ip", "X-Client-IP", "x-client-ip"]
TCP_SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.5", "127.0.1.7", "127.0.1.1", "127.3.4.5",
               "127.255.255.254", "127.0.0.4"]


@st.composite
def tokens(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["trusted", "trusted", "untrusted", "untrusted", "junk"]))
    if kind == "junk":
        return draw(st.sampled_from(JUNK))
    host = draw(st.sampled_from(TRUSTED_HOSTS if kind == "trusted" else UNTRUSTED_HOSTS))
    if not draw(st.integers(0, 3)):  # one in four gets a port
        port = draw(st.sampled_from(PORTS))
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return host


@st.composite
def values(draw: st.DrawFn) -> str:
    parts = draw(st.lists(tokens(), min_size=0, max_size=6))
    out = draw(st.sampled_from(["", "", "", ",", " ,", ", "]))
    for i, p in enumerate(parts):
        if i:
            out += draw(st.sampled_from(SEPARATORS))
        out += p
    out += draw(st.sampled_from(["", "", "", ",", " ", ", ", ",,"]))
    return out


@st.composite
def header_lines(draw: st.DrawFn) -> list[bytes]:
    n = draw(st.integers(1, 5))
    lines = []
    for _ in range(n):
        name = draw(st.sampled_from(XFF_NAMES * 3 + OTHER_NAMES))
        before = draw(st.sampled_from(["", " ", " ", "  "]))
        after = draw(st.sampled_from(["", "", " "]))
        lines.append(f"{name}:{before}{draw(values())}{after}".encode("latin-1"))
    return lines


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str, list[bytes]]:
    server = draw(st.sampled_from(sorted(k for k, c in SERVERS.items() if not c.proxy_protocol)))
    conf = SERVERS[server]
    vias = ["v4"] * 4 + [v for v in ("v6", "mapped", "unix")
                         if getattr(conf, v)]
    via = draw(st.sampled_from(vias))
    source = {"v6": V6, "unix": ""}.get(via) or draw(st.sampled_from(TCP_SOURCES))
    return server, via, source, draw(header_lines())


@seed(20261126)
@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(request=requests())
def test_generated_headers_match_nginx(nginx_http: NginxHTTP,
                                       request: tuple[str, str, str, list[bytes]]) -> None:
    server, via, source, lines = request
    if not nginx_http.has(server, via):
        via, source = "v4", "127.0.0.1"
    check(nginx_http, server, lines, source=source, via=via)
