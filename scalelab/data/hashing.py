"""A stable 64-bit hash of integer keys, the same in every process and every run.

Python's ``hash`` of a string changes from process to process, and a
partitioner must give a key the same partition in the service and on every
worker. :func:`mix64` is SplitMix64's finaliser (Steele, Lea and Flood, 2014):
cheap, vectorised with numpy, and every input bit moves every output bit.
"""

from __future__ import annotations

import hashlib

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(keys: np.ndarray | int, salt: int = 0) -> np.ndarray:
    """SplitMix64 of each key (``salt`` gives an independent hash), as ``uint64``."""
    with np.errstate(over="ignore"):
        z = np.asarray(keys).astype(np.int64).view(np.uint64) + _GOLDEN * np.uint64(salt + 1)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)


def hash_key(key: int, salt: int = 0) -> int:
    """:func:`mix64` of one key, as a Python int."""
    return int(mix64(np.array([key], dtype=np.int64), salt)[0])


def hash_text(text: str) -> int:
    """A stable 64-bit hash of a string (the positions of a ring's virtual nodes)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
