# %% [markdown]
# # 01 · The PROXY protocol, byte by byte
#
# **Goals** — read a version 1 (text) and a version 2 (binary) PROXY header field by field;
# build your own; see what TLVs and the CRC32C checksum add; know which programs accept what.
#
# **Prerequisites** — [00 · Start here](00-start-here.ipynb); reading hexadecimal.
#
# **Time** — 35 minutes.

# %%
from realip.proxy_protocol import TLVType, build, decode
from realip.receivers import EDGE_CASES
from realip.teaching import config, predict, scenario
from realip.topology import simulate
from realip.viz import (acceptance_table, draw_topology, hex_figure, hex_view, profile_view,
                        tcpdump)

# %% [markdown]
# ## Version 1: one line of text
#
# The article's single-tier setup: the client `115.236.21.86` dials nginx at `121.36.192.227`
# port 1883; nginx (LAN `172.16.0.116`) connects to EMQX (`172.16.0.71`) and, before any of the
# client's bytes, writes one line — because of one directive, `proxy_protocol on`:

# %%
trace = simulate(scenario("tcp-single-tier"))
draw_topology(trace)

# %%
config("tcp-single-lb1")

# %% [markdown]
# Here are the bytes the simulator computes for the link from nginx to EMQX:

# %%
v1 = trace.links[1].proxy_header
v1

# %% [markdown]
# **Predict** — how many bytes long is this header, counting the line ending?

# %%
predict("How many bytes long is this v1 header, CRLF included?", v1, "size")

# %% [markdown]
# The annotated view works like Wireshark's bytes pane: each field has its colour in the dump and
# a row in the table (offset, length, bytes, verdict, meaning). Hover a byte for its field.

# %%
hex_view(v1)

# %% [markdown]
# The destination is LB 1's own address and port, not EMQX's: the header describes the
# connection **the client** opened. The decoder gives the same fields as values:

# %%
header = decode(v1)
header

# %%
str(header.source), str(header.destination), header.size

# %% [markdown]
# `tcpdump -X` on the EMQX host shows the header at the start of the TCP payload, right after
# the IP and TCP headers (the article's capture; here the simulator's bytes):

# %%
tcpdump(trace, "emqx")

# %% [markdown]
# ## Version 2: binary
#
# Version 2 packs the same facts in binary. HAProxy sends it with `send-proxy-v2`. Every v2
# header starts with the same **16 fixed bytes**:
#
# | bytes | field | value |
# |---|---|---|
# | 0–11 | signature | `\r\n\r\n\0\r\nQUIT\n` — can never begin a text protocol |
# | 12 | version and command | `0x21`: version 2, command PROXY |
# | 13 | family and transport | `0x11`: IPv4 (INET) over TCP (STREAM); `0x21` is IPv6 |
# | 14–15 | length | how many bytes follow (big-endian) |
#
# Then the address block: source address, destination address, source port, destination port —
# each address 4 bytes for IPv4 (16 for IPv6), each port 2 bytes. Then optional TLVs.
#
# **Predict** — how long is a v2 header for the same IPv4 connection, without TLVs?

# %%
v2 = build(("115.236.21.86", 61177), ("172.16.0.116", 1883), version=2)
predict("How many bytes is the v2 header for this IPv4 connection, no TLVs?", v2, "size")

# %%
hex_view(v2)

# %% [markdown]
# The same annotation as a figure, one cell per byte:

# %%
hex_figure(v2)

# %% [markdown]
# ## Build your own
#
# `build()` writes the header a proxy would send for a connection from *source* to
# *destination*. Change the addresses or the port below and run the cell: the view shows which
# bytes moved.

# %%
mine = build(("203.0.113.7", 50000), ("198.51.100.1", 8883), version=1)
hex_view(mine)

# %% [markdown]
# An IPv6 client gives a `TCP6` line (v1) or the `INET6` family (v2, 36 bytes of addresses):

# %%
hex_view(build(("2001:db8::7", 50000), ("2001:db8::1", 1883), version=2))

# %% [markdown]
# ## TLVs and the CRC32C checksum
#
# After the addresses a v2 header may carry type-length-value records: the host name the client
# asked for (`AUTHORITY`), TLS details, cloud endpoint ids… and a CRC32C checksum over the
# whole header, which a receiver can verify.

# %%
with_tlvs = build(("115.236.21.86", 61177), ("172.16.0.116", 1883), version=2, crc32c=True,
                  tlvs=[(TLVType.AUTHORITY, b"mqtt.example.com")])
hex_view(with_tlvs)

# %% [markdown]
# **Predict** — flip one bit in the source address (byte 19). Which programs notice?

# %%
damaged = bytearray(with_tlvs)
damaged[19] ^= 0x01
hex_view(bytes(damaged))

# %%
predict("Which receivers refuse the damaged header?", bytes(damaged), "refused by")

# %%
acceptance_table(bytes(damaged))

# %% [markdown]
# (`spec auto`, `emqx-tcp 5.17 gen_tcp`, `emqx-ws 2.2`, `mosquitto auto:1`: the receivers and the
# version or option modelled — see [00's glossary](00-start-here.ipynb#Glossary).)

# %% [markdown]
# Only receivers that verify the checksum refuse it; the others believe the damaged address.
#
# ## Who accepts what
#
# The receivers do not parse headers the same way. A header with leading zeros in an address is
# invalid for the specification, yet some programs read it — as different addresses:

# %%
leading = EDGE_CASES["v1-leading-zeros"].data
hex_view(leading)

# %%
acceptance_table(leading)

# %% [markdown]
# The rules of each program, side by side (the full table: `profile_view()`):

# %%
profile_view(aspects=["detection", "v1_addresses", "unknown_short", "v2_local", "crc32c",
                      "timeout"])

# %% [markdown]
# ## Recap
#
# * v1 is one text line `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (at most 107 bytes); v2 is a
#   12-byte signature, version/command, family/transport, a length, binary addresses, then TLVs.
# * The addresses describe the client's connection to the **first** proxy.
# * A CRC32C TLV catches corruption only where the receiver checks it; programs also differ on
#   what they accept.
# * Next: the header in a real single-tier deployment.
