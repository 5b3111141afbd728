"""Every configuration in data/ is one the real nginx and HAProxy accept."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.real
@pytest.mark.parametrize("path", sorted((DATA / "nginx").glob("*.conf")), ids=lambda p: p.stem)
def test_nginx_accepts(path: Path, nginx_bin: str, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    head = f"events {{}}\nerror_log {tmp_path}/logs/error.log;\npid {tmp_path}/nginx.pid;\n"
    text = path.read_text()
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
def test_haproxy_accepts(path: Path, haproxy_bin: str) -> None:
    done = subprocess.run([haproxy_bin, "-c", "-f", str(path)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
