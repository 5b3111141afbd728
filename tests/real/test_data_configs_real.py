"""Every configuration in data/ is one the real nginx and HAProxy accept (the TLS ones with
certificate files made at run time where they name /etc/realip/tls/…)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"
TLS_DIR = "/etc/realip/tls"


def _with_tls_files(text: str, tmp_path: Path) -> str:
    """*text* with /etc/realip/tls/ replaced by a folder holding what its names ask for: the
    hop's certificate (<hop>.crt, <hop>.key, both in <hop>.pem) and CAs by label (<ca>.pem)."""
    if TLS_DIR not in text:
        return text
    import re

    trustme = pytest.importorskip("trustme")
    folder = tmp_path / "tls"
    folder.mkdir()
    cas: dict[str, object] = {}
    for name in sorted(set(re.findall(re.escape(TLS_DIR) + r"/([A-Za-z0-9_.-]+)", text))):
        stem, ext = name.rsplit(".", 1)
        if ext in ("crt", "key") or (ext == "pem" and not stem.endswith("-ca")):
            issued = cas.setdefault("servers-ca", trustme.CA()).issue_cert(  # type: ignore[attr-defined]
                "mqtt.example.com")
            (folder / f"{stem}.crt").write_bytes(issued.cert_chain_pems[0].bytes())
            (folder / f"{stem}.key").write_bytes(issued.private_key_pem.bytes())
            (folder / f"{stem}.pem").write_bytes(issued.cert_chain_pems[0].bytes()
                                                 + issued.private_key_pem.bytes())
        else:
            cas.setdefault(stem, trustme.CA()).cert_pem.write_to_path(  # type: ignore[attr-defined]
                str(folder / name))
    return text.replace(TLS_DIR, str(folder))


@pytest.mark.real
@pytest.mark.parametrize("path", sorted((DATA / "nginx").glob("*.conf")), ids=lambda p: p.stem)
def test_nginx_accepts(path: Path, nginx_bin: str, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    head = f"events {{}}\nerror_log {tmp_path}/logs/error.log;\npid {tmp_path}/nginx.pid;\n"
    text = _with_tls_files(path.read_text(), tmp_path)
    if "stream {" in text:
        head = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n" + head
    conf = tmp_path / "nginx.conf"
    conf.write_text(head + text)
    done = subprocess.run([nginx_bin, "-t", "-p", str(tmp_path), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


@pytest.mark.real
@pytest.mark.parametrize("path", sorted((DATA / "haproxy").glob("*.cfg")), ids=lambda p: p.stem)
def test_haproxy_accepts(path: Path, haproxy_bin: str, tmp_path: Path) -> None:
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(_with_tls_files(path.read_text(), tmp_path))
    done = subprocess.run([haproxy_bin, "-c", "-f", str(conf)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
