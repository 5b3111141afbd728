"""Loopback addresses, free ports and the background event loop every live-lab part shares."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Awaitable, Coroutine
from ipaddress import ip_address
from typing import Any, TypeVar

from ..errors import ConfigurationError

__all__ = ["Background", "check_loopback", "free_port", "private_netns"]

T = TypeVar("T")


def private_netns() -> bool:
    """Whether this process runs in a network namespace whose only interface is ``lo`` (one
    made with ``unshare -n``): nothing sent there can reach any other machine."""
    try:  # /proc/self/net is this process's namespace (/sys/class/net is the mount's)
        with open("/proc/self/net/dev", encoding="ascii") as f:
            names = [ln.split(":")[0].strip() for ln in f.read().splitlines()[2:]]
    except OSError:
        return False
    return names == ["lo"]


def check_loopback(addr: str) -> str:
    """*addr* if it is a loopback address — or, inside a private network namespace
    (:func:`private_netns`), any address; :class:`~realip.ConfigurationError` otherwise (the
    lab never listens on or dials anything else)."""
    try:
        ip = ip_address(addr)
    except ValueError:
        raise ConfigurationError(f"the lab needs a loopback address, not {addr!r}") from None
    mapped = getattr(ip, "ipv4_mapped", None)
    if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)) and \
            not private_netns():
        raise ConfigurationError(f"the lab only uses loopback addresses (127.x.y.z, ::1), not "
                                 f"{addr}: map the topology first (realip.render.loopback_plan)")
    return addr


def free_port(addr: str = "127.0.0.1") -> int:
    """A TCP port free on loopback address *addr* right now (for pinning ports before the
    servers start, e.g. :func:`realip.render.topology_on`)."""
    check_loopback(addr)
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


class Background:
    """An asyncio event loop running in a daemon thread.

    >>> with Background() as bg:
    ...     bg.run(asyncio.sleep(0, "done"))
    'done'

    :meth:`run` waits for a coroutine's result (with a timeout); :meth:`close` cancels what is
    left and stops the thread.  Start servers here and use blocking clients from the caller's
    thread (tests, notebook cells).
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="realip-lab", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T] | Awaitable[T], timeout: float | None = 10.0) -> T:
        """Run *coro* on the background loop and return its result."""
        future = asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        """Cancel remaining tasks, stop the loop and join the thread."""
        if self.loop.is_closed():
            return

        async def cancel_all() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5.0)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _wrap(aw: Awaitable[T]) -> T:
    return await aw


# The lab itself (imported last: its modules import the helpers above).
