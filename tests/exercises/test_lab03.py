"""Lab 03's exercises on runs of known behaviour: references, blanks, wrong models, made-up runs;
and the live step's outcome judged on runs whose resize moved a known share of the keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rundirs import T0, make_requests

from exercises.cases import Case, check_cases
from exercises.runs import SPECS, lab_run
from scalelab.analysis.load import Run
from scalelab.data.partitioners import ConsistentHash, ModuloHash, Partitioner
from scalelab.data.ring import HashRing
from scalelab.exercises.context import Prediction
from scalelab.exercises.instructor import ensure_hidden
from scalelab.exercises.labs.lab03 import MIXES, KeysMovedAtMost
from scalelab.exercises.live import LiveStep
from scalelab.exercises.params import Parameters
from scalelab.exercises.registry import get_lab
from scalelab.loadgen.keys import zipf_weights

N, M, ALPHA, CUSTOMERS = 4, 10, 1.0, 10_000
P = Parameters("lab03", {"resize": (N, M), "alpha": ALPHA, "mix": MIXES[0]}, seed=0, smoke=False)
BEFORE, AFTER = 1779926000.0, 1779929000.0
FAULT_AT = T0 + 5.0
SPECS.setdefault(
    "partitioning_add_worker",
    {
        "name": "partitioning_add_worker",
        "locustfile": "data.py",
        "load": {"users": 8},
        "scenario": {"query": "lookup", "dist": "zipf", "alpha": 1.0},
        "service": {
            "stack": ["admission", "faults", "router"],
            "router": {
                "partitions": 2,
                "partitioner": "hash",
                "key": "customer_id",
                "engine": "memory",
                "dataset": {"rows": 20000, "customers": CUSTOMERS},
            },
        },
        "faults": [{"at_s": 6.0, "set": {"router.partitions": 3}}],
    },
)


def moved_by(before: Partitioner, after: Partitioner, keys: np.ndarray) -> int:
    """How many of ``keys`` change partition between two partitioners."""
    return int(np.count_nonzero(before.partition_many(keys) != after.partition_many(keys)))


def resize_run(
    path: Path,
    *,
    n: int = N,
    m: int | None = M,
    alpha: float = ALPHA,
    moved: tuple[Partitioner, Partitioner] | None = None,
    partitioner: str = "hash",
    errors: float = 0.0,
    seed: int = 0,
) -> Run:
    """A run of ``partitioning_add_worker``: Zipf(alpha) lookups over ``n`` hash partitions,
    resized to ``m`` at 5 s, the router's counters saying what the resize moved."""
    rng = np.random.default_rng(seed)
    req = make_requests(rate=400.0, duration_s=10.0, mean_ms=5.0, seed=seed, error_rate=errors)
    weights = np.asarray(zipf_weights(CUSTOMERS, alpha))
    keys = rng.choice(CUSTOMERS, size=len(req), p=weights)
    after = req["start"].to_numpy() >= FAULT_AT
    parts = ModuloHash(n).partition_many(keys)
    if m is not None:
        parts = np.where(after, ModuloHash(m).partition_many(keys), parts)
    req["name"] = pd.Series(["/data/lookup"] * len(req), dtype="string")
    req["partition"] = pd.Series(parts.astype(str), dtype="string")
    req["rows"] = 2
    data_keys = np.unique(rng.integers(0, CUSTOMERS, 20000))
    before_p, after_p = moved or (ModuloHash(n), ModuloHash(m or n))
    t = [T0 + 1.0, FAULT_AT + 1.0]
    metrics = pd.DataFrame(
        {
            "t": t * 2,
            "source": ["service"] * 4,
            "metric": ["scalelab_router_keys_total"] * 2 + ["scalelab_router_keys_moved_total"] * 2,
            "labels": [""] * 4,
            "value": [
                0.0,
                float(len(data_keys)),
                0.0,
                float(moved_by(before_p, after_p, data_keys)),
            ],
        }
    )
    settings: dict[str, Any] = {
        "service.router.partitioner": partitioner,
        "service.router.partitions": n,
        "scenario.alpha": alpha,
        "faults": [{"at_s": 5.0, "set": {"router.partitions": m}}] if m is not None else [],
    }
    return lab_run(
        path,
        "partitioning_add_worker",
        req,
        settings=settings,
        events=[(FAULT_AT, "fault", "set")] if m is not None else [],
        metrics=metrics if m is not None else None,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    from scalelab_instructor.lab03 import SolutionRing

    root = tmp_path_factory.mktemp("lab03")
    return {
        "resize": resize_run(root / "resize-r0"),
        "no_resize": resize_run(root / "still-r0", m=None, seed=1),
        "consistent": resize_run(root / "ring-r0", partitioner="consistent", seed=2),
        "other_alpha": resize_run(root / "alpha-r0", alpha=1.2, seed=3),
        "other_n": resize_run(root / "six-r0", n=6, seed=4),
        "live_ring": resize_run(
            root / "live-ring-r0", n=2, m=3, moved=(SolutionRing(2), SolutionRing(3)), seed=5
        ),
        "live_hash": resize_run(root / "live-hash-r0", n=2, m=3, seed=6),
        "live_failing": resize_run(
            root / "live-err-r0",
            n=2,
            m=3,
            moved=(SolutionRing(2), SolutionRing(3)),
            errors=0.02,
            seed=7,
        ),
    }


class ModuloRing(Partitioner):
    """Modulo hashing dressed as a ring: moves most keys."""

    def partition_many(self, keys: np.ndarray) -> np.ndarray:
        return ModuloHash(self.partitions).partition_many(keys)

    def partition(self, key: int) -> int:
        return int(self.partition_many(np.array([key]))[0])


class OnePointRing(Partitioner):
    """A ring with one point per partition: consistent, but its arcs are very uneven."""

    def __init__(self, partitions: int, params: Any = None) -> None:
        super().__init__(partitions, params)
        from scalelab.data.hashing import mix64

        ids = np.arange(partitions, dtype=np.int64)
        pos = mix64(ids * 977 + 5, salt=9)
        order = np.argsort(pos)
        self.pos, self.owner = pos[order], ids[order]

    def partition_many(self, keys: np.ndarray) -> np.ndarray:
        from scalelab.data.hashing import mix64

        at = np.searchsorted(self.pos, mix64(np.asarray(keys, dtype=np.int64)))
        return self.owner[at % len(self.pos)]

    def partition(self, key: int) -> int:
        return int(self.partition_many(np.array([key]))[0])


class BuiltinRing(ConsistentHash):
    """The built-in ring under another name."""


class BorrowedRing(Partitioner):
    """scalelab's HashRing behind a class of one's own."""

    def __init__(self, partitions: int, params: Any = None) -> None:
        super().__init__(partitions, params)
        self.ring = HashRing([f"p{i}" for i in range(partitions)], vnodes=512)

    def partition(self, key: int) -> int:
        return int(self.ring.node_for(key)[1:])


class BlankRing(Partitioner):
    """As released: the bodies still raise."""

    def __init__(self, partitions: int, params: Any = None) -> None:
        super().__init__(partitions, params)
        raise NotImplementedError

    def partition(self, key: int) -> int:
        raise NotImplementedError


def _cases(r: dict[str, Run]) -> list[Case]:
    from scalelab_instructor.lab03 import REFERENCE_DDL, SolutionRing, _modulo_theory

    class _Ctx:
        params = P

        def param(self, name: str) -> Any:
            return P[name]

        def runs(self, name: str) -> list[Run]:
            return [r["resize"]]

    from scalelab_instructor.lab03 import zipf_imbalance

    imbalance = zipf_imbalance(_Ctx())  # type: ignore[arg-type]
    weights = np.asarray(zipf_weights(CUSTOMERS, ALPHA))
    by_range = np.bincount(np.arange(CUSTOMERS) * N // CUSTOMERS, weights=weights, minlength=N)

    def pred(ex: str, role: str, name: str, value: Any, expect: str, says: str = "", **kw: Any):
        prediction = Prediction(value, kw.pop("made", BEFORE), None, {})
        return Case(
            ex,
            role,
            name,
            None,
            {"run": kw.pop("run", r["resize"])},
            kw.pop("params", P),
            expect,
            says,
            prediction=prediction,
        )

    def q4(role: str, name: str, answer: Any, expect: str, says: str = "", **kw: Any) -> Case:
        return Case("lab03.q4", role, name, answer, {}, kw.pop("params", P), expect, says)

    theory = _modulo_theory(N, M)
    ddl0 = REFERENCE_DDL[MIXES[0]]
    return [
        pred("lab03.q1", "reference", "gcd over the larger count", theory, "pass"),
        pred("lab03.q1", "blank", "ellipsis", ..., "not answered"),
        pred("lab03.q1", "wrong model", "a ring's share", 0.6, "fail", "consistent-hash ring"),
        pred("lab03.q1", "wrong model", "coprime counts", 0.9, "fail", "share no factor"),
        pred("lab03.q1", "wrong model", "ratio of counts", 0.4, "fail", "ratio of the counts"),
        pred(
            "lab03.q1",
            "made-up context",
            "no resize",
            theory,
            "fail",
            "does not set",
            run=r["no_resize"],
        ),  # fmt: skip
        pred(
            "lab03.q1",
            "made-up context",
            "a ring's run",
            theory,
            "fail",
            "partitioner",
            run=r["consistent"],
        ),  # fmt: skip
        pred(
            "lab03.q1",
            "made-up context",
            "predicted after the run",
            theory,
            "fail",
            "after run",
            made=AFTER,
        ),  # fmt: skip
        pred("lab03.q2", "reference", "Zipf over hash partitions", imbalance, "pass", "Measured"),
        pred("lab03.q2", "blank", "ellipsis", ..., "not answered"),
        pred("lab03.q2", "wrong model", "even", 1.0, "fail", "spreads keys evenly"),
        pred(
            "lab03.q2",
            "wrong model",
            "range partitions",
            by_range.max() / by_range.mean(),
            "fail",
            "contiguous ranges",
        ),  # fmt: skip
        pred("lab03.q2", "wrong model", "equal keys", 1.032, "fail", "weigh each key"),
        pred(
            "lab03.q2",
            "made-up context",
            "another alpha",
            imbalance,
            "fail",
            "alpha",
            run=r["other_alpha"],
        ),  # fmt: skip
        pred(
            "lab03.q2",
            "made-up context",
            "another partition count",
            imbalance,
            "fail",
            "partitions",
            run=r["other_n"],
        ),  # fmt: skip
        Case("lab03.q3", "reference", "1,024 points a partition", SolutionRing, {}, P, "pass"),
        Case("lab03.q3", "blank", "not implemented", BlankRing, {}, P, "not answered"),
        Case("lab03.q3", "wrong model", "modulo hashing", ModuloRing, {}, P, "fail", "moved"),
        Case(
            "lab03.q3",
            "wrong model",
            "one point a partition",
            OnePointRing,
            {},
            P,
            "fail",
            "places on the ring",
        ),  # fmt: skip
        Case("lab03.q3", "wrong model", "the built-in", BuiltinRing, {}, P, "fail", "built-in"),
        Case(
            "lab03.q3",
            "wrong model",
            "scalelab's HashRing",
            BorrowedRing,
            {},
            P,
            "fail",
            "write the ring yourself",
        ),  # fmt: skip
        Case(
            "lab03.q3", "made-up context", "not a partitioner", dict, {}, P, "fail", "must subclass"
        ),  # fmt: skip
        *[
            q4(
                "reference",
                f"mix {i}",
                REFERENCE_DDL[mix],
                "pass",
                params=Parameters("lab03", {**dict(P), "mix": mix}, seed=0, smoke=False),
            )  # fmt: skip
            for i, mix in enumerate(MIXES)
        ],
        q4("blank", "ellipsis", ..., "not answered"),
        q4("wrong model", "the router's key only", ddl0[:1], "fail", "still read orders"),
        q4(
            "wrong model",
            "the GROUP BY column",
            [ddl0[0], "CREATE INDEX r ON orders(region)"],
            "fail",
            "'groupby region in a ts window': SCAN orders USING INDEX r",
        ),  # fmt: skip
        q4(
            "wrong model",
            "one more than needed",
            [*ddl0, "CREATE INDEX r ON orders(region)"],
            "fail",
            "fewer do",
        ),  # fmt: skip
        q4(
            "made-up context",
            "another mix's indexes",
            REFERENCE_DDL[MIXES[1]],
            "fail",
            "still read orders",
        ),  # fmt: skip
        q4("made-up context", "not DDL", ["DROP TABLE orders"], "fail", "not a CREATE INDEX"),
        q4("made-up context", "bad SQL", ["CREATE INDEX x ON orders(colour)"], "fail", "refused"),
    ]


ensure_hidden()


@pytest.fixture(scope="module")
def cases(runs: dict[str, Run]) -> list[Case]:
    return _cases(runs)


@pytest.mark.parametrize("exercise", [e.id for e in get_lab("lab03").exercises])
def test_exercise(exercise: str, cases: list[Case]) -> None:
    check_cases(exercise, cases)


def test_live_outcome_reads_the_share_moved_and_the_errors(runs: dict[str, Run]) -> None:
    """The live step passes a ring's resize, fails modulo hashing's and one with failures."""
    exercise = get_lab("lab03").exercises[2]
    step = exercise.live
    assert isinstance(step, LiveStep) and isinstance(step.outcome, KeysMovedAtMost)
    good = step.judge(runs["live_ring"], runs["live_hash"])
    assert good.passed, good.message
    assert "the built-in hash" in good.message
    modulo = step.judge(runs["live_hash"], runs["live_hash"])
    assert not modulo.passed and "at most 38.3%" in modulo.message, modulo.message
    failing = step.judge(runs["live_failing"], runs["live_hash"])
    assert not failing.passed and "failed" in failing.message, failing.message
    silent = step.outcome.judge(runs["no_resize"], None, step)
    assert not silent.passed and "no repartitioning" in silent.message
