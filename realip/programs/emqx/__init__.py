"""EMQX: Erlang's address grammar, esockd (tcp/ssl) and ranch (ws/wss) PROXY readers, the
WebSocket listener's header rules and the broker listener."""
