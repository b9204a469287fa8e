"""The ``/data`` endpoints: queries over the partitioned orders, through the stack.

Each parses its input into a :class:`~scalelab.data.queries.Query` (a bad
column, an upside-down range or a key of the wrong type get 422 naming the
parameter) and passes a request carrying it through the stack, where the
``router`` layer plans it over the partitions:

- ``GET /data/lookup/{value}?column=customer_id``: orders with that value;
- ``GET /data/range?column=ts&low=..&high=..``: count, total amount, first rows;
- ``GET /data/groupby?by=region&agg=sum&column=amount[&ts_low&ts_high]``;
- ``GET /data/join?by=segment[&ts_low&ts_high&customer]``: orders joined with customers;
- ``POST /data/orders`` with ``{"rows": [...]}``: new orders (SQLite engine);
- ``GET /data/info``: the dataset and its columns (not counted as load).

``explain=true`` adds each partition's plan to the answer. Responses carry
``X-Partition`` (the partitions touched), ``X-Rows-Scanned`` and ``X-Worker``.
``GET /admin/data`` (on the admin API) shows the layout and the moves so far.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from fastapi.responses import Response as HTTPResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from scalelab.data.queries import GroupBy, Insert, Join, Lookup, Range
from scalelab.data.queries import Query as DataQuery
from scalelab.data.schema import (
    AGGREGATES,
    GROUP_COLUMNS,
    INTEGER_COLUMNS,
    JOIN_GROUP_COLUMNS,
    NUMERIC_COLUMNS,
    ORDERS_COLUMNS,
    REGIONS,
)
from scalelab.service.http_metrics import REQUEST_ID
from scalelab.service.request import NotReady, Request
from scalelab.service.routes.inputs import invalid
from scalelab.service.routes.render import render
from scalelab.service.state import ServiceState

DATA_PATHS: frozenset[str] = frozenset(
    {"/data/range", "/data/groupby", "/data/join", "/data/orders"}
)
"""``/data`` paths counted as data-plane load."""

DATA_PREFIXES: tuple[str, ...] = ("/data/lookup/",)
"""``/data`` path prefixes counted as data-plane load (under ``/data/lookup``)."""

MAX_LIMIT = 1_000
MAX_INSERT = 10_000
WRITTEN_IDS_FROM = 10**12
"""Orders written without an ``order_id`` get ids from here up."""


class NewOrder(BaseModel):
    """One order to write; ``order_id`` and ``ts`` are given for you when left out."""

    model_config = ConfigDict(extra="forbid")

    order_id: int | None = Field(default=None, ge=0)
    customer_id: int = Field(ge=0)
    region: str = "eu"
    ts: int | None = None
    amount: float = Field(default=0.0, ge=0.0)
    payload: str = Field(default="", max_length=4_096)

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if v not in REGIONS:
            raise ValueError(f"unknown region {v!r}; use one of {', '.join(REGIONS)}")
        return v


class NewOrders(BaseModel):
    """The body of ``POST /data/orders``."""

    model_config = ConfigDict(extra="forbid")

    rows: list[NewOrder] = Field(min_length=1, max_length=MAX_INSERT)


def _choice(param: str, value: str, allowed: tuple[str, ...], what: str) -> JSONResponse | None:
    if value in allowed:
        return None
    return invalid(param, f"unknown {what} {value!r}; use one of {', '.join(allowed)}", value)


def _number(
    param: str, text: str, column: str, where: str = "query"
) -> tuple[float | int | None, JSONResponse | None]:
    """``text`` as the type of ``column`` (an integer for ids and times)."""
    try:
        if column in INTEGER_COLUMNS:
            return int(text), None
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError
        return value, None
    except ValueError:
        kind = "an integer" if column in INTEGER_COLUMNS else "a finite number"
        message = f"expected {kind} for column {column}, got {text!r}"
        return None, invalid(param, message, text, where)


def _limit(limit: int) -> JSONResponse | None:
    if 0 <= limit <= MAX_LIMIT:
        return None
    return invalid("limit", f"must be between 0 and {MAX_LIMIT}; got {limit}", limit)


def _ts_range(ts_low: int | None, ts_high: int | None) -> JSONResponse | None:
    if ts_low is not None and ts_high is not None and ts_low > ts_high:
        return invalid(
            "ts_low", f"the range is upside down: ts_low {ts_low} > ts_high {ts_high}", ts_low
        )
    return None


def dataset_router(state: ServiceState) -> APIRouter:
    """The ``/data`` endpoints of the service ``state`` holds."""
    router = APIRouter(prefix="/data", tags=["data plane: partitioned orders"])
    handle = state.pipeline.handle
    written = itertools.count(WRITTEN_IDS_FROM)

    async def no_router() -> Any:
        raise NotReady("the stack has no 'router' layer to answer /data queries")

    async def run(
        endpoint: str, query: DataQuery, explain: bool, method: str = "GET"
    ) -> HTTPResponse:
        if state.layer("router") is None:
            return JSONResponse(
                {
                    "detail": "the stack has no 'router' layer: add 'router' to stack "
                    "(before the executor) and a [router] section; see docs/partitioning.md"
                },
                status_code=409,
            )
        request = Request(
            endpoint,
            method=method,
            params={"query": query, "explain": explain},
            request_id=REQUEST_ID.get(),
            local=no_router,
        )
        return render(await handle(request))

    @router.get("/info")
    async def info() -> JSONResponse:
        """The dataset the router loaded: rows, customers, time span, columns."""
        layer = state.layer("router")
        dataset = getattr(layer, "dataset", None)
        if dataset is None:
            return JSONResponse({"detail": "no dataset loaded: the stack has no router"}, 409)
        body = dataset.describe()
        body.update(key=layer.params.key, engine=layer.params.engine)
        body["partitions"] = len(layer.current) if layer.current is not None else 0
        return JSONResponse(body)

    @router.get("/lookup/{value}")
    async def lookup(
        value: str,
        column: str = Query("", description="an integer column; empty: the router's key"),
        limit: int = Query(100, description=f"rows returned, 0 to {MAX_LIMIT}"),
        explain: bool = Query(False, description="add each partition's plan"),
    ) -> HTTPResponse:
        """Orders whose ``column`` equals ``value`` (a point lookup)."""
        column = column or state.config.router.key
        bad = _choice("column", column, INTEGER_COLUMNS, "lookup column") or _limit(limit)
        if bad is not None:
            return bad
        number, bad = _number("value", value, column, "path")
        if bad is not None:
            return bad
        return await run("/data/lookup", Lookup(column, int(number or 0), limit), explain)

    @router.get("/range")
    async def range_scan(
        low: str,
        high: str,
        column: str = Query("ts", description=f"one of {', '.join(NUMERIC_COLUMNS)}"),
        limit: int = Query(10, description=f"rows returned, 0 to {MAX_LIMIT}"),
        explain: bool = Query(False),
    ) -> HTTPResponse:
        """Orders with ``low <= column <= high``: count, total amount, the first rows."""
        bad = _choice("column", column, NUMERIC_COLUMNS, "range column") or _limit(limit)
        if bad is not None:
            return bad
        lo, bad = _number("low", low, column)
        if bad is not None:
            return bad
        hi, bad = _number("high", high, column)
        if bad is not None:
            return bad
        assert lo is not None and hi is not None
        if lo > hi:
            return invalid("low", f"the range is upside down: low {low} > high {high}", low)
        return await run("/data/range", Range(column, lo, hi, limit), explain)

    @router.get("/groupby")
    async def group_by(
        by: str = Query("region", description=f"one of {', '.join(GROUP_COLUMNS)}"),
        agg: str = Query("sum", description=f"one of {', '.join(AGGREGATES)}"),
        column: str = Query("amount", description=f"one of {', '.join(NUMERIC_COLUMNS)}"),
        ts_low: int | None = None,
        ts_high: int | None = None,
        explain: bool = Query(False),
    ) -> HTTPResponse:
        """``agg`` of ``column`` per ``by``, over orders with ``ts`` in the range given."""
        bad = (
            _choice("by", by, GROUP_COLUMNS, "group column")
            or _choice("agg", agg, AGGREGATES, "aggregate")
            or _choice("column", column, NUMERIC_COLUMNS, "column")
            or _ts_range(ts_low, ts_high)
        )
        if bad is not None:
            return bad
        return await run("/data/groupby", GroupBy(by, agg, column, ts_low, ts_high), explain)

    @router.get("/join")
    async def join(
        by: str = Query("segment", description=f"one of {', '.join(JOIN_GROUP_COLUMNS)}"),
        ts_low: int | None = None,
        ts_high: int | None = None,
        customer: int | None = Query(None, description="only this customer's orders"),
        explain: bool = Query(False),
    ) -> HTTPResponse:
        """Orders joined with customers: orders and amount per customer ``by``."""
        bad = _choice("by", by, JOIN_GROUP_COLUMNS, "customers column") or _ts_range(
            ts_low, ts_high
        )
        if bad is not None:
            return bad
        return await run("/data/join", Join(by, ts_low, ts_high, customer), explain)

    @router.post("/orders")
    async def write_orders(body: NewOrders) -> HTTPResponse:
        """Write new orders, each to its key's partition (every copy of it)."""
        now = int(time.time())
        rows = tuple(
            (
                r.order_id if r.order_id is not None else next(written),
                r.customer_id,
                r.region,
                r.ts if r.ts is not None else now,
                r.amount,
                r.payload,
            )
            for r in body.rows
        )
        assert len(rows[0]) == len(ORDERS_COLUMNS)
        return await run("/data/orders", Insert(rows), False, method="POST")

    return router


def add_admin_routes(admin: APIRouter, state: ServiceState) -> None:
    """``GET /admin/data`` on the admin router (behind its token, when it has one)."""

    @admin.get("/data")
    async def data_layout() -> JSONResponse:
        """The router's layout: every partition's workers, rows, bytes, zone map; the moves."""
        layer = state.layer("router")
        if layer is None:
            return JSONResponse({"detail": "the stack has no 'router' layer"}, status_code=409)
        return JSONResponse(layer.layout())
