"""realip.audit: every verdict agrees with its own trace, every fix it prints works when
applied, and the CLI's exit status is what an operator's CI needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from realip.audit import BATTERY_CLAIM, audit, battery
from realip.topology import load, simulate

ROOT = Path(__file__).resolve().parents[1]
PATHS = sorted((ROOT / "data" / "topologies").glob("*.yaml"))


def _host(peername: str) -> str:
    return peername.rpartition(":")[0]


def test_the_battery_is_data() -> None:
    attacks = battery(load(str(ROOT / "data" / "topologies" / "ws-single-tier.yaml")))
    names = [a.name for a in attacks]
    assert len(names) == len(set(names)) >= 25
    families = {a.family for a in attacks}
    assert {"xff", "x-real-ip", "forwarded", "port", "proxy", "dos"} <= families
    for a in attacks:
        assert a.headers or a.proxy is not None
        assert a.claim is not None or a.claim_port is not None or a.family == "dos" or \
            (a.family == "identity" and a.claim_username is not None)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_verdict_agrees_with_its_trace(path: Path) -> None:
    report = audit(load(str(path)), reach_inner=True, fix=False)
    assert report.rows
    attacker = report.attacker.addr
    for row in report.rows:
        rec = row.trace.peername
        assert row.recorded == rec
        if row.verdict == "REFUSED":
            assert rec is None
        elif row.verdict == "SAFE":
            assert rec is not None and _host(rec) == attacker
        elif row.verdict == "SPOOFED":
            assert rec is not None
            forged = {row.attack.claim, *row.attack.decoys}
            forged |= {f"::ffff:{a}" for a in forged}
            host = _host(rec).split("%")[0]
            if host.count(":") == 1 and "." in host:  # a verbatim "ip:port" entry (aedes)
                host = host.split(":")[0]
            assert host in forged or \
                rec.endswith(f":{row.attack.claim_port}") or (
                    row.attack.claim_username is not None and
                    row.trace.username == row.attack.claim_username)
            assert row.culprit in [v.name for v in row.trace.views]
        elif row.verdict == "LOST":
            assert rec is not None and _host(rec) != attacker


@pytest.mark.parametrize("reach_inner", [False, True], ids=["edge", "reach-inner"])
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_printed_fix_closes_its_row_and_keeps_honest_clients(path: Path,
                                                                   reach_inner: bool) -> None:
    from realip.audit import _run, _with  # the same application the report describes

    topo = load(str(path))
    report = audit(topo, reach_inner=reach_inner)
    honest = simulate(report.topology).peername
    for row in report.rows:
        if row.fix is None:
            continue
        fixed = report.topology
        for f in row.fix.fixes:
            fixed = _with(fixed, f)
        after = _run(fixed, row.attack, row.position)
        assert after.peername is None or _host(after.peername) not in \
            {BATTERY_CLAIM, *row.attack.decoys}
        if honest is not None and _host(honest) == report.attacker.addr:
            assert simulate(fixed).peername == honest
        assert row.fix.words and row.fix.diff
    if report.reaudit is not None:  # every fix together never makes it worse
        assert report.reaudit.count("SPOOFED") + report.reaudit.count("DOWN") < \
            report.count("SPOOFED") + report.count("DOWN")


def test_the_article_mistake_and_its_fix() -> None:
    """An edge that appends to X-Forwarded-For lets any client choose EMQX's leftmost entry;
    the fix is to override the header at the edge — shown as a diff of nginx.conf."""
    report = audit(load(str(ROOT / "data" / "topologies" / "ws-edge-appends.yaml")))
    row = next(r for r in report.rows if r.attack.name == "xff-one")
    assert row.verdict == "SPOOFED" and row.recorded is not None
    assert _host(row.recorded) == BATTERY_CLAIM
    assert row.fix is not None and row.fix.after == "SAFE"
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in row.fix.words
    assert '+            proxy_set_header X-Forwarded-For "$remote_addr";' in row.fix.diff
    assert not report.ok
    assert report.reaudit is not None and report.reaudit.ok


def test_a_fix_of_four_changes_when_no_pair_does_it() -> None:
    """ws-edge-appends, an attacker that dials lb2 itself: lb2 appends to whatever it is sent
    and EMQX takes the leftmost X-Forwarded-For.  No one or two changes close it and keep an
    honest client named (the best pair names lb2: LOST); the best-first search finds four —
    lb1 says who connected in X-Real-IP, lb2 believes that from lb1 only and passes on its
    own view, EMQX reads X-Real-IP — after which the forgery is SAFE."""
    from realip.audit import _run, _with

    report = audit(load(str(ROOT / "data" / "topologies" / "ws-edge-appends.yaml")),
                   reach_inner=True)
    inner = [r for r in report.rows if r.position.index == 1 and r.verdict == "SPOOFED"
             and r.attack.family == "xff"]
    assert len(inner) == 13
    for row in inner:
        assert row.fix is not None and row.fix.after == "SAFE"
        assert sorted(f.words for f in row.fix.fixes) == [
            'listeners.ws.default.websocket.proxy_address_header = "X-Real-IP"',
            "proxy_set_header X-Real-IP $remote_addr;",
            "proxy_set_header X-Real-IP $remote_addr;",
            "set_real_ip_from 172.16.0.116;  # only the hop before it"]
        assert [f.node for f in row.fix.fixes].count("lb2") == 2
    fixed = report.topology
    for f in inner[0].fix.fixes if inner[0].fix else ():
        fixed = _with(fixed, f)
    after = _run(fixed, inner[0].attack, inner[0].position)
    assert after.peername is not None and _host(after.peername) == report.attacker.addr
    assert simulate(fixed).peername == simulate(report.topology).peername
    assert "fix 3 (closes 13 rows, then SAFE): emqx: " in report.table()
    # every fix together: nobody LOST (before this search: LOST 19); what is left is the port
    # an attacker at lb2 writes in X-Forwarded-Port — lb2 cannot tell it from lb1's (nginx's
    # realip takes no port from a header), and a change that names honest clients with a
    # proxy's port is no fix
    assert report.reaudit is not None and report.reaudit.count("LOST") == 0
    left = [(r.attack.name, r.position.index) for r in report.reaudit.rows
            if r.verdict in ("SPOOFED", "DOWN")]
    assert left == [("x-forwarded-port", 1)]


def test_a_recursive_hop_trusts_every_hop_before_it() -> None:
    """ws-trust-covers-clients (lb3: set_real_ip_from 0.0.0.0/0, recursive): trusting only
    lb2 would name lb1, trusting nobody names lb2 — the room proposes trusting exactly the
    hops before it, which closes the forgeries from the edge, from lb2 and from lb3 at once."""
    report = audit(load(str(ROOT / "data" / "topologies" / "ws-trust-covers-clients.yaml")),
                   reach_inner=True)
    xff = [r for r in report.rows if r.attack.family == "xff" and r.verdict == "SPOOFED"]
    assert {r.position.index for r in xff} == {0, 1, 2}
    for row in xff:
        assert row.fix is not None and row.fix.after == "SAFE", row.attack.name
        assert row.fix.words == ("lb3: set_real_ip_from 172.16.0.116; set_real_ip_from "
                                 "172.16.0.200;  # only the hops before it")
    assert report.reaudit is not None
    left = {(r.attack.name, r.position.index) for r in report.reaudit.rows
            if r.verdict in ("SPOOFED", "DOWN")}
    assert left == {("x-forwarded-port", 1), ("x-forwarded-port", 2)}  # see the test above


def test_rows_without_a_fix_do_not_stop_the_others() -> None:
    """aedes trusts every sender: nothing closes a forgery sent to aedes itself except turning
    trustProxy off, which loses the honest client — those rows say so; the edge rows are still
    fixed together (the re-audit leaves only the broker's own rows)."""
    report = audit(load(str(ROOT / "data" / "topologies" / "aedes-ws-behind-nginx-forged.yaml")),
                   reach_inner=True)
    direct = [r for r in report.rows if r.position.index == 1 and r.verdict == "SPOOFED"]
    assert direct and all(r.fix is None for r in direct)
    assert "no change of up to 4 settings the programs propose closes it" in report.table()
    assert report.reaudit is not None
    left = [r for r in report.reaudit.rows if r.verdict in ("SPOOFED", "DOWN")]
    assert left and all(r.position.index == 1 for r in left)


def test_a_correct_chain_is_safe_from_the_edge_and_isolation_is_the_fix_inside() -> None:
    topo = load(str(ROOT / "data" / "topologies" / "ws-single-tier.yaml"))
    edge = audit(topo)
    assert edge.ok and edge.count("SPOOFED") == 0 and edge.count("SAFE") > 0
    inner = audit(topo, reach_inner=True)
    direct = [r for r in inner.rows if r.position.index == len(topo.hops)]
    assert any(r.verdict == "SPOOFED" and r.culprit == topo.broker.name for r in direct)
    fix = next(r.fix for r in direct if r.verdict == "SPOOFED")
    assert fix is not None and fix.fixes[0].setting == "access_rules"
    assert inner.reaudit is not None and inner.reaudit.ok


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "realip", "audit", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def test_cli_exit_status_table_and_json() -> None:
    bad = _cli("ws-edge-appends")
    assert bad.returncode == 1 and "SPOOFED" in bad.stdout and "fix 1" in bad.stdout
    good = _cli("ws-single-tier")
    assert good.returncode == 0, good.stdout
    doc = json.loads(_cli("tcp-single-tier", "--reach-inner", "--json").stdout)
    assert doc["ok"] is False and doc["counts"]["SPOOFED"] > 0
    assert {r["verdict"] for r in doc["rows"]} <= {"SAFE", "SPOOFED", "REFUSED", "DOWN", "LOST"}
    missing = _cli("no-such-scenario")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


# ----------------------------------------------------------------------------------------------
# The user's own files: nginx.conf / haproxy.cfg via the importers, the broker from its own
# configuration (EMQX's HOCON, mosquitto.conf)

LB_APPENDS = """http {
  server { listen 8083;
    location /mqtt { proxy_pass http://10.0.0.2:8083; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; } } }
"""
EMQX_WS = """listeners.ws.default {
  bind = "0.0.0.0:8083"
  websocket.proxy_address_header = "X-Forwarded-For"
  websocket { proxy_port_header = "" }
  max_connections = 1000
}
"""


def test_audit_of_the_users_own_files(tmp_path: Path) -> None:
    (tmp_path / "lb.conf").write_text(LB_APPENDS)
    (tmp_path / "emqx.conf").write_text(EMQX_WS)
    done = _cli("--config", f"{tmp_path / 'lb.conf'}@10.0.0.1", "--transport", "ws",
                "--broker-conf", str(tmp_path / "emqx.conf"), "--client", "203.0.113.7:50000",
                "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    assert doc["honest"].startswith("203.0.113.7:")
    row = next(r for r in doc["rows"] if r["attack"]["name"] == "xff-one")
    assert row["verdict"] == "SPOOFED"
    assert row["fix"]["changes"][0]["words"] == "proxy_set_header X-Forwarded-For $remote_addr;"
    # the fixed file, as the diff says, is SAFE against the same battery
    fixed = LB_APPENDS.replace("$proxy_add_x_forwarded_for", "$remote_addr")
    (tmp_path / "lb.conf").write_text(fixed)
    again = _cli("--config", f"{tmp_path / 'lb.conf'}@10.0.0.1", "--transport", "ws",
                 "--broker-conf", str(tmp_path / "emqx.conf"))
    assert again.returncode == 0, again.stdout


def test_config_input_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "lb.conf").write_text(LB_APPENDS)
    (tmp_path / "bad.conf").write_text("listeners.ws.default { proxy_protocol = maybe }\n")
    for args in (["--config", str(tmp_path / "lb.conf")],  # no @ADDR for the first proxy
                 ["--config", f"{tmp_path / 'lb.conf'}@10.0.0.1", "--transport", "ws",
                  "--broker-conf", str(tmp_path / "bad.conf")],
                 ["--config", f"{tmp_path / 'missing.conf'}@10.0.0.1"],
                 []):
        done = _cli(*args)
        assert done.returncode == 2, (args, done.stdout)
        assert "Traceback" not in done.stderr and done.stderr.startswith("realip audit: ")


def test_emqx_hocon_and_mosquitto_conf_readers() -> None:
    from realip import ConfigurationError
    from realip.programs import broker_from_config

    settings, warnings = broker_from_config("emqx", EMQX_WS, listener="ws")
    assert settings["port"] == 8083 and settings["proxy_address_header"] == "X-Forwarded-For"
    assert settings["proxy_port_header"] == "" and settings["listener"] == "ws"
    assert any("max_connections" not in w for w in warnings) or warnings == ()
    tcp, _ = broker_from_config("emqx", "listeners.tcp.default { proxy_protocol = true\n"
                                "proxy_protocol_timeout = 5s\n"
                                'access_rules = ["allow 10.0.0.0/8", "deny all"] }',
                                listener="tcp")
    assert tcp["proxy_protocol"] is True and tcp["proxy_protocol_timeout"] == 5.0
    assert tcp["access_rules"] == ("allow 10.0.0.0/8", "deny all")
    with pytest.raises(ConfigurationError, match=r"listeners\.tcp\.default"):
        broker_from_config("emqx", "listeners.ws.default { }", listener="tcp")
    with pytest.raises(ConfigurationError, match="allow or deny"):
        broker_from_config("emqx", 'listeners.tcp.default { access_rules = ["permit all"] }')
    mq, _ = broker_from_config("mosquitto", "listener 1883\nenable_proxy_protocol 2\n")
    assert mq["enable_proxy_protocol"] == 2 and mq["port"] == 1883
    with pytest.raises(ConfigurationError, match=r"mosquitto\.conf:1"):
        broker_from_config("mosquitto", "enable_proxy_protocol 2\n")


AEDES_JS = """// the options next to createServer(aedes, options)
module.exports = {
  trustProxy: true,   /* read PROXY / X-Forwarded-For from any sender */
  'ws': true,
  protocolDecoder,    // aedes-protocol-decoder's own (the default)
  http: { maxHeaderSize: 16384, },
};
"""


def test_aedes_options_reader_json_and_javascript() -> None:
    from realip.programs import broker_from_config

    settings, warnings = broker_from_config("aedes", AEDES_JS, filename="aedes.js",
                                            transport="ws")
    assert settings == {"kind": "aedes", "name": "aedes", "listener": "ws",
                        "trust_proxy": True, "version": "1.2.0"}
    assert warnings == ()
    plain, _ = broker_from_config("aedes", '{ "trustProxy": false }')
    assert plain["listener"] == "tcp" and plain["trust_proxy"] is False
    for text in ("export default { trustProxy: true, ws: null };",
                 "const options = {\n  trustProxy: true,\n  protocolDecoder: "
                 "decoder.protocolDecoder,\n  extractSocketDetails: null,\n  tls: null\n}\n",
                 "{}"):
        got, _ = broker_from_config("aedes", text)
        assert got["listener"] == "tcp", text
    assert broker_from_config("aedes", "{}")[0]["trust_proxy"] is False  # the factory's default
    _, warned = broker_from_config("aedes", "{\n  tcp: { allowHalfOpen: true }\n}",
                                   filename="o.js")
    assert warned == ("o.js:2: tcp: aedes-server-factory 0.2.1 does not pass these options to "
                      "net.createServer (no effect)",)


@pytest.mark.parametrize(("text", "message"), [
    ('{\n  "trustProxy": "false"\n}', r'o\.js:2: trustProxy: "false" — give true or false '
     r"\(aedes-server-factory tests it for truthiness, so this value turns trustProxy on\)"),
    ("{ trustProxy: 0 }", r"o\.js:1: trustProxy: 0 .* turns trustProxy off"),
    ("{\n  ws: true,\n  trustproxy: true\n}", r"o\.js:3: 'trustproxy' is not an "
     r"aedes-server-factory option \(it would ignore it; did you mean trustProxy\?\); allowed: "
     r"trustProxy, ws, "),
    ("{\n trustProxy: true,\n\n trustProxy: false }", r"o\.js:4: trustProxy is given twice "
     r"\(first on line 2"),
    ("{\n  tls: { key: k, cert: c } }", r"o\.js:2: tls: a TLS listener is not modelled"),
    ("{ serverFactory: make }", r"o\.js:1: serverFactory: a custom server factory"),
    ("{\n\n  protocolDecoder: myDecoder }", r"o\.js:3: protocolDecoder: myDecoder — only "
     r"aedes-protocol-decoder's own protocolDecoder is modelled"),
    ("{ ws: 'yes' }", r'o\.js:1: ws: "yes" — give true'),
    ("{\n  trustProxy: true\n  ws: true }", r"o\.js:3: expected ',' or '}', not 'ws'"),
    ("{ trustProxy: true, /* open", r"o\.js:1: a /\* comment is not closed"),
    ("{ protocolDecoder: require('x') }", r"o\.js:1: unexpected '\('"),
    ("trustProxy = true", r"o\.js:1: expected the options object"),
    ("{ trustProxy: true } extra", r"o\.js:1: expected the end of the file .* not 'extra'"),
    ("{\n  trustProxy: true,\n", r"o\.js:3: expected an option name or '}', not the end"),
])
def test_aedes_options_errors_name_the_line_and_what_is_allowed(text: str, message: str
                                                                ) -> None:
    from realip import ConfigurationError
    from realip.programs import broker_from_config

    with pytest.raises(ConfigurationError, match=message):
        broker_from_config("aedes", text, filename="o.js")


@pytest.mark.parametrize("listener", ["tcp", "ws"])
@pytest.mark.parametrize("trust", [True, False])
def test_aedes_options_file_reads_back(trust: bool, listener: str) -> None:
    """The options file the audit shows an aedes fix in is one the reader takes back."""
    from realip.programs.aedes.config import from_aedes_options, options_file

    got, warnings = from_aedes_options(options_file(trust, listener), transport=listener)
    assert (got["trust_proxy"], got["listener"], warnings) == (trust, listener, ())


def test_an_aedes_fix_is_a_diff_of_its_options_file() -> None:
    report = audit(load(str(ROOT / "data" / "topologies" / "aedes-malformed-header-down.yaml")))
    fix = next(r.fix for r in report.rows if r.fix is not None)
    assert "-  trustProxy: true,\n+  trustProxy: false," in fix.diff


def test_aedes_options_must_match_the_clients_transport() -> None:
    from realip import ConfigurationError
    from realip.programs import broker_from_config

    with pytest.raises(ConfigurationError, match=r"aedes\.js:4: these options make a "
                       r"WebSocket server \(ws: true\), but the client connects over tcp"):
        broker_from_config("aedes", AEDES_JS, filename="aedes.js", transport="tcp")
    with pytest.raises(ConfigurationError, match=r"o\.js:1: .* a TCP server .* add ws: true"):
        broker_from_config("aedes", "{ trustProxy: true }", filename="o.js", transport="ws")


def test_audit_with_aedes_options(tmp_path: Path) -> None:
    """nginx appending X-Forwarded-For in front of aedes with trustProxy (read from its
    options file): aedes takes the leftmost entry — SPOOFED, the nginx change fixes it; with
    ``trustProxy: false`` nothing is spoofed (aedes names nginx: LOST, exit 0)."""
    (tmp_path / "lb.conf").write_text(LB_APPENDS)
    (tmp_path / "aedes.js").write_text(AEDES_JS)
    args = ("--config", f"{tmp_path / 'lb.conf'}@10.0.0.1", "--transport", "ws",
            "--broker", "aedes", "--broker-conf", str(tmp_path / "aedes.js"))
    done = _cli(*args, "--json")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    row = next(r for r in doc["rows"] if r["attack"]["name"] == "xff-one")
    assert row["verdict"] == "SPOOFED" and row["culprit"] == "aedes"
    assert row["fix"]["changes"][0]["words"] == "proxy_set_header X-Forwarded-For $remote_addr;"
    assert doc["reaudit"]["ok"] is True
    (tmp_path / "aedes.js").write_text(AEDES_JS.replace("trustProxy: true", "trustProxy: false"))
    off = _cli(*args, "--json")
    assert off.returncode == 0, off.stdout
    counts = json.loads(off.stdout)["counts"]
    assert counts["SPOOFED"] == 0 and counts["LOST"] == 20
    (tmp_path / "aedes.js").write_text('{\n  "trustProxy": "true",\n  "ws": true\n}\n')
    bad = _cli(*args)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("realip audit: aedes.js:2: trustProxy: \"true\"")


def test_judge_recorded_is_the_rule_for_live_runs_too() -> None:
    from realip.audit import judge_recorded

    attack = next(a for a in battery(load(str(ROOT / "data" / "topologies" /
                                               "ws-single-tier.yaml")))
                  if a.name == "xff-several")
    assert judge_recorded(None, attack, "1.2.3.4")[0] == "REFUSED"
    assert judge_recorded("1.2.3.4:5", attack, "1.2.3.4")[0] == "SAFE"
    assert judge_recorded(f"{BATTERY_CLAIM}:5", attack, "1.2.3.4")[0] == "SPOOFED"
    assert judge_recorded("192.0.2.1:5", attack, "1.2.3.4")[0] == "SPOOFED"  # a decoy
    assert judge_recorded(f"{BATTERY_CLAIM}:31337:5", attack, "1.2.3.4")[0] == "SPOOFED"
    assert judge_recorded(f"::ffff:{BATTERY_CLAIM}:5", attack, "1.2.3.4")[0] == "SPOOFED"
    assert judge_recorded("10.0.0.9:5", attack, "1.2.3.4")[0] == "LOST"


def test_a_receiver_that_dies_is_down_and_its_fix_is_computed() -> None:
    """aedes with trustProxy: PROXY UNKNOWN kills the process (DOWN); turning trustProxy off
    closes that and the forged headers."""
    report = audit(load(str(ROOT / "data" / "topologies" / "aedes-malformed-header-down.yaml")))
    down = [r for r in report.rows if r.verdict == "DOWN"]
    assert [r.attack.name for r in down] == ["proxy-unknown"]
    assert down[0].fix is not None and down[0].fix.fixes[0].setting == "trust_proxy"
    assert not report.ok and report.reaudit is not None and report.reaudit.ok


def test_a_forged_ssl_tlv_is_an_identity_spoof_with_a_computed_fix() -> None:
    """Issue 12's attack in the audit: a PROXY v2 header with the attacker's own address and a
    forged SSL TLV (CN admin) gives the username admin — SPOOFED although the peername is the
    attacker's own; the fix keeps the device behind HAProxy named by its certificate."""
    report = audit(load(str(ROOT / "data" / "topologies" / "tls-haproxy-client-cert.yaml")),
                   reach_inner=True)
    assert "as 'device-42'" in report.table()
    rows = {(r.position.index, r.attack.name): r for r in report.rows}
    edge = rows[(0, "proxy-v2-ssl-cn")]
    assert edge.verdict == "REFUSED"  # HAProxy's bind … ssl refuses bytes that are not TLS
    inside = rows[(1, "proxy-v2-ssl-cn")]
    assert inside.verdict == "SPOOFED" and inside.trace.username == "admin"
    assert inside.recorded == "115.236.21.86:61177"  # the address is the attacker's own
    assert "username 'admin'" in inside.why and inside.culprit == "emqx"
    assert inside.fix is not None
    assert [(f.node, f.setting) for f in inside.fix.fixes] == [("emqx", "access_rules")]
    assert report.to_dict()["rows"][[*rows].index((1, "proxy-v2-ssl-cn"))]["username"] == "admin"
