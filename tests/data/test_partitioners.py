"""Partitioners and the hash ring: where keys go, and what moves when a partition joins."""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from uhashring import HashRing as ReferenceRing

from scalelab.data.partitioners import (
    ConsistentHash,
    KeyRange,
    ModuloHash,
    SplitHot,
    check_assignment,
    make_partitioner,
    moved_fraction,
    shipped,
)
from scalelab.data.ring import HashRing
from scalelab.errors import PluginError

KEYS = np.arange(50_000)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_adding_a_partition_moves_one_in_n_plus_one_keys_on_a_ring_and_most_with_modulo(
    n: int,
) -> None:
    ring_before, ring_after = ConsistentHash(n), ConsistentHash(n + 1)
    assert moved_fraction(ring_before, ring_after, KEYS) == pytest.approx(1 / (n + 1), rel=0.10)
    before, after = ring_before.partition_many(KEYS), ring_after.partition_many(KEYS)
    assert (after[before != after] == n).all()  # every key that moved went to the new partition
    assert moved_fraction(ModuloHash(n), ModuloHash(n + 1), KEYS) == pytest.approx(
        n / (n + 1), rel=0.02
    )


def test_our_ring_moves_keys_like_uhashring_does() -> None:
    """uhashring (ketama, md5) as a reference: both move about 1/(n+1) of keys to the new node."""
    keys = [str(k) for k in range(20_000)]
    ref_before = ReferenceRing(nodes=["a", "b", "c", "d"])
    ref_after = ReferenceRing(nodes=["a", "b", "c", "d", "e"])
    ref_moved = np.mean([ref_before.get_node(k) != ref_after.get_node(k) for k in keys])
    ours_before = HashRing(["a", "b", "c", "d"])
    ours_after = HashRing(["a", "b", "c", "d", "e"])
    ints = np.arange(20_000)
    ours_moved = np.mean(ours_before.nodes_for(ints) != ours_after.nodes_for(ints))
    assert ref_moved == pytest.approx(0.2, abs=0.03)
    assert ours_moved == pytest.approx(ref_moved, abs=0.03)


def test_a_ring_gives_every_node_about_its_share_and_remove_hands_keys_on() -> None:
    ring = HashRing([f"n{i}" for i in range(4)], vnodes=512)
    assert sum(ring.shares().values()) == pytest.approx(1.0)
    assert all(s == pytest.approx(0.25, rel=0.15) for s in ring.shares().values())
    owners = ring.nodes_for(KEYS)
    assert owners[123] == ring.node_for(123)
    ring.remove("n3")
    after = ring.nodes_for(KEYS)
    assert (after[owners != "n3"] == owners[owners != "n3"]).all()
    assert "n3" not in set(after)
    with pytest.raises(ValueError, match="already"):
        ring.add("n0")


def test_range_partitions_hold_equal_rows_and_a_range_maps_to_few_of_them() -> None:
    keys = np.arange(1000)
    rows = np.where(keys < 100, 10, 1)  # the first hundred keys hold 10 rows each
    part = KeyRange(4)
    part.fit(keys, rows)
    per = np.bincount(part.partition_many(keys), weights=rows)
    assert per.max() / per.mean() < 1.1
    assert part.partitions_for_range(0, 5) == [0]
    assert part.partitions_for_range(0, 999) == [0, 1, 2, 3]
    assert ModuloHash(4).partitions_for_range(0, 5) is None


def test_splitting_a_partition_spreads_its_keys_and_leaves_the_others_alone() -> None:
    base = ModuloHash(4)
    split = SplitHot(base, {2: 3})
    assert split.partitions == 6
    before, after = base.partition_many(KEYS), split.partition_many(KEYS)
    assert (after[before != 2] == before[before != 2]).all()
    parts = np.bincount(after[before == 2])[[2, 4, 5]]
    assert parts.min() / parts.max() > 0.9
    assert split.partition(int(KEYS[before == 2][0])) in (2, 4, 5)


def test_a_partitioner_of_your_own_loads_by_module_and_class_with_its_parameters() -> None:
    mine = make_partitioner("tests.data.custom_partitioner:Blocks", 3, {"block": 5})
    assert mine.partition_many(np.array([0, 4, 5, 10, 15])).tolist() == [0, 0, 1, 2, 0]
    with pytest.raises(PluginError, match=r"router.partitioner_params.blok: unknown parameter"):
        make_partitioner("tests.data.custom_partitioner:Blocks", 3, {"blok": 5})
    with pytest.raises(PluginError, match="cannot import module"):
        make_partitioner("no_such_module:Mine", 3, {})
    with pytest.raises(PluginError, match="unknown partitioner"):
        make_partitioner("modulo", 3, {})
    wrong = make_partitioner("tests.data.custom_partitioner:OutOfRange", 3, {})
    with pytest.raises(PluginError, match=r"put a key in partition 3; partitions are 0 \.\. 2"):
        check_assignment(wrong.partition_many(np.arange(5)), 3, "OutOfRange")


def test_the_seams_are_in_the_public_api() -> None:
    import scalelab
    from scalelab.data.partitioners import Partitioner

    assert scalelab.Partitioner is Partitioner and scalelab.HashRing is HashRing


def test_a_partitioner_of_your_own_reaches_a_process_that_cannot_import_its_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker without the student's module (a shared cluster's, a grader's) still unpickles
    the partitioner: its code goes by value; scalelab's own go by reference."""
    (tmp_path / "far_ring.py").write_text(
        "from scalelab.data.partitioners import Partitioner\n\n\n"
        "class Far(Partitioner):\n"
        "    def partition(self, key):\n"
        "        return (key * 7 + 3) % self.partitions\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    far = importlib.import_module("far_ring").Far(5)
    assert pickle.loads(pickle.dumps(shipped(far))).partition(11) == far.partition(11)
    assert shipped(ModuloHash(4)) is not None and isinstance(shipped(ModuloHash(4)), ModuloHash)
    data = pickle.dumps(shipped(far))
    code = (
        "import pickle, sys; p = pickle.loads(sys.stdin.buffer.read()); "
        "print(type(p).__name__, [p.partition(k) for k in range(6)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, cwd="/"
    )
    assert out.stdout.decode().split() == [
        "Far",
        *str([far.partition(k) for k in range(6)]).split(),
    ]
