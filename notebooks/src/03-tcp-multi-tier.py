# %% [markdown]
# # 03 · MQTT over TCP, two tiers
#
# **Goals** — carry the client's address through two load balancers, either by passing LB 1's
# header through or by re-generating it at LB 2; see why LB 2 needs `set_real_ip_from`; see why a
# connection can carry only one header.
#
# **Prerequisites** — [02 · MQTT over TCP, one load balancer](02-tcp-single-tier.ipynb).
#
# **Time** — 30 minutes.

# %%
from realip.teaching import config, reveal, scenario
from realip.topology import simulate
from realip.viz import acceptance_table, draw_topology, hex_view, sequence_view, tcpdump

# %% [markdown]
# The article adds LB 2 (`172.16.0.200`) between LB 1 and EMQX. LB 1 keeps its configuration
# (it sends a header); only LB 2 changes:

# %%
config("tcp-multi-lb1")

# %% [markdown]
# ## Way 1: pass-through
#
# LB 2 neither reads nor writes a header: it relays bytes, LB 1's header included.

# %%
config("tcp-passthrough-lb2")

# %% [markdown]
# **Predict** — which header reaches EMQX, and which peername does EMQX record?

# %%
passthrough = simulate(scenario("tcp-multi-passthrough"))
reveal(passthrough.peername)

# %%
draw_topology(passthrough)

# %% [markdown]
# Captured on LB 2, in and out: the same header on both links (the article's check that
# pass-through works).

# %%
tcpdump(passthrough, "lb2")

# %%
tcpdump(passthrough, "emqx")

# %% [markdown]
# ## Way 2: re-generate the header
#
# LB 2 reads LB 1's header (`listen … proxy_protocol`), **trusts** LB 1 (`set_real_ip_from`, the
# stream realip module) and writes a header of its own:

# %%
config("tcp-regenerate-lb2")

# %%
regenerate = simulate(scenario("tcp-multi-regenerate"))
draw_topology(regenerate)

# %% [markdown]
# **Predict** — the two headers differ in one field. Which?

# %%
hex_view(regenerate.links[1].proxy_header)

# %%
hex_view(regenerate.links[2].proxy_header)

# %%
reveal("the destination address: LB 2 writes its own (172.16.0.200) where LB 1 wrote "
       "172.16.0.116; the source is still the client")

# %%
sequence_view(regenerate)

# %% [markdown]
# ## Without `set_real_ip_from`
#
# The article's warning: if LB 2 reads the header but does not trust its sender, nginx keeps the
# TCP peer (LB 1) as `$remote_addr` — and writes *that* into its own header.
#
# **Predict** — what does EMQX record now?

# %%
untrusted = simulate(scenario("tcp-multi-regenerate-untrusted"))
reveal(untrusted.peername)

# %%
draw_topology(untrusted)

# %% [markdown]
# LB 2's variables tell the story: it read the client from the header
# (`$proxy_protocol_addr`) but did not use it (`$remote_addr`):

# %%
lb2 = untrusted.view("lb2").variables
{name: lb2[name] for name in ("proxy_protocol_addr", "remote_addr", "realip_remote_addr")}

# %% [markdown]
# ## Two stacked headers
#
# A connection carries at most one PROXY header. If LB 2 *writes* a header without *reading*
# LB 1's, the link to EMQX carries two.
#
# **Predict** — what does EMQX do with the second header?

# %%
stacked = simulate(scenario("tcp-stacked-headers"))
reveal(stacked.failure, explanation="EMQX takes the first header (naming LB 1) and parses the "
       "second as MQTT, which fails.")

# %%
draw_topology(stacked)

# %% [markdown]
# The annotated bytes: one header, and everything after it is application data — including the
# second header:

# %%
hex_view(stacked.links[2].data)

# %% [markdown]
# Every receiver takes the first header alone; none of them looks for a second one:

# %%
acceptance_table(stacked.links[2].data)

# %% [markdown]
# ## Recap
#
# * Pass-through: inner LBs relay bytes, LB 1's header arrives unchanged.
# * Re-generation: each inner LB reads the header, trusts its sender with `set_real_ip_from`, and
#   writes a new one; without the trust, the LB in front becomes "the client".
# * Never stack: read the header you receive, or relay it — never write a second one.
# * Next: MQTT over WebSocket and `X-Forwarded-For`.
