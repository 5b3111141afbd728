"""realip.teaching: scenarios, reveal cells, the config sandbox and the self-checking exercises."""

from __future__ import annotations

from typing import Any

import pytest

import realip.teaching as teaching
from realip import ConfigurationError
from realip.teaching import (
    EXERCISES,
    check,
    config,
    exercise,
    explore,
    predict,
    reveal,
    scenario,
    scenario_table,
)
from realip.topology import simulate

SOLUTIONS: dict[str, list[Any]] = {
    "v1-header": ["PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883\r\n",
                  b"PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883\r\n"],
    "v2-size": [35, "35"],
    "predict-untrusted": ["172.16.0.116:41316", " 172.16.0.116:41316 "],
    "tcp-lb2-trust": [{"listen_proxy_protocol": True, "proxy_protocol": "on",
                       "set_real_ip_from": ["172.16.0.0/24"]},
                      {"listen_proxy_protocol": True, "proxy_protocol": "on",
                       "set_real_ip_from": "172.16.0.0/24"},  # a string, not split into chars
                      {"listen_proxy_protocol": True, "proxy_protocol": "on",
                       "set_real_ip_from": ["172.16.0.116"]},
                      {"listen_proxy_protocol": False, "proxy_protocol": "off"}],
    "access-rules": [["allow 172.16.0.0/24", "deny all"], "allow 172.16.0.0/24, deny all",
                     ["allow 172.16.0.116", "deny all"], ["allow 172.16.0.116/32", "deny all"]],
    "ws-forge-edge": ["203.0.113.66", "10.1.2.3, 10.4.5.6"],
    "ws-fix-edge": [{"X-Forwarded-For": "$remote_addr", "X-Forwarded-Port": "$remote_port"},
                    {"x-forwarded-for": "$remote_addr", "x-forwarded-port": "$remote_port"}],
    "recursive-off": ["172.16.0.116", "172.16.0.116:41316"],
    "ws-mistrusted-range": [["172.16.0.0/24"], "172.16.0.116, 172.16.0.200",
                            ["172.16.0.0/16"], "172.16.0.0/24"],
    "too-wide": ["127.0.0.1"],
    "haproxy-fix": [[("set-header", "X-Forwarded-For", "%[src]"),
                     ("set-header", "X-Forwarded-Port", "%[src_port]")],
                    {"forwardfor": False,
                     "http_request": [["set-header", "X-Forwarded-For", "%[src]"],
                                      ["set-header", "X-Forwarded-Port", "%[src_port]"]]}],
    "v2-family": ["0x21", "21", 0x21, "\\x21", b"\x21"],
    "unspoofable": [
        {"lb1": {"proxy_set_header": {"X-Forwarded-For": "$remote_addr",
                                      "X-Forwarded-Port": "$remote_port"}},
         "emqx": {"proxy_address_allow": ["172.16.0.0/24"]}},
        {"lb1": {"proxy_set_header": {"X-Forwarded-For": "$remote_addr",
                                      "X-Forwarded-Port": "$remote_port"}},
         "emqx": {"access_rules": "allow 172.16.0.0/24, deny all"}},
    ],
    "tls-reader": ["emqx", " EMQX "],
    "tls-forged-cn": [{"access_rules": ["allow 172.16.0.116", "deny all"]},
                      {"access_rules": ["allow 172.16.0.116/32", "deny all"],
                       "proxy_protocol_timeout": "3s"}],
}

WRONG: dict[str, list[Any]] = {
    "v1-header": ["PROXY TCP4 172.16.0.116 115.236.21.86 1883 61177\r\n",
                  "PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883",
                  r"PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883\r\n"],
    "v2-size": [28, 16],
    "predict-untrusted": ["115.236.21.86:39817", "172.16.0.116", "172.16.0.116:1883"],
    "tcp-lb2-trust": [{"listen_proxy_protocol": True, "proxy_protocol": "on"}],
    "access-rules": [["allow all"], ["deny 115.236.21.86"], "deny 115.236.21.86"],
    "ws-forge-edge": ["1.94.170.163"],
    "ws-fix-edge": [{"X-Forwarded-For": "$remote_addr"}],
    "recursive-off": ["1.94.170.163"],
    "ws-mistrusted-range": [["0.0.0.0/0"], "0.0.0.0/0"],
    "too-wide": ["1.94.170.163"],
    "haproxy-fix": [[("set-header", "X-Forwarded-Port", "%[src_port]")]],
    "v2-family": ["0x11", 0x22],
    "unspoofable": [{"lb1": {"proxy_set_header": {"X-Forwarded-For": "$remote_addr",
                                                  "X-Forwarded-Port": "$remote_port"}}},
                    {"emqx": {"proxy_address_allow": ["172.16.0.0/24"]}}],
    # LB 1 only relays the encrypted records; a name outside the chain is a ✗ row
    "tls-reader": ["lb1", "client"],
    # the device behind HAProxy loses its username / the client at 172.16.0.200 stays admin /
    # no client is admin because none can connect at all
    "tls-forged-cn": [{"peer_cert_as_username": "disabled"},
                      {"access_rules": ["allow 172.16.0.0/24", "deny all"]},
                      {"access_rules": ["deny all"]}],
}


@pytest.fixture(autouse=True)
def _fresh_attempts() -> None:
    teaching._ATTEMPTS.clear()


def test_there_are_at_least_twelve_exercises_and_every_one_is_covered() -> None:
    assert len(EXERCISES) >= 12
    assert set(SOLUTIONS) == set(EXERCISES) == set(WRONG)


@pytest.mark.parametrize("exercise", sorted(SOLUTIONS))
def test_every_correct_form_passes(exercise: str) -> None:
    for answer in SOLUTIONS[exercise]:
        result = check(exercise, answer)
        assert result.ok, result.text()
        assert "Hint" not in result.text() and result.text().endswith("checks pass.")
        assert "✗" not in result.text()


@pytest.mark.parametrize("exercise", sorted(WRONG))
def test_wrong_answers_fail_and_say_why(exercise: str) -> None:
    for answer in WRONG[exercise]:
        result = check(exercise, answer)
        assert not result.ok and result.answered, answer
        failing = [r for r in result.rows if not r.passed]
        assert failing and all(r.detail for r in failing), result.text()
        assert "✗" in result.text() and "✗" in result._repr_html_()


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_hints_come_after_wrong_attempts_one_by_one_and_never_answer(exercise: str) -> None:
    ex = EXERCISES[exercise]
    assert len(ex.hints) >= 2
    unanswered = check(exercise, None)
    assert not unanswered.hints and "Hint" not in unanswered.text()
    assert "Hint" not in unanswered._repr_html_()
    wrong = WRONG[exercise][0]
    first = check(exercise, wrong)
    assert first.hints == ex.hints[:1] and "Hint 1:" in first.text()
    assert "Hint 2:" not in first.text()
    second = check(exercise, wrong)
    assert second.hints == ex.hints[:2]
    # a hint nudges and points; it never contains a value that solves the exercise
    for answer in SOLUTIONS[exercise]:
        values = [answer] if not isinstance(answer, (dict, list, tuple)) else []
        if isinstance(answer, dict):
            values = [v for inner in answer.values() for v in (
                inner.values() if isinstance(inner, dict) else [inner])]
        if isinstance(answer, list):
            values = [v for v in answer if isinstance(v, str)]
        for value in values:
            text = str(value).strip()
            if len(text) > 3 and not text.startswith("{"):
                assert text not in ex.hint, (exercise, text)


def test_checks_never_contradict_themselves() -> None:
    # exercise 1 without its CRLF: both the CRLF row and the byte-for-byte row fail
    result = check("v1-header", "PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883")
    assert [r.passed for r in result.rows] == [True, False, False]
    # the right address without its port is called right, and the port asked for
    result = check("predict-untrusted", "172.16.0.116")
    assert [r.passed for r in result.rows] == [True, False]
    assert "port" in result.rows[1].detail
    # blocking one client is not "allow only the load balancers"
    result = check("access-rules", ["deny 115.236.21.86"])
    assert not result.ok and any("203.0.113.50" in r.what and not r.passed
                                 for r in result.rows)


def test_exercise_7_hint_renders_no_latex() -> None:
    """A ``$`` in Markdown output starts LaTeX in JupyterLab: every one is an entity."""
    result = check("ws-fix-edge", {"X-Forwarded-For": "$remote_addr"})
    assert "$" not in result._repr_html_()
    fake = teaching.CheckResult("7", "t", (teaching.Row(False, "$remote_addr", "$x"),),
                                ("use $remote_addr",))
    html = fake._repr_html_()
    assert "$" not in html and html.count("&#36;") == 3


def test_unspoofable_checker_replays_forgeries_against_the_config() -> None:
    answer = WRONG["unspoofable"][0]
    result = check("unspoofable", answer)
    failing = [r.what for r in result.rows if not r.passed]
    assert failing == [r for r in failing if "directly" in r]  # only the side door is open
    half = check("unspoofable", WRONG["unspoofable"][1])
    # EMQX trusting the LBs' network alone still takes a forged X-Forwarded-Port
    assert [r.detail for r in half.rows if not r.passed] == [
        "EMQX records the client's address, but not the client's port",
        "still spoofed by: x-forwarded-port"]  # the audit's battery finds it too


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
                             "  … not answered yet: replace None with your answer and run the "
                             "cell.")
    unknown = check("no-such-exercise", 1)
    assert not unknown.ok
    assert f"known: {', '.join(EXERCISES)}" in unknown.text()


def test_exercise_views_show_the_question_not_the_answer() -> None:
    for ex in EXERCISES.values():
        view = exercise(ex.id)
        text = repr(view)
        if ex.show == "topology":
            assert "broker peername = ?" in text
        for answer in SOLUTIONS[ex.id]:
            if isinstance(answer, str) and ":" in answer:
                assert answer.strip() not in text


# -- predict ----------------------------------------------------------------------------------


def test_predict_compares_and_explains_with_the_trace() -> None:
    trace = simulate(scenario("ws-multi-recursive"))
    p = predict("Which peername?", trace)
    assert p.answer == trace.peername
    assert p.judge("")[0] is False
    assert p.judge(trace.peername)[0] and p.judge("1.94.170.163")[0]
    ok, why = p.judge("1.94.170.163:50412")
    assert not ok and "port" in why
    ok, why = p.judge("172.16.0.116:41316")
    assert not ok and "lb1's address" in why
    assert any("step 3" in w for w in p.why) or any("realip" in w for w in p.why)
    lb3 = predict("LB 3?", trace, "$remote_addr", hop="lb3")
    assert lb3.answer == "1.94.170.163"
    assert [w for w in lb3.why if "step" in w] == [
        f"lb3: step {k}: {s.why}" for k, s in enumerate(trace.view("lb3").resolution.trace, 1)]
    size = predict("bytes?", trace.links[0].data[:0] or b"PROXY UNKNOWN\r\n", "size")
    assert size.answer == "15" and size.judge("15")[0] and not size.judge("14")[0]
    stacked = predict("what?", simulate(scenario("tcp-stacked-headers")), "outcome")
    assert stacked.answer == "the broker closes the connection"
    assert stacked.choices and stacked.judge(stacked.answer)[0]
    regen = simulate(scenario("tcp-multi-regenerate"))
    diff = predict("which?", (regen.links[1].proxy_header, regen.links[2].proxy_header),
                   "difference")
    assert diff.answer == "destination address" and diff.answer in diff.choices
    with pytest.raises(ConfigurationError):
        predict("?", trace, "$remote_addr")


def test_predict_static_face_hides_the_answer_in_a_neutral_details() -> None:
    trace = simulate(scenario("tcp-single-tier"))
    p = predict("Which peername?", trace)
    html = p._repr_html_()
    summary = html.split("<summary", 1)[1].split("</summary>", 1)[0]
    assert trace.peername not in summary and "<details" in html
    assert html.index("<details") < html.index(trace.peername or "")
    bundle = p._repr_mimebundle_()
    assert bundle["text/html"] == html


def test_prediction_widget_reveal_waits_for_a_prediction() -> None:
    pytest.importorskip("ipywidgets")
    p = predict("Which peername?", simulate(scenario("tcp-single-tier")))
    box = p.widget()
    _question, field, row, result = box.children
    button = row.children[0]
    assert button.disabled and result.value == ""
    field.value = "172.16.0.116:41316"
    assert not button.disabled
    button.click()
    assert field.disabled and button.disabled
    assert "✗" in result.value and p.answer in result.value


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
    hidden = scenario_table(["tcp-single-tier"], outcomes=False)
    assert hidden.columns == ("scenario", "what it shows") and "61177" not in repr(hidden)


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
