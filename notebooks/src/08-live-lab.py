# %% [markdown]
# # 08 · The live lab: real sockets, real nginx
#
# **Goals** — run a scenario on real sockets, every host on its own loopback address; connect
# MQTT clients (paho-mqtt) through the chain, directly to the broker, and with forged headers;
# read the peername the broker records beside the simulator's prediction; run the same chain
# through the real nginx and HAProxy.
#
# **Prerequisites** — [03 · MQTT over TCP, two tiers](03-tcp-multi-tier.ipynb) and
# [05 · MQTT over WebSocket, several tiers](05-websocket-multi-tier.ipynb). Linux (every
# `127.x.y.z` works as it is) or macOS with loopback aliases (below). nginx and HAProxy are
# optional: `sudo apt-get install nginx libnginx-mod-stream haproxy`.
#
# **Time** — 30 minutes.

# %%
from realip.lab import Lab
from realip.render import loopback_plan
from realip.teaching import predict, scenario

# %% [markdown]
# ## Every host gets its own loopback address
#
# The scenarios name hosts by the article's addresses — labels only: nothing may be sent to
# them. The lab maps each one to a loopback address: every original `/24` becomes its own
# `127.0.N.0/24` and the last octet stays, so the client `115.236.21.86` is `127.0.1.86` and
# the LAN `172.16.0.0/24` (load balancers and EMQX) is `127.0.2.0/24` — a trust list such as
# `set_real_ip_from 172.16.0.0/24` covers exactly the same hosts.

# %%
loopback_plan(scenario("tcp-multi-regenerate"))

# %% [markdown]
# Linux routes the whole of `127.0.0.0/8` to the loopback interface. **macOS** has only
# `127.0.0.1` until aliases are added; the lab then stops with a message listing the commands,
# e.g. `sudo ifconfig lo0 alias 127.0.1.86 up` (one per address, until the next reboot).
# `python -m realip lab check` tells what this machine offers. The other notebooks need none
# of this.
#
# ## Start a topology
#
# `tcp-multi-regenerate`: two nginx stream tiers, the inner one reading LB 1's header,
# trusting it and writing a new one to EMQX. Here every hop is a **python relay** running the
# simulator's own hop logic on real sockets; the broker is the lab's MQTT broker, whose
# listener follows EMQX's rules and answers `$realip/whoami`. A progress bar shows the
# processes starting.

# %%
lab = Lab("tcp-multi-regenerate", proxies="python")
lab.start()

# %%
print(lab.describe())

# %% [markdown]
# ## Connect through the chain
#
# `lab.connect()` connects a paho-mqtt client from the client's loopback address (and the
# scenario's source port, so the result repeats), asks the broker who it is, disconnects, and
# shows the broker's answer beside `simulate()`'s prediction for the same topology on the same
# addresses and ports.

# %%
lab.connect()

# %% [markdown]
# **Predict** — the client skips the load balancers and dials EMQX's listener itself, without a
# PROXY header. The listener has `proxy_protocol = true`. What does the broker record?

# %%
direct = lab.connect(direct=True)
predict("What does EMQX's listener do with this client?", direct.trace, "outcome")

# %% [markdown]
# And what the lab's broker really did, beside the simulator's prediction:

# %%
direct

# %% [markdown]
# A client that reaches the listener directly can also write a header of its own — and EMQX
# believes it (the mistake of `tcp-direct-client-forges-proxy`):

# %%
forged = "PROXY TCP4 203.0.113.77 172.16.0.71 4242 1883\r\n"
lab.connect(direct=True, forge_proxy=forged)

# %% [markdown]
# Through the chain the same forged header does not get far: LB 1 does not read headers, so it
# relays it as data behind its own, and EMQX fails to parse it as MQTT:

# %%
lab.connect(forge_proxy=forged)

# %%
lab.close()
lab

# %% [markdown]
# `lab.close()` stops every relay and program and closes every socket. Prefer
# `with Lab(...) as lab:` — the lab is then closed however the block ends, also when you
# interrupt the kernel.
#
# ## WebSocket: forged `X-Forwarded-For`
#
# `ws-multi-override` (method 1): LB 1 overwrites `X-Forwarded-For` with `$remote_addr`, LB 2
# appends, EMQX takes the leftmost entry. The client forges `X-Forwarded-For: 6.6.6.6` — once
# through the chain, once directly to the broker.

# %%
with Lab("ws-multi-override", progress="none") as ws:
    through = ws.connect(forge_xff="6.6.6.6")
    around = ws.connect(forge_xff="6.6.6.6", direct=True)
print(through)
print(around)

# %% [markdown]
# ## Every scenario, live
#
# Each scenario of the course on real sockets, its own client connecting once: the broker's
# peername (as the host it names) and whether it is the simulator's prediction.

# %%
names = ["tcp-single-tier", "tcp-multi-passthrough", "tcp-multi-regenerate-untrusted",
         "tcp-stacked-headers", "ws-single-tier", "ws-edge-appends", "ws-multi-recursive",
         "ws-multi-nonrecursive", "ws-emqx-direct-client", "ws-emqx-64-allow-list",
         "haproxy-tcp-accept-proxy-tier", "haproxy-ws-forwardfor-leftmost"]
for name in names:
    with Lab(name, progress="none") as each:
        probe = each.connect()
    seen = probe.peername.rsplit(":", 1)[0] + probe.label(probe.peername) \
        if probe.peername else "refused"
    print(f"{name:32} {seen:40} {'✓ as predicted' if probe.agree else '✗ DIFFERENT'}")

# %% [markdown]
# ## The real nginx
#
# `proxies="auto"` runs every nginx hop in a real nginx and every HAProxy hop in a real HAProxy
# when they are installed (private directory, foreground, configuration written by
# `realip.render`), python relays otherwise. What runs where depends on this machine:

# %%
# NBVAL_IGNORE_OUTPUT
real = Lab("tcp-multi-regenerate", proxies="auto")
real.start()
print(real.describe())

# %% [markdown]
# The client's view does not depend on what relays it — the peername is the same either way:

# %%
real.connect()

# %% [markdown]
# The nginx configuration the lab wrote (listening ports are picked when the lab starts), and
# what nginx logged:

# %%
# NBVAL_IGNORE_OUTPUT
print(real.configs.get("nginx", "nginx is not installed here: the hops ran as python relays"))

# %%
# NBVAL_IGNORE_OUTPUT
print(real.logs().get("nginx", "(no nginx)")[-1500:])

# %%
real.close()

# %% [markdown]
# The same with HAProxy's `http-request set-header X-Forwarded-For %[src]`, which replaces
# whatever the client sent:

# %%
with Lab("haproxy-ws-set-header", proxies="auto", progress="none") as hap:
    print(hap.connect(forge_xff="6.6.6.6"))

# %% [markdown]
# ## From a terminal
#
# ```sh
# python -m realip lab check
# python -m realip lab run data/topologies/ws-multi-override.yaml --forge-xff 6.6.6.6
# python -m realip lab run data/topologies/tcp-multi-regenerate.yaml --proxies nginx --json
# ```
#
# `lab run` exits with status 0 when the broker's peername is the simulator's prediction.
