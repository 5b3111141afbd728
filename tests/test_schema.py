"""The scenario language (realip.schema and the rooms' settings): right answer or a clear error.

Each mistake of issue 9 is written as a user would write it; the error must name the setting's
path, where it is in the file and what is allowed — and nothing is ever read as the wrong value.
"""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Any

import pytest

from realip import ConfigurationError, RealIPError
from realip.errors import ScenarioError
from realip.programs import BROKER_KINDS, HOP_KINDS, Broker
from realip.schema import broker_model, hop_model, markdown
from realip.topology import (
    check_expect,
    from_dict,
    load,
    load_scenario,
    loads,
    scenarios,
    simulate,
)

ROOT = Path(__file__).resolve().parent.parent

BASE = """\
name: t
client: {addr: 1.94.170.163, port: 50412, transport: ws}
hops:
  - kind: nginx-http
    name: lb1
    addr: 172.16.0.116
    port: 8083
    proxy_http_version: "1.1"
    set_real_ip_from: [172.16.0.0/24]
    real_ip_header: X-Forwarded-For
%s
broker: {addr: 172.16.0.71, port: 8083, listener: ws}
"""


def _doc(extra: str = "") -> dict[str, Any]:
    return {"client": {"addr": "192.0.2.1", "port": 1000},
            "hops": [{"kind": "nginx-stream", "name": "lb1", "addr": "10.0.0.1",
                      "proxy_protocol": "on"}],
            "broker": {"addr": "10.0.0.2", "proxy_protocol": True}}


def _error(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        loads(textwrap.dedent(text), file="s.yaml")
    return info.value


# -- the error itself ------------------------------------------------------------------------


def test_an_error_names_file_line_column_path_and_what_is_allowed() -> None:
    err = _error(BASE % "    real_ip_recursive: maybe")
    assert isinstance(err, RealIPError) and isinstance(err, ConfigurationError)
    assert (err.file, err.line, err.column) == ("s.yaml", 11, 24)
    assert err.path == "hops[0].real_ip_recursive"
    assert err.allowed == "on | off"
    assert str(err) == ("s.yaml:11:24: hops[0].real_ip_recursive: 'maybe' is not an nginx "
                        "flag (allowed: on | off)")


def test_every_problem_is_reported_at_once() -> None:
    err = _error(BASE % "    real_ip_recursive: maybe\n    source_port: 0")
    assert {p.path for p in err.problems} == {"hops[0].source_port",
                                              "hops[0].real_ip_recursive"}
    assert len(str(err).splitlines()) == 2


def test_yaml_syntax_errors_have_a_position() -> None:
    err = _error("client: {addr: 1.2.3.4\nhops: [\n")
    assert err.file == "s.yaml" and err.line is not None and "YAML syntax" in str(err)


def test_a_duplicate_yaml_key_is_an_error_not_the_last_one_wins() -> None:
    err = _error(BASE % "    real_ip_recursive: on\n    real_ip_recursive: off")
    assert err.path == "hops[0].real_ip_recursive" and err.line == 12
    assert "given twice" in str(err)


# -- unknown keys at every level ---------------------------------------------------------------


def test_a_top_level_typo_is_an_error() -> None:
    err = _error(BASE.replace("hops:", "hop:") % "")
    assert err.path == "hop" and "did you mean 'hops'" in str(err)
    assert (err.line, err.column) == (3, 1)


def test_broker_keys_indented_one_level_too_little() -> None:
    text = BASE.replace("broker: {addr: 172.16.0.71, port: 8083, listener: ws}",
                        "broker:\n  name: emqx\nlistener: ws\naddr: 172.16.0.71") % ""
    err = _error(text)
    by_path = {p.path: p for p in err.problems}
    assert "indent it under broker" in by_path["listener"].message
    assert "indent it under broker" in by_path["addr"].message
    assert "needs 'addr'" in by_path["broker.addr"].message


def test_unknown_hop_and_broker_settings() -> None:
    doc = _doc()
    doc["hops"][0]["proxy_protocl"] = "on"
    with pytest.raises(ScenarioError, match="did you mean 'proxy_protocol'") as info:
        from_dict(doc)
    assert info.value.path == "hops[0].proxy_protocl"
    # a setting of another broker kind is not this kind's
    doc = _doc()
    doc["broker"] = {"kind": "mosquitto", "addr": "10.0.0.2", "access_rules": ["allow all"]}
    with pytest.raises(ScenarioError, match="not a mosquitto broker setting"):
        from_dict(doc)


def test_unknown_kinds_list_the_known_ones() -> None:
    doc = _doc()
    doc["hops"][0]["kind"] = "squid"
    with pytest.raises(ScenarioError) as info:
        from_dict(doc)
    assert info.value.path == "hops[0].kind"
    assert set(HOP_KINDS) <= set((info.value.allowed or "").split(" | "))
    doc = _doc()
    doc["broker"]["kind"] = "vernemq"
    with pytest.raises(ScenarioError, match="broker kind 'vernemq'"):
        from_dict(doc)


def test_duplicate_host_names() -> None:
    doc = _doc()
    doc["hops"].append({**doc["hops"][0], "addr": "10.0.0.9"})
    with pytest.raises(ScenarioError, match="already hops\\[0\\]'s") as info:
        from_dict(doc)
    assert info.value.path == "hops[1].name"
    doc = _doc()
    doc["broker"]["name"] = "client"
    with pytest.raises(ScenarioError, match="already client's"):
        from_dict(doc)


def test_missing_required_settings() -> None:
    doc = _doc()
    del doc["hops"][0]["addr"]
    with pytest.raises(ScenarioError, match="needs 'addr'") as info:
        from_dict(doc)
    assert info.value.path == "hops[0].addr"
    with pytest.raises(ScenarioError, match="needs 'client'"):
        from_dict({"hops": [], "broker": {"addr": "10.0.0.2"}})


# -- values: the right truth value or an error -------------------------------------------------


@pytest.mark.parametrize(("written", "value"), [('"off"', False), ('"on"', True), ("off", False),
                                                ("on", True), ("true", True), ('"OFF"', False)])
def test_nginx_flags_in_nginx_words(written: str, value: bool) -> None:
    topo = loads(BASE % f"    real_ip_recursive: {written}")
    assert topo.hops[0].real_ip_recursive is value  # type: ignore[union-attr]


@pytest.mark.parametrize("written", ['"yes"', '"true"', "1", '""', "[on]"])
def test_nginx_flags_refuse_other_words(written: str) -> None:
    err = _error(BASE % f"    real_ip_recursive: {written}")
    assert err.path == "hops[0].real_ip_recursive" and err.allowed == "on | off"


def test_quoted_off_really_is_off() -> None:
    """Issue 9: a quoted "off" used to behave as on."""
    text = (ROOT / "data" / "topologies" / "ws-multi-recursive.yaml").read_text()
    assert "real_ip_recursive: true" in text
    on = simulate(loads(text.replace("real_ip_recursive: true", 'real_ip_recursive: "on"')))
    off = simulate(loads(text.replace("real_ip_recursive: true", 'real_ip_recursive: "off"')))
    assert on.client_addr == "1.94.170.163"
    assert off.client_addr == "172.16.0.116"  # what ws-multi-nonrecursive shows


@pytest.mark.parametrize(("written", "value"), [('"false"', False), ("false", False),
                                                ('"true"', True), ("true", True)])
def test_emqx_proxy_protocol_hocon_booleans(written: str, value: bool) -> None:
    topo = loads(f"client: {{addr: 192.0.2.1, port: 1}}\n"
                 f"broker: {{addr: 10.0.0.2, proxy_protocol: {written}}}\n")
    assert topo.broker.proxy_protocol is value


def test_emqx_proxy_protocol_refuses_yes() -> None:
    err = _error('client: {addr: 192.0.2.1, port: 1}\nbroker: {addr: 10.0.0.2, '
                 'proxy_protocol: "yes"}\n')
    assert err.path == "broker.proxy_protocol" and err.allowed == "true | false"


def test_haproxy_send_proxy_keywords() -> None:
    hop = ("hops: [{kind: haproxy, name: lb1, addr: 10.0.0.1, port: 1883, send_proxy: %s}]\n")
    head = "client: {addr: 192.0.2.1, port: 1}\nbroker: {addr: 10.0.0.2, proxy_protocol: true}\n"
    assert loads(head + hop % "send-proxy-v2").hops[0].send_proxy == "v2"  # type: ignore[union-attr]
    assert loads(head + hop % "send-proxy").hops[0].send_proxy == "v1"  # type: ignore[union-attr]
    assert loads(head + hop % "off").hops[0].send_proxy == "off"  # type: ignore[union-attr]
    with pytest.raises(ScenarioError, match="'v3' is not a PROXY version HAProxy sends") as info:
        loads(head + hop % "v3")
    assert "send-proxy-v2" in (info.value.allowed or "")


def test_listener_values() -> None:
    err = _error("client: {addr: 192.0.2.1, port: 1}\nbroker: {addr: 10.0.0.2, "
                 "listener: websocket}\n")
    assert err.path == "broker.listener" and err.allowed == "tcp | ws | ssl | wss"
    mosq = loads("client: {addr: 192.0.2.1, port: 1}\nbroker: {kind: mosquitto, addr: 10.0.0.2,"
                 " listener: websockets}\n")
    assert mosq.broker.listener == "ws" and mosq.broker.name == "mosquitto"


@pytest.mark.parametrize("port", ['"1883x"', "99999", "0", '"1883"', "1883.0", "true"])
def test_ports_are_whole_numbers_in_range(port: str) -> None:
    err = _error(BASE.replace("port: 8083\n    proxy", f"port: {port}\n    proxy") % "")
    assert err.path == "hops[0].port" and err.allowed == "a whole number 1..65535"


@pytest.mark.parametrize("addr", ["203.0.113.500", "lb.example", "10.0.0.1:80"])
def test_addresses(addr: str) -> None:
    doc = _doc()
    doc["hops"][0]["addr"] = addr
    with pytest.raises(ScenarioError, match="not an IPv4 or IPv6 address") as info:
        from_dict(doc)
    assert info.value.path == "hops[0].addr"


def test_nginx_cidrs_with_nginx_s_grammar_and_warning() -> None:
    topo = loads(BASE.replace("[172.16.0.0/24]", "[10.0.1.1/24, 172.16.0.0/24]") % "",
                 file="w.yaml")
    assert topo.warnings == ("w.yaml:9:24: warning: hops[0].set_real_ip_from[0]: low address "
                             "bits of 10.0.1.1/24 are meaningless",)
    err = _error(BASE.replace("[172.16.0.0/24]", "[172.16.0.0/33]") % "")
    assert err.path == "hops[0].set_real_ip_from" and "invalid prefix length" in str(err)
    err = _error(BASE.replace("[172.16.0.0/24]", "[lb.example]") % "")
    assert "host name" in str(err)


def test_a_string_where_a_list_is_expected_is_one_item() -> None:
    topo = loads(BASE.replace("[172.16.0.0/24]", "10.0.1.0/24") % "")
    assert topo.hops[0].set_real_ip_from == ("10.0.1.0/24",)  # type: ignore[union-attr]
    doc = _doc()
    doc["broker"]["access_rules"] = "deny 10.0.0.0/8"
    assert from_dict(doc).broker.access_rules == ("deny 10.0.0.0/8",)


def test_proxy_set_header_as_a_mapping_or_pairs() -> None:
    pairs = loads(BASE % "    proxy_set_header:\n      - [Host, $host]\n      - [X-Real-IP, "
                  "$remote_addr]")
    mapping = loads(BASE % "    proxy_set_header: {Host: $host, X-Real-IP: $remote_addr}")
    items = loads(BASE % "    proxy_set_header:\n      - Host: $host\n      - X-Real-IP: "
                  "$remote_addr")
    assert pairs.hops == mapping.hops == items.hops
    err = _error(BASE % "    proxy_set_header: {X-Forwarded-Port: 1883}")
    assert err.path == "hops[0].proxy_set_header" and 'quote it: "1883"' in str(err)
    err = _error(BASE % "    proxy_set_header: Host $host")
    assert err.path == "hops[0].proxy_set_header"


def test_versions_are_quoted() -> None:
    err = _error(BASE % "    version: 1.22")
    assert err.path == "hops[0].version" and "quote it" in str(err)


def test_nginx_stream_proxy_protocol_v2_needs_1_31_4() -> None:
    doc = _doc()
    doc["hops"][0]["proxy_protocol"] = "v2"
    with pytest.raises(ScenarioError, match=r'invalid value "v2".*1\.31\.4') as info:
        from_dict(doc)
    assert info.value.path == "hops[0].proxy_protocol"
    doc["hops"][0]["version"] = "1.31.4"
    assert from_dict(doc).hops[0].proxy_protocol == "v2"  # type: ignore[union-attr]


def test_haproxy_rules_and_options() -> None:
    head = "client: {addr: 192.0.2.1, port: 1}\nbroker: {addr: 10.0.0.2}\n"
    hop = "hops: [{kind: haproxy, name: lb1, addr: 10.0.0.1, port: 1883, %s}]\n"
    topo = loads(head + hop % "mode: http, http_request: ['set-header X-Real-IP %[src]']")
    assert topo.hops[0].http_request == (("set-header", "X-Real-IP", "%[src]"),)  # type: ignore[union-attr]
    with pytest.raises(ScenarioError, match="not \\[set-header, name, value\\]"):
        loads(head + hop % "mode: http, http_request: [[replace-header, X, Y]]")
    with pytest.raises(ScenarioError, match="'crc' : unknown option"):
        loads(head + hop % "send_proxy: v2, proxy_v2_options: [crc]")
    with pytest.raises(ScenarioError, match="host bits set") as info:
        loads(head + hop % "expect_proxy_from: 10.0.1.1/24")
    assert info.value.path == "hops[0].expect_proxy_from"


def test_emqx_access_rules_and_allow_list() -> None:
    doc = _doc()
    doc["broker"]["access_rules"] = ["allow 10.0.0.0/8", "deny al"]
    with pytest.raises(ScenarioError, match="rule 1") as info:
        from_dict(doc)
    assert info.value.path == "broker.access_rules"
    doc["broker"]["access_rules"] = ["allow 10.0.0.0/8", "deny all"]
    assert from_dict(doc).broker.access_rules[-1] == "deny all"


# -- Python dicts and copies go through the same schema ------------------------------------------


def test_with_hop_with_broker_with_client_are_checked() -> None:
    topo = load_scenario("ws-multi-recursive")
    with pytest.raises(ScenarioError) as info:
        topo.with_hop("lb3", real_ip_recursive="yes")
    assert info.value.path == "hops[2].real_ip_recursive" and info.value.file is None
    assert topo.with_hop("lb3", real_ip_recursive="off").hop("lb3").real_ip_recursive is False  # type: ignore[union-attr]
    assert topo.with_hop("lb3", set_real_ip_from="172.16.0.0/24").hop("lb3") == topo.hop("lb3")
    with pytest.raises(ScenarioError, match="no hop named 'lb9'"):
        topo.with_hop("lb9", port=1)
    with pytest.raises(ScenarioError, match=r"broker\.listener"):
        topo.with_broker(listener="websocket")
    with pytest.raises(ScenarioError, match=r"client\.port"):
        topo.with_client(port="1883x")
    assert topo.with_broker(proxy_address_allow=["172.16.0.0/24"]).broker.proxy_address_allow \
        == ("172.16.0.0/24",)


def test_a_copy_with_nothing_changed_is_equal() -> None:
    for name in scenarios():
        topo = load_scenario(name)
        assert topo.with_broker() == topo and topo.with_client() == topo
        for hop in topo.hops:
            assert topo.with_hop(hop.name) == topo


# -- the declarations agree with the dataclasses the simulator runs -----------------------------


@pytest.mark.parametrize("kind", sorted(HOP_KINDS))
def test_hop_declarations_match_the_settings_dataclasses(kind: str) -> None:
    model = hop_model(kind)
    fields = {f.name: f for f in dataclasses.fields(HOP_KINDS[kind].settings)}
    assert set(model.model_fields) == set(fields)
    for name, info in model.model_fields.items():
        f = fields[name]
        if f.default is not dataclasses.MISSING:
            assert info.default == f.default, name
        else:
            assert info.is_required(), name


@pytest.mark.parametrize("kind", sorted(BROKER_KINDS))
def test_broker_declarations_are_broker_fields(kind: str) -> None:
    model = broker_model(kind)
    fields = {f.name: f for f in dataclasses.fields(Broker)}
    assert set(model.model_fields) <= set(fields) - {"kind"}
    for name, info in model.model_fields.items():
        if name not in ("name", "version"):  # each kind names and versions its own program
            assert info.default == fields[name].default or info.is_required(), name


# -- every bundled scenario ---------------------------------------------------------------------


@pytest.mark.parametrize("name", scenarios())
def test_bundled_scenarios_validate_without_warnings_and_hold_their_expect(name: str) -> None:
    topo = load_scenario(name)
    assert topo.warnings == ()
    check = check_expect(topo)
    assert check is not None and check.ok, str(check)


def test_load_scenario_by_name_or_path_and_unknown_names() -> None:
    path = ROOT / "realip" / "data" / "topologies" / "tcp-single-tier.yaml"
    assert load_scenario("tcp-single-tier") == load_scenario(path) == load(str(path))
    with pytest.raises(ScenarioError, match="did you mean 'tcp-single-tier'"):
        load_scenario("tcp-single-teir")
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario("nowhere/x.yaml")


def test_realip_data_names_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "mine.yaml").write_text(
        "client: {addr: 192.0.2.1, port: 1}\nbroker: {addr: 10.0.0.2}\nexpect: '192.0.2.1:1'\n")
    monkeypatch.setenv("REALIP_DATA", str(tmp_path))
    assert scenarios() == ("mine",)
    assert check_expect(load_scenario("mine")).ok  # type: ignore[union-attr]


# -- expect is a check ----------------------------------------------------------------------------


def test_expect_mismatch_shows_both_values() -> None:
    topo = load_scenario("ws-multi-nonrecursive")
    wrong = dataclasses.replace(topo, expect="1.94.170.163:39872")
    check = check_expect(wrong)
    assert check is not None and not check.ok
    assert str(check) == ("✗ ws-multi-nonrecursive: expect 1.94.170.163:39872, but got "
                          "172.16.0.116:39872")
    assert "✗" in check._repr_html_() and "#c62828" in check._repr_html_()
    closed = check_expect(dataclasses.replace(load_scenario("tcp-stacked-headers"),
                                              expect="1.2.3.4:5"))
    assert closed is not None and "but got a closed connection (emqx:" in str(closed)
    assert check_expect(dataclasses.replace(topo, expect=None, expect_given=False)) is None
    assert simulate(wrong).to_dict()["expect"]["ok"] is False
    assert simulate(wrong).expectation == check


# -- the reference ---------------------------------------------------------------------------------


def test_the_scenario_language_doc_is_current() -> None:
    doc = (ROOT / "docs" / "scenario-language.md").read_text(encoding="utf-8")
    assert doc == markdown() + "\n", "run: python tools/scenario_doc.py"
    for kind in (*HOP_KINDS, *BROKER_KINDS):
        assert f"`kind: {kind}`" in doc



# -- a topology built in Python or by an importer is checked the same way ----------------------


@pytest.mark.parametrize("name", scenarios())
def test_to_dict_round_trips(name: str) -> None:
    topo = load_scenario(name)
    assert from_dict(topo.to_dict(), name) == topo
    assert topo.checked() == topo


def test_checked_reports_what_a_hand_built_topology_got_wrong() -> None:
    topo = load_scenario("tcp-single-tier")
    bad = dataclasses.replace(topo, hops=(dataclasses.replace(topo.hops[0], port=99999),))
    with pytest.raises(ScenarioError) as info:
        bad.checked()
    assert info.value.path == "hops[0].port"
    mosq = dataclasses.replace(topo, broker=Broker(kind="mosquitto", addr="10.0.0.2",
                                                   access_rules=("allow all",)))
    with pytest.raises(ScenarioError, match="not a mosquitto broker setting"):
        mosq.checked()


def test_explore_checks_the_broker_settings() -> None:
    from realip.teaching import explore

    conf = "stream { server { listen 1883; proxy_pass 172.16.0.71:1883; } }"
    with pytest.raises(ScenarioError, match=r"broker\.listener"):
        explore(conf, broker={"listener": "websocket"})
    assert explore(conf, broker={"kind": "mosquitto", "version": "2.0.11"}).trace.connected
