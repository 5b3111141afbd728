# %% [markdown]
# # 05 · MQTT over WebSocket, several tiers: the right-to-left walk
#
# **Goals** — see how a forged `X-Forwarded-For` survives appending proxies; defend with method 1
# (the edge overrides) or method 2 (every LB appends, the inner LB walks the header right to
# left over trusted addresses); step through that walk; see what `real_ip_recursive off` and a
# too-wide trusted range do.
#
# **Prerequisites** — [04 · MQTT over WebSocket, one load balancer](04-websocket-single-tier.ipynb).
#
# **Time** — 45 minutes.

# %%
from realip.teaching import config, predict, scenario
from realip.topology import simulate
from realip.viz import Stepper, draw_topology, modes_table, sequence_view, tcpdump, walk_figure

# %% [markdown]
# ## The attack
#
# The client `1.94.170.163` (source port `50412`) runs its own helper proxy that adds
# `X-Forwarded-For: 127.0.0.1` and `X-Forwarded-Port: 39872` (the article's trick to forge the
# headers; `39872` is simply the port the helper wrote — not a port the client uses). If every LB **appends**
# (`$proxy_add_x_forwarded_for`), the forged entry stays on the left, and EMQX takes the
# leftmost.
#
# **Predict** — what does EMQX record?

# %%
appends = simulate(scenario("ws-edge-appends"))
predict("Which peername does EMQX record when every LB appends?", appends)

# %%
draw_topology(appends)

# %% [markdown]
# ## Method 1: the edge overrides
#
# LB 1 overwrites the header with `$remote_addr`; LB 2 appends:

# %%
config("ws-method1-lb1")

# %%
config("ws-method1-lb2")

# %%
override = simulate(scenario("ws-multi-override"))
draw_topology(override)

# %% [markdown]
# LB 1 received the forged header (first capture) and sent the real client (second capture):

# %%
tcpdump(override, "lb1")

# %%
tcpdump(override, "lb2")

# %% [markdown]
# ## Method 2: append everywhere, walk at the inner LB
#
# LB 1 and LB 2 append; LB 3 (`172.16.0.225`) trusts `172.16.0.0/24`, reads `X-Forwarded-For`
# recursively and passes the result to EMQX as `X-Real-IP`:

# %%
config("ws-method2-lb3")

# %% [markdown]
# Two lines of LB 3's configuration deserve a word:
#
# * `proxy_set_header X-Real-IP $remote_addr` — after the walk, `$remote_addr` *is* the client
#   LB 3 settled on; it travels in a header of its own, so EMQX no longer reads the (forgeable)
#   leftmost `X-Forwarded-For` entry. EMQX's WebSocket listener must be told to read it — the one
#   change on the broker:
#
#   ```
#   listeners.ws.default.websocket.proxy_address_header = X-Real-IP
#   ```
# * `proxy_set_header X-Forwarded-For $http_x_forwarded_for, $realip_remote_addr` — LB 3 still
#   appends for the logs, but not `$remote_addr` (which realip has rewritten to the client):
#   `$realip_remote_addr` is LB 3's real TCP peer, LB 2, so the header keeps a true record of
#   every hop.

# %%
recursive = simulate(scenario("ws-multi-recursive"))

# %% [markdown]
# What LB 3 receives from LB 2 (the article's capture: `127.0.0.1, 1.94.170.163, 172.16.0.116`):

# %%
tcpdump(recursive, "lb3")

# %% [markdown]
# **Predict** — LB 3 walks those three entries (`127.0.0.1, 1.94.170.163, 172.16.0.116`)
# from the right, starting with its TCP peer LB 2. Which one does it stop on, and
# why not the leftmost?

# %%
predict("Which address does LB 3 keep as $remote_addr (and send on as X-Real-IP)?", recursive,
        "$remote_addr", hop="lb3")

# %% [markdown]
# The chain end to end, now that you have committed to an answer:

# %%
draw_topology(recursive)

# %%
stepper = Stepper.from_trace(recursive, "lb3")

# %% [markdown]
# ### The walk, step by step
#
# The whole walk as nginx's realip module takes it (the numbers are the order of the steps;
# green: trusted, red: not trusted, gold frame: the address it keeps):

# %%
walk_figure(stepper.resolution, forged=stepper.forged_count)

# %% [markdown]
# Now step through it yourself. **Next ▶** moves one entry to the left, **◀ Back** one to the
# right. Then change the switches — they re-run nginx's resolver:
#
# * untick `real_ip_recursive on`;
# * set `set_real_ip_from` to `0.0.0.0/0`, or to `172.16.0.200` alone;
# * forge more entries, e.g. `10.9.8.7, 172.16.0.50`.
#
# The text fields apply as you type (a half-typed range shows its error under the widget until
# it is complete); a change re-runs the walk and keeps your step where it was.

# %%
stepper

# %% [markdown]
# The flow end to end, with LB 3's decision and the header it hands to EMQX:

# %%
sequence_view(recursive)

# %% [markdown]
# ## `real_ip_recursive off`
#
# **Predict** — the same chain with recursion off on LB 3: it receives the same
# `X-Forwarded-For: 127.0.0.1, 1.94.170.163, 172.16.0.116` from LB 2. Which address goes to
# `X-Real-IP`?

# %%
nonrecursive = simulate(scenario("ws-multi-nonrecursive"))
predict("With real_ip_recursive off, which address does LB 3 keep as $remote_addr?",
        nonrecursive, "$remote_addr", hop="lb3")

# %%
off = Stepper.from_trace(nonrecursive, "lb3")
walk_figure(off.resolution, forged=off.forged_count)

# %% [markdown]
# ## A trusted range that covers the clients
#
# `set_real_ip_from 0.0.0.0/0` trusts everyone — the real client too — so the walk only stops
# at the leftmost entry: the forged one.

# %%
too_wide = simulate(scenario("ws-trust-covers-clients"))
wide = Stepper.from_trace(too_wide, "lb3")
walk_figure(wide.resolution, forged=wide.forged_count)

# %%
draw_topology(too_wide)

# %% [markdown]
# ## The same header, other readers
#
# LB 3's request read by other systems, trusting the same range:

# %%
modes_table("172.16.0.200", [("X-Forwarded-For", "127.0.0.1, 1.94.170.163, 172.16.0.116")],
            trusted=["172.16.0.0/24"])

# %% [markdown]
# ## Recap
#
# * Appending keeps the client's forged entries on the left; the leftmost entry is worthless.
# * Method 1: the edge overrides (`X-Forwarded-For $remote_addr`), everything behind appends.
# * Method 2: every LB appends and the inner LB walks right to left over `set_real_ip_from`
#   (`real_ip_recursive on`): the first untrusted entry is the client.
# * Recursion off takes the nearest proxy; a trusted range covering clients takes the forgery.
# * Next: the same with HAProxy.
