# %% [markdown]
# # 00 · Start here: where does the client's address go?
#
# **Goals** — see why an MQTT broker behind a load balancer records the balancer's address
# instead of the client's; meet the two ways of carrying the real address (the PROXY protocol and
# the `X-Forwarded-For` header); find your way through the course.
#
# **Prerequisites** — IP addresses and ports; having seen an nginx configuration once. Nothing to
# install beyond this repository (`make lab` opens this folder in JupyterLab).
#
# **Time** — 15 minutes.

# %% [markdown]
# ## The problem
#
# The course follows one set of hosts, taken from EMQX's article on getting the client's real
# IP behind NGINX (NGINX 1.26.1, EMQX 5.7.0): an MQTT client on the Internet at
# `115.236.21.86`, a load balancer reachable at `121.36.192.227` (its LAN address is
# `172.16.0.116`) and the EMQX broker at `172.16.0.71`.
#
# A load balancer opens **its own** TCP connection to the broker. Below, nginx relays the bytes
# and adds nothing; EMQX reads nothing extra either.
#
# **Predict** — which address will EMQX record as the client's *peername* (the address and
# port it prints for the connection)? Type your prediction, then press **Reveal**: the answer
# comes with the simulator's own account of what each host did.

# %%
from realip.teaching import predict, scenario, scenario_table
from realip.topology import simulate
from realip.viz import draw_topology

plain = scenario("tcp-single-tier").with_hop("lb1", proxy_protocol="off").with_broker(
    proxy_protocol=False)
trace = simulate(plain)
predict("Which peername does EMQX record?", trace)

# %% [markdown]
# The drawing shows the hosts with their addresses, what travels on each link, who trusts whom,
# and the peername EMQX records (green when it is the client, red when it is not):

# %%
draw_topology(trace, title="No PROXY protocol, no header: EMQX sees the load balancer")

# %% [markdown]
# ## Two fixes
#
# **MQTT over TCP** — the load balancer writes a short *PROXY protocol* header in front of the
# client's bytes, naming the client's address and port; EMQX's listener reads it
# (`proxy_protocol = true`).

# %%
draw_topology(scenario("tcp-single-tier"))

# %% [markdown]
# **MQTT over WebSocket** — the connection starts with an HTTP upgrade request, so the load
# balancer can add a header, `X-Forwarded-For`, and EMQX can be told to read it
# (`websocket.proxy_address_header`).

# %%
draw_topology(scenario("ws-single-tier"))

# %% [markdown]
# Both fixes raise the same question, which the rest of the course answers byte by byte:
# **whom do you believe?** A header is only as true as the host that wrote it.
#
# ## The map
#
# | notebook | what you do there |
# |---|---|
# | [01 · The PROXY protocol, byte by byte](01-proxy-protocol-bytes.ipynb) | read v1 and v2 headers in an annotated hex view, build your own, TLVs and CRC32C, which program accepts what |
# | [02 · MQTT over TCP, one load balancer](02-tcp-single-tier.ipynb) | nginx `proxy_protocol on` + EMQX `proxy_protocol = true`; the capture; a header nobody expects; a client that forges one |
# | [03 · MQTT over TCP, two tiers](03-tcp-multi-tier.ipynb) | pass-through vs re-generated headers, `set_real_ip_from`, two stacked headers |
# | [04 · MQTT over WebSocket, one load balancer](04-websocket-single-tier.ipynb) | `X-Forwarded-For $remote_addr`, EMQX takes the leftmost entry, a direct client spoofs it |
# | [05 · MQTT over WebSocket, several tiers](05-websocket-multi-tier.ipynb) | forged headers; method 1 (override at the edge); method 2 (trusted recursion) with the **stepper**; `real_ip_recursive off` |
# | [06 · The same with HAProxy](06-haproxy.ipynb) | `send-proxy-v2`, `expect-proxy`, `option forwardfor` and the leftmost pitfall |
# | [07 · TLS: who holds the key](07-tls-and-certificates.ipynb) | nginx and HAProxy terminating TLS, SNI pass-through, client certificates in the PROXY v2 SSL TLV, and a forged one |
# | [08 · Live lab](08-live-lab.ipynb) | the same flows through real nginx and HAProxy on your machine |
# | [09 · Workshop exercises](09-workshop-exercises-student.ipynb) | fifteen self-checking exercises with stepped hints (instructors: see below) |
# | [10 · Your own configuration](10-your-own-config.ipynb) | paste an `nginx.conf` or `haproxy.cfg` and see what the broker records, and why |
#
# ## How to use these notebooks
#
# * **Run All** (Run menu) from the top. Every figure and table is computed by the `realip`
#   package from the scenario files in `data/topologies/`; nothing is pasted in.
# * **Predict, then reveal.** A *Predict* box asks a question: type (or pick) your prediction;
#   the **Reveal** button unlocks once you have one, then shows the answer, whether you were
#   right, and *why*, from the library's own trace (each host's decisions, the resolver's steps,
#   the header's bytes). On GitHub or nbviewer (no kernel) the answer is folded under
#   *Reveal the answer* — write your prediction down first.
# * **Exercises** (notebook 09) check your answer and say what is wrong with it; hints come only
#   after a wrong attempt, a nudge first, then where in the course to look.
# * **Static first, then interactive.** Each widget (Back/Next buttons, check boxes, text fields)
#   comes after a static figure of the same result. A widget only works while the kernel runs:
#   if you see plain text where buttons should be, run the cell.
# * **Errors inside widgets** (a typo in a trusted range, say) appear in a box under the
#   widget, not in the log.
# * Every drawing also has a text form: `print(draw_topology(...))`.
#
# **Instructors**: the solved exercises are `notebooks/instructor/09-workshop-exercises.ipynb`
# (generated next to the student copy by `tools/build_notebooks.py`; see `notebooks/README.md`).
# Hand out the `notebooks/` folder without `instructor/` if you want learners to try first.
#
# ## Glossary
#
# Words and labels the figures and tables use:
#
# * **peername** — the address and port a broker records for a connection (`emqx ctl clients
#   show` prints it; Mosquitto logs it). Behind a proxy it is whatever the broker was told.
# * **trusted zone** (shaded green in the topology drawings) — the hosts whose word the next
#   host takes: the sender of every header that is believed, from the first host that writes
#   the client's address (usually LB 1) to the broker. It turns red, "includes the client!",
#   when the client itself is trusted.
# * **receivers** in the acceptance tables — the programs whose PROXY-header parsers are
#   modelled, with the version or option that matters:
#   * `spec auto` — the PROXY protocol specification itself (HAProxy's `proxy-protocol.txt`),
#     reading v1 or v2, whichever the bytes are;
#   * `nginx 1.22.1`, `haproxy 2.6.12` — the versions CI checks against;
#   * `emqx-tcp 5.17 gen_tcp` — EMQX's MQTT/TCP listener: its socket library esockd 5.17 (the
#     one EMQX 5.7 ships), reading with Erlang's `gen_tcp` sockets (the other backend is
#     `socket`);
#   * `emqx-ws 2.2` — EMQX's WebSocket listener, whose PROXY parser is ranch's (cowboy's
#     socket library), version 2.2;
#   * `mosquitto auto:1` — Mosquitto 2.1's `enable_proxy_protocol`. A Mosquitto listener
#     never detects the version itself, so the table models the listener that matches the
#     bytes shown: `auto:1` means "set to 1 (v1), because the header is v1" (`auto:2` for v2).
# * **$remote_addr**, **$realip_remote_addr**, **$proxy_add_x_forwarded_for** — nginx
#   variables: the (possibly rewritten) client, the TCP peer before realip rewrote it, and
#   "the X-Forwarded-For received, plus `$remote_addr`".
#
# ## What each scenario teaches
#
# Each scenario is one file in `data/topologies/`; the notebooks ask you to predict their
# outcomes, so the table lists them without the answers:

# %%
scenario_table(outcomes=False, names=[
    "tcp-single-tier", "tcp-multi-passthrough", "tcp-multi-regenerate",
    "tcp-multi-regenerate-untrusted", "tcp-stacked-headers", "tcp-header-to-plain-listener",
    "tcp-direct-client-forges-proxy", "ws-single-tier", "ws-emqx-direct-client",
    "ws-edge-appends", "ws-multi-override", "ws-multi-recursive", "ws-multi-nonrecursive",
    "ws-trust-covers-clients", "haproxy-tcp-send-proxy-v2", "haproxy-tcp-accept-proxy-tier",
    "haproxy-ws-forwardfor-leftmost", "haproxy-ws-set-header",
])

# %% [markdown]
# ## Recap
#
# * Behind a proxy, the broker's TCP peer is the proxy. The client's address must be *carried*:
#   in a PROXY protocol header (any TCP protocol) or in an HTTP header (WebSocket).
# * Whoever reads that information must trust whoever wrote it — that is where every mistake in
#   the table above comes from.
# * Next: the PROXY protocol header itself, byte by byte.
