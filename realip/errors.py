"""The error hierarchy.

Every error realip raises derives from :class:`RealIPError`.  As in h11, errors are split by who
is at fault:

* :class:`InvalidProxyHeader` — the *peer* sent something malformed (remote's fault).  It carries a
  machine-readable :class:`Reason` and a message that quotes the offending bytes.
* :class:`ConfigurationError` — *our* configuration is wrong (a bad CIDR, an unknown option); raised
  at construction time, never while serving.  :class:`ScenarioError` is the one a scenario (YAML,
  a dict, ``with_hop(...)``) raises: every problem with its file, line, column, setting path and
  what is allowed.
* :class:`EncodeError` — *we* asked to build something the protocol cannot express.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConfigurationError",
    "EncodeError",
    "InvalidProxyHeader",
    "RealIPError",
    "Reason",
    "ScenarioError",
    "ScenarioProblem",
    "quote_bytes",
]


class Reason(str, enum.Enum):
    """Why a PROXY protocol header was rejected (the ``reason`` of :class:`InvalidProxyHeader`)."""

    # -- detection ---------------------------------------------------------------------------
    NOT_PROXY = "not_proxy"  #: the bytes start like neither a v1 line nor a v2 signature
    WRONG_VERSION = "wrong_version"  #: a v1 header where only v2 is allowed, or the reverse
    TRUNCATED = "truncated"  #: the connection ended before the header was complete
    TIMEOUT = "timeout"  #: the header was still incomplete when the reader's deadline expired
    # -- version 1 (text) ----------------------------------------------------------------------
    V1_TOO_LONG = "v1_too_long"  #: no CRLF within the first 107 bytes
    V1_BAD_TERMINATOR = "v1_bad_terminator"  #: a lone CR or LF, or CR not followed by LF
    V1_BAD_PROTOCOL = "v1_bad_protocol"  #: not TCP4, TCP6 or UNKNOWN
    V1_BAD_SEPARATOR = "v1_bad_separator"  #: missing, doubled or stray spaces; wrong field count
    V1_BAD_ADDRESS = "v1_bad_address"  #: not a valid address of the announced family
    V1_BAD_PORT = "v1_bad_port"  #: not a decimal 0..65535 without leading zeros
    V1_BAD_CHARACTER = "v1_bad_character"  #: a control or non-ASCII byte in the line
    # -- version 2 (binary) --------------------------------------------------------------------
    V2_BAD_VERSION = "v2_bad_version"  #: version nibble is not 2
    V2_BAD_COMMAND = "v2_bad_command"  #: command nibble is neither LOCAL nor PROXY
    V2_BAD_FAMILY = "v2_bad_family"  #: undefined address family nibble
    V2_BAD_TRANSPORT = "v2_bad_transport"  #: undefined transport nibble
    V2_BAD_FAMILY_TRANSPORT = "v2_bad_family_transport"  #: defined nibbles, undefined combination
    V2_TOO_LARGE = "v2_too_large"  #: 16 + len exceeds the configured size cap
    V2_ADDRESS_TRUNCATED = "v2_address_truncated"  #: len is smaller than the family's address block
    V2_BAD_UNIX_PATH = "v2_bad_unix_path"  #: non-NUL bytes after the NUL that ends a UNIX path
    # -- TLVs ----------------------------------------------------------------------------------
    TLV_TRUNCATED = "tlv_truncated"  #: a TLV (or SSL sub-TLV) overruns the header
    TLV_BAD_LENGTH = "tlv_bad_length"  #: a TLV whose value has an impossible length
    TLV_BAD_VALUE = "tlv_bad_value"  #: a TLV whose value breaks its type's rules (encoding, ...)
    CRC32C_MISMATCH = "crc32c_mismatch"  #: the CRC32C TLV does not match the received bytes
    CRC32C_DUPLICATE = "crc32c_duplicate"  #: more than one CRC32C TLV (which one would count?)


def quote_bytes(data: bytes | bytearray | memoryview, limit: int = 64) -> str:
    """Render *data* as a short, unambiguous Python bytes literal for error messages."""
    raw = bytes(data[: limit + 1])
    text = repr(raw[:limit])
    if len(raw) > limit:
        text += "..."
    return text


class RealIPError(Exception):
    """Root of every error raised by realip."""


class InvalidProxyHeader(RealIPError, ValueError):
    """The peer sent a malformed PROXY protocol header.

    ``reason`` is a :class:`Reason` member, ``offset`` the position of the offending byte(s) in the
    data given to the decoder (or ``None``), and ``data`` the offending bytes themselves.
    """

    def __init__(
        self, reason: Reason, detail: str, data: bytes | bytearray | memoryview = b"",
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.data = bytes(data)
        self.offset = offset
        where = f" at offset {offset}" if offset is not None else ""
        quoted = f": {quote_bytes(self.data)}" if self.data else ""
        super().__init__(f"{reason.value}{where}: {detail}{quoted}")


class ConfigurationError(RealIPError, ValueError):
    """Our own configuration is invalid; raised at construction, naming the bad entry."""


class EncodeError(RealIPError, ValueError):
    """A header cannot be encoded as asked (for example an IPv6 address in a TCP4 v1 line)."""


@dataclass(frozen=True)
class ScenarioProblem:
    """One problem in a scenario: ``path`` is the setting (``hops[1].real_ip_recursive``),
    ``message`` what is wrong, ``allowed`` what the setting allows (in the program's words),
    ``file``/``line``/``column`` where it is (1-based; None for a Python dict)."""

    path: str
    message: str
    allowed: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    #: "error" or "warning" (what the program itself only warns about)
    severity: str = "error"

    @property
    def where(self) -> str:
        """``file:line:column`` (as much of it as is known; ``<scenario>`` for a dict)."""
        parts = [self.file or "<scenario>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        # a dict or a copy has no file: the path alone says where
        where = f"{self.where}: " if self.file or self.line is not None else ""
        head = f"{where}{'warning: ' if self.severity == 'warning' else ''}"
        text = f"{head}{self.path}: {self.message}" if self.path else f"{head}{self.message}"
        return text + (f" (allowed: {self.allowed})" if self.allowed else "")


class ScenarioError(ConfigurationError):
    """A scenario does not validate.  ``problems`` lists every problem found; ``path``,
    ``file``, ``line``, ``column`` and ``allowed`` are the first one's."""

    def __init__(self, problems: Sequence[ScenarioProblem]) -> None:
        if not problems:
            raise ValueError("a ScenarioError needs at least one problem")
        self.problems = tuple(problems)
        first = self.problems[0]
        self.path = first.path
        self.file = first.file
        self.line = first.line
        self.column = first.column
        self.allowed = first.allowed
        super().__init__("\n".join(str(p) for p in self.problems))
