"""nginx: its address grammar, its PROXY protocol reader, realip and variables, its hops and
its configuration files."""
