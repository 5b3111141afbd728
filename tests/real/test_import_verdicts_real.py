"""The importers' verdicts are the real programs' verdicts: every configuration of
tests/vectors/import_corpus.yaml that realip refuses, ``nginx -t`` (1.22.1) or ``haproxy -c``
(2.6.12) refuses too, and every one realip imports, the real program accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from realip import ConfigurationError
from realip.importers import from_haproxy_cfg, from_nginx_conf

CORPUS = yaml.safe_load((Path(__file__).parents[1] / "vectors" / "import_corpus.yaml").read_text())


def _ours(program: str, case: dict[str, Any]) -> bool:
    try:
        if program == "nginx":
            from_nginx_conf(case["text"], files=case.get("files"), addr="10.0.0.9")
        else:
            from_haproxy_cfg(case["text"], addr="10.0.0.9")
    except ConfigurationError:
        return False
    return True


@pytest.mark.real
@pytest.mark.parametrize("case", CORPUS["nginx"], ids=[c["id"] for c in CORPUS["nginx"]])
def test_nginx_t_agrees(case: dict[str, Any], nginx_bin: str, tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    head = f"events {{}}\nerror_log {tmp_path}/logs/error.log;\npid {tmp_path}/nginx.pid;\n"
    if "stream {" in case["text"]:
        head = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n" + head
    for rel, body in (case.get("files") or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(body)
    conf = tmp_path / "nginx.conf"
    conf.write_text(head + case["text"])
    done = subprocess.run([nginx_bin, "-t", "-p", str(tmp_path), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)
    theirs = done.returncode == 0
    assert theirs == (case["verdict"] == "ok"), done.stderr
    assert _ours("nginx", case) == theirs, done.stderr


@pytest.mark.real
@pytest.mark.parametrize("case", CORPUS["haproxy"], ids=[c["id"] for c in CORPUS["haproxy"]])
def test_haproxy_c_agrees(case: dict[str, Any], haproxy_bin: str, tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("defaults\n  timeout client 5s\n  timeout server 5s\n  timeout connect 5s\n"
                   + case["text"])
    done = subprocess.run([haproxy_bin, "-c", "-f", str(cfg)], capture_output=True, text=True,
                          timeout=30)
    theirs = done.returncode == 0
    assert theirs == (case["verdict"] == "ok"), done.stdout + done.stderr
    assert _ours("haproxy", case) == theirs, done.stdout + done.stderr
