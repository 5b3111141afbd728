# %% [markdown]
# # 02 · MQTT over TCP, one load balancer
#
# **Goals** — configure nginx to send a PROXY header and EMQX to read it; find the header in a
# capture; see the peername EMQX records; see what goes wrong when only one side is configured,
# or when a client can reach the broker directly.
#
# **Prerequisites** — [01 · The PROXY protocol, byte by byte](01-proxy-protocol-bytes.ipynb).
#
# **Time** — 25 minutes.

# %%
from realip.teaching import config, predict, scenario
from realip.topology import simulate
from realip.viz import draw_topology, hex_view, sequence_view, tcpdump

# %% [markdown]
# ## The topology
#
# The article's hosts: the client `115.236.21.86`, nginx (public `121.36.192.227`, LAN
# `172.16.0.116`), EMQX `172.16.0.71`. The drawing leaves the broker's peername out — you will
# predict it. (The green shading is the *trusted zone*, and the line under each arrow says
# whether the receiver believes its sender: see [the glossary](00-start-here.ipynb#Glossary).)

# %%
topo = scenario("tcp-single-tier")
draw_topology(topo, outcome=False)

# %% [markdown]
# ## The configuration
#
# nginx's `stream` module proxies TCP; `proxy_protocol on` makes it write a v1 header first:

# %%
config("tcp-single-lb1")

# %% [markdown]
# On EMQX 5.7 the TCP listener's *Proxy Protocol* switch (Dashboard → Management → Cluster
# Settings → MQTT Settings → the listener) is the setting
#
# ```
# listeners.tcp.default.proxy_protocol = true
# ```
#
# **Predict** — which peername will `emqx ctl clients show mqttx-client` print?

# %%
trace = simulate(topo)
predict("Which peername does `emqx ctl clients show mqttx-client` print?", trace)

# %% [markdown]
# ## The packets
#
# What `tcpdump -nvvXS 'port 1883'` on the EMQX host captures — the header, then (in its own
# segment) the MQTT CONNECT:

# %%
tcpdump(trace, "emqx")

# %%
hex_view(trace.links[1].proxy_header)

# %% [markdown]
# The whole flow, connection by connection, with what each host decided:

# %%
sequence_view(trace)

# %% [markdown]
# ## Only one side configured
#
# **Predict** — nginx sends the header, but the EMQX listener was left with
# `proxy_protocol = false`. What happens?

# %%
wrong = simulate(scenario("tcp-header-to-plain-listener"))
predict("EMQX's listener does not expect a header but gets one. What happens?", wrong,
        "outcome")

# %%
draw_topology(wrong)

# %% [markdown]
# The other way round — EMQX expects a header, nginx sends none — EMQX waits for a header that
# never comes, then gives up:

# %%
silent = simulate(topo.with_hop("lb1", proxy_protocol="off"))
silent.failure

# %% [markdown]
# ## Who may send a header?
#
# EMQX believes **any** PROXY header on that listener. If a client can reach EMQX directly, it
# writes its own.
#
# **Predict** — what does EMQX record for this direct client?

# %%
attack = scenario("tcp-direct-client-forges-proxy")
forged = simulate(attack)
predict("What does EMQX record for the client that writes its own header?", forged, "outcome")

# %%
draw_topology(forged)

# %% [markdown]
# The fix is network policy: allow the listener only from the load balancers (EMQX's
# `access_rules`, or a firewall). The same client is then refused, while the path through LB 1
# still works:

# %%
rules = ("allow 172.16.0.0/24", "deny all")
simulate(attack.with_broker(access_rules=rules)).failure

# %%
simulate(topo.with_broker(access_rules=rules)).peername

# %% [markdown]
# ## Recap
#
# * nginx: `proxy_protocol on` in the `stream` server; EMQX: `proxy_protocol = true` on the
#   listener. Both or neither — one alone breaks every connection.
# * The header's source is the client's address and port; EMQX records them as the peername.
# * A listener that reads PROXY headers must be unreachable except from the proxies.
# * Next: two load balancers in a row.
