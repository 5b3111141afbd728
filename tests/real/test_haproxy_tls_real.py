"""The installed HAProxy, terminating TLS, still writes the headers of haproxy_2.6_tls.json.

A representative subset of the recorded cases (each verify mode, with and without a client
certificate, a certificate from an untrusted CA (alone, or with its root), a UTF-8 CN, a CN with
CR LF NUL, RSA and EC server keys, TLS 1.2 and 1.3, a resumed session, ALPN + AUTHORITY +
UNIQUE_ID + CRC32C, refused handshakes, a PROXY header sent inside TLS, the wss http frontend)
is run again with :mod:`tests.real._haproxy_tls` — new certificates, new ports — and every field
that does not vary between runs must equal the vector.  The fields that do vary (ports, so the
CRC32C value; the unique-id) are checked for their form instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from realip.proxy_protocol import decode, encode

from . import _haproxy_tls as rec

pytestmark = pytest.mark.real

VECTORS = json.loads((Path(__file__).resolve().parent.parent / "vectors" / "haproxy_2.6_tls.json")
                     .read_text(encoding="utf-8"))
RECORDED = {c["name"]: c for c in VECTORS["cases"]}

SUBSET = [
    "opt-ssl-all_none_rsa/cert-good/tls1.3",
    "opt-ssl-all_optional_rsa/cert-none/tls1.2",
    "opt-ssl-all_optional_ec/cert-good/tls1.3",
    "opt-ssl-all_optional_rsa/cert-badca/tls1.3",
    "opt-ssl-all_required_rsa/cert-none/tls1.2",
    "opt-ssl-all_required_rsa/cert-utf8/tls1.2",
    "opt-ssl-all_optional_rsa/cert-ctrl/tls1.3",
    "opt-ssl-all_required-ignore_rsa/cert-badca/tls1.3",
    "v2-ssl-cn_optional-ignore_rsa/cert-badca/tls1.2",
    "opt-ssl-all_optional-ca-ignore_rsa/cert-badchain/tls1.2",
    "v2-ssl_optional_rsa/cert-good/tls1.3",
    "opt-everything_optional_rsa-alpn-mqtt/cert-good/tls1.3/alpn-mqtt",
    "opt-ssl-all_optional_rsa/cert-good/tls1.3/resumed",
    "opt-ssl-all_optional_rsa/cert-none/tls1.3/forged-proxy",
    "http_optional-ignore_rsa/cert-good/tls1.3/forged",
]
CASES = {c.name: c for c in rec.all_cases() if c.name in SUBSET}

#: ``%{+X}o %ci:%cp_%fi:%fp_%Ts_%rt:%pid`` in upper-case hex.
UNIQUE_ID = re.compile(r"7F003403:[0-9A-F]{4}_7F003401:[0-9A-F]{4}_[0-9A-F]{8}_[0-9A-F]{4}:"
                       r"[0-9A-F]+")


def _major_minor(text: str) -> str:
    m = re.search(r"(\d+\.\d+)\.", text)
    return m.group(1) if m else text


def stable(entry: dict[str, Any], compare_cipher: bool) -> dict[str, Any]:
    """The fields of a case that must not change between runs."""
    out: dict[str, Any] = {
        "client": entry["client"],
        "outcome": dict(entry["outcome"]),
        "after_hex": entry["after_hex"],
        "header": entry["header_hex"] is not None,
        "log": [_log_shape(line) for line in entry["haproxy_log"]],
    }
    d = entry.get("decoded")
    if d is not None:
        d = json.loads(json.dumps(d))  # a copy
        if "source" in d:
            d["source"] = d["source"].rsplit(":", 1)[0]
            d["destination"] = d["destination"].rsplit(":", 1)[0]
        if d.get("crc32c"):
            d["crc32c"] = d["crc32c"]["valid"]
        if "unique_id" in d:
            text = d.pop("unique_id_text")
            assert UNIQUE_ID.fullmatch(text), text
            del d["unique_id"], d["length"]
        if not compare_cipher:
            out["outcome"].pop("negotiated_cipher")
            d.get("ssl", {}).pop("cipher", None)
        out["decoded"] = d
    return out


def _log_shape(line: str) -> str:
    """A log line without its port, date and timers: what it says about the connection."""
    line = re.sub(r"^127\.0\.52\.3:\d+ \[[^\]]+\] ", "", line)
    return re.sub(r" [-\d/]+ [-\d]+ .*$", "", line) if "~ " in line else line


@pytest.fixture(scope="module")
def live(haproxy_bin: str, haproxy_version: str, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, Any]:
    if _major_minor(haproxy_version + ".") != "2.6":
        pytest.skip(f"the vectors are HAProxy 2.6's; this is {haproxy_version}")
    doc = rec.record(haproxy_bin, [CASES[n] for n in SUBSET], tmp_path_factory.mktemp("haptls"))
    return doc


def test_subset_is_representative() -> None:
    assert len(SUBSET) >= 8 and set(CASES) == set(SUBSET) and set(SUBSET) <= set(RECORDED)
    modes = {n.split("/")[0].split("_")[1] for n in SUBSET}
    assert {"none", "optional", "required", "optional-ignore", "required-ignore"} <= modes
    certs = {n.split("/")[1] for n in SUBSET}
    assert {"cert-none", "cert-good", "cert-badca", "cert-utf8", "cert-badchain"} <= certs


@pytest.mark.parametrize("name", SUBSET)
def test_live_header_equals_the_vector(live: dict[str, Any], name: str) -> None:
    got = {c["name"]: c for c in live["cases"]}[name]
    want = RECORDED[name]
    same_ssl = _major_minor(live["openssl_running"]) == _major_minor(VECTORS["openssl_running"])
    assert stable(got, same_ssl) == stable(want, same_ssl)
    if got["header_hex"]:
        header = bytes.fromhex(got["header_hex"])
        h = decode(header)
        assert h is not None and encode(h) == header
        assert str(h.source) == got["decoded"]["source"]
        ssl = h.ssl
        if ssl is not None:
            assert ssl.cn == want["decoded"]["ssl"].get("cn")
            assert (int(ssl.client), ssl.verify) == (want["decoded"]["ssl"]["client"],
                                                     want["decoded"]["ssl"]["verify"])
