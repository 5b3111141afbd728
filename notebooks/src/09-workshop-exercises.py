# %% [markdown]
# # 09 · Workshop exercises
#
# **Goals** — apply notebooks 01–07: write headers, predict peernames, fix configurations and
# break them, close a forged certificate, and build a chain that cannot be spoofed — each with
# a self-check.
#
# **Prerequisites** — notebooks [01](01-proxy-protocol-bytes.ipynb) to
# [07](07-tls-and-certificates.ipynb).
#
# **Time** — 90 minutes (about 6 minutes per exercise).
#
# Each exercise names a scenario from `data/topologies/` and shows what you need (the chain
# without its outcome, or the configuration in question). Put your answer in place of `None`
# and run the cell: `check` prints one ✓ or ✗ per criterion and says what is wrong with *your*
# answer. Hints appear only after a wrong attempt — a nudge first, then (next attempt) where in
# the course to look; they never give the answer. The expected results are computed by the
# simulator when you check, not stored anywhere in this notebook. `check` never stops
# "Run All".

# %%
from realip.teaching import check, exercise

# %% [markdown]
# ## 1 · Write LB 1's PROXY v1 header
#
# In `tcp-single-tier`, write (as a string) the exact header LB 1 sends to EMQX, line ending
# included.

# %%
exercise("v1-header")

# %% tags=["solution"]
# BEGIN SOLUTION
header = "PROXY TCP4 115.236.21.86 172.16.0.116 61177 1883\r\n"
# END SOLUTION
check("v1-header", header)

# %% [markdown]
# ## 2 · Size a v2 header
#
# In `haproxy-tcp-accept-proxy-tier`, LB 2 sends `send-proxy-v2` with `proxy-v2-options
# crc32c`. How many bytes is its header? Count; don't build it.

# %%
exercise("v2-size")

# %% tags=["solution"]
# BEGIN SOLUTION
size = 16 + 12 + 3 + 4
# END SOLUTION
check("v2-size", size)

# %% [markdown]
# ## 3 · Predict the peername
#
# In `tcp-multi-regenerate-untrusted` LB 2 reads LB 1's header but has no `set_real_ip_from`.
# Which peername (`address:port`) does EMQX record?

# %%
exercise("predict-untrusted")

# %% tags=["solution"]
# BEGIN SOLUTION
peername = "172.16.0.116:41316"
# END SOLUTION
check("predict-untrusted", peername)

# %% [markdown]
# ## 4 · Configure LB 2 so the broker sees the client
#
# Same scenario. Give LB 2's settings as a dict of `NginxStream` fields
# (`listen_proxy_protocol`, `proxy_protocol`, `set_real_ip_from`) so that EMQX records the
# client. Two different answers work.

# %% tags=["solution"]
# BEGIN SOLUTION
lb2 = {"listen_proxy_protocol": True, "proxy_protocol": "on",
       "set_real_ip_from": ["172.16.0.0/24"]}
# END SOLUTION
check("tcp-lb2-trust", lb2)

# %% [markdown] tags=["solution"]
# The other answer is pass-through: `{"listen_proxy_protocol": False, "proxy_protocol": "off"}`
# — LB 2 relays LB 1's header untouched.

# %% [markdown]
# ## 5 · Shut the side door
#
# In `tcp-direct-client-forges-proxy` a client reaches EMQX directly and writes its own PROXY
# header. Give EMQX `access_rules` (a list of `"allow …"` / `"deny …"` strings, first match wins)
# that admit only the load balancers — any client that dials EMQX directly, from any address,
# must be refused, and the path through LB 1 must keep working.

# %%
exercise("access-rules")

# %% tags=["solution"]
# BEGIN SOLUTION
rules = ["allow 172.16.0.0/24", "deny all"]
# END SOLUTION
check("access-rules", rules)

# %% [markdown]
# ## 6 · Forge a header that fools this chain
#
# In `ws-edge-appends` both LBs append to `X-Forwarded-For` and EMQX takes the leftmost entry.
# Which `X-Forwarded-For` value should the client send so that EMQX records an address of your
# choice?

# %%
exercise("ws-forge-edge")

# %% tags=["solution"]
# BEGIN SOLUTION
forged = "203.0.113.66"
# END SOLUTION
check("ws-forge-edge", forged)

# %% [markdown]
# ## 7 · Fix the edge LB (method 1)
#
# Still `ws-edge-appends`: give LB 1's `proxy_set_header` values for `X-Forwarded-For` and
# `X-Forwarded-Port` (a dict, nginx variables as strings) so that EMQX records the client's
# real address **and** port, whatever the client forges.

# %%
exercise("ws-fix-edge")

# %% tags=["solution"]
# BEGIN SOLUTION
lb1_headers = {"X-Forwarded-For": "$remote_addr", "X-Forwarded-Port": "$remote_port"}
# END SOLUTION
check("ws-fix-edge", lb1_headers)

# %% [markdown]
# ## 8 · `real_ip_recursive off`
#
# In `ws-multi-nonrecursive`, which address does LB 3 put in `X-Real-IP`?

# %%
exercise("recursive-off")

# %% tags=["solution"]
# BEGIN SOLUTION
x_real_ip = "172.16.0.116"
# END SOLUTION
check("recursive-off", x_real_ip)

# %% [markdown]
# ## 9 · Find the mis-trusted range
#
# In `ws-trust-covers-clients` LB 3 walks the header right to left but ends on the forged entry.
# Look at its configuration, then give a corrected `set_real_ip_from` list for LB 3.

# %%
exercise("ws-mistrusted-range")

# %% tags=["solution"]
# BEGIN SOLUTION
trusted = ["172.16.0.0/24"]
# END SOLUTION
check("ws-mistrusted-range", trusted)

# %% [markdown]
# ## 10 · Trust everyone
#
# Before fixing it: in `ws-trust-covers-clients` as configured, which address does LB 3 put in
# `X-Real-IP`?

# %%
exercise("too-wide")

# %% tags=["solution"]
# BEGIN SOLUTION
x_real_ip_wide = "127.0.0.1"
# END SOLUTION
check("too-wide", x_real_ip_wide)

# %% [markdown]
# ## 11 · Make the HAProxy chain safe
#
# In `haproxy-ws-forwardfor-leftmost` EMQX records the forged `127.0.0.1`. Give LB 1's settings:
# a list of `http-request` rules as tuples (`("set-header", name, value)`, values in HAProxy's
# sample-fetch syntax `%[…]`), or a dict of HAProxy fields (e.g. `forwardfor`, `http_request`).

# %%
exercise("haproxy-fix")

# %% tags=["solution"]
# BEGIN SOLUTION
haproxy_lb1 = {"forwardfor": False,
               "http_request": [("set-header", "X-Forwarded-For", "%[src]"),
                                ("set-header", "X-Forwarded-Port", "%[src_port]")]}
# END SOLUTION
check("haproxy-fix", haproxy_lb1)

# %% [markdown]
# ## 12 · The family byte
#
# Byte 13 of a PROXY v2 header encodes the address family and the transport. Which value
# (hex, e.g. `"0x.."`) does it have for a client connecting over TCP from an IPv6 address?

# %% tags=["solution"]
# BEGIN SOLUTION
family = "0x21"
# END SOLUTION
check("v2-family", family)

# %% [markdown]
# ## 13 · Who reads the client id?
#
# In `tls-passthrough-sni`, LB 1 routes by server name and EMQX's ssl listener verifies the
# device's certificate. Which host can read the MQTT client id the device sends? Give its name.

# %%
exercise("tls-reader")

# %% tags=["solution"]
# BEGIN SOLUTION
reader = "emqx"
# END SOLUTION
check("tls-reader", reader)

# %% [markdown]
# ## 14 · Nobody logs in as admin
#
# In `tls-forged-cert-cn`, EMQX's tcp listener takes the username from the PROXY v2 SSL TLV
# (`peer_cert_as_username = cn`), and a client that reaches it writes its own. Give EMQX
# settings (a dict) so that no client can make itself `admin` this way — while a device behind
# the HAProxy of `tls-haproxy-client-cert` (LB 1 at 172.16.0.116, which verifies certificates)
# still gets its certificate's CN as username.

# %%
exercise("tls-forged-cn")

# %% tags=["solution"]
# BEGIN SOLUTION
emqx = {"access_rules": ["allow 172.16.0.116", "deny all"]}
# END SOLUTION
check("tls-forged-cn", emqx)

# %% [markdown]
# ## 15 · A chain that cannot be spoofed
#
# Start from `ws-edge-appends` (two appending nginx LBs, EMQX reading the leftmost
# `X-Forwarded-For`). Give settings for `lb1`, `lb2` and/or `emqx` — a dict of dicts; for
# `proxy_set_header` a dict of just the headers you change; for EMQX its settings such as
# `access_rules` or `proxy_address_allow` — so that EMQX records the client's real address and
# port **whatever the client forges**. The check proves it: it replays your chain with forged
# `X-Forwarded-For`, `X-Forwarded-Port` and `X-Real-IP` headers, and with a client that skips
# the load balancers and dials EMQX directly.

# %%
exercise("unspoofable")

# %% tags=["solution"]
# BEGIN SOLUTION
chain = {"lb1": {"proxy_set_header": {"X-Forwarded-For": "$remote_addr",
                                      "X-Forwarded-Port": "$remote_port"}},
         "emqx": {"proxy_address_allow": ["172.16.0.0/24"]}}
# END SOLUTION
check("unspoofable", chain)

# %% [markdown] tags=["solution"]
# Also accepted: EMQX `access_rules = ["allow 172.16.0.0/24", "deny all"]` instead of
# `proxy_address_allow` (the direct client is refused instead of recorded as itself).

# %% [markdown]
# ## Going further
#
# [10 · Your own configuration](10-your-own-config.ipynb) replays any chain — the article's or
# yours — with the forged headers you choose.
#
# ## Recap
#
# * Headers: v1 is text with the client's address first; v2 sizes add up from fixed parts.
# * Every reader must trust only its direct sender's network, and the edge must overwrite.
# * A listener that believes headers must be reachable only from the proxies.
# * Next: your own configuration files.
