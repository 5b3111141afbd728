# %% [markdown]
# # 04 · MQTT over WebSocket, one load balancer
#
# **Goals** — pass the client's address to EMQX in `X-Forwarded-For` / `X-Forwarded-Port`;
# understand why the load balancer *overrides* the header with `$remote_addr`; see that EMQX
# takes the leftmost entry without checking who sent it, so a client that reaches EMQX directly
# names itself.
#
# **Prerequisites** — [02 · MQTT over TCP, one load balancer](02-tcp-single-tier.ipynb); HTTP
# headers.
#
# **Time** — 30 minutes.

# %%
from realip.resolve import emqx_ws_peer
from realip.teaching import config, predict, scenario
from realip.topology import simulate
from realip.viz import draw_topology, modes_table, tcpdump, walk_figure

# %% [markdown]
# ## The topology and the configuration
#
# The client `115.236.21.86` speaks MQTT over WebSocket to nginx on port 8083; nginx's `http`
# module proxies the upgrade request to EMQX:

# %%
topo = scenario("ws-single-tier")
draw_topology(topo, outcome=False)

# %%
config("ws-single-lb1")

# %% [markdown]
# On EMQX, the WebSocket listener's custom configuration:
#
# ```
# websocket.proxy_address_header = X-Forwarded-For
# websocket.proxy_port_header = X-Forwarded-Port
# ```
#
# **Predict** — which peername does EMQX record?

# %%
trace = simulate(topo)
predict("Which peername does EMQX record?", trace)

# %% [markdown]
# ## The packets
#
# The upgrade request nginx sends to EMQX (what `tcpdump -nvvXS 'port 8083'` shows on the EMQX
# host): the client's address and port are in the two headers.
#
# **Two addresses for one load balancer.** The client dials `121.36.192.227`, nginx's public
# (WAN) address. nginx then opens a *new* connection to EMQX from its LAN interface,
# `172.16.0.116` — so every capture on the EMQX side shows `172.16.0.116` as the sender, never
# `121.36.192.227`. The public address appears only in the client's own packets (and in the
# `Host:` header the client wrote).

# %%
tcpdump(trace, "emqx")

# %% [markdown]
# ## Why override?
#
# Any client can send its own `X-Forwarded-For`. `proxy_set_header X-Forwarded-For
# $remote_addr` **replaces** it with the TCP peer nginx sees.
#
# **Predict** — the client sends `X-Forwarded-For: 127.0.0.1`. What does EMQX record?

# %%
forged = simulate(topo, forge_xff="127.0.0.1")
predict("The client forges X-Forwarded-For: 127.0.0.1. Which peername does EMQX record?",
        forged)

# %%
tcpdump(forged, "lb1")

# %% [markdown]
# ## EMQX takes the leftmost entry
#
# EMQX's WebSocket listener splits the header on commas and spaces and takes the **leftmost**
# token, whoever sent it. With a header of two entries:

# %%
leftmost = emqx_ws_peer("172.16.0.116", 41316,
                        [("X-Forwarded-For", "203.0.113.9, 115.236.21.86")])
walk_figure(leftmost)

# %% [markdown]
# ## A client that reaches EMQX directly
#
# If the WebSocket listener is reachable without the load balancer, the client writes the
# header itself.
#
# **Predict** — what does EMQX record?

# %%
direct = simulate(scenario("ws-emqx-direct-client"))
predict("What does EMQX record for a client that reaches it directly with its own header?",
        direct, "outcome")

# %%
draw_topology(direct)

# %% [markdown]
# EMQX 6.4 adds `proxy_address_allow`: the headers count only when the TCP peer is listed. With
# the load balancers' network listed, the direct client is recorded as itself:

# %%
allowed = scenario("ws-emqx-direct-client").with_broker(proxy_address_allow=("172.16.0.0/24",))
simulate(allowed).peername

# %% [markdown]
# ## One request, many readers
#
# The same request read by different systems: EMQX's leftmost rule, nginx's realip module,
# HAProxy reading the last value, and realip's own resolver (which checks the TCP peer first):

# %%
modes_table("115.236.21.86", [("X-Forwarded-For", "8.8.8.8")], trusted=["172.16.0.0/24"])

# %% [markdown]
# ## Recap
#
# * The edge load balancer sets `X-Forwarded-For $remote_addr` and `X-Forwarded-Port
#   $remote_port`: it overwrites whatever the client sent.
# * EMQX (before 6.4) reads the leftmost entry from anyone: only the load balancer may be able to
#   reach its WebSocket listener.
# * Next: several tiers, where the header is appended to — and forged.
