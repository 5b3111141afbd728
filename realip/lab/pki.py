"""A test PKI for the live lab, made at run time: CAs by label, server and client certificates,
PEM files for nginx and HAProxy, and :class:`ssl.SSLContext` factories.

Nothing here is committed or written into the repository: every key is generated when it is
first asked for (with :mod:`cryptography`), kept in memory, and written as PEM into a temporary
directory that :class:`LabPKI` owns and removes on :meth:`LabPKI.close`.

Labels are what the simulator calls CAs (:class:`realip.tls.Certificate` ``ca``, the broker's
``cacertfile``): ``servers-ca`` signs the servers' certificates, ``clients-ca`` the clients',
and any other label (``other-ca``) makes a CA nobody trusts by default — the source of a *bad*
client certificate.  :meth:`LabPKI.label_of` says which lab CA signed a certificate, so a
listener can record ``Certificate(cn, ca=label)`` from a real handshake.

Key types: ``ec`` (P-256, ECDSA with SHA-256) or ``rsa`` (2048 bits, SHA-256) — the PROXY v2
SSL sub-TLVs ``sig_alg`` / ``key_alg`` a terminating HAProxy sends describe its own
certificate, so :attr:`Issued.sig_alg` and :attr:`Issued.key_alg` give them as OpenSSL names.

The server contexts follow EMQX's ``ssl_options``: ``verify_none`` asks for no client
certificate; ``verify_peer`` asks for one and refuses one that does not chain to the
``cacertfile`` CA; ``fail_if_no_peer_cert`` also refuses a client that sends none.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ConfigurationError

__all__ = ["Issued", "KeyType", "LabCA", "LabPKI", "common_name"]

KeyType = Literal["ec", "rsa"]
Verify = Literal["verify_none", "verify_peer"]
_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_ORG = "realip lab"


def _new_key(key_type: KeyType) -> _PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ConfigurationError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def common_name(cert: x509.Certificate | bytes) -> str | None:
    """The subject CN of *cert* (a certificate or its DER bytes), None when it has none."""
    if isinstance(cert, bytes | bytearray):
        cert = x509.load_der_x509_certificate(bytes(cert))
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


def _alg_names(key: _PrivateKey) -> tuple[str, str]:
    """(sig_alg, key_alg) as HAProxy's ``ssl_fc_...``/``cert-sig``/``cert-key`` write them
    (OpenSSL's short names: ``ecdsa-with-SHA256`` / ``EC256``, ``RSA-SHA256`` / ``RSA2048``)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA-SHA256", f"RSA{key.key_size}"
    return "ecdsa-with-SHA256", f"EC{key.curve.key_size}"


@dataclass(frozen=True)
class Issued:
    """One certificate the lab issued: the certificate, its private key, its CA's label, and
    the PEM files written for it (``cert_file`` holds the certificate, ``chain_file`` the
    certificate then its CA, ``key_file`` the key, ``pem_file`` chain + key as HAProxy's
    ``crt`` wants)."""

    label: str  #: the CA that signed it
    name: str  #: the CN (client) or first host name (server)
    cert: x509.Certificate
    key: _PrivateKey
    cert_file: Path
    chain_file: Path
    key_file: Path
    pem_file: Path

    @property
    def cn(self) -> str | None:
        """The subject CN."""
        return common_name(self.cert)

    @property
    def der(self) -> bytes:
        """The certificate in DER (what a TLS handshake carries)."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def sig_alg(self) -> str:
        """The signature algorithm, as the PROXY v2 ``SSL_SIG_ALG`` sub-TLV names it."""
        return _alg_names(self.key)[0]

    @property
    def key_alg(self) -> str:
        """The key algorithm, as the PROXY v2 ``SSL_KEY_ALG`` sub-TLV names it."""
        return _alg_names(self.key)[1]


@dataclass(frozen=True)
class LabCA:
    """A lab certificate authority: its label, certificate, key and PEM file."""

    label: str
    cert: x509.Certificate
    key: _PrivateKey
    cert_file: Path

    def issued(self, cert: x509.Certificate) -> bool:
        """Whether this CA signed *cert* (its issuer and its signature)."""
        if cert.issuer != self.cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True


class LabPKI:
    """CAs by label and the certificates they issue, made on first use (see the module
    docstring).  ``with LabPKI() as pki:`` removes the temporary directory at the end.

    *key_type* is the default for every key (``ec`` or ``rsa``); *server_names* the host names
    every server certificate also covers (beside the hosts it is issued for); *days* how long
    certificates are valid."""

    def __init__(self, *, key_type: KeyType = "ec",
                 server_names: tuple[str, ...] = ("localhost", "mqtt.example.com"),
                 days: int = 2) -> None:
        if key_type not in ("ec", "rsa"):
            raise ConfigurationError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")
        self.key_type: KeyType = key_type
        self.server_names = tuple(server_names)
        self.days = days
        # a fresh private directory outside the repository (mkdtemp: mode 0700)
        self.directory = Path(tempfile.mkdtemp(prefix="realip-pki-"))
        repo = Path(__file__).resolve().parents[2]
        if (repo / ".git").exists() and repo in self.directory.resolve().parents:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise ConfigurationError(f"the temporary directory {self.directory} is inside the "
                                     f"repository {repo} (TMPDIR?): keys are never written "
                                     "there")
        # removed even if close() is never called (a notebook kernel that ends, a crash)
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.directory), True)
        self._cas: dict[str, LabCA] = {}
        self._issued: dict[tuple[str, str, str, KeyType], Issued] = {}
        self._count = 0
        self._closed = False

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Remove every file written (keys included); the PKI cannot be used afterwards."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> LabPKI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this LabPKI is closed (its files are gone)")

    def _write(self, name: str, data: bytes) -> Path:
        self._count += 1
        safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_"
                       for ch in name)[:48]
        path = self.directory / f"{self._count:03d}-{safe}"
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def _validity(self) -> tuple[datetime.datetime, datetime.datetime]:
        now = datetime.datetime.now(datetime.timezone.utc)
        return now - datetime.timedelta(hours=1), now + datetime.timedelta(days=self.days)

    # -- CAs -----------------------------------------------------------------------------------
    def ca(self, label: str) -> LabCA:
        """The CA called *label* (made on first use, subject ``CN=realip lab <label>``)."""
        self._check_open()
        got = self._cas.get(label)
        if got is not None:
            return got
        if not label or "/" in label:
            raise ConfigurationError(f"a CA label must be a non-empty name, not {label!r}")
        key = _new_key(self.key_type)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"{_ORG} {label}")])
        start, end = self._validity()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        ca = LabCA(label, cert, key, self._write(f"ca-{label}.pem", _cert_pem(cert)))
        self._cas[label] = ca
        return ca

    def ca_file(self, label: str) -> Path:
        """The PEM file of CA *label* (nginx ``ssl_client_certificate``, HAProxy ``ca-file``,
        EMQX ``cacertfile``)."""
        return self.ca(label).cert_file

    def label_of(self, cert: x509.Certificate | bytes) -> str | None:
        """The label of the lab CA that signed *cert* (a certificate or DER), None if none."""
        if isinstance(cert, bytes | bytearray):
            cert = x509.load_der_x509_certificate(bytes(cert))
        for label, ca in self._cas.items():
            if ca.issued(cert):
                return label
        return None

    # -- certificates --------------------------------------------------------------------------
    def _issue(self, kind: Literal["server", "client"], label: str, name: str,
               hosts: tuple[str, ...], key_type: KeyType | None) -> Issued:
        self._check_open()
        kt: KeyType = key_type or self.key_type
        cache = (kind, label, "\0".join((name, *hosts)), kt)
        got = self._issued.get(cache)
        if got is not None:
            return got
        ca = self.ca(label)
        key = _new_key(kt)
        start, end = self._validity()
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       ca.key.public_key()), critical=False))
        if kind == "server":
            sans: list[x509.GeneralName] = []
            for host in dict.fromkeys(hosts):  # in order, once each
                try:
                    sans.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    sans.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            usage = ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        cert = builder.sign(ca.key, hashes.SHA256())
        stem = f"{kind}-{label}-{name}-{kt}"
        cert_pem, key_pem = _cert_pem(cert), _key_pem(key)
        chain = cert_pem + _cert_pem(ca.cert)
        issued = Issued(label, name, cert, key, self._write(f"{stem}.crt", cert_pem),
                        self._write(f"{stem}.chain.crt", chain),
                        self._write(f"{stem}.key", key_pem),
                        self._write(f"{stem}.pem", chain + key_pem))
        self._issued[cache] = issued
        return issued

    def server(self, host: str, *hosts: str, ca: str = "servers-ca",
               key_type: KeyType | None = None) -> Issued:
        """A server certificate for *host* (CN and first SAN) and *hosts*, plus
        :attr:`server_names`; IP addresses become IP SANs, names DNS SANs."""
        return self._issue("server", ca, host, (host, *hosts, *self.server_names), key_type)

    def client(self, cn: str, ca: str = "clients-ca", key_type: KeyType | None = None) -> Issued:
        """A client certificate whose subject CN is *cn* (any UTF-8 text), signed by *ca*."""
        if not cn:
            raise ConfigurationError("a client certificate needs a CN")
        return self._issue("client", ca, cn, (), key_type)

    def server_pem(self, host: str, *hosts: str, key_type: KeyType | None = None) -> Path:
        """HAProxy's ``crt`` file for *host*: certificate, its CA, then the key."""
        return self.server(host, *hosts, key_type=key_type).pem_file

    def server_cert_file(self, host: str, *hosts: str, key_type: KeyType | None = None) -> Path:
        """nginx's ``ssl_certificate`` for *host* (certificate and its CA)."""
        return self.server(host, *hosts, key_type=key_type).chain_file

    def server_key_file(self, host: str, *hosts: str, key_type: KeyType | None = None) -> Path:
        """nginx's ``ssl_certificate_key`` for *host*."""
        return self.server(host, *hosts, key_type=key_type).key_file

    # -- contexts ------------------------------------------------------------------------------
    def server_context(self, host: str, *hosts: str, verify: Verify = "verify_none",
                       fail_if_no_peer_cert: bool = False, cacertfile: str = "clients-ca",
                       key_type: KeyType | None = None,
                       alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
        """A server context for *host* (and *hosts*) with EMQX's ``ssl_options`` semantics:
        ``verify_none`` requests no client certificate; ``verify_peer`` requests one and fails
        the handshake on one that does not chain to *cacertfile* (a CA label), and with
        *fail_if_no_peer_cert* also when none is sent.  TLS 1.2 and 1.3."""
        if verify not in ("verify_none", "verify_peer"):
            raise ConfigurationError(f"verify must be verify_none or verify_peer, not "
                                     f"{verify!r}")
        issued = self.server(host, *hosts, key_type=key_type)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(issued.chain_file, issued.key_file)
        if verify == "verify_peer":
            ctx.verify_mode = ssl.CERT_REQUIRED if fail_if_no_peer_cert else ssl.CERT_OPTIONAL
            ctx.load_verify_locations(cafile=self.ca_file(cacertfile))
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx

    def client_context(self, cert: str | None = None, *, cert_ca: str = "clients-ca",
                       trust: str = "servers-ca", check_hostname: bool = True,
                       key_type: KeyType | None = None,
                       version: Literal["TLSv1.2", "TLSv1.3"] | None = None) -> ssl.SSLContext:
        """A client context trusting CA *trust*, presenting the client certificate of CN
        *cert* (signed by *cert_ca*) when asked, or none; *version* pins the TLS version."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = check_hostname
        ctx.load_verify_locations(cafile=self.ca_file(trust))
        if version is not None:
            v = ssl.TLSVersion.TLSv1_3 if version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
            ctx.minimum_version = ctx.maximum_version = v
        if cert is not None:
            issued = self.client(cert, cert_ca, key_type)
            ctx.load_cert_chain(issued.cert_file, issued.key_file)
        return ctx
