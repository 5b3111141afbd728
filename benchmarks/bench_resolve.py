"""Time the X-Forwarded-For walk of realip against the Python peers on the same input.

Input (the issue's case): a 10-entry X-Forwarded-For, 3 trusted CIDRs, the TCP peer trusted; the
three rightmost entries are proxies inside those CIDRs, so every walker reads four entries.
Prints µs per call and the ratio (peer / realip.client_ip; > 1 means client_ip is faster).
Peers: uvicorn's ``_TrustedHosts`` walk (what ``ProxyHeadersMiddleware`` calls), Werkzeug
``ProxyFix`` (its list split and pick), python-ipware ``IpWare.get_client_ip`` with a
``proxy_list``, and ``forwarded.client_from_x_forwarded``.  Each peer is set up once, outside
the timing, as its users would.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

from realip.resolve import client_ip, nginx_realip

PEER = "10.0.0.1"
TRUSTED = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
XFF = ("198.51.100.23, 203.0.113.9, 192.0.2.77, 198.51.100.200, 203.0.113.66, 192.0.2.1, "
       "203.0.113.7, 192.168.1.10, 172.16.0.116, 10.2.0.6")
HEADERS = [("X-Forwarded-For", XFF)]
EXPECTED = "203.0.113.7"


def best_us(fn: Callable[[], object], number: int = 2000, repeat: int = 3) -> float:
    """Best time per call in microseconds."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def round_robin(funcs: dict[str, Callable[[], object]], rounds: int = 12) -> dict[str, float]:
    """Best time of each, measured in turns so that load elsewhere hits all alike."""
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(rounds):
        for name, fn in funcs.items():
            best[name] = min(best[name], best_us(fn))
    return best


def candidates() -> dict[str, Callable[[], object]]:
    """Name → zero-argument callable returning the client address (None where a peer is absent)."""
    out: dict[str, Callable[[], object]] = {
        "realip.client_ip": lambda: client_ip(PEER, HEADERS, trusted=TRUSTED).addr,
        "realip.nginx_realip": lambda: nginx_realip(
            PEER, HEADERS, set_real_ip_from=TRUSTED, real_ip_header="X-Forwarded-For",
            recursive=True).addr,
    }
    try:
        from uvicorn.middleware.proxy_headers import _TrustedHosts

        hosts = _TrustedHosts(TRUSTED)
        out["uvicorn ProxyHeaders walk"] = lambda: (
            hosts.get_trusted_client_address(XFF)[0] if PEER in hosts else PEER)
    except ImportError:
        pass
    try:
        from werkzeug.middleware.proxy_fix import ProxyFix

        fix = ProxyFix(lambda e, s: [], x_for=4)
        out["werkzeug ProxyFix"] = lambda: fix._get_real_value(4, XFF)
    except ImportError:
        pass
    try:
        from python_ipware import IpWare

        # ipware's proxy_list is positional: one entry per hop, in chain order.
        ipw = IpWare(proxy_list=["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8"])
        meta = {"HTTP_X_FORWARDED_FOR": XFF, "REMOTE_ADDR": PEER}
        out["python-ipware"] = lambda: str(ipw.get_client_ip(meta)[0])
    except ImportError:
        pass
    try:
        import forwarded

        out["forwarded"] = lambda: str(forwarded.client_from_x_forwarded(
            XFF, PEER, trusted=TRUSTED).node.ip)  # type: ignore[union-attr]
    except ImportError:
        pass
    return out


def main() -> int:
    funcs = candidates()
    for name, fn in funcs.items():
        got = fn()
        print(f"{name:28} -> {got}")
        if got != EXPECTED:
            print(f"  (!) {name} does not find {EXPECTED}: its timing is not comparable")
    times = round_robin(funcs)
    ours = times["realip.client_ip"]
    print(f"\n{'implementation':28} {'µs/op':>8} {'ratio vs client_ip':>20}")
    for name, t in times.items():
        print(f"{name:28} {t:8.2f} {t / ours:19.1f}x")
    peers = [t for n, t in times.items() if not n.startswith("realip")]
    if peers:
        print(f"\nclient_ip vs the fastest peer: {min(peers) / ours:.1f}x (target: at least "
              "2.5x uvicorn's walk)")
    distinct_clients()
    return 0


def distinct_clients(n: int = 10_000) -> None:
    """The same chain with a different client on every request (10 000 of them, more than any
    memo keeps): what a new client costs, memo misses included."""
    try:
        from uvicorn.middleware.proxy_headers import _TrustedHosts
    except ImportError:
        return
    import itertools

    head, _, tail = XFF.partition("203.0.113.7")
    lists = [f"{head}203.{i >> 8 & 255}.{i & 255}.7{tail}" for i in range(n)]
    headers = itertools.cycle([[("X-Forwarded-For", x)] for x in lists])
    texts = itertools.cycle(lists)
    hosts = _TrustedHosts(TRUSTED)
    times = round_robin({
        "realip.client_ip": lambda: client_ip(PEER, next(headers), trusted=TRUSTED).addr,
        "uvicorn ProxyHeaders walk": lambda: (
            hosts.get_trusted_client_address(next(texts))[0] if PEER in hosts else PEER),
    }, rounds=4)
    ours = times["realip.client_ip"]
    print(f"\n{n} distinct clients (every client entry new to both memos):")
    for name, t in times.items():
        print(f"{name:28} {t:8.2f} {t / ours:19.1f}x")


if __name__ == "__main__":
    raise SystemExit(main())
