"""aedes (Node.js) with aedes-server-factory's ``trustProxy: true``: aedes-protocol-decoder's
PROXY v1/v2 reader (through proxy-protocol-js) and its X-Forwarded-For / X-Real-IP rule."""
