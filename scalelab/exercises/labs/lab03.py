"""Lab 03, partitioning and indexes: keys moved, a hot partition, a ring of your own, indexes
(public part).

Notebook ``03_partitioning.ipynb``. The grader sets the partition counts
before and after a resize (``resize``: (n, m)), the skew of the lookups
(``alpha``) and the mix of queries the indexes must serve (``mix``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scalelab.data.partitioners import Partitioner
from scalelab.exercises.base import AnswerError, Verdict
from scalelab.exercises.code import CodeExercise
from scalelab.exercises.context import Context, Param, Runs
from scalelab.exercises.live import LiveStep, Outcome
from scalelab.exercises.number import AnswerExercise, PredictionExercise
from scalelab.exercises.registry import lab

if TYPE_CHECKING:
    import pandas as pd

    from scalelab.analysis.load import Run
    from scalelab.data.queries import Query

MIXES = (
    ("lookup customer_id", "range ts", "groupby region in a ts window"),
    ("lookup order_id", "join one customer", "range amount"),
    ("range customer_id", "join in a ts window", "range amount"),
    ("lookup customer_id", "join one customer", "groupby region in a ts window"),
)
"""The query mixes the grader draws from (``P.mix``), each query as the SQLite engine runs it."""

LAB = lab(
    "lab03",
    "03_partitioning.ipynb",
    "Partitioning and indexes: keys moved, hot partitions, a ring, indexes",
    parameters={
        "resize": ((4, 10), (6, 14), (8, 14), (10, 4), (16, 6)),
        "alpha": (1.0, 1.2),
        "mix": MIXES,
    },
    smoke_parameters={"resize": ((4, 10), (10, 4)), "alpha": (1.0, 1.2), "mix": MIXES},
)
CONCEPTS = "docs/course.md, 'Concepts'"
RESIZE_RUN = Runs(
    "partitioning_add_worker",
    where={
        "service.router.partitioner": "hash",
        "service.router.key": "customer_id",
        "service.router.partitions": Param("resize", 0),
        "scenario.query": "lookup",
        "scenario.dist": "zipf",
        "scenario.alpha": Param("alpha"),
    },
    what="a partitioning_add_worker run: modulo hashing at the lab's first partition count, "
    "Zipf lookups at the lab's alpha, resized to its second count",
)

LAB.add(
    PredictionExercise(
        "lab03.q1",
        """Predict the share of keys modulo hashing moves when the partition count changes.

        The router starts with ``n, m = P.resize`` as ``n`` partitions under
        ``partitioner = "hash"`` (a key's partition is its hash modulo the
        count); a ``[[faults]]`` entry then sets ``router.partitions`` to
        ``m``. Before the run, predict the share of the dataset's keys
        (customer ids) that change partition, and record it with
        ``predict``; ``check`` compares it with the share the router
        counted.""",
        points=2,
        bounds=(0.0, 1.0),
        hint="a key stays where it is when its hash leaves the same remainder under both "
        "counts; over a whole period of both remainders, how many hashes do? "
        f"({CONCEPTS}, 'Rehashing')",
        usage='predict("lab03.q1", share); later check("lab03.q1", run=resize_run)',
        context={"run": RESIZE_RUN},
    )
)

LAB.add(
    PredictionExercise(
        "lab03.q2",
        """Predict the hottest partition's load, as a multiple of the mean.

        In the same run, lookups ask for customer ``k`` (0 .. 9,999) with
        probability proportional to ``1/(k+1)**alpha`` (``alpha = P.alpha``),
        and the ``n`` partitions hold customers by ``hash``. Before the run,
        predict the imbalance of the partitions' requests before the resize:
        the busiest partition's requests over the mean partition's. ``check``
        compares it with what the router's partitioner makes of that
        popularity, and shows what the run measured beside it.""",
        points=2,
        bounds=(1.0, None),
        hint="a partition's load is the total popularity of the keys it holds; the partitioner "
        f"is the one in the service ({CONCEPTS}, 'Hot partitions').",
        usage='predict("lab03.q2", imbalance); later check("lab03.q2", run=resize_run)',
        context={"run": RESIZE_RUN},
    )
)


@dataclass(frozen=True)
class KeysMovedAtMost(Outcome):
    """One repartitioning in the run, adding partitions to ``n``, that moved at most
    ``added / (n + added) + slack`` of the keys, with no request failed."""

    slack: float = 0.05

    def describe(self) -> str:
        return f"a resize that moves at most the new partitions' share of the keys + {self.slack}"

    def judge(self, mine: Run, baseline: Run | None, step: LiveStep) -> Verdict:
        from scalelab.analysis.partitioning import keys_moved

        def moved(run: Run) -> tuple[float, int, int] | None:
            rows = keys_moved(run)
            if rows.empty:
                return None
            before = int(run.spec["service"]["router"]["partitions"])
            sets = [f.get("set", {}) for f in run.spec.get("faults", [])]
            after = next((int(s["router.partitions"]) for s in sets if "router.partitions" in s), 0)
            return float(rows["share"].iloc[-1]), before, after

        got = moved(mine)
        if got is None:
            return Verdict(False, "the run saw no repartitioning: did the resize happen?")
        share, n, m = got
        limit = (m - n) / m + self.slack if m > n else math.nan
        base = moved(baseline) if baseline is not None else None
        text = f"going from {n} to {m} partitions in the service it moved {share:.1%} of the keys"
        if base is not None:
            text += f" (the built-in {step.compare_with}: {base[0]:.1%})"
        if not share <= limit:
            return Verdict(False, f"{text}; at most {limit:.1%} may move")
        errors = int(mine.summary.get("errors") or 0)
        if errors:
            return Verdict(False, f"{text}, but {errors} requests failed during the move")
        return Verdict(True, f"{text}, with no request failed.")


def _is_a_partitioner(cls: type) -> None:
    """implements partition()"""
    assert getattr(cls, "partition", None) is not Partitioner.partition, (
        "define partition(self, key): the partition, 0 .. partitions - 1, of an integer key"
    )


LAB.add(
    CodeExercise(
        "lab03.q3",
        """A consistent-hash ring of your own, plugged into the router.

        Subclass ``scalelab.data.partitioners.Partitioner`` with partitions
        ``0 .. partitions - 1`` as nodes of a hash ring you write yourself
        (the built-in ``consistent`` partitioner and ``scalelab.data.ring``
        are not yours: hidden tests refuse them). Hidden tests check that it
        is deterministic, spreads keys evenly, and that growing from ``n`` to
        ``n + 1`` partitions moves at most ``1/(n+1) + 0.05`` of the keys, all
        to the new partition. Written to ``my_ring.py`` beside the notebook
        and plugged into the service under
        ``scenarios/partitioning_add_worker.toml``, it must do the same while
        serving lookups, with no request failing during the move.""",
        points=3,
        expects="class",
        base=Partitioner,
        public_tests=[_is_a_partitioner],
        live=LiveStep(
            field="service.router.partitioner",
            spec="scenarios/partitioning_add_worker.toml",
            compare_with="hash",
            outcome=KeysMovedAtMost(0.05),
            overrides={
                "duration_s": 2.5,
                "warmup_s": 0.0,
                "cooldown_s": 0.0,
                "load.users": 2,
                "service.router.dataset.rows": 20000,
                "faults": [{"at_s": 1.0, "set": {"router.partitions": 3}}],
            },
            max_error_rate=0.0,
        ),
        hint="what decides a key's partition must not depend on the partition count alone; "
        f"and one position per node leaves uneven arcs ({CONCEPTS}, 'Consistent hashing').",
        usage='check("lab03.q3", MyRing, scheduler=..., out=OUT)',
    )
)

QUERIES = (
    "lookup customer_id",
    "lookup order_id",
    "range customer_id",
    "range ts",
    "range amount",
    "groupby region in a ts window",
    "join one customer",
    "join in a ts window",
)
"""Every query a mix may hold."""


def mix_queries(names: tuple[str, ...] | list[str], orders: pd.DataFrame) -> dict[str, Query]:
    """The queries ``names`` stand for, with values taken from a partition's ``orders``: a key
    it holds, and ranges of 1 % of each column's span."""
    from scalelab.data.queries import GroupBy, Join, Lookup, Range

    def window(column: str) -> tuple[float, float]:
        low, high = float(orders[column].min()), float(orders[column].max())
        start = low + 0.4 * (high - low)
        return start, start + 0.01 * (high - low)

    customer = int(orders["customer_id"].iloc[len(orders) // 3])
    ts_low, ts_high = (int(x) for x in window("ts"))
    made: dict[str, Query] = {
        "lookup customer_id": Lookup("customer_id", customer),
        "lookup order_id": Lookup("order_id", int(orders["order_id"].iloc[len(orders) // 2])),
        "range customer_id": Range("customer_id", *(int(x) for x in window("customer_id"))),
        "range ts": Range("ts", ts_low, ts_high),
        "range amount": Range("amount", *window("amount")),
        "groupby region in a ts window": GroupBy("region", ts_low=ts_low, ts_high=ts_high),
        "join one customer": Join("segment", customer=customer),
        "join in a ts window": Join("segment", ts_low=ts_low, ts_high=ts_high),
    }
    unknown = [n for n in names if n not in made]
    if unknown:
        raise ValueError(f"unknown queries {unknown}; use some of {list(QUERIES)}")
    return {n: made[n] for n in names}


def index_plans(
    ddl: list[str], names: tuple[str, ...] | list[str], rows: int = 5000
) -> dict[str, list[str]]:
    """SQLite's ``EXPLAIN QUERY PLAN`` of each query of ``names`` on one partition of ``rows``
    orders (the dataset's defaults otherwise) built with ``ddl`` as its only indexes."""
    from scalelab.data.config import DatasetSpec
    from scalelab.data.generate import generate_customers, generate_orders
    from scalelab.data.sqlite_db import Database

    spec = DatasetSpec(rows=rows)
    orders, customers = generate_orders(spec), generate_customers(spec)
    database = Database("plans", orders, customers, list(ddl))
    try:
        return {
            name: database.query(query, explain=True).plan
            for name, query in mix_queries(names, orders).items()
        }
    finally:
        database.close()


def searches_orders(plan: list[str]) -> bool:
    """Whether a plan finds its rows of ``orders`` by searching an index, and never scans it."""
    return any(
        line.startswith("SEARCH orders USING") and "INDEX" in line for line in plan
    ) and not any(line.startswith("SCAN orders") for line in plan)


def ddl_shape(answer: Any, context: Context) -> list[str]:
    """A list of ``CREATE INDEX`` statements on ``orders`` that SQLite accepts."""
    from scalelab.data.sqlite_db import check_ddl

    if isinstance(answer, str) or not isinstance(answer, list | tuple):
        raise AnswerError('expected a list of statements, e.g. ["CREATE INDEX ix_a ON orders(a)"]')
    statements = []
    for i, statement in enumerate(answer):
        if not isinstance(statement, str) or not statement.strip():
            raise AnswerError(f"statement {i} is not a string of SQL")
        text = " ".join(statement.split())
        if not text.upper().startswith(("CREATE INDEX", "CREATE UNIQUE INDEX")):
            raise AnswerError(f"statement {i} ({text!r}) is not a CREATE INDEX")
        statements.append(text)
    try:
        check_ddl(statements)
    except ValueError as exc:
        raise AnswerError(f"SQLite refused statement {exc}") from None
    return statements


LAB.add(
    AnswerExercise(
        "lab03.q4",
        """Indexes that serve every query of a mix, and no more of them than needed.

        Each partition of the ``sqlite`` engine is a SQLite database with the
        table ``orders``. Write the ``router.index_ddl`` (with ``router.index
        = []``) under which every query of ``P.mix`` finds its rows of
        ``orders`` by searching an index (``EXPLAIN QUERY PLAN`` says
        ``SEARCH orders USING INDEX``, never ``SCAN orders``), with as few
        indexes as that takes: each is one more B-tree every write updates.
        ``check`` builds a partition with your DDL and reads SQLite's plans.""",
        points=2,
        shape=ddl_shape,
        hint="an index serves a query when the query constrains the index's first column; "
        f"read each query's WHERE clause, not its GROUP BY ({CONCEPTS}, 'Indexes').",
        usage='check("lab03.q4", ["CREATE INDEX ix_a ON orders(a)", ...])',
    )
)
