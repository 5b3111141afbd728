"""The lab broker's subscription index: a topic trie, so a PUBLISH costs what matches it.

:class:`TopicTree` stores ``(filter, subscriber) → value`` entries in a trie of topic levels,
with ``+`` and ``#`` as ordinary children.  :meth:`TopicTree.match` walks only the branches a
topic name can reach: at each level the literal child, ``+`` and ``#`` (MQTT 5 §4.7), and the
``$`` rule — a topic whose first level starts with ``$`` (``$SYS/…``, ``$realip/…``) is never
matched by a filter whose first level is a wildcard [MQTT-4.7.2-1].  ``sport/#`` also matches
``sport`` (the parent level) [MQTT-4.7.1-2].  So a publish visits at most the distinct filter
prefixes that match a prefix of its topic, never the filters that cannot match:
:attr:`TopicTree.visited` counts the nodes of the last match, which is what the tests assert
(timings are the benchmarks' business).

The same trie as Mosquitto's subscription tree (``subs.c``) and EMQX's ``emqx_trie`` keep for
wildcard filters.  Shared subscriptions (``$share/…``) are not stored here: the lab broker
refuses them (SUBACK 0x9E) and says so in its CONNACK.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["TopicTree"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Node(Generic[K, V]):
    __slots__ = ("children", "entries")

    def __init__(self) -> None:
        self.children: dict[str, _Node[K, V]] = {}
        self.entries: dict[K, V] = {}


class TopicTree(Generic[K, V]):
    """Subscriptions by topic filter: ``tree.add(filt, key, value)``, ``tree.remove(filt,
    key)``, ``tree.match(topic)`` → ``[(key, value), …]`` for every filter matching *topic*
    (a key subscribed with two matching filters appears twice: the caller merges them, as MQTT
    5 §3.3.4 lets it)."""

    def __init__(self) -> None:
        self._root: _Node[K, V] = _Node()
        self._count = 0
        #: nodes visited by the last :meth:`match` (its cost, independent of the clock)
        self.visited = 0

    def __len__(self) -> int:
        """The number of ``(filter, key)`` entries."""
        return self._count

    def add(self, filt: str, key: K, value: V) -> bool:
        """Store *value* for *key* under *filt*; True when the entry is new (else replaced)."""
        node = self._root
        for level in filt.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        new = key not in node.entries
        node.entries[key] = value
        self._count += new
        return new

    def remove(self, filt: str, key: K) -> bool:
        """Remove *key*'s entry under *filt* (True if there was one); empty branches go."""
        path: list[tuple[_Node[K, V], str]] = []
        node = self._root
        for level in filt.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.entries.pop(key, _MISSING) is _MISSING:
            return False
        self._count -= 1
        for parent, level in reversed(path):  # prune what no filter needs any more
            child = parent.children[level]
            if child.entries or child.children:
                break
            del parent.children[level]
        return True

    def match(self, topic: str) -> list[tuple[K, V]]:
        """Every ``(key, value)`` whose filter matches the topic name *topic*."""
        levels = topic.split("/")
        out: list[tuple[K, V]] = []
        visited = 1
        nodes = [self._root]
        dollar = topic.startswith("$")
        for i, level in enumerate(levels):
            wild = not (i == 0 and dollar)
            nxt: list[_Node[K, V]] = []
            for node in nodes:
                children = node.children
                if not children:
                    continue
                if wild:
                    multi = children.get("#")
                    if multi is not None:
                        visited += 1
                        out.extend(multi.entries.items())
                    single = children.get("+")
                    if single is not None:
                        nxt.append(single)
                exact = children.get(level)
                if exact is not None:
                    nxt.append(exact)
            visited += len(nxt)
            nodes = nxt
            if not nodes:
                break
        else:
            for node in nodes:
                out.extend(node.entries.items())
                multi = node.children.get("#")  # "a/#" matches "a"
                if multi is not None:
                    visited += 1
                    out.extend(multi.entries.items())
        self.visited = visited
        return out

    def filters(self) -> Iterator[tuple[str, K, V]]:
        """Every ``(filter, key, value)`` (depth first; for inspection and tests)."""
        stack: list[tuple[str | None, _Node[K, V]]] = [(None, self._root)]
        while stack:
            prefix, node = stack.pop()
            if prefix is not None:
                for key, value in node.entries.items():
                    yield prefix, key, value
            for level, child in node.children.items():
                stack.append((level if prefix is None else f"{prefix}/{level}", child))


_MISSING = object()
