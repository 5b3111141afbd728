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

from .drivers import ProgramError, ProgramMissing, find_haproxy, find_nginx
from .lab import Lab, LoopbackUnavailable, Probe, Progress, missing_loopback, netns_setup
from .loopback import Background, check_loopback, free_port

__all__ = ["Background", "check_loopback", "free_port"]
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
    "netns_setup",
]
