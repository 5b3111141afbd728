"""Mosquitto: its PROXY protocol reader and its broker listener."""
