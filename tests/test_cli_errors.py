"""The command line on broken inputs: one line per problem with where and what is allowed, exit
status 2, never a traceback; ``expect`` is checked (✗ and exit 1 on a mismatch).

Each case runs ``python -m realip`` in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOOD = (ROOT / "realip" / "data" / "topologies" / "ws-multi-recursive.yaml").read_text()


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("REALIP_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "realip", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env)


BROKEN = {
    "yaml-syntax": ("client: {addr: 1.2.3.4\nhops: [\n", "YAML syntax"),
    "empty": ("", "a scenario is a mapping"),
    "a-list": ("- 1\n- 2\n", "a scenario is a mapping"),
    "top-level-typo": (GOOD.replace("hops:", "hop:"), "did you mean 'hops'"),
    "quoted-yes": (GOOD.replace("real_ip_recursive: true", 'real_ip_recursive: "yes"'),
                   "hops[2].real_ip_recursive"),
    "bad-cidr": (GOOD.replace("172.16.0.0/24", "172.16.0.0/33"), "invalid prefix length"),
    "bad-address": (GOOD.replace("addr: 172.16.0.200", "addr: 203.0.113.500"),
                    "hops[1].addr"),
    "missing-addr": (GOOD.replace("  addr: 172.16.0.200\n", ""), "needs 'addr'"),
    "missing-name": (GOOD.replace("  name: lb2\n", ""), "needs 'name'"),
    "port-text": (GOOD.replace("port: 50412", 'port: "1883x"'), "client.port"),
    "port-range": (GOOD.replace("port: 50412", "port: 99999"), "out of range"),
    "duplicate-name": (GOOD.replace("name: lb2", "name: lb1"), "already hops[0]'s"),
    "header-number": (GOOD.replace("- '39872'", "- 39872"), "quote it"),
    "hops-not-a-list": (GOOD.split("hops:")[0] + "hops: lb1\nbroker: {addr: 10.0.0.2}\n",
                        "hops"),
    "hop-a-string": (GOOD.split("hops:")[0] + "hops: [lb1]\nbroker: {addr: 10.0.0.2}\n",
                     "hops[0]"),
    "listener": (GOOD.replace("listener: ws", "listener: websocket"), "broker.listener"),
    "send-proxy-v3": ("client: {addr: 192.0.2.1, port: 1}\nhops: [{kind: haproxy, name: lb1, "
                      "addr: 10.0.0.1, port: 1883, send_proxy: v3}]\nbroker: {addr: 10.0.0.2}\n",
                      "HAProxy sends"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_simulate_refuses_a_broken_scenario_in_one_block(case: str, tmp_path: Path) -> None:
    text, needle = BROKEN[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    out = _run("simulate", str(path))
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr + out.stdout
    assert needle in out.stderr
    assert str(path) in out.stderr  # where: the file (and line:column when known)
    assert len(out.stderr.splitlines()) <= 12


def test_the_location_is_file_line_column(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("real_ip_recursive: true", 'real_ip_recursive: "yes"'))
    out = _run("simulate", str(path))
    line = next(i for i, x in enumerate(GOOD.splitlines(), 1) if "real_ip_recursive: true" in x)
    assert out.stderr.strip() == (
        f"realip simulate: {path}:{line}:22: hops[2].real_ip_recursive: 'yes' is not an nginx "
        "flag (allowed: on | off)")


def test_missing_files_and_unknown_names(tmp_path: Path) -> None:
    out = _run("simulate", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "cannot read the file" in out.stderr
    out = _run("simulate", "ws-multi-recursiv")
    assert out.returncode == 2 and "did you mean 'ws-multi-recursive'" in out.stderr
    out = _run("lab", "run", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("port: 50412", "port: 99999"))
    out = _run("audit", str(bad))
    assert out.returncode == 2 and "client.port" in out.stderr and "Traceback" not in out.stderr
    assert _run("audit", "tcp-single-tier", "--no-fix", cwd=tmp_path).returncode in (0, 1)


def test_lab_run_refuses_a_broken_scenario_before_starting_anything(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("port: 50412", "port: 99999"))
    out = _run("lab", "run", str(path), "--quiet")
    assert out.returncode == 2 and "client.port" in out.stderr
    assert "Traceback" not in out.stderr


def test_expect_is_checked(tmp_path: Path) -> None:
    ok = _run("simulate", "ws-multi-recursive", cwd=tmp_path)  # a name, from any directory
    assert ok.returncode == 0
    assert ok.stdout.strip().endswith(
        "✓ ws-multi-recursive: expect 1.94.170.163:39872, got 1.94.170.163:39872")
    path = tmp_path / "wrong.yaml"
    path.write_text(GOOD.replace("expect: 1.94.170.163:39872", "expect: '172.16.0.116:39872'"))
    bad = _run("simulate", str(path))
    assert bad.returncode == 1
    assert ("✗ ws-multi-recursive: expect 172.16.0.116:39872, but got 1.94.170.163:39872"
            in bad.stdout)
    closed = _run("simulate", "tcp-stacked-headers")  # expect: null holds: the connection closes
    assert closed.returncode == 0 and "✓ tcp-stacked-headers: expect a closed connection" in \
        closed.stdout


def test_warnings_go_to_stderr_and_do_not_fail(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(GOOD.replace("172.16.0.0/24", "172.16.0.1/24"))
    out = _run("simulate", str(path))
    assert out.returncode == 0
    assert "warning: hops[2].set_real_ip_from[0]: low address bits of 172.16.0.1/24 are " \
           "meaningless" in out.stderr


def test_scenarios_lists_the_bundled_names(tmp_path: Path) -> None:
    out = _run("scenarios", cwd=tmp_path)
    assert out.returncode == 0 and "ws-multi-recursive" in out.stdout


def test_decode_bad_hex_is_one_line() -> None:
    out = _run("decode", "zz")
    assert out.returncode != 0 and "Traceback" not in out.stderr and "not hexadecimal" in \
        out.stderr


AEDES_LB = """http { server { listen 8083; location /mqtt { proxy_pass http://10.0.0.2:8083;
  proxy_set_header X-Forwarded-For $remote_addr; } } }
"""


@pytest.mark.parametrize(("options", "where", "needle"), [
    ('{\n  "trustProxy": "false",\n  "ws": true\n}\n', 2, "give true or false"),
    ("module.exports = {\n  ws: true,\n  trustproxy: true,\n}\n", 3,
     "did you mean trustProxy?); allowed: trustProxy, ws,"),
    ("{\n  ws: true\n  trustProxy: true\n}\n", 3, "expected ',' or '}'"),
    ("{\n  ws: true,\n  https: { key: k },\n}\n", 3, "an HTTPS listener is not modelled"),
    ("{ trustProxy: true }\n", 1, "a TCP server (no ws: true), but the client connects over ws"),
])
def test_aedes_options_errors_are_one_line_with_file_and_line(tmp_path: Path, options: str,
                                                             where: int, needle: str) -> None:
    (tmp_path / "lb.conf").write_text(AEDES_LB)
    path = tmp_path / "aedes.options.js"
    path.write_text(options)
    out = _run("audit", "--config", f"{tmp_path / 'lb.conf'}@10.0.0.1", "--transport", "ws",
               "--broker", "aedes", "--broker-conf", str(path))
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr + out.stdout
    assert out.stderr.startswith(f"realip audit: aedes.options.js:{where}: ")
    assert needle in out.stderr
    assert len(out.stderr.splitlines()) == 1
