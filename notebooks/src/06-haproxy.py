# %% [markdown]
# # 06 · The same with HAProxy
#
# **Goals** — send a v2 header with `send-proxy-v2`; accept one only from the previous tier
# (`expect-proxy`); see the `option forwardfor` + leftmost pitfall and its fix with
# `http-request set-header`.
#
# **Prerequisites** — [03 · MQTT over TCP, two tiers](03-tcp-multi-tier.ipynb) and
# [05 · MQTT over WebSocket, several tiers](05-websocket-multi-tier.ipynb).
#
# **Time** — 30 minutes.

# %%
from realip.resolve import emqx_ws_peer
from realip.teaching import config, predict, scenario
from realip.topology import simulate
from realip.viz import draw_topology, hex_view, modes_table, tcpdump, walk_figure

# %% [markdown]
# ## TCP: `send-proxy-v2`
#
# HAProxy in `mode tcp` writes a binary (v2) header when the `server` line says
# `send-proxy-v2`:

# %%
config("tcp-send-proxy-v2-lb1")

# %%
single = simulate(scenario("haproxy-tcp-send-proxy-v2"))
draw_topology(single)

# %%
hex_view(single.links[1].proxy_header)

# %% [markdown]
# ## Two tiers: read only from the previous tier
#
# LB 2 reads a header only when it comes from LB 1's network (`tcp-request connection
# expect-proxy layer4 if { src … }`) and writes a v2 header with a CRC32C checksum:

# %%
config("tcp-accept-proxy-lb2")

# %%
tiers = simulate(scenario("haproxy-tcp-accept-proxy-tier"))

# %% [markdown]
# **Predict** — how many bytes does LB 2's header have, with the CRC32C TLV? (A TLV is one
# type byte, a 2-byte length, then the value; CRC32C's value is a 4-byte checksum.)

# %%
predict("How many bytes is LB 2's v2 header with the CRC32C TLV?",
        tiers.links[2].proxy_header, "size")

# %%
draw_topology(tiers)

# %%
hex_view(tiers.links[2].proxy_header)

# %% [markdown]
# ## WebSocket: `option forwardfor` and the leftmost pitfall
#
# `option forwardfor` **adds a line** `X-Forwarded-For: <client>` after the client's own lines;
# it never removes them:

# %%
config("ws-forwardfor-lb1")

# %% [markdown]
# **Predict** — the client sends `X-Forwarded-For: 127.0.0.1`. What does EMQX record (address
# *and* port)?

# %%
pitfall = simulate(scenario("haproxy-ws-forwardfor-leftmost"))
predict("The client forges X-Forwarded-For: 127.0.0.1. Which peername does EMQX record?",
        pitfall)

# %%
draw_topology(pitfall)

# %% [markdown]
# The request EMQX receives carries two lines (HAProxy writes header names in lower case):

# %%
tcpdump(pitfall, "emqx")

# %%
walk_figure(emqx_ws_peer("172.16.0.116", 41316, pitfall.links[1].http_headers()))

# %% [markdown]
# ## The fix: replace the headers
#
# `http-request set-header` replaces every line of a header, like nginx's `proxy_set_header`
# does at the edge:

# %%
config("ws-set-header-lb1")

# %%
fixed = simulate(scenario("haproxy-ws-set-header"))
draw_topology(fixed)

# %% [markdown]
# ## HAProxy as the reader
#
# Behind other proxies HAProxy would read the header with `req.hdr_ip(X-Forwarded-For,-1)` — the
# **last** value, without any trust check. Compare with the other readers:

# %%
modes_table("172.16.0.116", [("X-Forwarded-For", "127.0.0.1"),
                             ("X-Forwarded-For", "1.94.170.163")], trusted=["172.16.0.0/24"])

# %% [markdown]
# ## Recap
#
# * `send-proxy-v2` writes a binary header (`proxy-v2-options crc32c` adds a checksum);
#   `accept-proxy` / `expect-proxy … if { src … }` read one — only from addresses you list.
# * `option forwardfor` appends a line and keeps the client's: with EMQX's leftmost rule that is
#   the forged value. Use `http-request set-header X-Forwarded-For %[src]` at the edge.
# * Next: [07 · TLS](07-tls-and-certificates.ipynb) — who holds the key, what a pass-through load
#   balancer can see, and a certificate nobody showed; then [08 · the live lab](08-live-lab.ipynb)
#   runs the flows through real programs, and the exercises (09).
