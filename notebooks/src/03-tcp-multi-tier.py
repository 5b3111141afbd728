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
from realip.teaching import config, predict, scenario
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
predict("Which peername does EMQX record when LB 2 only relays bytes?", passthrough)

# %%
draw_topology(passthrough)

# %% [markdown]
# Captured on LB 2, in and out: the same header on both links (the article's check that
# pass-through works). That is why the drawing's *trusted zone* starts at LB 1: EMQX believes
# a header LB 1 wrote, and LB 2 only carried it.

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

# %% [markdown]
# **Predict** — LB 1's header (LB 1 → LB 2) and LB 2's header (LB 2 → EMQX) differ in one
# field. Which? (Think about what each field describes, then pick.)

# %%
predict("Which field differs between LB 1's header and LB 2's?",
        (regenerate.links[1].proxy_header, regenerate.links[2].proxy_header), "difference")

# %% [markdown]
# The two headers, annotated, and the whole chain:

# %%
hex_view(regenerate.links[1].proxy_header)

# %%
hex_view(regenerate.links[2].proxy_header)

# %%
draw_topology(regenerate)

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
predict("Which peername does EMQX record when LB 2 does not trust LB 1?", untrusted)

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
predict("EMQX receives two PROXY headers in a row. What happens?", stacked, "outcome")

# %%
draw_topology(stacked)

# %% [markdown]
# The annotated bytes: one header, and everything after it is application data — including the
# second header:

# %%
hex_view(stacked.links[2].data)

# %% [markdown]
# The table below answers a narrower question — what each program's **PROXY parser** does with
# the first read. Every parser *accepts the first header* (naming LB 2's sender, LB 1) and
# stops there; none of them looks for a second one. What comes next is the application's: for
# EMQX the second header is the start of the MQTT stream, which is not a CONNECT, so EMQX
# closes the connection, as the drawing above shows. "accepts" in this table is the header,
# not the connection. (The receivers' labels: [the glossary](00-start-here.ipynb#Glossary).)

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
