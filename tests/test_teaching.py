"""realip.teaching: scenarios, reveal cells, the config sandbox and the self-checking exercises."""

from __future__ import annotations

from typing import Any

import pytest

from realip import ConfigurationError
from realip.teaching import (
    EXERCISES,
    check,
    config,
    explore,
    reveal,
    scenario,
    scenario_table,
)
from realip.topology import simulate

SOLUTIONS: dict[str, list[Any]] = {
    "v1-header": ["PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883\r\n"],
    "v2-size": [35],
    "predict-untrusted": ["172.16.0.116:41316"],
    "tcp-lb2-trust": [{"listen_proxy_protocol": True, "proxy_protocol": "on",
                       "set_real_ip_from": ["172.16.0.0/24"]},
                      {"listen_proxy_protocol": False, "proxy_protocol": "off"}],
    "access-rules": [["allow 172.16.0.0/24", "deny all"]],
    "ws-forge-edge": ["203.0.113.66", "10.1.2.3, 10.4.5.6"],
    "ws-fix-edge": [{"X-Forwarded-For": "$remote_addr", "X-Forwarded-Port": "$remote_port"}],
    "recursive-off": ["172.16.0.116"],
    "ws-mistrusted-range": [["172.16.0.0/24"], "172.16.0.116, 172.16.0.200"],
    "haproxy-fix": [[("set-header", "X-Forwarded-For", "%[src]"),
                     ("set-header", "X-Forwarded-Port", "%[src_port]")],
                    {"forwardfor": False,
                     "http_request": [["set-header", "X-Forwarded-For", "%[src]"],
                                      ["set-header", "X-Forwarded-Port", "%[src_port]"]]}],
}

WRONG: dict[str, Any] = {
    "v1-header": "PROXY TCP4 172.16.0.116 115.236.21.86 1883 61177\r\n",
    "v2-size": 28,
    "predict-untrusted": "115.236.21.86:39817",
    "tcp-lb2-trust": {"listen_proxy_protocol": True, "proxy_protocol": "on"},
    "access-rules": ["allow all"],
    "ws-forge-edge": "1.94.170.163",
    "ws-fix-edge": {"X-Forwarded-For": "$remote_addr"},
    "recursive-off": "1.94.170.163",
    "ws-mistrusted-range": ["0.0.0.0/0"],
    "haproxy-fix": [("set-header", "X-Forwarded-Port", "%[src_port]")],
}


def test_there_are_at_least_eight_exercises_and_every_one_is_covered() -> None:
    assert len(EXERCISES) >= 8
    assert set(SOLUTIONS) == set(EXERCISES) == set(WRONG)


@pytest.mark.parametrize("exercise", sorted(SOLUTIONS))
def test_solutions_pass(exercise: str) -> None:
    for answer in SOLUTIONS[exercise]:
        result = check(exercise, answer)
        assert result.ok, result.text()
        assert "Hint" not in result.text() and result.text().endswith("checks pass.")


@pytest.mark.parametrize("exercise", sorted(WRONG))
def test_wrong_answers_fail_with_a_hint(exercise: str) -> None:
    result = check(exercise, WRONG[exercise])
    assert not result.ok and result.answered
    text = result.text()
    assert "✗" in text and f"Hint: {EXERCISES[exercise].hint}" in text
    assert "✗" in (result._repr_html_())


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_check_never_raises(exercise: str) -> None:
    for answer in (None, ..., 0, -1, True, "", "garbage", b"\xff", [], [1, 2], {}, {"x": 1},
                   ("set-header",), [("set-header", 1, 2)], 3.5, object(), "0.0.0.0/99"):
        result = check(exercise, answer)
        assert not result.ok
        assert repr(result) == result.text()


def test_unanswered_and_unknown() -> None:
    result = check("v1-header", None)
    assert not result.answered and not result
    assert result.text() == ("Exercise v1-header: Write LB 1's PROXY v1 header\n"
                             "  ✗ an answer is given — not yet\n"
                             "0 of 1 checks pass.\n"
                             f"Hint: {EXERCISES['v1-header'].hint}")
    unknown = check("no-such-exercise", 1)
    assert not unknown.ok and not unknown.answered
    assert f"known: {', '.join(EXERCISES)}" in unknown.text()


def test_expected_values_come_from_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change in the simulator changes the expected answer: nothing is hard-coded."""
    import realip.teaching as teaching

    real = teaching.scenario

    def moved(name: str):  # type: ignore[no-untyped-def]
        topo = real(name)
        return topo.with_hop("lb1", source_port=41999) if topo.hops else topo

    monkeypatch.setattr(teaching, "scenario", moved)
    assert not check("predict-untrusted", "172.16.0.116:41316").ok
    assert check("predict-untrusted", "172.16.0.116:41999").ok


def test_scenarios_configs_and_reveal() -> None:
    assert scenario("tcp-single-tier").expect == "115.236.21.86:61177"
    with pytest.raises(ConfigurationError, match="known: "):
        scenario("nope")
    code = config("ws-method2-lb3")
    assert "real_ip_recursive on;" in code.text
    assert repr(code).startswith("# nginx/ws-method2-lb3.conf\n")
    assert config("ws-set-header-lb1.cfg").title == "haproxy/ws-set-header-lb1.cfg"
    with pytest.raises(ConfigurationError):
        config("missing")
    r = reveal("115.236.21.86:61177", explanation="from the header")
    assert repr(r) == "Reveal the answer: 115.236.21.86:61177\nfrom the header"
    assert r._repr_html_().startswith('<details class="realip-reveal">')
    table = scenario_table(["tcp-single-tier", "tcp-stacked-headers"])
    assert [row[2:] for row in table.rows] == [("115.236.21.86:61177", "yes"),
                                               ("connection closed", "no")]


def test_explore_rebuilds_the_article_chain() -> None:
    files = [config(f"ws-method2-lb{k}").text for k in (1, 2, 3)]
    result = explore(files, client="1.94.170.163:50412", forge_xff="127.0.0.1",
                     broker={"proxy_address_header": "X-Real-IP"})
    reference = simulate(scenario("ws-multi-recursive"), forge_xff="127.0.0.1")
    assert result.warnings == ()
    assert [h.addr for h in result.topology.hops] == [h.addr for h in reference.topology.hops]
    assert result.trace.client_addr == "1.94.170.163"
    tcp = explore([config("tcp-multi-lb1").text, config("tcp-regenerate-lb2").text],
                  client="115.236.21.86:39817")
    assert tcp.topology.broker.proxy_protocol and tcp.trace.peername == "115.236.21.86:39817"
    hap = explore(config("ws-forwardfor-lb1").text, forge_xff="127.0.0.1")
    assert hap.trace.client_addr == "127.0.0.1"
    warned = explore("http { server { listen 8083; gzip on; location / { proxy_pass "
                     "http://172.16.0.71:8083; } } }")
    assert warned.warnings and "gzip" in repr(warned)
    with pytest.raises(ConfigurationError):
        explore([])
    with pytest.raises(ConfigurationError, match="unsupported"):
        explore(config("ws-single-lb1").text, broker={"colour": "blue"})
