"""Time one step of the recursion stepper widget (notebook 05): the budget is 50 ms per step.

What is timed is everything the kernel does for a click — the Button callback, re-rendering the
row and the verdict, updating the widgets' traits (which sends the comm messages when a frontend
is attached) — and for a switch, re-running ``nginx_realip`` as well.  Without a frontend the
comm sends are no-ops, so this is the kernel's share; the browser's repaint comes on top.

    python benchmarks/bench_widget_step.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from realip.viz import Stepper

BUDGET_MS = 50.0


def _stepper() -> Stepper:
    # the article's method 2, with a longer forged prefix so the walk has more to draw
    return Stepper("172.16.0.200", "1.94.170.163, 172.16.0.116",
                   forged="127.0.0.1, 10.9.8.7, 192.0.2.1, 198.51.100.7",
                   set_real_ip_from="172.16.0.0/24", title="LB 3")


def _timed(action: Callable[[], object], rounds: int = 200) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        action()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    s = _stepper()
    s.widget()
    ui = s._ui
    assert ui is not None
    clicks = iter(range(10**9))

    def click() -> None:  # Next until the end, then Back to the start, and again
        (ui["next"] if next(clicks) // (s.total - 1) % 2 == 0 else ui["back"]).click()

    flips = iter(range(10**9))

    def toggle() -> None:
        ui["recursive"].value = next(flips) % 2 == 0

    results = {"Next/Back click": _timed(click), "real_ip_recursive switch": _timed(toggle)}
    assert not s.errors, s.errors
    print(f"{'action':<26} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}   budget {BUDGET_MS:g} ms")
    for name, times in results.items():
        times.sort()
        p95 = times[int(len(times) * 0.95) - 1]
        verdict = "ok" if p95 < BUDGET_MS else "OVER BUDGET"
        print(f"{name:<26} {statistics.median(times):>10.3f} {p95:>8.3f} {max(times):>8.3f}"
              f"   {verdict}")


if __name__ == "__main__":
    main()
