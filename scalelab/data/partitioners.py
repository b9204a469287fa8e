"""Partitioners: which partition holds a key. Built-ins by name, and your own.

``router.partitioner`` names one of:

- ``hash``: :class:`ModuloHash`, ``hash(key) % n``: even, but a range of keys
  is everywhere, and changing ``n`` moves about ``n/(n+1)`` of the keys;
- ``range``: :class:`KeyRange`, contiguous key ranges holding equal rows: a
  range of keys is in few partitions, but a hot range makes a hot partition;
- ``consistent``: :class:`ConsistentHash`, partitions as nodes of a
  :class:`~scalelab.data.ring.HashRing`: adding a partition moves about
  ``1/(n+1)`` of the keys;
- ``module:Class``: your own :class:`Partitioner`, with parameters from
  ``router.partitioner_params`` checked against its ``Params``.

A :class:`Partitioner` is a plain class::

    class EveryTenth(Partitioner):
        \"\"\"Runs of ten consecutive keys, dealt out in turn.\"\"\"

        def partition(self, key):
            return (key // 10) % self.partitions

The router constructs it as ``cls(partitions, params)``, calls :meth:`fit` once
with the dataset's distinct keys and the rows of each, and then asks
:meth:`partition` (or :meth:`partition_many`, for many keys at once) where
keys go, and :meth:`partitions_for_range` which partitions a range of keys
may be in (``None``: any of them). It runs in the service and, pickled, on the
workers, so it must be deterministic: no ``hash()`` of strings (it changes per
process), no randomness without a fixed seed. A partitioner of your own goes to
the workers by value (:func:`shipped`): only the service imports its module.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any, ClassVar

import cloudpickle
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scalelab.data.hashing import mix64
from scalelab.data.ring import HashRing
from scalelab.errors import PluginError
from scalelab.service.plugins import load_plugin, validate_params


class NoParams(BaseModel):
    """The parameters of a partitioner that takes none."""

    model_config = ConfigDict(extra="forbid")


class Partitioner:
    """Maps keys to partitions ``0 .. partitions - 1``. Subclass it and implement
    :meth:`partition`; override the others when you can do better."""

    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, partitions: int, params: Any = None) -> None:
        self.partitions = partitions
        self.params = params if params is not None else type(self).Params()

    def fit(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Told once, before use, the dataset's distinct keys (ascending) and each one's rows."""

    def partition(self, key: int) -> int:
        """The partition that holds ``key``."""
        raise NotImplementedError

    def partition_many(self, keys: np.ndarray) -> np.ndarray:
        """The partition of each key (by default :meth:`partition` key by key)."""
        return np.fromiter((self.partition(int(k)) for k in keys), dtype=np.int64, count=len(keys))

    def partitions_for_range(self, low: int, high: int) -> list[int] | None:
        """The partitions that may hold keys in ``[low, high]``; None when any of them may."""
        return None


class ModuloHash(Partitioner):
    """``hash(key) % partitions``: even shares, no locality of ranges."""

    def partition(self, key: int) -> int:
        """The key's hash modulo the partition count."""
        return int(self.partition_many(np.array([key]))[0])

    def partition_many(self, keys: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`partition`."""
        return (mix64(np.asarray(keys)) % np.uint64(self.partitions)).astype(np.int64)


class KeyRange(Partitioner):
    """Contiguous key ranges, their bounds chosen by :meth:`fit` so that each holds equal rows."""

    def __init__(self, partitions: int, params: Any = None) -> None:
        super().__init__(partitions, params)
        self.bounds = np.zeros(0, dtype=np.int64)
        """Upper bounds (exclusive) of partitions ``0 .. n-2``; the last is open."""

    def fit(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Cut the keys where the cumulative rows cross each ``1/n`` of the total."""
        keys = np.asarray(keys, dtype=np.int64)
        if not len(keys) or self.partitions == 1:
            self.bounds = np.zeros(0, dtype=np.int64)
            return
        cumulative = np.cumsum(np.asarray(rows, dtype=float))
        targets = cumulative[-1] * np.arange(1, self.partitions) / self.partitions
        at = np.searchsorted(cumulative, targets, side="right")
        at = np.minimum(at, len(keys) - 1)
        self.bounds = np.maximum.accumulate(keys[at])

    def partition(self, key: int) -> int:
        """The range ``key`` falls in."""
        return int(np.searchsorted(self.bounds, key, side="right"))

    def partition_many(self, keys: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`partition`."""
        return np.searchsorted(self.bounds, np.asarray(keys), side="right").astype(np.int64)

    def partitions_for_range(self, low: int, high: int) -> list[int] | None:
        """The ranges that overlap ``[low, high]``."""
        return list(range(self.partition(low), self.partition(high) + 1))


class ConsistentHash(Partitioner):
    """Partitions as the nodes ``p0 .. p<n-1>`` of a hash ring (:class:`HashRing`)."""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")

        vnodes: int = Field(default=256, ge=1, le=100_000, description="Positions per node.")

    def __init__(self, partitions: int, params: Any = None) -> None:
        super().__init__(partitions, params)
        vnodes = int(getattr(self.params, "vnodes", 256))
        self.ring = HashRing((f"p{i}" for i in range(partitions)), vnodes=vnodes)

    def partition(self, key: int) -> int:
        """The ring node of ``key``, as a partition number."""
        return int(self.ring.node_for(key)[1:])

    def partition_many(self, keys: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`partition`."""
        names = self.ring.nodes_for(np.asarray(keys))
        lookup = {f"p{i}": i for i in range(self.partitions)}
        return np.fromiter((lookup[n] for n in names), dtype=np.int64, count=len(names))


class SplitHot(Partitioner):
    """Another partitioner with some of its partitions split: a hot partition's keys spread.

    ``splits`` maps a partition of ``base`` to the number of ways it is split;
    its keys go, by a second hash, to itself or to new partitions numbered from
    ``base.partitions`` on. One key never splits: a key hotter than the mean
    keeps its part hot.
    """

    def __init__(self, base: Partitioner, splits: dict[int, int]) -> None:
        extra = sum(ways - 1 for ways in splits.values())
        super().__init__(base.partitions + extra)
        self.base = base
        self.splits = dict(splits)
        self.parts: dict[int, list[int]] = {}
        next_id = base.partitions
        for partition, ways in sorted(self.splits.items()):
            self.parts[partition] = [partition, *range(next_id, next_id + ways - 1)]
            next_id += ways - 1

    def partition(self, key: int) -> int:
        """The base partition, or one of its parts."""
        return int(self.partition_many(np.array([key]))[0])

    def partition_many(self, keys: np.ndarray) -> np.ndarray:
        """The base partitions, then each split one's keys dealt among its parts."""
        keys = np.asarray(keys)
        out = np.asarray(self.base.partition_many(keys), dtype=np.int64).copy()
        for partition, parts in self.parts.items():
            mask = out == partition
            if mask.any():
                which = (mix64(keys[mask], salt=7) % np.uint64(len(parts))).astype(np.int64)
                out[mask] = np.asarray(parts, dtype=np.int64)[which]
        return out

    def partitions_for_range(self, low: int, high: int) -> list[int] | None:
        """The base's answer, with every part of a split partition."""
        found = self.base.partitions_for_range(low, high)
        if found is None:
            return None
        return sorted({p for b in found for p in self.parts.get(b, [b])})


PARTITIONERS: dict[str, type[Partitioner]] = {
    "hash": ModuloHash,
    "range": KeyRange,
    "consistent": ConsistentHash,
}
"""Built-in partitioners by the name ``router.partitioner`` uses."""


def partitioner_class(name: str, field: str = "router.partitioner") -> type[Partitioner]:
    """The class ``name`` stands for: a built-in, or a user ``module:Class``."""
    if name in PARTITIONERS:
        return PARTITIONERS[name]
    if ":" not in name:
        raise PluginError(
            f"{field} = {name!r}: unknown partitioner; use one of {', '.join(PARTITIONERS)} "
            "or 'module:Class' naming a Partitioner",
            field,
        )
    return load_plugin(name, Partitioner, field)


def make_partitioner(name: str, partitions: int, raw: dict[str, Any]) -> Partitioner:
    """A partitioner of ``partitions`` partitions, its parameters checked against its Params."""
    cls = partitioner_class(name)
    params = validate_params(cls, raw, "router.partitioner_params")
    try:
        return cls(partitions, params)
    except Exception as exc:
        raise PluginError(
            f"router.partitioner = {name!r}: {cls.__qualname__}({partitions}, params) failed: "
            f"{type(exc).__name__}: {exc}",
            "router.partitioner",
        ) from None


def check_assignment(assigned: np.ndarray, partitions: int, name: str) -> np.ndarray:
    """``assigned`` as int64, or a :class:`PluginError` naming the partitioner when a key went
    outside ``0 .. partitions - 1``."""
    out = np.asarray(assigned, dtype=np.int64)
    if len(out) and (out.min() < 0 or out.max() >= partitions):
        bad = out[(out < 0) | (out >= partitions)][0]
        raise PluginError(
            f"router.partitioner = {name!r} put a key in partition {int(bad)}; "
            f"partitions are 0 .. {partitions - 1}",
            "router.partitioner",
        )
    return out


def moved_fraction(before: Partitioner, after: Partitioner, keys: np.ndarray) -> float:
    """The share of ``keys`` whose partition differs between two partitioners."""
    keys = np.asarray(keys)
    if not len(keys):
        return 0.0
    return float(np.mean(before.partition_many(keys) != after.partition_many(keys)))


class _ByValue:
    """Pickles a partitioner with the code of its own modules (cloudpickle, by value), so that
    a worker that cannot import them (a shared cluster, a grader's) still unpickles it."""

    def __init__(self, partitioner: Partitioner) -> None:
        self.partitioner = partitioner

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        modules = [sys.modules[m] for m in _user_modules(self.partitioner) if m in sys.modules]
        for module in modules:
            cloudpickle.register_pickle_by_value(module)
        try:
            data = cloudpickle.dumps(self.partitioner)
        finally:
            for module in modules:
                cloudpickle.unregister_pickle_by_value(module)
        return pickle.loads, (data,)


def _user_modules(partitioner: Any) -> set[str]:
    """The modules outside scalelab that define ``partitioner``'s class (and its base's)."""
    found = set()
    for obj in (partitioner, getattr(partitioner, "base", None)):
        name = type(obj).__module__ if obj is not None else "scalelab"
        if name.split(".")[0] not in ("scalelab", "builtins"):
            found.add(name)
    return found


def shipped(partitioner: Partitioner) -> Any:
    """What to send to the workers for ``partitioner``: itself when scalelab defines it, else a
    wrapper that unpickles, on the worker, to the partitioner with its code sent by value."""
    return _ByValue(partitioner) if _user_modules(partitioner) else partitioner
