"""``mosquitto.conf`` read into a broker listener: the ``listener PORT [ADDR]`` line the client's
traffic reaches and the ``enable_proxy_protocol`` line under it (Mosquitto 2.1+)."""

from __future__ import annotations

from typing import Any

from ...errors import ConfigurationError

__all__ = ["from_mosquitto_conf"]


def from_mosquitto_conf(text: str, *, port: int | None = None, filename: str = "mosquitto.conf"
                        ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Keyword arguments for :class:`~realip.programs.base.Broker` (``kind="mosquitto"``) for
    the listener on *port* (the only one when None), and the warnings."""
    listeners: list[dict[str, Any]] = []
    warnings: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{filename}:{lineno}"
        if words[0] == "listener":
            if len(words) < 2 or not words[1].isdigit():
                raise ConfigurationError(f"{where}: listener needs a port")
            listeners.append({"port": int(words[1]), "at": where})
        elif words[0] == "enable_proxy_protocol":
            if not listeners:
                raise ConfigurationError(f"{where}: enable_proxy_protocol belongs to a listener"
                                         " (put it after a listener line)")
            if words[1:] not in (["1"], ["2"]):
                raise ConfigurationError(f"{where}: enable_proxy_protocol 1 or 2")
            listeners[-1]["enable_proxy_protocol"] = int(words[1])
        elif words[0] == "protocol" and listeners and words[1:2] == ["websockets"]:
            warnings.append(f"{where}: websockets listeners are not simulated for Mosquitto")
    chosen = [ln for ln in listeners if port is None or ln["port"] == port]
    if len(chosen) != 1:
        ports = ", ".join(str(ln["port"]) for ln in listeners) or "none"
        raise ConfigurationError(f"{filename}: say which listener (ports: {ports})")
    found = chosen[0]
    out: dict[str, Any] = {"kind": "mosquitto", "name": "mosquitto", "port": found["port"],
                           "listener": "tcp", "version": "2.1",
                           "enable_proxy_protocol": found.get("enable_proxy_protocol")}
    return out, tuple(warnings)
