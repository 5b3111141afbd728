# %% [markdown]
# # 10 · Your own configuration
#
# **Goals** — paste your `nginx.conf` or `haproxy.cfg` (one file per load balancer), pick a
# client and what it forges, and see what the broker records and why — including what the
# simulator does not model in your files.
#
# **Prerequisites** — [05](05-websocket-multi-tier.ipynb) and [06](06-haproxy.ipynb).
#
# **Time** — 20 minutes, then as long as you like.

# %%
from realip.teaching import config, explore, predict
from realip.viz import ConfigForm, draw_topology, sequence_view, tcpdump

# %% [markdown]
# ## A worked example: the article's method 2
#
# `explore` reads each file with nginx's own parser (crossplane) or a HAProxy reader, chains the
# load balancers in order (each file's `upstream`/`server` says where the next one is), puts
# EMQX behind the last one and plays one connection through.

# %%
method2 = [config("ws-method2-lb1").text, config("ws-method2-lb2").text,
           config("ws-method2-lb3").text]
result = explore(method2, client="1.94.170.163:50412", forge_xff="127.0.0.1",
                 broker={"proxy_address_header": "X-Real-IP"})
result

# %%
draw_topology(result.trace, title="Your chain: the article's method 2")

# %% [markdown]
# The request LB 3 hands to EMQX, as `tcpdump -X` on the EMQX host would show it:

# %%
tcpdump(result.trace, "emqx")

# %% [markdown]
# ## Paste a file
#
# Replace the text below with your own configuration — directives the simulator does not model
# are listed, never silently ignored:

# %%
my_conf = """
http {
  upstream emqx { server 172.16.0.71:8083; }
  server {
    listen 8083;
    access_log off;
    location /mqtt {
      proxy_pass http://emqx;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "Upgrade";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      gzip on;
    }
  }
}
"""
mine = explore(my_conf, client="115.236.21.86:61813", forge_xff="10.0.0.1")
mine.warnings

# %% [markdown]
# **Predict** — this file appends to `X-Forwarded-For`, and the client forges `10.0.0.1`. Which
# address does EMQX (leftmost rule) record?

# %%
predict("Which address does EMQX record?", mine.trace, "address")

# %% [markdown]
# And the port? This file sends no `X-Forwarded-Port`, so EMQX falls back to its TCP peer's
# port: LB 1's own source port. `explore` places LB 1 at `172.16.0.116` and, since a pasted file
# cannot say which source port the kernel will pick, gives it `41316` (as in the other
# notebooks) — the port in the peername below is that invented one, not anything your file
# decides.

# %%
mine.trace.peername

# %%
sequence_view(mine.trace)

# %% [markdown]
# A HAProxy file works the same way:

# %%
explore(config("ws-forwardfor-lb1").text, forge_xff="127.0.0.1").trace.peername

# %% [markdown]
# ## The form
#
# The same, interactively: paste one file per load balancer (separate them with a line
# `# --- next hop ---`), set the client and what it forges, choose EMQX's address header, press
# **Simulate**. It starts with the worked example above.

# %%
ConfigForm("\n# --- next hop ---\n".join(method2), client="1.94.170.163:50412",
           forge_xff="127.0.0.1", address_header="X-Real-IP")

# %% [markdown]
# ## Can it be spoofed? The audit
#
# `audit` sends every forgery realip knows (forged X-Forwarded-For in a dozen forms, X-Real-IP,
# `Forwarded`, X-Forwarded-Port, forged PROXY headers) and says, for each, whether EMQX records
# the attacker's real address (SAFE), the one it chose (SPOOFED), or refuses it — and for every
# SPOOFED row the smallest change that closes it, checked on the simulator. Here it audits the
# mistake from [05](05-websocket-multi-tier.ipynb): an edge that *appends* to
# X-Forwarded-For. Open a row to see its trace. From a terminal: `python -m realip audit
# ws-edge-appends` (add `--config your.conf@ADDR` for your own files).

# %%
from realip.audit import audit
from realip.topology import load_scenario

audit(load_scenario("ws-edge-appends"))

# %% [markdown]
# ## Recap
#
# * `explore(files, client=…, forge_xff=…)` builds a topology from real configuration files and
#   simulates it; `warnings` lists what it did not model.
# * The first LB is placed at `172.16.0.116` (public `121.36.192.227`); every other address comes
#   from your files.
# * `audit(topology)` (or `python -m realip audit`) tries every known forgery and computes
#   the fix for each one that works.
# * For the real programs on your machine, see [08 · the live lab](08-live-lab.ipynb).
