"""Re-make every TLS recording of tests/vectors/tls_behaviour.json on the real nginx and HAProxy.

One run of :func:`._tls_record.record` (a fresh PKI, one nginx, one HAProxy, the capture
upstreams; about 25 s) produces every case again; each case's :func:`._tls_record.stable`
projection — configuration, logged variables, normalised log lines, what the client saw, the
upstream's PROXY header and whether the bytes after it are the client's own, the plaintext the
upstream decrypted — must equal the stored one, and the client's wait must match to within
0.4 s (timeouts are 1 s in these configurations).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import REQUIRE

try:  # the recorder makes its certificates with the lab extra's cryptography
    import cryptography  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    if REQUIRE:
        raise
    pytest.skip("cryptography is not installed (pip install -e .[lab])", allow_module_level=True)

from ._tls_record import VECTORS, cases, record, stable

pytestmark = pytest.mark.real

STORED: dict[str, dict[str, Any]] = {c["name"]: c for c in json.loads(VECTORS.read_text())}


@pytest.fixture(scope="module")
def live(nginx_bin: str, haproxy_bin: str, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[str, Any]:
    start = time.monotonic()
    vectors = record(Path(tmp_path_factory.mktemp("tls-record")))
    return {"took": time.monotonic() - start, "cases": {v["name"]: v for v in vectors}}


def test_every_stored_case_is_recorded_again(live: dict[str, Any]) -> None:
    assert set(live["cases"]) == set(STORED) == {c.name for c in cases()}
    assert live["took"] <= 60, f"the recording took {live['took']:.1f} s"


@pytest.mark.parametrize("name", sorted(STORED))
def test_case_matches_the_real_program(live: dict[str, Any], name: str) -> None:
    want, got = STORED[name], live["cases"][name]
    assert got["version"] == want["version"], (
        f"{got['program']} {got['version']} here; the vectors describe {want['version']}")
    assert stable(got) == stable(want)
    t_got, t_want = got["client_saw"]["after_s"], want["client_saw"]["after_s"]
    assert abs(t_got - t_want) <= 0.4, (t_got, t_want)
