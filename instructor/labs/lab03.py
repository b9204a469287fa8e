"""Hidden part of lab 03: keys moved and imbalance against a run, the reference ring and its
tests, the indexes a mix needs."""

from __future__ import annotations

import math
from typing import Any
from unittest import mock

import numpy as np

from scalelab.analysis.load import Run
from scalelab.analysis.partitioning import imbalance, keys_moved
from scalelab.data.hashing import mix64
from scalelab.data.partitioners import ConsistentHash, ModuloHash, Partitioner
from scalelab.exercises import Mistake, Verdict, hide
from scalelab.exercises.base import AnswerError
from scalelab.exercises.context import Context
from scalelab.exercises.labs.lab03 import MIXES, index_plans, searches_orders
from scalelab.loadgen.keys import zipf_weights

# --- q1: the share of keys modulo hashing moves, n -> m -------------------------------------


def resize_of(run: Run) -> int | None:
    """The partition count the run's ``[[faults]]`` set, if one did."""
    for fault in run.spec.get("faults", []):
        value = fault.get("set", {}).get("router.partitions")
        if value is not None:
            return int(value)
    return None


def _the_run(ctx: Context) -> Run:
    runs = ctx.runs("run")
    n, m = ctx.param("resize")
    for run in runs:
        if resize_of(run) != m:
            raise AnswerError(
                f"run {run.run_id} does not set router.partitions to {m} during the run; "
                f"resize it with a [[faults]] entry setting router.partitions = {m}"
            )
    return runs[-1]


def moved_share(ctx: Context) -> float:
    """The share of keys the router counted as moved by the run's one repartitioning."""
    run = _the_run(ctx)
    moves = keys_moved(run)
    if len(moves) != 1:
        raise AnswerError(
            f"run {run.run_id} repartitioned {len(moves)} times; the question is about one resize"
        )
    return float(moves["share"].iloc[0])


def _modulo_theory(n: int, m: int) -> float:
    return 1.0 - math.gcd(n, m) / max(n, m)


def _reference_moved(ctx: Context) -> float:
    n, m = ctx.param("resize")
    return _modulo_theory(int(n), int(m))


def _resize(ctx: Context) -> tuple[int, int]:
    n, m = ctx.param("resize")
    return int(n), int(m)


hide(
    "lab03.q1",
    expected=moved_share,
    abs_tol=0.03,
    reference=_reference_moved,
    mistakes=[
        Mistake(
            lambda ctx: abs(_resize(ctx)[1] - _resize(ctx)[0]) / max(_resize(ctx)),
            "that is what a consistent-hash ring would move; modulo hashing moves far more.",
        ),
        Mistake(
            lambda ctx: 1.0 - 1.0 / max(_resize(ctx)),
            "that holds when the two counts share no factor; these two do.",
        ),
        Mistake(
            lambda ctx: min(_resize(ctx)) / max(_resize(ctx)),
            "a ratio of the counts is not the share of remainders that change.",
        ),
        Mistake(lambda ctx: 1.0, "not every key moves: some keep their remainder."),
    ],
)

# --- q2: the hottest partition under Zipf lookups, hash partitioning -------------------------


def _customers(ctx: Context) -> int:
    return int(_the_run(ctx).spec["service"]["router"]["dataset"]["customers"])


def zipf_imbalance(ctx: Context) -> float:
    """Max over mean of the partitions' shares of Zipf(alpha) lookups, hash partitioning."""
    n = int(ctx.param("resize")[0])
    keys = np.arange(_customers(ctx))
    weights = np.asarray(zipf_weights(len(keys), float(ctx.param("alpha"))))
    load = np.bincount(ModuloHash(n).partition_many(keys), weights=weights, minlength=n)
    return imbalance(load)


def measured_imbalance(ctx: Context) -> float:
    """The imbalance of the run's lookups before its resize, from its requests."""
    run = _the_run(ctx)
    n = int(ctx.param("resize")[0])
    events = run.events
    faults = events.loc[(events["kind"] == "fault") & (events["name"] == "set"), "t"]
    until = float(faults.min()) if len(faults) else math.inf
    req = run.requests
    before = req.loc[(req["start"] < until) & req["ok"].astype(bool), "partition"].astype(str)
    parts = before.loc[before.str.fullmatch(r"\d+")].astype(int)
    return imbalance(np.bincount(parts.to_numpy(), minlength=n)[:n])


def _hottest_key_alone(ctx: Context) -> float:
    weights = np.asarray(zipf_weights(_customers(ctx), float(ctx.param("alpha"))))
    return float(weights[0] / weights.sum() * int(ctx.param("resize")[0]))


def _range_imbalance(ctx: Context) -> float:
    n = int(ctx.param("resize")[0])
    c = _customers(ctx)
    weights = np.asarray(zipf_weights(c, float(ctx.param("alpha"))))
    load = np.bincount(np.arange(c) * n // c, weights=weights, minlength=n)
    return imbalance(load)


def _equal_keys(ctx: Context) -> float:
    n = int(ctx.param("resize")[0])
    return imbalance(np.bincount(ModuloHash(n).partition_many(np.arange(_customers(ctx)))))


hide(
    "lab03.q2",
    expected=zipf_imbalance,
    rel_tol=0.03,
    measured=measured_imbalance,
    mistakes=[
        Mistake(
            lambda ctx: 1.0,
            "hashing spreads keys evenly, not their popularity: weigh each key by how often "
            "it is asked for.",
        ),
        Mistake(
            _equal_keys,
            "hashing spreads keys evenly, not their popularity: weigh each key by how often "
            "it is asked for.",
        ),
        Mistake(
            _hottest_key_alone,
            "that is the hottest key alone; its partition holds other keys too.",
        ),
        Mistake(
            _range_imbalance,
            "that would be contiguous ranges of customers; this router hashes them.",
        ),
    ],
)

# --- q3: a consistent-hash ring of the student's own ------------------------------------------


class SolutionRing(Partitioner):
    """The reference answer to lab03.q3: each partition at 1,024 seeded positions on a 64-bit
    circle; a key goes to the first position at or after its own hash."""

    VNODES = 1024

    def __init__(self, partitions: int, params: Any = None) -> None:
        super().__init__(partitions, params)
        ids = np.arange(partitions, dtype=np.int64).repeat(self.VNODES)
        marks = np.tile(np.arange(self.VNODES, dtype=np.int64), partitions)
        positions = mix64(ids * 1_000_003 + marks, salt=101)
        order = np.argsort(positions, kind="stable")
        self.positions = positions[order]
        self.owners = ids[order]

    def partition(self, key: int) -> int:
        """The partition of one key."""
        return int(self.partition_many(np.array([key]))[0])

    def partition_many(self, keys: np.ndarray) -> np.ndarray:
        """The owner of the first position at or after each key's hash, round the circle."""
        at = np.searchsorted(self.positions, mix64(np.asarray(keys, dtype=np.int64)))
        return self.owners[at % len(self.positions)]


KEYS = np.arange(20_000, dtype=np.int64)


def _assign(answer: type, n: int, keys: np.ndarray = KEYS) -> np.ndarray:
    out = np.asarray(answer(n).partition_many(keys))
    assert out.shape == keys.shape, (
        f"partition_many returned {out.shape} partitions for {len(keys)} keys"
    )
    assert np.issubdtype(out.dtype, np.integer), "partitions must be integers"
    return out.astype(np.int64)


def _test_contract(answer: type) -> None:
    """puts every key in 0 .. partitions - 1, the same way every time, one key or many"""
    for n in (1, 3, 8):
        got = _assign(answer, n)
        assert got.min() >= 0 and got.max() < n, f"with {n} partitions a key went to {got.max()}"
        again = _assign(answer, n)
        assert np.array_equal(got, again), (
            "two rings of the same size disagree: it must be deterministic "
            "(no hash() of strings, no unseeded randomness)"
        )
        one = answer(n)
        for key in (0, 1, 17, 9_999, 123_456):
            assert int(one.partition(key)) == int(one.partition_many(np.array([key]))[0]), (
                f"partition({key}) and partition_many disagree"
            )


def _test_even(answer: type) -> None:
    """spreads keys evenly: at most 1.25 x the mean per partition with 8 partitions"""
    load = np.bincount(_assign(answer, 8), minlength=8)
    ratio = load.max() / load.mean()
    assert ratio <= 1.25, (
        f"with 8 partitions the fullest holds {ratio:.2f} x the mean of 20,000 keys; how many "
        "places on the ring does each partition have?"
    )


def _test_moves_little(answer: type) -> None:
    """growing n -> n + 1 moves at most 1/(n+1) + 0.05 of the keys, all to the new partition"""
    for n in (2, 3, 4, 7):
        before, after = _assign(answer, n), _assign(answer, n + 1)
        moved = before != after
        share = float(moved.mean())
        assert share <= 1 / (n + 1) + 0.05, (
            f"from {n} to {n + 1} partitions it moved {share:.1%} of the keys "
            f"(at most {1 / (n + 1) + 0.05:.1%})"
        )
        assert np.all(after[moved] == n), (
            f"from {n} to {n + 1} partitions some keys moved between old partitions; only the "
            "new one should take keys"
        )


def _test_own_ring(answer: type) -> None:
    """is a ring of its own (not the built-in consistent partitioner or scalelab's HashRing)"""
    assert not issubclass(answer, ConsistentHash), "this is the built-in consistent partitioner"

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("it uses scalelab.data.ring.HashRing; write the ring yourself")

    with mock.patch("scalelab.data.ring.HashRing.__init__", refuse):
        _assign(answer, 4, KEYS[:100])


hide(
    "lab03.q3",
    solution=SolutionRing,
    tests=[_test_own_ring, _test_contract, _test_even, _test_moves_little],
)

# --- q4: the indexes a mix needs --------------------------------------------------------------

REFERENCE_DDL: dict[tuple[str, ...], list[str]] = {
    MIXES[0]: [
        "CREATE INDEX ix_customer ON orders(customer_id)",
        "CREATE INDEX ix_ts ON orders(ts)",
    ],
    MIXES[1]: [
        "CREATE INDEX ix_order ON orders(order_id)",
        "CREATE INDEX ix_customer ON orders(customer_id)",
        "CREATE INDEX ix_amount ON orders(amount)",
    ],
    MIXES[2]: [
        "CREATE INDEX ix_customer ON orders(customer_id)",
        "CREATE INDEX ix_ts ON orders(ts)",
        "CREATE INDEX ix_amount ON orders(amount)",
    ],
    MIXES[3]: [
        "CREATE INDEX ix_customer ON orders(customer_id)",
        "CREATE INDEX ix_ts ON orders(ts)",
    ],
}
"""For each mix, the fewest indexes under which every query searches one."""


def judge_indexes(answer: list[str], ctx: Context) -> Verdict:
    """Every query of the mix searches an index of ``orders``; no more indexes than needed."""
    mix = tuple(ctx.param("mix"))
    plans = index_plans(answer, mix)
    scanning = [name for name, plan in plans.items() if not searches_orders(plan)]
    if scanning:
        found = "; ".join(f"{name!r}: {' / '.join(plans[name])}" for name in scanning)
        return Verdict(
            False,
            f"{len(scanning)} of {len(mix)} queries still read orders without searching an "
            f"index: {found}",
        )
    fewest = len(REFERENCE_DDL[mix])
    if len(answer) > fewest:
        return Verdict(
            False,
            f"every query searches an index, but with {len(answer)} indexes; fewer do, and each "
            "one is a B-tree every write must update.",
        )
    return Verdict(True, f"every query of the mix searches an index, with {len(answer)} indexes.")


hide("lab03.q4", judge=judge_indexes, reference=lambda ctx: REFERENCE_DDL[tuple(ctx.param("mix"))])
