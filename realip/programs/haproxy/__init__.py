"""HAProxy: its PROXY protocol reader, its header rules, its hop and its configuration file."""
