"""A consistent-hash ring of our own: nodes on a circle of 64-bit positions, keys to the next one.

Each node stands at ``vnodes`` positions (virtual nodes), the hash of
``"<node>#<i>"``; a key belongs to the first node position at or after the
key's own hash, going round. Adding a node takes over only the arcs just before
its positions, so about ``1/(n+1)`` of the keys move, all of them to the new
node; removing one hands only its keys on. Modulo hashing (``hash % n``) moves
about ``n/(n+1)`` of them instead. More virtual nodes make the shares more even
(their spread falls like ``1/sqrt(vnodes)``) at the cost of a longer ring.

This is a lesson as much as a tool: :class:`HashRing` is small on purpose, and
a partitioner of your own may use a ring of your own instead (see
:mod:`scalelab.data.partitioners`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np

from scalelab.data.hashing import hash_text, mix64


class HashRing:
    """Nodes (any strings) on a ring, ``vnodes`` positions each; keys are integers."""

    def __init__(self, nodes: Iterable[str] = (), vnodes: int = 256) -> None:
        if vnodes < 1:
            raise ValueError(f"vnodes = {vnodes}: give at least 1")
        self.vnodes = vnodes
        self._positions: list[int] = []
        self._owners: list[str] = []
        self._nodes: set[str] = set()
        for node in nodes:
            self.add(node)

    @property
    def nodes(self) -> list[str]:
        """The nodes on the ring, sorted."""
        return sorted(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def add(self, node: str) -> None:
        """Put ``node`` on the ring at its ``vnodes`` positions."""
        if node in self._nodes:
            raise ValueError(f"node {node!r} is already on the ring")
        self._nodes.add(node)
        for i in range(self.vnodes):
            position = hash_text(f"{node}#{i}")
            at = bisect.bisect_left(self._positions, position)
            self._positions.insert(at, position)
            self._owners.insert(at, node)

    def remove(self, node: str) -> None:
        """Take ``node`` off the ring; its keys go to the nodes after its positions."""
        if node not in self._nodes:
            raise ValueError(f"node {node!r} is not on the ring")
        self._nodes.discard(node)
        keep = [i for i, owner in enumerate(self._owners) if owner != node]
        self._positions = [self._positions[i] for i in keep]
        self._owners = [self._owners[i] for i in keep]

    def node_for(self, key: int) -> str:
        """The node that holds ``key``."""
        if not self._positions:
            raise LookupError("the ring has no nodes")
        at = bisect.bisect_left(self._positions, int(mix64(np.array([key]))[0]))
        return self._owners[at % len(self._owners)]

    def nodes_for(self, keys: np.ndarray) -> np.ndarray:
        """The node of each key (vectorised :meth:`node_for`), as an array of node names."""
        if not self._positions:
            raise LookupError("the ring has no nodes")
        positions = np.asarray(self._positions, dtype=np.uint64)
        at = np.searchsorted(positions, mix64(np.asarray(keys)), side="left") % len(positions)
        return np.asarray(self._owners, dtype=object)[at]

    def shares(self) -> dict[str, float]:
        """The fraction of the hash circle each node owns."""
        if not self._positions:
            return {}
        span = float(2**64)
        out = dict.fromkeys(self._nodes, 0.0)
        previous = self._positions[-1] - 2**64
        for position, owner in zip(self._positions, self._owners, strict=True):
            out[owner] += (position - previous) / span
            previous = position
        return out
