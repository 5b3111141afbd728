"""Per-connection rate limits for the lab broker: EMQX 5's listener ``messages_rate`` /
``bytes_rate`` (with ``messages_burst`` / ``bytes_burst``), as token buckets.

EMQX 5.8 (``emqx_connection:when_bytes_in/3``) charges every read of a connection to two
buckets — ``bytes`` with the bytes read and ``messages`` with the number of MQTT packets they
framed, *every kind of packet*, not only PUBLISH — and when a bucket runs dry it stops reading
that socket for as long as the bucket needs to refill (log ``socket_receive_paused_by_rate_limit``):
back-pressure, not a disconnection.  :class:`TokenBucket` is that arithmetic, sans-IO: the
caller passes the clock and sleeps for what :meth:`TokenBucket.take` returns.

A rate is written as EMQX writes it: ``"1000/s"``, ``"1000/10s"``, ``"1MB/s"``, ``"100MB/60m"``
(time units ``ms``, ``s``, ``m``, ``h``, ``d``; sizes ``KB``, ``MB``, ``GB`` of 1024), or
``"infinity"``; a bare number is per second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["Rate", "TokenBucket", "parse_rate"]

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*",
                   re.IGNORECASE)
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|b)?\s*", re.IGNORECASE)
_SIZES = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Rate:
    """*amount* tokens every *interval* seconds (``"1000/10s"`` is ``Rate(1000, 10)``)."""

    amount: float
    interval: float

    @property
    def per_second(self) -> float:
        return self.amount / self.interval


def parse_rate(value: str | float | None, name: str, *, size: bool = False) -> Rate | None:
    """*value* as a :class:`Rate` (None for no limit: ``None`` or ``"infinity"``); *size*
    allows ``KB``/``MB``/``GB`` amounts.  A bad value raises :class:`ConfigurationError`
    quoting it."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a rate like '1000/s', not {value!r}")
    if isinstance(value, int | float):
        if value <= 0:
            raise ConfigurationError(f"{name}={value!r} must be above 0 (None: no limit)")
        return Rate(float(value), 1.0)
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a rate like '1000/s', not {value!r}")
    if value.strip().lower() == "infinity":
        return None
    match = _RATE.fullmatch(value)
    if match is None:
        raise ConfigurationError(f"{name}={value!r} is not a rate: write it as '1000/s', "
                                 f"'1000/10s'{', ' + repr('1MB/s') if size else ''} or "
                                 f"'infinity'")
    amount, unit, count, per = match.groups()
    if unit is not None and not size:
        raise ConfigurationError(f"{name}={value!r}: a message rate has no size unit")
    tokens = float(amount) * _SIZES[(unit or "b").lower()]
    interval = float(count or 1) * _SECONDS[per.lower()]
    if tokens <= 0 or interval <= 0:
        raise ConfigurationError(f"{name}={value!r} must be above 0 (None or 'infinity': no "
                                 f"limit)")
    return Rate(tokens, interval)


def parse_amount(value: str | int | None, name: str, *, size: bool = False) -> float:
    """A burst (``messages_burst``/``bytes_burst``): a count, or a size with *size*; 0 when
    None.  EMQX writes a burst as a rate (``"10000/60m"``): its amount is what is taken."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a number, not {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigurationError(f"{name}={value!r} must be >= 0")
        return float(value)
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a number, not {value!r}")
    text = value.split("/", 1)[0]
    match = _AMOUNT.fullmatch(text)
    if match is None or (match.group(2) is not None and not size):
        raise ConfigurationError(f"{name}={value!r} is not a burst: write it as a number"
                                 f"{' or a size like ' + repr('100MB') if size else ''}")
    return float(match.group(1)) * _SIZES[(match.group(2) or "b").lower()]


class TokenBucket:
    """A token bucket that refills at *rate* and holds at most ``rate.amount + burst`` tokens
    (one interval's worth, plus the burst); it starts full.

    :meth:`take` always takes (the bytes are already read): the bucket may go below zero, and
    the answer is how long to stop reading until it is back at zero — what EMQX's connection
    does with a ``pause`` from its limiter."""

    __slots__ = ("capacity", "per_second", "tokens", "updated")

    def __init__(self, rate: Rate, burst: float = 0.0, now: float = 0.0) -> None:
        self.per_second = rate.per_second
        self.capacity = rate.amount + burst
        self.tokens = self.capacity
        self.updated = now

    def take(self, n: float, now: float) -> float:
        """Take *n* tokens at time *now* (seconds); return the seconds to pause (0: none)."""
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.per_second)
            self.updated = now
        self.tokens -= n
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.per_second
