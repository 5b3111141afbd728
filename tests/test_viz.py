"""realip.viz: lazy imports, deterministic faces, and views driven only by the resolver's trace."""

from __future__ import annotations

import subprocess
import sys

import pytest

from realip import ConfigurationError
from realip.proxy_protocol import annotate, build
from realip.resolve import emqx_ws_peer, nginx_realip
from realip.teaching import scenario
from realip.topology import simulate
from realip.viz import (
    ConfigForm,
    Stepper,
    acceptance_table,
    carried,
    draw_topology,
    hex_figure,
    hex_view,
    modes_table,
    profile_view,
    sequence_view,
    tcpdump,
    trust_of,
    walk_figure,
    walk_state,
    walk_view,
)

XFF = [("X-Forwarded-For", "127.0.0.1, 1.94.170.163, 172.16.0.116")]
V1 = b"PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883\r\n"


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_importing_realip_and_viz_loads_no_plotting_or_widgets() -> None:
    code = ("import sys, realip, realip.viz, realip.teaching;"
            "print(sorted({'matplotlib', 'ipywidgets', 'IPython'} & set(sys.modules)))")
    assert _run(code) == "[]"


def test_import_realip_is_fast() -> None:
    code = ("import time; t = time.perf_counter(); import realip;"
            "print(time.perf_counter() - t)")
    best = min(float(_run(code)) for _ in range(3))
    assert best < 0.150, f"import realip took {best * 1000:.0f} ms"


# -- bytes --------------------------------------------------------------------------------------


def test_hex_view_is_built_from_annotate() -> None:
    view = hex_view(V1 + b"\x10\x1a")
    fields = annotate(V1 + b"\x10\x1a")
    assert view.fields == tuple(fields)
    assert view.verdict == "accepted"
    text = repr(view)
    assert text.splitlines()[0].startswith("0000  50 52 4f 58 59 20")
    assert "source address" in text and "115.236.21.86" in text
    assert text.endswith("a complete header of 50 bytes, then 2 byte(s) of payload")
    html = view._repr_html_() or ""
    assert 'class="realip-hexview"' in html and 'title="source address"' in html


def test_hex_view_reports_the_error_field() -> None:
    view = hex_view("PROXY TCP4 115.236.21.256 172.16.0.116 61177 1883\r\n")
    assert view.verdict == "rejected"
    assert "rejected at offset 11: v1_bad_address" in repr(view)
    assert "#ffb3b3" in (view._repr_html_() or "")


def test_hex_view_and_figure_never_raise_on_garbage() -> None:
    for data in (b"", b"\r\n\r\n\x00\r\nQUIT\n\x21", b"hello", bytes(range(256))):
        assert isinstance(repr(hex_view(data)), str)
    assert hex_figure(build(("115.236.21.86", 61177), ("172.16.0.116", 1883))).png()[:4] == \
        b"\x89PNG"


def test_tcpdump_shows_the_article_capture() -> None:
    trace = simulate(scenario("tcp-single-tier"))
    text = repr(tcpdump(trace, "emqx"))
    lines = text.splitlines()
    assert lines[0] == "# link 1: lb1 -> emqx"
    assert lines[1] == ("IP 172.16.0.116.41316 > 172.16.0.71.1883: Flags [P.], seq 1001:1051, "
                        "ack 5001, win 65535, length 50")
    ascii_column = "".join(line[51:] for line in lines if line.startswith("\t0x"))
    assert "PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883.." in ascii_column
    with pytest.raises(KeyError):
        tcpdump(trace, "nobody")


# -- flows ---------------------------------------------------------------------------------------


def test_carried_summarises_each_link() -> None:
    trace = simulate(scenario("ws-multi-recursive"))
    assert carried(trace.links[2]) == [
        "X-Forwarded-For: 127.0.0.1, 1.94.170.163, 172.16.0.116",
        "X-Forwarded-Port: 39872, 50412, 41316"]
    tcp = simulate(scenario("haproxy-tcp-accept-proxy-tier"))
    assert carried(tcp.links[2])[0].startswith(
        "PROXY v2 PROXY 115.236.21.86:39817 → 172.16.0.116:1883 + CRC32C")


def test_trust_reads_the_receivers_configuration() -> None:
    topo = scenario("ws-multi-recursive")
    assert trust_of(topo.hop("lb3"), "172.16.0.200").trusted is True
    assert trust_of(topo.hop("lb3"), "1.94.170.163").trusted is False
    assert trust_of(topo.hop("lb1"), "1.94.170.163").trusted is None
    assert trust_of(topo.broker, "172.16.0.225").trusted is True


@pytest.mark.parametrize("name", ["tcp-single-tier", "tcp-stacked-headers", "ws-multi-recursive",
                                  "ws-trust-covers-clients", "tcp-direct-client-forges-proxy"])
def test_drawings_are_deterministic(name: str) -> None:
    trace = simulate(scenario(name))
    a, b = draw_topology(trace), draw_topology(scenario(name))
    assert repr(a) == repr(b)
    assert a.png() == b.png()
    assert a.png()[:4] == b"\x89PNG"
    seq = sequence_view(trace)
    assert repr(seq) == trace.table()
    assert seq.png()[:4] == b"\x89PNG"


def test_topology_text_names_hosts_links_trust_and_peername() -> None:
    text = repr(draw_topology(scenario("tcp-multi-regenerate-untrusted")))
    assert "[LB 1] NGINX stream, LAN 172.16.0.116, WAN 121.36.192.227" in text
    assert "PROXY TCP4 172.16.0.116 172.16.0.200 41316 1883" in text
    assert "LB 2: NOT trusted (listen … proxy_protocol without set_real_ip_from)" in text
    assert text.endswith("broker peername = 172.16.0.116:41316 (NOT the real client "
                         "115.236.21.86)")


# -- the walk -------------------------------------------------------------------------------------


def _recursive(recursive: bool = True, trusted: tuple[str, ...] = ("172.16.0.0/24",)):  # type: ignore[no-untyped-def]
    return nginx_realip("172.16.0.200", XFF, set_real_ip_from=trusted,
                        real_ip_header="X-Forwarded-For", recursive=recursive)


def test_walk_state_follows_the_trace_step_by_step() -> None:
    res = _recursive()
    assert len(res.trace) == 3
    first = walk_state(res, 0, forged=1)
    assert [c.text for c in first.cells] == ["127.0.0.1", "1.94.170.163", "172.16.0.116",
                                            "172.16.0.200"]
    assert [c.active for c in first.cells] == [False, False, False, True]
    assert first.cells[-1].is_peer and first.cells[0].forged
    assert not first.done and first.result == ""
    last = walk_state(res, None, forged=1)
    assert last.done
    assert [c.state for c in last.cells] == ["unseen", "untrusted", "trusted", "trusted"]
    assert [c.chosen for c in last.cells] == [False, True, False, False]
    assert last.cells[2].rule == "172.16.0.0/24"
    assert last.verdict == f"Step 3 of 3: {res.trace[2].why}"
    assert res.reason in last.result and "1.94.170.163" in last.result


def test_walk_marks_recursion_off_and_emqx_leftmost() -> None:
    off = walk_state(_recursive(recursive=False))
    assert [c.state for c in off.cells] == ["unseen", "unseen", "unchecked", "trusted"]
    assert off.cells[2].chosen
    emqx = walk_state(emqx_ws_peer("172.16.0.116", 41316, XFF))
    assert emqx.cells[0].chosen and emqx.cells[0].label == "• leftmost: used"
    assert emqx.cells[-1].state == "peer"


def test_walk_untrusted_peer_keeps_the_peer() -> None:
    st = walk_state(nginx_realip("1.94.170.163", XFF, set_real_ip_from=["172.16.0.0/24"],
                                 real_ip_header="X-Forwarded-For", recursive=True))
    assert st.cells[-1].chosen and st.cells[-1].state == "untrusted"
    assert all(c.state == "unseen" for c in st.cells[:-1])


def test_walk_views_are_deterministic_and_classed() -> None:
    res = _recursive()
    view = walk_view(res, 1, forged=1)
    html = view._repr_html_() or ""
    assert html.count("realip-entry-active") == 1
    assert 'class="realip-verdict"' in html
    assert "▶" in repr(view)
    fig = walk_figure(res, forged=1)
    assert repr(fig) == repr(walk_view(res, None, forged=1))
    assert fig.png() == walk_figure(res, forged=1).png()


# -- the stepper ----------------------------------------------------------------------------------


def test_stepper_moves_both_ways_within_bounds() -> None:
    s = Stepper("172.16.0.200", "1.94.170.163, 172.16.0.116", forged="127.0.0.1",
                set_real_ip_from="172.16.0.0/24")
    assert s.line == "127.0.0.1, 1.94.170.163, 172.16.0.116"
    assert s.total == 3 and s.cursor == 0
    s.back()
    assert s.cursor == 0
    s.next().next().next()
    assert s.cursor == 2 and s.state().done
    s.back()
    assert s.cursor == 1
    assert s.goto(-1).cursor == 2


def test_stepper_is_driven_by_nginx_realip() -> None:
    s = Stepper("172.16.0.200", "1.94.170.163, 172.16.0.116", forged="127.0.0.1",
                set_real_ip_from=["172.16.0.0/24"])
    assert s.resolution == _recursive()
    s.set(recursive=False)
    assert s.resolution == _recursive(recursive=False)
    assert s.resolution.addr == "172.16.0.116" and s.cursor == 0  # the learner's place kept
    s.goto(-1).set(recursive=True)
    assert s.cursor == 1  # the last step of the shorter walk, kept on the longer one
    s.set(recursive=False)
    s.set(recursive=True, set_real_ip_from="0.0.0.0/0")
    assert s.resolution.addr == "127.0.0.1"
    s.set(forged="")
    assert s.forged_count == 0 and s.line == "1.94.170.163, 172.16.0.116"


def test_stepper_from_trace_matches_the_simulation() -> None:
    trace = simulate(scenario("ws-multi-recursive"))
    s = Stepper.from_trace(trace, "lb3")
    assert (s.peer, s.forged, s.trusted, s.recursive) == (
        "172.16.0.200", "127.0.0.1", ("172.16.0.0/24",), True)
    assert s.resolution.addr == trace.view("lb3").variables["remote_addr"]


def test_stepper_bad_range_raises_and_keeps_state() -> None:
    s = Stepper("172.16.0.200", "1.94.170.163", set_real_ip_from="172.16.0.0/24")
    before = s.resolution
    with pytest.raises(ConfigurationError):
        s.set(set_real_ip_from="not-a-network")
    assert s.resolution == before and s.trusted == ("172.16.0.0/24",)


def test_stepper_widget_buttons_and_errors() -> None:
    pytest.importorskip("ipywidgets")
    s = Stepper("172.16.0.200", "1.94.170.163, 172.16.0.116", forged="127.0.0.1",
                set_real_ip_from="172.16.0.0/24", title="LB 3")
    box = s.widget()
    assert box is s.widget()
    ui = s._ui
    assert ui is not None
    assert ui["back"].disabled and not ui["next"].disabled
    assert "realip-stepper" in box._dom_classes and "realip-next" in ui["next"]._dom_classes
    ui["next"].click()
    assert s.cursor == 1 and "realip-entry-active" in ui["view"].value
    assert 'step 2 of 3' in ui["position"].value
    ui["back"].click()
    assert s.cursor == 0
    ui["trusted"].value = "172.16.0.0/33"  # a bad prefix: shown, never raised
    assert s.errors and "ConfigurationError" in s.errors[-1]
    assert any("ConfigurationError" in o.get("text", "") for o in ui["output"].outputs)
    assert s.trusted == ("172.16.0.0/24",)
    ui["recursive"].value = False
    assert s.resolution.addr == "172.16.0.116" and ui["output"].outputs == ()
    bundle = s._repr_mimebundle_()
    assert bundle["text/plain"] == s.text()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_stepper_callback_bug_goes_to_output(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ipywidgets")
    s = Stepper("172.16.0.200", "1.94.170.163", set_real_ip_from="172.16.0.0/24")
    s.widget()

    def boom() -> Stepper:
        raise RuntimeError("bug in a callback")

    monkeypatch.setattr(s, "next", boom)
    assert s._ui is not None
    s._ui["next"].click()
    assert "RuntimeError: bug in a callback" in s.errors[-1]
    assert "Traceback" in s.errors[-1]


# -- tables and the form -------------------------------------------------------------------------


def test_tables() -> None:
    prof = profile_view(aspects=["crc32c", "v1 port range"])
    assert [r[0] for r in prof.rows] == ["v1 port range", "CRC32C TLV"]
    assert prof.columns[1] == "spec auto"
    acc = acceptance_table(b"PROXY TCP4 010.001.002.003 198.51.100.1 56324 1883\r\n")
    outcomes = {r[0].split()[0]: r[1] for r in acc.rows}
    assert outcomes["spec"] == "rejects" and outcomes["haproxy"] == "accepts"
    modes = modes_table("172.16.0.200", XFF, trusted=["172.16.0.0/24"])
    picked = {r[0]: r[2] for r in modes.rows}
    assert picked == {"nginx realip, recursive on": "1.94.170.163",
                      "nginx realip, recursive off": "172.16.0.116",
                      "EMQX ws listener": "127.0.0.1", "HAProxy": "172.16.0.116",
                      "realip client_ip": "1.94.170.163"}
    assert "<table" in (modes._repr_html_() or "")


def test_config_form_runs_and_reports_errors() -> None:
    from realip.teaching import config

    form = ConfigForm(config("ws-single-lb1").text, forge_xff="127.0.0.1")
    assert form.result is not None
    assert form.result.trace.peername == "1.94.170.163:50412"
    bad = ConfigForm("this is { not nginx")
    assert bad.result is None and "could not simulate" in repr(bad)
    pytest.importorskip("ipywidgets")
    form.widget()
    assert form._ui is not None
    bundle = form._repr_mimebundle_()
    assert bundle["text/plain"] == repr(form)


# -- legibility (issue 10) ---------------------------------------------------------------------


def test_figures_fit_a_notebook_and_keep_text_legible() -> None:
    """Every figure is at most 9.6 in wide (shown 1:1 at 100 dpi) and no text is under 8 pt
    (11 px): the five-lane chains included."""
    trace = simulate(scenario("ws-multi-recursive"))
    for drawing in (draw_topology(trace), sequence_view(trace),
                    hex_figure(build(("115.236.21.86", 61177), ("172.16.0.116", 1883),
                                     version=2, crc32c=True))):
        fig = drawing.figure
        assert fig.get_size_inches()[0] <= 9.6 + 1e-9
        sizes = [t.get_fontsize() for ax in fig.axes for t in ax.texts]
        assert sizes and min(sizes) >= 8.0


def test_topology_without_outcome_hides_what_a_predict_asks() -> None:
    trace = simulate(scenario("ws-multi-recursive"))
    hidden = str(draw_topology(trace.topology, outcome=False))
    assert "broker peername = ?" in hidden and "X-Real-IP: 1.94" not in hidden
    assert trace.peername is not None and trace.peername not in hidden
    # a right address with a port that is not the client's says so
    assert "not its port 50412" in str(draw_topology(trace))


def test_sizes_do_not_wrap_and_passthrough_zone_starts_at_the_writer() -> None:
    from realip.viz.flow import _wrap, _zone_start

    wrapped = _wrap(["PROXY v2 PROXY 115.236.21.86:39817 → 172.16.0.116:1883 + CRC32C (35 B)"],
                    30)
    assert "(35 B)" in wrapped
    trace = simulate(scenario("tcp-multi-passthrough"))
    topo = trace.topology
    trusts = [v.trust for v in trace.views]
    assert _zone_start([topo.client, *topo.hops, topo.broker], trusts, trace.links) == 1


def test_websocket_captures_are_http_lines_with_the_hex_folded() -> None:
    dump = tcpdump(simulate(scenario("ws-single-tier")), "emqx")
    text = str(dump)
    assert "\tX-Forwarded-For: 115.236.21.86\n" in text and "0x0000:" in text
    html = dump._repr_html_() or ""
    lines_at = html.index("X-Forwarded-For: 115.236.21.86")
    assert lines_at < html.index("<details") < html.index("0x0000:")


def test_stepper_with_nothing_to_walk_says_why_not_step_1_of_0() -> None:
    pytest.importorskip("ipywidgets")
    s = Stepper("1.2.3.4", "5.6.7.8")  # no set_real_ip_from: realip does nothing
    s.widget()
    ui = s._ui
    assert ui is not None and s.total == 0
    assert "of 0" not in ui["position"].value
    assert "no set_real_ip_from applies" in ui["position"].value
    assert ui["trusted"].placeholder and ui["trusted"].continuous_update
