"""The live lab: real sockets on loopback addresses.

* :mod:`realip.lab.broker` — :class:`~realip.lab.broker.LabBroker`, a small MQTT broker (3.1.1
  and 5.0, TCP and WebSocket) whose listeners follow EMQX's rules (``proxy_protocol``,
  ``access_rules``, ``proxy_address_header`` …) by running the simulator's own listener model,
  or realip's safe rules; it records every client's peername and answers ``$realip/whoami``.
* :mod:`realip.lab.relay` — :class:`~realip.lab.relay.HopRelay`, each hop of a
  :class:`~realip.topology.Topology` as a live relay running the simulator's own hop logic.
* :class:`Background` — an event loop in a thread, so that blocking clients (paho-mqtt) and
  notebooks can drive the servers from ordinary code.
* :mod:`realip.lab.drivers` — the real nginx and HAProxy: found, configured by
  :mod:`realip.render`, started privately, health-checked, stopped, their logs collected.
* :mod:`realip.lab.lab` — :class:`Lab`, a whole topology on loopback addresses (python relays or
  the real programs, per hop) with the lab broker, cleaned up however it ends; :meth:`Lab.connect`
  connects a paho-mqtt client from the client's address and returns a :class:`Probe`: the
  broker's peername beside the simulator's prediction.

Everything here listens on and connects to loopback addresses only (``127.x.y.z``, ``::1``):
:func:`check_loopback` refuses anything else.

In a notebook, the kernel's own event loop can run the servers (``await broker.start()`` in a
cell) while paho-mqtt clients run in their threads; scripts and tests use :class:`Background`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
from collections.abc import Awaitable, Coroutine
from ipaddress import ip_address
from typing import Any, TypeVar

from ..errors import ConfigurationError

__all__ = ["Background", "check_loopback", "free_port"]

T = TypeVar("T")


def check_loopback(addr: str) -> str:
    """*addr* if it is a loopback address; :class:`~realip.ConfigurationError` otherwise (the
    lab never listens on or dials anything else)."""
    try:
        ip = ip_address(addr)
    except ValueError:
        raise ConfigurationError(f"the lab needs a loopback address, not {addr!r}") from None
    mapped = getattr(ip, "ipv4_mapped", None)
    if not (ip.is_loopback or (mapped is not None and mapped.is_loopback)):
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
from .drivers import ProgramError, ProgramMissing, find_haproxy, find_nginx  # noqa: E402
from .lab import Lab, LoopbackUnavailable, Probe, Progress, missing_loopback  # noqa: E402

__all__ += [
    "Lab",
    "LoopbackUnavailable",
    "Probe",
    "ProgramError",
    "ProgramMissing",
    "Progress",
    "find_haproxy",
    "find_nginx",
    "missing_loopback",
]
