"""The lab's queries: what a request asks, how one partition answers it, how answers merge.

Four reads and a write, the same for both engines:

- :class:`Lookup`: the orders whose ``column`` equals a value (a point lookup);
- :class:`Range`: the orders with ``low <= column <= high`` (a range scan);
- :class:`GroupBy`: an aggregate of ``amount`` (or another column) per group;
- :class:`Join`: orders joined with ``customers``, counted and summed per
  customer segment or country;
- :class:`Insert`: new orders (the SQLite engine only).

:func:`run_frame_query` answers a query from one pandas partition on a worker
(the memory engine); :mod:`scalelab.data.sqlite_db` answers it from a
partition's database. Each answer is a :class:`PartResult`: a partial value,
the rows the partition scanned, and the time it took. :func:`merge` combines
the partial values of every partition touched into the query's answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scalelab.data.schema import ORDERS_COLUMNS


@dataclass(frozen=True)
class Lookup:
    """Orders with ``column == value``; ``limit`` of them returned, by ``order_id``."""

    column: str
    value: int
    limit: int = 100


@dataclass(frozen=True)
class Range:
    """Orders with ``low <= column <= high``: their count and total amount, and the first
    ``limit`` by ``column``."""

    column: str
    low: float
    high: float
    limit: int = 10


@dataclass(frozen=True)
class GroupBy:
    """``agg`` of ``column`` per value of ``by``, over orders with ``ts`` in ``[ts_low, ts_high]``
    (all orders when they are None)."""

    by: str
    agg: str = "sum"
    column: str = "amount"
    ts_low: int | None = None
    ts_high: int | None = None


@dataclass(frozen=True)
class Join:
    """Orders joined with customers on ``customer_id``: orders and amount per customer ``by``
    (``segment`` or ``country``), for ``ts`` in a range and, given ``customer``, one customer."""

    by: str = "segment"
    ts_low: int | None = None
    ts_high: int | None = None
    customer: int | None = None


@dataclass(frozen=True)
class Insert:
    """New orders, as tuples in the order of ``ORDERS_COLUMNS``."""

    rows: tuple[tuple[Any, ...], ...]


Query = Lookup | Range | GroupBy | Join | Insert


@dataclass
class PartResult:
    """One partition's answer: a partial value, rows scanned, seconds inside the task."""

    value: Any
    rows_scanned: int
    seconds: float
    plan: list[str] = field(default_factory=list)
    uses_index: bool = False
    full_scan: bool = False


def query_name(query: Query) -> str:
    """``lookup``, ``range``, ``groupby``, ``join`` or ``insert``."""
    return {Lookup: "lookup", Range: "range", GroupBy: "groupby", Join: "join", Insert: "insert"}[
        type(query)
    ]


def _bounds(values: np.ndarray, low: Any, high: Any) -> tuple[int, int]:
    return int(np.searchsorted(values, low, "left")), int(np.searchsorted(values, high, "right"))


def _select(frame: pd.DataFrame, column: str, low: Any, high: Any, sorted_by: str | None):
    """Rows with ``low <= column <= high``, and the rows looked at to find them."""
    if column == sorted_by:
        lo, hi = _bounds(frame[column].to_numpy(), low, high)
        return frame.iloc[lo:hi], hi - lo, "binary search on the sorted key"
    values = frame[column]
    return frame.loc[(values >= low) & (values <= high)], len(frame), "scan of every row"


def _ts_filter(frame: pd.DataFrame, low: int | None, high: int | None) -> pd.DataFrame:
    if low is None and high is None:
        return frame
    ts = frame["ts"]
    keep = np.ones(len(frame), dtype=bool)
    if low is not None:
        keep &= (ts >= low).to_numpy()
    if high is not None:
        keep &= (ts <= high).to_numpy()
    return frame.loc[keep]


def partial_groups(frame: pd.DataFrame, by: str, column: str) -> dict[Any, list[float]]:
    """``{group: [count, sum, min, max]}`` of ``column`` per ``by``."""
    if frame.empty:
        return {}
    grouped = frame.groupby(by, sort=False)[column].agg(["count", "sum", "min", "max"])
    return {
        (k.item() if hasattr(k, "item") else k): [float(v) for v in row]
        for k, row in zip(grouped.index, grouped.to_numpy(), strict=True)
    }


def run_frame_query(
    frame: pd.DataFrame,
    query: Query,
    sorted_by: str | None = None,
    customers: pd.DataFrame | None = None,
    explain: bool = False,
) -> PartResult:
    """Answer ``query`` from one in-memory partition (``sorted_by``: the column it is sorted by)."""
    started = time.perf_counter()
    how = ""
    if isinstance(query, Lookup):
        rows, scanned, how = _select(frame, query.column, query.value, query.value, sorted_by)
        value: Any = {
            "count": len(rows),
            "rows": rows.sort_values("order_id").head(query.limit).to_dict("records"),
        }
    elif isinstance(query, Range):
        rows, scanned, how = _select(frame, query.column, query.low, query.high, sorted_by)
        value = {
            "count": len(rows),
            "amount_sum": float(rows["amount"].sum()),
            "rows": rows.sort_values([query.column, "order_id"])
            .head(query.limit)
            .to_dict("records"),
        }
    elif isinstance(query, GroupBy):
        rows = _ts_filter(frame, query.ts_low, query.ts_high)
        scanned, how = len(frame), "scan of every row, then hash aggregation"
        value = partial_groups(rows, query.by, query.column)
    elif isinstance(query, Join):
        if query.customer is not None:
            rows, scanned, how = _select(
                frame, "customer_id", query.customer, query.customer, sorted_by
            )
        else:
            rows, scanned, how = frame, len(frame), "scan of every row"
        rows = _ts_filter(rows, query.ts_low, query.ts_high)
        if customers is None:
            raise ValueError("a join needs the customers table")
        joined = rows[["customer_id", "amount"]].merge(
            customers[["customer_id", query.by]], on="customer_id", how="inner"
        )
        value = partial_groups(joined, query.by, "amount")
        how += ", hash join with customers"
    else:
        raise ValueError(f"the memory engine does not take {type(query).__name__} queries")
    plan = [f"{query_name(query)}: {how}"] if explain else []
    return PartResult(value, int(scanned), time.perf_counter() - started, plan)


def _finish_groups(partials: list[dict[Any, list[float]]]) -> dict[Any, list[float]]:
    out: dict[Any, list[float]] = {}
    for part in partials:
        for group, (count, total, low, high) in part.items():
            have = out.get(group)
            if have is None:
                out[group] = [count, total, low, high]
            else:
                have[0] += count
                have[1] += total
                have[2] = min(have[2], low)
                have[3] = max(have[3], high)
    return out


def _ordered(groups: dict[Any, list[float]]) -> list[Any]:
    """Group keys in their natural order (numbers as numbers)."""
    try:
        return sorted(groups)
    except TypeError:  # mixed types: order by text
        return sorted(groups, key=str)


def merge(query: Query, values: list[Any]) -> dict[str, Any]:
    """The answer to ``query`` from the partial values of the partitions it touched."""
    if isinstance(query, Lookup):
        rows = sorted((r for v in values for r in v["rows"]), key=lambda r: r["order_id"])
        return {"count": sum(v["count"] for v in values), "rows": rows[: query.limit]}
    if isinstance(query, Range):
        column = query.column
        rows = sorted(
            (r for v in values for r in v["rows"]), key=lambda r: (r[column], r["order_id"])
        )
        return {
            "count": sum(v["count"] for v in values),
            "amount_sum": round(sum(v["amount_sum"] for v in values), 2),
            "rows": rows[: query.limit],
        }
    if isinstance(query, GroupBy):
        groups = _finish_groups(values)
        index = {"count": 0, "sum": 1, "min": 2, "max": 3}
        out = []
        for group in _ordered(groups):
            count, total, low, high = groups[group]
            if query.agg == "mean":
                figure = total / count if count else None
            else:
                figure = groups[group][index[query.agg]]
            if query.agg == "count":
                figure = int(count)
            out.append({query.by: group, query.agg: figure})
        return {"groups": out}
    if isinstance(query, Join):
        groups = _finish_groups(values)
        return {
            "groups": [
                {query.by: g, "orders": int(groups[g][0]), "amount": round(groups[g][1], 2)}
                for g in _ordered(groups)
            ]
        }
    return {"inserted": sum(int(v["inserted"]) for v in values)}


def key_counts(frame: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``key`` in ``frame`` (ascending) and the rows of each."""
    keys, counts = np.unique(frame[key].to_numpy(), return_counts=True)
    return keys.astype(np.int64), counts.astype(np.int64)


def rows_frame(rows: tuple[tuple[Any, ...], ...]) -> pd.DataFrame:
    """Inserted rows as an orders frame."""
    frame = pd.DataFrame(list(rows), columns=list(ORDERS_COLUMNS))
    return frame.astype(
        {"order_id": "int64", "customer_id": "int64", "ts": "int64", "amount": "float64"}
    )
