# %% [markdown]
# # 07 · TLS: who holds the key, and who can forge a certificate
#
# **Goals** — follow MQTT over TLS (8883) and secure WebSocket (8084) through a load balancer
# that terminates TLS and one that passes it through; see what travels in clear (the PROXY
# header, the server name) and what only the key holder reads; follow a client certificate's
# CN from HAProxy to EMQX in the PROXY v2 SSL TLV — and forge one.
#
# **Prerequisites** — [02 · MQTT over TCP, one load balancer](02-tcp-single-tier.ipynb),
# [04 · MQTT over WebSocket, one load balancer](04-websocket-single-tier.ipynb) and
# [06 · The same with HAProxy](06-haproxy.ipynb).
#
# **Time** — 40 minutes.
#
# The simulator carries a TLS connection as it is on the wire: the ClientHello in clear (real
# bytes: a pass-through load balancer reads its server name), then records whose length you
# see but whose content only the host holding the server's private key can read.

# %%
from realip.teaching import config, predict, scenario
from realip.topology import simulate
from realip.viz import draw_topology, hex_view

# %% [markdown]
# ## 1 · nginx terminates TLS
#
# LB 1 listens with `listen 8883 ssl` and writes a PROXY v1 header to EMQX's plain tcp
# listener:

# %%
config("tls-terminate-lb1")

# %%
terminate = simulate(scenario("tls-nginx-terminates"))

# %% [markdown]
# **Predict** — the device's MQTT CONNECT (with its client id) is inside the TLS records on the
# first link. Which host can read it?

# %%
predict("Who can read the MQTT CONNECT the client sends inside TLS?", terminate, "key holder")

# %%
draw_topology(terminate)

# %% [markdown]
# The first link carries TLS records; the second carries the PROXY header and the MQTT
# CONNECT in clear — LB 1 decrypted it. Record by record, with each record's real 5-byte
# header (content type, version, length):

# %%
print(terminate.table())

# %% [markdown]
# ## 2 · nginx terminates secure WebSocket
#
# The same with `listen 8084 ssl` in an http server: nginx decrypts the upgrade request and
# writes X-Forwarded-For and X-Real-IP for EMQX's ws listener.

# %%
config("wss-terminate-lb1")

# %%
wss = simulate(scenario("wss-nginx-terminates"))

# %% [markdown]
# **Predict** — which peername does EMQX record?

# %%
predict("Which peername does EMQX's ws listener record behind the TLS-terminating LB 1?", wss)

# %%
draw_topology(wss)

# %% [markdown]
# ## 3 · Pass-through: nginx reads only the ClientHello
#
# Now LB 1's stream server has no `ssl` on its `listen` line but `ssl_preread on`: nginx looks
# at the start of the connection before it connects upstream, picks the upstream by the
# server name the client asked for (`map $ssl_preread_server_name`), writes a PROXY header, and
# proxies the connection to EMQX's **ssl** listener (8883), whose `ssl_options` verify the
# device's certificate.

# %%
config("tls-preread-lb1")

# %%
sni = simulate(scenario("tls-passthrough-sni"))

# %% [markdown]
# **Predict** — besides the server name, the ClientHello tells LB 1 which TLS versions the
# client offers. What is `$ssl_preread_protocol` (the highest one)? Compare with the version
# LB 1 settled on when it terminated TLS itself, in section 1.

# %%
predict("What is $ssl_preread_protocol on LB 1?", sni, "$ssl_preread_protocol", hop="lb1")

# %% [markdown]
# **Predict** — and who can read the MQTT client id this time?

# %%
predict("Who can read the MQTT CONNECT in the pass-through chain?", sni, "key holder")

# %%
draw_topology(sni)

# %% [markdown]
# LB 1 holds no key: it read the server name and the versions from the ClientHello, which
# travels in clear, and relayed the TLS records unread. (nginx 1.22.1 terminating TLS itself
# settles on TLSv1.2: TLSv1.3 joined its default `ssl_protocols` only in 1.23.4.) EMQX's ssl listener reads the PROXY header first, then
# terminates TLS itself. The header goes *in clear, before* the ClientHello on the same TCP
# connection:

# %%
hex_view(sni.links[1].proxy_header)

# %% [markdown]
# ## 4 · HAProxy checks client certificates and tells EMQX the CN
#
# `verify required` makes HAProxy ask every device for a certificate signed by `clients-ca`;
# `send-proxy-v2-ssl-cn` writes a PROXY v2 header with an SSL TLV: client flags, the verify
# result, the TLS version and the certificate's common name. EMQX's tcp listener has
# `proxy_protocol = true` and `peer_cert_as_username = cn`.

# %%
config("tls-client-cert-lb1")

# %%
cert = simulate(scenario("tls-haproxy-client-cert"))

# %% [markdown]
# **Predict** — which username does EMQX give the device?

# %%
predict("Which username does EMQX give the device?", cert, "username")

# %%
draw_topology(cert)

# %% [markdown]
# The SSL TLV field by field — `client 0x07` (TLS, a certificate on this connection and in
# the session), `verify 0`, then the sub-TLVs:

# %%
hex_view(cert.links[1].proxy_header)

# %% [markdown]
# ## 5 · The attack: a forged SSL TLV
#
# EMQX never sees the certificate in that chain, only the TLV. Here the same listener can be
# reached directly, and a client writes its own PROXY v2 header — a source address of its
# choice, and an SSL TLV that says "verified, CN admin":

# %%
attack = simulate(scenario("tls-forged-cert-cn"))
hex_view(attack.links[0].proxy_header)

# %% [markdown]
# **Predict** — which username does EMQX give this client, who never showed a certificate?

# %%
predict("Which username does EMQX give the client that wrote its own SSL TLV?", attack,
        "username")

# %%
draw_topology(attack)

# %% [markdown]
# Nothing in EMQX reads the TLV's `verify` field or its client flags.
#
# ### Through a pass-through tier, against EMQX's own TLS
#
# With an ssl listener EMQX verifies the certificate itself. LB 1 below relays bytes and
# writes no header, so the client's own PROXY header reaches EMQX 6.2.0's ssl listener, in
# front of a real TLS handshake with its real certificate (CN `device-42`):

# %%
old = simulate(scenario("tls-passthrough-forged-cn"))
draw_topology(old, outcome=False)

# %% [markdown]
# **Predict** — which username does EMQX 6.2.0 give this client: its certificate's CN, or the
# one its header claims?

# %%
predict("Which username does EMQX 6.2.0's ssl listener give the client?", old, "username")

# %%
draw_topology(old)

# %% [markdown]
# Up to EMQX 6.2.0 (esockd 5.16.1) a proxied ssl listener took the identity from the PROXY
# header, not from its own handshake. esockd 5.16.2 (EMQX 6.2.1) reads the certificate of the
# inner TLS socket:

# %%
new = simulate(scenario("tls-passthrough-forged-cn").with_broker(version="6.2.1"))
draw_topology(new)

# %% [markdown]
# Its address is still the one it wrote: a pass-through tier that forwards a client's bytes
# lets it choose that in every version.
#
# ## 6 · The fixes
#
# Only the proxy may send a header. EMQX's `access_rules` are checked on the raw TCP peer,
# before the header is read:

# %%
shut = simulate(scenario("tls-forged-cert-cn").with_broker(
    access_rules=["allow 172.16.0.116", "deny all"]))

# %% [markdown]
# **Predict** — what happens to the forging client now?

# %%
predict("With access_rules allowing only LB 1, what happens to the forging client?", shut,
        "outcome")

# %% [markdown]
# And the proxy? Here HAProxy is configured `verify optional` with `crt-ignore-err all`, and a
# client presents a certificate with CN `admin` from `other-ca`, a CA HAProxy's `ca-file`
# does not hold:

# %%
loose = simulate(scenario("tls-haproxy-client-cert")
                 .with_hop("lb1", verify="optional", crt_ignore_err=True)
                 .with_client(cert_cn="admin", cert_ca="other-ca"))

# %% [markdown]
# **Predict** — which username does EMQX give it?

# %%
predict("With crt-ignore-err all, which username does the untrusted certificate get?", loose,
        "username")

# %%
hex_view(loose.links[1].proxy_header)

# %% [markdown]
# `crt-ignore-err all` lets the failed certificate through with its CN, and the `verify`
# field (21, "unable to verify the first certificate") is one EMQX never reads: the proxy must
# vouch only for certificates it verified (`verify required`, no `*-ignore-err`).

# %% [markdown]
# ## Recap
#
# * Whoever holds the server key reads the client id; a pass-through tier sees only the
#   ClientHello (the SNI) and the record lengths.
# * A PROXY header always travels in clear, before the TLS handshake it belongs to.
# * EMQX takes `peer_cert_as_username` from the PROXY v2 SSL TLV on tcp listeners (and, up to
#   6.2.0, on proxied ssl listeners) and checks neither `verify` nor the client flags: the
#   listener must be reachable only from the proxy (`access_rules`, or the network), and the
#   proxy must refuse certificates it cannot verify (`verify required`, no `*-ignore-err`).
# * Next: [08 · the live lab](08-live-lab.ipynb); the exercises 13 and 14 in
#   [09 · Workshop exercises](09-workshop-exercises-student.ipynb) are on this notebook.
