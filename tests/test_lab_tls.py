"""The live lab speaks TLS (issue 12): a test PKI made at run time, the lab broker's ssl and wss
listeners, PROXY header first then TLS on the same connection (pass-through), paho-mqtt over
TLS and wss with and without client certificates, the forged PROXY v2 SSL TLV, and every bad
input refused cleanly with the next client unaffected.

One broker (listeners on 127.0.55.1) serves the module; each test connects from its own
127.0.55.x addresses and reads only its own records.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from realip.lab import Background
from realip.lab.broker import ClientInfo, LabBroker, Refusal
from realip.lab.lab import paho_connect
from realip.lab.pki import LabPKI
from realip.proxy_protocol import TLV, SSLClient, SSLInfo, build
from realip.tls import client_hello
from realip.topology import Broker, mqtt_connect

HOST = "127.0.55.1"
TIMEOUT = 0.6  # the handshake and PROXY header timeouts of the listeners below
LISTENERS = {
    "ssl": Broker(addr=HOST, port=0, listener="ssl"),
    "ssl-verify": Broker(addr=HOST, port=0, listener="ssl", verify="verify_peer"),
    "ssl-required": Broker(addr=HOST, port=0, listener="ssl", verify="verify_peer",
                           fail_if_no_peer_cert=True),
    "wss": Broker(addr=HOST, port=0, listener="wss", verify="verify_peer"),
    "ssl-pp": Broker(addr=HOST, port=0, listener="ssl", verify="verify_peer",
                     proxy_protocol=True, proxy_protocol_timeout=TIMEOUT),
    "wss-pp": Broker(addr=HOST, port=0, listener="wss", verify="verify_peer",
                     proxy_protocol=True),
    "tcp-pp": Broker(addr=HOST, port=0, proxy_protocol=True, proxy_protocol_timeout=TIMEOUT,
                     peer_cert_as_username="cn"),
}
NAMES = list(LISTENERS)


class TlsLab:
    def __init__(self, bg: Background, broker: LabBroker, pki: LabPKI) -> None:
        self.bg = bg
        self.broker = broker
        self.pki = pki

    def addr(self, name: str) -> tuple[str, int]:
        return self.broker.endpoint(NAMES.index(name))

    def refusals(self, source: str) -> list[Refusal]:
        return [r for r in list(self.broker.refused) if str(r.peer.host) == source]

    def record(self, client_id: str) -> ClientInfo:
        info = self.broker.client(client_id)
        assert info is not None, f"no record of {client_id}"
        return info

    def good_client(self, bind: str, client_id: str) -> None:
        """A well-behaved TLS client right after a bad one: it must still be served."""
        host, port = self.addr("ssl-verify")
        got = paho_connect(host, port, bind=bind, client_id=client_id,
                           tls=self.pki.client_context("after-" + client_id))
        assert got.connected and got.peername == got.source, got
        info = self.record(client_id)
        assert info.tls is not None and info.tls.cert is not None
        assert info.tls.cert.cn == "after-" + client_id


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def errors() -> Iterator[_Errors]:
    handler = _Errors()
    logger = logging.getLogger("realip.lab.broker")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def lab(errors: _Errors) -> Iterator[TlsLab]:
    bg = Background()
    with LabPKI() as pki:
        broker = LabBroker(*LISTENERS.values(), pki=pki, handshake_timeout=TIMEOUT)
        try:
            bg.run(broker.start())
            yield TlsLab(bg, broker, pki)
        finally:
            try:
                bg.run(broker.close())
            finally:
                bg.close()
    # never a traceback: no connection ended in an exception the broker did not expect
    assert not errors.records, [r.getMessage() for r in errors.records]


def wait_for(predicate: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def ssl_tlv(cn: str, client: int = 0x07, verify: int = 0) -> TLV:
    """A PROXY v2 SSL TLV (0x20): client flags, verify, then the CN sub-TLV (0x22)."""
    return SSLInfo.make(client, verify, cn=cn).tlv()


# -- the PKI -------------------------------------------------------------------------------------


def test_pki_files_labels_and_cleanup() -> None:
    repo = Path(__file__).resolve().parents[1]
    with LabPKI() as pki:
        server = pki.server("127.0.55.1")
        pem = pki.server_pem("127.0.55.1").read_bytes()
        # HAProxy's crt: the certificate, its CA, then the key
        assert pem.count(b"BEGIN CERTIFICATE") == 2 and b"BEGIN PRIVATE KEY" in pem
        assert pem.index(b"PRIVATE KEY") > pem.rindex(b"END CERTIFICATE")
        assert pki.server_key_file("127.0.55.1").read_bytes().startswith(b"-----BEGIN PRIVATE")
        assert pki.server_cert_file("127.0.55.1").read_bytes().count(b"BEGIN CERTIFICATE") == 2
        sans = server.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.55.1"]
        assert sans.get_values_for_type(x509.DNSName) == ["localhost", "mqtt.example.com"]
        device = pki.client("Gerät-42")
        assert device.cn == "Gerät-42"
        assert pki.label_of(device.der) == "clients-ca"
        assert pki.label_of(pki.client("evil", "other-ca").der) == "other-ca"
        assert pki.label_of(server.der) == "servers-ca"
        assert (device.sig_alg, device.key_alg) == ("ecdsa-with-SHA256", "EC256")
        assert pki.ca_file("clients-ca").read_bytes().startswith(b"-----BEGIN CERTIFICATE")
        directory = pki.directory
        assert repo not in directory.resolve().parents
        assert all(oct(p.stat().st_mode)[-3:] == "600" for p in directory.iterdir())
    assert not directory.exists()


def test_pki_removed_without_close() -> None:
    import gc

    pki = LabPKI()
    pki.client("left-behind")
    directory = pki.directory
    assert any(directory.iterdir())
    del pki
    gc.collect()
    assert not directory.exists()


def test_pki_rsa_keys() -> None:
    with LabPKI(key_type="rsa") as pki:
        issued = pki.client("rsa-device")
        assert (issued.sig_alg, issued.key_alg) == ("RSA-SHA256", "RSA2048")
        ec_one = pki.client("ec-device", key_type="ec")
        assert ec_one.key_alg == "EC256"


# -- paho over TLS ------------------------------------------------------------------------------


def test_tls_without_client_certificate(lab: TlsLab) -> None:
    host, port = lab.addr("ssl")
    got = paho_connect(host, port, bind="127.0.55.10", client_id="tls-plain",
                       tls=lab.pki.client_context(), server_name="mqtt.example.com")
    assert got.connected, got
    assert got.peername == got.source  # no PROXY header: the TCP peer
    info = lab.record("tls-plain")
    assert info.tls is not None
    assert info.tls.protocol == "TLSv1.3" and info.tls.cipher
    assert info.tls.server_name == "mqtt.example.com"  # the real SNI
    assert info.tls.cert is None and info.tls.verify is None
    assert info.view.tls == "terminated" and info.view.kind == "emqx-ssl"
    assert info.view.peername == info.peername  # the room's decision is what was recorded
    assert info.pp2_ssl is None


def test_tls12_is_recorded(lab: TlsLab) -> None:
    host, port = lab.addr("ssl")
    got = paho_connect(host, port, bind="127.0.55.11", client_id="tls-12",
                       tls=lab.pki.client_context(version="TLSv1.2"))
    assert got.connected, got
    info = lab.record("tls-12")
    assert info.tls is not None and info.tls.protocol == "TLSv1.2"
    assert info.tls.cipher == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_good_client_certificate_cn_recorded(lab: TlsLab) -> None:
    host, port = lab.addr("ssl-verify")
    got = paho_connect(host, port, bind="127.0.55.12", client_id="dev42",
                       tls=lab.pki.client_context("Gerät-42"), username="from-connect")
    assert got.connected, got
    info = lab.record("dev42")
    assert info.tls is not None and info.tls.cert is not None
    assert (info.tls.cert.cn, info.tls.cert.ca, info.tls.verify) == ("Gerät-42", "clients-ca", 0)
    assert info.tls.verify_text == "SUCCESS"
    assert info.username == "from-connect"  # peer_cert_as_username is disabled here
    assert info.peername == got.source


def test_no_certificate_on_verify_peer_is_allowed(lab: TlsLab) -> None:
    # verify_peer without fail_if_no_peer_cert: the certificate is asked for, not required
    host, port = lab.addr("ssl-verify")
    got = paho_connect(host, port, bind="127.0.55.13", client_id="nocert",
                       tls=lab.pki.client_context())
    assert got.connected, got
    info = lab.record("nocert")
    assert info.tls is not None and info.tls.cert is None


def test_other_ca_certificate_refused(lab: TlsLab) -> None:
    host, port = lab.addr("ssl-verify")
    src = "127.0.55.14"
    got = paho_connect(host, port, bind=src, client_id="forger",
                       tls=lab.pki.client_context("admin", cert_ca="other-ca"))
    assert not got.connected
    wait_for(lambda: lab.refusals(src))
    refusal = lab.refusals(src)[0]
    assert refusal.reason == "unknown_ca"
    assert "ssl_error" in refusal.log and "unknown_ca" in refusal.log
    assert lab.broker.client("forger") is None
    lab.good_client("127.0.55.15", "after-other-ca")


def test_missing_certificate_with_fail_if_no_peer_cert(lab: TlsLab) -> None:
    host, port = lab.addr("ssl-required")
    src = "127.0.55.16"
    got = paho_connect(host, port, bind=src, client_id="anon", tls=lab.pki.client_context())
    assert not got.connected
    wait_for(lambda: lab.refusals(src))
    assert lab.refusals(src)[0].reason == "certificate_required"
    ok = paho_connect(host, port, bind="127.0.55.17", client_id="with-cert",
                      tls=lab.pki.client_context("device-7"))
    assert ok.connected, ok


# -- wss --------------------------------------------------------------------------------------


def test_wss_with_and_without_client_certificate(lab: TlsLab) -> None:
    host, port = lab.addr("wss")
    got = paho_connect(host, port, bind="127.0.55.20", client_id="wss-cert", transport="ws",
                       tls=lab.pki.client_context("ws-device"), server_name="mqtt.example.com")
    assert got.connected, got
    info = lab.record("wss-cert")
    assert info.tls is not None and info.tls.cert is not None
    assert info.tls.cert.cn == "ws-device" and info.tls.server_name == "mqtt.example.com"
    assert info.view.kind == "emqx-wss" and info.peername == got.source
    plain = paho_connect(host, port, bind="127.0.55.21", client_id="wss-anon", transport="ws",
                         tls=lab.pki.client_context())
    assert plain.connected, plain
    assert lab.record("wss-anon").tls is not None
    assert lab.record("wss-anon").tls.cert is None  # type: ignore[union-attr]
    src = "127.0.55.22"
    bad = paho_connect(host, port, bind=src, client_id="wss-forger", transport="ws",
                       tls=lab.pki.client_context("admin", cert_ca="other-ca"))
    assert not bad.connected
    wait_for(lambda: lab.refusals(src))
    assert lab.refusals(src)[0].reason == "unknown_ca"


# -- PROXY header first, then TLS (pass-through) --------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_proxy_then_tls(lab: TlsLab, version: int) -> None:
    host, port = lab.addr("ssl-pp")
    header = build(("203.0.113.7", 40000 + version), (HOST, 8883), version=version)
    cid = f"pass-v{version}"
    got = paho_connect(host, port, bind=f"127.0.55.3{version}", client_id=cid,
                       tls=lab.pki.client_context(f"device-v{version}"), prefix=header,
                       server_name="mqtt.example.com")
    assert got.connected, got
    assert got.peername == f"203.0.113.7:{40000 + version}"  # from the header
    info = lab.record(cid)
    assert info.peer.host.compressed == f"127.0.55.3{version}"  # type: ignore[union-attr]
    assert info.tls is not None and info.tls.cert is not None
    assert info.tls.cert.cn == f"device-v{version}"  # the real certificate's CN
    assert info.tls.server_name == "mqtt.example.com"
    assert info.pp2_ssl is None  # no SSL TLV in this header
    assert info.view.peername == info.peername


def test_proxy_tlv_beside_the_real_certificate(lab: TlsLab) -> None:
    # an L4 tier that adds an SSL TLV of its own: both are recorded — esockd <= 5.16.1 reads
    # the TLV's CN on a proxied ssl listener, >= 5.16.2 the real certificate's
    host, port = lab.addr("ssl-pp")
    header = build(("198.51.100.5", 5555), (HOST, 8883), tlvs=[ssl_tlv("admin")])
    got = paho_connect(host, port, bind="127.0.55.33", client_id="pass-tlv",
                       tls=lab.pki.client_context("real-device"), prefix=header)
    assert got.connected, got
    info = lab.record("pass-tlv")
    assert info.peername == "198.51.100.5:5555"
    assert info.pp2_ssl is not None and info.pp2_ssl.cn == "admin"
    assert info.tls is not None and info.tls.cert is not None
    assert info.tls.cert.cn == "real-device"


def test_wss_proxy_then_tls(lab: TlsLab) -> None:
    host, port = lab.addr("wss-pp")
    header = build(("203.0.113.8", 41000), (HOST, 8084), version=1)
    got = paho_connect(host, port, bind="127.0.55.34", client_id="wss-pass", transport="ws",
                       tls=lab.pki.client_context("wss-device"), prefix=header)
    assert got.connected, got
    assert got.peername == "203.0.113.8:41000"
    info = lab.record("wss-pass")
    assert info.tls is not None and info.tls.cert is not None
    assert info.tls.cert.cn == "wss-device"


# -- the forged SSL TLV on a tcp listener (the attack of issue 12) --------------------------------


def test_forged_ssl_tlv_on_tcp_listener(lab: TlsLab) -> None:
    host, port = lab.addr("tcp-pp")
    tlv = ssl_tlv("admin", client=SSLClient.SSL | SSLClient.CERT_CONN | SSLClient.CERT_SESS)
    header = build(("192.0.2.66", 6666), (HOST, 1883), tlvs=[tlv])
    got = paho_connect(host, port, bind="127.0.55.40", client_id="mallory", prefix=header,
                       username="mallory")
    assert got.connected, got
    assert got.peername == "192.0.2.66:6666"
    info = lab.record("mallory")
    assert info.tls is None  # no TLS anywhere: nobody verified a certificate
    ssl_info = info.pp2_ssl
    assert ssl_info is not None
    assert ssl_info.cn == "admin" and ssl_info.verify == 0
    assert ssl_info.verified  # what the header claims, and what EMQX would trust
    # peer_cert_as_username = cn: the TLV's CN wins over the CONNECT packet's username
    assert info.view.username == "admin" and info.username == "admin"


# -- bad input: each refused, nothing else lost ---------------------------------------------------


def _raw(host: str, port: int, bind: str, data: bytes, *, close: bool = False,
         wait: float = 3.0) -> bytes:
    """Send *data* from *bind*; then close at once (*close*) or read until the broker closes
    (what it sent back, b"" for nothing)."""
    with socket.socket() as s:
        s.settimeout(wait)
        s.bind((bind, 0))
        s.connect((host, port))
        s.sendall(data)
        if close:
            return b""
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return got
                got += chunk
        except ConnectionResetError:
            return got


HELLO = client_hello("mqtt.example.com", ("mqtt",))
BAD = {
    # a TLS ClientHello to a plain tcp PROXY listener: esockd's parser refuses it
    "hello-to-tcp-pp": ("tcp-pp", HELLO, False, None),
    # a PROXY header to an ssl listener without proxy_protocol: not TLS
    "proxy-to-ssl": ("ssl", build(("203.0.113.1", 1), (HOST, 8883), version=1) + HELLO, False,
                     "unexpected_message"),
    "proxy-v2-to-ssl": ("ssl", build(("203.0.113.1", 1), (HOST, 8883)) + HELLO, False,
                        "unexpected_message"),
    # plain MQTT to an ssl listener
    "mqtt-to-ssl": ("ssl", mqtt_connect("plain"), False, "unexpected_message"),
    # half a ClientHello, then silence: closed after the handshake timeout
    "half-hello-silence": ("ssl", HELLO[: len(HELLO) // 2], False, "ssl_upgrade_timeout"),
    # half a ClientHello, then the client closes
    "half-hello-close": ("ssl", HELLO[: len(HELLO) // 2], True, "closed"),
    # pass-through: the header, then half a handshake
    "proxy-then-half-hello": ("ssl-pp", build(("203.0.113.2", 2), (HOST, 8883))
                              + HELLO[:40], False, "ssl_upgrade_timeout"),
    # an ssl+proxy_protocol listener sent TLS without the header it expects
    "hello-to-ssl-pp": ("ssl-pp", HELLO, False, None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_refused_and_next_client_served(lab: TlsLab, case: str) -> None:
    name, data, close, reason = BAD[case]
    index = list(BAD).index(case)
    src = f"127.0.55.{100 + index}"
    host, port = lab.addr(name)
    start = time.monotonic()
    answer = _raw(host, port, src, data, close=close)
    wait_for(lambda: lab.refusals(src))
    refusal = lab.refusals(src)[0]
    assert refusal.log  # a clear line, never empty
    if reason is not None:
        assert refusal.reason == reason, refusal
    else:  # decided by the room's PROXY receiver (esockd), with its own log line
        assert refusal.view is not None and not refusal.view.accepted
        assert refusal.view.log == refusal.log
    if reason == "ssl_upgrade_timeout":
        assert time.monotonic() - start >= TIMEOUT * 0.9  # waited for the handshake timeout
        assert "did not complete" in refusal.log
    if reason == "unexpected_message":
        assert not answer.startswith(b"\x20")  # never a CONNACK
        assert repr(data[:16]) in refusal.log  # the offending bytes, quoted
    lab.good_client(f"127.0.55.{150 + index}", f"after-{case}")


def test_tls_listener_needs_a_pki() -> None:
    from realip.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="pki"):
        LabBroker(Broker(addr=HOST, port=0, listener="ssl"))
    with pytest.raises(ConfigurationError, match="emqx"):
        LabBroker(Broker(addr=HOST, port=0, listener="ssl", kind="mosquitto"), pki=None)


def test_ssl_context_semantics() -> None:
    with LabPKI() as pki:
        assert pki.server_context(HOST).verify_mode == ssl.CERT_NONE
        assert pki.server_context(HOST, verify="verify_peer").verify_mode == ssl.CERT_OPTIONAL
        assert pki.server_context(HOST, verify="verify_peer",
                                  fail_if_no_peer_cert=True).verify_mode == ssl.CERT_REQUIRED


def test_tls_and_wss_carry_large_and_many_messages(lab: TlsLab) -> None:
    """Plaintext flow control through the TLS layer: a 512 KiB message (many TLS records,
    reader pause/resume) and a burst of QoS 1 messages, from a wss publisher to a TLS
    subscriber."""
    from lab_helpers import Paho

    sub = Paho("tls-sub")
    sub.client.tls_set_context(lab.pki.client_context("subscriber"))
    pub = Paho("wss-pub", transport="ws")
    pub.client.tls_set_context(lab.pki.client_context("publisher"))
    with sub, pub:
        assert sub.connect(*lab.addr("ssl-verify"), bind="127.0.55.60")
        assert pub.connect(*lab.addr("wss"), bind="127.0.55.61")
        sub.subscribe("bulk/#", 1)
        big = bytes(range(256)) * 2048
        pub.publish("bulk/big", big, qos=1)
        msg = sub.expect(timeout=5)
        assert msg.topic == "bulk/big" and msg.payload == big
        for i in range(200):
            pub.client.publish(f"bulk/{i}", str(i).encode(), 1)
        got = {sub.expect(timeout=5).payload for _ in range(200)}
        assert got == {str(i).encode() for i in range(200)}
        answer = pub.whoami("wss-pub")
        assert answer.startswith("127.0.55.61:") and answer == lab.record("wss-pub").peername
    info = lab.record("tls-sub")
    assert info.tls is not None and info.tls.cert is not None
    assert info.tls.cert.cn == "subscriber"


def _bio_handshake(sock: socket.socket, ctx: ssl.SSLContext, prefix: bytes,
                   server_hostname: str) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A client handshake whose ClientHello leaves in the same write as *prefix* (so the
    broker reads the PROXY header and the start of TLS in one segment)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    first = True
    while True:
        try:
            obj.do_handshake()
            sock.sendall(outgoing.read())
            return obj, incoming, outgoing
        except ssl.SSLWantReadError:
            data = outgoing.read()
            sock.sendall(prefix + data if first else data)
            first = False
            chunk = sock.recv(65536)
            assert chunk, "the broker closed the connection inside the handshake"
            incoming.write(chunk)


def test_proxy_header_and_client_hello_in_one_segment(lab: TlsLab) -> None:
    host, port = lab.addr("ssl-pp")
    header = build(("203.0.113.44", 4444), (HOST, 8883))
    ctx = lab.pki.client_context("one-segment")
    with socket.socket() as s:
        s.settimeout(3)
        s.bind(("127.0.55.70", 0))
        s.connect((host, port))
        obj, incoming, outgoing = _bio_handshake(s, ctx, header, "mqtt.example.com")
        obj.write(mqtt_connect("one-segment"))
        s.sendall(outgoing.read())
        answer = b""
        while len(answer) < 4:
            chunk = s.recv(65536)
            assert chunk
            incoming.write(chunk)
            try:
                answer += obj.read(65536)
            except ssl.SSLWantReadError:
                continue
        assert answer[:1] == b"\x20" and answer[3] == 0  # CONNACK, accepted
    info = lab.record("one-segment")
    assert info.peername == "203.0.113.44:4444"
    assert info.tls is not None and info.tls.cert is not None
    assert info.tls.cert.cn == "one-segment" and info.tls.server_name == "mqtt.example.com"
