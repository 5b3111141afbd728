"""Shared helpers for the live-lab tests: a bounded, synchronous paho-mqtt client and raw
socket clients (all on loopback)."""

from __future__ import annotations

import queue
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from realip.topology import mqtt_connect

V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5


class Paho:
    """One paho-mqtt 2.x client with every wait bounded: ``connect`` returns True once the
    CONNACK arrived, False when the broker closed the connection first."""

    def __init__(self, client_id: str, *, transport: str = "tcp", protocol: int = V311,
                 headers: dict[str, str] | None = None, path: str = "/mqtt") -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol, reconnect_on_failure=False,
                                  transport="websockets" if transport == "ws" else "tcp")
        if transport == "ws":
            self.client.ws_set_options(path=path, headers=headers)
        self.protocol = protocol
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.acks: queue.Queue[int] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_subscribe = lambda c, u, mid, *a: self.acks.put(mid)
        self.client.on_publish = lambda c, u, mid, *a: self.acks.put(mid)
        self.started = False

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self.connected.set()
        else:
            self.closed.set()

    def _on_disconnect(self, *args: Any) -> None:
        self.closed.set()

    def connect(self, host: str, port: int, *, bind: str, bind_port: int = 0,
                timeout: float = 3.0, threaded: bool = True) -> bool:
        """Connect; with *threaded* False no network thread is started (the caller pumps
        ``client.loop()``), else paho's own thread runs the client."""
        self.client.connect(host, port, keepalive=30, bind_address=bind, bind_port=bind_port)
        if threaded:
            self.client.loop_start()
            self.started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not threaded:
                self.client.loop(0.01)
            if self.connected.wait(0.01):
                return True
            if self.closed.is_set():
                return False
        return False

    def _wait_ack(self, mid: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            got = self.acks.get(timeout=max(0.01, deadline - time.monotonic()))
            if got == mid:
                return

    def subscribe(self, topic: str, qos: int = 0) -> None:
        _, mid = self.client.subscribe(topic, qos)
        assert mid is not None
        self._wait_ack(mid)

    def publish(self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False,
                properties: Properties | None = None) -> None:
        info = self.client.publish(topic, payload, qos, retain, properties)
        if qos:
            self._wait_ack(info.mid)

    def expect(self, timeout: float = 3.0) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def whoami(self, client_id: str) -> str:
        """Ask the broker for the recorded peername (``$realip/whoami``)."""
        self.subscribe(f"$realip/whoami/{client_id}")
        self.publish("$realip/whoami", b"?")
        msg = self.expect()
        assert msg.topic == f"$realip/whoami/{client_id}"
        return str(msg.payload.decode())

    def close(self) -> None:
        if self.started:
            if self.connected.is_set() and not self.closed.is_set():
                self.client.disconnect()
                self.closed.wait(2)
            self.client.loop_stop()
            self.started = False

    def __enter__(self) -> Paho:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def v5_request(response_topic: str, correlation: bytes) -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    return props


def raw_mqtt(host: str, port: int, first: bytes, *, bind: str, bind_port: int = 0,
             client_id: str = "raw", timeout: float = 3.0) -> bytes:
    """Connect from *bind*, send *first* then an MQTT 3.1.1 CONNECT for *client_id*, and return
    the first bytes answered (b"" when the broker closed the connection)."""
    with socket.socket() as s:
        s.settimeout(timeout)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((bind, bind_port))
        s.connect((host, port))
        try:
            s.sendall(first + mqtt_connect(client_id))
            return s.recv(4)
        except OSError:
            return b""
