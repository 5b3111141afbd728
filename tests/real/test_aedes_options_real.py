"""aedes' options as audit input, against the real aedes-server-factory: for each options file,
what :func:`realip.programs.aedes.config.from_aedes_options` reads (or the reason it refuses
the file) is what the real ``createServer(aedes, options)`` does with a forged PROXY header.

A value the reader refuses says what aedes would make of it ("turns trustProxy on", "it would
ignore it"): that claim is checked here too.  Live on 127.0.54.x; a missing ``node`` or
``node_modules`` (``npm ci`` in realip/lab/node) skips — and fails under
``REALIP_REQUIRE_REAL=1``.
"""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from typing import Any

import pytest

from realip import ConfigurationError
from realip.programs.aedes.config import from_aedes_options
from realip.topology import load_scenario, simulate
from realip.wire import mqtt_connect

from ._programs import free_port

pytestmark = pytest.mark.real

HOST, SRC = "127.0.54.10", "127.0.54.11"
FORGED = "198.51.100.66"

#: options files (JSON, as a user writes them) and what aedes-server-factory 0.2.1 does: the
#: reader's settings for the good ones, the claim of its error message for the others
CASES: list[tuple[str, dict[str, Any]]] = [
    ("trust-on", {"trustProxy": True}),
    ("trust-off", {"trustProxy": False}),
    ("empty", {}),
    ("trust-null", {"trustProxy": None}),
    ("trust-string-false", {"trustProxy": "false"}),
    ("trust-string-true", {"trustProxy": "true"}),
    ("trust-empty-string", {"trustProxy": ""}),
    ("trust-zero", {"trustProxy": 0}),
    ("trust-one", {"trustProxy": 1}),
    ("trust-empty-list", {"trustProxy": []}),
    ("typo-lower-case", {"trustproxy": True}),
    ("tcp-options", {"trustProxy": True, "tcp": {"allowHalfOpen": True}}),
]


def _expected_trust(text: str) -> tuple[bool, str]:
    """trustProxy as the reader says aedes takes it, and how it says so."""
    try:
        settings, _ = from_aedes_options(text, filename="o.json", transport="tcp")
    except ConfigurationError as exc:
        message = str(exc)
        if "turns trustProxy on" in message:
            return True, message
        if "turns trustProxy off" in message:
            return False, message
        assert "it would ignore it" in message, message
        return False, message  # an ignored key leaves the factory's default: off
    return bool(settings["trust_proxy"]), "read"


@pytest.fixture(scope="module")
def node_ok() -> None:
    from realip.lab.drivers.aedes import find_aedes, missing_detail

    from .conftest import _need

    _need(None if find_aedes(refresh=True) is None else "aedes",
          f"aedes ({missing_detail()})")


@pytest.mark.parametrize(("name", "options"), CASES, ids=[c[0] for c in CASES])
def test_the_reader_says_what_the_real_factory_does(node_ok: None, name: str,
                                                   options: dict[str, Any]) -> None:
    from realip.lab.drivers.aedes import AedesListener

    text = json.dumps(options, indent=2)
    trust, how = _expected_trust(text)
    port = free_port(HOST)
    base = load_scenario("aedes-malformed-header-down")
    header = f"PROXY TCP4 {FORGED} {HOST} 31337 {port}\r\n"
    topo = replace(base, client=replace(base.client, send_proxy=header),
                   broker=replace(base.broker, trust_proxy=trust))
    predicted = simulate(topo).peername  # the model of that listener, on the same bytes
    cid = f"opt-{name}"
    with AedesListener([("tcp", HOST, port)], options=options) as aedes:
        mark = aedes.mark()
        with socket.create_connection((HOST, port), timeout=3, source_address=(SRC, 0)) as s:
            s.sendall(header.encode() + mqtt_connect(cid))
            ev = aedes.wait_for(lambda e: (e.event == "client" and e.fields.get("id") == cid)
                                or e.event in ("clientError", "connectionError"), 2.0,
                                after=mark)
        assert aedes.alive
    got = ev.details if ev is not None and ev.event == "client" else None
    if predicted is None:  # trustProxy off: the PROXY line reaches the MQTT parser
        assert got is None, (how, ev)
    else:
        assert got is not None, (how, ev)
        assert (got["ipAddress"], str(got["port"])) == (FORGED, "31337") == \
            tuple(predicted.rsplit(":", 1)), how
