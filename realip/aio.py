"""Reading PROXY protocol headers in asyncio servers, safely.

The sans-IO :class:`~realip.proxy_protocol.Reader` does the parsing; this module adds what an
asyncio server needs around it (peers.md §A2, §E, §F):

* a **deadline** for the whole header (a peer sending one byte per 100 ms still hits it) and the
  codec's **size caps** (107-byte v1 line, ``max_v2_size`` for v2);
* a **per-peer policy** compiled once from CIDRs (:class:`PeerPolicy`), typed after
  go-proxyproto's REQUIRE/USE/REJECT/IGNORE/SKIP (:class:`Policy`);
* **LOCAL** headers (HAProxy and load-balancer health checks) and v1 ``UNKNOWN`` keep the real
  addresses and are not errors;
* **nothing after the header is lost**: the application gets every byte that followed it;
* one bad connection closes that connection only: the accept loop goes on.

Two styles:

**Protocol** — :class:`ProxyProtocolFactory` wraps your protocol factory for
``loop.create_server``.  It buffers until the header is decided, then hands your protocol its
``connection_made`` with a transport whose ``get_extra_info("peername")`` /
``("sockname")`` are the addresses the header carried (``"proxy_result"`` gives the whole
:class:`ProxyResult`, ``"real_peername"`` the TCP peer), followed by ``data_received`` with the
bytes that came after the header::

    factory = ProxyProtocolFactory(MyProtocol, policy=PeerPolicy(["10.0.0.0/8"]))
    server = await loop.create_server(factory, "127.0.0.1", 1883)

**Streams** — :func:`start_server` is ``asyncio.start_server`` with the same options (the
callback's ``writer.get_extra_info("peername")`` is the resolved address, its reader holds the
bytes after the header), and :func:`read_proxy_header` reads a *required* header from a
``StreamReader`` you already have, taking exactly the header's bytes and not one more.

Policies decide per TCP peer whether a header is expected.  The specification forbids guessing:
a listener that accepts both proxied and direct connections lets every direct client forge its
address with a header of its own.  So :attr:`Policy.OPTIONAL` belongs only to *trusted* peers
(``PeerPolicy(trusted, trusted_policy=Policy.OPTIONAL)``), and untrusted peers get
:attr:`Policy.REJECT` (a header from them closes the connection) or :attr:`Policy.SKIP`
(nothing is looked for: their bytes reach the application as they are).

This module (and ``realip.lab``) is the only place realip imports asyncio; the core stays
sans-IO.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from .errors import InvalidProxyHeader, RealIPError, Reason
from .proxy_protocol import (
    V1_MAX_LINE,
    V2_DEFAULT_MAX_SIZE,
    V2_SIGNATURE,
    Endpoint,
    ProxyHeader,
    Reader,
)
from .proxy_protocol._v1table import START, V1_TABLE
from .trust import Trust

__all__ = [
    "PeerPolicy",
    "Policy",
    "ProxyPolicyError",
    "ProxyProtocol",
    "ProxyProtocolFactory",
    "ProxyResult",
    "endpoint",
    "read_proxy_header",
    "start_server",
]

log = logging.getLogger("realip.aio")

_V1_MIN = len(b"PROXY UNKNOWN\r\n")  # the shortest v1 header
_V2_FIXED = 16


class Policy(str, enum.Enum):
    """What a listener does about a PROXY header from one TCP peer (go-proxyproto's policies)."""

    #: A header must come first; a missing or malformed one closes the connection.  Give it to
    #: trusted proxies only: REQUIRE alone honours a header from anyone who can connect.
    REQUIRE = "require"
    #: A header is used when present, otherwise the real addresses stay (go-proxyproto's USE).
    #: The specification warns that a receiver must not guess: on a listener open to clients,
    #: any client can then forge its address.  Use it for trusted peers only.
    OPTIONAL = "optional"
    #: A header, when present, is read and dropped; the real addresses stay.
    IGNORE = "ignore"
    #: A header closes the connection; without one the real addresses stay.
    REJECT = "reject"
    #: Nothing is looked for: every byte reaches the application unchanged.
    SKIP = "skip"
    #: The connection is closed at once, before anything is read (an access rule).
    DROP = "drop"


class PeerPolicy:
    """A policy per TCP peer, compiled once: *trusted_policy* for peers in *trusted* (CIDRs,
    addresses, presets such as ``"loopback"``, ``"unix:"`` — see :class:`~realip.trust.Trust`),
    *untrusted_policy* for everybody else.  A bad entry raises
    :class:`~realip.ConfigurationError` here, not while serving.

    >>> p = PeerPolicy(["10.0.0.0/8"])
    >>> p(endpoint(("10.1.2.3", 40000))).value, p(endpoint(("203.0.113.7", 1))).value
    ('require', 'reject')
    """

    __slots__ = ("trust", "trusted_policy", "untrusted_policy")

    def __init__(self, trusted: Iterable[str] | str | Trust, *,
                 trusted_policy: Policy = Policy.REQUIRE,
                 untrusted_policy: Policy = Policy.REJECT) -> None:
        self.trust = trusted if isinstance(trusted, Trust) else Trust(trusted)
        self.trusted_policy = Policy(trusted_policy)
        self.untrusted_policy = Policy(untrusted_policy)
        if self.untrusted_policy is Policy.OPTIONAL:
            warnings.warn("Policy.OPTIONAL for untrusted peers lets any client forge its address "
                          "with a PROXY header", UserWarning, stacklevel=2)

    def __call__(self, peer: Endpoint) -> Policy:
        host = peer.host
        if isinstance(host, str) and not host.startswith("unix:"):
            return self.untrusted_policy
        return self.trusted_policy if self.trust(host) else self.untrusted_policy

    def __repr__(self) -> str:
        return (f"PeerPolicy({[r.text for r in self.trust.rules]!r}, trusted_policy="
                f"{self.trusted_policy.value}, untrusted_policy={self.untrusted_policy.value})")


PolicyLike = Policy | PeerPolicy | Callable[[Endpoint], Policy]


def _compile_policy(policy: PolicyLike) -> Callable[[Endpoint], Policy]:
    if isinstance(policy, Policy):
        if policy is Policy.OPTIONAL:
            warnings.warn("Policy.OPTIONAL for every peer lets any client forge its address with "
                          "a PROXY header; use PeerPolicy(trusted, trusted_policy=OPTIONAL)",
                          UserWarning, stacklevel=3)
        fixed = policy
        return lambda _peer: fixed
    return policy


class ProxyPolicyError(RealIPError):
    """A well-formed header the policy does not allow (:attr:`Policy.REJECT`), or a connection
    the policy drops (:attr:`Policy.DROP`)."""

    def __init__(self, policy: Policy, detail: str, header: ProxyHeader | None = None) -> None:
        self.policy = policy
        self.header = header
        super().__init__(f"{policy.value}: {detail}")


def endpoint(addr: Any) -> Endpoint:
    """An :class:`~realip.proxy_protocol.Endpoint` from a socket address (``("1.2.3.4", 5)``,
    ``("::1", 5, 0, 0)``, a UNIX path), as ``get_extra_info("peername")`` returns it."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        try:
            return Endpoint(ip_address(addr[0]), int(addr[1]))
        except ValueError:
            return Endpoint(f"unix:{addr[0]}", None)
    if isinstance(addr, bytes):
        addr = addr.decode("utf-8", "replace")
    return Endpoint(f"unix:{addr or ''}", None)


def _sockaddr(ep: Endpoint) -> Any:
    """The socket-module spelling of *ep* (what ``peername`` normally is)."""
    host = ep.host
    if isinstance(host, IPv6Address):
        return (str(host), ep.port, 0, 0)
    if isinstance(host, IPv4Address):
        return (str(host), ep.port)
    return host[5:] if host.startswith("unix:") else host


@dataclass(frozen=True)
class ProxyResult:
    """What was decided for one connection.

    ``peer``/``local`` are the real TCP endpoints (``None`` when unknown); ``header`` the header
    read (``None`` when none was sent or looked for); ``used`` whether its addresses are in
    effect (not for LOCAL/UNKNOWN headers, nor under :attr:`Policy.IGNORE`).
    """

    peer: Endpoint | None
    local: Endpoint | None
    policy: Policy
    header: ProxyHeader | None = None
    used: bool = False

    @property
    def source(self) -> Endpoint | None:
        """The client: the header's source when used, else the real peer."""
        if self.used and self.header is not None and self.header.source is not None:
            return self.header.source
        return self.peer

    @property
    def destination(self) -> Endpoint | None:
        """The address the client dialled: the header's destination when used, else the real
        local address."""
        if self.used and self.header is not None and self.header.destination is not None:
            return self.header.destination
        return self.local

    @property
    def is_local(self) -> bool:
        """True for a LOCAL (health-check) or UNKNOWN header: the real addresses stay."""
        return self.header is not None and self.header.is_local

    @property
    def proxied(self) -> bool:
        """True when the header's addresses replaced the real ones."""
        return self.source is not self.peer


def _starts_like_header(buf: bytes | bytearray) -> bool | None:
    """True if *buf* begins with a PROXY signature, False if it cannot, None if too short to
    tell (a proper prefix of ``PROXY`` or of the 12-byte v2 signature)."""
    n = len(buf)
    if n >= 12 and buf[:12] == V2_SIGNATURE:
        return True
    if n >= 5 and buf[:5] == b"PROXY":
        return True
    if buf == V2_SIGNATURE[:n] or buf == b"PROXY"[:n]:
        return None
    return False


#: the shortest text the strict decoder accepts for each field of a v1 line after ``PROXY ``
#: (protocol, source, destination, source port, destination port): ``0.0.0.0``, ``::``, ``0``
_V1_FIELDS = {b"TCP4": (4, 7, 7, 1, 1), b"TCP6": (4, 2, 2, 1, 1)}


def _literal_prefixes(version: int | None) -> frozenset[bytes]:
    """The buffers (after one more byte) that Reader.feed answers "incomplete" without any
    decode and without changing its state: a proper prefix of ``PROXY TCP4 ``, ``PROXY TCP6
    `` or ``PROXY UNKNOWN`` up to 10 bytes (v1 allowed), the v2 signature up to its 12 bytes
    (v2 allowed) — Reader.feed's own literal checks, as a set."""
    out: set[bytes] = set()
    if version != 2:
        for lit in (b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN"):
            out.update(lit[:n] for n in range(1, 11))
    if version != 1:
        out.update(V2_SIGNATURE[:n] for n in range(1, 13))
    return frozenset(out)


_LITERALS = {v: _literal_prefixes(v) for v in (None, 1, 2)}


def _want(buf: bytes | bytearray) -> int:
    """How many bytes can be read without passing the end of a header that starts with *buf*
    (at least 1): the minimum header size first, then the v2 length field; for a v1 line, the
    shortest rest of a line the strict decoder accepts (so that reads never take a byte of the
    application data, whatever the split)."""
    n = len(buf)
    if n == 0:
        return _V1_MIN
    if buf[0] == 0x0D:
        if n < _V2_FIXED:
            return _V2_FIXED - n
        return max(1, _V2_FIXED + ((buf[14] << 8) | buf[15]) - n)
    if n < _V1_MIN:
        return _V1_MIN - n
    if buf[-1] == 0x0D:
        return 1
    fields = bytes(buf[6:]).split(b" ")
    mins = _V1_FIELDS.get(fields[0])
    if mins is None or len(fields) > len(mins):
        return 2  # UNKNOWN (anything may follow) or a line the decoder is about to refuse
    last = len(fields) - 1
    need = max(0, mins[last] - len(fields[last]))
    return max(2, need + sum(m + 1 for m in mins[last + 1 :]) + 2)


def _timeout_error(timeout: float, received: int) -> InvalidProxyHeader:
    return InvalidProxyHeader(Reason.TIMEOUT, f"no complete header after {timeout:g} s "
                              f"({received} bytes received)")


async def read_proxy_header(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter | None = None,
    *,
    timeout: float = 3.0,
    max_v2_size: int = V2_DEFAULT_MAX_SIZE,
    version: int | None = None,
    verify_crc32c: bool = True,
) -> ProxyResult:
    """Read a **required** PROXY header from *reader*: exactly its bytes, not one more, so the
    stream continues with the application data.  *writer* (optional) supplies the real
    addresses for the result.  Raises :class:`~realip.InvalidProxyHeader`: the codec's reasons,
    :attr:`~realip.Reason.TRUNCATED` when the peer closes inside the header,
    :attr:`~realip.Reason.TIMEOUT` when *timeout* seconds pass first.

    Optional headers (:class:`Policy` other than REQUIRE) need the bytes read while looking for
    a signature to go back to the application: use :func:`start_server` or
    :class:`ProxyProtocolFactory` for those.
    """
    parser = Reader(version=version, max_v2_size=max_v2_size, verify_crc32c=verify_crc32c)
    buf = bytearray()
    # One deadline for the whole header (what asyncio.timeout does on 3.11+): reads that find
    # their bytes already buffered cost no task each.
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = loop.call_later(timeout, expire)
    fed = 0
    try:
        while True:
            chunk = await reader.read(_want(buf))
            if not chunk:
                parser.feed(buf[fed:])
                parser.eof()  # raises TRUNCATED
            buf += chunk
            # A v1 line arrives in small exact steps: decode it only when it can be judged
            # (the signature, a LF, the length cap), not after every step.
            n = len(buf)
            if buf[0] == 0x0D or n <= _V1_MIN or b"\n" in chunk or n > V1_MAX_LINE:
                header = parser.feed(buf[fed:])
                fed = n
            else:
                continue
            if header is not None:
                peer = local = None
                if writer is not None:
                    peer = endpoint(writer.get_extra_info("peername"))
                    local = endpoint(writer.get_extra_info("sockname"))
                return ProxyResult(peer, local, Policy.REQUIRE, header, not header.is_local)
    except asyncio.CancelledError:
        if not fired:
            raise
        uncancel = getattr(task, "uncancel", None)
        if uncancel is not None:
            uncancel()
        raise _timeout_error(timeout, len(buf)) from None
    finally:
        handle.cancel()


# ==============================================================================================
# Protocol style


class ProxyProtocolFactory:
    """A protocol factory for ``loop.create_server`` that reads the PROXY header first.

    *inner* is your protocol factory.  *policy* is a :class:`Policy` for every peer, a
    :class:`PeerPolicy`, or any callable taking the peer :class:`Endpoint`.  *timeout* bounds the
    whole header (seconds from accept); *max_v2_size*, *version* and *verify_crc32c* go to the
    :class:`~realip.proxy_protocol.Reader`.  *max_pending* caps connections still inside their
    header (more are closed at once).  *on_error* is called with the peer and the error of every
    refused connection (default: logged at INFO on ``realip.aio``).  :attr:`stats` counts
    outcomes: ``proxied``, ``local``, ``direct``, ``ignored``, ``dropped``, ``overload``,
    ``empty`` (closed before sending a byte where a header was required: a TCP health check,
    closed quietly) and one key per :class:`~realip.Reason` value or policy refusal
    (``policy:reject``).
    """

    def __init__(
        self,
        inner: Callable[[], asyncio.BaseProtocol],
        *,
        policy: PolicyLike = Policy.REQUIRE,
        timeout: float = 3.0,
        max_v2_size: int = V2_DEFAULT_MAX_SIZE,
        version: int | None = None,
        verify_crc32c: bool = True,
        max_pending: int | None = None,
        on_error: Callable[[Endpoint, RealIPError], None] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        Reader(version=version, max_v2_size=max_v2_size)  # validates both now
        self.inner = inner
        self.policy = _compile_policy(policy)
        self.timeout = timeout
        self.max_v2_size = max_v2_size
        self.version = version
        self.verify_crc32c = verify_crc32c
        self.max_pending = max_pending
        self.on_error = on_error or _log_error
        self.pending = 0
        self.stats: Counter[str] = Counter()

    def __call__(self) -> ProxyProtocol:
        return ProxyProtocol(self)


def _log_error(peer: Endpoint, exc: RealIPError) -> None:
    log.info("PROXY header from %s refused: %s", peer, exc)


class _ProxiedTransport(asyncio.Transport):
    """The real transport, with the header's addresses as ``peername``/``sockname``."""

    def __init__(self, transport: asyncio.Transport, result: ProxyResult) -> None:
        super().__init__()
        self._transport = transport
        self._result = result

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        r = self._result
        if name == "proxy_result":
            return r
        if name == "real_peername":
            return self._transport.get_extra_info("peername", default)
        if name == "real_sockname":
            return self._transport.get_extra_info("sockname", default)
        if r.used:
            if name == "peername" and r.source is not None:
                return _sockaddr(r.source)
            if name == "sockname" and r.destination is not None:
                return _sockaddr(r.destination)
        return self._transport.get_extra_info(name, default)

    # everything else is the real transport's
    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


class ProxyProtocol(asyncio.Protocol):
    """One connection's header stage (made by :class:`ProxyProtocolFactory`); once the header
    is decided the transport is handed to the inner protocol and this object steps aside."""

    def __init__(self, factory: ProxyProtocolFactory) -> None:
        self._f = factory
        self._transport: asyncio.Transport | None = None
        self._peer = Endpoint("unix:", None)
        self._local: Endpoint | None = None
        self._policy = Policy.SKIP
        self._reader: Reader | None = None
        #: the reader while bytes go straight to it (no sniffing, no verdict yet): the
        #: per-segment fast path of data_received
        self._fast: Reader | None = None
        self._st = 0  #: the v1 table's state (0: off), while the table takes every byte
        self._literals = _LITERALS[factory.version]
        self._detect = bytearray()
        self._detecting = False
        self._received = 0
        self._inner: asyncio.BaseProtocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False
        self._done = False

    # -- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        f = self._f
        self._transport = transport
        self._peer = endpoint(transport.get_extra_info("peername"))
        self._local = endpoint(transport.get_extra_info("sockname"))
        try:
            self._policy = Policy(f.policy(self._peer))
        except Exception as exc:  # a user policy must not take the listener down
            log.exception("policy failed for %s", self._peer)
            self._fail(ProxyPolicyError(Policy.DROP, f"the policy raised {exc!r}"))
            return
        if self._policy is Policy.DROP:
            self._fail(ProxyPolicyError(Policy.DROP, f"connections from {self._peer} are not "
                                        "accepted"), "dropped")
            return
        if self._policy is Policy.SKIP:
            self._hand_over(None, b"")
            return
        if f.max_pending is not None and f.pending >= f.max_pending:
            f.stats["overload"] += 1
            self._done = True
            transport.abort()
            return
        f.pending += 1
        self._counted = True
        self._reader = Reader(version=f.version, max_v2_size=f.max_v2_size,
                              verify_crc32c=f.verify_crc32c)
        self._detecting = self._policy is not Policy.REQUIRE
        if not self._detecting:
            self._fast = self._reader
            self._st = START[f.version]
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(f.timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        # Fast path (issue 11: a header sent a byte per segment): the cases where the reader
        # would take the segment without a verdict and without changing its state, judged
        # here without the call into Reader.feed — the rest of a v2 header whose length is
        # known (no byte of it is judged before it is complete), a byte the v1 prefix
        # automaton provably accepts, the literal "PROXY TCP4 " / v2 signature spelled a byte
        # at a time, and the first v2 length byte.  These are Reader.feed's own first steps,
        # so every verdict (and the byte it comes at) is the reader's.
        fast = self._fast
        if fast is not None:
            st = self._st
            if st:
                # a common v1 line (or the v2 signature) from its first byte: one table
                # look-up per byte; the reader has not run, and on the first byte the table
                # does not vouch for it decodes everything so far: its verdict is exactly
                # what it would have been
                if len(data) == 1:
                    st = V1_TABLE[st][data[0]]
                    if st:
                        self._st = st
                        fast._buf += data
                        self._received += 1
                        return
                self._st = 0
            buf = fast._buf
            need = fast._need
            if need:
                if len(buf) + len(data) < need:
                    buf += data
                    self._received += len(data)
                    return
            elif len(data) == 1:
                v1 = fast._v1
                if v1 is not None:
                    if v1.take(data[0], buf):
                        buf += data
                        self._received += 1
                        return
                elif len(buf) < 12 and bytes(buf) + data in self._literals:
                    # "PROXY TCP4 " or the v2 signature, spelled a byte at a time
                    buf += data
                    self._received += 1
                    return
                elif len(buf) == 14 and buf[0] == 0x0D and fast._version != 1:
                    # the first length byte of a v2 header: Reader.feed takes it unjudged
                    buf += data
                    self._received += 1
                    return
        if self._done:
            return
        self._received += len(data)
        try:
            if self._detecting:
                self._detect_header(data)
                return
            # the reader takes each segment in O(its length): a header sent a byte at a time
            # costs one call per byte here, never a decode of everything so far
            reader = self._reader
            assert reader is not None
            header = reader.feed(data)
            if header is not None:
                self._hand_over(header, reader.trailing)
        except RealIPError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        if self._done:
            return None
        if not self._received:
            if self._detecting:
                # closed before sending anything: an empty direct connection, not an error
                self._hand_over(None, b"")
                inner = self._inner
                if isinstance(inner, asyncio.Protocol | asyncio.BufferedProtocol):
                    return inner.eof_received()
                return None
            # a TCP health check (connect, close): not worth an error
            self._done = True
            self._fast = None
            self._settle()
            self._f.stats["empty"] += 1
            return None
        try:
            assert self._reader is not None
            if self._detecting:
                self._reader.feed(bytes(self._detect))
            self._reader.eof()
        except RealIPError as exc:
            self._fail(exc)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        if not self._received:
            self._done = True
            self._fast = None
            self._settle()
            self._f.stats["empty"] += 1
            return
        # reset (or closed) by the peer inside the header
        why = f" ({exc})" if exc is not None else ""
        self._fail(InvalidProxyHeader(Reason.TRUNCATED, "the connection ended inside the "
                                      f"header{why}", bytes(self._detect[:64])))

    # -- internals ---------------------------------------------------------------------------
    def _settle(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counted:
            self._f.pending -= 1
            self._counted = False

    def _detect_header(self, data: bytes) -> None:
        """OPTIONAL/REJECT/IGNORE: the first bytes say whether a header is there at all."""
        reader = self._reader
        assert reader is not None
        self._detect += data
        verdict = _starts_like_header(self._detect)
        if verdict is None:
            return
        self._detecting = False
        self._fast = reader
        data = bytes(self._detect)
        self._detect = bytearray()
        if not verdict:
            self._hand_over(None, data)
            return
        if self._policy is Policy.REJECT:
            raise ProxyPolicyError(Policy.REJECT, f"a PROXY header from {self._peer}, which "
                                   "may not send one")
        header = reader.feed(data)
        if header is not None:
            self._hand_over(header, reader.trailing)

    def _expire(self) -> None:
        self._timer = None
        if not self._done:
            self._fail(_timeout_error(self._f.timeout, self._received))

    def _fail(self, exc: RealIPError, key: str | None = None) -> None:
        self._done = True
        self._fast = None
        self._st = 0
        self._settle()
        if key is None:
            key = exc.reason.value if isinstance(exc, InvalidProxyHeader) else \
                f"policy:{exc.policy.value}" if isinstance(exc, ProxyPolicyError) else "error"
        self._f.stats[key] += 1
        if self._transport is not None:
            self._transport.abort()
        try:
            self._f.on_error(self._peer, exc)
        except Exception:
            log.exception("on_error failed")

    def _hand_over(self, header: ProxyHeader | None, data: bytes) -> None:
        self._done = True
        self._fast = None
        self._st = 0
        self._settle()
        transport = self._transport
        assert transport is not None
        policy = self._policy
        used = (header is not None and header.source is not None
                and policy in (Policy.REQUIRE, Policy.OPTIONAL))
        stats = self._f.stats
        if header is None:
            stats["direct"] += 1
        elif header.is_local:
            stats["local"] += 1
        elif used:
            stats["proxied"] += 1
        else:
            stats["ignored"] += 1
        result = ProxyResult(self._peer, self._local, policy, header, used)
        inner = self._inner = self._f.inner()
        transport.set_protocol(inner)
        inner.connection_made(_ProxiedTransport(transport, result))
        if data and not transport.is_closing():
            _deliver(inner, data)


def _deliver(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Give *data* to a protocol as if the transport had just read it."""
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buf = memoryview(protocol.get_buffer(len(view)))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            protocol.buffer_updated(n)
            view = view[n:]
    elif isinstance(protocol, asyncio.Protocol):
        protocol.data_received(data)


# ==============================================================================================
# Streams style


async def start_server(
    client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
    host: str | None = None,
    port: int | None = None,
    *,
    policy: PolicyLike = Policy.REQUIRE,
    timeout: float = 3.0,
    max_v2_size: int = V2_DEFAULT_MAX_SIZE,
    version: int | None = None,
    verify_crc32c: bool = True,
    max_pending: int | None = None,
    on_error: Callable[[Endpoint, RealIPError], None] | None = None,
    limit: int = 2**16,
    sock: socket.socket | None = None,
    **kwds: Any,
) -> asyncio.Server:
    """``asyncio.start_server`` behind a PROXY header stage (options as for
    :class:`ProxyProtocolFactory`; *limit* and the rest as for ``loop.create_server``).  In the
    callback, ``writer.get_extra_info("peername")`` is the client the header named and
    ``writer.get_extra_info("proxy_result")`` the :class:`ProxyResult`; the reader starts with
    the first byte after the header.  The factory is ``server.proxy_factory`` (for its
    :attr:`~ProxyProtocolFactory.stats`)."""
    loop = asyncio.get_running_loop()

    def inner() -> asyncio.BaseProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    factory = ProxyProtocolFactory(inner, policy=policy, timeout=timeout,
                                   max_v2_size=max_v2_size, version=version,
                                   verify_crc32c=verify_crc32c, max_pending=max_pending,
                                   on_error=on_error)
    if sock is not None:
        server = await loop.create_server(factory, sock=sock, **kwds)
    else:
        server = await loop.create_server(factory, host, port, **kwds)
    server.proxy_factory = factory  # type: ignore[attr-defined]
    return server
