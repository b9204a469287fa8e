"""The lab's queries answered the obvious way, on whole tables, to check the engines against."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from scalelab.data.queries import GroupBy, Lookup, Query, Range


def truth(query: Query, orders: pd.DataFrame, customers: pd.DataFrame) -> dict[str, Any]:
    """``query`` on the whole ``orders`` (and ``customers``) table."""
    o = orders
    if isinstance(query, Lookup):
        rows = o.loc[o[query.column] == query.value].sort_values("order_id")
        return {"count": len(rows), "rows": rows.head(query.limit).to_dict("records")}
    if isinstance(query, Range):
        rows = o.loc[o[query.column].between(query.low, query.high)]
        rows = rows.sort_values([query.column, "order_id"])
        return {
            "count": len(rows),
            "amount_sum": round(float(rows["amount"].sum()), 2),
            "rows": rows.head(query.limit).to_dict("records"),
        }
    lo = query.ts_low if query.ts_low is not None else -(2**62)  # type: ignore[union-attr]
    hi = query.ts_high if query.ts_high is not None else 2**62  # type: ignore[union-attr]
    rows = o.loc[o["ts"].between(lo, hi)]
    if isinstance(query, GroupBy):
        agg = rows.groupby(query.by)[query.column].agg(query.agg)
        return {"groups": [{query.by: k, query.agg: v} for k, v in agg.items()]}
    if query.customer is not None:  # type: ignore[union-attr]
        rows = rows.loc[rows["customer_id"] == query.customer]  # type: ignore[union-attr]
    by = query.by  # type: ignore[union-attr]
    grouped = rows.merge(customers, on="customer_id").groupby(by)["amount"].agg(["count", "sum"])
    return {
        "groups": [
            {by: k, "orders": int(r["count"]), "amount": round(r["sum"], 2)}
            for k, r in grouped.iterrows()
        ]
    }


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Two answers are equal (floats to rounding)."""
    assert got.keys() == expected.keys()
    for key in got:
        if key == "groups":
            assert [_rounded(g) for g in got[key]] == [_rounded(g) for g in expected[key]]
        elif key == "amount_sum":
            assert got[key] == pytest.approx(expected[key], abs=0.011)
        else:
            assert got[key] == expected[key], key
