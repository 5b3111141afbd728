"""EMQX's own configuration (HOCON: ``emqx.conf`` / ``base.hocon``) read into a broker
listener, parsed with pyhocon (a maintained HOCON implementation) rather than by hand.

What is read, for ``listeners.<type>.<name>``: ``bind`` (its port), ``proxy_protocol``,
``proxy_protocol_timeout``, ``access_rules``, and for ``ws``/``wss``
``websocket.proxy_address_header`` / ``websocket.proxy_port_header`` (and 6.4's
``websocket.proxy_address_allow``, an assumption of the model's naming).  Every other key of the
listener is named in the warnings; a key realip knows with a value EMQX would refuse raises
:class:`~realip.errors.ConfigurationError` naming the setting path.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ...errors import ConfigurationError

__all__ = ["from_emqx_conf"]

_KNOWN_HARMLESS = {"bind", "max_connections", "max_conn_rate", "acceptors", "enable",
                   "zone", "mountpoint", "limiter", "enable_authn", "tcp_options",
                   "tcp_backend", "messages_rate", "bytes_rate"}


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    seconds = getattr(value, "seconds", None)
    if seconds is not None and hasattr(value, "minutes"):  # dateutil's relativedelta
        return float(value.hours * 3600 + value.minutes * 60 + seconds
                     + value.microseconds / 1e6)
    raise ConfigurationError(f"{where}: {value!r} is not a duration (e.g. 3s)")


def from_emqx_conf(text: str, *, listener: str = "tcp", name: str = "default",
                   filename: str = "emqx.conf") -> tuple[dict[str, Any], tuple[str, ...]]:
    """The settings of listener ``listeners.<listener>.<name>`` as keyword arguments for
    :class:`~realip.programs.base.Broker` (``kind="emqx"``), and the warnings."""
    from pyhocon import ConfigFactory  # type: ignore[import-untyped]
    from pyhocon.exceptions import ConfigException  # type: ignore[import-untyped]

    try:
        tree = ConfigFactory.parse_string(text)
    except (ConfigException, Exception) as exc:  # pyparsing errors carry line and column
        raise ConfigurationError(f"{filename}: does not parse as HOCON: {exc}") from None
    path = f"listeners.{listener}.{name}"
    try:
        conf = tree.get_config(path).as_plain_ordered_dict()
    except (ConfigException, AttributeError):
        raise ConfigurationError(f"{filename}: no {path} listener (EMQX listeners are "
                                 "listeners.<tcp|ssl|ws|wss>.<name>)") from None
    out: dict[str, Any] = {"kind": "emqx", "listener": "ws" if listener in ("ws", "wss")
                           else "tcp"}
    warnings: list[str] = []
    if listener in ("ssl", "wss"):
        warnings.append(f"{path}: TLS is not simulated; the listener is modelled as "
                        f"{out['listener']} without TLS")
    for key, value in conf.items():
        where = f"{filename}: {path}.{key}"
        if key == "bind":
            port = str(value).rpartition(":")[2]
            if not port.isdigit():
                raise ConfigurationError(f"{where}: {value!r}: give ip:port or a port")
            out["port"] = int(port)
        elif key == "proxy_protocol":
            if not isinstance(value, bool):
                raise ConfigurationError(f"{where}: {value!r}: true or false")
            out["proxy_protocol"] = value
        elif key == "proxy_protocol_timeout":
            out["proxy_protocol_timeout"] = _seconds(tree.get(f"{path}.{key}"), where)
        elif key == "access_rules":
            if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
                raise ConfigurationError(f"{where}: a list of \"allow|deny CIDR|all\" strings")
            for rule in value:
                verb = rule.strip().partition(" ")[0]
                if verb not in ("allow", "deny"):
                    raise ConfigurationError(f"{where}: {rule!r}: each rule starts with allow "
                                             "or deny")
            out["access_rules"] = tuple(value)
        elif key == "websocket" and isinstance(value, dict):
            for wkey, wvalue in value.items():
                if wkey == "proxy_address_header":
                    out["proxy_address_header"] = str(wvalue)
                elif wkey == "proxy_port_header":
                    out["proxy_port_header"] = str(wvalue)
                elif wkey == "proxy_address_allow":
                    out["proxy_address_allow"] = tuple(str(v) for v in wvalue)
                else:
                    warnings.append(f"{path}.websocket.{wkey} is not modelled (ignored)")
        elif key not in _KNOWN_HARMLESS:
            warnings.append(f"{path}.{key} is not modelled (ignored)")
    return out, tuple(warnings)
