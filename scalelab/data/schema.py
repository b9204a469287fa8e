"""The tables of the partitioning lab and what a query may name in them.

``orders`` (one row per order) and ``customers`` (a small table joined to it).
Every name a request may use is checked against these lists, so a bad column
gets a 422 naming it rather than an error from deep inside a worker.
"""

from __future__ import annotations

ORDERS_COLUMNS: tuple[str, ...] = ("order_id", "customer_id", "region", "ts", "amount", "payload")
"""The columns of ``orders``, in their stored order."""

INTEGER_COLUMNS: tuple[str, ...] = ("order_id", "customer_id", "ts")
"""Integer columns of ``orders``: keys and times (Unix seconds)."""

NUMERIC_COLUMNS: tuple[str, ...] = (*INTEGER_COLUMNS, "amount")
"""Columns a range scan, an aggregate and the per-partition statistics (zone maps) take."""

KEY_COLUMNS: tuple[str, ...] = ("customer_id", "order_id")
"""Columns the router may partition by."""

GROUP_COLUMNS: tuple[str, ...] = ("region", "customer_id")
"""Columns of ``orders`` a group-by may group by."""

CUSTOMERS_COLUMNS: tuple[str, ...] = ("customer_id", "name", "segment", "country")
"""The columns of ``customers``."""

JOIN_GROUP_COLUMNS: tuple[str, ...] = ("segment", "country")
"""Columns of ``customers`` a join may group the orders by."""

AGGREGATES: tuple[str, ...] = ("count", "sum", "mean", "min", "max")
"""Aggregates a group-by computes."""

REGIONS: tuple[str, ...] = ("eu", "us", "apac", "latam", "africa")
SEGMENTS: tuple[str, ...] = ("consumer", "smb", "enterprise")
COUNTRIES: tuple[str, ...] = ("de", "fr", "us", "br", "jp", "in", "ng", "au")

TS_START = 1_767_225_600
"""2026-01-01T00:00:00Z: the first order's time (Unix seconds)."""
