"""Every edge case of :data:`realip.receivers.EDGE_CASES`, sent to real nginx and HAProxy.

One nginx (stream, ``listen … proxy_protocol`` + stream realip, answering with its variables) and
one HAProxy (``bind … accept-proxy`` in ``mode http``, answering with ``src``/``dst``) run per
module, each on an IPv4 and an IPv6 loopback listener.  For each case the test asserts that
``accepts("nginx"/"haproxy", first read)`` predicts exactly what the program did: accepted or
not, the client address and port it uses, and the message it logged.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from realip._addr import format_ip
from realip.proxy_protocol import Endpoint
from realip.receivers import EDGE_CASES, PAYLOAD, Acceptance, EdgeCase, accepts

from ._programs import Running, exchange, free_port, start_haproxy, start_nginx

pytestmark = pytest.mark.real

CASES = list(EDGE_CASES.values())
V4 = "127.0.0.1"
V6 = "::1"


def _ep_text(ep: Endpoint) -> tuple[str, str]:
    assert not isinstance(ep.host, str)
    return format_ip(ep.host), str(ep.port)


# -- nginx -------------------------------------------------------------------------------------

NGINX_VARS = ("remote_addr", "remote_port", "proxy_protocol_addr", "proxy_protocol_port",
              "proxy_protocol_server_addr", "proxy_protocol_server_port")


@pytest.fixture(scope="module")
def nginx(nginx_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    p4, p6 = free_port(V4), free_port(V6)
    ret = "|".join(f"${v}" for v in NGINX_VARS)
    servers = f"""
    server {{
        listen {V4}:{p4} proxy_protocol;
        listen [{V6}]:{p6} proxy_protocol;
        proxy_protocol_timeout 1s;
        set_real_ip_from 127.0.0.0/8;
        set_real_ip_from ::1;
        return "{ret}\\n";
    }}
"""
    running = start_nginx(nginx_bin, tmp_path_factory.mktemp("nginx-recv"), servers,
                          [(V4, p4), (V6, p6)])
    running.ports.update(v4=p4, v6=p6)
    try:
        yield running
    finally:
        running.stop()


_NGX_ERROR = re.compile(rb"\[(error|crit|alert)\] \d+#\d+: \*(\d+) (.*?) while reading PROXY "
                        rb"protocol, client: ", re.S)
_NGX_CONNECTED = re.compile(rb"\*(\d+) client (\S+):(\d+) connected to ")


def _nginx_errors(log: bytes, local: tuple[str, int] | None = None) -> list[bytes]:
    """Error messages of the connection from *local* (all connections when None)."""
    ids = None
    if local is not None:
        ids = {m.group(1) for m in _NGX_CONNECTED.finditer(log)
               if m.group(3).decode() == str(local[1])}
    return [m.group(3) for m in _NGX_ERROR.finditer(log) if ids is None or m.group(2) in ids]


def _run_nginx(nginx: Running, case: EdgeCase) -> tuple[Acceptance, dict[str, str] | None,
                                                         list[bytes], tuple[str, int]]:
    model = accepts("nginx", case.first_read())
    host = V6 if case.ipv6 else V4
    port = nginx.ports["v6" if case.ipv6 else "v4"]
    before = nginx.log_size()
    ex = exchange(host, port, case.writes())
    time.sleep(0.02)
    log = nginx.log_since(before)
    fields = None
    if ex.response:
        values = ex.response.decode("latin-1").rstrip("\n").split("|")
        fields = dict(zip(NGINX_VARS, values, strict=True))
    return model, fields, _nginx_errors(log, ex.local), ex.local


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_nginx_matches_model(nginx: Running, case: EdgeCase) -> None:
    model, fields, errors, local = _run_nginx(nginx, case)
    assert (fields is not None) == model.accepted, (model, fields, errors)
    if model.accepted:
        assert fields is not None
        assert errors == []
        peer_addr, peer_port = local
        expected = {
            "remote_addr": model.variable("remote_addr") or peer_addr,
            "remote_port": model.variable("remote_port")
            if model.source is not None else str(peer_port),
        }
        for v in NGINX_VARS[2:]:
            expected[v] = model.variable(v) or ""
        assert fields == expected
    elif model.log_line is None:
        assert errors == [], f"nginx logged {errors!r}; model: {model.reason}"
    else:
        assert errors == [model.log_line.encode("latin-1")]


def test_nginx_waits_for_a_silent_client(nginx: Running) -> None:
    """Nothing sent: nginx waits for proxy_protocol_timeout (1 s here), then closes."""
    model = accepts("nginx", b"")
    assert model.waiting and not model.accepted
    before = nginx.log_size()
    ex = exchange(V4, nginx.ports["v4"], (b"",), timeout=5)
    log = nginx.log_since(before)
    assert ex.response == b""
    assert ex.elapsed >= 0.9
    assert model.log_line is not None
    assert b"[info]" in log and model.log_line.encode() + b" while reading PROXY protocol" in log
    assert _nginx_errors(log, ex.local) == []


# -- HAProxy -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def haproxy(haproxy_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    p4, p6 = free_port(V4), free_port(V6)
    sections = f"""
frontend fe
    mode http
    bind {V4}:{p4} accept-proxy name v4
    bind [{V6}]:{p6} accept-proxy name v6
    http-request return status 200 content-type text/plain lf-string "%[src]|%[src_port]|%[dst]|%[dst_port]"
"""  # noqa: E501
    running = start_haproxy(haproxy_bin, tmp_path_factory.mktemp("haproxy-recv"), sections,
                            [(V4, p4), (V6, p6)])
    running.ports.update(v4=p4, v6=p6)
    try:
        yield running
    finally:
        running.stop()


_HAP_LINE = re.compile(rb"^(\S+):(\d+) \[[^\]]+\] fe/(v4|v6): (.*)$", re.M)


def _haproxy_errors(running: Running, before: int) -> list[tuple[str, str, str]]:
    # The rejection is logged before the connection is closed; allow the write a moment.
    deadline = time.monotonic() + 1.0
    while True:
        found = [(m.group(1).decode(), m.group(2).decode(), m.group(4).decode("latin-1"))
                 for m in _HAP_LINE.finditer(running.log_since(before))]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_haproxy_matches_model(haproxy: Running, case: EdgeCase) -> None:
    model = accepts("haproxy", case.first_read())
    host = V6 if case.ipv6 else V4
    port = haproxy.ports["v6" if case.ipv6 else "v4"]
    before = haproxy.log_size()
    # HAProxy answers only once the HTTP request is complete: send it after a pause when the
    # case keeps the first read free of payload.
    after = PAYLOAD if not case.payload and model.accepted else None
    ex = exchange(host, port, case.writes(), after=after)
    accepted = ex.response.startswith(b"HTTP/1.1 200")
    assert accepted == model.accepted, (model, ex)
    peer = (ex.local[0], str(ex.local[1]))
    if model.accepted:
        body = ex.response.split(b"\r\n\r\n", 1)[1].decode()
        got = dict(zip(("src", "src_port", "dst", "dst_port"), body.split("|"), strict=True))
        if model.source is not None:
            assert got == dict(model.variables)
        else:  # the real connection's endpoints
            assert got == {"src": peer[0], "src_port": peer[1], "dst": host,
                           "dst_port": str(port)}
    else:
        errors = _haproxy_errors(haproxy, before)
        assert len(errors) == 1, errors
        ip, cport, message = errors[0]
        assert message == model.log_line
        want = _ep_text(model.logged_source) if model.logged_source is not None else peer
        assert (ip, cport) == want


def test_haproxy_waits_for_a_silent_client(haproxy: Running) -> None:
    """Nothing sent: HAProxy waits for 'timeout client' (1 s here) and logs the timeout."""
    model = accepts("haproxy", b"")
    assert model.waiting and not model.accepted
    before = haproxy.log_size()
    ex = exchange(V4, haproxy.ports["v4"], (b"",), timeout=5)
    assert ex.response == b""
    assert ex.elapsed >= 0.9
    errors = _haproxy_errors(haproxy, before)
    assert [e[2] for e in errors] == [model.log_line]


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert sum(c.split is not None for c in CASES) >= 3


def test_private_directories_only(nginx: Running, haproxy: Running) -> None:
    for running in (nginx, haproxy):
        assert Path(running.directory).is_dir()
        assert running.proc.poll() is None
