"""Byte views: an annotated hex dump like Wireshark's bytes pane, and ``tcpdump -X`` of a link."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._display import PALETTE, VERDICT_COLOURS, Drawing, Rendered, Table, esc, new_figure, put_text

if TYPE_CHECKING:
    from ..proxy_protocol import Field
    from ..topology import Trace

__all__ = ["HexView", "hex_figure", "hex_view", "tcpdump"]


_TD = "padding:2px 6px;text-align:left;vertical-align:top"


def _printable(b: int) -> str:
    return chr(b) if 0x20 <= b < 0x7F else "."


def _short_hex(raw: bytes, limit: int = 16) -> str:
    text = raw[:limit].hex(" ")
    return text + (" …" if len(raw) > limit else "")


def _colour(field: Field, index: int) -> str:
    if field.verdict == "error":
        return "#ffb3b3"
    if field.verdict == "payload":
        return "#e6e6e6"
    if field.name in ("space", "CRLF"):
        return "#f5f5f5"
    return PALETTE[index % len(PALETTE)]


class HexView(Rendered):
    """The annotated bytes of a header: ``fields`` (from
    :func:`realip.proxy_protocol.annotate`), a hex dump coloured per field and a field table."""

    def __init__(self, data: bytes, fields: Sequence[Field], *, width: int = 16) -> None:
        self.data = bytes(data)
        self.fields = tuple(fields)
        self.width = width
        colours = [_colour(f, i) for i, f in enumerate(self.fields)]
        self.colours = tuple(colours)
        owner: list[int | None] = [None] * len(self.data)
        for i, f in enumerate(self.fields):
            for k in range(f.offset, min(f.offset + f.length, len(self.data))):
                owner[k] = i
        self._owner = owner
        table = Table(
            ("offset", "len", "field", "bytes", "verdict", "meaning"),
            [(str(f.offset), str(f.length), f.name, _short_hex(f.raw), f.verdict, f.meaning)
             for f in self.fields],
            max_width=48,
        )
        self.table = table
        super().__init__(self._text(), self._html())

    @property
    def verdict(self) -> str:
        """``accepted``, ``rejected``, ``incomplete`` (or ``empty``) for the whole header."""
        if not self.fields:
            return "empty"
        if any(f.verdict == "error" for f in self.fields):
            return "rejected"
        if any(f.verdict == "incomplete" for f in self.fields):
            return "incomplete"
        return "accepted"

    def _summary(self) -> str:
        errors = [f for f in self.fields if f.verdict == "error"]
        if errors:
            return f"rejected at offset {errors[0].offset}: {errors[0].meaning}"
        if self.verdict == "incomplete":
            return "incomplete: a valid start of a header, more bytes needed"
        payload = sum(f.length for f in self.fields if f.verdict == "payload")
        size = len(self.data) - payload
        return (f"a complete header of {size} bytes"
                + (f", then {payload} byte(s) of payload" if payload else ""))

    def dump_lines(self) -> list[str]:
        """``offset  hex bytes  ascii`` lines (16 bytes each), as in tcpdump -X / Wireshark."""
        out = []
        w = self.width
        for at in range(0, len(self.data), w):
            chunk = self.data[at : at + w]
            hexes = " ".join(f"{b:02x}" for b in chunk).ljust(w * 3 - 1)
            out.append(f"{at:04x}  {hexes}  {''.join(_printable(b) for b in chunk)}")
        return out

    def _text(self) -> str:
        return "\n".join([*self.dump_lines(), "", self.table.text, "", self._summary()])

    def _html(self) -> str:
        w = self.width
        rows = []
        for at in range(0, len(self.data), w):
            hexes, chars = [], []
            for k in range(at, min(at + w, len(self.data))):
                i = self._owner[k]
                colour = self.colours[i] if i is not None else "#ffffff"
                title = esc(self.fields[i].name) if i is not None else ""
                b = self.data[k]
                hexes.append(f'<span title="{title}" style="background:{colour}">{b:02x}</span>')
                chars.append(f'<span title="{title}" style="background:{colour}">'
                             f"{esc(_printable(b))}</span>")
            rows.append(f'<span style="color:#888">{at:04x}</span>  {" ".join(hexes)}'
                        + "   " * (w - (min(at + w, len(self.data)) - at))
                        + f"  {''.join(chars)}")
        dump = ('<pre class="realip-hexdump" style="line-height:1.35;font-size:90%">'
                + "\n".join(rows) + "</pre>")
        body = []
        for f, colour in zip(self.fields, self.colours, strict=True):
            vcol = VERDICT_COLOURS.get(f.verdict, "#000")
            body.append(
                f'<tr><td style="{_TD};background:{colour}">{f.offset}</td>'
                f'<td style="{_TD}">{f.length}</td>'
                f'<td style="{_TD};font-weight:bold">{esc(f.name)}</td>'
                f'<td style="{_TD};font-family:monospace">{esc(_short_hex(f.raw))}</td>'
                f'<td style="{_TD};color:{vcol}">{esc(f.verdict)}</td>'
                f'<td style="{_TD}">{esc(f.meaning)}</td></tr>')
        head = "".join(f'<th style="text-align:left;padding:2px 6px">{h}</th>' for h in
                       ("offset", "len", "field", "bytes", "verdict", "meaning"))
        table = (f'<table class="realip-fields" style="border-collapse:collapse;font-size:90%">'
                 f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
        colour = {"accepted": "#2e7d32", "rejected": "#c62828"}.get(self.verdict, "#ef6c00")
        summary = f'<p style="color:{colour};font-weight:bold">{esc(self._summary())}</p>'
        return f'<div class="realip-hexview">{dump}{table}{summary}</div>'


def hex_view(data: bytes | bytearray | memoryview | str, **decode_opts: Any) -> HexView:
    """Annotated hex dump of *data* (bytes, or a v1 line as text) from
    :func:`realip.proxy_protocol.annotate`; *decode_opts* are ``annotate``'s keywords
    (``version``, ``max_v2_size``, ``verify_crc32c``).  Never raises for any bytes."""
    from ..proxy_protocol import annotate

    raw = data.encode("latin-1") if isinstance(data, str) else bytes(data)
    return HexView(raw, annotate(raw, **decode_opts))


def hex_figure(data: bytes | bytearray | memoryview | str, **decode_opts: Any) -> Drawing:
    """The same annotation as a matplotlib grid: one cell per byte, coloured by field, with the
    field names beside each row."""
    import textwrap

    view = hex_view(data, **decode_opts)
    w = view.width
    nrows = max(1, -(-len(view.data) // w))
    # 9.6 in at 100 dpi is shown 1:1 in a notebook: 9 pt byte text, 9 pt row labels (12 px)
    labels = []
    for r in range(nrows):
        names: list[str] = []
        for f in view.fields:
            if f.offset // w <= r <= (f.offset + max(f.length, 1) - 1) // w \
                    and f.name not in ("space", "CRLF") and f.name not in names:
                names.append(f.name)
        labels.append("\n".join(textwrap.wrap(", ".join(names), 30)[:3]))
    row_h = max(0.42, max([lb.count("\n") + 1 for lb in labels] + [1]) * 0.17)
    fig = new_figure(9.6, row_h * nrows + 0.7)
    ax = fig.add_axes((0.01, 0.02, 0.98, 1 - 0.55 / (row_h * nrows + 0.7)))
    ax.set_xlim(0, w + 8.6)
    ax.set_ylim(nrows, -0.2)
    ax.axis("off")
    from matplotlib.patches import Rectangle

    for k, b in enumerate(view.data):
        r, c = divmod(k, w)
        i = view._owner[k]
        colour = view.colours[i] if i is not None else "#ffffff"
        ax.add_patch(Rectangle((c, r), 1, 0.9, facecolor=colour, edgecolor="#ffffff"))
        put_text(ax, c + 0.5, r + 0.45, f"{b:02x}", ha="center", va="center", fontsize=9,
                 family="monospace")
    for r, label in enumerate(labels):
        put_text(ax, w + 0.3, r + 0.45, label, va="center", fontsize=9, linespacing=1.15)
    fig.suptitle(view._summary(), fontsize=10, x=0.01, ha="left")
    return Drawing(fig, view.text)


# ----------------------------------------------------------------------------------------------
# tcpdump -X of the simulated links


def _frames(capture: bytes) -> list[bytes]:
    """The frames of a pcap capture (as :func:`realip.pcap.pcap_bytes` writes them)."""
    out, at = [], 24
    while at + 16 <= len(capture):
        incl = struct.unpack_from("<I", capture, at + 8)[0]
        out.append(capture[at + 16 : at + 16 + incl])
        at += 16 + incl
    return out


def _describe(packet: bytes, v6: bool) -> tuple[str, int, int]:
    """tcpdump's one-line summary of an IP packet, and where its TCP payload starts/ends."""
    from ipaddress import IPv4Address, IPv6Address

    if v6:
        src: str = str(IPv6Address(packet[8:24]))
        dst: str = str(IPv6Address(packet[24:40]))
        ip_len = 40
        total = 40 + struct.unpack_from("!H", packet, 4)[0]
    else:
        src, dst = str(IPv4Address(packet[12:16])), str(IPv4Address(packet[16:20]))
        ip_len = (packet[0] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
    sport, dport, seq, ack = struct.unpack_from("!HHII", packet, ip_len)
    off = (packet[ip_len + 12] >> 4) * 4
    flags_byte = packet[ip_len + 13]
    flags = "".join(ch for bit, ch in ((0x02, "S"), (0x01, "F"), (0x08, "P"), (0x04, "R"))
                    if flags_byte & bit) + ("." if flags_byte & 0x10 else "")
    start = ip_len + off
    length = total - start
    seqs = f"seq {seq}:{seq + length}" if length else f"seq {seq}"
    line = (f"IP{'6' if v6 else ''} {src}.{sport} > {dst}.{dport}: Flags [{flags}], {seqs}, "
            f"ack {ack}, win 65535, length {length}")
    return line, start, total


def tcpdump(trace: Trace, link: int | str | None = None, *, payload_only: bool = True,
            width: int = 16) -> Rendered:
    """What ``tcpdump -nvvXS`` on the receiving host shows for the simulated *link* (its index,
    or the receiver's name; ``None`` for every link): the data segments with their IP and TCP
    headers, in hex and ASCII.  The frames come from :func:`realip.pcap.pcap_bytes`; with
    *payload_only* the handshake and the pure ACKs are left out.

    A segment carrying HTTP (a WebSocket upgrade) is shown as its request lines, the way a
    reader wants it (``tcpdump -A``); in HTML its ``-X`` hex is one click away (a folded
    ``<details>``), in text it follows the lines."""
    from ..pcap import pcap_bytes

    frames = _frames(pcap_bytes(trace))
    wanted: set[int]
    if link is None:
        wanted = set(range(len(trace.links)))
    elif isinstance(link, str):
        wanted = {lk.index for lk in trace.links if lk.receiver == link}
        if not wanted:
            names = ", ".join(lk.receiver for lk in trace.links)
            raise KeyError(f"no link into {link!r} (links go into {names})")
    else:
        wanted = {trace.links[link].index}
    lines: list[str] = []
    pieces: list[str] = []  # the HTML face, block by block
    pre = '<pre class="realip-tcpdump" style="font-size:85%;margin:2px 0">'
    at = 0
    for lk in trace.links:
        count = 3 + 2 * len(lk.parts)
        mine = frames[at : at + count]
        at += count
        if lk.index not in wanted:
            continue
        lines.append(f"# link {lk.index}: {lk.sender} -> {lk.receiver}")
        pieces.append(f"{pre}{esc(lines[-1])}</pre>")
        for k, frame in enumerate(mine):
            v6 = frame[12:14] == b"\x86\xdd"
            packet = frame[14:]
            summary, start, total = _describe(packet, v6)
            if payload_only and total == start:
                continue
            # frames: 3 for the handshake, then each part's segment and its ACK
            part = (k - 3) // 2 if k >= 3 and (k - 3) % 2 == 0 else None
            kind = lk.parts[part][0] if part is not None and part < len(lk.parts) else ""
            hexdump = []
            for off in range(0, total, width):
                chunk = packet[off : min(off + width, total)]
                words = " ".join(chunk[i : i + 2].hex() for i in range(0, len(chunk), 2))
                hexdump.append(f"\t0x{off:04x}:  {words.ljust(width // 2 * 5 - 1)}  "
                               f"{''.join(_printable(b) for b in chunk)}")
            lines.append(summary)
            if kind == "http":
                request = packet[start:total].decode("latin-1").rstrip("\r\n").split("\r\n")
                lines += [f"\t{r}" for r in request]
                lines += hexdump
                pieces.append(
                    f"{pre}{esc(summary)}\n"
                    + esc("\n".join(f"    {r}" for r in request)) + "</pre>"
                    + '<details class="realip-hex"><summary style="cursor:pointer;'
                    'color:#1565c0;font-size:85%">the same segment in hex (tcpdump -X)'
                    f"</summary>{pre}{esc(chr(10).join(hexdump))}</pre></details>")
            else:
                lines += hexdump
                pieces.append(f"{pre}{esc(summary)}\n{esc(chr(10).join(hexdump))}</pre>")
    text = "\n".join(lines)
    return Rendered(text, f'<div class="realip-tcpdump-view">{"".join(pieces)}</div>')
